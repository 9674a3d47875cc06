'use strict';
// Fast unit tests: the client against a scripted adapter (no server, no network).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const wxauth = require('..');
const { createAuthClient, wxAdapter, uniAdapter, taroAdapter, WxAuthError } = wxauth;

const KEY = wxauth.DEFAULT_STORAGE_KEY;
const BASE = 'https://auth.example.com/api';
const TTL = 1800;

function tokens(n, extra = {}) {
  return {
    statusCode: 200,
    header: {},
    data: {
      access_token: `at${n}`,
      token_type: 'Bearer',
      expires_in: TTL,
      refresh_token: `rt${n}`,
      refresh_expires_in: 86400,
      ...extra,
    },
  };
}

function answer(statusCode, data, header = {}) {
  return { statusCode, data, header };
}

const FAIL = Symbol('fail');

/** An adapter whose requests are answered by `handler(call)` (an answer, FAIL for a network
 * failure, or a promise of either), and whose wx.login yields c1, c2, ... */
function scripted(handler, { storage = {}, clock } = {}) {
  const t = {
    calls: [],
    logins: 0,
    storage,
    clock: clock || { t: 1_000_000, now: () => t.clock.t },
    paths: () => t.calls.map((c) => c.url.replace(BASE, '')),
    adapter: {
      request(o) {
        t.calls.push(o);
        Promise.resolve()
          .then(() => handler(o, t))
          .then((a) => {
            if (a === FAIL) o.fail({ errMsg: 'request:fail timeout' });
            else o.success(a);
          });
      },
      login({ success }) {
        t.logins += 1;
        const code = `c${t.logins}`;
        setImmediate(() => success({ code }));
      },
      getStorageSync: (k) => (k in t.storage ? t.storage[k] : ''),
      setStorageSync: (k, v) => {
        t.storage[k] = v;
      },
      removeStorageSync: (k) => {
        delete t.storage[k];
      },
    },
  };
  t.client = (extra = {}) =>
    createAuthClient({ baseURL: BASE, adapter: t.adapter, now: t.clock.now, ...extra });
  return t;
}

function route(c) {
  return c.url.replace(BASE, '');
}

const NONCE_RE = /^[0-9a-f]{64}$/;

/** A login body without its login_nonce (checked: 64 hex digits), to compare the rest. */
function withoutNonce(data) {
  assert.match(data.login_nonce, NONCE_RE);
  const { login_nonce: _nonce, ...rest } = data;
  return rest;
}

function session(n, clockMs, overrides = {}) {
  return JSON.stringify({
    v: 1,
    access_token: `at${n}`,
    access_expires_at: clockMs + TTL * 1000,
    refresh_token: `rt${n}`,
    refresh_expires_at: clockMs + 86400 * 1000,
    user: { id: 'u1', is_new: false },
    ...overrides,
  });
}

/** A server: login gives tokens 1, refresh of rtN gives N+1, /api answers 200 for the
 * current access token and 401 invalid_token otherwise. */
function server(state = { n: 0 }) {
  return (o) => {
    const p = route(o);
    if (p === '/auth/login') {
      state.n += 1;
      return tokens(state.n, { user: { id: 'u1', is_new: state.n === 1 } });
    }
    if (p === '/auth/refresh') {
      if (o.data.refresh_token !== `rt${state.n}`) return answer(400, { error: 'invalid_grant' });
      state.n += 1;
      return tokens(state.n);
    }
    if (p === '/auth/logout') return answer(204, '');
    if (o.header.Authorization === `Bearer at${state.n}`) return answer(200, { ok: true });
    return answer(401, { error: 'invalid_token', error_description: 'expired' });
  };
}

test('concurrent login() calls share one wx.login and one POST', async () => {
  const t = scripted(server());
  const client = t.client();
  const users = await Promise.all(Array.from({ length: 10 }, () => client.login()));
  assert.equal(t.logins, 1);
  assert.deepEqual(t.paths(), ['/auth/login']);
  assert.deepEqual(withoutNonce(t.calls[0].data), { code: 'c1' });
  assert.equal(t.calls[0].header['content-type'], 'application/json');
  for (const u of users) assert.deepEqual(u, { id: 'u1', is_new: true });
});

test('expiry counts from when the answer arrived, on the client clock', async () => {
  const t = scripted((o, t) => {
    t.clock.t += 5000; // a slow network
    return tokens(1);
  });
  const client = t.client();
  const sentAt = t.clock.t;
  await client.login();
  const stored = JSON.parse(t.storage[KEY]);
  assert.equal(stored.access_expires_at, sentAt + 5000 + TTL * 1000);
  assert.equal(stored.refresh_expires_at, sentAt + 5000 + 86400 * 1000);
});

test('a refresh that fails on the network is retried once with the same token, then rejects network_error', async () => {
  const t = scripted((o) => (route(o) === '/auth/refresh' ? FAIL : answer(200, {})));
  const raw = session(1, t.clock.t, { access_expires_at: t.clock.t - 1 });
  t.storage[KEY] = raw;
  const client = t.client();
  await assert.rejects(client.request({ url: '/api' }), (e) => {
    assert.ok(e instanceof WxAuthError);
    assert.equal(e.code, 'network_error');
    return true;
  });
  assert.deepEqual(t.paths(), ['/auth/refresh', '/auth/refresh']);
  assert.deepEqual(
    t.calls.map((c) => c.data.refresh_token),
    ['rt1', 'rt1']
  );
  assert.equal(t.logins, 0);
  assert.equal(t.storage[KEY], raw, 'offline never logs the user out');
});

test('a proactive refresh that fails offline still sends the request with the unexpired token', async () => {
  const t = scripted((o) => (route(o) === '/auth/refresh' ? FAIL : answer(200, { ok: 1 })));
  t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t + 30_000 });
  const res = await t.client().request({ url: '/api' });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(t.paths(), ['/auth/refresh', '/auth/refresh', '/api']);
  assert.equal(t.calls[2].header.Authorization, 'Bearer at1');
});

test('a second 401 after the replay rejects invalid_token: one refresh, one replay, no loop', async () => {
  const t = scripted((o) =>
    route(o) === '/auth/refresh' ? tokens(2) : answer(401, { error: 'invalid_token' })
  );
  t.storage[KEY] = session(1, t.clock.t);
  await assert.rejects(t.client().request({ url: '/api' }), {
    name: 'WxAuthError',
    code: 'invalid_token',
    status: 401,
  });
  assert.deepEqual(t.paths(), ['/api', '/auth/refresh', '/api']);
  assert.equal(t.calls[2].header.Authorization, 'Bearer at2');
});

