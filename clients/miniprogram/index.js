'use strict';
/*
 * wxauth mini-program client: a request wrapper that keeps the user logged in.
 *
 * Dependency-free, no build step. Written in ES2015 (classes, arrow-free promise chains, no
 * async/await, no `?.`/`??`) so it runs unchanged on old WeChat base libraries and through
 * the "ES6 to ES5" compile of the WeChat developer tools, uni-app and Taro.
 *
 * See README.md next to this file for the behaviour table.
 */

var STORAGE_VERSION = 1;
var DEFAULT_STORAGE_KEY = 'wxauth.session';
var DEFAULT_REFRESH_MARGIN = 60; // seconds
var NONCE_BYTES = 32; // login_nonce: 32 random bytes, sent as 64 hex digits
var PATHS = {
  login: '/auth/login',
  refresh: '/auth/refresh',
  logout: '/auth/logout',
  sessions: '/auth/sessions',
  device: '/auth/device',
  revoke: '/oauth/revoke',
  me: '/me', // updateProfile() POSTs it: wx.request has no PATCH
  decrypt: '/auth/decrypt',
  deletion: '/me/deletion',
  export: '/me/export',
};
// A 400 these methods reject with the server's own code (else 'bad_response').
var PROFILE_REFUSALS = ['invalid_request', 'risky_content'];
var DECRYPT_REFUSALS = ['invalid_request', 'session_key_expired'];
var JSON_HEADER = { 'content-type': 'application/json' };
var MAX_SESSIONS_PAGE = 100; // GET /auth/sessions' largest page
var MAX_SESSION_PAGES = 100; // listSessions() reads at most this many pages (10,000 sessions)

// ---------------------------------------------------------------------------------- errors

/**
 * Every rejection of this client is a WxAuthError with a stable `code`:
 * network_error, logged_out, session_evicted, login_failed, refresh_failed,
 * temporarily_unavailable, invalid_token, bad_response; and for an account's deletion:
 * deletion_pending, account_deleted, deletion_refused.
 */
class WxAuthError extends Error {
  constructor(code, message, details) {
    super(message);
    this.name = 'WxAuthError';
    this.code = code;
    var d = details || {};
    this.status = d.status === undefined ? null : d.status; // HTTP status, if any
    this.serverError = d.serverError || null; // the server's `error` field, if any
    this.retryAfter = d.retryAfter === undefined ? null : d.retryAfter; // seconds
    this.response = d.response || null; // the platform's response object, if any
    if (d.cause !== undefined) this.cause = d.cause;
  }
}

function loggedOutError() {
  return new WxAuthError('logged_out', 'logged out: call login() to start a new session');
}

// Why the server ended this device's session, where the user should be told (the refresh's
// `reason`): the operator's cap on sessions per user, reached by a login on another device.
var SESSION_EVICTED = 'session_evicted';

function evictedError(details) {
  return new WxAuthError(
    SESSION_EVICTED,
    'signed out: the account signed in on too many devices and this session was ended;' +
      ' call login() to sign in again (which may end another device\'s session)',
    details
  );
}

// An account's deletion (the server's 403 `reason`s): the user asked for it and its cooling-off
// period runs (its tokens reach only GET /me, GET /me/export, DELETE /me/deletion and logout),
// or the period is over and the account is erased (or about to be).
var DELETION_PENDING = 'deletion_pending';
var ACCOUNT_DELETED = 'account_deleted';
var DELETION_REQUESTED = 'deletion_requested'; // the logged-out state requestDeletion() leaves

// --------------------------------------------------------------------------------- helpers

function stripSlash(url) {
  return String(url).replace(/\/+$/, '');
}

function isAbsolute(url) {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(url);
}

function headerValue(headers, name) {
  if (!headers) return undefined;
  var lower = name.toLowerCase();
  for (var key in headers) {
    if (Object.prototype.hasOwnProperty.call(headers, key) && key.toLowerCase() === lower) {
      return headers[key];
    }
  }
  return undefined;
}

function body(res) {
  var data = res && res.data;
  if (typeof data === 'string') {
    try {
      return JSON.parse(data);
    } catch (e) {
      return null;
    }
  }
  return data && typeof data === 'object' ? data : null;
}

function errorCode(res) {
  var b = body(res);
  return b && typeof b.error === 'string' ? b.error : null;
}

function errorReason(res) {
  var b = body(res);
  return b && typeof b.reason === 'string' ? b.reason : null;
}

function retryAfter(res) {
  var raw = headerValue(res && res.header, 'retry-after');
  var n = raw === undefined ? NaN : parseInt(raw, 10);
  return isNaN(n) ? null : n;
}

/** A 401 that says the access token was not accepted (wxauth's body, or RFC 6750's header,
 * which is what API Gateway's JWT authorizer sends). */
function isTokenRejection(res) {
  if (!res || res.statusCode !== 401) return false;
  if (errorCode(res) === 'invalid_token') return true;
  var challenge = headerValue(res.header, 'www-authenticate');
  return typeof challenge === 'string' && /error="?invalid_token/.test(challenge);
}

function isUnavailable(res) {
  return res.statusCode === 503 || res.statusCode === 429;
}

function compilePublic(routes) {
  if (typeof routes === 'function') return routes;
  var list = Array.isArray(routes) ? routes : [];
  return function (path, method) {
    for (var i = 0; i < list.length; i++) {
      var r = list[i];
      if (r instanceof RegExp) {
        r.lastIndex = 0;
        if (r.test(path)) return true;
      } else if (typeof r === 'function') {
        if (r(path, method)) return true;
      } else if (typeof r === 'string') {
        if (r.charAt(r.length - 1) === '*' ? path.indexOf(r.slice(0, -1)) === 0 : path === r) {
          return true;
        }
      }
    }
    return false;
  };
}

