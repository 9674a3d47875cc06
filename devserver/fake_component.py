"""A fake of WeChat's third-party platform (第三方平台) APIs, for `make run` and the tests (issue
24, item 4); served by the fake WeChat (devserver/fake_wechat.py, `component=`).

- `POST /cgi-bin/component/api_component_token` with the JSON body `{"component_appid",
  "component_appsecret", "component_verify_ticket"}` answers `{"component_access_token",
  "expires_in": 7200}`. Checked in this order: body not JSON (47001); appid missing (41002) or
  not the platform's (40013); appsecret missing (41004) or wrong (40125); ticket missing or not
  one this fake pushed (61006), or pushed more than 12 hours ago (61005).
- `GET /sns/component/jscode2session?appid=&js_code=&grant_type=authorization_code
  &component_appid=&component_access_token=` answers as `sns/jscode2session` does, with its code
  conventions (`<user>.<n>`, `err-<errcode>`, ...): checked first, component_access_token missing
  (41001) or not one this fake issued (40001); component_appid not the platform's (40013); the
  mini-program `appid` not one that authorized the platform (61003: `authorized=`; every appid
  by default); grant_type (40002).
- A push: `ticket_push()` makes a signed, encrypted `component_verify_ticket` push (the query
  and the XML body WeChat POSTs to the platform's 授权事件接收URL), `push_ticket(url)` POSTs it
  to a running wxauth (`make run` does at start); `forged=True` signs it with another token.

Tickets and tokens are never printed.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from chalicelib.wechat.msgcrypt import MessageCrypt

TOKEN_PATH = "/cgi-bin/component/api_component_token"  # noqa: S105 - a path
JSCODE2SESSION_PATH = "/sns/component/jscode2session"
TICKET_ROUTE = "/wechat/component/ticket"
TOKEN_TTL = 7200
TICKET_TTL = 12 * 3600

Error = Callable[[int], dict[str, Any]]


class FakeComponent:
    """One third-party platform: its appid, appsecret, message token and EncodingAESKey, and the
    mini-programs that authorized it (`authorized`; None, as `make run` has it: every one)."""

    def __init__(
        self,
        appid: str,
        secret: str,
        token: str,
        aes_key: str,
        *,
        authorized: set[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.appid = appid
        self._secret = secret
        self._crypt = MessageCrypt(token, aes_key, appid)
        self.authorized = None if authorized is None else set(authorized)
        self._clock = clock
        self._lock = threading.Lock()
        self._tickets: dict[str, float] = {}  # pushed ticket -> its CreateTime
        self._tokens: dict[str, float] = {}  # issued component_access_token -> its expiry
        self.token_calls = 0
        self.login_calls = 0

    # -- pushes -----------------------------------------------------------------------------

    def ticket_push(
        self, *, ticket: str | None = None, forged: bool = False, create_time: int | None = None
    ) -> tuple[dict[str, str], bytes]:
        """A `component_verify_ticket` push as WeChat sends it: (query, XML body)."""
        now = int(self._clock())
        ticket = ticket or "ticket@@@" + secrets.token_urlsafe(32)
        created = now if create_time is None else create_time
        with self._lock:
            self._tickets[ticket] = created
        message = (
            f"<xml><AppId><![CDATA[{self.appid}]]></AppId><CreateTime>{created}</CreateTime>"
            "<InfoType><![CDATA[component_verify_ticket]]></InfoType>"
            f"<ComponentVerifyTicket><![CDATA[{ticket}]]></ComponentVerifyTicket></xml>"
        )
        timestamp, nonce = str(now), str(secrets.randbelow(10**9))
        encrypted, signature = self._crypt.seal(message, timestamp, nonce)
        if forged:
            signature = MessageCrypt("not-the-token", "a" * 43, self.appid).signature(
                timestamp, nonce, encrypted
            )
        query = {
            "signature": signature,  # (WeChat's over the URL only; not checked by wxauth)
            "timestamp": timestamp,
            "nonce": nonce,
            "encrypt_type": "aes",
            "msg_signature": signature,
        }
        body = (
            f"<xml><AppId><![CDATA[{self.appid}]]></AppId>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        ).encode()
        return query, body

    def push_ticket(self, base_url: str, *, timeout: float = 10) -> int:
        """POST a new ticket to a running wxauth's ticket route; its HTTP status."""
        query, body = self.ticket_push()
        request = urllib.request.Request(  # noqa: S310 - the caller's local server
            f"{base_url.rstrip('/')}{TICKET_ROUTE}?{urlencode(query)}",
            data=body,
            headers={"Content-Type": "text/xml"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    # -- the platform's API -----------------------------------------------------------------

    def api_component_token(self, raw: bytes, error: Error) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return error(47001)
        if not isinstance(body, dict):
            return error(47001)
        with self._lock:
            self.token_calls += 1
        appid, secret = body.get("component_appid"), body.get("component_appsecret")
        ticket = body.get("component_verify_ticket")
        if not appid:
            return error(41002)
        if appid != self.appid:
            return error(40013)
        if not secret:
            return error(41004)
        if not isinstance(secret, str) or not secrets.compare_digest(
            secret.encode(), self._secret.encode()
        ):
            return error(40125)
        with self._lock:
            created = self._tickets.get(ticket) if isinstance(ticket, str) else None
            if created is None:
                return error(61006)
            now = self._clock()
            if now > created + TICKET_TTL:
                return error(61005)
            token = "component-at-" + secrets.token_urlsafe(24)
            self._tokens[token] = now + TOKEN_TTL
        return {"component_access_token": token, "expires_in": TOKEN_TTL}

    def jscode2session(
        self,
        query: dict[str, str],
        session: Callable[[str, str], dict[str, Any]],
        error: Error,
    ) -> dict[str, Any]:
        """`session(appid, code)`: the fake WeChat's answer to that mini-program's code."""
        with self._lock:
            self.login_calls += 1
            token = query.get("component_access_token") or ""
            expires = self._tokens.get(token)
        if not token:
            return error(41001)
        if expires is None or expires <= self._clock():
            return error(40001)
        if query.get("component_appid") != self.appid:
            return error(40013)
        if not query.get("js_code"):
            return error(41008)
        if self.authorized is not None and query.get("appid") not in self.authorized:
            return error(61003)
        if query.get("grant_type") != "authorization_code":
            return error(40002)
        return session(query["appid"], query["js_code"])

    def invalidate_tokens(self) -> None:
        """Every component_access_token issued so far is refused from now on (40001)."""
        with self._lock:
            self._tokens.clear()
