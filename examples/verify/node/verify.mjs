// Verify wxauth access tokens in a Node backend (Express, NestJS, Koa, Fastify...) with jose.
//
//   import { createVerifier } from './verify.mjs';
//   const verify = createVerifier({ issuer: 'https://auth.example.com', audience: 'wxauth' });
//   const claims = await verify(token);   // throws if the token is not good
//
// What it checks, as wxauth's own /auth/verify does (docs/backend.md, "Verify tokens in your
// backend"): the signature with RS256 only, against the issuer's JWKS (fetched once, cached,
// fetched again for an unknown `kid`: key rotation needs nothing here); `typ` at+jwt (RFC 9068:
// an ID token or another JWT is no access token); `iss`; `aud`; `exp` and `iat` with a
// clock tolerance. What a JWT alone cannot say is whether its session was revoked meanwhile
// (logout, ban, reuse): for that, see `introspect` below.
import { createRemoteJWKSet, jwtVerify } from 'jose';

/**
 * @param {object} options
 * @param {string} options.issuer    wxauth's issuer, e.g. 'https://auth.example.com'
 * @param {string} options.audience  the `aud` your API accepts (AUTH_AUDIENCE, default 'wxauth')
 * @param {string} [options.jwksUri] default `${issuer}/.well-known/jwks.json`
 * @param {number} [options.clockTolerance] seconds of clock skew accepted, default 60
 * @returns {(token: string, verifyOptions?: {currentDate?: Date}) => Promise<object>} the
 *   token's claims (`sub`: the user id, `sid`: the session, `client_id`, ...)
 */
export function createVerifier({ issuer, audience, jwksUri, clockTolerance = 60 }) {
  const jwks = createRemoteJWKSet(new URL(jwksUri || `${issuer}/.well-known/jwks.json`));
  return async function verify(token, { currentDate } = {}) {
    const { payload } = await jwtVerify(token, jwks, {
      algorithms: ['RS256'],
      typ: 'at+jwt',
      issuer,
      audience,
      clockTolerance,
      requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      currentDate, // for tests: verify as of another time
    });
    return payload;
  };
}

/**
 * Express middleware: `req.auth` = the claims, else 401 with RFC 6750's challenge.
 *
 *   app.use('/api', bearer(createVerifier({ issuer, audience })));
 */
export function bearer(verify) {
  return async (req, res, next) => {
    const [scheme, token] = (req.headers.authorization || '').split(' ');
    try {
      if (scheme !== 'Bearer' || !token) throw new Error('no bearer token');
      req.auth = await verify(token);
      next();
    } catch {
      res
        .status(401)
        .set('WWW-Authenticate', 'Bearer error="invalid_token"')
        .json({ error: 'invalid_token' });
    }
  };
}

// -- revocation: RFC 7662 token introspection -----------------------------------------------
// POST /oauth/introspect (docs/backend.md, "Revoked tokens: introspection"). Call it where a
// revoked session must be refused at once (payments, account changes); elsewhere an access
// token lives at most AUTH_ACCESS_TTL (30 min) anyway.
//
// The caller is an OAuth client holding the scope `introspect` (`wxauth-admin client create
// --scopes introspect`), HTTP Basic as in RFC 6749 section 2.3.1; the answer is
// {"active": false} for any token that is not good now (expired, a revoked or ended session,
// anything else), else {"active": true, "sub", "sid", "exp", "client_id", ...}: its claims.
/**
 * @param {string} token an access token
 * @param {{introspectionEndpoint: string, clientId: string, clientSecret: string}} client
 * @returns {Promise<{active: boolean} & Record<string, unknown>>}
 */
export async function introspect(token, { introspectionEndpoint, clientId, clientSecret }) {
  const basic = Buffer.from(
    `${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`
  ).toString('base64');
  const res = await fetch(introspectionEndpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${basic}`,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    },
    body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
  });
  if (res.status !== 200) throw new Error(`introspection answered HTTP ${res.status}`);
  const answer = await res.json();
  if (typeof answer.active !== 'boolean') throw new Error('introspection answered no "active"');
  return answer;
}
