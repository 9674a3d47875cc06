"""The apps a deployment serves, and their kinds.

App #1 is always the one of the settings (`WECHAT_APPID`, `WECHAT_SECRET(_ARN)`, kind
mini-program, `client_id` = appid, `aud` = `AUTH_AUDIENCE`), so a single-app deployment and its
tokens are what they were. More apps are `APP` items, added with `wxauth-admin app add`:

| pk    | sk             | attributes                                                          |
|-------|----------------|---------------------------------------------------------------------|
| `APP` | `APP#<appid>`  | appid, kind, client_id, audience?, secret_arn? or secret? (local),   |
|       |                | enabled (BOOL), created_at, updated_at                              |

The primary app may have an `APP` item too, holding only `enabled` (`app disable` of it). The
items are read with one Query of the `APP` partition, cached per container for
`AUTH_APPS_CACHE_TTL` seconds (a login does not pay for them); a disabled app is still refused
at once, by a ConditionCheck on its item in the login's finishing transaction (`condition`).

A kind is a small class with the code exchange, registered in `KINDS` by name
(`register_kind`); the login service never branches on it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.errors import AppDisabled, RequestError, UnknownApp
from chalicelib.store import PK, SK, ConditionFailed, DynamoStore

if TYPE_CHECKING:
    from chalicelib.wechat.client import WeChatClient

APP_PK = "APP"
APP_SK_PREFIX = "APP#"
APPID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_APPID_LENGTH = 64
DEFAULT_CACHE_TTL = 60
RELOAD_ON_MISS_AFTER = 5  # seconds: an unknown appid reloads a cache at least this old

MINI_PROGRAM = "mini-program"
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

    def exchange(self, wechat: WeChatClient, code: str) -> Exchanged: ...


class MiniProgram:
    """`wx.login()` codes: `sns/jscode2session` (the session_key is dropped here)."""

    name = MINI_PROGRAM

    def exchange(self, wechat: WeChatClient, code: str) -> Exchanged:
        wx = wechat.code2session(code)
        return Exchanged(openid=wx.openid, unionid=wx.unionid)


class OAuthCode:
    """OAuth codes: an official account's web page (`snsapi_base`/`snsapi_userinfo`) or a
    mobile app's (open-platform appid and secret): both `sns/oauth2/access_token`."""

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


@dataclass(frozen=True)
class App:
    """One registered app. `audience` None: the deployment's `AUTH_AUDIENCE`."""

    appid: str
    kind: str = MINI_PROGRAM
    client_id: str = ""
    audience: str | None = None
    enabled: bool = True
    secret_arn: str | None = None
    secret: str | None = field(default=None, repr=False)  # local / tests only
    created_at: int = 0
    primary: bool = False  # the settings' app (WECHAT_APPID)

    @property
    def exchange(self) -> AppKind:
        return KINDS[self.kind]

    def public(self) -> dict[str, Any]:
        """What an operator may see: never the secret (only whether it comes from an ARN)."""
        return {
            "appid": self.appid,
            "kind": self.kind,
            "client_id": self.client_id or self.appid,
            "audience": self.audience,
            "enabled": self.enabled,
            "secret": "arn" if self.secret_arn else ("local" if self.secret else "settings"),
            "secret_arn": self.secret_arn,
            "primary": self.primary,
            "created_at": self.created_at,
        }


def app_sk(appid: str) -> str:
    return f"{APP_SK_PREFIX}{appid}"


def item_to_app(item: dict[str, Any]) -> App:
    return App(
        appid=item["appid"]["S"],
        kind=item["kind"]["S"] if "kind" in item else MINI_PROGRAM,
        client_id=item["client_id"]["S"] if "client_id" in item else item["appid"]["S"],
        audience=item["audience"]["S"] if "audience" in item else None,
        enabled=item["enabled"]["BOOL"] if "enabled" in item else True,
        secret_arn=item["secret_arn"]["S"] if "secret_arn" in item else None,
        secret=item["secret"]["S"] if "secret" in item else None,
        created_at=int(item["created_at"]["N"]) if "created_at" in item else 0,
    )


class AppRegistry:
    """The apps of this deployment: the primary one from the settings and the `APP` items."""

    def __init__(
        self,
        store: DynamoStore,
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
        for item in self._store.query_partition(APP_PK, APP_SK_PREFIX):
            app = item_to_app(item)
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

    def is_enabled_now(self, appid: str) -> bool:
        """A consistent read of the app's item (after a ConditionCheck refused it)."""
        app = self.apps(fresh=True).get(appid)
        return app is not None and app.enabled

    def condition(self, app: App) -> dict[str, Any]:
        """The finishing transaction's ConditionCheck: the app is (still) enabled. The primary
        app has no item unless it was disabled or enabled again."""
        guard = "#enabled = :true"
        if app.primary:
            guard = "attribute_not_exists(#pk) OR " + guard
        return {
            "ConditionCheck": {
                "TableName": self._store.table_name,
                "Key": {PK: {"S": APP_PK}, SK: {"S": app_sk(app.appid)}},
                "ConditionExpression": guard,
                "ExpressionAttributeNames": {
                    "#enabled": "enabled",
                    **({"#pk": PK} if app.primary else {}),
                },
                "ExpressionAttributeValues": {":true": {"BOOL": True}},
            }
        }

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
        item: dict[str, Any] = {
            PK: {"S": APP_PK},
            SK: {"S": app_sk(app.appid)},
            "appid": {"S": app.appid},
            "kind": {"S": app.kind},
            "client_id": {"S": app.client_id or app.appid},
            "enabled": {"BOOL": True},
            "created_at": {"N": str(now)},
        }
        for name in ("audience", "secret_arn", "secret"):
            value = getattr(app, name)
            if value:
                item[name] = {"S": value}
        try:
            self._store.call(
                "put_item",
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            )
        except ConditionFailed as e:
            raise RequestError(f"app {app.appid} already exists") from e
        self.invalidate()
        return item_to_app(item)

    def set_enabled(self, appid: str, enabled: bool, *, now: int) -> bool:
        """Enable or disable an app at once; False if there is no such app."""
        primary = appid == self._primary.appid
        guard = (
            {}
            if primary
            else {
                "ConditionExpression": "attribute_exists(#pk)",
            }
        )
        names = {"#enabled": "enabled", "#at": "updated_at", "#appid": "appid"}
        if not primary:
            names["#pk"] = PK
        try:
            self._store.call(
                "update_item",
                Key={PK: {"S": APP_PK}, SK: {"S": app_sk(appid)}},
                UpdateExpression="SET #enabled = :e, #at = :now, #appid = :appid",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":e": {"BOOL": enabled},
                    ":now": {"N": str(now)},
                    ":appid": {"S": appid},
                },
                **guard,
            )
        except ConditionFailed:
            return False
        self.invalidate()
        return True
