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

Under attack (issue #22, item 4):
- **A container-local deny set.** Once a check of a key is refused, this container refuses
  that key until its window ends without another write (RateLimited, the same Retry-After): a
  flood from one address costs its counter item `count` + 1 writes per container and window,
  not one per request. Bounded (MAX_DENIED keys; when full, the expired, then the oldest go).
- **Fail closed.** If the counter cannot be written (StoreUnavailable: the item throttles under
  a flood, or DynamoDB fails), the request is refused with that error (503
  `temporarily_unavailable`, Retry-After), metric `RateLimitCheckFailed`, a warning; and the key
  is refused here without a write for those Retry-After seconds. A limit that gives way when
  its own item is hot protects nothing; a DynamoDB outage fails the request anyway.
- **Where a request comes from** (`ClientAddress`): API Gateway's source IP, never a header the
  client writes; behind CloudFront (whose edges are the source IP), the viewer's address from
  `CloudFront-Viewer-Address`, but only on a request that carries the origin secret
  (AUTH_ORIGIN_SECRET_HEADER, AUTH_ORIGIN_SECRET[_ARN]), compared in constant time.
- **IPv6**: an address is counted by its /64 (AUTH_LIMIT_LOGIN_PER_IP) and by its /48
  (AUTH_LIMIT_LOGIN_PER_IPV6_48, default 16 times the per-IP limit): one holder of a /48 may not
  rotate through its 65,536 /64s. An IPv6 login then costs two counters' UpdateItems.
"""

from __future__ import annotations

import hmac
import ipaddress
import itertools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.errors import ConditionFailed, RateLimited, StoreUnavailable
from chalicelib.logs import Metrics, log_event
from chalicelib.settings import (
    DECRYPT_CHECK_PER_SESSION,
    DEVICE_LOOKUP_PER_USER,
    DEVICE_PER_IP,
    LOGIN_PER_IP,
    LOGIN_PER_IPV6_48,
    LOGIN_PER_OPENID,
    REFRESH_PER_SESSION,
    Limit,
    parse_limit,
)
from chalicelib.settings import LIMIT_SETTINGS as SETTINGS

__all__ = [
    "DECRYPT_CHECK_PER_SESSION",
    "DEVICE_LOOKUP_PER_USER",
    "DEVICE_PER_IP",
    "LOGIN_PER_IP",
    "LOGIN_PER_IPV6_48",
    "LOGIN_PER_OPENID",
    "REFRESH_PER_SESSION",
    "SETTINGS",
    "ClientAddress",
    "Limit",
    "RateLimiter",
    "ip_key",
    "ipv6_48_key",
    "parse_limit",
    "source_ip",
]

if TYPE_CHECKING:
    from chalicelib.settings import Settings
    from chalicelib.store.guards import Guards

TTL_SLACK = 60  # a counter item outlives its window by this much (TTL deletion is lazy anyway)
IPV6_PREFIX = 64  # an IPv6 client is counted by its /64: one subscriber usually holds a /64
IPV6_WIDE_PREFIX = 48  # and by its /48: a site's or a customer's allocation
MAX_DENIED = 50_000  # keys a container refuses without a write (a few MB at most)
VIEWER_ADDRESS = "cloudfront-viewer-address"  # CloudFront's `<ip>:<port>` of the viewer


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


def viewer_ip(value: object) -> str | None:
    """The address of a `CloudFront-Viewer-Address` value (`<ipv4>:<port>`, `<ipv6>:<port>`
    unbracketed as CloudFront writes it, or `[<ipv6>]:<port>`); None if it is none."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit():
        return None
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


class ClientAddress:
    """Where a request comes from: API Gateway's source IP (`source_ip`), or behind CloudFront
    the viewer's (`CloudFront-Viewer-Address`) when the request carries the origin secret in
    `header` (compared in constant time; a request without it, straight to the API, keeps its
    own source IP). `secret()` may read Secrets Manager (cached); neither it nor the header is
    ever logged."""

    def __init__(
        self,
        header: str | None = None,
        secret: Callable[[], str] | None = None,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._header = header.lower() if header else None
        self._secret = secret if header else None
        self._metrics = metrics or Metrics()

    @classmethod
    def of_settings(
        cls,
        settings: Settings,
        secrets_client: Callable[[], Any],
        *,
        clock: Callable[[], float],
        metrics: Metrics | None = None,
    ) -> ClientAddress:
        """AUTH_ORIGIN_SECRET_HEADER with AUTH_ORIGIN_SECRET_ARN (Secrets Manager, read at the
        first login and cached) or AUTH_ORIGIN_SECRET (local); without them, the source IP."""
        if not settings.origin_secret_header:
            return cls(metrics=metrics)
        if settings.origin_secret_arn:
            from chalicelib.secrets_manager import CachedSecret

            secret: Callable[[], str] = CachedSecret(
                secrets_client(), settings.origin_secret_arn, clock=clock
            )
        else:
            value = settings.origin_secret or ""
            secret = lambda: value  # noqa: E731
        return cls(settings.origin_secret_header, secret, metrics=metrics)

    def of(self, context: Mapping[str, Any] | None, headers: Mapping[str, Any]) -> str | None:
        """The client's address (see the class doc), None if there is none."""
        ip = source_ip(context)
        if self._header is None or self._secret is None:
            return ip
        given = headers.get(self._header)
        if not isinstance(given, str) or not hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), self._secret().encode("utf-8")
        ):
            return ip
        viewer = viewer_ip(headers.get(VIEWER_ADDRESS))
        if viewer is None:  # CloudFront sends the secret but not the viewer: a misconfiguration
            self._metrics.count("ViewerAddressMissing")
            return ip
        return viewer


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