test('a 401 without invalid_token is an answer, not a reason to refresh', async () => {
  const t = scripted(() => answer(401, { error: 'something_else' }));
  t.storage[KEY] = session(1, t.clock.t);
  const res = await t.client().request({ url: '/api' });
  assert.equal(res.statusCode, 401);
  assert.deepEqual(t.paths(), ['/api']);
});

test("API Gateway's JWT authorizer 401 (WWW-Authenticate invalid_token) refreshes and replays", async () => {
  const t = scripted((o) => {
    if (route(o) === '/auth/refresh') return tokens(2);
    if ((o.header || {}).Authorization === 'Bearer at2') return answer(200, { ok: 1 });
    return answer(401, { message: 'Unauthorized' }, {
      'www-authenticate': 'Bearer error="invalid_token" error_description="the token has expired"',
    });
  });
  t.storage[KEY] = session(1, t.clock.t);
  const res = await t.client().request({ url: 'https://api.example.com/items', method: 'post' });
  // An absolute URL outside baseURL/apiBaseURL never gets the token:
  assert.equal(t.calls[0].header, undefined);
  assert.equal(res.statusCode, 401);

  const t2 = scripted((o) => {
    if (route(o) === '/auth/refresh') return tokens(2);
    if (o.header.Authorization === 'Bearer at2') return answer(200, { ok: 1 });
    return answer(401, { message: 'Unauthorized' }, {
      'WWW-Authenticate': 'Bearer error="invalid_token"',
    });
  });
  t2.storage[KEY] = session(1, t2.clock.t);
  const client = t2.client({ apiBaseURL: 'https://api.example.com/v1' });
  const ok = await client.request({ url: '/items', method: 'post', data: { a: 1 } });
  assert.equal(ok.statusCode, 200);
  assert.deepEqual(
    t2.calls.map((c) => c.url),
    [
      'https://api.example.com/v1/items',
      `${BASE}/auth/refresh`,
      'https://api.example.com/v1/items',
    ]
  );
  assert.equal(t2.calls[2].method, 'POST');
  assert.deepEqual(t2.calls[2].data, { a: 1 });
});

test('refresh answered 503 rejects temporarily_unavailable with Retry-After and keeps the session', async () => {
  const t = scripted(() =>
    answer(503, { error: 'temporarily_unavailable' }, { 'Retry-After': '7' })
  );
  const raw = session(1, t.clock.t, { access_expires_at: t.clock.t - 1 });
  t.storage[KEY] = raw;
  await assert.rejects(t.client().request({ url: '/api' }), {
    code: 'temporarily_unavailable',
    status: 503,
    retryAfter: 7,
  });
  assert.deepEqual(t.paths(), ['/auth/refresh']);
  assert.equal(t.storage[KEY], raw);
  assert.equal(t.logins, 0);
});

test('a login whose answer is lost is retried once with the same code', async () => {
  let n = 0;
  const t = scripted(() => (++n === 1 ? FAIL : tokens(1, { user: { id: 'u1', is_new: true } })));
  await t.client().login();
  assert.deepEqual(
    t.calls.map((c) => withoutNonce(c.data)),
    [{ code: 'c1' }, { code: 'c1' }]
  );
  // the retry carries the same login_nonce: only the code's first caller gets its replay
  assert.equal(t.calls[0].data.login_nonce, t.calls[1].data.login_nonce);
  assert.equal(t.logins, 1);
});

test('each login sends a new login_nonce, from the adapter\'s getRandomValues when it has one', async () => {
  const t = scripted(server());
  const client = t.client();
  await client.login();
  await client.login();
  const [first, second] = t.calls.map((c) => c.data.login_nonce);
  assert.match(first, NONCE_RE);
  assert.notEqual(first, second); // a new code, a new nonce

  const asked = [];
  const w = scripted(server());
  w.adapter.getRandomValues = (o) => {
    asked.push(o.length);
    const bytes = new Uint8Array(o.length).map((_, i) => i);
    setImmediate(() => o.success({ randomValues: bytes.buffer }));
  };
  await w.client().login();
  assert.deepEqual(asked, [32]);
  assert.equal(w.calls[0].data.login_nonce, Array.from({ length: 32 }, (_, i) => ('0' + i.toString(16)).slice(-2)).join(''));

  const failing = scripted(server()); // getRandomValues failing, or answering junk: local source
  failing.adapter.getRandomValues = (o) => setImmediate(() => o.fail({ errMsg: 'no' }));
  await failing.client().login();
  assert.match(failing.calls[0].data.login_nonce, NONCE_RE);
  const junk = scripted(server());
  junk.adapter.getRandomValues = (o) => o.success({ randomValues: new ArrayBuffer(2) });
  await junk.client().login();
  assert.match(junk.calls[0].data.login_nonce, NONCE_RE);
});

test('wxAdapter passes wx.getRandomValues on when wx has it', () => {
  const base = { request() {}, login() {}, getStorageSync() {}, setStorageSync() {}, removeStorageSync() {} };
  assert.equal('getRandomValues' in wxAdapter(base), false);
  let asked = null;
  const adapter = wxAdapter({ ...base, getRandomValues: (o) => (asked = o) });
  const options = { length: 32 };
  adapter.getRandomValues(options);
  assert.equal(asked, options);
});

test('wx.login failing rejects login_failed', async () => {
  const t = scripted(() => tokens(1));
  t.adapter.login = ({ fail }) => setImmediate(() => fail({ errMsg: 'login:fail auth deny' }));
  await assert.rejects(t.client().request({ url: '/api' }), {
    code: 'login_failed',
    message: /auth deny/,
  });
  assert.equal(t.calls.length, 0);
});

