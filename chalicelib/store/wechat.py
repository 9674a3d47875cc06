"""The app's WeChat server access_token, as the broker shares it (chalicelib/wechat/broker.py).

| pk                | sk             | attributes                                              |
|-------------------|----------------|---------------------------------------------------------|
| `WXTOKEN#<appid>` | `TOKEN`        | sealed_token (never plaintext), token_expires_at,       |
|                   |                | refresh_at, fetched_at, lease_until?, last_forced_at?,  |
|                   |                | expires_at (TTL)                                        |
| `WXTOKEN#<appid>` | `FORCED#<day>` | count, expires_at: forced refreshes that UTC+8 day      |
| `WXTOKEN#<component_appid>` | `TICKET` | sealed_ticket, create_time (WeChat's), received_at, |
|                   |                | expires_at (TTL): a third-party platform's latest       |
|                   |                | component_verify_ticket (issue 24, item 4)              |

A third-party platform's component_access_token is brokered in `WXTOKEN#<component_appid>`'s
`TOKEN` item like an app's token (a platform's appid is never an app's).

The refresh lease follows Powertools' idempotency layer: `attribute_not_exists(#lease) OR
#lease < :now` takes it, and a lost race hands back the item as it was.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import ConditionFailed
from chalicelib.store.guards import count
from chalicelib.store.schema import (
    EXPIRES_AT,
    PK,
    TICKET,
    WXTOKEN,
    Item,
    b,
    forced_sk,
    get_b,
    get_n,
    key,
    n,
    wxtoken_pk,
)
from chalicelib.store.table import Table

CACHED_SEALED = "sealed_token"
CACHED_EXPIRES_AT = "token_expires_at"  # when WeChat said it expires (fetch time + expires_in)
CACHED_REFRESH_AT = "refresh_at"  # jittered: from then on one request refreshes it ahead
CACHED_FETCHED_AT = "fetched_at"
CACHED_LEASE_UNTIL = "lease_until"
CACHED_LAST_FORCED_AT = "last_forced_at"


@dataclass(frozen=True)
class WeChatTokenRecord:
    """The cached access-token item: the token sealed (never plaintext), its times, the lease."""

    appid: str
    sealed_token: bytes | None = field(default=None, repr=False)
    token_expires_at: int = 0
    refresh_at: int = 0
    fetched_at: int = 0
    lease_until: int = 0
    last_forced_at: int | None = None


def item_to_wechat_token(item: Item) -> WeChatTokenRecord:
    return WeChatTokenRecord(
        appid=item[PK]["S"].removeprefix("WXTOKEN#"),
        sealed_token=get_b(item, CACHED_SEALED),
        token_expires_at=get_n(item, CACHED_EXPIRES_AT) or 0,
        refresh_at=get_n(item, CACHED_REFRESH_AT) or 0,
        fetched_at=get_n(item, CACHED_FETCHED_AT) or 0,
        lease_until=get_n(item, CACHED_LEASE_UNTIL) or 0,
        last_forced_at=get_n(item, CACHED_LAST_FORCED_AT),
    )


class WeChatTokens:
    """The broker's items: the sealed token, its lease, the forced refreshes."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, appid: str, *, consistent: bool = True) -> WeChatTokenRecord | None:
        """The token item (one GetItem; eventually consistent where the broker says why a stale
        answer is harmless)."""
        item = self._table.get(key(wxtoken_pk(appid), WXTOKEN), consistent=consistent)
        return item_to_wechat_token(item) if item else None

    def lease(self, appid: str, *, now: int, lease_until: int, seen_fetched_at: int | None) -> None:
        """Take the refresh lease: `attribute_not_exists(#pk) OR #lease < :now` (or no lease on
        the item: storing a token releases it by removing the attribute), and only if the
        token is still the one the caller read (`seen_fetched_at`; None: there was none), so
        that a request that read before another stored a token does not fetch again. A lost
        race raises ConditionFailed with the item as it was (`e.item`): the loser needs no read
        to see the token another request stored."""
        names = {"#lease": CACHED_LEASE_UNTIL, "#fetched": CACHED_FETCHED_AT}
        values = {":until": n(lease_until), ":now": n(now)}
        if seen_fetched_at is None:
            unchanged = "attribute_not_exists(#fetched)"
        else:
            unchanged = "#fetched = :seen"
            values[":seen"] = n(seen_fetched_at)
        self._table.call(
            "update_item",
            Key=key(wxtoken_pk(appid), WXTOKEN),
            UpdateExpression="SET #lease = :until",
            ConditionExpression=f"(attribute_not_exists(#lease) OR #lease < :now) AND {unchanged}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def claim_forced_refresh(
        self, appid: str, *, now: int, interval: int, lease_until: int
    ) -> None:
        """Claim the one forced refresh of this `interval` (across every container) and the
        lease with it; ConditionFailed (with the item as it was) if one was claimed less than
        `interval` seconds ago."""
        self._table.call(
            "update_item",
            Key=key(wxtoken_pk(appid), WXTOKEN),
            UpdateExpression="SET #forced = :now, #lease = :until",
            ConditionExpression="attribute_not_exists(#forced) OR #forced <= :since",
            ExpressionAttributeNames={
                "#forced": CACHED_LAST_FORCED_AT,
                "#lease": CACHED_LEASE_UNTIL,
            },
            ExpressionAttributeValues={
                ":now": n(now),
                ":since": n(now - interval),
                ":until": n(lease_until),
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def count_forced_refresh(self, appid: str, day: str, *, budget: int, expires_at: int) -> int:
        """Count one forced refresh against the day's budget; the day's count after it, or
        ConditionFailed if `budget` were already used that day."""
        return count(
            self._table, key(wxtoken_pk(appid), forced_sk(day)), limit=budget, expires_at=expires_at
        )

    def put(
        self,
        appid: str,
        *,
        sealed_token: bytes,
        fetched_at: int,
        token_expires_at: int,
        refresh_at: int,
        expires_at: int,
        lease_until: int | None,
    ) -> None:
        """Store a freshly fetched token and release the lease (`last_forced_at` is kept).

        Only while the caller still holds its lease (`lease_until`, None: unconditionally), so
        that a fetch whose lease lapsed or was taken over by a forced refresh cannot overwrite
        a newer token: ConditionFailed then.
        """
        names = {
            "#sealed": CACHED_SEALED,
            "#fetched": CACHED_FETCHED_AT,
            "#texp": CACHED_EXPIRES_AT,
            "#refresh": CACHED_REFRESH_AT,
            "#exp": EXPIRES_AT,
            "#lease": CACHED_LEASE_UNTIL,
        }
        values = {
            ":sealed": b(sealed_token),
            ":fetched": n(fetched_at),
            ":texp": n(token_expires_at),
            ":refresh": n(refresh_at),
            ":exp": n(expires_at),
        }
        guard: dict[str, Any] = {}
        if lease_until is not None:
            guard["ConditionExpression"] = "#lease = :mine"
            values[":mine"] = n(lease_until)
        self._table.call(
            "update_item",
            Key=key(wxtoken_pk(appid), WXTOKEN),
            UpdateExpression=(
                "SET #sealed = :sealed, #fetched = :fetched, #texp = :texp, #refresh = :refresh,"
                " #exp = :exp REMOVE #lease"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            **guard,
        )

    def release_lease(self, appid: str, *, lease_until: int) -> None:
        """Drop the lease this request holds (its fetch failed), so a retry need not wait."""
        with contextlib.suppress(ConditionFailed):
            self._table.call(
                "update_item",
                Key=key(wxtoken_pk(appid), WXTOKEN),
                UpdateExpression="REMOVE #lease",
                ConditionExpression="#lease = :until",
                ExpressionAttributeNames={"#lease": CACHED_LEASE_UNTIL},
                ExpressionAttributeValues={":until": n(lease_until)},
            )

    # -- a third-party platform's verify ticket (issue 24, item 4) ---------------------------

    def put_ticket(
        self, component_appid: str, *, sealed: bytes, create_time: int, now: int, expires_at: int
    ) -> bool:
        """Keep a pushed ticket (sealed) unless a newer one (by WeChat's CreateTime) is kept;
        False if it was older: one conditional PutItem."""
        try:
            self._table.call(
                "put_item",
                Item={
                    **key(wxtoken_pk(component_appid), TICKET),
                    "sealed_ticket": b(sealed),
                    "create_time": n(create_time),
                    "received_at": n(now),
                    EXPIRES_AT: n(expires_at),
                },
                ConditionExpression="attribute_not_exists(#pk) OR #created < :created",
                ExpressionAttributeNames={"#pk": PK, "#created": "create_time"},
                ExpressionAttributeValues={":created": n(create_time)},
            )
        except ConditionFailed:
            return False
        return True

    def ticket(self, component_appid: str) -> tuple[bytes, int] | None:
        """The latest ticket, sealed, and its CreateTime (one consistent GetItem)."""
        item = self._table.get(key(wxtoken_pk(component_appid), TICKET))
        sealed = get_b(item, "sealed_ticket") if item else None
        if item is None or sealed is None:
            return None
        return sealed, get_n(item, "create_time") or 0
