"""Ending and listing a user's sessions: logout, logout-all, logout of the others, one session
ended from another (`DELETE /auth/sessions/{sid}`), a revocation by token (RFC 7009), the
user's own list in pages (`GET /auth/sessions`), and the operators' (`wxauth-admin sessions`).

SessionManager (chalicelib/sessions.py) extends this with the sessions' start and rotation;
each ending publishes one SessionEnded event after its writes.
"""

from __future__ import annotations

import hmac
import re
from typing import TYPE_CHECKING

from chalicelib.errors import SessionNotFound
from chalicelib.tokens import refresh as refresh_tokens

if TYPE_CHECKING:
    from chalicelib.events import Events
    from chalicelib.store.sessions import SessionRecord, Sessions
    from chalicelib.tokens.refresh import RefreshToken

REASON_LOGOUT = "logout"
REASON_ENDED = "ended"  # DELETE /auth/sessions/{sid}: the user ended it from another session
REASON_BANNED = "banned"  # chalicelib/bans.py
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{22}")  # refresh_tokens.new_id
MAX_PAGE_QUERIES = 3  # of GET /auth/sessions' one page (issue 21)

__all__ = [
    "MAX_PAGE_QUERIES",
    "REASON_BANNED",
    "REASON_ENDED",
    "REASON_LOGOUT",
    "SessionEnds",
]


class SessionEnds:
    """What ends or lists sessions; its subclass sets `_store` and `_events`."""

    _store: Sessions
    _events: Events

    def revoke_by_refresh_token(self, token: RefreshToken, *, now: int, reason: str) -> bool:
        """End the live session `token` was issued for (current, previous or older); a forged
        token ends nothing. True if this call revoked it."""
        session = self._store.get(token.user_id, token.session_id)
        if session is None or not session.is_live(now):
            return False
        if token.version == 2 and not refresh_tokens.authentic(token, session.mac_key):
            return False  # a v2 token's stored hash is its body's: its MAC is checked apart
        known = [session.current_hash, session.previous_hash]
        if not (
            any(h is not None and hmac.compare_digest(token.hash, h) for h in known)
            or refresh_tokens.older(token, session.generation, session.key_hash, session.mac_key)
        ):
            return False
        return self.revoke(token.user_id, token.session_id, now=now, reason=reason)

    def revoke(
        self, user_id: str, session_id: str, *, now: int, reason: str = REASON_LOGOUT
    ) -> bool:
        revoked = self._store.revoke(user_id, session_id, now=now, reason=reason)
        if revoked:
            self._events.session_ended(user_id, [session_id], reason=reason, now=now)
        return revoked

    def revoke_all(
        self,
        user_id: str,
        *,
        now: int,
        reason: str = REASON_LOGOUT,
        keep_until: int | None = None,
    ) -> int:
        """End every session of the user; one SessionEnded (`all_sessions`) for all of them.
        `keep_until`: their items' TTL (Sessions.revoke; default a few minutes)."""
        revoked: list[str] = []
        for session in self._store.of_user(user_id):
            if session.revoked_at is None and self._store.revoke(
                user_id, session.session_id, now=now, reason=reason, keep_until=keep_until
            ):
                revoked.append(session.session_id)
        self._events.session_ended(user_id, revoked, reason=reason, now=now, all_sessions=True)
        return len(revoked)

    def list_sessions(self, user_id: str) -> list[SessionRecord]:
        return self._store.of_user(user_id)

    def find(self, user_id: str, session_id: str) -> SessionRecord | None:
        """The session as stored, live or not (one consistent GetItem)."""
        return self._store.get(user_id, session_id)

    # -- the user's own sessions (GET /auth/sessions, DELETE /auth/sessions/{sid}) -------------

    def live_page(
        self, user_id: str, now: int, *, limit: int, after: str | None = None
    ) -> tuple[list[SessionRecord], str | None]:
        """A page of the user's live sessions, newest first, and the id to start the next
        page after (None: the last page). Pages follow the session ids' order (the key's:
        no index orders them by time). At most MAX_PAGE_QUERIES Queries of `limit` items:
        past dead sessions a page may hold fewer than `limit`, even none, and go on."""
        live: list[SessionRecord] = []
        for _ in range(MAX_PAGE_QUERIES):
            page, after = self._store.page(user_id, limit=limit - len(live), after=after)
            live += [s for s in page if s.is_live(now)]
            if after is None or len(live) == limit:
                break
        return sorted(live, key=lambda s: (s.created_at, s.session_id), reverse=True), after

    def end(self, user_id: str, session_id: str, *, now: int) -> None:
        """End one live session of `user_id` (the caller's own: the key is in their partition,
        so another user's sid is not found). SessionNotFound if there is no live session with
        that id. One conditional UpdateItem."""
        if not _SESSION_ID_RE.fullmatch(session_id) or not self._store.revoke_live(
            user_id, session_id, now=now, reason=REASON_ENDED
        ):
            raise SessionNotFound("you have no live session with this id")
        self._events.session_ended(user_id, [session_id], reason=REASON_ENDED, now=now)

    def revoke_others(
        self, user_id: str, keep_session_id: str, *, now: int, reason: str = REASON_LOGOUT
    ) -> int:
        """Revoke every session of the user but `keep_session_id`; how many this call revoked.
        One Query, then one UpdateItem per live session; one SessionEnded for all of them."""
        revoked: list[str] = []
        for session in self._store.of_user(user_id):
            if (
                session.session_id != keep_session_id
                and session.is_live(now)
                and self._store.revoke(user_id, session.session_id, now=now, reason=reason)
            ):
                revoked.append(session.session_id)
        self._events.session_ended(user_id, revoked, reason=reason, now=now)
        return len(revoked)