test('public routes and auth:false go without a token and without logging in', async () => {
  const t = scripted(() => answer(200, {}));
  const client = t.client({
    publicRoutes: ['/exact', '/prefix/*', /^\/re\//, (p, m) => p === '/fn' && m === 'GET'],
  });
  for (const url of ['/exact?x=1', '/prefix/a/b', '/re/x', '/fn', `${BASE}/exact`]) {
    await client.request({ url });
  }
  await client.request({ url: '/private', auth: false });
  assert.equal(t.calls.length, 6);
  for (const c of t.calls) assert.equal((c.header || {}).Authorization, undefined);
  assert.equal(t.logins, 0);
  assert.equal(t.calls[0].url, `${BASE}/exact?x=1`);
  // Not public: '/exact/more', '/fn' with POST.
  const s = scripted(server({ n: 0 }));
  const c2 = s.client({ publicRoutes: ['/exact', (p, m) => p === '/fn' && m === 'GET'] });
  s.storage[KEY] = session(0, s.clock.t);
  await c2.request({ url: '/exact/more' });
  await c2.request({ url: '/fn', method: 'POST' });
  assert.deepEqual(
    s.calls.map((c) => c.header.Authorization),
    ['Bearer at0', 'Bearer at0']
  );
});

test('unreadable or other-version storage is ignored: the client logs in', async () => {
  for (const raw of ['{not json', JSON.stringify({ v: 2, access_token: 'x' }), 42]) {
    const t = scripted(server());
    t.storage[KEY] = raw;
    const res = await t.client().request({ url: '/api' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(t.paths(), ['/auth/login', '/api']);
  }
});

test('storage that throws on write: the client keeps working in memory', async () => {
  const t = scripted(server());
  t.adapter.setStorageSync = () => {
    throw new Error('setStorageSync:fail exceed storage max size');
  };
  const client = t.client();
  assert.equal((await client.request({ url: '/api' })).statusCode, 200);
  assert.equal((await client.request({ url: '/api' })).statusCode, 200);
  assert.deepEqual(t.paths(), ['/auth/login', '/api', '/api']);
});

test('a request on the wire when logout() is called rejects logged_out, even if answered 200', async () => {
  let release;
  const gate = new Promise((r) => (release = r));
  const t = scripted(async (o) => {
    if (route(o) === '/api') {
      await gate;
      return answer(200, { secret: 'old session data' });
    }
    return answer(204, '');
  });
  t.storage[KEY] = session(1, t.clock.t);
  const client = t.client();
  const pending = assert.rejects(client.request({ url: '/api' }), { code: 'logged_out' });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(await client.logout(), { revoked: true });
  release();
  await pending;
  assert.equal(t.calls[1].header.Authorization, 'Bearer at1');
});

test('logout without a session or with a failing server resolves; logged_out is sticky until login()', async () => {
  const t = scripted(() => answer(500, { error: 'server_error' }));
  const client = t.client();
  assert.deepEqual(await client.logout(), { revoked: false });
  assert.equal(t.calls.length, 0);
  assert.equal(client.isLoggedOut(), true);

  t.storage[KEY] = session(1, t.clock.t);
  const c2 = t.client();
  assert.deepEqual(await c2.logout({ all: true }), { revoked: false });
  assert.deepEqual(t.calls[0].data, { all: true });
  assert.equal(t.calls[0].header.Authorization, 'Bearer at1');
  assert.equal(t.client().isLoggedOut(), true, 'persisted: survives a restart');
  await assert.rejects(t.client().request({ url: '/api' }), { code: 'logged_out' });
  assert.equal(t.logins, 0);

  const t3 = scripted(server(), { storage: t.storage });
  const c3 = t3.client();
  await c3.login();
  assert.equal(c3.isLoggedOut(), false);
  assert.equal((await c3.request({ url: '/api' })).statusCode, 200);
});

test('a login started before logout() is discarded; a login() after it starts afresh', async () => {
  const t = scripted(server());
  const client = t.client();
  const first = assert.rejects(client.login(), { code: 'logged_out' });
  await client.logout();
  const user = await client.login();
  await first;
  assert.equal(t.logins, 2);
  assert.deepEqual(t.paths(), ['/auth/login']);
  assert.equal(user.id, 'u1');
  assert.equal(JSON.parse(t.storage[KEY]).access_token, 'at1');
});

test('a refresh token past its expiry is not sent: the client logs in', async () => {
  const t = scripted(server());
  t.storage[KEY] = session(9, t.clock.t, {
    access_expires_at: t.clock.t - 10,
    refresh_expires_at: t.clock.t - 5,
  });
  assert.equal((await t.client().request({ url: '/api' })).statusCode, 200);
  assert.deepEqual(t.paths(), ['/auth/login', '/api']);
});

test('refreshMargin is configurable (seconds)', async () => {
  const t = scripted(server({ n: 1 }));
  t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t + 200_000 });
  await t.client({ refreshMargin: 300 }).request({ url: '/api' });
  assert.deepEqual(t.paths(), ['/auth/refresh', '/api']);
});

test('adapters: wx/uni from the global or given object; Taro promise rejections are swallowed', async () => {
  const calls = [];
  const platform = (name) => ({
    request: (o) => {
      calls.push([name, o.url]);
      setImmediate(() => o.fail({ errMsg: 'request:fail' }));
      return Promise.reject(new Error('Taro-style rejected promise'));
    },
    login: (o) => setImmediate(() => o.success({ code: `${name}-code` })),
    getStorageSync: () => '',
    setStorageSync: () => {},
    removeStorageSync: () => {},
  });
  const unhandled = [];
  const onUnhandled = (e) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    globalThis.wx = platform('wx');
    globalThis.uni = platform('uni');
    const Taro = platform('taro');
    for (const adapter of [wxAdapter(), uniAdapter(), taroAdapter(Taro), taroAdapter({ default: Taro })]) {
      const client = createAuthClient({ baseURL: BASE, adapter, publicRoutes: ['/p'] });
      await assert.rejects(client.request({ url: '/p' }), { code: 'network_error' });
    }
    await new Promise((r) => setTimeout(r, 10));
  } finally {
    delete globalThis.wx;
    delete globalThis.uni;
    process.off('unhandledRejection', onUnhandled);
  }
  assert.deepEqual(
    calls.map((c) => c[0]),
    ['wx', 'uni', 'taro', 'taro']
  );
  assert.deepEqual(unhandled, []);
  assert.throws(() => wxAdapter(), /no wx object/);
  assert.throws(() => createAuthClient({ baseURL: BASE, adapter: {} }), TypeError);
  assert.throws(() => createAuthClient({ adapter: wxauth.fromPlatform(platform('x')) }), /baseURL/);
});

test('the ES module exports the same implementation', async () => {
  const esm = await import(pathToFileURL(path.join(__dirname, '..', 'index.mjs')).href);
  assert.equal(esm.createAuthClient, createAuthClient);
  assert.equal(esm.WxAuthError, WxAuthError);
  assert.equal(esm.default, wxauth);
  for (const name of Object.keys(wxauth)) assert.equal(esm[name], wxauth[name], name);
  const pkg = require('../package.json');
  assert.deepEqual(pkg.dependencies, undefined);
  assert.deepEqual(pkg.exports['.'].import, { types: './index.d.mts', default: './index.mjs' });
  assert.deepEqual(pkg.exports['.'].require, { types: './index.d.ts', default: './index.js' });
});

test('20 concurrent 401s share one refresh, and answers arriving after it reuse its token', async () => {
  const state = { n: 2 }; // the server is at token 2; the client holds token 1
  const base = server(state);
  let delayed = 0;
  const t = scripted(async (o) => {
    // Half of the 401s arrive only after the refresh has finished.
    if (route(o) === '/api' && o.header.Authorization === 'Bearer at1' && ++delayed % 2 === 0) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return base(o);
  });
  t.storage[KEY] = session(1, t.clock.t, { refresh_token: 'rt2' });
  const client = t.client();
  const results = await Promise.all(Array.from({ length: 20 }, () => client.request({ url: '/api' })));
  assert.ok(results.every((r) => r.statusCode === 200));
  assert.equal(t.paths().filter((p) => p === '/auth/refresh').length, 1);
  assert.equal(t.paths().filter((p) => p === '/api').length, 40);
});

