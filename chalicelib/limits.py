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

If DynamoDB fails for the counter (StoreUnavailable), the check **fails open**: the request
goes on, a `RateLimitCheckFailed` metric and a warning are written. A limiter outage must not
become a login outage; the request's own reads and writes meet the same DynamoDB next, and
fail there (503) if it is really down.
"""

from __future__ import annotations

import ipaddress
import logging
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

    def configured(self, name: str) -> bool:
        return name in self._limits

    def check(self, name: str, key: str | None, now: int) -> None:
        """Count one request of `key` against limit `name`: RateLimited if the window's
        budget is used. One conditional UpdateItem if the limit is configured and there is a
        key; nothing at all otherwise. Fails open if DynamoDB does (see the module doc)."""
        limit = self._limits.get(name)
        if limit is None or key is None:
            return
        start, end = limit.window(now)
        try:
            self._guards.count(name, key, start, limit=limit.count, expires_at=end + TTL_SLACK)
        except ConditionFailed as e:
            retry_after = max(1, end - now)
            self._metrics.count("RateLimited", limit=name)
            raise RateLimited(
                f"too many requests ({SETTINGS[name]} = {limit}); retry after {retry_after} s",
                retry_after=retry_after,
            ) from e
        except StoreUnavailable as e:
            self._metrics.count("RateLimitCheckFailed", limit=name)
            log_event(
                "rate_limit_check_failed",
                level=logging.WARNING,
                limit=name,
                detail=str(e),  # the DynamoDB operation and error code only
            )
