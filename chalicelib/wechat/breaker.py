"""The circuit breaker on `jscode2session`: it opens on WeChat's failure rate, never on one answer.

Modelled on resilience4j's CircuitBreaker: CLOSED while fewer than AUTH_BREAKER_FAILURE_RATE %
(50) of at least AUTH_BREAKER_MIN_CALLS (20) calls in the last AUTH_BREAKER_WINDOW (10) seconds
failed; then OPEN for 10 s (a trip within REPEAT_WINDOW of the last opening's end doubles it, up
to 60 s: 10, 20, 40, 60, 60); then HALF-OPEN, where a container lets AUTH_BREAKER_PROBES (3)
calls through: one failure opens it again, that many successes close it.

What counts. A failure is an answer that says WeChat is unwell: -1 (system busy, also to the
client's one retry), a timeout, a failed connection, an HTTP 5xx, an answer that is not JSON
(WeChatUnavailable). Every other answer is a success, since WeChat answered: a rejected code,
a blocked user, our appid or secret, and 45011, which is one user's limit ("每个用户每分钟 100
次"): that login alone answers 429 `slow_down` (GuardedWeChat), nobody else is refused.

Counting across containers: the window is the app's, not a container's
(chalicelib/wechat/failure_rate.py says why and how): every CACHE_SECONDS (5 s) of logins a
container either *reads* the breaker's item (one eventually consistent GetItem: every
container reads it every few seconds, so half a read unit each counts) or *reports* its counts
into it (one UpdateItem that returns the item), never both; a container that reports and finds
the app's estimated rate over the threshold trips the breaker: the opening is written (one guarded
UpdateItem, the longest opening kept) and every container sees it at its next read. A
container's first sync after a cold start is a read, and its first login reads nothing: it
takes the breaker as closed until then.

Half-open is each container's own: after the opening, a container lets up to `probes` calls
through at once and refuses the others (503, `Retry-After: 1`); a failed probe trips the
breaker again (written, doubled), `probes` successful ones close it for that container. An
opening whose end is more than REPEAT_WINDOW ago is over: a container that reads it then
starts closed.

DynamoDB failures here fail open: the breaker is taken as it was (a warning and a
`WeChatBreakerReadFailed` metric), the login goes on.

Metrics (EMF): `WeChatBreakerOpened` (reason, seconds, trips, calls, failures),
`WeChatBreakerRefused` (reason), `WeChatBreakerClosed`, `WeChatUserRateLimited` (a 45011).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.errors import (
    ConditionFailed,
    StoreUnavailable,
    WeChatError,
    WeChatRateLimited,
    WeChatUnavailable,
)
from chalicelib.logs import Metrics, log_event
from chalicelib.store.guards import BreakerState, WindowCounts, item_to_breaker
from chalicelib.wechat.failure_rate import REPORTS_PER_WINDOW, BreakerPolicy, LocalCounts

__all__ = ["REPORTS_PER_WINDOW", "Breaker", "BreakerPolicy", "GuardedWeChat", "open_period"]

if TYPE_CHECKING:
    from chalicelib.store.guards import Guards
    from chalicelib.wechat.client import OAuthAccess, WeChatClient, WeChatSession

OPEN_SECONDS = 10
MAX_OPEN_SECONDS = 60
REPEAT_WINDOW = 60  # a trip this soon after the last opening ended doubles the period
CACHE_SECONDS = 5  # a container reads (or reports to) the shared item at most this often
FAILURE_RATE = "failure_rate"  # opened by the window's failure rate
PROBE_FAILED = "probe_failed"  # opened again by a failed half-open probe
USER_RETRY_AFTER = 60  # 45011: WeChat says "retry next minute"


def open_period(trips: int) -> int:
    """Seconds the breaker stays open on its `trips`-th trip in a row: 10, 20, 40, 60, 60..."""
    return min(MAX_OPEN_SECONDS, OPEN_SECONDS * 2 ** min(max(trips, 1) - 1, 16))


CALL, PROBE = "call", "probe"  # what `Breaker.acquire` lets through


class Breaker:
    def __init__(
        self,
        guards: Guards,
        *,
        appid: str,
        metrics: Metrics | None = None,
        policy: BreakerPolicy | None = None,
        cache_seconds: int = CACHE_SECONDS,
        random_source: Callable[[], float] = random.random,
    ) -> None:
        self._guards = guards
        self._appid = appid
        self._metrics = metrics or Metrics()
        self._policy = policy or BreakerPolicy()
        self._cache_seconds = cache_seconds
        self._random = random_source
        self._lock = threading.Lock()
        self._state = BreakerState()
        self._read_at: int | None = None  # the last sync (read or report); None: cold
        self._sample = 0.0  # the chance to report at a sync; 0 until the first read
        self._counts = LocalCounts()  # this container's calls since its last sync
        self._probing = 0  # half-open probes in flight
        self._probed = 0  # half-open probes that succeeded
        self._closed_after = 0  # the open_until of the last opening this container closed

    @property
    def state(self) -> BreakerState:
        return self._state

    def user_limited(self) -> None:
        """Count a 45011 (one user's limit): a metric, and nothing else."""
        self._metrics.count("WeChatUserRateLimited", appid=self._appid)

    def check(self, now: int) -> None:
        """Refuse (WeChatUnavailable, with `retry_after`) while open, or while half-open with
        every probe in flight. At most one request every CACHE_SECONDS (a read or a report,
        see the module doc), none while this container knows it open."""
        self._sync(now)
        with self._lock:
            self._refuse_if_closed_to(now)

    def acquire(self, now: int) -> str:
        """Let one WeChat call through (CALL, or PROBE when half-open) or refuse it; the
        caller reports its outcome with `record`. Never a request."""
        with self._lock:
            self._refuse_if_closed_to(now)
            if self._half_open(now):
                self._probing += 1
                return PROBE
            return CALL

    def record(self, permit: str, failed: bool | None, now: int) -> None:
        """The outcome of a call `acquire` let through: failed (True), succeeded (False), or
        never reached WeChat (None: not counted)."""
        reopen = False
        with self._lock:
            if permit == PROBE:
                self._probing = max(0, self._probing - 1)
                if failed:
                    reopen = self._half_open(now)  # not if another probe reopened it already
                elif failed is False:
                    self._probed += 1
                    if self._probed >= self._policy.probes and self._half_open(now):
                        self._close(now)
            elif failed is not None:
                self._counts.add(now, failed=failed)
        if reopen:
            self.trip(PROBE_FAILED, now)

    def trip(self, reason: str, now: int, counts: WindowCounts | None = None) -> BreakerState:
        """Open the breaker: this container at once, every other one through the shared item
        (one guarded UpdateItem). The state now in force."""
        with self._lock:
            previous = self._state
        repeated = previous.trips > 0 and now - previous.open_until < REPEAT_WINDOW
        trips = previous.trips + 1 if repeated else 1
        period = open_period(trips)
        state = BreakerState(open_until=now + period, reason=reason, trips=trips)
        self._remember(state, now, opened=True)
        start = now - now % self._policy.window
        try:
            self._guards.trip_breaker(
                self._appid,
                state,
                now=now,
                expires_at=state.open_until + REPEAT_WINDOW,
                drop=(start, start - self._policy.window),
            )
        except ConditionFailed as e:
            # Another container opened it for longer already: that opening is in force.
            if e.item:
                state = item_to_breaker(e.item)
                self._remember(state, now, opened=True)
        except StoreUnavailable as e:
            log_event(
                "wechat_breaker_write_failed",
                level=logging.WARNING,
                appid=self._appid,
                detail=str(e),
            )
        seen = counts or WindowCounts()
        self._metrics.count(
            "WeChatBreakerOpened",
            appid=self._appid,
            reason=reason,
            seconds=period,
            trips=trips,
            calls=round(seen.calls),
            failures=round(seen.failures),
        )
        log_event(
            "wechat_breaker_opened",
            level=logging.WARNING,
            appid=self._appid,
            reason=reason,
            open_until=state.open_until,
            trips=trips,
            calls=round(seen.calls),
            failures=round(seen.failures),
        )
        return state

    # -- this container's view ---------------------------------------------------------------

    def _half_open(self, now: int) -> bool:
        until = self._state.open_until
        return 0 < until <= now < until + REPEAT_WINDOW and self._closed_after != until

    def _close(self, now: int) -> None:
        """Half-open probes succeeded: closed, on fresh counts (lock held)."""
        self._closed_after = self._state.open_until
        self._probed = 0
        self._counts.clear()
        self._metrics.count("WeChatBreakerClosed", appid=self._appid)
        log_event("wechat_breaker_closed", appid=self._appid, probes=self._policy.probes)

    def _refuse_if_closed_to(self, now: int) -> None:
        """Raise the refusal if no call may go through now (lock held)."""
        state = self._state
        if state.is_open(now):
            retry_after = state.open_until - now
        elif self._half_open(now) and self._probing >= self._policy.probes:
            retry_after = 1  # every probe is in flight: one of them will soon have answered
        else:
            return
        self._metrics.count("WeChatBreakerRefused", appid=self._appid, reason=state.reason)
        raise refusal(retry_after)

    def _remember(self, state: BreakerState, now: int, *, opened: bool = False) -> None:
        with self._lock:
            if opened or state.open_until != self._state.open_until:
                self._probing = self._probed = 0
                self._counts.clear()
            self._state, self._read_at = state, now

    # -- the shared item ---------------------------------------------------------------------

    def _sync(self, now: int) -> None:
        """Read or report (see the module doc) if this container's copy is due."""
        with self._lock:
            state, read_at = self._state, self._read_at
            if state.is_open(now) or (read_at is not None and now - read_at < self._cache_seconds):
                return
            if read_at is None:
                # A cold start: closed until the first read, due CACHE_SECONDS from now, so
                # that a container's first login makes no request.
                self._read_at = now
                return
            counts = self._counts.take(now, self._policy.window)
            report = self._sample > 0 and self._random() < self._sample
            weight = 1 / self._sample if report else 0.0
        start = now - now % self._policy.window
        try:
            if report:
                stored: BreakerState | None = self._guards.report_breaker(
                    self._appid,
                    start,
                    WindowCounts(counts[0] * weight, counts[1] * weight, weight),
                    drop=(start - 2 * self._policy.window, start - 3 * self._policy.window),
                    expires_at=now + 2 * self._policy.window + MAX_OPEN_SECONDS + REPEAT_WINDOW,
                )
            else:
                stored = self._guards.breaker(self._appid)
        except StoreUnavailable as e:
            self._metrics.count("WeChatBreakerReadFailed", appid=self._appid)
            log_event(
                "wechat_breaker_read_failed",
                level=logging.WARNING,
                appid=self._appid,
                detail=str(e),
            )
            with self._lock:
                self._read_at = now  # fail open, and do not ask again before CACHE_SECONDS
            return
        stored = stored or BreakerState()
        if stored.open_until + REPEAT_WINDOW <= now:  # an opening long over: closed
            stored = BreakerState(trips=stored.trips, windows=stored.windows)
        estimate = self._policy.estimate(stored, now)
        with self._lock:
            self._sample = self._policy.sampling(estimate)
        self._remember(stored, now)
        closed = not stored.is_open(now) and not self._half_open(now)
        if report and closed and self._policy.over(estimate):
            self.trip(FAILURE_RATE, now, estimate)


def refusal(retry_after: int) -> WeChatError:
    """What a login meets while the breaker is open: 503, `retry_after` set to the seconds
    until WeChat is tried again."""
    error = WeChatUnavailable(
        "WeChat is failing for this app's logins (its circuit breaker is open); not calling it"
    )
    error.retry_after = max(1, retry_after)  # type: ignore[attr-defined]
    return error


class GuardedWeChat:
    """A WeChatClient whose `code2session` goes through the breaker: refused without a call
    while it is open, its outcome counted. A 45011 answers that login alone (429, Retry-After
    60: WeChat's limit is per user) and counts as a success. `after_exchange(openid, now)`,
    if given, runs after each successful exchange (the per-openid login limit). Every other
    method is the client's own. `now` is read from `clock` when the call is made."""

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
        permit = self._breaker.acquire(int(self._clock()))
        failed: bool | None = None
        try:
            session = self._wechat.code2session(code)
            failed = False
        except WeChatUnavailable:
            failed = True
            raise
        except WeChatRateLimited as e:
            failed = False
            self._breaker.user_limited()
            limited = WeChatRateLimited(
                "WeChat's per-user login limit (45011: 100 a minute for each WeChat user);"
                f" retry after {USER_RETRY_AFTER} s"
            )
            limited.retry_after = USER_RETRY_AFTER
            raise limited from e
        except WeChatError:
            failed = False
            raise
        finally:
            self._breaker.record(permit, failed, int(self._clock()))
        if self._after_exchange is not None:
            self._after_exchange(session.openid, int(self._clock()))
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
