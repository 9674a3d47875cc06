"""Secrets Manager values, cached: stale-if-error, back-off, the on-demand cap (an injected
clock and a scripted loader; the AWS wiring is tests/test_runtime.py's)."""

from __future__ import annotations

import pytest

from chalicelib.errors import ConfigurationError
from chalicelib.secrets_manager import STALE_IF_ERROR, Reloaded
from tests.conftest import FakeClock


class Loader:
    """Answers "v<n>" for the n-th successful load; `down` makes every load fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False

    def __call__(self) -> str:
        self.calls += 1
        if self.down:
            raise ConfigurationError("cannot read secret arn:aws:secretsmanager:x (Timeout)")
        return f"v{self.calls}"


@pytest.fixture
def loader() -> Loader:
    return Loader()


@pytest.fixture
def value(loader: Loader, clock: FakeClock) -> Reloaded[str]:
    return Reloaded(loader, name="app_secret", clock=clock, max_age=300)


def test_a_failed_reload_serves_the_cached_value_and_backs_off(value, loader, clock, log_lines):
    assert value.get() == "v1"
    loader.down = True
    clock.advance(300)
    for _ in range(10):
        assert value.get() == "v1"  # stale, and one attempt only
    assert loader.calls == 2
    assert sum('"SecretReloadFailed"' in line for line in log_lines) == 1
    attempts = []
    for waited in range(1, 200):  # back-off: 5, 10, 20, 40, 60, 60 ... s after each failure
        clock.advance(1)
        calls = loader.calls
        value.get()
        if loader.calls > calls:
            attempts.append(waited)
    assert attempts == [5, 15, 35, 75, 135, 195]
    loader.down = False
    clock.advance(60)
    assert value.get() == "v9"  # recovered: fresh again
    clock.advance(299)
    assert value.get() == "v9" and loader.calls == 9


def test_stale_for_an_hour_at_most(value, loader, clock) -> None:
    value.get()
    loader.down = True
    clock.advance(300 + STALE_IF_ERROR - 1)
    assert value.get() == "v1"
    clock.advance(60)
    with pytest.raises(ConfigurationError, match="cannot read secret"):
        value.get()


def test_with_nothing_cached_a_failure_fails_and_backs_off_too(value, loader, clock) -> None:
    loader.down = True
    for _ in range(3):
        with pytest.raises(ConfigurationError):
            value.get()
    assert loader.calls == 1  # the cold start's one attempt, then back-off
    loader.down = False
    clock.advance(5)
    assert value.get() == "v2"


def test_reloads_on_demand_are_capped_by_attempts(value, loader, clock) -> None:
    value.get()
    for _ in range(50):  # e.g. tokens naming random kids, a second apart
        value.get(reload=True, min_interval=10)
        clock.advance(1)
    assert loader.calls == 1 + 4  # one attempt per 10 s: at 10, 20, 30, 40
    loader.down = True
    for _ in range(50):  # failing: still capped, and backing off
        value.get(reload=True, min_interval=10)
        clock.advance(1)
    assert loader.calls == 5 + 4  # at 50, 60, 70, 90: the cap, then the back-off (10, 20 s)