test('requests joining a proactive refresh that fails offline all go out with the unexpired token', async () => {
  const t = scripted((o) => (route(o) === '/auth/refresh' ? FAIL : answer(200, { ok: 1 })));
  t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t + 30_000 });
  const client = t.client();
  const results = await Promise.all(Array.from({ length: 5 }, () => client.request({ url: '/api' })));
  assert.ok(results.every((r) => r.statusCode === 200));
  assert.equal(t.paths().filter((p) => p === '/auth/refresh').length, 2, 'one refresh, retried once');
  for (const c of t.calls.filter((c) => route(c) === '/api')) {
    assert.equal(c.header.Authorization, 'Bearer at1');
  }
});

test('logout() twice at once makes one server call; after a new login() it ends the new session', async () => {
  let release;
  const gate = new Promise((r) => (release = r));
  const t = scripted(async (o) => {
    if (route(o) === '/auth/logout') {
      await gate;
      return answer(204, '');
    }
    return tokens(2, { user: { id: 'u1', is_new: false } });
  });
  t.storage[KEY] = session(1, t.clock.t);
  const client = t.client();
  const a = client.logout();
  const b = client.logout();
  assert.equal(a, b);
  await client.login(); // while the first logout is still under way
  const c = client.logout();
  assert.notEqual(c, a);
  release();
  assert.deepEqual(await Promise.all([a, b, c]), [{ revoked: true }, { revoked: true }, { revoked: true }]);
  assert.deepEqual(
    t.calls.filter((x) => route(x) === '/auth/logout').map((x) => x.header.Authorization),
    ['Bearer at1', 'Bearer at2']
  );
  assert.equal(client.isLoggedOut(), true);
});

test('a login() that finishes while a refresh is on the wire wins: the refresh answer never replaces or clears its tokens', async () => {
  for (const refreshAnswer of [tokens(2), answer(400, { error: 'invalid_grant' })]) {
    let release;
    const gate = new Promise((r) => (release = r));
    const t = scripted(async (o) => {
      const p = route(o);
      if (p === '/auth/refresh') {
        await gate;
        return refreshAnswer;
      }
      if (p === '/auth/login') return tokens(5, { user: { id: 'u1', is_new: false } });
      return o.header.Authorization === 'Bearer at5' ? answer(200, { ok: 1 }) : answer(401, { error: 'invalid_token' });
    });
    t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t - 1 });
    const client = t.client();
    const pending = client.request({ url: '/api' }); // refresh with rt1 goes out and is held
    await client.login();
    release();
    const res = await pending;
    assert.equal(res.statusCode, 200);
    assert.deepEqual(t.paths(), ['/auth/refresh', '/auth/login', '/api'], refreshAnswer.statusCode);
    assert.equal(t.calls[2].header.Authorization, 'Bearer at5');
    assert.equal(t.logins, 1);
    assert.equal(JSON.parse(t.storage[KEY]).access_token, 'at5');
  }
});

test('an answer without a numeric statusCode rejects bad_response; a malformed token answer keeps its token out of the error', async () => {
  for (const broken of [undefined, { data: { ok: 1 } }, { status: 200, data: {} }]) {
    const t = scripted(() => broken);
    await assert.rejects(t.client().login(), { name: 'WxAuthError', code: 'bad_response' });
    t.storage[KEY] = session(1, t.clock.t);
    await assert.rejects(t.client().request({ url: '/api' }), { name: 'WxAuthError', code: 'bad_response' });
  }
  const t = scripted(() => answer(200, { access_token: 'live-secret-token', refresh_token: 'rt-secret' }));
  const error = await t.client().login().catch((e) => e);
  assert.equal(error.code, 'bad_response');
  const shown = require('node:util').inspect(error, { depth: 10 }) + JSON.stringify(error);
  assert.doesNotMatch(shown, /secret/);
});

test('stored tokens that are empty strings count as no session (the server would answer invalid_request forever)', async () => {
  for (const overrides of [{ refresh_token: '' }, { access_token: '' }]) {
    const base = server();
    const t = scripted((o) =>
      route(o) === '/auth/refresh' && !o.data.refresh_token ? answer(400, { error: 'invalid_request' }) : base(o)
    );
    t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t - 1, ...overrides });
    const res = await t.client().request({ url: '/api' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(t.paths(), ['/auth/login', '/api']);
  }
});

test('logout({all: true}) with an expired access token renews it once and still ends every session', async () => {
  const t = scripted(server({ n: 1 }));
  t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t - 1 });
  assert.deepEqual(await t.client().logout({ all: true }), { revoked: true });
  assert.deepEqual(t.paths(), ['/auth/refresh', '/auth/logout']);
  assert.deepEqual(t.calls[1].data, { all: true });
  assert.equal(t.calls[1].header.Authorization, 'Bearer at2');
  assert.deepEqual(JSON.parse(t.storage[KEY]), { v: 1, logged_out: true });
});

test('login sends the configured device label', async () => {
  const t = scripted(server());
  await t.client({ device: { name: 'my phone', platform: 'ios' } }).login();
  assert.deepEqual(withoutNonce(t.calls[0].data), {
    code: 'c1',
    device: { name: 'my phone', platform: 'ios' },
  });
  const t2 = scripted(server());
  await t2.client().login();
  assert.deepEqual(withoutNonce(t2.calls[0].data), { code: 'c1' });
});

test('listSessions() GETs /auth/sessions with the token and resolves the list', async () => {
  const listed = [{ id: 's1', current: true, created_at: 20 }, { id: 's2', current: false, created_at: 10 }];
  const base = server({ n: 1 });
  const t = scripted((o) =>
    route(o) === '/auth/sessions?limit=100' && o.header.Authorization === 'Bearer at1'
      ? answer(200, { sessions: listed, next_cursor: null })
      : base(o)
  );
  t.storage[KEY] = session(1, t.clock.t);
  assert.deepEqual(await t.client().listSessions(), listed);
  assert.equal(t.calls[0].method, 'GET');
});

test('listSessions() follows next_cursor through every page and sorts them newest first', async () => {
  const pages = {
    '': { sessions: [{ id: 'a', created_at: 5 }, { id: 'b', created_at: 1 }], next_cursor: 'c1' },
    c1: { sessions: [{ id: 'c', created_at: 9 }], next_cursor: 'c/2' },
    'c/2': { sessions: [], next_cursor: null }, // a last page may be empty
  };
  const t = scripted((o) => {
    const query = route(o).split('?')[1];
    const cursor = new URLSearchParams(query).get('cursor') || '';
    return answer(200, pages[cursor]);
  });
  t.storage[KEY] = session(1, t.clock.t);
  const listed = await t.client().listSessions();
  assert.deepEqual(listed.map((s) => s.id), ['c', 'a', 'b']);
  assert.deepEqual(t.paths(), [
    '/auth/sessions?limit=100',
    '/auth/sessions?limit=100&cursor=c1',
    '/auth/sessions?limit=100&cursor=c%2F2',
  ]);
});

