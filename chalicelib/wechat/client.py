"""WeChat's `jscode2session` and `getuserphonenumber`, wrapped like a careful SDK.

Explicit connect/read timeouts; the body parsed as JSON whatever its Content-Type (WeChat
answers `text/plain`); `errcode` checked even on HTTP 200; one quick retry for WeChat's
"system busy" (-1) and for transport failures; every failure turned into a WeChatError.
`jscode2session` needs no access_token; `getuserphonenumber` takes one from its caller (the
broker) and raises WeChatTokenInvalid when WeChat refuses it, without retrying itself.
"""

from __future__ import annotations

import json as _json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chalicelib.errors import (
    WeChatCodeRejected,
    WeChatConfigError,
    WeChatQuotaExhausted,
    WeChatRateLimited,
    WeChatTokenInvalid,
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
# getuserphonenumber. 40003 (invalid openid) is what this client takes for "the code is not this
# openid's": WeChat documents the check (the `openid` field) but not its errcode.
TOKEN_INVALID = frozenset({40001, 42001, 40014})
PHONE_CODE_REJECTED = frozenset({40029, 40003})
QUOTA_EXHAUSTED = frozenset({1400001, 45009})
PHONE_CONFIG_ERRORS = frozenset({48001})  # the mini-program lacks the phone-number permission
MAX_PHONE_DIGITS = 15  # E.164


@dataclass(frozen=True)
class WeChatSession:
    openid: str
    unionid: str | None
    session_key: str = field(repr=False)


@dataclass(frozen=True)
class PhoneInfo:
    """A phone number as WeChat returns it; `e164` is `+<country_code><pure_phone_number>`."""

    country_code: str
    pure_phone_number: str = field(repr=False)

    @property
    def e164(self) -> str:
        return f"+{self.country_code}{self.pure_phone_number}"


class _Retryable(Exception):
    """One attempt failed in a way worth one more try."""

    def __init__(self, message: str, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent  # WeChat may have acted on the request (it was sent)


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
        self._phone_url = base_url.rstrip("/") + "/wxa/business/getuserphonenumber"
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
        return self._interpret(self._send("GET", self._url, params=params))

    def get_phone_number(self, access_token: str, code: str, openid: str) -> PhoneInfo:
        """Exchange a `getPhoneNumber` button code; WeChat checks that it belongs to `openid`.

        WeChat charges per successful call and a code works once: what may have reached WeChat
        (a read timeout, an HTTP 5xx, a body that is not JSON) is not retried, only -1 and a
        connection that failed.
        """
        params = {"access_token": access_token}
        body = {"code": code, "openid": openid}
        try:
            return self._phone_attempt(params, body)
        except _Retryable as e:
            if e.maybe_sent:
                raise WeChatUnavailable(f"WeChat did not answer in time: {e}") from e
            self._sleep(self._retry_delay)
        try:
            return self._phone_attempt(params, body)
        except _Retryable as e:
            raise WeChatUnavailable(f"WeChat unavailable after one retry: {e}") from e

    def _phone_attempt(self, params: dict[str, str], body: dict[str, str]) -> PhoneInfo:
        return self._interpret_phone(self._send("POST", self._phone_url, params=params, json=body))

    def _send(
        self, method: str, url: str, *, params: dict[str, str], json: object = None
    ) -> dict[str, object]:
        # requests' messages carry the full URL, whose query holds the app secret, the code or
        # the access_token: raise outside the handler so that not even __context__ keeps it.
        import requests  # a cold start that only verifies or refreshes never imports it

        if self._http is None:
            self._http = requests.Session()
        response, failure, maybe_sent = None, "", False
        try:
            response = self._http.request(
                method, url, params=params, json=json, timeout=self._timeout
            )
        except requests.RequestException as e:
            failure = type(e).__name__
            maybe_sent = isinstance(e, requests.ReadTimeout)
        if response is None:
            raise _Retryable(f"transport failure ({failure})", maybe_sent=maybe_sent)
        if response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}", maybe_sent=True)
        if response.status_code != 200:
            raise WeChatUnavailable(f"WeChat answered HTTP {response.status_code}")
        try:
            body = _json.loads(response.content)
        except (ValueError, RecursionError):
            body = None
        if body is None:
            raise _Retryable("response is not JSON", maybe_sent=True)
        if not isinstance(body, dict):
            raise _Retryable("response is not a JSON object", maybe_sent=True)
        return body

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

    def _interpret_phone(self, body: dict[str, object]) -> PhoneInfo:
        errcode = body.get("errcode", 0)
        if not isinstance(errcode, int) or isinstance(errcode, bool):
            raise WeChatUnavailable("WeChat errcode is not an integer")
        if errcode == SYSTEM_BUSY:
            raise _Retryable("WeChat system busy (-1)")
        if errcode in TOKEN_INVALID:
            raise WeChatTokenInvalid(f"WeChat refused the server access_token (errcode {errcode})")
        if errcode in PHONE_CODE_REJECTED:
            raise WeChatCodeRejected(f"WeChat rejected the phone code (errcode {errcode})")
        if errcode in QUOTA_EXHAUSTED:
            raise WeChatQuotaExhausted(f"WeChat phone-number quota used up (errcode {errcode})")
        if errcode == RATE_LIMITED:
            raise WeChatRateLimited("WeChat quota exceeded (errcode 45011)")
        if errcode in PHONE_CONFIG_ERRORS:
            log_event(
                "wechat_configuration_error",
                level=logging.ERROR,
                errcode=errcode,
                appid=self._appid,
                hint="the mini-program lacks the phone-number permission",
            )
            raise WeChatConfigError(f"WeChat refused the phone-number API (errcode {errcode})")
        if errcode != 0:
            raise WeChatUnavailable(f"WeChat answered errcode {errcode}")
        info = body.get("phone_info")
        if not isinstance(info, dict):
            raise WeChatUnavailable("WeChat answered without phone_info")
        return _phone_info(info)


def _phone_info(info: dict[str, object]) -> PhoneInfo:
    """countryCode comes as "86" (documented as a number: accept both); digits only, E.164."""
    country, pure = info.get("countryCode"), info.get("purePhoneNumber")
    if isinstance(country, int) and not isinstance(country, bool):
        country = str(country)
    if not isinstance(country, str) or not isinstance(pure, str):
        raise WeChatUnavailable("WeChat answered a malformed phone_info")
    country = country.strip().removeprefix("+")
    pure = pure.strip()
    if (
        not (country.isascii() and country.isdigit() and pure.isascii() and pure.isdigit())
        or len(country) + len(pure) > MAX_PHONE_DIGITS
        or country.startswith("0")
    ):
        raise WeChatUnavailable("WeChat answered a malformed phone_info")
    return PhoneInfo(country_code=country, pure_phone_number=pure)
