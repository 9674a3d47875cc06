"""Secrets Manager values as the service reads them: the app secrets and the signing keys.

In AWS every secret comes from Secrets Manager (never from code, the environment or a log
line); a value is fetched at first use and cached per container (`Reloaded`).

Stale-if-error: when a reload fails (Secrets Manager down, throttled, or the call timed out),
the cached value is served on for up to STALE_IF_ERROR (an hour) past its age, a
`SecretReloadFailed` metric and a `secret_reload_failed` warning are written, and the next
try waits: 5 s, then twice as long after each failure in a row, at most a minute; never at
every request. Past the hour, or with nothing cached (a cold start), the failure is the
request's (500). A reload on demand (a token naming an unknown `kid`) is capped by attempts,
successful or not: at most one per `min_interval`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ConfigurationError
from chalicelib.logs import Metrics, log_event

T = TypeVar("T")

SECRET_MAX_AGE = 300.0
STALE_IF_ERROR = 3600.0  # seconds a value may be served past its age while reloads fail
RETRY_FIRST = 5.0  # the wait after a failed reload; doubled after each failure in a row
RETRY_MAX = 60.0


def fetch_secret(client: Any, arn: str) -> str:
    """A Secrets Manager SecretString; ConfigurationError (naming only the ARN) on failure."""
    try:
        return client.get_secret_value(SecretId=arn)["SecretString"]
    except (ClientError, BotoCoreError) as e:
        raise ConfigurationError(f"cannot read secret {arn} ({type(e).__name__})") from e


class Reloaded(Generic[T]):  # noqa: UP046 - no PEP 695: tools parse with 3.11
    """A value from `load()`, reloaded once `max_age` seconds old, stale-if-error (see the
    module doc). `name` is what the metric and the warning call it (never its value)."""

    def __init__(
        self,
        load: Callable[[], T],
        *,
        name: str,
        clock: Callable[[], float] = time.time,
        max_age: float = SECRET_MAX_AGE,
        stale_if_error: float = STALE_IF_ERROR,
        metrics: Metrics | None = None,
    ) -> None:
        self._load = load
        self._name = name
        self._clock = clock
        self._max_age = max_age
        self._stale_if_error = stale_if_error
        self._metrics = metrics or Metrics()
        self._lock = threading.Lock()
        self._value: T | None = None
        self._loaded_at = 0.0
        self._tried_at = -float("inf")  # the last attempt, successful or not
        self._failures = 0  # failed attempts in a row
        self._error: Exception | None = None

    def get(self, *, reload: bool = False, min_interval: float = 0.0) -> T:
        """The value; loaded first if there is none or it is `max_age` old, or, with `reload`,
        if the last attempt is at least `min_interval` old."""
        with self._lock:
            now = self._clock()
            value = self._value
            due = value is None or now - self._loaded_at >= self._max_age
            if reload and now - self._tried_at >= min_interval:
                due = True
            if not due:
                return value  # type: ignore[return-value]
            if self._failures and now < self._tried_at + self._backoff():
                return self._stale(now)  # backing off: no call
            self._tried_at = now
            try:
                loaded = self._load()
            except Exception as e:
                self._failures += 1
                self._error = e
                self._report(e, now)
                return self._stale(now)
            self._value, self._loaded_at, self._failures = loaded, now, 0
            return loaded

    def forget(self) -> None:
        """Drop the value and the failures: the next `get` loads it again (after a SnapStart
        restore, chalicelib/snapstart.py)."""
        with self._lock:
            self._value, self._loaded_at = None, 0.0
            self._tried_at, self._failures, self._error = -float("inf"), 0, None

    def _backoff(self) -> float:
        return min(RETRY_MAX, RETRY_FIRST * 2 ** min(self._failures - 1, 16))

    def _stale(self, now: float) -> T:
        """The cached value while it is young enough, else the last failure (lock held)."""
        if self._value is None or now - self._loaded_at >= self._max_age + self._stale_if_error:
            assert self._error is not None
            raise self._error.with_traceback(None)  # raised again: no traceback piling up
        return self._value

    def _report(self, error: Exception, now: float) -> None:
        age = None if self._value is None else int(now - self._loaded_at)
        self._metrics.count("SecretReloadFailed", secret=self._name, age=age)
        log_event(
            "secret_reload_failed",
            level=logging.WARNING,
            secret=self._name,
            age=age,  # seconds since the value in use was loaded; None: none cached
            retry_in=self._backoff(),
            error=type(error).__name__,
            detail=str(error) if isinstance(error, ConfigurationError) else None,
        )


class CachedSecret:
    """A Secrets Manager SecretString, fetched at first use and cached for `max_age` seconds,
    stale-if-error (`Reloaded`)."""

    def __init__(
        self,
        client: Any,
        arn: str,
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = SECRET_MAX_AGE,
        metrics: Metrics | None = None,
        name: str = "app_secret",
    ) -> None:
        self._client = client
        self._value = Reloaded(
            lambda: fetch_secret(client, arn),
            name=name,
            clock=clock,
            max_age=max_age,
            metrics=metrics,
        )

    def forget(self) -> None:
        """Drop the cached value, and the client's pooled connections: the next call fetches
        the secret again over a new connection (after a SnapStart restore)."""
        self._value.forget()
        close = getattr(self._client, "close", None)  # botocore clients have one
        if close is not None:
            close()

    def __call__(self) -> str:
        return self._value.get()
