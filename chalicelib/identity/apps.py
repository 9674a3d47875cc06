"""The apps a deployment serves, and their kinds.

App #1 is always the one of the settings (`WECHAT_APPID`, `WECHAT_SECRET(_ARN)`, kind
mini-program, `client_id` = appid, `aud` = `AUTH_AUDIENCE`), so a single-app deployment and its
tokens are what they were. More apps are `APP` items (chalicelib/store/apps.py), added with
`wxauth-admin app add`.

The primary app may have an `APP` item too, holding only `enabled` (`app disable` of it). The
items are read with one Query of the `APP` partition, cached per container for
`AUTH_APPS_CACHE_TTL` seconds (a login does not pay for them); a disabled app is still refused
at once, by a check of its item in the login's finishing transaction (`Logins.finish`).

A kind is a small class with the code exchange, registered in `KINDS` by name
(`register_kind`); the login service never branches on it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from chalicelib.errors import AppDisabled, RequestError, UnknownApp
from chalicelib.store.apps import MINI_PROGRAM, App, Apps

if TYPE_CHECKING:
    from chalicelib.wechat.client import WeChatClient

__all__ = ["App", "AppRegistry", "Exchanged", "KINDS", "kind_of", "register_kind"]

APPID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_APPID_LENGTH = 64
DEFAULT_CACHE_TTL = 60
RELOAD_ON_MISS_AFTER = 5  # seconds: an unknown appid reloads a cache at least this old

OFFICIAL_ACCOUNT = "official-account"
MOBILE_APP = "mobile-app"


@dataclass(frozen=True)
class Exchanged:
    """Who a code belongs to, as WeChat said: the app's openid, and the unionid if bound.
    Nothing else of the exchange (session_key, the user access_token) leaves the kind."""

    openid: str
    unionid: str | None


class AppKind(Protocol):
    name: str
    # May a used code be replayed without its first caller's `login_nonce` (for a short while,
    # AUTH_LOGIN_REPLAY_WITHOUT_NONCE)? Only where the code never travels in a URL.
    replays_without_nonce: bool

    def exchange(self, wechat: WeChatClient, code: str) -> Exchanged: ...


class MiniProgram:
    """`wx.login()` codes: `sns/jscode2session` (the session_key is dropped here). The code
    goes from `wx.login()` to the app's own request body: it never appears in a URL."""

    name = MINI_PROGRAM
    replays_without_nonce = True

    def exchange(self, wechat: WeChatClient, code: str) -> Exchanged:
        wx = wechat.code2session(code)
        return Exchanged(openid=wx.openid, unionid=wx.unionid)


class OAuthCode:
    """OAuth codes: an official account's web page (`snsapi_base`/`snsapi_userinfo`) or a
    mobile app's (open-platform appid and secret): both `sns/oauth2/access_token`. A web page's
    code arrives in a redirect URL (`?code=...&state=...`), which leaks through `Referer`,
    analytics and shared links: its replay always needs the first caller's nonce."""

    replays_without_nonce = False

    def __init__(self, name: str) -> None:
        self.name = name

    def exchange(self, wechat: WeChatClient, code: str) -> Exchanged:
        access = wechat.oauth2_access_token(code)
        return Exchanged(openid=access.openid, unionid=access.unionid)


KINDS: dict[str, AppKind] = {}


def register_kind(kind: AppKind) -> AppKind:
    """Make a kind available to `app add --kind` and to logins."""
    KINDS[kind.name] = kind
    return kind


for _kind in (MiniProgram(), OAuthCode(OFFICIAL_ACCOUNT), OAuthCode(MOBILE_APP)):
    register_kind(_kind)


def validate_appid(appid: str) -> str:
    if not APPID_RE.fullmatch(appid):
        raise RequestError(f"appid must be 1 to {MAX_APPID_LENGTH} of A-Z a-z 0-9 _ -")
    return appid


def kind_of(app: App) -> AppKind:
    """The kind of `app`: its code exchange."""
    return KINDS[app.kind]


