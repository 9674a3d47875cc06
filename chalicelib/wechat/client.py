"""WeChat's `jscode2session`, `sns/oauth2/access_token`, `cgi-bin/stable_token` and
`getuserphonenumber`, wrapped like a careful SDK.

Explicit connect/read timeouts; the body parsed as JSON whatever its Content-Type (WeChat
answers `text/plain`); `errcode` checked even on HTTP 200; one quick retry for WeChat's
"system busy" (-1) and for transport failures; every failure turned into a WeChatError.
`jscode2session` (mini-programs) and `sns/oauth2/access_token` (official-account web pages and
mobile apps: chalicelib/identity/apps.py) need no access_token; `stable_token` is how the broker
(`chalicelib/wechat/broker.py`) gets one; `getuserphonenumber` takes one from its caller (the
broker) and raises WeChatTokenInvalid when WeChat refuses it, without retrying itself. Other
calls made *with* an access_token check their errcode with `check_token_errcode`.
"""

from __future__ import annotations

import json as _json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from chalicelib.errors import (
    WeChatAttemptFailed,
    WeChatBusy,
    WeChatCodeRejected,
    WeChatConfigError,
    WeChatIpNotAllowed,
    WeChatQuotaExhausted,
    WeChatRateLimited,
    WeChatTokenInvalid,
    WeChatUnavailable,
    WeChatUserBlocked,
)
from chalicelib.logs import log_event
from chalicelib.wechat.answers import OAuthAccess, PhoneInfo, StableToken, WeChatSession

if TYPE_CHECKING:
    import requests

T = TypeVar("T")

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
# stable_token (WeChat's docs, getStableAccessToken, and its global error codes). There 40001
# means a wrong AppSecret; on every call made *with* an access_token it means a refused token.
TOKEN_CONFIG_ERRORS = frozenset({40001, 40002, 40013, 40125, 41002, 41004})
TOKEN_QUOTA = frozenset({45009, 45011})  # daily limit (force_refresh: 20 a day), frequency
IP_NOT_ALLOWED = frozenset({40164, 89501, 89503, 89506, 89507})  # API IP allowlist
MIN_EXPIRES_IN = 60
MAX_ACCESS_TOKEN_LENGTH = 2048  # WeChat: "keep at least 512 characters"
# A login's code exchange (jscode2session, sns/oauth2): a user waits on it, and a brownout
# holds every login for its whole timeout. WeChat publishes no latency figures; an answer
# comes in a few hundred ms (bench/cost.py assumes 200), so 1 s to connect (a handshake is
# one round trip, even from outside mainland China) and 2 s for the answer (10 times that) cut
# only a WeChat that is failing. Two attempts at most: 2 x (1 + 2) + 0.2 = 6.2 s, was 12.2.
LOGIN_CONNECT_TIMEOUT = 1.0
LOGIN_READ_TIMEOUT = 2.0


