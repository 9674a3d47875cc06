"""The apps a deployment serves, and their kinds.

App #1 is always the one of the settings (`WECHAT_APPID`, `WECHAT_SECRET(_ARN)`, kind
mini-program, `client_id` = appid, `aud` = `AUTH_AUDIENCE`), so a single-app deployment and its
tokens are what they were. More apps are `APP` items (chalicelib/store/apps.py), added with
`wxauth-admin app add`; their tokens' `aud` is their own `audience`, else their `client_id`
(`token_audience`).

The primary app may have an `APP` item too, holding only `enabled` (`app disable` of it). The
items are read with one consistent Query of the `APP` partition, cached per container for
`AUTH_APPS_CACHE_TTL` seconds (a login does not pay for them), and the cache is what refuses a
disabled app (issue #21): no login reads or checks an item that every login of an app shares
(a partition serves about 1,000 writes a second, and concurrent transactions that check one
item cancel each other). So `app disable` is in force in every container once every cache has
been read again: `in_force_after()` seconds, which `wxauth-admin app disable` waits before it
returns (chalicelib/admin/apps.py). An appid a container does not know is looked up alone (one
eventually consistent GetItem), at most once per RELOAD_ON_MISS_AFTER seconds.

A kind is a small class with the code exchange, registered in `KINDS` by name
(`register_kind`); the login service never branches on it. A kind that signs a browser in
(`website`, issue 24) also has `authorization_url`: where the browser is sent to meet WeChat;
the deployment's one enabled app of such a kind is `browser_app()`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlencode

from chalicelib.errors import AppDisabled, ConfigurationError, RequestError, UnknownApp
from chalicelib.store.apps import MINI_PROGRAM, App, Apps

if TYPE_CHECKING:
    from chalicelib.wechat.client import WeChatClient

__all__ = [
    "App",
    "AppRegistry",
    "Exchanged",
    "KINDS",
    "kind_of",
    "register_kind",
    "token_audience",
]

APPID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_APPID_LENGTH = 64
DEFAULT_CACHE_TTL = 60
RELOAD_ON_MISS_AFTER = 5  # seconds: a container looks up an unknown appid at most this often
# A login that resolved its app from a cache just before the cache expired finishes within the
# function's timeout (28 s, .chalice/config.json): `app disable` waits for it too.
IN_FLIGHT_SECONDS = 30

OFFICIAL_ACCOUNT = "official-account"
MOBILE_APP = "mobile-app"
WEBSITE = "website"  # issue 24, item 2: an open-platform website app (网站应用)


@dataclass(frozen=True)
class Exchanged:
    """Who a code belongs to, as WeChat said: the app's openid, and the unionid if bound; and a
    mini-program's session_key, which the login keeps sealed in the session (chalicelib/
    open_data.py) and never hands out. Nothing else of the exchange (the user access_token of
    an OAuth code) leaves the kind."""

    openid: str
    unionid: str | None
    session_key: str | None = field(default=None, repr=False)


class AppKind(Protocol):
    name: str
    # May a used code be replayed without its first caller's `login_nonce` (for a short while,
    # AUTH_LOGIN_REPLAY_WITHOUT_NONCE)? Only where the code never travels in a URL.
    replays_without_nonce: bool

    def exchange(self, wechat: WeChatClient, code: str) -> Exchanged: ...


class MiniProgram:
    """`wx.login()` codes: `sns/jscode2session` (its session_key goes on, to be sealed). The
    code goes from `wx.login()` to the app's own request body: it never appears in a URL."""

    name = MINI_PROGRAM
    replays_without_nonce = True

    def exchange(self, wechat: WeChatClient, code: str) -> Exchanged:
        wx = wechat.code2session(code)
        return Exchanged(openid=wx.openid, unionid=wx.unionid, session_key=wx.session_key)


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


class Website(OAuthCode):
    """An open-platform website app (网站应用): the browser is sent to WeChat's `qrconnect`
    page (scope `snsapi_login`), where the user scans a QR code with WeChat (or confirms in
    WeChat for Windows or Mac), and WeChat sends the browser back to `redirect_uri` with
    `code` and `state`. The code (valid 10 minutes, once) is exchanged with
    `sns/oauth2/access_token`, as any OAuth code (WeChat's docs: 网站应用微信登录)."""

    def __init__(self) -> None:
        super().__init__(WEBSITE)

    def authorization_url(self, open_base: str, appid: str, redirect_uri: str, state: str) -> str:
        query = urlencode(
            {
                "appid": appid,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": "snsapi_login",
                "state": state,
            }
        )
        return f"{open_base.rstrip('/')}/connect/qrconnect?{query}#wechat_redirect"


KINDS: dict[str, AppKind] = {}


def register_kind(kind: AppKind) -> AppKind:
    """Make a kind available to `app add --kind` and to logins."""
    KINDS[kind.name] = kind
    return kind


for _kind in (MiniProgram(), OAuthCode(OFFICIAL_ACCOUNT), OAuthCode(MOBILE_APP), Website()):
    register_kind(_kind)


def signs_in_browsers(app: App) -> bool:
    """Whether `app`'s kind sends a browser to WeChat (has `authorization_url`)."""
    kind = KINDS.get(app.kind)
    return kind is not None and callable(getattr(kind, "authorization_url", None))


