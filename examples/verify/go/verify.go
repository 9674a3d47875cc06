// Verify wxauth access tokens in a Go backend with golang-jwt/jwt v5 and MicahParks/keyfunc
// v3 (the JWKS, cached and fetched again for an unknown kid). NOT RUN by wxauth's tests: a
// starting point, checked only by reading (docs/backend.md, "Verify tokens in your backend").
//
//	go run . https://auth.example.com wxauth "$ACCESS_TOKEN"
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks what wxauth's own /auth/verify checks: RS256 only, typ at+jwt (RFC 9068),
// iss, aud, exp and iat with a leeway. Whether the session was revoked meanwhile needs
// introspection: see Introspect below.
type Verifier struct {
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
}

func NewVerifier(ctx context.Context, issuer, audience string) (*Verifier, error) {
	keys, err := keyfunc.NewDefaultCtx(ctx, []string{issuer + "/.well-known/jwks.json"})
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(60*time.Second),
	)
	return &Verifier{keys: keys, parser: parser}, nil
}

// Verify returns the token's claims (sub: the user id, sid: the session, client_id, ...).
func (v *Verifier) Verify(token string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	parsed, err := v.parser.ParseWithClaims(token, claims, v.keys.Keyfunc)
	if err != nil {
		return nil, err
	}
	if typ, _ := parsed.Header["typ"].(string); typ != "at+jwt" {
		return nil, errors.New("not an access token (typ at+jwt)")
	}
	return claims, nil
}

// Middleware answers 401 with RFC 6750's challenge unless the request bears a good token.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		if _, err := v.Verify(token); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Introspect asks wxauth whether a token is good now (RFC 7662, POST /oauth/introspect):
// {"active": false} for an expired token, a revoked or ended session (logout, ban, reuse) or
// anything else that is not a live access token; else "active": true with the token's claims.
// The caller is an OAuth client holding the scope introspect (`wxauth-admin client create
// --scopes introspect`), authenticated with HTTP Basic. Use it where a revoked session must be
// refused at once (payments, account changes): elsewhere a token lives at most AUTH_ACCESS_TTL.
func Introspect(ctx context.Context, endpoint, clientID, clientSecret, token string) (map[string]any, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 section 2.3.1: both parts form-urlencoded before Basic.
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection answered HTTP %d", res.StatusCode)
	}
	answer := map[string]any{}
	if err := json.NewDecoder(res.Body).Decode(&answer); err != nil {
		return nil, err
	}
	if _, ok := answer["active"].(bool); !ok {
		return nil, errors.New(`introspection answered no "active"`)
	}
	return answer, nil
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: go run . ISSUER AUDIENCE ACCESS_TOKEN")
		os.Exit(2)
	}
	v, err := NewVerifier(context.Background(), os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	claims, err := v.Verify(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "refused:", err)
		os.Exit(1)
	}
	fmt.Println("user", claims["sub"], "session", claims["sid"])
}
