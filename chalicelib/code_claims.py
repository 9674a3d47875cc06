"""A WeChat code exchanged once: claimed before WeChat is called, its result kept for replays.

Login codes (chalicelib/login.py) and phone codes (chalicelib/phone.py) follow one discipline.
The code's hash is claimed with a guarded PutItem (chalicelib/store/logins.py); the claimant
calls WeChat and stores the result, sealed under the code. Any other request with the same code
(a double tap, a retry on a bad network) within `replay_ttl` seconds waits for that result and
answers from it, without calling WeChat.

Waiting polls the claim (one consistent GetItem a poll) with exponential back-off: 50 ms, then
twice as long each time, no pause over 1 s, `max_wait` (3 s) in all; then 503 (`pending`,
`Retry-After: 1`). A login takes a few hundred milliseconds, so the first polls find it done.

A code WeChat refused stays claimed, with the refusal (`settle`): `rejected` (40029, 40163,
41008: invalid_grant) and `blocked` (40226: access_denied) until the claim expires, since the
code will never work; `rate_limited` (WeChat's 45011 for that user, or a phone quota) until
WeChat's `Retry-After` has passed, after which the code may be tried again. Every request with
that code meanwhile, waiters included, answers the same refusal at once, without calling WeChat.
A login that bound a phone number (chalicelib/phone_login.py) and was refused because the number
is another user's keeps its claim as `phone_in_use` the same way (409 again, no WeChat call).
A claimant that fails any other way releases the claim, so the next request may claim the code
itself; one that died leaves a lease that expires after `lease`. Whether another request may
have the result at all is the caller's to say (`admit`, called with the claim as soon as it is
read, before any wait): a login's replay must come from the code's first caller
(chalicelib/login.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from chalicelib.errors import (
    PhoneInUse,
    StoreError,
    StoreUnavailable,
    WeChatCodeRejected,
    WeChatRateLimited,
    WeChatUserBlocked,
    WxAuthError,
)
from chalicelib.store.logins import LoginRecord, Logins

T = TypeVar("T")

REJECTED, BLOCKED, RATE_LIMITED = "rejected", "blocked", "rate_limited"
PHONE_IN_USE = "phone_in_use"  # issue 24, item 1: a phone login refused (AUTH_PHONE_CONFLICT)
_REFUSALS: tuple[tuple[type[WxAuthError], str], ...] = (
    (WeChatCodeRejected, REJECTED),
    (WeChatUserBlocked, BLOCKED),
    (WeChatRateLimited, RATE_LIMITED),
    (PhoneInUse, PHONE_IN_USE),
)
MAX_CLAIMS = 3  # a claim released (or whose holder died) while we wait is claimed this often


def refusal_of(error: BaseException) -> str | None:
    """The refusal a claim keeps for this error of WeChat's; None: the claim is released."""
    return next((name for kind, name in _REFUSALS if isinstance(error, kind)), None)


def refused(record: LoginRecord, now: int) -> WxAuthError:
    """The error a refused code answers with, as its first exchange did."""
    if record.refused == PHONE_IN_USE:
        return PhoneInUse("this phone number is already bound to another account")
    if record.refused == RATE_LIMITED:
        error: WeChatRateLimited = WeChatRateLimited(
            "WeChat asked to slow down for this code moments ago; not calling it again yet"
        )
        error.retry_after = max(1, record.lease_until - now)
        return error
    if record.refused == BLOCKED:
        return WeChatUserBlocked("WeChat flagged this user as high-risk (errcode 40226)")
    return WeChatCodeRejected("WeChat rejected this code moments ago; it was not sent again")


class CodeClaims:
    def __init__(
        self,
        logins: Logins,
        *,
        replay_ttl: int = 300,
        lease: int = 20,
        poll_interval: float = 0.05,
        max_poll_interval: float = 1.0,
        max_wait: float = 3.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.logins = logins
        self._replay_ttl = replay_ttl
        self.lease = lease
        self._poll_interval = poll_interval
        self._max_poll_interval = max_poll_interval
        self._max_wait = max_wait
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
        `replay(record)` once another request has stored the code's result; the stored refusal
        if WeChat refused the code; `pending` (raised) if the claimant is still at it after the
        wait. `admit(record)` raises to refuse this request the code's result, before any wait.
        A claim released by a failed claimant (or whose holder died) is claimed again."""
        waited, pause, claims = 0.0, self._poll_interval, 1
        claimed = self._claim(code_hash, now, nonce_hash)
        while not claimed:
            record = self.logins.get(code_hash)
            if record is not None and admit is not None:
                admit(record)
            if record is not None and record.done:
                return replay(record)
            if record is None or record.lease_until <= now:
                if claims >= MAX_CLAIMS:
                    raise pending
                claims += 1
                claimed = self._claim(code_hash, now)  # released, or its holder died
                continue
            if record.refused:
                raise refused(record, now)
            if waited >= self._max_wait:
                raise pending
            step = min(pause, self._max_wait - waited)
            self._sleep(step)
            waited, pause = waited + step, min(pause * 2, self._max_poll_interval)
        return exchange()

    def settle(self, code_hash: str, error: BaseException, now: int) -> None:
        """After the claimant's exchange failed with `error`: keep the claim as refused if
        WeChat refused the code (see the module doc), else release it."""
        reason = refusal_of(error)
        if reason is None:
            self.logins.release(code_hash)
            return
        until = now + self._replay_ttl
        if reason == RATE_LIMITED:
            until = now + int(getattr(error, "retry_after", 60))
        # A store failure here leaves the claim to its lease; WeChat's answer still goes out.
        with contextlib.suppress(StoreError):
            self.logins.refuse(code_hash, reason=reason, until=until)

    def _claim(self, code_hash: str, now: int, nonce_hash: bytes | None = None) -> bool:
        return self.logins.claim(
            code_hash,
            now=now,
            lease_until=now + self.lease,
            expires_at=now + self._replay_ttl,
            nonce_hash=nonce_hash,
        )
