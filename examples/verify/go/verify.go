// Verify wxauth access tokens in a Go backend with golang-jwt/jwt v5 and MicahParks/keyfunc
// v3 (the JWKS, cached and fetched again for an unknown kid). NOT RUN by wxauth's tests: a
// starting point, checked only by reading (docs/backend.md, "Verify tokens in your backend").
//
//	go run . https://auth.example.com wxauth "$ACCESS_TOKEN"
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks what wxauth's own /auth/verify checks: RS256 only, typ at+jwt (RFC 9068),
// iss, aud, exp and iat with a leeway. Whether the session was revoked meanwhile needs
// introspection (RFC 7662, POST /oauth/introspect, not yet served by wxauth).
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
