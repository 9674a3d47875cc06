'use strict';
// A fake `wx` for the integration tests: wx.request performs a real HTTP request with node's
// `http` module (as wx does: object data JSON-encoded, or a query string for GET; the answer
// parsed as JSON when it is JSON), wx.login yields codes of the server's fake WeChat, and the
// storage is a plain object that several clients (an app restart) can share.
//
// It records every request on the wire, and can hold an answer until released or "lose" it
// (the server handled the request but the client is told `fail`, as after a timeout).

const http = require('node:http');
const { URL } = require('node:url');

let users = 0;

/** A fresh fake WeChat user prefix: every code `<user>.<n>` logs in as the same openid. */
function newUser(prefix = 'u') {
  users += 1;
  return `${prefix}${process.pid}x${users}x${Date.now().toString(36)}`;
}

function createFakeWx({ storage = {}, user = newUser() } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 }); // wx allows 10 at once
  let codeCount = 0;
  const holds = new Map(); // path -> [{arrived, release}]
  const losses = new Map(); // path -> count of answers to lose
  const fake = {
    storage,
    user,
    offline: false,
    /** What wx.login yields; replace to script it (e.g. () => 'err-40029'). */
    code: () => `${fake.user}.${++codeCount}`,
    wxLoginCalls: 0,
    /** Every request as sent: {path, method, header, data}; `response` once answered. */
    sent: [],
    count(path) {
      return fake.sent.filter((s) => s.path === path).length;
    },
    responses(path) {
      return fake.sent.filter((s) => s.path === path && s.response).map((s) => s.response);
    },
    reset() {
      fake.sent = [];
      fake.wxLoginCalls = 0;
    },
    /** Hold the next answer to `path`: `arrived` resolves with it once the server answered;
     * the client sees it only after `release()`. */
    hold(path) {
      let release;
      let arrive;
      const gate = new Promise((r) => (release = r));
      const arrived = new Promise((r) => (arrive = r));
      if (!holds.has(path)) holds.set(path, []);
      holds.get(path).push({ gate, arrive });
      return { arrived, release };
    },
    /** The next `times` answers to `path` reach the server and come back, but the client is
     * told `fail` (a lost response). */
    loseNext(path, times = 1) {
      losses.set(path, (losses.get(path) || 0) + times);
    },
    close() {
      agent.destroy();
    },
    wx: {
      request(options) {
        const { url, method = 'GET', header = {}, data, success, fail } = options;
        const target = new URL(url);
        const record = { path: target.pathname, method, header: { ...header }, data };
        fake.sent.push(record);
        const later = (fn, arg) => setImmediate(() => fn && fn(arg));
        if (fake.offline) {
          later(fail, { errMsg: 'request:fail net::ERR_INTERNET_DISCONNECTED' });
          return;
        }
        let payload = null;
        const headers = { ...header };
        const hasType = Object.keys(headers).some((k) => k.toLowerCase() === 'content-type');
        if (method.toUpperCase() === 'GET' && data && typeof data === 'object') {
          for (const [k, v] of Object.entries(data)) target.searchParams.set(k, String(v));
        } else if (typeof data === 'string') {
          payload = data;
        } else if (data !== undefined && data !== null) {
          payload = JSON.stringify(data);
          if (!hasType) headers['content-type'] = 'application/json';
        }
        if (payload !== null) headers['content-length'] = Buffer.byteLength(payload);
        const req = http.request(target, { method, headers, agent }, (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', async () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // not JSON: wx hands over the string
            }
            const answer = { statusCode: res.statusCode, data: parsed, header: res.headers };
            record.response = answer;
            const queue = holds.get(record.path);
            if (queue && queue.length) {
              const { gate, arrive } = queue.shift();
              arrive(answer);
              await gate;
            }
            const lose = losses.get(record.path) || 0;
            if (lose > 0) {
              losses.set(record.path, lose - 1);
              record.lost = true;
              later(fail, { errMsg: 'request:fail timeout' });
              return;
            }
            later(success, answer);
          });
        });
        req.on('error', (e) => later(fail, { errMsg: `request:fail ${e.message}` }));
        if (payload !== null) req.write(payload);
        req.end();
      },
      login({ success, fail }) {
        fake.wxLoginCalls += 1;
        const code = fake.code();
        setImmediate(() => (code ? success({ code, errMsg: 'login:ok' }) : fail({ errMsg: 'login:fail' })));
      },
      getStorageSync(key) {
        return Object.prototype.hasOwnProperty.call(fake.storage, key) ? fake.storage[key] : '';
      },
      setStorageSync(key, value) {
        fake.storage[key] = value;
      },
      removeStorageSync(key) {
        delete fake.storage[key];
      },
    },
  };
  return fake;
}

/** A clock the test moves by hand (ms). Starts far from the real time on purpose: the
 * client must never compare the server's clock with the phone's. */
function createClock(start = Date.UTC(2001, 0, 1)) {
  const clock = {
    t: start,
    now: () => clock.t,
    advance(ms) {
      clock.t += ms;
    },
  };
  return clock;
}

module.exports = { createFakeWx, createClock, newUser };