test('listSessions() stops after 100 pages even if the server keeps giving cursors', async () => {
  let n = 0;
  const t = scripted(() => {
    n += 1;
    return answer(200, { sessions: [{ id: `s${n}`, created_at: n }], next_cursor: `k${n}` });
  });
  t.storage[KEY] = session(1, t.clock.t);
  const listed = await t.client().listSessions();
  assert.equal(listed.length, 100);
  assert.equal(listed[0].id, 's100');
});

test('listSessionsPage() sends limit and cursor and resolves {sessions, nextCursor}', async () => {
  const t = scripted((o) =>
    answer(200, { sessions: [{ id: 'x', created_at: 1 }], next_cursor: route(o).includes('cursor') ? null : 'n1' })
  );
  t.storage[KEY] = session(1, t.clock.t);
  const client = t.client();
  assert.deepEqual(await client.listSessionsPage(), { sessions: [{ id: 'x', created_at: 1 }], nextCursor: 'n1' });
  assert.deepEqual(await client.listSessionsPage({ limit: 5, cursor: 'n1' }), {
    sessions: [{ id: 'x', created_at: 1 }],
    nextCursor: null,
  });
  assert.deepEqual(t.paths(), ['/auth/sessions', '/auth/sessions?limit=5&cursor=n1']);
  assert.equal(t.calls[1].header.Authorization, 'Bearer at1');
});

test('listSessions() rejects temporarily_unavailable on 503 and bad_response otherwise', async () => {
  for (const [status, code] of [[503, 'temporarily_unavailable'], [500, 'bad_response'], [200, 'bad_response']]) {
    const t = scripted(() => answer(status, status === 200 ? { nope: 1 } : { error: 'x' }));
    t.storage[KEY] = session(1, t.clock.t);
    await assert.rejects(t.client().listSessions(), { name: 'WxAuthError', code });
  }
});

test('endSession(sid) DELETEs it: 204 is {ended: true}, 404 is {ended: false}', async () => {
  for (const [status, ended] of [[204, true], [404, false]]) {
    const t = scripted((o) => answer(status, status === 404 ? { error: 'not_found' } : ''));
    t.storage[KEY] = session(1, t.clock.t);
    assert.deepEqual(await t.client().endSession('a/b'), { ended });
    assert.equal(t.calls[0].method, 'DELETE');
    assert.equal(route(t.calls[0]), '/auth/sessions/a%2Fb');
    assert.equal(t.calls[0].header.Authorization, 'Bearer at1');
  }
  await assert.rejects(scripted(server()).client().endSession(''), TypeError);
});

const DEVICE_LOGIN = {
  user_code: 'WDJB-MJHT',
  client_id: 'wx-app',
  status: 'pending',
  created_at: 10,
  expires_in: 290,
  source_ip: '203.0.113.0/24',
  user_agent: 'SmartTV/1.0',
};

test('getDeviceLogin(userCode) GETs /auth/device/{code} with the token; 404 is null', async () => {
  for (const [status, expected] of [[200, DEVICE_LOGIN], [404, null]]) {
    const t = scripted(() => answer(status, status === 200 ? DEVICE_LOGIN : { error: 'not_found' }));
    t.storage[KEY] = session(1, t.clock.t);
    assert.deepEqual(await t.client().getDeviceLogin('WDJB MJHT'), expected);
    assert.equal(t.calls[0].method, 'GET');
    assert.equal(route(t.calls[0]), '/auth/device/WDJB%20MJHT');
    assert.equal(t.calls[0].header.Authorization, 'Bearer at1');
  }
  await assert.rejects(scripted(server()).client().getDeviceLogin(''), TypeError);
  for (const [status, code] of [[503, 'temporarily_unavailable'], [400, 'bad_response'], [200, 'bad_response']]) {
    const t = scripted(() => answer(status, status === 200 ? { nope: 1 } : { error: 'invalid_request' }));
    t.storage[KEY] = session(1, t.clock.t);
    await assert.rejects(t.client().getDeviceLogin('WDJB-MJHT'), { name: 'WxAuthError', code });
  }
});

test('confirmDeviceLogin() and denyDeviceLogin() POST the user code once and tell why not', async () => {
  for (const decision of ['confirm', 'deny']) {
    const method = decision + 'DeviceLogin';
    const cases = [
      [200, { ...DEVICE_LOGIN, status: decision === 'confirm' ? 'confirmed' : 'denied' }, true, null],
      [400, { error: 'invalid_grant', error_description: 'x', reason: 'device_login_decided' }, false, 'decided'],
      [400, { error: 'invalid_grant', error_description: 'x', reason: 'device_login_expired' }, false, 'expired'],
      [404, { error: 'not_found', error_description: 'x' }, false, 'not_found'],
    ];
    for (const [status, answered, ok, reason] of cases) {
      const t = scripted(() => answer(status, answered));
      t.storage[KEY] = session(1, t.clock.t);
      const result = await t.client()[method]('WDJB-MJHT');
      assert.deepEqual(result, { ok, reason, login: ok ? answered : null });
      assert.equal(t.calls[0].method, 'POST');
      assert.equal(route(t.calls[0]), '/auth/device/' + decision);
      assert.deepEqual(t.calls[0].data, { user_code: 'WDJB-MJHT' });
      assert.equal(t.calls[0].header.Authorization, 'Bearer at1');
    }
    const t = scripted(() => answer(400, { error: 'invalid_request', error_description: 'x' }));
    t.storage[KEY] = session(1, t.clock.t);
    await assert.rejects(t.client()[method]('WDJB-MJHT'), { name: 'WxAuthError', code: 'bad_response' });
    await assert.rejects(scripted(server()).client()[method](''), TypeError);
  }
});

// -- updateProfile(), decrypt() (issue 25) ------------------------------------------------------

test('updateProfile() POSTs /me (wx.request has no PATCH) with only the given fields', async () => {
  const me = { id: 'u1', nickname: '小明', avatar_url: null };
  const t = scripted((o) => answer(200, me));
  t.storage[KEY] = session(1, t.clock.t);
  assert.deepEqual(await t.client().updateProfile({ nickname: '小明', avatar_url: null }), me);
  assert.equal(t.calls[0].method, 'POST');
  assert.equal(route(t.calls[0]), '/me');
  assert.deepEqual(t.calls[0].data, { nickname: '小明', avatar_url: null });
  assert.equal(t.calls[0].header.Authorization, 'Bearer at1');
  assert.equal(t.calls[0].header['content-type'], 'application/json');
  await t.client().updateProfile({ avatar_url: 'https://thirdwx.qlogo.cn/a' });
  assert.deepEqual(t.calls[1].data, { avatar_url: 'https://thirdwx.qlogo.cn/a' });
});

