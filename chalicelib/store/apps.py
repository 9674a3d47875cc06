"""Apps: the `APP` items of the apps a deployment serves besides the primary one.

| pk    | sk             | attributes                                                          |
|-------|----------------|---------------------------------------------------------------------|
| `APP` | `APP#<appid>`  | appid, kind, client_id, audience?, secret_arn? or secret? (local),   |
|       |                | component_appid? (kind `component`: its third-party platform),     |
|       |                | enabled (BOOL), created_at, updated_at                              |

The primary app (WECHAT_APPID) may have an item too, holding only `enabled`. The registry and
its per-container cache are chalicelib/identity/apps.py's. No login reads or checks these items
(issue #21: one partition for every app would cap logins near 500 a second, and concurrent
transactions checking one item cancel each other): a container reads them all with one Query
every AUTH_APPS_CACHE_TTL seconds, and one item for an appid it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import ConditionFailed
from chalicelib.store.schema import (
    APP_PK,
    APP_SK_PREFIX,
    PK,
    Item,
    app_sk,
    boolean,
    get_bool,
    get_n,
    get_s,
    key,
    n,
    s,
)
from chalicelib.store.table import Table

MINI_PROGRAM = "mini-program"  # the kind of an item stored without one


@dataclass(frozen=True)
class App:
    """One registered app. `audience` None: the deployment's `AUTH_AUDIENCE`; `kind` names its
    code exchange (chalicelib/identity/apps.py KINDS)."""

    appid: str
    kind: str = MINI_PROGRAM
    client_id: str = ""
    audience: str | None = None
    enabled: bool = True
    secret_arn: str | None = None
    secret: str | None = field(default=None, repr=False)  # local / tests only
    created_at: int = 0
    primary: bool = False  # the settings' app (WECHAT_APPID)
    component_appid: str | None = None  # its third-party platform's (issue 24, item 4)

    def public(self) -> dict[str, Any]:
        """What an operator may see: never the secret (only whether it comes from an ARN)."""
        return {
            "appid": self.appid,
            "kind": self.kind,
            "client_id": self.client_id or self.appid,
            "audience": self.audience,
            "enabled": self.enabled,
            "secret": "arn"
            if self.secret_arn
            else ("local" if self.secret else ("platform" if self.component_appid else "settings")),
            "secret_arn": self.secret_arn,
            "primary": self.primary,
            "created_at": self.created_at,
            **({"component_appid": self.component_appid} if self.component_appid else {}),
        }


def item_to_app(item: Item) -> App:
    return App(
        appid=item["appid"]["S"],
        kind=get_s(item, "kind") or MINI_PROGRAM,
        client_id=get_s(item, "client_id") or item["appid"]["S"],
        audience=get_s(item, "audience"),
        enabled=get_bool(item, "enabled", True),
        secret_arn=get_s(item, "secret_arn"),
        secret=get_s(item, "secret"),
        created_at=get_n(item, "created_at") or 0,
        component_appid=get_s(item, "component_appid"),
    )


class Apps:
    """The APP items."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def all(self) -> list[App]:
        """Every APP item (one consistent Query of the `APP` partition)."""
        return [item_to_app(item) for item in self._table.query(APP_PK, APP_SK_PREFIX)]

    def get(self, appid: str, *, consistent: bool = True) -> App | None:
        """One app's item (one GetItem), None if there is none."""
        item = self._table.get(key(APP_PK, app_sk(appid)), consistent=consistent)
        return item_to_app(item) if item else None

    def add(self, app: App, *, now: int) -> App | None:
        """Register an app, enabled; the app as stored, None if its item exists already."""
        item: Item = {
            **key(APP_PK, app_sk(app.appid)),
            "appid": s(app.appid),
            "kind": s(app.kind),
            "client_id": s(app.client_id or app.appid),
            "enabled": boolean(True),
            "created_at": n(now),
        }
        for name in ("audience", "secret_arn", "secret", "component_appid"):
            value = getattr(app, name)
            if value:
                item[name] = s(value)
        return item_to_app(item) if self._table.put_new(item) else None

    def set_enabled(self, appid: str, enabled: bool, *, now: int, create: bool) -> bool:
        """Enable or disable an app; False if it has no item (unless `create`: the primary
        app's item is made by its first `app disable`)."""
        guard = {} if create else {"ConditionExpression": "attribute_exists(#pk)"}
        names = {"#enabled": "enabled", "#at": "updated_at", "#appid": "appid"}
        if not create:
            names["#pk"] = PK
        try:
            self._table.call(
                "update_item",
                Key=key(APP_PK, app_sk(appid)),
                UpdateExpression="SET #enabled = :e, #at = :now, #appid = :appid",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":e": boolean(enabled),
                    ":now": n(now),
                    ":appid": s(appid),
                },
                **guard,
            )
        except ConditionFailed:
            return False
        return True
