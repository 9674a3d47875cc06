"""A short circuit breaker on `jscode2session`, shared by every container through DynamoDB.

When WeChat answers 45011 (the appid's quota is exceeded) or -1 (system busy, also to the
client's one retry), retrying at once only feeds the outage. The first login that meets either
**opens** the breaker for OPEN_SECONDS (10 s); a trip within REPEAT_WINDOW (60 s) of the last
opening's end doubles the period, up to MAX_OPEN_SECONDS (60 s): 10, 20, 40, 60, 60 s.

While it is open, a login answers at once, without calling WeChat: 429 `slow_down` (opened by
45011) or 503 `temporarily_unavailable` (opened by -1), `Retry-After` the seconds until it
closes. Once the period is over, the next login goes through as a probe: if it fails the same
way, the breaker opens again, for twice as long; if it succeeds, nothing is written.

Shared state: one item per appid (`BREAKER#<appid>`, `JSCODE2SESSION`: `open_until`,
`reason`, `trips`, `tripped_at`, TTL `expires_at`), written only on a trip, with a guard
(`attribute_not_exists(#until) OR #until < :until`) so that racing trips keep the longest
opening. Each container caches what it last read: `check` reads the item (one eventually
consistent GetItem) at most once per CACHE_SECONDS (5 s), and not at all while its cache says
open, so a login makes on average far fewer than one extra request (at most one per container
per 5 s of logins). A container's own trip opens its cache at once, whether or not the write
succeeds.
A container that has not read yet (a cold start) takes the breaker as closed until its first
read, so it makes at most one call to a failing WeChat before it knows.

DynamoDB failures here fail open: the breaker is taken as closed (a warning and a
`WeChatBreakerReadFailed` metric), the login goes on.

Metrics (EMF): `WeChatBreakerOpened` (reason, seconds, trips), `WeChatBreakerRefused` (reason).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.errors import (
    ConditionFailed,
    StoreUnavailable,
    WeChatBusy,
    WeChatError,
    WeChatRateLimited,
    WeChatUnavailable,
)
from chalicelib.logs import Metrics, log_event
from chalicelib.store.guards import BreakerState, item_to_breaker

if TYPE_CHECKING:
    from chalicelib.store.guards import Guards
    from chalicelib.wechat.client import OAuthAccess, WeChatClient, WeChatSession

OPEN_SECONDS = 10
MAX_OPEN_SECONDS = 60
REPEAT_WINDOW = 60  # a trip this soon after the last opening ended doubles the period
CACHE_SECONDS = 5  # a container reads the shared item at most this often
QUOTA = "quota"  # 45011 -> 429 slow_down
BUSY = "busy"  # -1 -> 503 temporarily_unavailable
def open_period(trips: int) -> int:
    """Seconds the breaker stays open on its `trips`-th trip in a row: 10, 20, 40, 60, 60..."""
    return min(MAX_OPEN_SECONDS, OPEN_SECONDS * 2 ** min(max(trips, 1) - 1, 16))


class Breaker:
    def __init__(
        self,
        guards: Guards,
        *,
        appid: str,
        metrics: Metrics | None = None,
        cache_seconds: int = CACHE_SECONDS,
    ) -> None:
        self._guards = guards
        self._appid = appid
        self._metrics = metrics or Metrics()
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._state = BreakerState()
        self._read_at: int | None = None

    @property
    def state(self) -> BreakerState:
        return self._state

    def check(self, now: int) -> None:
        """Refuse (WeChatRateLimited or WeChatUnavailable, with `retry_after`) while open.

        Reads the shared item (one GetItem) only if this container's copy is older than
        CACHE_SECONDS and does not say open; no request otherwise."""
        self._refuse_if_open(self._current(now), now)

    def check_cached(self, now: int) -> None:
        """`check` on this container's copy only: never a request."""
        self._refuse_if_open(self._state, now)

    def trip(self, reason: str, now: int) -> BreakerState:
        """Open the breaker (WeChat just answered 45011 or -1): this container at once, every
        other one through the shared item (one guarded UpdateItem). The state now in force."""
        with self._lock:
            previous = self._state
        repeated = previous.trips > 0 and now - previous.open_until < REPEAT_WINDOW
        trips = previous.trips + 1 if repeated else 1
        period = open_period(trips)
        state = BreakerState(open_until=now + period, reason=reason, trips=trips)
        self._remember(state, now)
        try:
            self._guards.trip_breaker(
                self._appid, state, now=now, expires_at=state.open_until + REPEAT_WINDOW
            )
        except ConditionFailed as e:
            # Another container opened it for longer already: that opening is in force.
            if e.item:
                state = item_to_breaker(e.item)
                self._remember(state, now)
        except StoreUnavailable as e:
            log_event(
                "wechat_breaker_write_failed",
                level=logging.WARNING,
                appid=self._appid,
                detail=str(e),
            )
        self._metrics.count(
            "WeChatBreakerOpened",
            appid=self._appid,
            reason=reason,
            seconds=period,
            trips=trips,
        )
        log_event(
            "wechat_breaker_opened",
            level=logging.WARNING,
            appid=self._appid,
            reason=reason,
            open_until=state.open_until,
            trips=trips,
        )
        return state

    def _current(self, now: int) -> BreakerState:
        with self._lock:
            state, read_at = self._state, self._read_at
        if state.is_open(now) or (read_at is not None and now - read_at < self._cache_seconds):
            return state
        if read_at is None:
            # A cold start: closed until the first read (the module doc says why), which is
            # due CACHE_SECONDS from now, so that a container's first login reads nothing.
            self._remember(state, now)
            return state
        try:
            stored = self._guards.breaker(self._appid)
        except StoreUnavailable as e:
            self._metrics.count("WeChatBreakerReadFailed", appid=self._appid)
            log_event(
                "wechat_breaker_read_failed",
                level=logging.WARNING,
                appid=self._appid,
                detail=str(e),
            )
            self._remember(state, now)  # fail open, and do not ask again before CACHE_SECONDS
            return state
        state = stored or BreakerState()
        self._remember(state, now)
        return state

    def _remember(self, state: BreakerState, now: int) -> None:
        with self._lock:
            self._state, self._read_at = state, now

    def _refuse_if_open(self, state: BreakerState, now: int) -> None:
        if not state.is_open(now):
            return
        self._metrics.count("WeChatBreakerRefused", appid=self._appid, reason=state.reason)
        raise refusal(state, now)