test('updateProfile() refuses a profile without nickname or avatar_url, sending nothing', async () => {
  const t = scripted(server());
  t.storage[KEY] = session(1, t.clock.t);
  for (const bad of [undefined, null, {}, [], 'x', { avatarUrl: 'https://a' }, { nickname: 'a', extra: 1 }]) {
    await assert.rejects(t.client().updateProfile(bad), TypeError);
  }
  await assert.rejects(t.client().updateProfile({ avatarUrl: 'x' }), /avatar_url, not avatarUrl/);
  assert.equal(t.calls.length, 0);
});

test("updateProfile() rejects the server's 400 code: invalid_request, risky_content", async () => {
  for (const code of ['invalid_request', 'risky_content']) {
    const t = scripted(() => answer(400, { error: code, error_description: 'why' }));
    t.storage[KEY] = session(1, t.clock.t);
    await assert.rejects(t.client().updateProfile({ nickname: 'x' }), {
      name: 'WxAuthError',
      code,
      status: 400,
      serverError: code,
    });
  }
  for (const [status, code] of [[503, 'temporarily_unavailable'], [500, 'bad_response'], [200, 'bad_response']]) {
    const t = scripted(() => answer(status, status === 200 ? [] : { error: 'x' }));
    t.storage[KEY] = session(1, t.clock.t);
    await assert.rejects(t.client().updateProfile({ nickname: 'x' }), { name: 'WxAuthError', code });
  }
});

test('updateProfile() after a 401 refreshes once and replays the same body', async () => {
  const base = server({ n: 1 });
  const t = scripted((o) => {
    if (route(o) !== '/me') return base(o);
    return o.header.Authorization === 'Bearer at1' ? answer(401, { error: 'invalid_token' }) : answer(200, { id: 'u1' });
  });
  t.storage[KEY] = session(1, t.clock.t);
  assert.deepEqual(await t.client().updateProfile({ nickname: 'n' }), { id: 'u1' });
  const posts = t.calls.filter((c) => route(c) === '/me');
  assert.equal(posts.length, 2);
  assert.deepEqual(posts[1].data, { nickname: 'n' });
});

test('decrypt() POSTs only encryptedData and iv and resolves the decrypted object', async () => {
  const plain = { stepInfoList: [{ step: 1 }], watermark: { appid: 'wx1', timestamp: 1 } };
  const t = scripted(() => answer(200, plain));
  t.storage[KEY] = session(1, t.clock.t);
  const fromWeChat = { errMsg: 'getWeRunData:ok', encryptedData: 'ZW5j', iv: 'aXY=', cloudID: 'c' };
  assert.deepEqual(await t.client().decrypt(fromWeChat), plain);
  assert.equal(t.calls[0].method, 'POST');
  assert.equal(route(t.calls[0]), '/auth/decrypt');
  assert.deepEqual(t.calls[0].data, { encryptedData: 'ZW5j', iv: 'aXY=' });
  assert.equal(t.calls[0].header.Authorization, 'Bearer at1');
});

test('decrypt() rejects session_key_expired and invalid_request with their codes', async () => {
  for (const code of ['session_key_expired', 'invalid_request']) {
    const t = scripted(() => answer(400, { error: code, error_description: 'log in again' }));
    t.storage[KEY] = session(1, t.clock.t);
    const client = t.client();
    await assert.rejects(client.decrypt({ encryptedData: 'a', iv: 'b' }), { name: 'WxAuthError', code, status: 400 });
    assert.ok(client.hasSession()); // not a logout: the caller logs in again and fetches the data again
  }
  const t = scripted(() => answer(503, { error: 'temporarily_unavailable' }, { 'Retry-After': '2' }));
  t.storage[KEY] = session(1, t.clock.t);
  await assert.rejects(t.client().decrypt({ encryptedData: 'a', iv: 'b' }), {
    code: 'temporarily_unavailable',
    retryAfter: 2,
  });
  for (const bad of [undefined, {}, { encryptedData: 'a' }, { iv: 'b' }, { encryptedData: 1, iv: 'b' }]) {
    await assert.rejects(t.client().decrypt(bad), TypeError);
  }
});

test('a refresh answered 403 access_denied (banned) drops the session and rejects refresh_failed', async () => {
  const t = scripted((o) => answer(403, { error: 'access_denied', error_description: 'banned' }));
  t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t - 1 });
  const client = t.client();
  await assert.rejects(client.request({ url: '/api' }), { code: 'refresh_failed', serverError: 'access_denied' });
  assert.equal(client.hasSession(), false);
  assert.equal(KEY in t.storage, false);
  assert.deepEqual(t.paths(), ['/auth/refresh']);
});

// -- appid, provider, getAccessToken() ---------------------------------------------------------

test('appid is sent with every login (with device when both are set); none without it', async () => {
  const t = scripted(server());
  await t.client({ appid: 'wx-app-b' }).login();
  assert.deepEqual(withoutNonce(t.calls[0].data), { code: 'c1', appid: 'wx-app-b' });

  const d = scripted(server());
  const device = { name: '张三的 iPhone', platform: 'ios' };
  await d.client({ appid: 'wx-app-b', device }).login();
  assert.deepEqual(withoutNonce(d.calls[0].data), { code: 'c1', appid: 'wx-app-b', device });

  const none = scripted(server());
  await none.client().login();
  assert.deepEqual(withoutNonce(none.calls[0].data), { code: 'c1' });
  assert.equal('appid' in none.calls[0].data, false);
});

test('a login whose answer is lost is retried with the same code and the same appid', async () => {
  let n = 0;
  const t = scripted(() => (++n === 1 ? FAIL : tokens(1, { user: { id: 'u1', is_new: true } })));
  await t.client({ appid: 'wx-app-b' }).login();
  assert.deepEqual(
    t.calls.map((c) => withoutNonce(c.data)),
    [{ code: 'c1', appid: 'wx-app-b' }, { code: 'c1', appid: 'wx-app-b' }]
  );
});

test('provider is passed to the platform login with onlyAuthorize (uni-app App side); not by default', async () => {
  const seen = [];
  const t = scripted(server());
  const login = t.adapter.login;
  t.adapter.login = (o) => {
    seen.push(Object.keys(o).filter((k) => typeof o[k] !== 'function').map((k) => [k, o[k]]));
    return login(o);
  };
  await t.client({ provider: 'weixin' }).login();
  await t.client().login();
  assert.deepEqual(seen, [[['provider', 'weixin'], ['onlyAuthorize', true]], []]);
});

