"""Banning a user (`wxauth-admin user ban|unban`), so that it bites at once.

A ban marks the user's PROFILE (`banned_at`, `ban_reason`) first, then revokes every live
session of the user with the reason `banned`. From then on, with no extra request anywhere:
- `verify` and protected routes refuse the user's live access tokens: they already read the
  session (one GetItem) and find it revoked.
- refresh answers 403 `access_denied`: the refused rotation hands back the session with its
  `revoked_reason` (chalicelib/sessions.py).
- login answers 403 `access_denied` and creates no session: the user's upsert returns the
  PROFILE as it was, with `banned_at`; and a login that read the PROFILE just before the ban
  fails its finishing transaction, which checks that the PROFILE has no `banned_at`
  (chalicelib/store/logins.py `Logins.finish`), so no session can slip in after the
  revocation's Query.

Unban removes the mark: new logins are let in again; sessions revoked by the ban stay revoked
(their refresh keeps answering 403 `access_denied`; the client logs in again).
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import RequestError, UnknownUser
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import Events
from chalicelib.sessions import REASON_BANNED, SessionManager
from chalicelib.store.users import Users

MAX_BAN_REASON = 200


@dataclass(frozen=True)
class BanResult:
    user_id: str
    banned: bool
    banned_at: int | None
    sessions_revoked: int = 0


def validate_reason(reason: str | None) -> str | None:
    """A ban reason, for operators: printable, at most MAX_BAN_REASON characters."""
    if reason is None:
        return None
    if not reason or len(reason) > MAX_BAN_REASON or not reason.isprintable():
        raise RequestError(f"the reason must be 1 to {MAX_BAN_REASON} printable characters")
    return reason


class Bans:
    def __init__(self, users: Users, sessions: SessionManager, events: Events = EVENTS_OFF) -> None:
        self._users = users
        self._sessions = sessions
        self._events = events

    def ban(self, user_id: str, *, now: int, reason: str | None = None) -> BanResult:
        """Mark the user banned, then revoke every live session (UnknownUser if none such).

        One UpdateItem, one Query, then one UpdateItem per live session. Banning a banned
        user again rewrites `banned_at` and the reason and revokes whatever is live.
        """
        user = self._users.ban(user_id, now=now, reason=validate_reason(reason))
        if user is None:
            raise UnknownUser(user_id)
        revoked = self._sessions.revoke_all(user_id, now=now, reason=REASON_BANNED)
        self._events.user_banned(user_id, now=now, sessions_ended=revoked, appid=user.appid)
        return BanResult(
            user_id=user_id, banned=True, banned_at=user.banned_at, sessions_revoked=revoked
        )

    def unban(self, user_id: str) -> BanResult:
        """Lift the ban (UnknownUser if no such user); sessions it revoked stay revoked."""
        before = self._users.unban(user_id)
        if before is None:
            raise UnknownUser(user_id)
        return BanResult(user_id=user_id, banned=False, banned_at=None)