function tokenSession(b, receivedAt, previous) {
  if (
    !b ||
    typeof b.access_token !== 'string' ||
    !b.access_token ||
    typeof b.refresh_token !== 'string' ||
    !b.refresh_token ||
    typeof b.expires_in !== 'number' ||
    !(b.expires_in > 0)
  ) {
    return null;
  }
  // Expiry on the client's own clock, from when the answer arrived: never the JWT's `exp`,
  // which is on the server's clock (the phone's may be off by hours).
  return {
    accessToken: b.access_token,
    accessExpiresAt: receivedAt + b.expires_in * 1000,
    refreshToken: b.refresh_token,
    refreshExpiresAt:
      typeof b.refresh_expires_in === 'number' ? receivedAt + b.refresh_expires_in * 1000 : null,
    user: b.user && typeof b.user === 'object' ? b.user : previous ? previous.user : null,
  };
}

function serialize(session, loggedOut, reason) {
  if (!session) {
    var out = { v: STORAGE_VERSION, logged_out: !!loggedOut };
    if (loggedOut && reason) out.reason = reason;
    return JSON.stringify(out);
  }
  return JSON.stringify({
    v: STORAGE_VERSION,
    access_token: session.accessToken,
    access_expires_at: session.accessExpiresAt,
    refresh_token: session.refreshToken,
    refresh_expires_at: session.refreshExpiresAt,
    user: session.user,
  });
}

function deserialize(raw) {
  var empty = { session: null, loggedOut: false, reason: null };
  if (typeof raw !== 'string' || !raw) return empty;
  var d;
  try {
    d = JSON.parse(raw);
  } catch (e) {
    return empty;
  }
  if (!d || d.v !== STORAGE_VERSION) return empty; // unknown version: start afresh
  if (
    typeof d.access_token !== 'string' ||
    !d.access_token ||
    typeof d.refresh_token !== 'string' ||
    !d.refresh_token ||
    typeof d.access_expires_at !== 'number'
  ) {
    var out = d.logged_out === true;
    var reason = out && d.reason === SESSION_EVICTED ? d.reason : null;
    return { session: null, loggedOut: out, reason: reason };
  }
  return {
    session: {
      accessToken: d.access_token,
      accessExpiresAt: d.access_expires_at,
      refreshToken: d.refresh_token,
      refreshExpiresAt: typeof d.refresh_expires_at === 'number' ? d.refresh_expires_at : null,
      user: d.user && typeof d.user === 'object' ? d.user : null,
    },
    loggedOut: false,
    reason: null,
  };
}