test('appid and provider must be non-empty strings when given', () => {
  const t = scripted(server());
  for (const bad of [{ appid: '' }, { appid: 42 }, { provider: '' }, { provider: {} }]) {
    assert.throws(() => t.client(bad), TypeError);
  }
  assert.doesNotThrow(() => t.client({ appid: null, provider: undefined }));
});

test('getAccessToken() gives the stored token while it is valid, without a request', async () => {
  const t = scripted(server({ n: 1 }));
  t.storage[KEY] = session(1, t.clock.t);
  assert.equal(await t.client().getAccessToken(), 'at1');
  assert.equal(t.calls.length, 0);
  assert.equal(t.logins, 0);
});

test('getAccessToken() inside the refresh margin refreshes first, one refresh shared with request()', async () => {
  const t = scripted(server({ n: 1 }));
  t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t + 30_000 });
  const client = t.client();
  const [a, b, res] = await Promise.all([
    client.getAccessToken(),
    client.getAccessToken(),
    client.request({ url: '/api' }),
  ]);
  assert.deepEqual([a, b], ['at2', 'at2']);
  assert.equal(res.statusCode, 200);
  assert.deepEqual(t.paths(), ['/auth/refresh', '/api']);
  assert.equal(t.calls[1].header.Authorization, 'Bearer at2');
  assert.equal(JSON.parse(t.storage[KEY]).access_token, 'at2');
});

test('getAccessToken() logs in when there are no tokens (one login for concurrent callers)', async () => {
  const t = scripted(server());
  const client = t.client({ appid: 'wx-app-b' });
  const tokensGot = await Promise.all([client.getAccessToken(), client.getAccessToken()]);
  assert.deepEqual(tokensGot, ['at1', 'at1']);
  assert.equal(t.logins, 1);
  assert.deepEqual(t.paths(), ['/auth/login']);
  assert.equal(t.calls[0].data.appid, 'wx-app-b');
});

test('getAccessToken() with an expired refresh token logs in; after logout() it rejects logged_out', async () => {
  const t = scripted(server());
  t.storage[KEY] = session(9, t.clock.t, {
    access_expires_at: t.clock.t - 10,
    refresh_expires_at: t.clock.t - 5,
  });
  const client = t.client();
  assert.equal(await client.getAccessToken(), 'at1');
  assert.deepEqual(t.paths(), ['/auth/login']);
  await client.logout();
  await assert.rejects(client.getAccessToken(), { name: 'WxAuthError', code: 'logged_out' });
  assert.equal(t.logins, 1);
});

test('getAccessToken() whose refresh is refused for good rejects like request() (refresh_failed)', async () => {
  const t = scripted(() => answer(403, { error: 'access_denied' }));
  t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t - 1 });
  await assert.rejects(t.client().getAccessToken(), {
    code: 'refresh_failed',
    serverError: 'access_denied',
  });
});

// -- the cap on sessions per user: a session ended because another device logged in ----------

const EVICTED = {
  error: 'invalid_grant',
  error_description: 'this session was ended because the account signed in on too many devices',
  reason: 'session_evicted',
};

function evicting(state = { n: 1 }) {
  const base = server(state);
  return (o) => (route(o) === '/auth/refresh' && !state.loggedIn ? answer(400, EVICTED) : base(o));
}

test('a refresh answered session_evicted logs out with that reason and does not log in', async () => {
  const t = scripted(evicting());
  t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t - 1 });
  const client = t.client();
  const results = await Promise.allSettled([client.request({ url: '/a' }), client.request({ url: '/b' })]);
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.equal(r.reason.code, 'session_evicted');
  }
  assert.equal(results[0].reason.status, 400);
  assert.equal(results[0].reason.serverError, 'invalid_grant');
  assert.equal(t.logins, 0); // no login behind the user's back: it would end another device
  assert.deepEqual(t.paths(), ['/auth/refresh']);
  assert.equal(client.hasSession(), false);
  assert.equal(client.isLoggedOut(), true);
  assert.deepEqual(JSON.parse(t.storage[KEY]), { v: 1, logged_out: true, reason: 'session_evicted' });

  // later requests, and a restarted app on the same storage, say why without asking anyone
  await assert.rejects(client.request({ url: '/c' }), { code: 'session_evicted' });
  await assert.rejects(client.getAccessToken(), { code: 'session_evicted' });
  await assert.rejects(t.client().request({ url: '/d' }), { code: 'session_evicted' });
  assert.equal(t.calls.length, 1);
});

test('after session_evicted, login() signs in again and requests work', async () => {
  const state = { n: 1 };
  const t = scripted(evicting(state));
  t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t - 1 });
  const client = t.client();
  await assert.rejects(client.request({ url: '/a' }), { code: 'session_evicted' });
  state.loggedIn = true;
  await client.login();
  assert.equal(client.isLoggedOut(), false);
  const res = await client.request({ url: '/a' });
  assert.equal(res.statusCode, 200);
  assert.equal(JSON.parse(t.storage[KEY]).reason, undefined);
});

test('logout() after session_evicted is a plain logged-out state', async () => {
  const t = scripted(evicting());
  t.storage[KEY] = session(1, t.clock.t, { access_expires_at: t.clock.t - 1 });
  const client = t.client();
  await assert.rejects(client.request({ url: '/a' }), { code: 'session_evicted' });
  assert.deepEqual(await client.logout(), { revoked: false });
  await assert.rejects(client.request({ url: '/a' }), { code: 'logged_out' });
  assert.deepEqual(JSON.parse(t.storage[KEY]), { v: 1, logged_out: true });
});

test('a plain invalid_grant (no reason) still logs in once, as before', async () => {
  const t = scripted(server({ n: 1 }));
  t.storage[KEY] = session(0, t.clock.t, { access_expires_at: t.clock.t - 1 });
  const res = await t.client().request({ url: '/x' });
  assert.equal(res.statusCode, 200);
  assert.equal(t.logins, 1);
});

// -- account deletion (issue 25) --------------------------------------------------------------

/** server() plus /me/deletion and /me/export: a deletion drops every token; a login while it
 * is pending carries user.deletion; a cancel is 204. */
