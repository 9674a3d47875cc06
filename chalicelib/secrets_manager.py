"""Secrets Manager values as the service reads them: the app secrets and the signing keys.

In AWS every secret comes from Secrets Manager (never from code, the environment or a log
line); a value is fetched at first use and cached per container.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ConfigurationError

SECRET_MAX_AGE = 300.0


def fetch_secret(client: Any, arn: str) -> str:
    """A Secrets Manager SecretString; ConfigurationError (naming only the ARN) on failure."""
    try:
        return client.get_secret_value(SecretId=arn)["SecretString"]
    except (ClientError, BotoCoreError) as e:
        raise ConfigurationError(f"cannot read secret {arn} ({type(e).__name__})") from e


class CachedSecret:
    """A Secrets Manager SecretString, fetched at first use and cached for `max_age` seconds."""

    def __init__(
        self,
        client: Any,
        arn: str,
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = SECRET_MAX_AGE,
    ) -> None:
        self._client = client
        self._arn = arn
        self._clock = clock
        self._max_age = max_age
        self._lock = threading.Lock()
        self._value: str | None = None
        self._fetched_at = 0.0

    def forget(self) -> None:
        """Drop the cached value, and the client's pooled connections: the next call fetches
        the secret again over a new connection (after a SnapStart restore)."""
        with self._lock:
            self._value = None
            close = getattr(self._client, "close", None)  # botocore clients have one
            if close is not None:
                close()

    def __call__(self) -> str:
        with self._lock:
            if self._value is None or self._clock() - self._fetched_at >= self._max_age:
                self._value = fetch_secret(self._client, self._arn)
                self._fetched_at = self._clock()
            return self._value
