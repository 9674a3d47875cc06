"""The erasure of users whose deletion is due (issue 25, item 1): run without a person, by the
`DeletionHandler` function on its EventBridge schedule (app.py `erase_due`,
infra/resources.yaml), or by `wxauth-admin user delete --now` / `user erase-due`.

Each due deletion (chalicelib/store/deletions.py's `DELETION` queue, one Query) is erased step
by step, every step idempotent, and the queued item records the last finished one (`step`):
a run cut short (a timeout, a throttled table) is finished by the next, which starts after
that step; doing a step twice changes nothing. The user's items are found through its
partition and profile (chalicelib/store/user_data.py), which go last, so that a run started
again still finds everything the earlier steps had left.

1. `begun`: the users to erase are fixed: the user, and every user merged into it (its former
   accounts, followed through `merged_from`), recorded on the queued item.
2. `tombstones`: for each identity of theirs (the listed ones and the profile's), a tombstone
   (an HMAC of appid and openid: chalicelib/deletion.py); a later login of it is a new user.
3. `sessions`: each session, after the claim of the code that started it; the claims of the
   phone codes.
4. `phone`: the number's owner item, and what other users' profiles say of a number moved to
   or from the user.
5. `unionids`: each unionid's OWNER (if theirs), link and pending links naming them.
6. `identities`: each identity's item (if still theirs).
7. `partition`: everything left in their partitions, the profiles last.
8. `erased`: UserDeleted is published (at least once: if it could not be, the next run tries
   again), then the queued item goes. Nothing of the user is left but the tombstones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.errors import WxAuthError
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import Events
from chalicelib.logs import Metrics, log_event

if TYPE_CHECKING:
    from chalicelib.deletion import Tombstones
    from chalicelib.store.deletions import DeletionRecord, Deletions
    from chalicelib.store.user_data import Partition, UserData

STEPS = ("begun", "tombstones", "sessions", "phone", "unionids", "identities", "partition")
ERASED = "erased"  # every item is gone; UserDeleted is still to be published
MAX_MERGED = 100  # users merged into one followed at most (a loop of bad data stops here)
RESERVE_MS = 60_000  # a run takes no new deletion with less than this left (the Lambda's time)


@dataclass(frozen=True)
class Erased:
    """One deletion's outcome in a run: `done` if its queued item is gone."""

    user_id: str
    erased_user_ids: tuple[str, ...]
    done: bool


