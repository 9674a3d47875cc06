"""A WeChat code exchanged once: claimed before WeChat is called, its result kept for replays.

Login codes (chalicelib/login.py) and phone codes (chalicelib/phone.py) follow one discipline.
The code's hash is claimed with a guarded PutItem (chalicelib/store/logins.py); the claimant
calls WeChat and stores the result, sealed under the code. Any other request with the same code
(a double tap, a retry on a bad network) within `replay_ttl` seconds waits for that result and
answers from it, without calling WeChat. A claimant that fails releases the claim, so the next
request may claim the code itself; one that died leaves a lease that expires after `lease`.
Whether another request may have the result at all is the caller's to say (`admit`, called
with the claim as soon as it is read, before any wait): a login's replay must come from the
code's first caller (chalicelib/login.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from chalicelib.errors import StoreUnavailable
from chalicelib.store.logins import LoginRecord, Logins

T = TypeVar("T")


class CodeClaims:
    def __init__(
        self,
        logins: Logins,
        *,
        replay_ttl: int = 300,
        lease: int = 20,
        poll_interval: float = 0.05,
        max_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.logins = logins
        self._replay_ttl = replay_ttl
        self.lease = lease
        self._poll_interval = poll_interval
        self._max_polls = max(1, int(max_wait / poll_interval))
        self._sleep = sleep

    def run(
        self,
        code_hash: str,
        now: int,
        *,
        exchange: Callable[[], T],
        replay: Callable[[LoginRecord], T],
        pending: StoreUnavailable,
        nonce_hash: bytes | None = None,
        admit: Callable[[LoginRecord], None] | None = None,
    ) -> T:
        """`exchange()` if this request claims the code (its claim keeps `nonce_hash`);
        `replay(record)` once another request has stored the code's result; `pending` (raised)
        if the claimant is still at it after the wait. `admit(record)` raises to refuse this
        request the code's result, before any wait. A claim released by a failed claimant is
        claimed again."""
        for _ in range(self._max_polls):
            claimed = self.logins.claim(
                code_hash,
                now=now,
                lease_until=now + self.lease,
                expires_at=now + self._replay_ttl,
                nonce_hash=nonce_hash,
            )
            if claimed:
                return exchange()
            record = self.logins.get(code_hash)
            if record is not None and admit is not None:
                admit(record)
            if record is not None and record.done:
                return replay(record)
            if record is None:
                continue  # the claimant failed and released the code: claim it ourselves
            self._sleep(self._poll_interval)
        raise pending