def refusal(state: BreakerState, now: int) -> WeChatError:
    """What a login meets while the breaker is open: the error WeChat's own answer would have
    been (45011: WeChatRateLimited, 429; -1: WeChatUnavailable, 503), `retry_after` set to the
    seconds until the breaker closes."""
    error: WeChatError
    if state.reason == QUOTA:
        error = WeChatRateLimited(
            "WeChat's quota for this app was exceeded moments ago (45011); not calling it"
        )
    else:
        error = WeChatUnavailable("WeChat was busy moments ago (-1); not calling it")
    error.retry_after = max(1, state.open_until - now)  # type: ignore[attr-defined]
    return error


class GuardedWeChat:
    """A WeChatClient whose `code2session` goes through the breaker: refused without a call
    while this container knows it open, tripping it on 45011 and -1. `after_exchange(openid,
    now)`, if given, runs after each successful exchange (the per-openid login limit). Every
    other method is the client's own. `now` is read from `clock` when the call is made."""

    def __init__(
        self,
        client: WeChatClient,
        breaker: Breaker,
        *,
        clock: Callable[[], float],
        after_exchange: Callable[[str, int], None] | None = None,
    ) -> None:
        self._wechat = client
        self._breaker = breaker
        self._clock = clock
        self._after_exchange = after_exchange

    def check(self, now: int) -> None:
        """Refuse while this app's breaker is open (Breaker.check: the shared item read at
        most once per CACHE_SECONDS), before a login claims its code."""
        self._breaker.check(now)

    def code2session(self, code: str) -> WeChatSession:
        now = int(self._clock())
        self._breaker.check_cached(now)
        try:
            session = self._wechat.code2session(code)
        except WeChatBusy:
            self._breaker.trip(BUSY, now)
            raise
        except WeChatRateLimited:
            self._breaker.trip(QUOTA, now)
            raise
        if self._after_exchange is not None:
            self._after_exchange(session.openid, now)
        return session

    def oauth2_access_token(self, code: str) -> OAuthAccess:
        """A web or mobile app's exchange: not behind the breaker (it guards jscode2session),
        but counted against the per-openid limit as a mini-program's."""
        access = self._wechat.oauth2_access_token(code)
        if self._after_exchange is not None:
            self._after_exchange(access.openid, int(self._clock()))
        return access

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wechat, name)