def validate_appid(appid: str) -> str:
    if not APPID_RE.fullmatch(appid):
        raise RequestError(f"appid must be 1 to {MAX_APPID_LENGTH} of A-Z a-z 0-9 _ -")
    return appid


def token_audience(app: App) -> str | None:
    """The `aud` of the tokens a login through `app` mints, which its session keeps: the
    primary app's is None (AUTH_AUDIENCE); another app's is its own `audience`, else its
    `client_id` (so that one app's tokens are not another's by default)."""
    if app.primary:
        return None
    return app.audience or app.client_id or app.appid


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
        self._looked_up_at: float | None = None  # the last lookup of an unknown appid
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

    def invalidate(self) -> None:
        with self._lock:
            self._apps = None

    def forget(self) -> None:
        """Drop the APP items and every app's WeChat client, with its cached secret (after a
        SnapStart restore): both are made again at their next use."""
        with self._lock:
            self._apps = None
            self._clients.clear()

    def _load(self) -> dict[str, App]:
        apps = {self._primary.appid: self._primary}
        for app in self._store.all():
            if app.appid == self._primary.appid:  # only `enabled` of the primary is stored
                apps[app.appid] = App(**{**self._primary.__dict__, "enabled": app.enabled})
            else:
                apps[app.appid] = app
        return apps

    def resolve(self, appid: str | None) -> App:
        """The app a login names; `appid` may be omitted when exactly one app is enabled (a
        website app, whose codes come back through `GET /oauth/wechat/callback`, not counted).

        UnknownApp (400 invalid_request) for an appid that is no app here, AppDisabled (400
        unauthorized_client) for a disabled one, RequestError when appid is required."""
        apps = self.apps()
        if appid is None:  # a website app's codes come through its callback: not counted
            enabled = [app for app in apps.values() if app.enabled and not signs_in_browsers(app)]
            if len(enabled) == 1:
                return enabled[0]
            if not enabled:
                raise AppDisabled("every app of this deployment is disabled")
            raise RequestError("appid is required: this deployment serves several apps")
        validate_appid(appid)
        app = apps.get(appid)
        if app is None:
            app = self._look_up(appid)
        if app is None:
            raise UnknownApp("appid is not an app of this deployment")
        if not app.enabled:
            raise AppDisabled(f"app {appid} is disabled")
        return app

    def audiences(self) -> frozenset[str]:
        """The `aud` of every app's tokens (`token_audience`: its audience, else its client_id;
        besides AUTH_AUDIENCE, always accepted). A disabled app's too: disabling refuses new
        logins; its live sessions end by revocation."""
        found = (token_audience(app) for app in self.apps().values())
        return frozenset(audience for audience in found if audience)

    def _look_up(self, appid: str) -> App | None:
        """An appid this container does not know: just added? One eventually consistent
        GetItem of its item (half a read unit: a stale answer only makes a login of an app
        added a moment ago wait for the next lookup), at most once per RELOAD_ON_MISS_AFTER
        seconds per container, whatever appids a flood of bogus logins names."""
        with self._lock:
            now = self._clock()
            recent = max(self._loaded_at, self._looked_up_at or 0.0)
            if now - recent < RELOAD_ON_MISS_AFTER:
                return None
            self._looked_up_at = now
        app = self._store.get(appid, consistent=False)
        if app is None or appid == self._primary.appid:
            return None
        with self._lock:
            if self._apps is not None:
                self._apps = {**self._apps, appid: app}
        return app

    def browser_app(self) -> App:
        """The app a browser signs in with (`GET /oauth/authorize`): the one enabled app whose
        kind sends browsers to WeChat (`website`). ConfigurationError if there is none or
        several (disable all but one); AppDisabled if every such app is disabled."""
        found = [app for app in self.apps().values() if signs_in_browsers(app)]
        enabled = [app for app in found if app.enabled]
        if len(enabled) == 1:
            return enabled[0]
        if found and not enabled:
            raise AppDisabled("signing in with WeChat on the web is disabled here")
        raise ConfigurationError(
            "website sign-in needs exactly one enabled app of kind website"
            f" ({len(enabled)} now): wxauth-admin app add --kind website, or app disable"
        )

    def in_force_after(self) -> int:
        """Seconds after `set_enabled` when every container's cache has read the change, and
        a login resolved from an older cache has finished."""
        return int(self._max_age) + IN_FLIGHT_SECONDS

    def by_client_id(self, client_id: str) -> App | None:
        """The app whose sessions carry `client_id` (its own, else its appid), disabled ones
        too: a session keeps its app (`POST /auth/phone` uses it). From the cache."""
        return next(
            (app for app in self.apps().values() if (app.client_id or app.appid) == client_id),
            None,
        )

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
        """Enable or disable an app: in this container at once, in every other one within
        `in_force_after()` seconds; False if there is no such app."""
        # The primary app's item is made by its first `app disable`; another app must exist.
        if not self._store.set_enabled(
            appid, enabled, now=now, create=appid == self._primary.appid
        ):
            return False
        self.invalidate()
        return True
