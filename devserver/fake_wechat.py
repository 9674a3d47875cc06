"""A fake of WeChat's `jscode2session`, `cgi-bin/stable_token` and `getuserphonenumber`, for
`make run` and the tests (and `wxa/checksession`, `wxa/msg_sec_check` and encrypted open data:
devserver/fake_wechat_user.py; `wxa/getwxacodeunlimit`: devserver/fake_wxacode.py; with
`component=`, a third-party platform's `api_component_token` and `sns/component/jscode2session`:
devserver/fake_component.py).

It answers like the real API: `GET /sns/jscode2session?appid=&secret=&js_code=&grant_type=`,
always HTTP 200 with `Content-Type: text/plain` and a JSON body; an error is
`{"errcode": N, "errmsg": "..."}`. Checked in this order: missing appid (41002), secret (41004)
or js_code (41008); wrong appid (40013) or secret (40125); grant_type other than
`authorization_code` (40002).

Code conventions (`<user>` is the part of a code before its first `.`):

| code                         | answer                                                        |
|------------------------------|---------------------------------------------------------------|
| `<user>`, `<user>.<any>`     | `openid`, `session_key`; also `unionid` if `<user>` starts    |
|                              | with `union`. Works once; a second use gives 40163.           |
| `err-<errcode>[.<any>]`      | that errcode, every time: `err-40029`, `err-40226`,           |
|                              | `err-45011`, `err--1`, ...                                    |
| `slow-<ms>.<code>`           | sleeps `<ms>` milliseconds (at most 30000), then answers as   |
|                              | `<code>` would; the whole code is used up on arrival          |

openid = "o" + the first 27 characters of base64url(sha256(f"{appid}:{user}")), so `alice.1` and
`alice.2` are the same user; unionid = "u" + the first 27 of base64url(sha256(f"unionid:{user}"));
session_key is base64 of 16 random bytes, a new one at each jscode2session: the user's current
one in that app (`wxa/checksession`, devserver/fake_wechat_user.py).

WeChat DevTools and phones send real `wx.login` codes (random, without a `.`): each would be a
user of its own. `FakeWeChat(..., devtools_user="dev")` (`FAKE_WECHAT_USER=dev make run`) makes
every code without a `.` (but `err-...`) log in as that one user; codes stay single-use, and
`<user>.<n>` codes keep their own users.

Several apps (issue #14): `FakeWeChat(appid, secret, apps={other_appid: other_secret, ...})`
knows more appids, each with its own secret (a wrong one answers 40125, an unknown appid
40013). `<user>` is one person across apps: each app has its own openid
(`openid_for(appid, user)`), and the unionid is the same in every app, except that an app in
`unbound` (not yet bound to the open-platform account) answers no unionid until `bind(appid)`.

Official-account web pages and mobile apps: `GET /sns/oauth2/access_token?appid=&secret=&code=
&grant_type=authorization_code` takes the same codes and answers `{"access_token",
"expires_in", "refresh_token", "openid", "scope"}` (and `unionid` as above), with the same
errors (41002, 41004, 41008, 40013, 40125, 40002, 40163 for a code used twice).

Server access tokens (`StableTokens`, one set per app: `fake.tokens` is the primary app's,
`fake.app_tokens[appid]` any app's): `POST /cgi-bin/stable_token` with the JSON body
`{"grant_type": "client_credential", "appid", "secret", "force_refresh"}` answers
`{"access_token", "expires_in"}` (HTTP 200, `application/json`). Normal mode answers the same
token while it has more than 5 minutes left, then a new one (the old one stays valid until its
own expiry, as WeChat does). `force_refresh: true` invalidates every token and issues a new one,
at most 20 a UTC+8 day (then 45009) and 30 s apart (sooner: 45011). Errors: body not JSON
(47001); missing appid (41002) or secret (41004); wrong grant_type (40002), appid (40013) or
secret (40125). Calls made with a token check it with `check_access_token`: unknown, expired or
invalidated -> 40001. One such call is faked: `GET /cgi-bin/get_api_domain_ip?access_token=`
(`{"ip_list": [...]}`). Tests: `fake.tokens.invalidate()`, `fake.tokens.fail_next(errcode)`,
`fake.calls_to(path)` counts the requests to each path; the clock is injectable (`clock=`).

Phone numbers: `POST /wxa/business/getuserphonenumber?access_token=...` with JSON
`{"code", "openid"}`, answering `{"errcode": 0, "errmsg": "ok", "phone_info": {"phoneNumber",
"purePhoneNumber", "countryCode", "watermark": {"timestamp", "appid"}}}`. Checked in this order:
access_token missing (41001) or refused (40001: `access_token_accepted`: not one that
`stable_token` issued and still valid, or refused by `refuse_access_token`); code missing (41008);
then by code:

| code                                   | answer                                                |
|----------------------------------------|-------------------------------------------------------|
| `phone.<user>.<number>[.<any>]`        | `<user>`'s number: `<number>` is `<digits>` (+86) or  |
|                                        | `<country>-<digits>`, e.g. `phone.alice.13800138000`. |
|                                        | Works once (then 40029); with a part `t<epoch>`, it   |
|                                        | expires 300 s after that time (40029)                 |
| `phone.err-<errcode>[.<any>]`          | that errcode, every time: `phone.err-1400001` (quota  |
|                                        | used up), `phone.err-40029`, `phone.err--1`, ...      |

A code is of the primary app's button, or of another app's with a part `@<appid>`
(`phone.bob.13800138000.@wx-app-b`); a code taken with another app's access_token answers 40029
(and stays unused), as WeChat refuses a second mini-program's code exchanged with the first's
token. A code whose `<user>` is not the one of the request's `openid` in the code's app answers
40003 (and stays unused): WeChat's check that the code belongs to that user.

Mini-program codes (issue 24, item 5): `POST /wxa/getwxacodeunlimit?access_token=...` answers a
small real PNG of the scene (its `tEXt` chunks carry the scene, page and env_version), or
WeChat's errors: devserver/fake_wxacode.py has the table. `fake.wxacodes.calls[scene]` counts
the requests per scene, `fake.wxacodes.fail_next(errcode)` queues a failure.

Website apps (issue 24, item 2): `GET /connect/qrconnect` (WeChat's QR-code page) "scans"
at once for the user a test names in the header `X-Fake-WeChat-User` (or `FAKE_WECHAT_USER`),
else shows a page asking who scans: devserver/fake_qrconnect.py. Its codes are `<user>.qr-...`
for `sns/oauth2/access_token` (which answers them with scope `snsapi_login`).

Test helpers: `GET /_fake/stats` answers `{"calls": N, "phone_calls": N}`, `POST /_fake/reset`
forgets used codes and counts. Requests are not logged: codes, tokens and secrets are never
printed.

Standalone: `python -m devserver.fake_wechat [--host H] [--port N] [--appid A] [--secret S]`
prints its URL and runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chalicelib.settings import LOCAL_APPID, LOCAL_SECRET
from devserver import fake_component, fake_wechat_user
from devserver.fake_component import FakeComponent
from devserver.fake_qrconnect import CONFIRM_PATH, DENY, QRCONNECT_PATH, USER_HEADER, qrconnect
from devserver.fake_wechat_user import SessionKeys
from devserver.fake_wxacode import PATH as WXACODE_PATH
from devserver.fake_wxacode import WxaCodes

JSCODE2SESSION_PATH = "/sns/jscode2session"
OAUTH2_PATH = "/sns/oauth2/access_token"
PHONE_PATH = "/wxa/business/getuserphonenumber"
PHONE_CODE_TTL = 300
STABLE_TOKEN_PATH = "/cgi-bin/stable_token"  # noqa: S105 - a path, not a secret
API_DOMAIN_IP_PATH = "/cgi-bin/get_api_domain_ip"
ACCESS_TOKEN_TTL = 7200
EARLY_RENEWAL = 300  # normal mode answers a new token in the old one's last 5 minutes
FORCE_DAILY_LIMIT = 20
FORCE_INTERVAL = 30
DAY_OFFSET = 8 * 3600  # WeChat's day: UTC+8
MAX_SLOW_MS = 30_000

ERRMSGS = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "high risk user, login blocked",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    61003: "component is not authorized by this account",
    61005: "component ticket is expired",
    61006: "component ticket is invalid",
    1400001: "usage count has reached the limit of the current version",
}


def fake_apps(spec: str | None) -> dict[str, str]:
    """`FAKE_WECHAT_APPS` (`make run`): more apps the fake knows, as `appid=secret,...`."""
    apps: dict[str, str] = {}
    for part in (spec or "").split(","):
        appid, _, secret = part.strip().partition("=")
        if appid and secret:
            apps[appid] = secret
    return apps


def openid_for(appid: str, user: str) -> str:
    return "o" + _b64url_sha256(f"{appid}:{user}")[:27]


def unionid_for(user: str) -> str:
    return "u" + _b64url_sha256(f"unionid:{user}")[:27]


def _b64url_sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _code_refusal(user: str, first_use: bool) -> dict[str, Any] | None:
    """WeChat's answer to a login code it refuses: `err-<errcode>.<n>` answers that errcode,
    a code without a user 40029, a code used before 40163; None for a good code."""
    if user.startswith("err-"):
        try:
            return _error(int(user.removeprefix("err-")))
        except ValueError:
            return _error(40029)
    if not user:
        return _error(40029)
    if not first_use:
        return _error(40163)
    return None


def _error(errcode: int) -> dict[str, Any]:
    # Real errmsgs end with a request id; clients must not parse them.
    errmsg = ERRMSGS.get(errcode, "fake error")
    return {"errcode": errcode, "errmsg": f"{errmsg}, rid: {secrets.token_hex(12)}"}


class StableTokens:
    """The fake's server access tokens: `stable_token` and the check of calls made with one."""

    def __init__(self, appid: str, secret: str, clock: Callable[[], float]) -> None:
        self._appid = appid
        self._secret = secret
        self._clock = clock
        self._lock = threading.Lock()
        self._valid: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self._current: str | None = None
        self._forced: list[float] = []  # times of the forced refreshes
        self._failures: list[int] = []

    def stable_token(self, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(47001)
        for name, errcode in (("appid", 41002), ("secret", 41004)):
            if not isinstance(body.get(name), str) or not body[name]:
                return _error(errcode)
        if body.get("grant_type") != "client_credential":
            return _error(40002)
        if body["appid"] != self._appid:
            return _error(40013)
        if not secrets.compare_digest(body["secret"].encode(), self._secret.encode()):
            return _error(40125)
        with self._lock:
            if self._failures:
                return _error(self._failures.pop(0))
            now = self._clock()
            if body.get("force_refresh") is True:
                return self._force(now)
            expires_at = self._valid.get(self._current or "", 0.0)
            if self._current is None or now >= expires_at - EARLY_RENEWAL:
                return self._issue(now)
            return {"access_token": self._current, "expires_in": int(expires_at - now)}

    def _force(self, now: float) -> dict[str, Any]:
        day = (now + DAY_OFFSET) // 86400
        today = [t for t in self._forced if (t + DAY_OFFSET) // 86400 == day]
        if len(today) >= FORCE_DAILY_LIMIT:
            return _error(45009)
        if self._forced and now - self._forced[-1] < FORCE_INTERVAL:
            return _error(45011)
        self._forced.append(now)
        self._valid.clear()
        return self._issue(now)

    def _issue(self, now: float) -> dict[str, Any]:
        token = "wxat-" + secrets.token_urlsafe(96)
        self._valid[token] = now + ACCESS_TOKEN_TTL
        self._current = token
        return {"access_token": token, "expires_in": ACCESS_TOKEN_TTL}

    def check_access_token(self, token: str | None) -> int:
        """0 if `token` is valid now, else WeChat's errcode (40001) for the calling endpoint."""
        with self._lock:
            expires_at = self._valid.get(token or "")
            return 0 if expires_at is not None and self._clock() < expires_at else 40001

    def invalidate(self) -> None:
        """Invalidate every token, as a forced refresh made elsewhere would."""
        with self._lock:
            self._valid.clear()
            self._current = None

    def fail_next(self, errcode: int, count: int = 1) -> None:
        """The next `count` valid stable_token requests answer `errcode` (-1, 40164, 45009...)."""
        with self._lock:
            self._failures.extend([errcode] * count)

    @property
    def forced(self) -> int:
        with self._lock:
            return len(self._forced)

    def reset(self) -> None:
        with self._lock:
            self._valid.clear()
            self._current = None
            self._forced.clear()
            self._failures.clear()


class FakeWeChat:
    """An in-process fake WeChat API server; see the module docstring for its codes."""

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        clock: Callable[[], float] = time.time,
        apps: dict[str, str] | None = None,
        unbound: set[str] | None = None,
        devtools_user: str | None = None,
        component: FakeComponent | None = None,
    ) -> None:
        self.appid = appid
        self.component = component  # a third-party platform's APIs (issue 24, item 4)
        self._devtools_user = devtools_user or None
        self._secret = secret
        self._secrets = {**(apps or {}), appid: secret}  # appid -> its secret
        self._unbound = set(unbound or ())
        self._lock = threading.Lock()
        self._used: set[str] = set()
        self._calls: Counter[str] = Counter()
        self._paths: Counter[str] = Counter()
        self.tokens = StableTokens(appid, secret, clock)
        # every app's server access tokens, the primary's included (issue 22, item 10)
        self.app_tokens = {
            other: StableTokens(other, key, clock) for other, key in self._secrets.items()
        }
        self.app_tokens[appid] = self.tokens
        self._clock = clock
        self._phone_used: set[str] = set()
        self._phone_calls: Counter[str] = Counter()
        self._refused_tokens: set[str] = set()
        self.wxacodes = WxaCodes()  # wxa/getwxacodeunlimit (issue 24, item 5)
        self._qr_codes: set[str] = set()  # handed out by qrconnect (website apps)
        self.session_keys = SessionKeys(clock)  # checksession, open data (fake_wechat_user.py)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread; returns the base URL, e.g. `http://127.0.0.1:PORT`."""
        if self._server is not None:
            raise RuntimeError("FakeWeChat is already started")
        server = _Server((host, port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-wechat", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeWeChat is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeWeChat:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- counters ---------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        """How many jscode2session requests were received (whatever their answer)."""
        with self._lock:
            return self._calls.total()

    def calls_for(self, code: str) -> int:
        with self._lock:
            return self._calls[code]

    @property
    def phone_calls(self) -> int:
        """How many getuserphonenumber requests were received (whatever their answer)."""
        with self._lock:
            return self._phone_calls.total()

    def phone_calls_for(self, code: str) -> int:
        with self._lock:
            return self._phone_calls[code]

    def calls_to(self, path: str) -> int:
        """How many requests reached `path` (e.g. STABLE_TOKEN_PATH), whatever their answer."""
        with self._lock:
            return self._paths[path]

    def _count_path(self, path: str) -> None:
        with self._lock:
            self._paths[path] += 1

    def reset(self) -> None:
        with self._lock:
            self._used.clear()
            self._calls.clear()
            self._paths.clear()
            self._phone_used.clear()
            self._phone_calls.clear()
            self._refused_tokens.clear()
            self._qr_codes.clear()
        self.session_keys.reset()
        for tokens in self.app_tokens.values():
            tokens.reset()
        self.wxacodes.reset()

    # -- jscode2session ---------------------------------------------------------------------

    def bind(self, appid: str) -> None:
        """The app is bound to the open platform from now on: its answers carry unionid."""
        with self._lock:
            self._unbound.discard(appid)

    def _check_app(self, query: dict[str, str], code_name: str) -> dict[str, Any] | None:
        """WeChat's checks of appid, secret, code and grant_type, in its order (None: fine)."""
        for name, errcode in (("appid", 41002), ("secret", 41004), (code_name, 41008)):
            if not query.get(name):
                return _error(errcode)
        expected = self._secrets.get(query["appid"])
        if expected is None:
            return _error(40013)
        if not secrets.compare_digest(query["secret"].encode(), expected.encode()):
            return _error(40125)
        if query.get("grant_type") != "authorization_code":
            return _error(40002)
        return None

    def oauth2_access_token(self, query: dict[str, str]) -> dict[str, Any]:
        """`sns/oauth2/access_token`: an official-account web page's or mobile app's code."""
        code = query.get("code", "")
        with self._lock:
            self._calls[code] += 1
        refused = self._check_app(query, "code")
        if refused is not None:
            return refused
        first_use = self._claim(f"{query['appid']}\x00oauth2\x00{code}")
        user = code.split(".", 1)[0]
        refused = _code_refusal(user, first_use)
        if refused is not None:
            return refused
        body: dict[str, Any] = {
            "access_token": "wxoauth-" + secrets.token_urlsafe(32),
            "expires_in": ACCESS_TOKEN_TTL,
            "refresh_token": "wxrefresh-" + secrets.token_urlsafe(32),
            "openid": openid_for(query["appid"], user),
            "scope": "snsapi_login" if code in self._qr_codes else "snsapi_base",
        }
        body.update(self._unionid(query["appid"], user))
        return body

    def qrconnect(self, query: dict[str, str], user: str | None) -> tuple[int, dict, bytes]:
        """`connect/qrconnect` of a website app, scanned by `user` (the `X-Fake-WeChat-User`
        header; None: FAKE_WECHAT_USER, else a page asks): devserver/fake_qrconnect.py."""

        def issued(code: str) -> None:
            with self._lock:
                self._qr_codes.add(code)

        return qrconnect(
            query,
            user or self._devtools_user,
            known_app=lambda appid: appid in self._secrets,
            issued=issued,
        )

    def _unionid(self, appid: str, user: str) -> dict[str, str]:
        with self._lock:
            bound = appid not in self._unbound
        return {"unionid": unionid_for(user)} if bound and user.startswith("union") else {}

    def jscode2session(self, query: dict[str, str]) -> dict[str, Any]:
        """The JSON body WeChat would answer; may sleep for a `slow-` code."""
        code = query.get("js_code", "")
        with self._lock:
            self._calls[code] += 1
        refused = self._check_app(query, "js_code")
        if refused is not None:
            return refused

        return self.session_for(query["appid"], code)

    def session_for(self, appid: str, code: str) -> dict[str, Any]:
        """The answer to `appid`'s wx.login `code` (its checks passed): jscode2session's, and a
        third-party platform's (devserver/fake_component.py)."""
        # codes are per app (the primary app's keyed as they always were)
        first_use = self._claim(code if appid == self.appid else f"{appid}\x00{code}")
        effective = code
        if code.startswith("slow-"):
            delay_ms, _, effective = code.removeprefix("slow-").partition(".")
            if not delay_ms.isdigit() or not effective:
                return _error(40029)
            time.sleep(min(int(delay_ms), MAX_SLOW_MS) / 1000)

        user = effective.split(".", 1)[0]
        if self._devtools_user and user == effective and not user.startswith("err-"):
            user = self._devtools_user  # a real wx.login code (DevTools, a phone): one user
        refused = _code_refusal(user, first_use)
        if refused is not None:
            return refused
        openid = openid_for(appid, user)
        body: dict[str, Any] = {
            "openid": openid,
            "session_key": self.session_keys.issue(appid, openid),  # the current one
        }
        body.update(self._unionid(appid, user))
        return body

    def _claim(self, code: str) -> bool:
        with self._lock:
            if code in self._used:
                return False
            self._used.add(code)
            return True

    # -- getuserphonenumber (kept apart from the access-token endpoints) ----------------------

    def refuse_access_token(self, token: str) -> None:
        """From now on, answer 40001 to `token` (as WeChat does to a replaced token)."""
        with self._lock:
            self._refused_tokens.add(token)

    def stable_token(self, raw: bytes) -> dict[str, Any]:
        """`cgi-bin/stable_token` of the app the body names (the primary's answers errors)."""
        try:
            appid = json.loads(raw).get("appid")
        except (ValueError, AttributeError, RecursionError):
            appid = None
        tokens = self.app_tokens.get(appid) if isinstance(appid, str) else None
        return (tokens or self.tokens).stable_token(raw)

    def access_token_app(self, token: str) -> str | None:
        """The app whose `stable_token` issued `token` (still valid, not refused), or None."""
        with self._lock:
            if token in self._refused_tokens:
                return None
        for appid, tokens in self.app_tokens.items():
            if tokens.check_access_token(token) == 0:
                return appid
        return None

    def access_token_accepted(self, token: str) -> bool:
        """The one check of a server access_token: one `stable_token` issued (for any app),
        still valid, and not refused by `refuse_access_token`."""
        return self.access_token_app(token) is not None

    def getuserphonenumber(self, access_token: str, body: object) -> dict[str, Any]:
        """The JSON body WeChat would answer for this request; see the module docstring."""
        code = body.get("code") if isinstance(body, dict) else None
        openid = body.get("openid") if isinstance(body, dict) else None
        with self._lock:
            self._phone_calls[code if isinstance(code, str) else ""] += 1
        if not access_token:
            return _error(41001)
        token_app = self.access_token_app(access_token)
        if token_app is None:
            return _error(40001)
        if not isinstance(body, dict):
            return _error(47001)
        if not isinstance(code, str) or not code:
            return _error(41008)
        kind, _, rest = code.partition(".")
        user, _, rest = rest.partition(".")
        if kind != "phone" or not user:
            return _error(40029)
        if user.startswith("err-"):
            try:
                return _error(int(user.removeprefix("err-")))
            except ValueError:
                return _error(40029)
        number, *extra = rest.split(".")
        code_app = next((p[1:] for p in extra if p.startswith("@")), self.appid)
        if code_app != token_app:
            return _error(40029)  # another app's code: WeChat knows it not with this token
        country, _, digits = number.rpartition("-")
        country = country or "86"
        if not (country.isdigit() and digits.isdigit()):
            return _error(40029)
        issued = [int(p[1:]) for p in extra if p.startswith("t") and p[1:].isdigit()]
        if issued and self._clock() >= issued[0] + PHONE_CODE_TTL:
            return _error(40029)
        if isinstance(openid, str) and openid and openid != openid_for(code_app, user):
            return _error(40003)
        with self._lock:
            if code in self._phone_used:
                return _error(40029)
            self._phone_used.add(code)
        return {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": digits if country == "86" else f"+{country}{digits}",
                "purePhoneNumber": digits,
                "countryCode": country,  # a string, as WeChat sends it (documented as a number)
                "watermark": {"timestamp": int(self._clock()), "appid": code_app},
            },
        }


def _phone_request(query: str, data: bytes) -> tuple[str, object]:
    token = parse_qs(query).get("access_token", [""])[0]
    try:
        return token, json.loads(data)
    except (ValueError, RecursionError):
        return token, None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent logins in tests
    fake: FakeWeChat


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "FakeWeChat/1.0"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        fake = self.server.fake
        url = urlsplit(self.path)
        fake._count_path(url.path)
        if url.path == JSCODE2SESSION_PATH:
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            self._send(200, fake.jscode2session(query), "text/plain")
        elif url.path == OAUTH2_PATH:
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            self._send(200, fake.oauth2_access_token(query), "text/plain")
        elif url.path == API_DOMAIN_IP_PATH:
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            errcode = fake.tokens.check_access_token(query.get("access_token"))
            self._send(200, _error(errcode) if errcode else {"ip_list": ["127.0.0.1"]})
        elif url.path in (QRCONNECT_PATH, CONFIRM_PATH):
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            user = self.headers.get(USER_HEADER)
            if url.path == CONFIRM_PATH:
                user = DENY if query.get("decision") == DENY else query.get("user")
            status, headers, body = fake.qrconnect(query, user)
            self._send_raw(status, headers, body)
        elif url.path == fake_wechat_user.CHECK_SESSION_PATH:
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            token_app = fake.access_token_app(query.get("access_token", ""))
            self._send(200, fake.session_keys.check_session(token_app, query))
        elif url.path == fake_component.JSCODE2SESSION_PATH and fake.component is not None:
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            answer = fake.component.jscode2session(query, fake.session_for, _error)
            self._send(200, answer, "text/plain")
        elif url.path == "/_fake/stats":
            self._send(200, {"calls": fake.calls, "phone_calls": fake.phone_calls})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        fake._count_path(path)
        if path == "/_fake/reset":
            fake.reset()
            self._send(200, {"calls": 0})
        elif path == STABLE_TOKEN_PATH:
            self._send(200, fake.stable_token(raw))
        elif path == fake_wechat_user.MSG_SEC_CHECK_PATH:
            token, _ = _phone_request(urlsplit(self.path).query, b"")
            self._send(200, fake_wechat_user.msg_sec_check(fake.access_token_app(token), raw))
        elif path == fake_wechat_user.OPEN_DATA_PATH:
            data = fake.session_keys.open_data(fake.appid, openid_for, raw)
            self._send(*((200, data) if data is not None else (404, {"error": "no such user"})))
        elif path == fake_component.TOKEN_PATH and fake.component is not None:
            self._send(200, fake.component.api_component_token(raw, _error))
        elif path == PHONE_PATH:
            query = urlsplit(self.path).query
            self._send(200, fake.getuserphonenumber(*_phone_request(query, raw)), "text/plain")
        elif path == WXACODE_PATH:
            token = parse_qs(urlsplit(self.path).query).get("access_token", [""])[0]
            answer = fake.wxacodes.answer(fake.access_token_accepted(token) if token else None, raw)
            if isinstance(answer, bytes):
                self._send_bytes(answer, "image/png")
            else:
                self._send(200, answer, "application/json; encoding=utf-8")
        else:
            self._send(404, {"error": "not found"})

    def _send(self, status: int, body: dict[str, Any], content_type: str = "") -> None:
        data = json.dumps(body).encode()
        self._send_raw(status, {"Content-Type": content_type or "application/json"}, data)

    def _send_raw(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_bytes(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: a request line would carry the code and the secret."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake WeChat API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--appid", default=os.environ.get("WECHAT_APPID") or LOCAL_APPID)
    parser.add_argument("--secret", default=os.environ.get("WECHAT_SECRET") or LOCAL_SECRET)
    args = parser.parse_args(argv)

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    fake = FakeWeChat(args.appid, args.secret)
    url = fake.start(args.host, args.port)
    try:
        print(f"fake WeChat on {url} (appid {fake.appid})", flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