def check_token_errcode(body: dict[str, object]) -> None:
    """For an API called with an access_token: WeChatTokenInvalid if WeChat refused the token
    (40001, 42001, 40014), so that `AccessTokenBroker.call` replaces it and retries once."""
    errcode = body.get("errcode", 0)
    if errcode in TOKEN_INVALID and not isinstance(errcode, bool):
        raise WeChatTokenInvalid(f"WeChat refused the access_token (errcode {errcode})")


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
        login_connect_timeout: float = LOGIN_CONNECT_TIMEOUT,
        login_read_timeout: float = LOGIN_READ_TIMEOUT,
        retry_delay: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._url = base_url.rstrip("/") + "/sns/jscode2session"
        self._phone_url = base_url.rstrip("/") + "/wxa/business/getuserphonenumber"
        self._stable_token_url = base_url.rstrip("/") + "/cgi-bin/stable_token"
        self._oauth2_url = base_url.rstrip("/") + "/sns/oauth2/access_token"
        self._appid = appid
        self._secret = secret
        self._http = http  # made at the first login: `import requests` is not needed before
        self._timeout = (connect_timeout, read_timeout)  # stable_token, getuserphonenumber
        self._login_timeout = (login_connect_timeout, login_read_timeout)
        self._retry_delay = retry_delay
        self._sleep = sleep

    @property
    def secret(self) -> Callable[[], str]:
        """The app secret's getter (the broker derives its sealing key from the secret)."""
        return self._secret

    def code2session(self, code: str) -> WeChatSession:
        params = {
            "appid": self._appid,
            "secret": self._secret(),
            "js_code": code,
            "grant_type": "authorization_code",
        }
        return self._with_one_retry(
            lambda: self._interpret(
                self._send("GET", self._url, params=params, timeout=self._login_timeout)
            )
        )

    def oauth2_access_token(self, code: str) -> OAuthAccess:
        """`GET sns/oauth2/access_token`: an official-account web page's (or a mobile app's)
        OAuth code for the user's openid and unionid. Errors as `code2session`'s: the code
        rejected (40029, 40163, 41008), our appid or secret (40013, 40125, ...), -1 retried once.
        """
        params = {
            "appid": self._appid,
            "secret": self._secret(),
            "code": code,
            "grant_type": "authorization_code",
        }
        return self._with_one_retry(
            lambda: self._interpret_oauth2(
                self._send("GET", self._oauth2_url, params=params, timeout=self._login_timeout)
            )
        )

    def _interpret_oauth2(self, body: dict[str, object]) -> OAuthAccess:
        self._check_code_errcode(body, "check the app's appid and secret")
        openid, token = body.get("openid"), body.get("access_token")
        unionid, scope = body.get("unionid"), body.get("scope")
        if not isinstance(openid, str) or not openid or not isinstance(token, str):
            raise WeChatUnavailable("WeChat answered without openid or access_token")
        return OAuthAccess(
            openid=openid,
            unionid=unionid if isinstance(unionid, str) and unionid else None,
            access_token=token,
            scope=scope if isinstance(scope, str) else None,
        )

    def _with_one_retry(self, attempt: Callable[[], T], *, retry_if_sent: bool = True) -> T:
        """`attempt()`, and once more after `retry_delay` if it failed in a way worth it
        (WeChatAttemptFailed); WeChatUnavailable if that fails too. With `retry_if_sent` false, a
        failure after which WeChat may have acted on the request is not retried."""
        try:
            return attempt()
        except WeChatAttemptFailed as e:
            if e.maybe_sent and not retry_if_sent:
                raise WeChatUnavailable(f"WeChat did not answer in time: {e}") from e
            self._sleep(self._retry_delay)
        try:
            return attempt()
        except WeChatAttemptFailed as e:
            kind = WeChatBusy if e.busy else WeChatUnavailable
            raise kind(f"WeChat unavailable after one retry: {e}") from e

    def stable_token(self, *, force_refresh: bool = False) -> StableToken:
        """`POST cgi-bin/stable_token`: the app's server access_token. Normal mode answers the
        same token while it is valid; `force_refresh` invalidates it (WeChat: 20 a day, 30 s
        apart). Raises WeChatRateLimited (45009, 45011), WeChatIpNotAllowed (40164, ...),
        WeChatConfigError (wrong appid or secret), WeChatUnavailable."""
        payload = {
            "grant_type": "client_credential",
            "appid": self._appid,
            "secret": self._secret(),
            "force_refresh": force_refresh,
        }
        if force_refresh:
            # No retry: a forced refresh whose answer was lost may have happened, and a second
            # one would invalidate its token too (or get 45011: less than 30 s since the last).
            try:
                return self._stable_token_attempt(payload)
            except WeChatAttemptFailed as e:
                raise WeChatUnavailable(f"WeChat forced refresh failed: {e}") from e
        return self._with_one_retry(lambda: self._stable_token_attempt(payload))

    def _stable_token_attempt(self, payload: dict[str, object]) -> StableToken:
        return self._interpret_stable_token(
            self._send("POST", self._stable_token_url, params={}, json=payload)
        )

    def get_phone_number(self, access_token: str, code: str, openid: str) -> PhoneInfo:
        """Exchange a `getPhoneNumber` button code; WeChat checks that it belongs to `openid`.

        WeChat charges per successful call and a code works once: what may have reached WeChat
        (a read timeout, an HTTP 5xx, a body that is not JSON) is not retried, only -1 and a
        connection that failed.
        """
        params = {"access_token": access_token}
        body = {"code": code, "openid": openid}
        return self._with_one_retry(
            lambda: self._interpret_phone(
                self._send("POST", self._phone_url, params=params, json=body)
            ),
            retry_if_sent=False,
        )

    def call_with_token(
        self,
        path: str,
        access_token: str,
        interpret: Callable[[dict[str, object]], T],
        *,
        query: dict[str, str] | None = None,
        json: object = None,
    ) -> T:
        """`GET` (with `json`: `POST`) `<base><path>?access_token=...` for a WeChat API called
        with the server access_token (chalicelib/wechat/user_api.py): WeChatTokenInvalid for a
        refused token (the broker replaces it and retries once), -1 and transport failures
        retried once (for a check with no effect, as these are), else `interpret(body)`."""
        url, method = self._base + path, "GET" if json is None else "POST"
        params = {**(query or {}), "access_token": access_token}

        def attempt() -> T:
            body = self._send(method, url, params=params, json=json)
            _errcode(body)  # -1: WeChatAttemptFailed, retried
            check_token_errcode(body)
            return interpret(body)

        return self._with_one_retry(attempt)

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str],
        json: object = None,
        timeout: tuple[float, float] | None = None,
    ) -> dict[str, object]:
        # requests' messages carry the full URL, whose query holds the app secret, the code or
        # the access_token: raise outside the handler so that not even __context__ keeps it.
        import requests  # a cold start that only verifies or refreshes never imports it

        if self._http is None:
            self._http = requests.Session()
        response, failure, maybe_sent = None, "", False
        try:
            response = self._http.request(
                method, url, params=params, json=json, timeout=timeout or self._timeout
            )
        except requests.RequestException as e:
            failure = type(e).__name__
            maybe_sent = isinstance(e, requests.ReadTimeout)
        if response is None:
            raise WeChatAttemptFailed(f"transport failure ({failure})", maybe_sent=maybe_sent)
        if response.status_code >= 500:
            raise WeChatAttemptFailed(f"HTTP {response.status_code}", maybe_sent=True)
        if response.status_code != 200:
            raise WeChatUnavailable(f"WeChat answered HTTP {response.status_code}")
        try:
            body = _json.loads(response.content)
        except (ValueError, RecursionError):
            body = None
        if body is None:
            raise WeChatAttemptFailed("response is not JSON", maybe_sent=True)
        if not isinstance(body, dict):
            raise WeChatAttemptFailed("response is not a JSON object", maybe_sent=True)
        return body

    def _configuration_error(self, errcode: int, hint: str) -> None:
        """Log a fault of the operator's (never a user's): the errcode and what to check."""
        log_event(
            "wechat_configuration_error",
            level=logging.ERROR,
            errcode=errcode,
            appid=self._appid,
            hint=hint,
        )

    def _interpret_stable_token(self, body: dict[str, object]) -> StableToken:
        errcode = _errcode(body)
        if errcode in TOKEN_QUOTA:
            raise WeChatRateLimited(f"WeChat stable_token quota exceeded (errcode {errcode})")
        if errcode in IP_NOT_ALLOWED:
            self._configuration_error(
                errcode,
                "add this service's egress IP to the app's API IP allowlist (docs/operators.md)",
            )
            raise WeChatIpNotAllowed(f"WeChat refused our egress IP (errcode {errcode})")
        if errcode in TOKEN_CONFIG_ERRORS:
            self._configuration_error(errcode, "check WECHAT_APPID and the app secret")
            raise WeChatConfigError(f"WeChat rejected our appid or secret (errcode {errcode})")
        if errcode != 0:
            raise WeChatUnavailable(f"WeChat stable_token answered errcode {errcode}")
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if (
            not isinstance(token, str)
            or not token
            or len(token) > MAX_ACCESS_TOKEN_LENGTH
            or not isinstance(expires_in, int)
            or isinstance(expires_in, bool)
            or expires_in < MIN_EXPIRES_IN
        ):
            raise WeChatUnavailable("WeChat stable_token answered without a usable token")
        return StableToken(access_token=token, expires_in=expires_in)

    def _check_code_errcode(self, body: dict[str, object], config_hint: str) -> None:
        """The errcode of a code exchange (jscode2session, sns/oauth2/access_token): the code
        rejected, the user blocked, the quota, our appid or secret, anything else non-zero."""
        errcode = _errcode(body)
        if errcode in CODE_REJECTED:
            raise WeChatCodeRejected(f"WeChat rejected the code (errcode {errcode})")
        if errcode == USER_BLOCKED:
            raise WeChatUserBlocked("WeChat flagged this user as high-risk (errcode 40226)")
        if errcode == RATE_LIMITED:
            raise WeChatRateLimited("WeChat quota exceeded (errcode 45011)")
        if errcode in CONFIG_ERRORS:
            self._configuration_error(errcode, config_hint)
            raise WeChatConfigError(f"WeChat rejected our appid or secret (errcode {errcode})")
        if errcode != 0:
            raise WeChatUnavailable(f"WeChat answered errcode {errcode}")

    def _interpret(self, body: dict[str, object]) -> WeChatSession:
        self._check_code_errcode(body, "check WECHAT_APPID and the app secret")
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
        errcode = _errcode(body)
        check_token_errcode(body)
        if errcode in PHONE_CODE_REJECTED:
            raise WeChatCodeRejected(f"WeChat rejected the phone code (errcode {errcode})")
        if errcode in QUOTA_EXHAUSTED:
            raise WeChatQuotaExhausted(f"WeChat phone-number quota used up (errcode {errcode})")
        if errcode == RATE_LIMITED:
            raise WeChatRateLimited("WeChat quota exceeded (errcode 45011)")
        if errcode in PHONE_CONFIG_ERRORS:
            self._configuration_error(errcode, "the mini-program lacks the phone-number permission")
            raise WeChatConfigError(f"WeChat refused the phone-number API (errcode {errcode})")
        if errcode != 0:
            raise WeChatUnavailable(f"WeChat answered errcode {errcode}")
        info = body.get("phone_info")
        if not isinstance(info, dict):
            raise WeChatUnavailable("WeChat answered without phone_info")
        return _phone_info(info)


def _errcode(body: dict[str, object]) -> int:
    """WeChat's errcode of an answer (0 when absent); -1 (system busy) is worth one retry."""
    errcode = body.get("errcode", 0)
    if not isinstance(errcode, int) or isinstance(errcode, bool):
        raise WeChatUnavailable("WeChat errcode is not an integer")
    if errcode == SYSTEM_BUSY:
        raise WeChatAttemptFailed("WeChat system busy (-1)", busy=True)
    return errcode


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