def ipv6_48_key(ip: str) -> str | None:
    """The /48 an IPv6 address is counted in too; None for IPv4 (mapped included) or junk."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if not isinstance(address, ipaddress.IPv6Address) or address.ipv4_mapped is not None:
        return None
    return str(ipaddress.ip_network(f"{address}/{IPV6_WIDE_PREFIX}", strict=False))


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
        # (limit, key) -> (until, refused by the limit: True; its counter failed: False)
        self._denied: dict[tuple[str, str], tuple[int, bool]] = {}
        self._lock = threading.Lock()

    def configured(self, name: str) -> bool:
        return name in self._limits

    def check_address(self, ip: str | None, now: int) -> None:
        """A login from `ip`: AUTH_LIMIT_LOGIN_PER_IP on its address (an IPv6 one's /64), and
        for IPv6 AUTH_LIMIT_LOGIN_PER_IPV6_48 on its /48."""
        if ip is None:
            return
        self.check(LOGIN_PER_IP, ip_key(ip), now)
        wide = ipv6_48_key(ip)
        if wide is not None:
            self.check(LOGIN_PER_IPV6_48, wide, now)

    def hook(self, name: str, key: Callable[[str], str] = str) -> Callable[[str, int], None] | None:
        """Limit `name` as a callback `(value, now)` counting `key(value)`, for a service to
        call (the per-openid limit after a code exchange, the per-session one before a
        rotation); None when the limit is unset: no callback, no request."""
        if not self.configured(name):
            return None
        return lambda value, now: self.check(name, key(value), now)

    def check(self, name: str, key: str | None, now: int) -> None:
        """Count one request of `key` against limit `name`: RateLimited if the window's
        budget is used. One conditional UpdateItem if the limit is configured, there is a key,
        and this container has not refused it already; nothing at all otherwise. Fails closed
        if the counter cannot be written (see the module doc)."""
        limit = self._limits.get(name)
        if limit is None or key is None:
            return
        start, end = limit.window(now)
        self._refuse_if_denied(name, key, limit, now)
        try:
            self._guards.count(name, key, start, limit=limit.count, expires_at=end + TTL_SLACK)
        except ConditionFailed as e:
            self._deny(name, key, end, by_limit=True, now=now)
            raise self._refusal(name, limit, end, now) from e
        except StoreUnavailable as e:
            self._deny(name, key, now + StoreUnavailable.retry_after, by_limit=False, now=now)
            self._metrics.count("RateLimitCheckFailed", limit=name)
            log_event(
                "rate_limit_check_failed",
                level=logging.WARNING,
                limit=name,
                outcome="refused",
                detail=str(e),  # the DynamoDB operation and error code only
            )
            raise

    def _refusal(self, name: str, limit: Limit, end: int, now: int) -> RateLimited:
        retry_after = max(1, end - now)
        self._metrics.count("RateLimited", limit=name)
        return RateLimited(
            f"too many requests ({SETTINGS[name]} = {limit}); retry after {retry_after} s",
            retry_after=retry_after,
        )

    def _refuse_if_denied(self, name: str, key: str, limit: Limit, now: int) -> None:
        with self._lock:
            denied = self._denied.get((name, key))
            if denied is not None and now >= denied[0]:
                del self._denied[(name, key)]
                denied = None
        if denied is None:
            return
        until, by_limit = denied
        if by_limit:
            raise self._refusal(name, limit, until, now)
        raise StoreUnavailable(f"the {name} counter was unavailable; retry shortly")

    def _deny(self, name: str, key: str, until: int, *, by_limit: bool, now: int) -> None:
        """Refuse `key` here until `until`, keeping at most MAX_DENIED keys: when full, the
        expired ones go, and if that is not enough the oldest tenth (amortized: one pass per
        MAX_DENIED / 10 keys, however many addresses a flood comes from)."""
        with self._lock:
            if len(self._denied) >= MAX_DENIED:
                for stale in [k for k, (end, _) in self._denied.items() if end <= now]:
                    del self._denied[stale]
            if len(self._denied) >= MAX_DENIED:
                for oldest in list(itertools.islice(self._denied, max(1, MAX_DENIED // 10))):
                    del self._denied[oldest]
            self._denied.pop((name, key), None)  # re-inserted: the newest
            self._denied[(name, key)] = (until, by_limit)
