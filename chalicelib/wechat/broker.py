"""The app's WeChat server access_token, shared by every container through DynamoDB.

WeChat's `cgi-bin/token` invalidates the previous token at each call, so containers refreshing
independently knock each other out; `cgi-bin/stable_token` in normal mode answers the same
token while it is valid, and its `force_refresh` (20 a day, 30 s apart) invalidates it. The
broker keeps one item per appid (`WXTOKEN#<appid>`, `TOKEN`: chalicelib/store/wechat.py), the token
in it sealed under a key derived from the app secret:

- **Lease** (the idempotency pattern of AWS Lambda Powertools): a request that finds no usable
  token takes the lease with a guarded write (`attribute_not_exists(#pk) OR #lease < :now`) and
  calls `stable_token`; the others wait briefly (bounded polls) and read it (ConsistentRead).
  The lease is taken only if the item still holds the token the request read, so a request
  that read just before another stored one does not fetch again.
  A holder that died leaves a lease that expires after LEASE_SECONDS.
- **Ahead of expiry**: from a jittered moment in the last REFRESH_AHEAD seconds of the token's
  life one request (the lease holder) refreshes it while the others keep using it; it is never
  handed out later than EXPIRY_MARGIN seconds before WeChat's `expires_in`.
- **Refused token** (`call`): on 40001/42001/40014 re-read the item; only if it still holds
  the token that failed, force a refresh, at most once per FORCE_INTERVAL seconds per appid
  across every container (a guarded write on `last_forced_at`) and within a daily budget (a
  counter item per UTC+8 day, WeChat's day). The request is retried once: never a loop.

Metrics (EMF): `WeChatTokenFetch`, `WeChatTokenRejected`, `WeChatTokenForceRefresh`,
`WeChatTokenForceRefreshRefused`. The token is never logged.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from chalicelib import crypto
from chalicelib.errors import (
    ConditionFailed,
    GrantError,
    WeChatError,
    WeChatRateLimited,
    WeChatTokenInvalid,
    WeChatUnavailable,
)
from chalicelib.logs import Metrics, log_event
from chalicelib.store.wechat import WeChatTokenRecord, item_to_wechat_token

if TYPE_CHECKING:
    from chalicelib.store.wechat import WeChatTokens
    from chalicelib.wechat.client import WeChatClient

T = TypeVar("T")

LEASE_SECONDS = 15  # longer than one stable_token call can take (2 x (2 + 4) s + the retry delay)
POLL_INTERVAL = 0.25  # seconds between a waiting request's reads
MAX_POLLS = 40  # a waiting request gives up (503) after MAX_POLLS x POLL_INTERVAL = 10 s
EXPIRY_MARGIN = 60  # never hand out a token in its last minute
REFRESH_AHEAD = (120, 300)  # refresh at a random moment in the last 5 to 2 minutes (WeChat's
# normal mode answers a new token in the last 5 minutes, the old one staying valid meanwhile)
REFRESH_RETRY = 60  # when WeChat answers the same old token, try again no sooner than this
FORCE_INTERVAL = 30  # WeChat: forced refreshes at least 30 s apart
DAILY_FORCE_BUDGET = 10  # of WeChat's 20 a day: the rest is the operator's
WECHAT_DAY_OFFSET = 8 * 3600  # WeChat's quotas reset at midnight China Standard Time (UTC+8)
_SEAL_CONTEXT = b"wechat-access-token|"


@dataclass(frozen=True)
class BrokeredToken:
    """A usable access token and the moment (epoch seconds) after which it must not be used."""

    access_token: str = field(repr=False)
    usable_until: int

    def expires_in(self, now: int) -> int:
        return max(0, self.usable_until - now)


class AccessTokenBroker:
    def __init__(
        self,
        store: WeChatTokens,
        wechat: WeChatClient,
        *,
        appid: str,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        metrics: Metrics,
        secret: Callable[[], str],
        rand_below: Callable[[int], int] = secrets.randbelow,
        daily_force_budget: int = DAILY_FORCE_BUDGET,
    ) -> None:
        self._store = store
        self._wechat = wechat
        self._appid = appid
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics
        self._secret = secret  # the app secret: the sealing key is derived from it
        self._rand_below = rand_below
        self._budget = daily_force_budget

    # -- the contract -----------------------------------------------------------------------

    def token(self) -> str:
        """A valid server access_token for the app: from the shared cache (one DynamoDB item
        per appid, ConsistentRead), fetched with cgi-bin/stable_token under a lease when
        missing or near expiry."""
        return self.current().access_token

    def current(self) -> BrokeredToken:
        """`token()` with how long it may be used (the internal access route answers both)."""
        for poll in range(MAX_POLLS + 1):
            if poll:
                self._sleep(POLL_INTERVAL)
            found = self._step(self._now())
            if found is not None:
                return found
        raise WeChatUnavailable("another request holds the access token's refresh lease")

    def call(self, request: Callable[[str], T]) -> T:
        """request(token); if it raises WeChatTokenInvalid (errcode 40001/42001/40014), re-read
        the cache, force-refresh only if the cached token is the one that failed (at most once
        per 30 s per appid across all containers, counted against a daily budget), then retry
        request once with the new token. Never loops."""
        failed = self.token()
        try:
            return request(failed)
        except WeChatTokenInvalid:
            self._metrics.count("WeChatTokenRejected", appid=self._appid)
            log_event("wechat_token_rejected", level=logging.WARNING, appid=self._appid)
        return request(self._replacement(failed))

    # -- the steps ----------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _step(self, now: int) -> BrokeredToken | None:
        """The cached token; or, under the lease, a fetched one; None: wait for the holder."""
        record = self._store.get(self._appid)
        cached = self._usable(record, now)
        if cached is not None and record is not None and now < record.refresh_at:
            return cached
        lease_until = now + LEASE_SECONDS
        try:
            self._store.lease(
                self._appid,
                now=now,
                lease_until=lease_until,
                seen_fetched_at=record.fetched_at if record and record.sealed_token else None,
            )
        except ConditionFailed as e:
            # Another request is fetching: until it stores the new token, the old one is good.
            if cached is not None:
                return cached
            return self._usable(item_to_wechat_token(e.item), now) if e.item else None
        return self._fetch(now, lease_until=lease_until, force=False, fallback=cached)

    def _replacement(self, failed: str) -> str:
        for poll in range(MAX_POLLS + 1):
            if poll:
                self._sleep(POLL_INTERVAL)
            now = self._now()
            cached = self._usable(self._store.get(self._appid), now)
            if cached is None:
                return self.token()  # nothing usable cached: fetch as at a cold start
            if not hmac.compare_digest(cached.access_token, failed):
                return cached.access_token  # another request already replaced it
            if poll == 0:
                forced = self._force(now)
                if forced is not None:
                    return forced.access_token
        raise WeChatUnavailable("WeChat refused the access token; a forced refresh is under way")

    def _force(self, now: int) -> BrokeredToken | None:
        """Force a refresh if this 30 s window has none yet; None: another request has it."""
        lease_until = now + LEASE_SECONDS
        try:
            self._store.claim_forced_refresh(
                self._appid, now=now, interval=FORCE_INTERVAL, lease_until=lease_until
            )
        except ConditionFailed:
            return None
        day_start = (now + WECHAT_DAY_OFFSET) // 86400 * 86400
        day = time.strftime("%Y-%m-%d", time.gmtime(day_start))
        try:
            used = self._store.count_forced_refresh(
                self._appid,
                day,
                budget=self._budget,
                expires_at=day_start - WECHAT_DAY_OFFSET + 3 * 86400,
            )
        except ConditionFailed as e:
            self._store.release_lease(self._appid, lease_until=lease_until)
            self._metrics.count("WeChatTokenForceRefreshRefused", appid=self._appid)
            log_event(
                "wechat_force_refresh_budget_exhausted",
                level=logging.ERROR,
                appid=self._appid,
                budget=self._budget,
                day=day,
            )
            raise WeChatRateLimited("today's budget of forced token refreshes is used") from e
        self._metrics.count(
            "WeChatTokenForceRefresh", appid=self._appid, used_today=used, budget=self._budget
        )
        return self._fetch(now, lease_until=lease_until, force=True, fallback=None)

    def _fetch(
        self, now: int, *, lease_until: int, force: bool, fallback: BrokeredToken | None
    ) -> BrokeredToken:
        """Call stable_token under the lease and store the result (releasing the lease)."""
        try:
            try:
                fetched = self._wechat.stable_token(force_refresh=force)
            except WeChatRateLimited:
                if not force:
                    raise
                # 45011: WeChat saw another forced refresh less than 30 s ago (another system
                # forcing it): the token it made is what normal mode answers.
                fetched = self._wechat.stable_token(force_refresh=False)
        except WeChatError as e:
            self._store.release_lease(self._appid, lease_until=lease_until)
            self._metrics.count("WeChatTokenFetchFailed", appid=self._appid, error=type(e).__name__)
            if fallback is not None:  # a refresh ahead of expiry: the cached one still serves
                return fallback
            raise
        self._metrics.count("WeChatTokenFetch", appid=self._appid, forced=force)
        token_expires_at = now + fetched.expires_in
        low, high = REFRESH_AHEAD
        refresh_at = token_expires_at - (low + self._rand_below(high - low + 1))
        # Never before now + REFRESH_RETRY: if WeChat answered the old token (its own early
        # renewal not yet due), the next requests must not all call again at once.
        refresh_at = max(refresh_at, min(now + REFRESH_RETRY, token_expires_at - EXPIRY_MARGIN))
        try:
            self._store.put(
                self._appid,
                sealed_token=crypto.seal(
                    self._secret(), fetched.access_token.encode(), context=self._context
                ),
                fetched_at=now,
                token_expires_at=token_expires_at,
                refresh_at=refresh_at,
                expires_at=token_expires_at + 86400,  # TTL; the item also keeps last_forced_at
                lease_until=lease_until,
            )
        except ConditionFailed:
            # The lease lapsed or a forced refresh took it over: the table keeps the newer
            # token; this request still uses the one WeChat just gave it.
            log_event("wechat_token_lease_lost", level=logging.WARNING, appid=self._appid)
        return BrokeredToken(fetched.access_token, token_expires_at - EXPIRY_MARGIN)

    def _usable(self, record: WeChatTokenRecord | None, now: int) -> BrokeredToken | None:
        if record is None or record.sealed_token is None:
            return None
        usable_until = record.token_expires_at - EXPIRY_MARGIN
        if now >= usable_until:
            return None
        try:
            plain = crypto.unseal(
                self._secret(), record.sealed_token, context=self._context
            )
        except GrantError:
            # The app secret changed since it was sealed: fetch again (WeChat answers the token
            # of the new secret).
            log_event("wechat_token_unsealable", level=logging.WARNING, appid=self._appid)
            return None
        return BrokeredToken(plain.decode(), usable_until)

    @property
    def _context(self) -> bytes:
        return _SEAL_CONTEXT + self._appid.encode()
