"""How long one AWS API call may wait: botocore's timeouts and attempts, and their sum.

Each AWS dependency has a budget (`CallBudget`): its botocore `Config` (made by `config()`,
which imports botocore only then) and `worst_case`, the longest a call can last. Settings check
against these figures (AUTH_REFRESH_GRACE must outlast a DynamoDB call, chalicelib/settings.py),
so this module imports nothing at load time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.config import Config

# botocore's standard retry mode sleeps before retry i (0-based) at most
# min(THROTTLING_BACKOFF * 2**i, MAX_BACKOFF) seconds, plus up to RETRY_AFTER_EXTRA more when
# the answer carries `x-amz-retry-after` (botocore.retries.standard.ExponentialBackoff; a
# failure that is not throttling sleeps far less: 25 ms scale for DynamoDB).
THROTTLING_BACKOFF = 1.0
MAX_BACKOFF = 20.0
RETRY_AFTER_EXTRA = 5.0


@dataclass(frozen=True)
class CallBudget:
    """How long one AWS API call may wait: its botocore timeouts and attempts, and their sum.

    `connect_timeout` bounds each TCP connect, `read_timeout` each wait for the next bytes of an
    answer; `attempts` counts the first one (botocore's `total_max_attempts`).
    """

    connect_timeout: float
    read_timeout: float
    attempts: int

    def config(self) -> Config:
        from botocore.config import Config

        return Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"mode": "standard", "total_max_attempts": self.attempts},
            tcp_keepalive=True,
        )

    @property
    def worst_case(self) -> float:
        """Seconds one call can last at most: every attempt hangs for both of its timeouts, and
        every retry waits botocore's longest backoff (throttled, with `x-amz-retry-after`)."""
        backoff = sum(
            min(THROTTLING_BACKOFF * 2**i, MAX_BACKOFF) + RETRY_AFTER_EXTRA
            for i in range(self.attempts - 1)
        )
        return self.attempts * (self.connect_timeout + self.read_timeout) + backoff


# DynamoDB answers a single-item request in milliseconds; 2 s without a byte is an outage, and
# one retry is enough (the client retries after `Retry-After` anyway). 12 s at most per call:
# AUTH_REFRESH_GRACE is checked against it (chalicelib/settings.py, docs/operators.md "Settings").
DYNAMODB = CallBudget(connect_timeout=1, read_timeout=2, attempts=2)
# Secrets Manager is read at a cold start and every few minutes (the keys, the app secret).
SECRETS_MANAGER = CallBudget(connect_timeout=1, read_timeout=2, attempts=2)


def hook_budget(timeout_ms: int) -> CallBudget:
    """The pre-token hook's (chalicelib/tokens/claims.py): one attempt, no retry; connecting
    and waiting for the answer each within the timeout."""
    seconds = timeout_ms / 1000
    return CallBudget(connect_timeout=seconds, read_timeout=seconds, attempts=1)
