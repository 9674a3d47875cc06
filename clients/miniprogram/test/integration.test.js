'use strict';
// The client against the real wxauth local server (python -m devserver) on AWS's DynamoDB
// Local, through a fake `wx` whose wx.request is real HTTP. The client's clock is injected and
// starts in 2001: nothing here sleeps for an expiry, and the phone's clock never has to agree
// with the server's.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { createAuthClient, wxAdapter, WxAuthError, DEFAULT_STORAGE_KEY } = require('..');
const { createFakeWx, createClock } = require('../test-support/fake-wx.js');
const {
  startDynamoDBLocal,
  startWxauth,
  signAccessToken,
  decodeClaims,
} = require('../test-support/server.js');

const ACCESS_TTL_MS = 1800 * 1000; // the server's AUTH_ACCESS_TTL, set by startWxauth
let ddb = null;
let server = null;
const fakes = [];

before(async () => {
  ddb = await startDynamoDBLocal();
  server = await startWxauth({ dynamodbEndpoint: ddb.endpoint });
});

after(async () => {
  for (const fake of fakes) fake.close();
  if (server) await server.stop();
  if (ddb) await ddb.stop();
});

function setup(options = {}) {
  const fake = createFakeWx(options);
  fakes.push(fake);
  const clock = options.clock || createClock();
  const client = newClient(fake, clock);
  return { fake, clock, client };
}

function newClient(fake, clock, extra = {}) {
  return createAuthClient({
    baseURL: server.baseURL,
    adapter: wxAdapter(fake.wx),
    now: clock.now,
    ...extra,
  });
}

function stored(fake) {
  return JSON.parse(fake.storage[DEFAULT_STORAGE_KEY]);
}

