// The recipe against the real local server (python -m devserver from .venv, embedded DynamoDB,
// fake WeChat): a token it issued is accepted; expired (jose's currentDate: no sleeping), for
// another audience or issuer, of another type, or signed by another key, it is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, decodeJwt } from 'jose';
import { createVerifier, bearer } from './verify.mjs';

const require = createRequire(import.meta.url);
const { startWxauth } = require('../../../clients/miniprogram/test-support/server.js');

let server;
let issuer;
let jwksUri;

before(async () => {
  server = await startWxauth();
  issuer = (await (await fetch(`${server.baseURL}/.well-known/openid-configuration`)).json()).issuer;
  jwksUri = `${server.baseURL}/.well-known/jwks.json`; // 127.0.0.1: the issuer says localhost
});

after(async () => {
  if (server) await server.stop();
});

let users = 0;
async function login() {
  users += 1;
  const code = `verify-node-${process.pid}-${users}.1`;
  const res = await fetch(`${server.baseURL}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

test('a token wxauth issued is accepted; its claims come back', async () => {
  const { access_token: token, user } = await login();
  const claims = await createVerifier({ issuer, audience: 'wxauth', jwksUri })(token);
  assert.equal(claims.sub, user.id);
  assert.equal(claims.iss, issuer);
  assert.equal(claims.aud, 'wxauth');
  assert.ok(claims.sid && claims.jti && claims.client_id);
});

test('an expired token is refused (verified as of just past exp plus the tolerance)', async () => {
  const { access_token: token } = await login();
  const { exp } = decodeJwt(token);
  const verify = createVerifier({ issuer, audience: 'wxauth', jwksUri, clockTolerance: 60 });
  // Inside the tolerance it still passes; past it, it does not.
  assert.ok(await verify(token, { currentDate: new Date((exp + 59) * 1000) }));
  await assert.rejects(verify(token, { currentDate: new Date((exp + 61) * 1000) }), {
    code: 'ERR_JWT_EXPIRED',
  });
});

test('a token for another audience, or from another issuer, is refused', async () => {
  const { access_token: token } = await login();
  await assert.rejects(createVerifier({ issuer, audience: 'another-api', jwksUri })(token), {
    code: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
    claim: 'aud',
  });
  await assert.rejects(
    createVerifier({ issuer: 'https://auth.elsewhere.example', audience: 'wxauth', jwksUri })(token),
    { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'iss' }
  );
});

test('a JWT of another type, or signed by a key the JWKS does not have, is refused', async () => {
  const { access_token: token } = await login();
  const claims = decodeJwt(token);
  const verify = createVerifier({ issuer, audience: 'wxauth', jwksUri });
  // The server's own key, but typ JWT (an ID token, say): not an access token.
  const idToken = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: server.key.kid, typ: 'JWT' })
    .sign(server.key.privateKey);
  await assert.rejects(verify(idToken), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'typ' });
  // Everything right but the key: a forgery under the server's kid.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const forged = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: server.key.kid, typ: 'at+jwt' })
    .sign(privateKey);
  await assert.rejects(verify(forged), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
});

test('the Express middleware sets req.auth, or answers 401 invalid_token', async () => {
  const { access_token: token, user } = await login();
  const middleware = bearer(createVerifier({ issuer, audience: 'wxauth', jwksUri }));
  const response = () => {
    const res = { headers: {}, code: null, body: null };
    res.status = (c) => ((res.code = c), res);
    res.set = (k, v) => ((res.headers[k] = v), res);
    res.json = (b) => ((res.body = b), res);
    return res;
  };
  const req = { headers: { authorization: `Bearer ${token}` } };
  let nextCalled = false;
  await middleware(req, response(), () => (nextCalled = true));
  assert.equal(nextCalled, true);
  assert.equal(req.auth.sub, user.id);

  const refused = response();
  await middleware({ headers: { authorization: 'Bearer not.a.token' } }, refused, () => {
    throw new Error('next() for a bad token');
  });
  assert.equal(refused.code, 401);
  assert.equal(refused.headers['WWW-Authenticate'], 'Bearer error="invalid_token"');
});
