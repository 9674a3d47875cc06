"""The app of a phone code: its appid, WeChat client and server access_token broker.

A code from a mini-program's phone-number button is that app's, and WeChat takes it only with
that app's server access_token (its own broker: one per appid) and the user's openid in that
app (issue 22, item 10). `AppPhones` finds the app by the session's `client_id` (`POST
/auth/phone`) or by the login's app (a phone login, issue 24: chalicelib/phone_login.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from chalicelib.errors import GrantError, RequestError
from chalicelib.logs import Metrics

if TYPE_CHECKING:
    from chalicelib.identity.apps import App, AppRegistry
    from chalicelib.store.wechat import WeChatTokens
    from chalicelib.wechat.client import WeChatClient

T = TypeVar("T")


class TokenBroker(Protocol):
    """The server access_token broker (chalicelib/wechat/broker.py) as this module uses it."""

    def call(self, request: Callable[[str], T]) -> T:
        """request(token); on WeChatTokenInvalid it re-reads or refreshes once and retries once."""
        ...


@dataclass(frozen=True)
class PhoneApp:
    """What a phone code is exchanged with: its app's appid, WeChat client and broker."""

    appid: str
    wechat: WeChatClient
    broker: TokenBroker


class AppPhones:
    """The app of a session, for its phone codes: found by the session's `client_id` in the
    registry (disabled apps too: the session is still live), with its WeChat client and a
    broker of its own server access_token, made once per appid per container."""

    def __init__(
        self,
        apps: AppRegistry,
        primary: PhoneApp,
        tokens: WeChatTokens,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        metrics: Metrics | None = None,
    ) -> None:
        """`tokens`: the brokers' items (one per appid, chalicelib/store/wechat.py)."""
        self._apps = apps
        self._primary = primary
        self._tokens = tokens
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics or Metrics()
        self._made: dict[str, PhoneApp] = {}
        self._lock = threading.Lock()

    def of(self, client_id: str | None) -> PhoneApp:
        """GrantError if no app of this deployment has `client_id` (None: the primary app)."""
        app = self._apps.primary if client_id is None else self._apps.by_client_id(client_id)
        if app is None:
            raise GrantError("the app of this session is not an app of this deployment")
        return self.of_app(app)

    def of_app(self, app: App) -> PhoneApp:
        """The app's phone client; RequestError for a kind without a phone-number button (an
        official account's web page, a mobile app, a third-party platform's app: issue 24)."""
        from chalicelib.identity.apps import kind_of

        if not kind_of(app).phone_codes:
            raise RequestError(f"apps of kind {app.kind} take no phone codes")
        if app.primary:
            return self._primary
        with self._lock:
            made = self._made.get(app.appid)
            if made is None:
                from chalicelib.wechat.broker import AccessTokenBroker

                wechat = self._apps.wechat(app)
                broker = AccessTokenBroker(
                    self._tokens,
                    wechat,
                    appid=app.appid,
                    clock=self._clock,
                    sleep=self._sleep,
                    metrics=self._metrics,
                    secret=wechat.secret,
                )
                made = self._made[app.appid] = PhoneApp(app.appid, wechat, broker)
            return made
