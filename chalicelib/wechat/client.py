"""WeChat's `jscode2session`, wrapped like a careful SDK.

Explicit connect/read timeouts; the body parsed as JSON whatever its Content-Type (WeChat
answers `text/plain`); `errcode` checked even on HTTP 200; one quick retry for WeChat's
"system busy" (-1) and for transport failures; every failure turned into a WeChatError.
No access_token is needed (or fetched) for this call.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chalicelib.errors import (
    WeChatCodeRejected,
    WeChatConfigError,
    WeChatRateLimited,
    WeChatUnavailable,
    WeChatUserBlocked,
)
from chalicelib.logs import log_event

if TYPE_CHECKING:
    import requests

CODE_REJECTED = frozenset({40029, 40163, 41008})
CONFIG_ERRORS = frozenset({40013, 40125, 41002, 41004})
USER_BLOCKED = 40226
RATE_LIMITED = 45011
SYSTEM_BUSY = -1


@dataclass(frozen=True)
class WeChatSession:
    openid: str
    unionid: str | None
    session_key: str = field(repr=False)


class _Retryable(Exception):
    """One attempt failed in a way worth one more try."""


class WeChatClient:
    def __init__(
        self,
        *,
        base_url: str,
        appid: str,
        secret: Callable[[], str],
        http: requests.Session | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 4.0,
        retry_delay: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = base_url.rstrip("/") + "/sns/jscode2session"
        self._appid = appid
        self._secret = secret
        self._http = http  # made at the first login: `import requests` is not needed before
        self._timeout = (connect_timeout, read_timeout)
        self._retry_delay = retry_delay
        self._sleep = sleep

    def code2session(self, code: str) -> WeChatSession:
        params = {
            "appid": self._appid,
            "secret": self._secret(),
            "js_code": code,
            "grant_type": "authorization_code",
        }
        try:
            return self._attempt(params)
        except _Retryable:
            self._sleep(self._retry_delay)
        try:
            return self._attempt(params)
        except _Retryable as e:
            raise WeChatUnavailable(f"WeChat unavailable after one retry: {e}") from e

    def _attempt(self, params: dict[str, str]) -> WeChatSession:
        # requests' messages carry the full URL, whose query holds the app secret and the
        # code: raise outside the handler so that not even __context__ keeps that exception.
        import requests  # a cold start that only verifies or refreshes never imports it

        if self._http is None:
            self._http = requests.Session()
        response, failure = None, ""
        try:
            response = self._http.get(self._url, params=params, timeout=self._timeout)
        except requests.RequestException as e:
            failure = type(e).__name__
        if response is None:
            raise _Retryable(f"transport failure ({failure})")
        if response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise WeChatUnavailable(f"WeChat answered HTTP {response.status_code}")
        try:
            body = json.loads(response.content)
        except (ValueError, RecursionError):
            body = None
        if body is None:
            raise _Retryable("response is not JSON")
        if not isinstance(body, dict):
            raise _Retryable("response is not a JSON object")
        return self._interpret(body)

    def _interpret(self, body: dict[str, object]) -> WeChatSession:
        errcode = body.get("errcode", 0)
        if not isinstance(errcode, int) or isinstance(errcode, bool):
            raise WeChatUnavailable("WeChat errcode is not an integer")
        if errcode == SYSTEM_BUSY:
            raise _Retryable("WeChat system busy (-1)")
        if errcode in CODE_REJECTED:
            raise WeChatCodeRejected(f"WeChat rejected the code (errcode {errcode})")
        if errcode == USER_BLOCKED:
            raise WeChatUserBlocked("WeChat flagged this user as high-risk (errcode 40226)")
        if errcode == RATE_LIMITED:
            raise WeChatRateLimited("WeChat quota exceeded (errcode 45011)")
        if errcode in CONFIG_ERRORS:
            log_event(
                "wechat_configuration_error",
                level=logging.ERROR,
                errcode=errcode,
                appid=self._appid,
                hint="check WECHAT_APPID and the app secret",
            )
            raise WeChatConfigError(f"WeChat rejected our appid or secret (errcode {errcode})")
        if errcode != 0:
            raise WeChatUnavailable(f"WeChat answered errcode {errcode}")
        openid, session_key = body.get("openid"), body.get("session_key")
        unionid = body.get("unionid")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str):
            raise WeChatUnavailable("WeChat answered without openid or session_key")
        return WeChatSession(
            openid=openid,
            unionid=unionid if isinstance(unionid, str) and unionid else None,
            session_key=session_key,
        )
