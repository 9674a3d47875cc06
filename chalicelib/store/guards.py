"""Guards: the guarded counters of the abuse limits, and the WeChat login breaker's item.

| pk                      | sk               | attributes                                     |
|-------------------------|------------------|------------------------------------------------|
| `LIMIT#<name>#<sha256>` | `<window start>` | count, expires_at (TTL: the window's end + 60) |
| `BREAKER#<appid>`       | `JSCODE2SESSION` | open_until, reason, trips, tripped_at,         |
|                         |                  | calls_<start>, failures_<start>,               |
|                         |                  | checks_<start> (a window's sampled counts),    |
|                         |                  | expires_at (TTL)                               |

A counter is one conditional UpdateItem and no read (`count`): of any number of racing
requests exactly `limit` pass per key. The breaker's item holds its opening and the sampled
counts of its last two windows (`report_breaker`: one UpdateItem, ADD, the item as it is now
returned). The policies are chalicelib/limits.py's and chalicelib/wechat/breaker.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
# A breaker window's counts, one attribute each, named with the window's start (epoch seconds).
WINDOW_COUNTS = ("calls", "failures", "checks")


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
class WindowCounts:
    """One breaker window's sampled counts, as estimates of the whole app's: WeChat calls,
    failed calls, and the containers' checks (each report adds 1 / its sampling rate)."""

    calls: float = 0.0
    failures: float = 0.0
    checks: float = 0.0


@dataclass(frozen=True)
class BreakerState:
    """The breaker as last seen: open while `now < open_until`; `trips` in a row; the sampled
    counts of its recent windows, by window start."""

    open_until: int = 0
    reason: str | None = None
    trips: int = 0
    windows: Mapping[int, WindowCounts] = field(default_factory=dict)

    def is_open(self, now: int) -> bool:
        return now < self.open_until


def _number(value: float) -> dict[str, str]:
    """A count for an ADD: an integer as it is, a weighted estimate to three decimals."""
    return n(int(value)) if float(value).is_integer() else {"N": f"{value:.3f}"}


def _window_attribute(name: str, start: int) -> str:
    return f"{name}_{start}"


def _windows(item: Item) -> dict[int, WindowCounts]:
    found: dict[int, dict[str, float]] = {}
    for attribute, value in item.items():
        name, _, start = attribute.rpartition("_")
        if name in WINDOW_COUNTS and start.isdigit() and "N" in value:
            found.setdefault(int(start), {})[name] = float(value["N"])
    return {start: WindowCounts(**counts) for start, counts in found.items()}


def item_to_breaker(item: Item) -> BreakerState:
    return BreakerState(
        open_until=get_n(item, OPEN_UNTIL) or 0,
        reason=get_s(item, REASON),
        trips=get_n(item, TRIPS) or 0,
        windows=_windows(item),
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

    def report_breaker(
        self,
        appid: str,
        start: int,
        counts: WindowCounts,
        *,
        drop: tuple[int, ...],
        expires_at: int,
    ) -> BreakerState:
        """Add `counts` to window `start`'s and drop the windows starting at `drop`: the
        breaker as it is after (one UpdateItem, no condition)."""
        names = {"#exp": EXPIRES_AT}
        values = {":exp": n(expires_at)}
        adds = []
        for i, name in enumerate(WINDOW_COUNTS):
            names[f"#a{i}"] = _window_attribute(name, start)
            values[f":a{i}"] = _number(getattr(counts, name))
            adds.append(f"#a{i} :a{i}")
        expression = "ADD " + ", ".join(adds) + " SET #exp = :exp" + self._remove(names, drop)
        response = self._table.call(
            "update_item",
            Key=key(breaker_pk(appid), BREAKER_SK),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return item_to_breaker(response.get("Attributes", {}))

    def trip_breaker(
        self,
        appid: str,
        state: BreakerState,
        *,
        now: int,
        expires_at: int,
        drop: tuple[int, ...] = (),
    ) -> None:
        """Store an opening and drop the windows starting at `drop` (their counts led to it),
        unless a longer opening is in force: ConditionFailed then, with the item as it was
        (`e.item`, see `item_to_breaker`). One guarded UpdateItem."""
        names = {
            "#until": OPEN_UNTIL,
            "#reason": REASON,
            "#trips": TRIPS,
            "#at": TRIPPED_AT,
            "#exp": EXPIRES_AT,
        }
        self._table.call(
            "update_item",
            Key=key(breaker_pk(appid), BREAKER_SK),
            UpdateExpression=(
                "SET #until = :until, #reason = :reason, #trips = :trips, #at = :now, #exp = :exp"
                + self._remove(names, drop)
            ),
            ConditionExpression="attribute_not_exists(#until) OR #until < :until",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                ":until": n(state.open_until),
                ":reason": s(state.reason or ""),
                ":trips": n(state.trips),
                ":now": n(now),
                ":exp": n(expires_at),
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    @staticmethod
    def _remove(names: dict[str, str], starts: tuple[int, ...]) -> str:
        """` REMOVE` of every count of the windows starting at `starts` (names added)."""
        removed = []
        for start in starts:
            for name in WINDOW_COUNTS:
                placeholder = f"#r{len(removed)}"
                names[placeholder] = _window_attribute(name, start)
                removed.append(placeholder)
        return " REMOVE " + ", ".join(removed) if removed else ""
