"""The failure rate the jscode2session breaker opens on: the app's, over a sliding window.

Why the app's and not a container's: a Lambda container serves one request at a time, so its
own window holds only its own calls, a few a second at best and about one every 3 s while
WeChat times out: 20 calls in 10 s would take it a saturated container, and none when it
matters most. And a rate taken from 20 calls in each of thousands of containers, one
container's trip opening the app's breaker, would open it somewhere at a true failure rate well
under the threshold (at 20% failing, some container's 20 calls show 10 failures every few
seconds): an app-wide lockout again, from one unlucky sample instead of one user's 45011.

How, without a hot item: each container counts its calls and failures per second
(`LocalCounts`) and, at its sync with the breaker's item (every 5 s of logins, chalicelib/
wechat/breaker.py), either reads the item or reports its counts into it. It reports with a
probability (`BreakerPolicy.sampling`) that keeps the app's reports near REPORTS_PER_WINDOW per
window whatever the number of containers, each report weighted by the inverse of that
probability (Horvitz-Thompson), so the item's sums estimate the app's calls, failures and syncs
unbiased, and the item takes a few writes a second at most (the rest of the syncs are the reads
there always were). Windows are aligned on multiples of AUTH_BREAKER_WINDOW; the rate is a
sliding estimate: the current window's counts plus the previous one's weighted by the share of
it still inside the last AUTH_BREAKER_WINDOW seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.store.guards import BreakerState, WindowCounts

if TYPE_CHECKING:
    from chalicelib.settings import Settings

REPORTS_PER_WINDOW = 20  # the app's reports aimed at per window, whatever its containers


@dataclass(frozen=True)
class BreakerPolicy:
    """When the breaker opens and closes (the AUTH_BREAKER_* settings)."""

    failure_rate: float = 0.5  # a share of the calls, 0 to 1
    min_calls: int = 20
    window: int = 10  # seconds
    probes: int = 3

    @classmethod
    def of(cls, settings: Settings) -> BreakerPolicy:
        return cls(
            failure_rate=settings.breaker_failure_rate / 100,
            min_calls=settings.breaker_min_calls,
            window=settings.breaker_window,
            probes=settings.breaker_probes,
        )

    def estimate(self, state: BreakerState, now: int) -> WindowCounts:
        """The app's counts over the last `window` seconds: the current window's, plus the
        previous one's weighted by the share of it still inside the window."""
        start = now - now % self.window
        current = state.windows.get(start, WindowCounts())
        previous = state.windows.get(start - self.window, WindowCounts())
        weight = 1 - (now - start) / self.window
        return WindowCounts(
            calls=current.calls + previous.calls * weight,
            failures=current.failures + previous.failures * weight,
            checks=current.checks + previous.checks * weight,
        )

    def over(self, counts: WindowCounts) -> bool:
        """At least `failure_rate` of at least `min_calls` calls failed."""
        return (
            counts.calls >= self.min_calls and counts.failures >= self.failure_rate * counts.calls
        )

    def sampling(self, counts: WindowCounts) -> float:
        """The chance a container's sync reports, from the app's syncs per window."""
        return min(1.0, REPORTS_PER_WINDOW / max(counts.checks, 1.0))


class LocalCounts:
    """A container's calls and failures per second since its last sync (not thread-safe:
    the breaker holds its lock)."""

    def __init__(self) -> None:
        self._seconds: dict[int, list[int]] = {}

    def add(self, now: int, *, failed: bool) -> None:
        counts = self._seconds.setdefault(now, [0, 0])
        counts[0] += 1
        counts[1] += int(failed)

    def take(self, now: int, window: int) -> tuple[int, int]:
        """(calls, failures) of the last `window` seconds; the slate is wiped."""
        calls = failures = 0
        for second, (c, f) in self._seconds.items():
            if second > now - window:
                calls, failures = calls + c, failures + f
        self._seconds.clear()
        return calls, failures

    def clear(self) -> None:
        self._seconds.clear()
