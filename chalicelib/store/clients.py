"""OAuth clients (client credentials and authorization code grants), in one partition so that
listing them is a Query (the table's policy allows no Scan):

| pk       | sk                  | attributes                                                 |
|----------|---------------------|------------------------------------------------------------|
| `CLIENT` | `CLIENT#<client_id>`| client_id, secret_hash, scopes (list), enabled, created_at, |
|          |                     | redirect_uris? (list), public? (BOOL: no secret)           |

Secrets, scopes and authentication are chalicelib/clients.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.errors import ConditionFailed
from chalicelib.store.schema import (
    CLIENT_PK,
    CLIENT_SK_PREFIX,
    PK,
    Item,
    boolean,
    client_sk,
    get_bool,
    get_strings,
    key,
    n,
    s,
    strings,
)
from chalicelib.store.table import Table


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    secret_hash: str
    scopes: tuple[str, ...]
    enabled: bool
    created_at: int
    # Issue 24, item 2: where the authorization code grant may send the browser back, and
    # whether the client is public (a web page or an app: no secret, PKCE only).
    redirect_uris: tuple[str, ...] = ()
    is_public: bool = False

    def public(self) -> dict[str, Any]:
        """What an operator may see: everything but the secret hash."""
        return {
            "client_id": self.client_id,
            "scopes": list(self.scopes),
            "enabled": self.enabled,
            "created_at": self.created_at,
            "redirect_uris": list(self.redirect_uris),
            "type": "public" if self.is_public else "confidential",
        }


def item_to_client(item: Item) -> ClientRecord:
    return ClientRecord(
        client_id=item["client_id"]["S"],
        secret_hash=item["secret_hash"]["S"],
        scopes=get_strings(item, "scopes"),
        enabled=bool(item["enabled"]["BOOL"]),
        created_at=int(item["created_at"]["N"]),
        redirect_uris=get_strings(item, "redirect_uris"),
        is_public=get_bool(item, "public", False),
    )


class Clients:
    """The CLIENT items."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def add(self, client: ClientRecord) -> bool:
        """Store a new client; False if its id is taken (nothing written)."""
        item: Item = {
            **key(CLIENT_PK, client_sk(client.client_id)),
            "client_id": s(client.client_id),
            "secret_hash": s(client.secret_hash),
            "scopes": strings(client.scopes),
            "enabled": boolean(client.enabled),
            "created_at": n(client.created_at),
        }
        if client.redirect_uris:
            item["redirect_uris"] = strings(client.redirect_uris)
        if client.is_public:
            item["public"] = boolean(True)
        return self._table.put_new(item)

    def get(self, client_id: str) -> ClientRecord | None:
        item = self._table.get(key(CLIENT_PK, client_sk(client_id)))
        return item_to_client(item) if item else None

    def all(self) -> list[ClientRecord]:
        """Every client (one Query of the `CLIENT` partition, paged)."""
        return [item_to_client(item) for item in self._table.query(CLIENT_PK, CLIENT_SK_PREFIX)]

    def replace_secret_hash(self, client_id: str, *, old: str, new: str) -> bool:
        """Store `new` as the client's secret hash if `old` still is (a guarded UpdateItem: a
        secret changed meanwhile is never overwritten); False if it was not written."""
        try:
            self._table.call(
                "update_item",
                Key=key(CLIENT_PK, client_sk(client_id)),
                UpdateExpression="SET #hash = :new",
                ConditionExpression="#hash = :old",
                ExpressionAttributeNames={"#hash": "secret_hash"},
                ExpressionAttributeValues={":old": s(old), ":new": s(new)},
            )
        except ConditionFailed:
            return False
        return True

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Enable or disable a client; False if there is no such client."""
        try:
            self._table.call(
                "update_item",
                Key=key(CLIENT_PK, client_sk(client_id)),
                UpdateExpression="SET #enabled = :enabled",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK, "#enabled": "enabled"},
                ExpressionAttributeValues={":enabled": boolean(enabled)},
            )
        except ConditionFailed:
            return False
        return True
