"""Guards: the guarded counters of the abuse limits, and the WeChat login breaker's item.

| pk                      | sk               | attributes                                     |
|-------------------------|------------------|------------------------------------------------|
| `LIMIT#<name>#<sha256>` | `<window start>` | count, expires_at (TTL: the window's end + 60) |
| `BREAKER#<appid>`       | `JSCODE2SESSION` | open_until, reason, trips, tripped_at,         |
|                         |                  | expires_at (TTL)                               |

A counter is one conditional UpdateItem and no read (`count`): of any number of racing
requests exactly `limit` pass per key. The policies are chalicelib/limits.py's and
chalicelib/wechat/breaker.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.store.schema import (
    BREAKER_SK,
    EXPIRES_AT,
    Item,
    breaker_pk,
    get_n,
    get_s,
    key,
    limit_pk,
    n,
    s,
)
from chalicelib.store.table import Table

COUNT = "count"
OPEN_UNTIL = "open_until"
REASON = "reason"
TRIPS = "trips"
TRIPPED_AT = "tripped_at"


def count(table: Table, item_key: Item, *, limit: int, expires_at: int) -> int:
    """Count one more against the counter item at `item_key`, unless it has reached `limit`:
    the count after it, or ConditionFailed (nothing written). One UpdateItem, no read."""
    response = table.call(
        "update_item",
        Key=item_key,
        UpdateExpression="ADD #count :one SET #exp = :exp",
        ConditionExpression="attribute_not_exists(#count) OR #count < :limit",
        ExpressionAttributeNames={"#count": COUNT, "#exp": EXPIRES_AT},
        ExpressionAttributeValues={":one": n(1), ":limit": n(limit), ":exp": n(expires_at)},
        ReturnValues="UPDATED_NEW",
    )
    return int(response["Attributes"][COUNT]["N"])


@dataclass(frozen=True)
class BreakerState:
    """The breaker as last seen: open while `now < open_until`; `trips` in a row."""

    open_until: int = 0
    reason: str | None = None
    trips: int = 0

    def is_open(self, now: int) -> bool:
        return now < self.open_until


def item_to_breaker(item: Item) -> BreakerState:
    return BreakerState(
        open_until=get_n(item, OPEN_UNTIL) or 0,
        reason=get_s(item, REASON),
        trips=get_n(item, TRIPS) or 0,
    )


class Guards:
    """Abuse-limit counters and the breaker items."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def count(
        self, name: str, counted: str, window_start: int, *, limit: int, expires_at: int
    ) -> int:
        """Count one request of `counted` (an IP, an openid, ...) in limit `name`'s window
        starting at `window_start`: the count after it, or ConditionFailed if it reached
        `limit`. The key keeps a hash of `counted`, never the value."""
        return count(
            self._table,
            key(limit_pk(name, counted), str(window_start)),
            limit=limit,
            expires_at=expires_at,
        )

    def breaker(self, appid: str) -> BreakerState | None:
        """The app's breaker as stored (one eventually consistent GetItem: every container
        reads it every few seconds, so half a read unit each counts, issue #21; a stale copy
        only sees an opening a moment later, and trips are guarded writes); None: never
        tripped."""
        item = self._table.get(key(breaker_pk(appid), BREAKER_SK), consistent=False)
        return item_to_breaker(item) if item else None

    def trip_breaker(self, appid: str, state: BreakerState, *, now: int, expires_at: int) -> None:
        """Store an opening, unless a longer one is in force: ConditionFailed then, with the
        item as it was (`e.item`, see `item_to_breaker`). One guarded UpdateItem."""
        self._table.call(
            "update_item",
            Key=key(breaker_pk(appid), BREAKER_SK),
            UpdateExpression=(
                "SET #until = :until, #reason = :reason, #trips = :trips, #at = :now, #exp = :exp"
            ),
            ConditionExpression="attribute_not_exists(#until) OR #until < :until",
            ExpressionAttributeNames={
                "#until": OPEN_UNTIL,
                "#reason": REASON,
                "#trips": TRIPS,
                "#at": TRIPPED_AT,
                "#exp": EXPIRES_AT,
            },
            ExpressionAttributeValues={
                ":until": n(state.open_until),
                ":reason": s(state.reason or ""),
                ":trips": n(state.trips),
                ":now": n(now),
                ":exp": n(expires_at),
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
