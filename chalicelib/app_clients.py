"""Each app's WeChat login client (wiring, for chalicelib/runtime.py): its own appid and secret
(a Secrets Manager ARN or a local value), or, for an app of a third-party platform (issue 24,
item 4), the platform's (chalicelib/wechat/component.py); behind the app's own breaker and the
per-openid limit, as the primary app's (Services.login_wechat)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.errors import ConfigurationError
from chalicelib.limits import LOGIN_PER_OPENID, RateLimiter
from chalicelib.logs import Metrics
from chalicelib.secrets_manager import CachedSecret

if TYPE_CHECKING:
    from chalicelib.identity.apps import App
    from chalicelib.settings import Settings
    from chalicelib.store import Store
    from chalicelib.wechat.breaker import Breaker, GuardedWeChat
    from chalicelib.wechat.client import WeChatClient
    from chalicelib.wechat.component import ComponentPlatform


def guarded_login_client(
    client: WeChatClient,
    breaker: Breaker,
    appid: str,
    limiter: RateLimiter | None,
    clock: Callable[[], float],
) -> GuardedWeChat:
    """An app's WeChat client as logins use it: `code2session` through the app's breaker, then
    the per-openid limit (AUTH_LIMIT_LOGIN_PER_OPENID), keyed by (appid, openid)."""
    from chalicelib.wechat.breaker import GuardedWeChat

    after_exchange = None
    if limiter is not None:
        after_exchange = limiter.hook(LOGIN_PER_OPENID, lambda openid: f"{appid}\x00{openid}")
    return GuardedWeChat(client, breaker, clock=clock, after_exchange=after_exchange)


class AppClients:
    """`make_client` of the app registry (chalicelib/identity/apps.py), and the deployment's
    third-party platform, made at its first use (`platform`)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        secrets_client: Callable[[], Any],
        *,
        limiter: RateLimiter | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        metrics: Metrics | None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._secrets_client = secrets_client
        self._limiter = limiter
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics
        self._lock = threading.Lock()
        self._platform: list[ComponentPlatform | None] = []  # made once

    def platform(self) -> ComponentPlatform | None:
        """WECHAT_COMPONENT_APPID's platform (None: unset), made once per container."""
        with self._lock:
            if not self._platform:
                from chalicelib.wechat.component import platform_of

                self._platform.append(
                    platform_of(
                        self._settings,
                        self._store.wechat,
                        self._secrets_client,
                        clock=self._clock,
                        sleep=self._sleep,
                        metrics=self._metrics,
                    )
                )
            return self._platform[0]

    def forget(self) -> None:
        """After a SnapStart restore: the platform's cached keys are read again."""
        with self._lock:
            made = self._platform[0] if self._platform else None
        if made is not None:
            made.forget()

    def __call__(self, app: App) -> GuardedWeChat:
        from chalicelib.wechat.breaker import Breaker, BreakerPolicy

        settings = self._settings
        client: Any
        if app.component_appid:
            platform = self.platform()
            if platform is None:
                raise ConfigurationError(f"app {app.appid} needs WECHAT_COMPONENT_APPID")
            client = platform.app_client(app.appid, app.component_appid)
        else:
            from chalicelib.wechat.client import WeChatClient

            client = WeChatClient(
                base_url=settings.wechat_api_base,
                appid=app.appid,
                secret=self._secret(app),
                sleep=self._sleep,
            )
        policy = BreakerPolicy.of(settings)
        breaker = Breaker(self._store.guards, appid=app.appid, metrics=self._metrics, policy=policy)
        return guarded_login_client(client, breaker, app.appid, self._limiter, self._clock)

    def _secret(self, app: App) -> Callable[[], str]:
        if app.secret_arn:
            return CachedSecret(self._secrets_client(), app.secret_arn, clock=self._clock)
        if app.secret:
            value = app.secret
            return lambda: value
        raise ConfigurationError(f"app {app.appid} has no secret (secret_arn or secret)")