class Erasure:
    """Erases due deletions (see the module doc)."""

    def __init__(
        self,
        data: UserData,
        deletions: Deletions,
        tombstones: Tombstones,
        *,
        events: Events = EVENTS_OFF,
        metrics: Metrics | None = None,
    ) -> None:
        self._data = data
        self._deletions = deletions
        self._tombstones = tombstones
        self._events = events
        self._metrics = metrics or Metrics()

    def run_due(self, now: int, *, time_left: Callable[[], float] | None = None) -> list[Erased]:
        """Erase every deletion due at `now`, the earliest first, while `time_left()` (ms) is
        at least RESERVE_MS. A deletion that fails is logged and counted (`ErasureFailed`) and
        left for the next run; the others go on. RuntimeError at the end if any failed (the
        function's Errors alarm sees it)."""
        results, failed = [], 0
        for record in self._deletions.due(now):
            if time_left is not None and time_left() < RESERVE_MS:
                break
            try:
                results.append(self.erase(record, now))
            except WxAuthError as e:  # a throttled or unreachable table: the next run resumes
                failed += 1
                self._metrics.count("ErasureFailed")
                log_event(
                    "erasure_failed",
                    level=logging.ERROR,
                    user_id=record.user_id,
                    step=record.step,
                    error_type=type(e).__name__,
                )
        if failed:
            raise RuntimeError(f"{failed} erasure(s) failed; the next run resumes them")
        return results

    def erase(self, record: DeletionRecord, now: int) -> Erased:
        """Erase one deletion from the step after `record.step` on (its due time is the
        caller's concern: `wxauth-admin user delete --now` erases before it)."""
        started = time.monotonic()
        done = STEPS.index(record.step) + 1 if record.step in STEPS else 0
        if record.step == ERASED:
            done = len(STEPS)
        users = record.erased_user_ids or (record.user_id,)
        partitions = {user_id: self._data.partition(user_id) for user_id in users}
        if done == 0:
            users = self._users_to_erase(record.user_id, partitions)
            if not self._deletions.progress(record, step="begun", now=now, erased_user_ids=users):
                return Erased(record.user_id, users, True)  # another run completed it
            done = 1
        steps: dict[str, Callable[[str, Partition], None]] = {
            "tombstones": lambda u, p: self._bury(u, p, record.requested_at, now),
            "sessions": self._sessions,
            "phone": self._phone,
            "unionids": self._unionids,
            "identities": self._identities,
            "partition": lambda u, p: self._clear(u),
        }
        for name in STEPS[done:]:
            # the kept user's partition last: merged users' profiles name it (merged_into)
            for user_id in reversed(users):
                steps[name](user_id, partitions[user_id])
            if not self._deletions.progress(record, step=name, now=now):
                return Erased(record.user_id, users, True)
        self._events.user_deleted(
            record.user_id, erased_user_ids=users, requested_at=record.requested_at, now=now
        )
        dropped = self._events.flush()
        if dropped:  # not announced: keep the queued item, and announce at the next run
            self._deletions.progress(record, step=ERASED, now=now)
            return Erased(record.user_id, users, False)
        self._deletions.done(record)
        self._metrics.count("UsersErased", len(users))
        log_event(
            "user_erased",
            user_id=record.user_id,
            erased_users=len(users),
            requested_by=record.requested_by,
            overdue_seconds=max(0, now - record.erase_after),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return Erased(record.user_id, users, True)

    def _users_to_erase(self, user_id: str, partitions: dict[str, Partition]) -> tuple[str, ...]:
        """The user and every user merged into it, followed through `merged_from` (each must
        say it was merged into the one that names it)."""
        users, queue = [user_id], [user_id]
        while queue and len(users) < MAX_MERGED:
            current = queue.pop()
            profile = partitions[current].profile
            for merged in profile.merged_from if profile is not None else ():
                if merged in users:
                    continue
                partitions[merged] = self._data.partition(merged)
                other = partitions[merged].profile
                if other is not None and other.merged_into == current:
                    users.append(merged)
                    queue.append(merged)
        return tuple(users)

    @staticmethod
    def _identities_of(partition: Partition) -> list[tuple[str, str]]:
        found = {(i.appid, i.openid) for i in partition.listed}
        profile = partition.profile
        if profile is not None and profile.openid:
            found.add((profile.appid, profile.openid))
        return sorted(found)

    def _bury(self, user_id: str, partition: Partition, requested_at: int, now: int) -> None:
        for appid, openid in self._identities_of(partition):
            identity = self._data.identity(appid, openid)
            if identity is None or identity.user_id == user_id:  # never another user's
                self._tombstones.bury(appid, openid, requested_at=requested_at, now=now)

    def _sessions(self, user_id: str, partition: Partition) -> None:
        for session in self._data.partition(user_id).sessions:  # as they are now
            self._data.delete_session(session)
        profile = partition.profile
        for code_hash in profile.code_claims if profile is not None else ():
            self._data.delete_claim(code_hash, user_id)

    def _phone(self, user_id: str, partition: Partition) -> None:
        profile = partition.profile
        if profile is None:
            return
        if profile.phone is not None:
            self._data.delete_phone_owner(profile.phone.phone_hash, user_id)
        for other in {profile.phone_moved_from, profile.phone_moved_to} - {None, user_id}:
            assert other is not None
            self._data.forget_phone_move(other, user_id)

    def _unionids(self, user_id: str, partition: Partition) -> None:
        unionids = {i.unionid for i in partition.listed if i.unionid}
        if partition.profile is not None and partition.profile.unionid:
            unionids.add(partition.profile.unionid)
        for unionid in sorted(unionids):
            self._data.delete_unionid_items(self._data.unionid(unionid, user_id), user_id)

    def _identities(self, user_id: str, partition: Partition) -> None:
        for appid, openid in self._identities_of(partition):
            self._data.delete_identity(appid, openid, user_id)

    def _clear(self, user_id: str) -> None:
        self._data.clear_partition(user_id)


def run_scheduled(erasure: Erasure, clock: Callable[[], float], context: Any = None) -> dict:
    """The scheduled function's run: every due deletion, within the Lambda's time."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    results = erasure.run_due(int(clock()), time_left=remaining)
    return {
        "erased": sum(1 for r in results if r.done),
        "pending_announcement": sum(1 for r in results if not r.done),
    }