/** Sessions by login time, newest first (then by id, for a stable order). */
function newestFirst(a, b) {
  if (a.created_at !== b.created_at) return b.created_at - a.created_at;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** Lowercase hex of the bytes of an ArrayBuffer or typed array. */
function hex(bytes) {
  var view = bytes.buffer
    ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    : new Uint8Array(bytes);
  var out = '';
  for (var i = 0; i < view.length; i++) out += ('0' + view[i].toString(16)).slice(-2);
  return out;
}

/** `size` random bytes in hex from the environment: crypto.getRandomValues where there is one
 * (browsers, uni-app H5, node), else Math.random (not a cryptographic source: the adapter's
 * getRandomValues, i.e. wx.getRandomValues, comes first wherever it exists). */
function localRandomHex(size) {
  /* global globalThis, self, window */
  var scope =
    typeof globalThis !== 'undefined' ? globalThis
      : typeof self !== 'undefined' ? self
        : typeof window !== 'undefined' ? window
          : {};
  var bytes = new Uint8Array(size);
  var c = scope.crypto;
  if (c && typeof c.getRandomValues === 'function') {
    try {
      c.getRandomValues(bytes);
      return hex(bytes);
    } catch (e) {
      // fall through
    }
  }
  for (var i = 0; i < size; i++) bytes[i] = Math.floor(Math.random() * 256);
  return hex(bytes);
}

/** Run `fn`, and on a network failure run it once more. */
function onceMore(fn) {
  return fn().catch(function (error) {
    if (error && error.code === 'network_error') return fn();
    throw error;
  });
}

// ---------------------------------------------------------------------------------- client

class AuthClient {
  /**
   * @param {object} options
   *   baseURL       wxauth's base URL (required), e.g. 'https://auth.example.com/api'
   *   adapter       { request, login, getStorageSync, setStorageSync, removeStorageSync }
   *                 (required), and optionally getRandomValues (wx's: each login's login_nonce):
   *                 wxAdapter(wx), uniAdapter(uni), taroAdapter(Taro), or your own
   *   apiBaseURL    where relative request() URLs go (default: baseURL)
   *   refreshMargin seconds before expiry at which a request refreshes first (default 60)
   *   publicRoutes  paths sent without a token: '/exact', '/prefix/*', RegExp, or a function
   *                 (path, method) => boolean; or one such function
   *   storageKey    the one storage key (default 'wxauth.session')
   *   device        {name, platform} sent with each login, shown by listSessions()
   *                 (name <= 64, platform <= 32 printable characters; default none)
   *   appid         sent as `appid` with each login, for a deployment that serves several
   *                 apps (default none: the deployment's one enabled app)
   *   provider      passed to the adapter's login ({provider, onlyAuthorize: true}), e.g.
   *                 'weixin' for uni-app's App side (default none: wx.login as it is)
   *   now           clock in ms (default Date.now)
   */
  constructor(options) {
    var o = options || {};
    if (!o.baseURL) throw new TypeError('wxauth: options.baseURL is required');
    var a = o.adapter;
    ['request', 'login', 'getStorageSync', 'setStorageSync', 'removeStorageSync'].forEach(
      function (name) {
        if (!a || typeof a[name] !== 'function') {
          throw new TypeError('wxauth: options.adapter.' + name + ' must be a function');
        }
      }
    );
    this._adapter = a;
    this._baseURL = stripSlash(o.baseURL);
    this._apiBaseURL = stripSlash(o.apiBaseURL || o.baseURL);
    this._margin = (o.refreshMargin == null ? DEFAULT_REFRESH_MARGIN : o.refreshMargin) * 1000;
    this._isPublic = compilePublic(o.publicRoutes);
    this._storageKey = o.storageKey || DEFAULT_STORAGE_KEY;
    this._now = o.now || Date.now;
    this._device = o.device || null;
    ['appid', 'provider'].forEach(function (name) {
      if (o[name] != null && (typeof o[name] !== 'string' || !o[name])) {
        throw new TypeError('wxauth: options.' + name + ' must be a non-empty string');
      }
    });
    this._appid = o.appid || null;
    this._provider = o.provider || null;
    this._epoch = 0; // bumped by logout(): work started before it must not touch the session
    this._loginP = null; // the one login in flight
    this._refreshP = null; // the one refresh (and its fallback login) in flight
    this._logoutP = null;
    this._raw = undefined; // what storage held when we last read or wrote it
    this._session = null;
    this._loggedOut = false;
    this._reason = null; // why logged out, if the server ended the session (session_evicted)
    this._sync();
  }

  // ------------------------------------------------------------------------ storage

  /** Adopt what storage holds if someone else (another client instance) changed it. */
  _sync() {
    var raw;
    try {
      raw = this._adapter.getStorageSync(this._storageKey);
    } catch (e) {
      return;
    }
    if (raw === this._raw) return;
    this._raw = raw;
    var state = deserialize(raw);
    this._session = state.session;
    this._loggedOut = state.loggedOut;
    this._reason = state.reason;
  }

  _current() {
    this._sync();
    return this._session;
  }

  /** The rejection while logged out: 'session_evicted' if the server ended the session (until
   * login()), else 'logged_out'. */
  _loggedOutError() {
    return this._reason === SESSION_EVICTED ? evictedError() : loggedOutError();
  }

  _store(session, loggedOut, reason) {
    this._session = session;
    this._loggedOut = !!loggedOut;
    this._reason = loggedOut && reason ? reason : null;
    var raw = session || loggedOut ? serialize(session, loggedOut, this._reason) : '';
    try {
      if (raw) this._adapter.setStorageSync(this._storageKey, raw);
      else this._adapter.removeStorageSync(this._storageKey);
      this._raw = raw;
    } catch (e) {
      // Storage full or unavailable: keep going in memory (this._raw still names the stale
      // stored value, so _sync() keeps the in-memory session).
    }
  }

  // ------------------------------------------------------------------------ transport

  _url(url) {
    if (isAbsolute(url)) return url;
    return this._apiBaseURL + (url.charAt(0) === '/' ? '' : '/') + url;
  }

  /** The path of `url` relative to the API (for publicRoutes), or null if `url` is an
   * absolute URL outside baseURL and apiBaseURL: those never get the token. */
  _path(url) {
    var path = url;
    if (isAbsolute(url)) {
      var bases = [this._apiBaseURL, this._baseURL];
      path = null;
      for (var i = 0; i < bases.length; i++) {
        var b = bases[i];
        var rest = url.slice(b.length);
        if (url.indexOf(b) === 0 && (rest === '' || /^[/?#]/.test(rest))) {
          path = rest || '/';
          break;
        }
      }
      if (path === null) return null;
    }
    path = path.split('#')[0].split('?')[0];
    return path.charAt(0) === '/' ? path : '/' + path;
  }

  /** One platform request; resolves {res, at} (at: our clock when the answer arrived),
   * rejects a WxAuthError 'network_error' when the platform calls `fail`. */
  _send(opts) {
    var self = this;
    return new Promise(function (resolve, reject) {
      var o = Object.assign({}, opts, {
        success: function (res) {
          if (res && typeof res.statusCode === 'number') resolve({ res: res, at: self._now() });
          else reject(new WxAuthError('bad_response', 'the platform answered without a statusCode'));
        },
        fail: function (err) {
          var why = err && err.errMsg ? err.errMsg : String(err);
          reject(new WxAuthError('network_error', 'request failed: ' + why, { cause: err }));
        },
      });
      delete o.complete;
      try {
        self._adapter.request(o);
      } catch (e) {
        reject(new WxAuthError('network_error', 'request failed: ' + e.message, { cause: e }));
      }
    });
  }

  _post(path, data, header) {
    return this._send({
      url: this._baseURL + path,
      method: 'POST',
      header: Object.assign({}, JSON_HEADER, header || {}),
      data: data,
    });
  }

  _wxLogin() {
    var adapter = this._adapter;
    var provider = this._provider;
    return new Promise(function (resolve, reject) {
      var failed = function (err) {
        var why = err && err.errMsg ? err.errMsg : String(err);
        reject(new WxAuthError('login_failed', 'wx.login failed: ' + why, { cause: err }));
      };
      var options = {
        success: function (r) {
          if (r && r.code) resolve(r.code);
          else failed(r);
        },
        fail: failed,
      };
      if (provider) {
        // uni-app's App side: without onlyAuthorize, uni.login({provider: 'weixin'}) logs in
        // on the device (with an AppSecret in the app) and gives no code for a server.
        options.provider = provider;
        options.onlyAuthorize = true;
      }
      try {
        adapter.login(options);
      } catch (e) {
        failed(e);
      }
    });
  }

  /** A new login_nonce (64 hex digits): the adapter's getRandomValues (wx.getRandomValues,
   * base library 2.15.0 and later) if it has one and it answers, else localRandomHex. */
  _nonce() {
    var adapter = this._adapter;
    return new Promise(function (resolve) {
      var local = function () {
        resolve(localRandomHex(NONCE_BYTES));
      };
      if (typeof adapter.getRandomValues !== 'function') return local();
      try {
        adapter.getRandomValues({
          length: NONCE_BYTES,
          success: function (r) {
            var v = r && r.randomValues;
            if (v && v.byteLength === NONCE_BYTES) resolve(hex(v));
            else local();
          },
          fail: local,
        });
      } catch (e) {
        local();
      }
    });
  }

  _loginBody(code, nonce) {
    var data = { code: code, login_nonce: nonce };
    if (this._appid) data.appid = this._appid;
    if (this._device) data.device = this._device;
    return data;
  }

  // ------------------------------------------------------------------------ login

  /** wx.login, then POST /auth/login. One login in flight however many callers ask.
   * Resolves the user ({id, is_new}). Ends a logged-out state. */
  login() {
    return this._loginOnce().then(function (session) {
      return session.user;
    });
  }

  /** One-tap phone login: wx.login, then POST /auth/login with the phone-number button's code
   * (`e.detail.code` of getPhoneNumber or getRealtimePhoneNumber) as `phone_code`: the server
   * logs the user in and binds the number in the same request. Resolves the user ({id, is_new,
   * phone}). A number bound to another account rejects login_failed with serverError
   * 'phone_in_use' (no session was made). Its own login even while another is in flight. */
  loginWithPhone(phoneCode) {
    if (typeof phoneCode !== 'string' || !phoneCode) {
      return Promise.reject(
        new WxAuthError('login_failed', "loginWithPhone needs the phone-number button's code")
      );
    }
    return this._loginOnce(phoneCode).then(function (session) {
      return session.user;
    });
  }

  _loginOnce(phoneCode) {
    if (this._loginP && !phoneCode) return this._loginP;
    var self = this;
    var epoch = this._epoch;
    var p = this._wxLogin()
      .then(function (code) {
        return self._nonce().then(function (nonce) {
          var data = self._loginBody(code, nonce);
          if (phoneCode) data.phone_code = phoneCode;
          return data;
        });
      })
      .then(function (data) {
        if (epoch !== self._epoch) throw loggedOutError();
        // A lost answer is safe to retry: the server answers a replayed code with the same
        // session for the code's five minutes, to the same login_nonce (one per code: only
        // the code's first caller gets a replay, so a leaked code is worth nothing).
        return onceMore(function () {
          return self._post(PATHS.login, data);
        });
      })
      .then(function (r) {
        if (epoch !== self._epoch) throw loggedOutError();
        var res = r.res;
        if (res.statusCode === 200) {
          var session = tokenSession(body(res), r.at, null);
          if (!session) {
            // No `response` on the error: a partial answer may still hold a live token.
            throw new WxAuthError('bad_response', 'login answered 200 without tokens', { status: 200 });
          }
          self._store(session, false);
          return session;
        }
        throw self._authFailure('login_failed', 'login', res);
      });
    this._loginP = p;
    var clear = function () {
      if (self._loginP === p) self._loginP = null;
    };
    p.then(clear, clear);
    return p;
  }

  _authFailure(code, what, res) {
    var server = errorCode(res);
    var unavailable = isUnavailable(res);
    var reason = errorReason(res);
    if (res.statusCode === 403 && (reason === DELETION_PENDING || reason === ACCOUNT_DELETED)) {
      code = reason; // the account's deletion: a code the app shows the user
    }
    return new WxAuthError(
      unavailable ? 'temporarily_unavailable' : code,
      what + ' failed: HTTP ' + res.statusCode + (server ? ' ' + server : ''),
      {
        status: res.statusCode,
        serverError: server,
        retryAfter: retryAfter(res),
        response: res,
      }
    );
  }

  // ------------------------------------------------------------------------ refresh

  /** The one refresh in flight (including its fallback login); resolves the new session. */
  _refreshOnce() {
    if (this._refreshP) return this._refreshP;
    if (this._loginP) return this._loginP; // a login under way brings fresh tokens anyway
    var session = this._current();
    if (this._loggedOut) return Promise.reject(this._loggedOutError());
    if (!session) return this._loginOnce();
    var self = this;
    var epoch = this._epoch;
    var p = onceMore(function () {
      // A lost answer (no response at all) is retried once with the same refresh token: the
      // server's grace window answers it with the same new session.
      return self._post(PATHS.refresh, { refresh_token: session.refreshToken });
    }).then(function (r) {
      if (epoch !== self._epoch) throw loggedOutError(); // logout meanwhile: drop the tokens
      // A login() (or another client on the same storage) stored tokens meanwhile: they are
      // newer than this answer, so neither replace nor clear them.
      var latest = self._current();
      if (latest && latest !== session) return latest;
      var res = r.res;
      if (res.statusCode === 200) {
        var fresh = tokenSession(body(res), r.at, session);
        if (!fresh) {
          throw new WxAuthError('bad_response', 'refresh answered 200 without tokens', { status: 200 });
        }
        self._store(fresh, false);
        return fresh;
      }
      var grantRefused = res.statusCode === 400 && errorCode(res) === 'invalid_grant';
      if (grantRefused && errorReason(res) === SESSION_EVICTED) {
        // Ended by the cap on sessions per user (another device logged in): logged out, and
        // no login behind the user's back (it would end another device's session in turn).
        self._store(null, true, SESSION_EVICTED);
        throw evictedError({ status: 400, serverError: 'invalid_grant', response: res });
      }
      if (grantRefused) {
        // The session is over (logged out elsewhere, expired, revoked): one login.
        self._store(null, false);
        return self._loginOnce();
      }
      if (res.statusCode === 403) {
        // access_denied: the user is banned and the session was ended with it. Drop it: a
        // later login() works again once the ban is lifted.
        self._store(null, false);
      }
      throw self._authFailure('refresh_failed', 'refresh', res);
    });
    this._refreshP = p;
    var clear = function () {
      if (self._refreshP === p) self._refreshP = null;
    };
    p.then(clear, clear);
    return p;
  }

  /** An access token good to send now: logs in or refreshes first if needed, or waits for
   * the login or refresh already under way. */
  _accessToken(epoch) {
    var self = this;
    if (epoch !== this._epoch) return Promise.reject(loggedOutError());
    var session = this._current();
    if (this._loggedOut) return Promise.reject(this._loggedOutError()); // also during logout()
    var pending = this._refreshP || this._loginP;
    if (!pending) {
      var now = this._now();
      if (!session) {
        pending = this._loginOnce();
      } else if (now < session.accessExpiresAt - this._margin) {
        return Promise.resolve(session.accessToken);
      } else if (session.refreshExpiresAt !== null && now >= session.refreshExpiresAt) {
        this._store(null, false); // the refresh token is dead too: log in
        pending = this._loginOnce();
      } else {
        pending = this._refreshOnce();
      }
    }
    return pending.then(
      function (s) {
        return s.accessToken;
      },
      function (error) {
        // Offline or server busy during the refresh: the old token, if it has not expired
        // (it was only inside the margin), still works.
        var transient = error.code === 'network_error' || error.code === 'temporarily_unavailable';
        if (
          transient &&
          session &&
          epoch === self._epoch &&
          self._current() === session &&
          self._now() < session.accessExpiresAt
        ) {
          return session.accessToken;
        }
        throw error;
      }
    );
  }

  /** After a 401 invalid_token for `used`: a newer token if someone already renewed, else
   * the one refresh (joined by every request that needs it). */
  _renewAfterRejection(used, epoch) {
    if (epoch !== this._epoch) return Promise.reject(loggedOutError());
    var session = this._current();
    if (this._loggedOut) return Promise.reject(this._loggedOutError());
    var pending = this._refreshP || this._loginP;
    if (!pending) {
      if (session && session.accessToken !== used && this._now() < session.accessExpiresAt) {
        return Promise.resolve(session.accessToken);
      }
      pending = this._refreshOnce();
    }
    return pending.then(function (s) {
      return s.accessToken;
    });
  }

  /**
   * A valid access token, for what cannot go through request(): wx.uploadFile,
   * wx.downloadFile, wx.connectSocket (send it as `Authorization: Bearer <token>`). Refreshes
   * first when it has less than refreshMargin left, sharing the one refresh (or login) in
   * flight with every request; logs in when there are no tokens. Rejects a WxAuthError as
   * request() does ('logged_out' after logout(), 'network_error', ...).
   */
  getAccessToken() {
    return this._accessToken(this._epoch);
  }

  // ------------------------------------------------------------------------ request

  /**
   * Like wx.request, as a promise: resolves the platform's response ({statusCode, data,
   * header}) for any HTTP status except a token rejection it could not cure; rejects a
   * WxAuthError. `auth: false` sends this one request without a token.
   */
  request(options) {
    var self = this;
    var o = Object.assign({}, options);
    delete o.success;
    delete o.fail;
    delete o.complete;
    var wantsAuth = o.auth !== false;
    delete o.auth;
    if (typeof o.url !== 'string' || !o.url) {
      return Promise.reject(new TypeError('wxauth: request() needs a url'));
    }
    var url = this._url(o.url);
    var path = this._path(url);
    o.url = url;
    o.method = (o.method || 'GET').toUpperCase();
    if (!wantsAuth || path === null || this._isPublic(path, o.method)) {
      return this._send(o).then(function (r) {
        return r.res;
      });
    }
    var epoch = this._epoch;
    var send = function (token) {
      if (epoch !== self._epoch) throw loggedOutError();
      var opts = Object.assign({}, o, {
        header: Object.assign({}, o.header || {}, { Authorization: 'Bearer ' + token }),
      });
      return self._send(opts).then(function (r) {
        // Logged out while it was on the wire: its answer belongs to the old session.
        if (epoch !== self._epoch) throw loggedOutError();
        return r.res;
      });
    };
    return this._accessToken(epoch).then(function (token) {
      return send(token).then(function (res) {
        if (!isTokenRejection(res)) return res;
        return self
          ._renewAfterRejection(token, epoch)
          .then(send)
          .then(function (again) {
            if (!isTokenRejection(again)) return again;
            throw new WxAuthError(
              'invalid_token',
              'the server rejected a freshly renewed access token (401 invalid_token twice)',
              { status: 401, serverError: errorCode(again), response: again }
            );
          });
      });
    });
  }

  // ------------------------------------------------------------------------ logout

  /**
   * Ends the session at once on this device (storage cleared, every request not yet finished
   * rejects 'logged_out', later requests reject 'logged_out' until login()), then tells the
   * server. Never rejects: resolves {revoked: true} if the server confirmed, else
   * {revoked: false} (offline; the server session then dies by its idle expiry, and no one
   * holds its refresh token any more). `{all: true}` ends every session of the user.
   */
  logout(options) {
    var self = this;
    var all = !!(options && options.all);
    var session = this._current();
    // A second call while the first is under way joins it, unless a login() came in between.
    if (this._logoutP && !session) return this._logoutP;
    this._epoch++;
    this._loginP = null;
    this._refreshP = null;
    this._store(null, true);
    if (!session) return Promise.resolve({ revoked: false });

    var logoutWith = function (accessToken, onRejected) {
      return self
        ._post(PATHS.logout, all ? { all: true } : undefined, {
          Authorization: 'Bearer ' + accessToken,
        })
        .then(function (r) {
          var s = r.res.statusCode;
          if (s === 204 || s === 200) return true;
          return s === 401 && onRejected ? onRejected() : false;
        });
    };
    // Without a usable access token: for one session, RFC 7009 revocation with the refresh
    // token ends it just as well; for {all: true} (which revocation cannot do), one refresh
    // for an access token to send it with.
    var withoutAccessToken = function () {
      if (all) {
        return self._post(PATHS.refresh, { refresh_token: session.refreshToken }).then(function (r) {
          var fresh = r.res.statusCode === 200 && tokenSession(body(r.res), r.at, null);
          return fresh ? logoutWith(fresh.accessToken, null) : false;
        });
      }
      return self
        ._send({
          url: self._baseURL + PATHS.revoke,
          method: 'POST',
          header: { 'content-type': 'application/x-www-form-urlencoded' },
          data: 'token=' + encodeURIComponent(session.refreshToken),
        })
        .then(function (r) {
          return r.res.statusCode === 200;
        });
    };
    var attempt =
      this._now() < session.accessExpiresAt
        ? logoutWith(session.accessToken, withoutAccessToken)
        : withoutAccessToken();
    var p = attempt.then(
      function (revoked) {
        return { revoked: !!revoked };
      },
      function () {
        return { revoked: false };
      }
    );
    this._logoutP = p;
    p.then(function () {
      if (self._logoutP === p) self._logoutP = null;
    });
    return p;
  }

  // ------------------------------------------------------------------------ sessions

  /** The user's live sessions (GET /auth/sessions, every page of it), newest first, this
   * device's marked `current: true`: resolves [{id, current, created_at, last_refreshed_at,
   * expires_at, device, user_agent, source_ip}]. Follows `next_cursor` in pages of 100, at
   * most MAX_SESSION_PAGES of them. Rejects a WxAuthError ('temporarily_unavailable',
   * 'bad_response', ...). */
  listSessions() {
    var self = this;
    var all = [];
    var pages = 0;
    var next = function (cursor) {
      return self.listSessionsPage({ limit: MAX_SESSIONS_PAGE, cursor: cursor }).then(function (page) {
        all = all.concat(page.sessions);
        pages += 1;
        if (page.nextCursor !== null && pages < MAX_SESSION_PAGES) return next(page.nextCursor);
        return all.sort(newestFirst);
      });
    };
    return next(null);
  }

  /** One page of the user's live sessions: resolves {sessions, nextCursor} (nextCursor null on
   * the last page). `limit` 1 to 100 (the server's default: 20), `cursor` the nextCursor of the
   * page before. Each page is newest first; pages come in the server's order (session ids),
   * not by time: listSessions() gathers and sorts them all. */
  listSessionsPage(options) {
    var self = this;
    var o = options || {};
    var query = [];
    if (o.limit != null) query.push('limit=' + encodeURIComponent(o.limit));
    if (o.cursor != null) query.push('cursor=' + encodeURIComponent(o.cursor));
    var url = this._baseURL + PATHS.sessions + (query.length ? '?' + query.join('&') : '');
    return this.request({ url: url, method: 'GET' }).then(function (res) {
      var b = body(res);
      if (res.statusCode === 200 && b && Array.isArray(b.sessions)) {
        var cursor = typeof b.next_cursor === 'string' && b.next_cursor ? b.next_cursor : null;
        return { sessions: b.sessions, nextCursor: cursor };
      }
      throw self._authFailure('bad_response', 'listSessions', res);
    });
  }

  /** Ends one of the user's sessions (DELETE /auth/sessions/{sid}): resolves {ended: true},
   * or {ended: false} if the user has no live session with that id (404: ended already,
   * expired, or not theirs). Ending this device's own session is allowed, but logout() is
   * the way to do that: it also forgets the tokens here. */
  endSession(sid) {
    var self = this;
    if (typeof sid !== 'string' || !sid) {
      return Promise.reject(new TypeError('wxauth: endSession() needs a session id'));
    }
    var url = this._baseURL + PATHS.sessions + '/' + encodeURIComponent(sid);
    return this.request({ url: url, method: 'DELETE' }).then(function (res) {
      if (res.statusCode === 204 || res.statusCode === 200) return { ended: true };
      if (res.statusCode === 404) return { ended: false };
      throw self._authFailure('bad_response', 'endSession', res);
    });
  }

  // ----------------------------------------------------------- scan-to-login (device login)

  /** A device login (a PC, TV or kiosk showing a mini-program code) as the signed-in user may
   * see it before confirming it (GET /auth/device/{userCode}): resolves {user_code, client_id,
   * status ('pending', 'confirmed', 'denied', 'expired'), created_at, expires_in, source_ip
   * (masked), user_agent}, or null if no device login has this code. `userCode` is the code's
   * `scene` (the page's `decodeURIComponent(options.scene)`). Rejects WxAuthError
   * ('temporarily_unavailable' also for 429, 'bad_response'). */
  getDeviceLogin(userCode) {
    var self = this;
    if (typeof userCode !== 'string' || !userCode) {
      return Promise.reject(new TypeError('wxauth: getDeviceLogin() needs a user code'));
    }
    var url = this._baseURL + PATHS.device + '/' + encodeURIComponent(userCode);
    return this.request({ url: url, method: 'GET' }).then(function (res) {
      var b = body(res);
      if (res.statusCode === 200 && b && typeof b.status === 'string') return b;
      if (res.statusCode === 404) return null;
      throw self._authFailure('bad_response', 'getDeviceLogin', res);
    });
  }

  /** The user lets the device in: its session will be this user's (POST /auth/device/confirm,
   * one time). Resolves {ok: true, reason: null, login} or {ok: false, reason, login: null}
   * with reason 'decided' (already confirmed or denied), 'expired' (start again on the
   * device) or 'not_found'. Rejects WxAuthError as getDeviceLogin() does. */
  confirmDeviceLogin(userCode) {
    return this._decideDeviceLogin(userCode, 'confirm');
  }

  /** The user turns the device away: it gets access_denied (POST /auth/device/deny, one
   * time). Resolves as confirmDeviceLogin() does. */
  denyDeviceLogin(userCode) {
    return this._decideDeviceLogin(userCode, 'deny');
  }

  _decideDeviceLogin(userCode, decision) {
    var self = this;
    var what = decision + 'DeviceLogin';
    if (typeof userCode !== 'string' || !userCode) {
      return Promise.reject(new TypeError('wxauth: ' + what + '() needs a user code'));
    }
    var url = this._baseURL + PATHS.device + '/' + decision;
    return this.request({ url: url, method: 'POST', header: JSON_HEADER, data: { user_code: userCode } }).then(
      function (res) {
        var b = body(res);
        if (res.statusCode === 200 && b && typeof b.status === 'string') {
          return { ok: true, reason: null, login: b };
        }
        if (res.statusCode === 404) return { ok: false, reason: 'not_found', login: null };
        var reason = b && b.error === 'invalid_grant' ? b.reason : null;
        if (reason === 'device_login_decided') return { ok: false, reason: 'decided', login: null };
        if (reason === 'device_login_expired') return { ok: false, reason: 'expired', login: null };
        throw self._authFailure('bad_response', what, res);
      }
    );
  }

  // ------------------------------------------------------------------------ profile, open data

  /** Sets or clears the user's nickname and avatar URL (POST /me, the server's PATCH /me:
   * wx.request has no PATCH). `profile`: {nickname?, avatar_url?}, at least one, null clears
   * it. Resolves the user as GET /me shows it. Rejects WxAuthError 'invalid_request' (a value
   * the server refused: its error_description says which rule), 'risky_content' (WeChat's
   * content security check refused the nickname), 'temporarily_unavailable', 'bad_response';
   * a TypeError for a profile without either field. */
  updateProfile(profile) {
    var self = this;
    var p = profile && typeof profile === 'object' && !Array.isArray(profile) ? profile : null;
    var unknown = (p ? Object.keys(p) : []).filter(function (k) {
      return k !== 'nickname' && k !== 'avatar_url';
    });
    if (!p || unknown.length || !Object.keys(p).length) {
      var hint = unknown.indexOf('avatarUrl') >= 0 ? ' (avatar_url, not avatarUrl)' : '';
      return Promise.reject(new TypeError('wxauth: updateProfile() takes {nickname, avatar_url}' + hint));
    }
    var data = {};
    if ('nickname' in p) data.nickname = p.nickname === undefined ? null : p.nickname;
    if ('avatar_url' in p) data.avatar_url = p.avatar_url === undefined ? null : p.avatar_url;
    var url = this._baseURL + PATHS.me;
    return this.request({ url: url, method: 'POST', data: data, header: JSON_HEADER }).then(function (res) {
      var b = body(res);
      if (res.statusCode === 200 && b && typeof b.id === 'string') return b;
      throw self._refusal('updateProfile', res, PROFILE_REFUSALS);
    });
  }

  /** WeChat's encrypted data (wx.getWeRunData, wx.getShareInfo, ...: pass their success
   * result, or {encryptedData, iv}), decrypted by the server with this session's
   * session_key, which never reaches the device (POST /auth/decrypt). Resolves the decrypted
   * object (with its `watermark`). Rejects WxAuthError 'session_key_expired' (wx.login was
   * called again since this session's login, or wx.checkSession failed: call login(), then
   * get the data from WeChat again), 'invalid_request' (altered, another app's, too old),
   * 'temporarily_unavailable', 'bad_response'; a TypeError without encryptedData and iv. */
  decrypt(encrypted) {
    var self = this;
    var e = encrypted || {};
    if (typeof e.encryptedData !== 'string' || !e.encryptedData || typeof e.iv !== 'string' || !e.iv) {
      return Promise.reject(new TypeError('wxauth: decrypt() needs {encryptedData, iv} as WeChat gives them'));
    }
    var data = { encryptedData: e.encryptedData, iv: e.iv }; // not errMsg, cloudID, ...
    var url = this._baseURL + PATHS.decrypt;
    return this.request({ url: url, method: 'POST', data: data, header: JSON_HEADER }).then(function (res) {
      var b = body(res);
      if (res.statusCode === 200 && b && typeof b === 'object' && !Array.isArray(b)) return b;
      throw self._refusal('decrypt', res, DECRYPT_REFUSALS);
    });
  }

  /** A failed answer of updateProfile()/decrypt(): a 400 with one of `codes` rejects with the
   * server's code, anything else as _authFailure('bad_response'). */
  _refusal(what, res, codes) {
    var server = errorCode(res);
    if (res.statusCode === 400 && codes.indexOf(server) >= 0) {
      var b = body(res);
      var text = b && typeof b.error_description === 'string' ? ': ' + b.error_description : '';
      return new WxAuthError(server, what + ' refused: HTTP 400 ' + server + text, {
        status: 400,
        serverError: server,
        response: res,
      });
    }
    return this._authFailure('bad_response', what, res);
  }

  // ------------------------------------------------------------------------ account deletion

  /** Asks for the account's deletion (POST /me/deletion) with a fresh wx.login code (`code`,
   * else one from wx.login now): the server ends every session of the user at once, so the
   * tokens here are dropped and the client is logged out (reason 'deletion_requested') until
   * login(), whose user then carries `deletion` ({requested_at, erase_after}). Resolves
   * {requested_at, erase_after} (epoch seconds). Rejects 'deletion_refused' (the code is not
   * this user's, or WeChat refused it), 'deletion_pending' (already asked), 'account_deleted',
   * or as request() does. */
  requestDeletion(code) {
    var self = this;
    if (code !== undefined && (typeof code !== 'string' || !code)) {
      return Promise.reject(new TypeError('wxauth: requestDeletion() needs a wx.login code'));
    }
    var codeP = code ? Promise.resolve(code) : this._wxLogin();
    return codeP
      .then(function (fresh) {
        return self.request({
          url: self._baseURL + PATHS.deletion,
          method: 'POST',
          header: JSON_HEADER,
          data: { code: fresh },
        });
      })
      .then(function (res) {
        var b = body(res);
        if (res.statusCode === 202 && b && b.deletion && typeof b.deletion === 'object') {
          // Every session ended on the server: end this one here as logout() does.
          self._epoch++;
          self._loginP = null;
          self._refreshP = null;
          self._store(null, true, DELETION_REQUESTED);
          return b.deletion;
        }
        if (res.statusCode === 400 && errorCode(res) === 'invalid_grant') {
          throw self._authFailure('deletion_refused', 'requestDeletion', res);
        }
        throw self._authFailure('bad_response', 'requestDeletion', res);
      });
  }

  /** Cancels the account's pending deletion (DELETE /me/deletion), then refreshes once so
   * that the tokens here reach every route again; getUser().deletion becomes null. Resolves
   * {cancelled: true} (also when nothing was pending). Rejects 'account_deleted' once the
   * cooling-off period is over, or as request() does. */
  cancelDeletion() {
    var self = this;
    return this.request({ url: this._baseURL + PATHS.deletion, method: 'DELETE' }).then(
      function (res) {
        if (res.statusCode !== 204 && res.statusCode !== 200) {
          throw self._authFailure('bad_response', 'cancelDeletion', res);
        }
        var session = self._current();
        if (!session) return { cancelled: true };
        var user = session.user ? Object.assign({}, session.user) : null;
        if (user) delete user.deletion;
        self._store(Object.assign({}, session, { user: user }), false);
        return self._refreshOnce().then(function () {
          return { cancelled: true };
        });
      }
    );
  }

  /** A copy of everything the server stores about the user (GET /me/export; also while a
   * deletion is pending): resolves its JSON (the server's docs list every field). Rejects as
   * request() does, or 'bad_response'. */
  exportData() {
    var self = this;
    return this.request({ url: this._baseURL + PATHS.export, method: 'GET' }).then(function (res) {
      var b = body(res);
      if (res.statusCode === 200 && b && typeof b === 'object') return b;
      throw self._authFailure('bad_response', 'exportData', res);
    });
  }

  // ------------------------------------------------------------------------ state

  /** True if tokens are stored (they may still need a refresh). */
  hasSession() {
    return !!this._current();
  }

  /** True after logout(), or after the server ended the session for the cap on sessions per
   * user ('session_evicted'), until the next successful login(). */
  isLoggedOut() {
    this._sync();
    return this._loggedOut;
  }

  /** The user from the last login ({id, is_new}, and `deletion` {requested_at, erase_after}
   * while the account's deletion is pending: show it, with a way to cancelDeletion()), or
   * null. */
  getUser() {
    var s = this._current();
    return s ? s.user : null;
  }
}

// -------------------------------------------------------------------------------- adapters

/** An adapter from a platform object with wx's callback API (wx, uni, Taro). */
function fromPlatform(api, name) {
  if (!api) throw new TypeError('wxauth: no ' + (name || 'platform') + ' object given');
  // Taro and uni-app return a promise as well as calling fail(): swallow its rejection so it
  // is not reported as unhandled (the callback already delivered it).
  var quiet = function (result) {
    if (result && typeof result.catch === 'function') result.catch(function () {});
    return result;
  };
  var adapter = {
    request: function (options) {
      return quiet(api.request(options));
    },
    login: function (options) {
      return quiet(api.login(options));
    },
    getStorageSync: function (key) {
      return api.getStorageSync(key);
    },
    setStorageSync: function (key, value) {
      return api.setStorageSync(key, value);
    },
    removeStorageSync: function (key) {
      return api.removeStorageSync(key);
    },
  };
  if (typeof api.getRandomValues === 'function') {
    // wx.getRandomValues (base library 2.15.0+): a cryptographic source for login_nonce
    adapter.getRandomValues = function (options) {
      return quiet(api.getRandomValues(options));
    };
  }
  return adapter;
}

function globalNamed(name) {
  /* global wx, uni */
  if (name === 'wx' && typeof wx !== 'undefined') return wx;
  if (name === 'uni' && typeof uni !== 'undefined') return uni;
  return undefined;
}

/** Native mini-program: wxAdapter() or wxAdapter(wx). */
function wxAdapter(api) {
  return fromPlatform(api || globalNamed('wx'), 'wx');
}

/** uni-app: uniAdapter() or uniAdapter(uni). */
function uniAdapter(api) {
  return fromPlatform(api || globalNamed('uni'), 'uni');
}

/** Taro: taroAdapter(Taro) (import Taro from '@tarojs/taro'). */
function taroAdapter(api) {
  return fromPlatform(api && api.default && !api.request ? api.default : api, 'Taro');
}

function createAuthClient(options) {
  return new AuthClient(options);
}

module.exports = {
  createAuthClient: createAuthClient,
  AuthClient: AuthClient,
  WxAuthError: WxAuthError,
  wxAdapter: wxAdapter,
  uniAdapter: uniAdapter,
  taroAdapter: taroAdapter,
  fromPlatform: fromPlatform,
  STORAGE_VERSION: STORAGE_VERSION,
  DEFAULT_STORAGE_KEY: DEFAULT_STORAGE_KEY,
};