async function post(path, body) {
  const res = await fetch(server.baseURL + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** An access token like `real` (same claims, same key, kid and typ) that expired an hour
 * ago by the server's clock. */
function expiredLike(real) {
  const claims = decodeClaims(real);
  const now = Math.floor(Date.now() / 1000);
  return signAccessToken(
    { ...claims, iat: now - 3600, exp: now - 1800, jti: `expired-${now}-${Math.random()}` },
    server.key
  );
}

function authorization(sent) {
  return sent.header.Authorization;
}

test('20 concurrent requests on an access token the server rejects: one refresh, all succeed', async () => {
  const { fake, clock, client } = setup();
  const user = await client.login();
  const real = stored(fake);
  const expired = expiredLike(real.access_token);
  // The server really rejects it...
  const check = await post('/auth/verify', { token: expired });
  assert.deepEqual(check.body, { valid: false, reason: 'expired' });
  // ...while the client still believes it has 30 minutes left.
  fake.storage[DEFAULT_STORAGE_KEY] = JSON.stringify({ ...real, access_token: expired });
  assert.ok(real.access_expires_at > clock.now() + 60_000);
  const app = newClient(fake, clock);
  fake.reset();

  const results = await Promise.all(Array.from({ length: 20 }, () => app.request({ url: '/me' })));

  for (const res of results) {
    assert.equal(res.statusCode, 200);
    assert.equal(res.data.id, user.id);
  }
  assert.equal(fake.count('/auth/refresh'), 1);
  assert.equal(fake.count('/auth/login'), 0);
  assert.equal(fake.wxLoginCalls, 0);
  const me = fake.sent.filter((s) => s.path === '/me');
  assert.equal(me.length, 40, 'each request sent once with the old token, replayed once');
  const rejected = me.filter((s) => s.response.statusCode === 401);
  assert.equal(rejected.length, 20);
  for (const s of rejected) {
    assert.equal(authorization(s), `Bearer ${expired}`);
    assert.equal(s.response.data.error, 'invalid_token');
  }
  const now = stored(fake);
  assert.notEqual(now.access_token, expired);
  assert.notEqual(now.refresh_token, real.refresh_token);
  assert.equal(now.refresh_token, fake.responses('/auth/refresh')[0].data.refresh_token);
  for (const s of me.filter((x) => x.response.statusCode === 200)) {
    assert.equal(authorization(s), `Bearer ${now.access_token}`);
  }
});

test('proactive refresh: inside the margin, exactly one refresh, before the requests go out', async () => {
  const { fake, clock, client } = setup();
  await client.login();
  const first = stored(fake);
  // Expiry is on the client's clock from the answer's arrival, not the JWT's exp (2001 vs now).
  assert.equal(first.access_expires_at, clock.now() + ACCESS_TTL_MS);
  assert.ok(decodeClaims(first.access_token).exp * 1000 > first.access_expires_at + 1e11);

  clock.advance(ACCESS_TTL_MS - 120_000); // 2 min left: outside the 60 s margin
  fake.reset();
  assert.equal((await client.request({ url: '/me' })).statusCode, 200);
  assert.equal(fake.count('/auth/refresh'), 0);

  clock.advance(90_000); // 30 s left
  fake.reset();
  const results = await Promise.all(Array.from({ length: 5 }, () => client.request({ url: '/me' })));
  assert.deepEqual(
    results.map((r) => r.statusCode),
    [200, 200, 200, 200, 200]
  );
  assert.deepEqual(
    fake.sent.map((s) => s.path),
    ['/auth/refresh', '/me', '/me', '/me', '/me', '/me']
  );
  const second = stored(fake);
  assert.notEqual(second.access_token, first.access_token);
  assert.equal(second.access_expires_at, clock.now() + ACCESS_TTL_MS);
  for (const s of fake.sent.slice(1)) assert.equal(authorization(s), `Bearer ${second.access_token}`);
});

test('refresh answered invalid_grant (bogus refresh token): one login, then success', async () => {
  const { fake, clock, client } = setup();
  const user = await client.login();
  const real = stored(fake);
  fake.storage[DEFAULT_STORAGE_KEY] = JSON.stringify({
    ...real,
    refresh_token: 'bogus.refresh.token',
    access_expires_at: clock.now() - 1, // expired on the client: refresh first
  });
  fake.reset();

  const res = await client.request({ url: '/me' });

  assert.equal(res.statusCode, 200);
  assert.equal(res.data.id, user.id);
  assert.deepEqual(
    fake.sent.map((s) => [s.path, s.response.statusCode]),
    [
      ['/auth/refresh', 400],
      ['/auth/login', 200],
      ['/me', 200],
    ]
  );
  assert.equal(fake.responses('/auth/refresh')[0].data.error, 'invalid_grant');
  assert.equal(fake.wxLoginCalls, 1);
  assert.notEqual(stored(fake).refresh_token, 'bogus.refresh.token');
});

test('session revoked by a logout from another copy of the tokens: 401, invalid_grant, one login, replay', async () => {
  const { fake, clock, client } = setup();
  const user = await client.login();
  const other = createFakeWx({ storage: { ...fake.storage }, user: fake.user });
  fakes.push(other);
  assert.deepEqual(await newClient(other, clock).logout(), { revoked: true });
  fake.reset();

  const res = await client.request({ url: '/me' });

  assert.equal(res.statusCode, 200);
  assert.equal(res.data.id, user.id, 'the same WeChat user logs in again');
  assert.deepEqual(
    fake.sent.map((s) => [s.path, s.response.statusCode]),
    [
      ['/me', 401],
      ['/auth/refresh', 400],
      ['/auth/login', 200],
      ['/me', 200],
    ]
  );
  assert.equal(fake.wxLoginCalls, 1);
});

test('refresh and re-login both failing: one clear error, no loop', async () => {
  const { fake, clock, client } = setup();
  await client.login();
  fake.storage[DEFAULT_STORAGE_KEY] = JSON.stringify({
    ...stored(fake),
    refresh_token: 'bogus.refresh.token',
    access_expires_at: clock.now() - 1,
  });
  fake.code = () => 'err-40029'; // WeChat rejects every code from now on
  fake.reset();

  await assert.rejects(client.request({ url: '/me' }), (error) => {
    assert.ok(error instanceof WxAuthError);
    assert.ok(error instanceof Error);
    assert.equal(error.code, 'login_failed');
    assert.equal(error.status, 400);
    assert.equal(error.serverError, 'invalid_grant');
    return true;
  });
  assert.equal(fake.count('/auth/refresh'), 1);
  assert.equal(fake.count('/auth/login'), 1);
  assert.equal(fake.wxLoginCalls, 1);
  assert.equal(fake.count('/me'), 0);

  // Every later request tries one login, and fails the same way: bounded, never a loop.
  await assert.rejects(client.request({ url: '/me' }), { code: 'login_failed' });
  assert.equal(fake.count('/auth/refresh'), 1);
  assert.equal(fake.count('/auth/login'), 2);
  assert.equal(fake.count('/me'), 0);
});

test('logout while a refresh is under way: old and new requests reject logged_out, nothing is resurrected', async () => {
  const { fake, clock, client } = setup();
  await client.login();
  clock.advance(ACCESS_TTL_MS - 10_000); // inside the margin: the next request refreshes
  const held = fake.hold('/auth/refresh');
  fake.reset();

  const before = assert.rejects(client.request({ url: '/me' }), {
    name: 'WxAuthError',
    code: 'logged_out',
  });
  const rotated = await held.arrived; // the server rotated; the client has not seen it yet
  assert.equal(rotated.statusCode, 200);
  const loggingOut = client.logout();
  // A request made while logout is under way.
  const during = assert.rejects(client.request({ url: '/me' }), { code: 'logged_out' });
  assert.equal(fake.storage[DEFAULT_STORAGE_KEY], JSON.stringify({ v: 1, logged_out: true }));
  assert.deepEqual(await loggingOut, { revoked: true });
  held.release();

  await before;
  await during;
  // The refresh's answer was not stored, and the session it belongs to is over.
  assert.deepEqual(stored(fake), { v: 1, logged_out: true });
  assert.equal(client.hasSession(), false);
  const late = await post('/auth/refresh', { refresh_token: rotated.data.refresh_token });
  assert.equal(late.status, 400);
  assert.equal(late.body.error, 'invalid_grant');

  // Logged out stays logged out (even after a restart) until the app calls login().
  await assert.rejects(client.request({ url: '/me' }), { code: 'logged_out' });
  await assert.rejects(newClient(fake, clock).request({ url: '/me' }), { code: 'logged_out' });
  assert.equal(fake.count('/me'), 0);
  assert.equal(fake.count('/auth/login'), 0);
  assert.equal(fake.wxLoginCalls, 0);

  await client.login();
  const res = await client.request({ url: '/me' });
  assert.equal(res.statusCode, 200);
});

test('logout offline clears storage and resolves; logout with an expired access token revokes by refresh token', async () => {
  const { fake, clock, client } = setup();
  await client.login();
  const kept = stored(fake);
  fake.offline = true;
  assert.deepEqual(await client.logout(), { revoked: false });
  assert.deepEqual(stored(fake), { v: 1, logged_out: true });
  fake.offline = false;
  // (The server session was not told; only its refresh token could revive it, and it is gone
  // from the phone.)
  assert.equal((await post('/auth/verify', { token: kept.access_token })).body.valid, true);

  await client.login();
  const real = stored(fake);
  fake.storage[DEFAULT_STORAGE_KEY] = JSON.stringify({
    ...real,
    access_token: expiredLike(real.access_token),
  });
  fake.reset();
  assert.deepEqual(await newClient(fake, clock).logout(), { revoked: true });
  assert.deepEqual(
    fake.sent.map((s) => [s.path, s.response.statusCode]),
    [
      ['/auth/logout', 401],
      ['/oauth/revoke', 200],
    ]
  );
  const dead = await post('/auth/refresh', { refresh_token: real.refresh_token });
  assert.equal(dead.body.error, 'invalid_grant');
  assert.deepEqual(await post('/auth/verify', { token: real.access_token }).then((r) => r.body), {
    valid: false,
    reason: 'revoked',
  });
});

test('a lost refresh response is retried with the same token: same session, still working after', async () => {
  const { fake, clock, client } = setup();
  const user = await client.login();
  const first = stored(fake);
  clock.advance(ACCESS_TTL_MS - 10_000);
  fake.loseNext('/auth/refresh');
  fake.reset();

  const res = await client.request({ url: '/me' });

  assert.equal(res.statusCode, 200);
  assert.equal(res.data.id, user.id);
  const refreshes = fake.sent.filter((s) => s.path === '/auth/refresh');
  assert.equal(refreshes.length, 2);
  assert.equal(refreshes[0].lost, true);
  assert.deepEqual(refreshes[0].data, { refresh_token: first.refresh_token });
  assert.deepEqual(refreshes[1].data, { refresh_token: first.refresh_token });
  // The server's grace window answered the retry with the same new refresh token.
  assert.equal(refreshes[1].response.statusCode, 200);
  assert.equal(refreshes[1].response.data.refresh_token, refreshes[0].response.data.refresh_token);
  const second = stored(fake);
  assert.equal(second.refresh_token, refreshes[0].response.data.refresh_token);
  assert.equal(fake.wxLoginCalls, 0);

  // The session keeps working: the next refresh rotates normally, no login, no reuse alarm.
  clock.advance(ACCESS_TTL_MS);
  fake.reset();
  const later = await client.request({ url: '/me' });
  assert.equal(later.statusCode, 200);
  assert.deepEqual(
    fake.sent.map((s) => [s.path, s.response.statusCode]),
    [
      ['/auth/refresh', 200],
      ['/me', 200],
    ]
  );
  assert.notEqual(stored(fake).refresh_token, second.refresh_token);
  assert.equal(decodeClaims(stored(fake).access_token).sid, decodeClaims(first.access_token).sid);
});

test('an app restart (new client, same storage) uses the stored tokens: no login', async () => {
  const { fake, clock, client } = setup();
  const user = await client.login();
  await client.request({ url: '/me' });
  const raw = fake.storage[DEFAULT_STORAGE_KEY];
  assert.deepEqual(Object.keys(fake.storage), [DEFAULT_STORAGE_KEY]);
  assert.equal(JSON.parse(raw).v, 1);
  fake.reset();

  const restarted = newClient(fake, clock);
  assert.deepEqual(restarted.getUser(), user);
  const res = await restarted.request({ url: '/me' });

  assert.equal(res.statusCode, 200);
  assert.equal(res.data.id, user.id);
  assert.deepEqual(
    fake.sent.map((s) => s.path),
    ['/me']
  );
  assert.equal(fake.wxLoginCalls, 0);
  assert.equal(fake.storage[DEFAULT_STORAGE_KEY], raw);
});

test('no tokens yet: the first request logs in; 10 concurrent first requests log in once', async () => {
  const { fake, client } = setup();
  const results = await Promise.all(Array.from({ length: 10 }, () => client.request({ url: '/me' })));
  assert.ok(results.every((r) => r.statusCode === 200));
  assert.equal(new Set(results.map((r) => r.data.id)).size, 1);
  assert.equal(fake.wxLoginCalls, 1);
  assert.equal(fake.count('/auth/login'), 1);
  assert.equal(client.getUser().is_new, true);
});

test('public routes are sent without a token and without logging in', async () => {
  const { fake, clock } = setup();
  const client = newClient(fake, clock, { publicRoutes: ['/.well-known/*'] });
  const res = await client.request({ url: '/.well-known/jwks.json' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.data.keys[0].kid, server.key.kid);
  assert.equal(fake.sent.length, 1);
  assert.equal(authorization(fake.sent[0]), undefined);
  assert.equal(fake.wxLoginCalls, 0);
});

// -- appid and getAccessToken() against the server -------------------------------------------

const SERVER_APPID = 'wx-local-appid'; // the devserver's WECHAT_APPID (startWxauth sets none)

test("appid: the deployment's appid logs in; an appid that is no app of it is login_failed", async () => {
  const { fake, clock } = setup();
  const client = newClient(fake, clock, { appid: SERVER_APPID });
  const user = await client.login();
  const [sent] = fake.sent.filter((s) => s.path === '/auth/login');
  assert.equal(sent.data.appid, SERVER_APPID);
  const me = await client.request({ url: '/me' });
  assert.equal(me.statusCode, 200);
  assert.equal(me.data.id, user.id);
  assert.equal(me.data.appid, SERVER_APPID);

  const other = setup();
  const stranger = newClient(other.fake, other.clock, { appid: 'wx-not-an-app-here' });
  await assert.rejects(stranger.login(), {
    name: 'WxAuthError',
    code: 'login_failed',
    status: 400,
    serverError: 'invalid_request',
  });
  assert.equal(stranger.hasSession(), false);
});

test('getAccessToken(): a token the server accepts, refreshed first inside the margin', async () => {
  const { fake, clock, client } = setup();
  const first = await client.getAccessToken(); // no tokens yet: one login
  assert.equal(fake.count('/auth/login'), 1);
  let verified = await post('/auth/verify', { token: first });
  assert.equal(verified.body.valid, true);
  assert.equal(await client.getAccessToken(), first); // still valid: no request
  assert.equal(fake.sent.length, 1);

  clock.advance(ACCESS_TTL_MS - 30_000); // 30 s left on the client's clock
  fake.reset();
  const [a, b] = await Promise.all([client.getAccessToken(), client.getAccessToken()]);
  assert.equal(a, b);
  assert.notEqual(a, first);
  assert.equal(fake.count('/auth/refresh'), 1);
  verified = await post('/auth/verify', { token: a });
  assert.equal(verified.body.valid, true);
  assert.equal(stored(fake).access_token, a);
});

test('AUTH_MAX_SESSIONS_PER_USER=1: a login on a second device ends the first, which is told why and does not log in by itself', async () => {
  const capped = await startWxauth({
    dynamodbEndpoint: ddb.endpoint,
    env: { AUTH_MAX_SESSIONS_PER_USER: '1' },
  });
  try {
    const clock = createClock();
    const phoneWx = createFakeWx();
    const laptopWx = createFakeWx({ user: phoneWx.user });
    let laptopCodes = 0;
    laptopWx.code = () => `${laptopWx.user}.laptop${++laptopCodes}`; // not the phone's codes
    fakes.push(phoneWx, laptopWx);
    const open = (fake) =>
      createAuthClient({ baseURL: capped.baseURL, adapter: wxAdapter(fake.wx), now: clock.now });
    const phone = open(phoneWx);
    const laptop = open(laptopWx);
    const user = await phone.login();
    assert.equal((await laptop.login()).id, user.id);
    phoneWx.reset();

    await assert.rejects(phone.request({ url: '/me' }), { code: 'session_evicted' });
    assert.deepEqual(
      phoneWx.sent.map((s) => [s.path, s.response.statusCode]),
      [
        ['/me', 401],
        ['/auth/refresh', 400],
      ]
    );
    assert.equal(phoneWx.responses('/auth/refresh')[0].data.reason, 'session_evicted');
    assert.equal(phoneWx.wxLoginCalls, 0);
    assert.equal(phone.isLoggedOut(), true);

    const listed = await laptop.listSessions();
    assert.deepEqual(listed.map((s) => s.current), [true]);
    // the user signs in on the phone again: now the laptop's session is the one ended
    await phone.login();
    assert.equal((await phone.request({ url: '/me' })).statusCode, 200);
    await assert.rejects(laptop.request({ url: '/me' }), { code: 'session_evicted' });
  } finally {
    await capped.stop();
  }
});

test('scan-to-login: the mini-program looks a device login up, confirms it once, and the device gets its session', async () => {
  const { client } = setup();
  const start = await fetch(server.baseURL + '/oauth/device_authorization', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'SmartTV/1.0' },
    body: new URLSearchParams({ client_id: SERVER_APPID }),
  });
  assert.equal(start.status, 200);
  const device = await start.json();

  const user = await client.login();
  const shown = await client.getDeviceLogin(device.user_code);
  assert.equal(shown.status, 'pending');
  assert.equal(shown.client_id, SERVER_APPID);
  assert.equal(shown.user_agent, 'SmartTV/1.0');
  assert.equal(await client.getDeviceLogin('BCDF-GHJK'), null);

  const confirmed = await client.confirmDeviceLogin(device.user_code);
  assert.equal(confirmed.ok, true);
  assert.equal(confirmed.login.status, 'confirmed');
  assert.deepEqual(await client.confirmDeviceLogin(device.user_code), { ok: false, reason: 'decided', login: null });
  assert.deepEqual(await client.denyDeviceLogin(device.user_code), { ok: false, reason: 'decided', login: null });

  const polled = await fetch(server.baseURL + '/oauth/token', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      device_code: device.device_code,
      client_id: SERVER_APPID,
    }),
  });
  assert.equal(polled.status, 200);
  const tokens = await polled.json();
  assert.equal(decodeClaims(tokens.access_token).sub, user.id);
});
