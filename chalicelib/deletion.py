"""A user's deletion (注销, issue 25 item 1): asked for, a cooling-off period, cancelled.

`POST /me/deletion` (a user's access token and a fresh `wx.login` code of the session's app,
which must give this user's openid there: proof that the person, not only a token, is here)
or `wxauth-admin user delete` marks the profile (`deletion_requested_at`, `erase_after`) and
queues the deletion (chalicelib/store/deletions.py) in one transaction, then ends every
session of the user at once. For the cooling-off period (AUTH_DELETION_COOLDOWN) the user can
still log in, and gets a restricted session: its tokens reach only `GET /me`, `GET /me/export`,
`DELETE /me/deletion` and logout, and no backend takes them (another `aud`:
chalicelib/tokens/access.py). `DELETE /me/deletion` cancels while the period runs and makes the
caller's session an ordinary one again. When the period is over, the scheduled erasure
(chalicelib/erasure.py) deletes every item of the user and leaves tombstones: an HMAC of each
erased identity's appid and openid under a server key (AUTH_TOMBSTONE_KEY_ARN), so that a later
login of the same WeChat user is a new user with a new id (`Tombstones`, read by the identity
graph at a new identity's first login).

A banned user can still be deleted (by an operator: it has no session to ask with). A user
merged into another is not deleted alone: the kept user is, with it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.errors import (
    AccountDeleted,
    DeletionPending,
    GrantError,
    RequestError,
    TokenError,
    UnknownUser,
)
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import Events
from chalicelib.logs import log_event
from chalicelib.store.deletions import REQUESTED_BY_OPERATOR, REQUESTED_BY_USER
from chalicelib.tokens.access import DELETION_PENDING

if TYPE_CHECKING:
    from chalicelib.identity.apps import App, AppRegistry
    from chalicelib.sessions import SessionManager
    from chalicelib.store.deletions import DeletionRecord, Deletions
    from chalicelib.store.identities import Identities
    from chalicelib.store.users import UserRecord, Users
    from chalicelib.wechat.client import WeChatClient

__all__ = ["DELETION_PENDING", "DeletionService", "DeletionStatus", "Tombstones"]

REASON_DELETION = "deletion_requested"  # the sessions a deletion ends
# The sessions a deletion ends stay (revoked) until this long after its erasure is due: the
# erasure finds each one and, through it, the claim of the code that started it.
KEEP_ENDED_SESSIONS = 7 * 86_400


def tombstone_hash(key: bytes, appid: str, openid: str) -> str:
    """The tombstone of an identity: HMAC-SHA256 of its appid and openid under the server's
    tombstone key, hex. Without the key it says nothing of the openid."""
    message = f"wxauth-tombstone\x00{appid}\x00{openid}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class Tombstones:
    """The erased identities' tombstones, keyed by `tombstone_hash` under `key()` (a Secrets
    Manager value fetched at first use, or the local setting)."""

    def __init__(self, deletions: Deletions, key: Callable[[], str]) -> None:
        self._deletions = deletions
        self._key = key

    def _hash(self, appid: str, openid: str) -> str:
        return tombstone_hash(self._key().encode("utf-8"), appid, openid)

    def count(self, appid: str, openid: str) -> int:
        """How many times (appid, openid) was erased (one Query): the generation of the user a
        new login of it makes (chalicelib/login.py `user_id_for`)."""
        return self._deletions.tombstones(self._hash(appid, openid))

    def bury(self, appid: str, openid: str, *, requested_at: int, now: int) -> None:
        self._deletions.bury(self._hash(appid, openid), requested_at=requested_at, now=now)


@dataclass(frozen=True)
class DeletionStatus:
    """A deletion asked for: when, and from when on the user is erased."""

    requested_at: int
    erase_after: int

    def json(self) -> dict[str, int]:
        return {"requested_at": self.requested_at, "erase_after": self.erase_after}


def status_of(user: UserRecord) -> DeletionStatus | None:
    if user.erase_after is None:
        return None
    return DeletionStatus(user.deletion_requested_at or 0, user.erase_after)


class DeletionService:
    """Asking for a user's deletion, and cancelling it (see the module doc)."""

    def __init__(
        self,
        users: Users,
        identities: Identities,
        deletions: Deletions,
        sessions: SessionManager,
        *,
        apps: AppRegistry,
        client_of: Callable[[App], WeChatClient],
        cooldown: int,
        events: Events = EVENTS_OFF,
    ) -> None:
        """`client_of(app)`: the app's WeChat client (the login's: behind its breaker);
        `cooldown`: AUTH_DELETION_COOLDOWN, seconds."""
        self._users = users
        self._identities = identities
        self._deletions = deletions
        self._sessions = sessions
        self._apps = apps
        self._client_of = client_of
        self._cooldown = cooldown
        self._events = events

    def request(self, user_id: str, code: str, *, client_id: str, now: int) -> DeletionStatus:
        """The user's own request (`POST /me/deletion`): `code` is exchanged with WeChat for
        the app of the session (`client_id`) and must give this user's openid there, else
        GrantError (400 invalid_grant), nothing written. Then the deletion starts (`_start`).
        One GetItem of the profile, the exchange, one GetItem of the identity, the transaction,
        then the sessions' Query and an UpdateItem per live session."""
        from chalicelib.identity.apps import kind_of
        from chalicelib.wechat_codes import validate_code

        validate_code(code)
        user = self._users.get(user_id)
        if user is None:
            raise TokenError("the user of this access token no longer exists")
        self._refuse_pending(user, now)
        app = self._apps.by_client_id(client_id)
        if app is None:
            raise GrantError("the app of this session is not an app of this deployment")
        wx = kind_of(app).exchange(self._client_of(app), code)
        identity = self._identities.get(app.appid, wx.openid)
        owner = identity.user_id if identity is not None else None
        if owner is None and (user.appid, user.openid) == (app.appid, wx.openid):
            owner = user.user_id  # a user from before identities: its profile's
        if owner != user_id:
            raise GrantError("this code is not this user's, in the app of this session")
        return self._start(user, now, erase_after=now + self._cooldown, by=REQUESTED_BY_USER)

    def request_by_operator(self, user_id: str, *, now: int, at_once: bool) -> DeletionRecord:
        """`wxauth-admin user delete`: the deletion queued as the user's own would be (with
        `at_once`, due now), banned users too; a deletion already asked for is kept (with
        `at_once` it is erased now all the same). The queued deletion, for the erasure."""
        user = self._users.get(user_id)
        if user is None:
            raise UnknownUser(user_id)
        if user.merged_into is not None:
            raise RequestError(
                f"user {user_id} was merged into {user.merged_into}: delete that user"
            )
        if user.erase_after is None:
            erase_after = now if at_once else now + self._cooldown
            self._start(user, now, erase_after=erase_after, by=REQUESTED_BY_OPERATOR)
        else:
            erase_after = user.erase_after
        record = self._deletions.get(user_id, erase_after)
        if record is None:  # marked, not queued: not a state the transaction leaves
            raise RequestError(f"user {user_id}: its deletion is marked but not queued")
        return record

    def _refuse_pending(self, user: UserRecord, now: int) -> None:
        status = status_of(user)
        if status is None:
            return
        if status.erase_after > now:
            raise DeletionPending(
                "this account is already pending deletion",
                requested_at=status.requested_at,
                erase_after=status.erase_after,
            )
        raise AccountDeleted("this account was deleted")

    def _start(self, user: UserRecord, now: int, *, erase_after: int, by: str) -> DeletionStatus:
        """Mark and queue (one transaction), then end every session (kept for the erasure),
        log, and raise UserDeletionRequested."""
        started, before = self._deletions.start(
            user.user_id, now=now, erase_after=erase_after, requested_by=by
        )
        if not started:
            if before is None:
                raise TokenError("the user of this access token no longer exists")
            if before.merged_into is not None:
                raise RequestError("this user was merged into another one")
            self._refuse_pending(before, now)
            raise AccountDeleted("this account was deleted")  # due at this very second
        keep_until = erase_after + KEEP_ENDED_SESSIONS
        ended = self._sessions.revoke_all(
            user.user_id, now=now, reason=REASON_DELETION, keep_until=keep_until
        )
        log_event(
            "user_deletion_requested",
            level=logging.WARNING,
            user_id=user.user_id,
            requested_by=by,
            erase_after=erase_after,
            sessions_ended=ended,
        )
        self._events.user_deletion_requested(
            user.user_id, erase_after=erase_after, requested_by=by, sessions_ended=ended, now=now
        )
        return DeletionStatus(now, erase_after)

    def cancel(self, user_id: str, session_id: str, *, now: int) -> DeletionStatus | None:
        """`DELETE /me/deletion`: cancel the user's deletion while its period runs, and make
        the user's restricted sessions ordinary ones (their next refreshes mint tokens for
        every route).
        The deletion cancelled, None if there was none (the session is made ordinary all the
        same: a login that raced a cancel). AccountDeleted once the period is over."""
        user = self._users.get(user_id)
        if user is None:
            raise TokenError("the user of this access token no longer exists")
        status = status_of(user)
        if status is not None:
            if status.erase_after <= now:
                raise AccountDeleted("the account's deletion is due: it can no longer be cancelled")
            if not self._deletions.cancel(user_id, erase_after=status.erase_after, now=now):
                again = self._users.get(user_id)
                if again is None or again.erase_after is not None:
                    raise AccountDeleted("this account was deleted")
                status = None  # cancelled by another request meanwhile
            else:
                log_event("user_deletion_cancelled", user_id=user_id)
                self._events.user_deletion_cancelled(user_id, now=now)
        if status is not None:  # every device that logged in meanwhile, this one included
            self._sessions.unrestrict_all(user_id)
        else:  # nothing pending: only this session, if a login raced a cancel
            self._sessions.unrestrict(user_id, session_id)
        return status