function deletionServer(state = { n: 0, pending: null }) {
  const base = server(state);
  return (o) => {
    const p = route(o);
    const authorized = o.header.Authorization === `Bearer at${state.n}`;
    if (p === '/auth/login') {
      state.n += 1;
      const user = { id: 'u1', is_new: false };
      if (state.pending) user.deletion = state.pending;
      return tokens(state.n, { user });
    }
    if (p === '/me/deletion' && o.method === 'POST') {
      if (!authorized) return answer(401, { error: 'invalid_token', error_description: 'x' });
      if (o.data.code === 'bob') return answer(400, { error: 'invalid_grant', error_description: 'x' });
      if (state.pending) {
        return answer(403, { error: 'access_denied', error_description: 'x', reason: 'deletion_pending' });
      }
      state.pending = { requested_at: 10, erase_after: 20 };
      state.n += 1; // every session ended: the tokens held are dead
      return answer(202, { deletion: state.pending });
    }
    if (p === '/me/deletion' && o.method === 'DELETE') {
      if (!authorized) return answer(401, { error: 'invalid_token', error_description: 'x' });
      if (state.deleted) {
        return answer(403, { error: 'access_denied', error_description: 'x', reason: 'account_deleted' });
      }
      state.pending = null;
      return answer(204, '');
    }
    if (p === '/me/export') {
      if (!authorized) return answer(401, { error: 'invalid_token', error_description: 'x' });
      return answer(200, { version: 1, user: { id: 'u1' }, deletion: state.pending });
    }
    return base(o);
  };
}

test('requestDeletion(code) POSTs the code with the token, then the client is logged out', async () => {
  const t = scripted(deletionServer());
  const client = t.client();
  await client.login();
  const deletion = await client.requestDeletion('fresh-code');
  assert.deepEqual(deletion, { requested_at: 10, erase_after: 20 });
  const sent = t.calls.find((c) => route(c) === '/me/deletion');
  assert.equal(sent.method, 'POST');
  assert.deepEqual(sent.data, { code: 'fresh-code' });
  assert.equal(sent.header.Authorization, 'Bearer at1');
  assert.equal(client.isLoggedOut(), true);
  assert.equal(client.hasSession(), false);
  await assert.rejects(client.request({ url: '/api' }), { code: 'logged_out' });
  const user = await client.login(); // the pending deletion is shown after a login
  assert.deepEqual(user.deletion, { requested_at: 10, erase_after: 20 });
  assert.deepEqual(client.getUser().deletion, { requested_at: 10, erase_after: 20 });
});

test('requestDeletion() without a code takes a fresh one from wx.login', async () => {
  const t = scripted(deletionServer());
  const client = t.client();
  await client.login();
  await client.requestDeletion();
  assert.equal(t.logins, 2);
  assert.deepEqual(t.calls.find((c) => route(c) === '/me/deletion').data, { code: 'c2' });
});

test("requestDeletion() rejects another user's code, a pending deletion, and a bad code argument", async () => {
  const state = { n: 0, pending: null };
  const t = scripted(deletionServer(state));
  const client = t.client();
  await client.login();
  await assert.rejects(client.requestDeletion('bob'), {
    name: 'WxAuthError',
    code: 'deletion_refused',
    status: 400,
    serverError: 'invalid_grant',
  });
  assert.equal(client.isLoggedOut(), false); // refused: nothing ended
  await assert.rejects(client.requestDeletion(''), TypeError);
  state.pending = { requested_at: 1, erase_after: 2 };
  await assert.rejects(client.requestDeletion('again'), { code: 'deletion_pending', status: 403 });
});

test('cancelDeletion() DELETEs, clears user.deletion and refreshes into ordinary tokens', async () => {
  const state = { n: 0, pending: { requested_at: 10, erase_after: 20 } };
  const t = scripted(deletionServer(state));
  const client = t.client();
  assert.ok((await client.login()).deletion);
  assert.deepEqual(await client.cancelDeletion(), { cancelled: true });
  assert.deepEqual(
    t.calls.map((c) => `${c.method} ${route(c)}`).slice(1),
    ['DELETE /me/deletion', 'POST /auth/refresh']
  );
  assert.equal(client.getUser().deletion, undefined);
  assert.equal(await client.getAccessToken(), 'at2');
  state.deleted = true;
  await assert.rejects(client.cancelDeletion(), { name: 'WxAuthError', code: 'account_deleted' });
});

test('exportData() GETs /me/export with the token and resolves its JSON', async () => {
  const t = scripted(deletionServer());
  const client = t.client();
  assert.deepEqual(await client.exportData(), { version: 1, user: { id: 'u1' }, deletion: null });
  const sent = t.calls.find((c) => route(c) === '/me/export');
  assert.equal(sent.method, 'GET');
  assert.equal(sent.header.Authorization, 'Bearer at1');
  const busy = scripted((o) =>
    route(o) === '/auth/login' ? tokens(1) : answer(503, { error: 'temporarily_unavailable' })
  );
  await assert.rejects(busy.client().exportData(), { code: 'temporarily_unavailable' });
});

test('a login refused because the account was deleted rejects account_deleted', async () => {
  const t = scripted(() =>
    answer(403, { error: 'access_denied', error_description: 'x', reason: 'account_deleted' })
  );
  await assert.rejects(t.client().login(), { code: 'account_deleted', serverError: 'access_denied' });
});

test('loginWithPhone sends the phone code with the login and resolves the user with the number', async () => {
  const phone = { phone_number: '+8613800138000', country_code: '86', pure_phone_number: '13800138000', bound_at: 1 };
  const t = scripted((o) => tokens(1, { user: { id: 'u1', is_new: true, phone } }));
  const client = t.client({ appid: 'wx-app' });
  const user = await client.loginWithPhone('phone-code-1');
  assert.deepEqual(user, { id: 'u1', is_new: true, phone });
  assert.equal(t.logins, 1);
  assert.deepEqual(t.paths(), ['/auth/login']);
  assert.deepEqual(withoutNonce(t.calls[0].data), { code: 'c1', appid: 'wx-app', phone_code: 'phone-code-1' });
  assert.equal(client.getUser().phone.phone_number, '+8613800138000');
});

test('loginWithPhone refused phone_in_use rejects login_failed and keeps no session', async () => {
  const t = scripted(() => answer(409, { error: 'phone_in_use', error_description: 'bound to another account' }));
  const client = t.client();
  await assert.rejects(client.loginWithPhone('phone-code-1'), (e) => {
    assert.ok(e instanceof WxAuthError);
    assert.equal(e.code, 'login_failed');
    assert.equal(e.serverError, 'phone_in_use');
    assert.equal(e.status, 409);
    return true;
  });
  assert.equal(client.getUser(), null);
  assert.deepEqual(t.storage, {});
});

test('loginWithPhone without a code rejects at once, with no wx.login', async () => {
  const t = scripted(server());
  await assert.rejects(t.client().loginWithPhone(''), { code: 'login_failed' });
  assert.equal(t.logins, 0);
});

test('a phone login is its own POST even while a plain login is in flight', async () => {
  const t = scripted(server());
  const client = t.client();
  await Promise.all([client.login(), client.loginWithPhone('pc')]);
  assert.equal(t.calls.filter((c) => c.data.phone_code === 'pc').length, 1);
  assert.equal(t.calls.length, 2);
});
