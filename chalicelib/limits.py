"""Abuse limits: fixed-window request counters in DynamoDB, shared by every container.

A limit is `<count>/<seconds>` (settings `AUTH_LIMIT_*`): at most `count` requests per key in
each window of `seconds`, windows aligned on multiples of `seconds` since the epoch. One check
is ONE conditional UpdateItem on the window's counter item, and no read (chalicelib/store/
guards.py: the count is added only while it is below the limit), so of any number of racing
requests exactly `count` pass per window. A refused check writes
nothing and raises RateLimited (429 `slow_down`, `Retry-After`: the seconds to the window's
end). An unset limit is no check at all: no request.

Counter items (`LIMIT#<name>#<sha256(key)>`, `<window start>`) keep only a hash of the key,
never the raw IP, openid or session id, and expire by TTL (`expires_at`, the window's end plus
TTL_SLACK); the window's end is also checked in code (the window is in the key).

A window's counter never goes down, so once a container saw a key refused it refuses that key
again without a request until the window ends (at most MEMO_SIZE keys remembered): a busy key
(the many users behind one carrier NAT's address) costs its counter at most `count` counted
writes and one refused write per container per window, however many requests it sends (issue
#21: one partition serves about 1,000 writes a second).

If DynamoDB fails for the counter (StoreUnavailable), the check **fails open**: the request
goes on, a `RateLimitCheckFailed` metric and a warning are written. A limiter outage must not
become a login outage; the request's own reads and writes meet the same DynamoDB next, and
fail there (503) if it is really down.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.errors import ConditionFailed, RateLimited, StoreUnavailable
from chalicelib.logs import Metrics, log_event
from chalicelib.settings import LIMIT_SETTINGS as SETTINGS
from chalicelib.settings import (
    LOGIN_PER_IP,
    LOGIN_PER_OPENID,
    REFRESH_PER_SESSION,
    Limit,
    parse_limit,
)

__all__ = [
    "LOGIN_PER_IP",
    "LOGIN_PER_OPENID",
    "REFRESH_PER_SESSION",
    "SETTINGS",
    "Limit",
    "RateLimiter",
    "ip_key",
    "parse_limit",
    "source_ip",
]

if TYPE_CHECKING:
    from chalicelib.store.guards import Guards

TTL_SLACK = 60  # a counter item outlives its window by this much (TTL deletion is lazy anyway)
MEMO_SIZE = 10_000  # keys a container remembers as refused until their window's end
IPV6_PREFIX = 64  # an IPv6 client is counted by its /64: one subscriber usually holds a /64


def source_ip(context: Mapping[str, Any] | None) -> str | None:
    """The client's address as API Gateway saw it (`requestContext.identity.sourceIp`, payload
    1.0; `requestContext.http.sourceIp`, 2.0), None if there is none. Never a header: the
    client writes X-Forwarded-For itself."""
    if not isinstance(context, Mapping):
        return None
    for part in ("identity", "http"):
        section = context.get(part)
        if isinstance(section, Mapping):
            ip = section.get("sourceIp")
            if isinstance(ip, str) and ip:
                return ip
    return None


def ip_key(ip: str) -> str:
    """What an address is counted as: an IPv4 address itself, an IPv6 address its /64."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip  # not an address (a test client's): counted as it is, hashed like any key
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


class RateLimiter:
    """The configured limits, checked against counters in the table (see the module doc)."""

    def __init__(
        self,
        guards: Guards,
        limits: Mapping[str, Limit | None],
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._guards = guards
        self._limits = {name: limit for name, limit in limits.items() if limit is not None}
        self._metrics = metrics or Metrics()
        self._refused: dict[tuple[str, str], int] = {}  # (limit, key) -> its window's end
        self._lock = threading.Lock()

    def configured(self, name: str) -> bool:
        return name in self._limits

    def check(self, name: str, key: str | None, now: int) -> None:
        """Count one request of `key` against limit `name`: RateLimited if the window's
        budget is used. One conditional UpdateItem if the limit is configured and there is a
        key, none once this container saw the key refused in this window; nothing at all
        otherwise. Fails open if DynamoDB does (see the module doc)."""
        limit = self._limits.get(name)
        if limit is None or key is None:
            return
        start, end = limit.window(now)
        with self._lock:
            refused_until = self._refused.get((name, key), 0)
        if now < refused_until:  # this window's budget is used: no request
            self._refuse(name, limit, end, now)
        try:
            self._guards.count(name, key, start, limit=limit.count, expires_at=end + TTL_SLACK)
        except ConditionFailed as e:
            self._remember(name, key, end, now)
            self._refuse(name, limit, end, now, e)
        except StoreUnavailable as e:
            self._metrics.count("RateLimitCheckFailed", limit=name)
            log_event(
                "rate_limit_check_failed",
                level=logging.WARNING,
                limit=name,
                detail=str(e),  # the DynamoDB operation and error code only
            )

    def _remember(self, name: str, key: str, end: int, now: int) -> None:
        with self._lock:
            if len(self._refused) >= MEMO_SIZE:
                self._refused = {k: e for k, e in self._refused.items() if e > now}
            if len(self._refused) < MEMO_SIZE:
                self._refused[(name, key)] = end

    def _refuse(
        self, name: str, limit: Limit, end: int, now: int, cause: Exception | None = None
    ) -> None:
        retry_after = max(1, end - now)
        self._metrics.count("RateLimited", limit=name)
        raise RateLimited(
            f"too many requests ({SETTINGS[name]} = {limit}); retry after {retry_after} s",
            retry_after=retry_after,
        ) from cause
