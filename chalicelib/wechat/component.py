"""Third-party platform login (第三方平台, 代小程序; issue 24, item 4).

A platform (WECHAT_COMPONENT_APPID) develops mini-programs on their owners' behalf. It holds no
mini-program's AppSecret: a login code of an authorized mini-program (an app of kind
`component`, chalicelib/identity/apps.py) is exchanged with
`GET sns/component/jscode2session?appid=<the mini-program>&js_code&grant_type=authorization_code
&component_appid&component_access_token` (WeChat's 小程序登录, thirdpartyCode2Session). Its
answer is jscode2session's (openid, session_key, unionid); 61003 means the mini-program has not
authorized the platform.

The platform's `component_access_token` (2 hours) comes from
`POST cgi-bin/component/api_component_token` with the platform's appid, appsecret and the latest
`component_verify_ticket`, which WeChat pushes to the platform's 授权事件接收URL every 10 minutes
(valid 12 hours: chalicelib/wechat/push.py keeps the latest). It is brokered like an app's server
token (chalicelib/wechat/broker.py: one shared item per platform, a lease, refreshed ahead, one
forced refresh when WeChat refuses it), sealed under the platform's secret.

The platform's secrets (appsecret, message token, EncodingAESKey) come from Secrets Manager
(WECHAT_COMPONENT_SECRET_ARN: a JSON secret, cached as the app secrets are) or, for a local
server, from WECHAT_COMPONENT_SECRET, _TOKEN and _AES_KEY. One platform per deployment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib import crypto
from chalicelib.errors import (
    ConfigurationError,
    GrantError,
    WeChatConfigError,
    WeChatIpNotAllowed,
    WeChatRateLimited,
    WeChatUnavailable,
)
from chalicelib.logs import Metrics, log_event
from chalicelib.setting_values import ComponentKeys
from chalicelib.wechat.client import (
    StableToken,
    WeChatClient,
    WeChatSession,
    _errcode,
    check_token_errcode,
)
from chalicelib.wechat.msgcrypt import MessageCrypt

if TYPE_CHECKING:
    import requests

    from chalicelib.settings import Settings
    from chalicelib.store.wechat import WeChatTokens
    from chalicelib.wechat.broker import AccessTokenBroker

TOKEN_PATH = "/cgi-bin/component/api_component_token"  # noqa: S105 - a path
JSCODE2SESSION_PATH = "/sns/component/jscode2session"
NOT_AUTHORIZED = 61003  # the mini-program has not authorized the platform
TICKET_REFUSED = frozenset({61005, 61006})  # the verify ticket expired, or is not WeChat's
PLATFORM_CONFIG = frozenset({40013, 40125, 41002, 41004, 61011})  # appid, appsecret
PLATFORM_IP = frozenset({61004, 40164})  # the platform's API IP allowlist
TICKET_LIFETIME = 12 * 3600  # WeChat: a ticket is valid 12 hours
_TOKEN_CONTEXT = b"component-access-token|"
_TICKET_CONTEXT = b"component-verify-ticket|"


class PlatformClient(WeChatClient):
    """The platform's own WeChat calls (its appid, its appsecret): `stable_token` is its
    `api_component_token` (what the broker fetches), `component_code2session` a login."""

    def __init__(self, *, ticket: Callable[[], str], base_url: str, **client: Any) -> None:
        super().__init__(base_url=base_url, **client)
        self._ticket = ticket
        self._base = base_url.rstrip("/")

    def stable_token(self, *, force_refresh: bool = False) -> StableToken:
        """A new component_access_token (WeChat has no `force_refresh` here: every call is
        one). WeChatUnavailable while no usable ticket is kept (the next push mends it)."""
        payload = {
            "component_appid": self._appid,
            "component_appsecret": self._secret(),
            "component_verify_ticket": self._ticket(),
        }
        return self._with_one_retry(
            lambda: self._interpret_token(
                self._send("POST", self._base + TOKEN_PATH, params={}, json=payload)
            )
        )

    def _interpret_token(self, body: dict[str, object]) -> StableToken:
        errcode = _errcode(body)
        if errcode in TICKET_REFUSED:
            log_event("component_ticket_refused", level=logging.WARNING, errcode=errcode)
            raise WeChatUnavailable(f"WeChat refused the verify ticket (errcode {errcode})")
        if errcode in PLATFORM_IP:
            self._configuration_error(errcode, "add this service's egress IP to the platform's")
            raise WeChatIpNotAllowed(f"WeChat refused our egress IP (errcode {errcode})")
        if errcode in PLATFORM_CONFIG:
            self._configuration_error(errcode, "check WECHAT_COMPONENT_APPID and its appsecret")
            raise WeChatConfigError(f"WeChat rejected the platform's appid or secret ({errcode})")
        if errcode in (45009, 45011):
            raise WeChatRateLimited(f"WeChat's component token quota is used (errcode {errcode})")
        if errcode != 0:
            raise WeChatUnavailable(f"WeChat api_component_token answered errcode {errcode}")
        token = body.get("component_access_token")
        return self._interpret_stable_token(
            {"access_token": token, "expires_in": body.get("expires_in")}
        )

    def component_code2session(self, token: str, appid: str, code: str) -> WeChatSession:
        """A mini-program's (`appid`'s) wx.login code, through the platform: as `code2session`
        (a login's timeouts, -1 retried once), WeChatTokenInvalid for a refused token."""
        params = {
            "appid": appid,
            "js_code": code,
            "grant_type": "authorization_code",
            "component_appid": self._appid,
            "component_access_token": token,
        }
        url = self._base + JSCODE2SESSION_PATH
        return self._with_one_retry(
            lambda: self._interpret_session(
                self._send("GET", url, params=params, timeout=self._login_timeout), appid
            )
        )

    def _interpret_session(self, body: dict[str, object], appid: str) -> WeChatSession:
        check_token_errcode(body)
        if body.get("errcode") == NOT_AUTHORIZED:
            self._configuration_error(NOT_AUTHORIZED, f"{appid} has not authorized the platform")
            raise WeChatConfigError(f"{appid} has not authorized the platform (errcode 61003)")
        return self._interpret(body)


@dataclass(frozen=True)
class ComponentApp:
    """An authorized mini-program's login client: `code2session` through the platform, with the
    brokered component_access_token (a refused one is replaced once). Behind the app's breaker
    and the per-openid limit like any app's client (chalicelib/runtime.py)."""

    appid: str
    platform: ComponentPlatform

    def code2session(self, code: str) -> WeChatSession:
        client = self.platform.client
        return self.platform.broker.call(
            lambda token: client.component_code2session(token, self.appid, code)
        )


class ComponentPlatform:
    """The deployment's third-party platform: its keys, its verify ticket, its brokered token
    and its apps' login clients. Built once per container (Services.component)."""

    def __init__(
        self,
        appid: str,
        keys: Callable[[], ComponentKeys],
        tokens: WeChatTokens,
        *,
        base_url: str,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        metrics: Metrics | None = None,
        http: requests.Session | None = None,
    ) -> None:
        self.appid = appid
        self._keys = keys
        self._tokens = tokens
        self._base_url = base_url
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics or Metrics()
        self._http = http

    def crypt(self) -> MessageCrypt:
        """The pushes' signature and encryption, with the current keys."""
        keys = self._keys()
        return MessageCrypt(keys.token, keys.encoding_aes_key, self.appid)

    def keep_ticket(self, ticket: str, create_time: int, now: int) -> bool:
        """Keep a pushed ticket, sealed, unless a newer one is kept (one PutItem)."""
        sealed = crypto.seal(self._secret(), ticket.encode(), context=self._ticket_context)
        return self._tokens.put_ticket(
            self.appid,
            sealed=sealed,
            create_time=create_time,
            now=now,
            expires_at=max(create_time, now) + TICKET_LIFETIME + 86400,
        )

    def ticket(self) -> str:
        """The latest ticket (one GetItem, at each token fetch: every 2 hours or so)."""
        kept = self._tokens.ticket(self.appid)
        if kept is None:
            log_event("component_ticket_missing", level=logging.ERROR, component=self.appid)
            raise WeChatUnavailable(
                "no component_verify_ticket yet: WeChat pushes one to the platform's"
                " authorization event URL every 10 minutes"
            )
        sealed, create_time = kept
        if create_time + TICKET_LIFETIME < self._clock():
            log_event("component_ticket_old", level=logging.WARNING, component=self.appid)
        try:
            return crypto.unseal(self._secret(), sealed, context=self._ticket_context).decode()
        except GrantError as e:  # the appsecret changed since: wait for the next push
            raise WeChatUnavailable("the kept verify ticket was sealed under another secret") from e

    @cached_property
    def client(self) -> PlatformClient:
        return PlatformClient(
            ticket=self.ticket,
            base_url=self._base_url,
            appid=self.appid,
            secret=self._secret,
            http=self._http,
            sleep=self._sleep,
        )

    @cached_property
    def broker(self) -> AccessTokenBroker:
        from chalicelib.wechat.broker import AccessTokenBroker

        return AccessTokenBroker(
            self._tokens,
            self.client,
            appid=self.appid,
            clock=self._clock,
            sleep=self._sleep,
            metrics=self._metrics,
            secret=self._secret,
            seal_context=_TOKEN_CONTEXT,
        )

    def app_client(self, appid: str, component_appid: str | None) -> ComponentApp:
        """The login client of an app of this platform; ConfigurationError (500, logged) for an
        app registered with another platform's appid."""
        if component_appid != self.appid:
            raise ConfigurationError(
                f"app {appid} is of platform {component_appid}, not of WECHAT_COMPONENT_APPID"
            )
        return ComponentApp(appid, self)

    def _secret(self) -> str:
        return self._keys().secret

    def forget(self) -> None:
        """Drop the cached keys (after a SnapStart restore): read again at their next use."""
        reloaded = getattr(self._keys, "__self__", None)  # a Reloaded's bound `get`
        if reloaded is not None:
            reloaded.forget()

    @property
    def _ticket_context(self) -> bytes:
        return _TICKET_CONTEXT + self.appid.encode()


def platform_of(
    settings: Settings,
    tokens: WeChatTokens,
    secrets_client: Callable[[], Any],
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    metrics: Metrics | None = None,
) -> ComponentPlatform | None:
    """The settings' platform (None: WECHAT_COMPONENT_APPID unset), its keys from Secrets
    Manager (a JSON secret, cached and reloaded as the app secrets are) or the local settings."""
    if settings.component_appid is None:
        return None
    keys: Callable[[], ComponentKeys]
    if settings.component_secret_arn:
        from chalicelib.secrets_manager import Reloaded, fetch_secret

        arn = settings.component_secret_arn
        keys = Reloaded(
            lambda: ComponentKeys.from_json(
                fetch_secret(secrets_client(), arn), source="WECHAT_COMPONENT_SECRET_ARN"
            ),
            name="component_keys",
            clock=clock,
            metrics=metrics,
        ).get
    else:
        local = settings.component
        if local is None:
            raise ConfigurationError("WECHAT_COMPONENT_APPID has no secrets")
        keys = lambda: local  # noqa: E731
    return ComponentPlatform(
        settings.component_appid,
        keys,
        tokens,
        base_url=settings.wechat_api_base,
        clock=clock,
        sleep=sleep,
        metrics=metrics,
    )