class AppRegistry:
    """The apps of this deployment: the primary one from the settings and the `APP` items."""

    def __init__(
        self,
        store: Apps,
        primary: App,
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = DEFAULT_CACHE_TTL,
        make_client: Callable[[App], WeChatClient] | None = None,
    ) -> None:
        self._store = store
        self._primary = primary
        self._clock = clock
        self._max_age = max_age
        self._make_client = make_client
        self._lock = threading.Lock()
        self._apps: dict[str, App] | None = None
        self._loaded_at = 0.0
        self._clients: dict[tuple[str, str | None, str | None], WeChatClient] = {}

    @property
    def primary(self) -> App:
        return self._primary

    # -- reading --------------------------------------------------------------------------

    def apps(self, *, fresh: bool = False) -> dict[str, App]:
        """Every app by appid (cached `max_age` seconds; one Query when it is not)."""
        with self._lock:
            if fresh or self._apps is None or self._clock() - self._loaded_at >= self._max_age:
                self._apps = self._load()
                self._loaded_at = self._clock()
            return self._apps

    def _age(self) -> float:
        with self._lock:
            return self._clock() - self._loaded_at

    def invalidate(self) -> None:
        with self._lock:
            self._apps = None

    def _load(self) -> dict[str, App]:
        apps = {self._primary.appid: self._primary}
        for app in self._store.all():
            if app.appid == self._primary.appid:  # only `enabled` of the primary is stored
                apps[app.appid] = App(**{**self._primary.__dict__, "enabled": app.enabled})
            else:
                apps[app.appid] = app
        return apps

    def resolve(self, appid: str | None) -> App:
        """The app a login names; `appid` may be omitted when exactly one app is enabled.

        UnknownApp (400 invalid_request) for an appid that is no app here, AppDisabled (400
        unauthorized_client) for a disabled one, RequestError when appid is required."""
        apps = self.apps()
        if appid is None:
            enabled = [app for app in apps.values() if app.enabled]
            if len(enabled) == 1:
                return enabled[0]
            if not enabled:
                raise AppDisabled("every app of this deployment is disabled")
            raise RequestError("appid is required: this deployment serves several apps")
        validate_appid(appid)
        app = apps.get(appid)
        if app is None and self._age() >= RELOAD_ON_MISS_AFTER:
            app = self.apps(fresh=True).get(appid)  # just added? (bounded: once per 5 s)
        if app is None:
            raise UnknownApp("appid is not an app of this deployment")
        if not app.enabled:
            raise AppDisabled(f"app {appid} is disabled")
        return app

    def audiences(self) -> frozenset[str]:
        """The explicit `aud` of every app (besides AUTH_AUDIENCE, always accepted). A disabled
        app's too: disabling refuses new logins; its live sessions end by revocation."""
        return frozenset(app.audience for app in self.apps().values() if app.audience)

    def by_client_id(self, client_id: str) -> App | None:
        """The app whose sessions carry `client_id` (its own, else its appid), disabled ones
        too: a session keeps its app (`POST /auth/phone` uses it). From the cache."""
        return next(
            (app for app in self.apps().values() if (app.client_id or app.appid) == client_id),
            None,
        )

    def is_enabled_now(self, appid: str) -> bool:
        """A consistent read of the app's item (after a ConditionCheck refused it)."""
        app = self.apps(fresh=True).get(appid)
        return app is not None and app.enabled

    def wechat(self, app: App) -> WeChatClient:
        """The WeChat client of `app` (its appid and secret), one per container."""
        key = (app.appid, app.secret_arn, app.secret)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                if self._make_client is None:
                    raise RuntimeError("this registry builds no WeChat clients")
                client = self._clients[key] = self._make_client(app)
            return client

    # -- writing (wxauth-admin app ...) ---------------------------------------------------

    def add(self, app: App, *, now: int) -> App:
        """Register an app; RequestError if it exists (or is the primary app)."""
        if app.kind not in KINDS:
            raise RequestError(f"kind must be one of: {', '.join(sorted(KINDS))}")
        validate_appid(app.appid)
        if app.appid == self._primary.appid:
            raise RequestError(f"{app.appid} is the primary app (WECHAT_APPID)")
        added = self._store.add(app, now=now)
        if added is None:
            raise RequestError(f"app {app.appid} already exists")
        self.invalidate()
        return added

    def set_enabled(self, appid: str, enabled: bool, *, now: int) -> bool:
        """Enable or disable an app at once; False if there is no such app."""
        # The primary app's item is made by its first `app disable`; another app must exist.
        if not self._store.set_enabled(
            appid, enabled, now=now, create=appid == self._primary.appid
        ):
            return False
        self.invalidate()
        return True
