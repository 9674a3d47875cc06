// The recipe against the real local server (python -m devserver from .venv on DynamoDB Local,
// fake WeChat): a token it issued is accepted; expired (jose's currentDate: no sleeping), for
// another audience or issuer, of another type, or signed by another key, it is refused; and
// once its session is logged out, introspection (RFC 7662) answers active: false, for an OAuth
// client made with `wxauth-admin client create --scopes introspect` on the server's table.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import { SignJWT, decodeJwt } from 'jose';
import { createVerifier, bearer, introspect } from './verify.mjs';

const require = createRequire(import.meta.url);
const { startDynamoDBLocal, startWxauth, REPO_ROOT } = require(
  '../../../clients/miniprogram/test-support/server.js'
);

let dynamodb;
let server;
let issuer;
let jwksUri;

before(async () => {
  dynamodb = await startDynamoDBLocal();
  server = await startWxauth({ dynamodbEndpoint: dynamodb.endpoint });
  issuer = (await (await fetch(`${server.baseURL}/.well-known/openid-configuration`)).json()).issuer;
  jwksUri = `${server.baseURL}/.well-known/jwks.json`; // 127.0.0.1: the issuer says localhost
});

after(async () => {
  if (server) await server.stop();
  if (dynamodb) await dynamodb.stop();
});

/** `wxauth-admin client create --scopes ...` on the server's table: {clientId, clientSecret}. */
function createClient(scopes) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(AUTH_|WECHAT_|AWS_)/.test(name))
  );
  Object.assign(env, {
    AWS_ENDPOINT_URL_DYNAMODB: dynamodb.endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_DEFAULT_REGION: 'us-east-1',
    AUTH_TABLE_NAME: server.tableName,
  });
  const python = path.join(REPO_ROOT, '.venv', 'bin', 'python');
  const args = ['-m', 'chalicelib.admin', 'client', 'create', '--scopes', scopes];
  const result = spawnSync(python, args, { cwd: REPO_ROOT, env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 0, result.stderr);
  const created = JSON.parse(result.stdout);
  return { clientId: created.client_id, clientSecret: created.client_secret };
}

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

test('a token of a logged-out session is still valid locally, inactive by introspection', async () => {
  const discovery = await (await fetch(`${server.baseURL}/.well-known/openid-configuration`)).json();
  assert.equal(discovery.introspection_endpoint, `${issuer}/oauth/introspect`);
  const client = {
    introspectionEndpoint: `${server.baseURL}/oauth/introspect`, // 127.0.0.1, as jwksUri
    ...createClient('introspect'),
  };
  const { access_token: token, user } = await login();

  const active = await introspect(token, client);
  assert.equal(active.active, true);
  assert.equal(active.sub, user.id);
  assert.equal(active.sid, decodeJwt(token).sid);
  assert.equal(active.token_type, 'Bearer');

  const logout = await fetch(`${server.baseURL}/auth/logout`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(logout.status, 204);
  // A local check cannot know: the signature and exp are still good.
  assert.equal((await createVerifier({ issuer, audience: 'wxauth', jwksUri })(token)).sub, user.id);
  assert.deepEqual(await introspect(token, client), { active: false });

  // A wrong secret is refused outright, not answered "inactive".
  await assert.rejects(introspect(token, { ...client, clientSecret: 'wrong' }), /HTTP 401/);
});
