"""The app's WeChat server access_token, shared by every container through DynamoDB.

WeChat's `cgi-bin/token` invalidates the previous token at each call, so containers refreshing
independently knock each other out; `cgi-bin/stable_token` in normal mode answers the same
token while it is valid, and its `force_refresh` (20 a day, 30 s apart) invalidates it. The
broker keeps one item per appid (`WXTOKEN#<appid>`, `TOKEN`: chalicelib/store/wechat.py), the
token in it sealed under a key derived from the app secret, and each container keeps the token
it read (issue #21: the item was read on every phone binding and `/wechat/access-token` call):

- **Per container**: the token is used from memory until this container's own moment to look
  again, drawn once per token at random in the first half of the time between the item's
  `refresh_at` and the token's last usable second, so that the containers of a busy fleet come
  back one by one rather than all at `refresh_at`. At its moment a container reads the item
  (one GetItem): another container has usually refreshed it by then, and it takes that token
  without any write. One thread of a container at a time asks DynamoDB (a lock): the others
  wait for what it finds, so a container makes at most one lease attempt at a time, never one
  per request.
- **Eventually consistent reads** (half a read unit) everywhere a stale answer is harmless:
  the reads of the item at a container's moment and while it waits. A stale item can only
  look older than it is: then the lease (below), guarded by the token the read saw, fails and
  hands back the item as it is, or the next poll reads it. The one read that decides to spend
  a forced refresh (a refused token, `call`) is strongly consistent.
- **Lease** (the idempotency pattern of AWS Lambda Powertools): a container that finds no
  usable token, or a token due for refresh at its moment, takes the lease with a guarded write
  (`attribute_not_exists(#pk) OR #lease < :now`) and calls `stable_token`. The lease is taken
  only if the item still holds the token the container read, so one that read just before
  another stored does not fetch again; a lost race hands back the item as it is. While a live
  lease is seen and nothing usable is held, a container waits (bounded polls, reads only).
  A holder that died leaves a lease that expires after LEASE_SECONDS.
- **Ahead of expiry**: from a jittered moment in the last REFRESH_AHEAD seconds of the token's
  life one container (the lease holder) refreshes it while the others keep using it; it is
  never handed out later than EXPIRY_MARGIN seconds before WeChat's `expires_in`.
- **Refused token** (`call`): on 40001/42001/40014 re-read the item; only if it still holds
  the token that failed, force a refresh, at most once per FORCE_INTERVAL seconds per appid
  across every container (a guarded write on `last_forced_at`) and within a daily budget (a
  counter item per UTC+8 day, WeChat's day). The request is retried once: never a loop.

What it fetches is its `wechat` source's `stable_token(force_refresh=...)`: an app's client
(`cgi-bin/stable_token`), or a third-party platform's (issue 24, item 4: `api_component_token`
with the latest verify ticket, chalicelib/wechat/component.py), whose item is
`WXTOKEN#<component_appid>`, sealed under the platform's secret with a context of its own.

Metrics (EMF): `WeChatTokenFetch`, `WeChatTokenRejected`, `WeChatTokenForceRefresh`,
`WeChatTokenForceRefreshRefused`. The token is never logged.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

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
    from chalicelib.wechat.client import StableToken


class TokenSource(Protocol):
    """What a broker fetches its token from (an app's WeChatClient, a platform's client)."""

    def stable_token(self, *, force_refresh: bool = False) -> StableToken: ...


T = TypeVar("T")

LEASE_SECONDS = 15  # longer than one stable_token call can take (2 x (2 + 4) s + the retry delay)
POLL_INTERVAL = 0.25  # seconds between a waiting request's reads
MAX_POLLS = 40  # a waiting request gives up (503) after MAX_POLLS x POLL_INTERVAL = 10 s
EXPIRY_MARGIN = 60  # never hand out a token in its last minute
REFRESH_AHEAD = (120, 300)  # refresh at a random moment in the last 5 to 2 minutes (WeChat's
# normal mode answers a new token in the last 5 minutes, the old one staying valid meanwhile)
REFRESH_RETRY = 60  # when WeChat answers the same old token, try again no sooner than this
FAILED_RETRY = 5  # a container whose refresh ahead of expiry failed tries again this much later
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


@dataclass(frozen=True)
class _Held:
    """The token a container holds: the item's token as of `fetched_at`, this container's own
    moment to refresh it (`moment`), and when it reads the item again (`look_again_at`)."""

    token: BrokeredToken
    fetched_at: int
    moment: int
    look_again_at: int


class AccessTokenBroker:
    def __init__(
        self,
        store: WeChatTokens,
        wechat: TokenSource,
        *,
        appid: str,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        metrics: Metrics,
        secret: Callable[[], str],
        rand_below: Callable[[int], int] = secrets.randbelow,
        daily_force_budget: int = DAILY_FORCE_BUDGET,
        seal_context: bytes = _SEAL_CONTEXT,
    ) -> None:
        """`wechat`: the token's source (see the module doc); `appid`: its item's (the app's,
        or the platform's); `secret`: what the sealing key is derived from."""
        self._seal_context = seal_context
        self._store = store
        self._wechat = wechat
        self._appid = appid
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics
        self._secret = secret  # the app secret: the sealing key is derived from it
        self._rand_below = rand_below
        self._budget = daily_force_budget
        self._lock = threading.RLock()  # one thread of the container asks DynamoDB at a time
        self._held: _Held | None = None

    # -- the contract -----------------------------------------------------------------------

    def token(self) -> str:
        """A valid server access_token for the app: the one this container holds until its
        moment to look again, else from the shared item (one DynamoDB item per appid), fetched
        with cgi-bin/stable_token under a lease when missing or due."""
        return self.current().access_token

    def current(self) -> BrokeredToken:
        """`token()` with how long it may be used (the internal access route answers both)."""
        with self._lock:
            held = self._held
            now = self._now()
            if held is not None and now < min(held.look_again_at, held.token.usable_until):
                return held.token
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
        """The item's token, if it is not due at this container's moment; or, under the lease,
        a fetched one; None: wait for the holder. One eventually consistent read (see the
        module doc), then at most one guarded write."""
        record = self._store.get(self._appid, consistent=False)
        cached = self._usable(record, now)
        if cached is not None and record is not None:
            moment = self._moment_of(record)
            if now < moment:
                return self._hold(cached, record.fetched_at, moment, moment)
        elif record is not None and record.lease_until > now:
            return None  # nothing usable, and another container is fetching: wait, read again
        lease_until = now + LEASE_SECONDS
        try:
            self._store.lease(
                self._appid,
                now=now,
                lease_until=lease_until,
                seen_fetched_at=record.fetched_at if record and record.sealed_token else None,
            )
        except ConditionFailed as e:
            return self._lease_lost(e, record, cached, now)
        return self._fetch(now, lease_until=lease_until, force=False, fallback=cached)

    def _lease_lost(
        self,
        lost: ConditionFailed,
        record: WeChatTokenRecord | None,
        cached: BrokeredToken | None,
        now: int,
    ) -> BrokeredToken | None:
        """The item as the failed lease handed it back: another container's newer token, or
        (while it fetches) the old one until its lease ends; None: nothing usable, wait."""
        current = item_to_wechat_token(lost.item) if lost.item else None
        fresh = self._usable(current, now)
        newer = (
            record is None
            or cached is None
            or (current is not None and current.fetched_at != record.fetched_at)
        )
        if current is not None and fresh is not None and newer:
            moment = self._moment_of(current)
            return self._hold(fresh, current.fetched_at, moment, max(now + 1, moment))
        if cached is not None and record is not None:
            again = max(now + 1, current.lease_until if current else now + LEASE_SECONDS)
            return self._hold(cached, record.fetched_at, self._moment_of(record), again)
        return None

    def _moment_of(self, record: WeChatTokenRecord) -> int:
        """This container's moment to refresh the record's token: drawn once per token, in the
        first half of the time between its `refresh_at` and its last usable second."""
        held = self._held
        if held is not None and held.fetched_at == record.fetched_at:
            return held.moment
        usable_until = record.token_expires_at - EXPIRY_MARGIN
        spread = max(1, (usable_until - record.refresh_at) // 2)
        return record.refresh_at + self._rand_below(spread)

    def _hold(
        self, token: BrokeredToken, fetched_at: int, moment: int, look_again_at: int
    ) -> BrokeredToken:
        self._held = _Held(token, fetched_at, moment, look_again_at)
        return token

    def _replacement(self, failed: str) -> str:
        with self._lock:
            held = self._held
            if (
                held is not None
                and not hmac.compare_digest(held.token.access_token, failed)
                and self._now() < held.token.usable_until
            ):
                return held.token.access_token  # another thread here replaced it already
            self._held = None
            for poll in range(MAX_POLLS + 1):
                if poll:
                    self._sleep(POLL_INTERVAL)
                now = self._now()
                # Strongly consistent: this read decides whether to spend a forced refresh.
                record = self._store.get(self._appid)
                cached = self._usable(record, now)
                if cached is None or record is None:
                    return self.token()  # nothing usable cached: fetch as at a cold start
                if not hmac.compare_digest(cached.access_token, failed):
                    moment = self._moment_of(record)
                    self._hold(cached, record.fetched_at, moment, moment)
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
                held = self._held
                moment = held.moment if held is not None else now
                fetched_at = held.fetched_at if held is not None else 0
                return self._hold(fallback, fetched_at, moment, now + FAILED_RETRY)
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
            self._held = None  # the table holds another token: read it at the next request
            return BrokeredToken(fetched.access_token, token_expires_at - EXPIRY_MARGIN)
        stored = WeChatTokenRecord(
            self._appid, fetched_at=now, token_expires_at=token_expires_at, refresh_at=refresh_at
        )
        self._held = None  # a new token: a new moment
        brokered = BrokeredToken(fetched.access_token, token_expires_at - EXPIRY_MARGIN)
        moment = self._moment_of(stored)
        return self._hold(brokered, now, moment, moment)

    def _usable(self, record: WeChatTokenRecord | None, now: int) -> BrokeredToken | None:
        if record is None or record.sealed_token is None:
            return None
        usable_until = record.token_expires_at - EXPIRY_MARGIN
        if now >= usable_until:
            return None
        try:
            plain = crypto.unseal(self._secret(), record.sealed_token, context=self._context)
        except GrantError:
            # The app secret changed since it was sealed: fetch again (WeChat answers the token
            # of the new secret).
            log_event("wechat_token_unsealable", level=logging.WARNING, appid=self._appid)
            return None
        return BrokeredToken(plain.decode(), usable_until)

    @property
    def _context(self) -> bytes:
        return self._seal_context + self._appid.encode()
