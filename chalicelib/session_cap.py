"""The cap on live sessions per user (AUTH_MAX_SESSIONS_PER_USER, AUTH_MAX_SESSIONS_SCOPE).

After a login has written its session (its finishing transaction succeeded), `SessionCap`
counts the user's live sessions, the new one included, with one Query of the user's partition
(a page per 1 MB); past the cap it ends the least recently used ones (by `last_refreshed_at`,
else the rotation or the login time; the new session never) with one conditional UpdateItem
each, reason `evicted`, and raises one SessionEnded event saying so. With the scope `app` only
the sessions of the logging-in app count (those with its `client_id`: its appid unless the app
was given another). Without the setting nothing is built and no request is made.

An evicted session's item is kept for EVICTED_NOTICE_TTL (or until it would have expired
anyway), not the five minutes of other revocations: its holder, who did not ask for it, may
come back days later, and its refresh then answers `invalid_grant` with `reason:
session_evicted` (chalicelib/sessions.py), so that the client says why instead of silently
logging in again and evicting another device in turn.

Two logins racing past the cap each count what they see; each ends every session over the cap
but its own, oldest first, so they converge: at worst the cap is exceeded by one until the next
login. A failed eviction (DynamoDB unavailable) never fails the login, which is written already:
it is counted (metric `SessionCapDeferred`), logged, and the next login ends what is over.
"""

from __future__ import annotations

import logging

from chalicelib.errors import StoreUnavailable
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import Events
from chalicelib.logs import Metrics, log_event
from chalicelib.store.sessions import SessionRecord, Sessions

REASON_EVICTED = "evicted"
EVICTED_NOTICE_TTL = 7 * 86_400  # seconds an evicted session's item stays, to tell its holder
# What the evicted session's refresh answers (400 invalid_grant, reason session_evicted).
EVICTED_DESCRIPTION = (
    "this session was ended because the account signed in on too many devices"
    " (a later login ended the least recently used session); log in again"
)


def last_used(session: SessionRecord) -> tuple[int, int, str]:
    """How recently the session was used, oldest first: its last refresh (its last rotation,
    for sessions from before last_refreshed_at), else its login; ties by login, then id."""
    used = session.last_refreshed_at or session.rotated_at or session.created_at
    return used, session.created_at, session.session_id


class SessionCap:
    def __init__(
        self,
        store: Sessions,
        *,
        max_sessions: int,
        per_app: bool = False,
        events: Events = EVENTS_OFF,
        metrics: Metrics | None = None,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self._store = store
        self._max = max_sessions
        self._per_app = per_app
        self._events = events
        self._metrics = metrics or Metrics()

    def enforce(self, new: SessionRecord, now: int) -> list[str]:
        """End the user's least recently used live sessions beyond the cap, `new` (the login's
        session, already stored) counted and kept; the ids ended. One Query, one UpdateItem
        per session ended; never raises StoreUnavailable (see the module doc)."""
        evicted: list[str] = []
        try:
            others = [
                s
                for s in self._store.of_user(new.user_id)
                if s.session_id != new.session_id and s.is_live(now) and self._counts(s, new)
            ]
            over = max(0, len(others) + 1 - self._max)
            for session in sorted(others, key=last_used)[:over]:
                if self._store.revoke_live(
                    session.user_id,
                    session.session_id,
                    now=now,
                    reason=REASON_EVICTED,
                    keep_until=min(session.expires_at, now + EVICTED_NOTICE_TTL),
                ):
                    evicted.append(session.session_id)
        except StoreUnavailable as e:
            self._metrics.count("SessionCapDeferred")
            log_event(
                "session_cap_deferred", level=logging.WARNING, user_id=new.user_id, error=str(e)
            )
        self._events.session_ended(
            new.user_id,
            evicted,
            reason=REASON_EVICTED,
            now=now,
            evicted_by_session_id=new.session_id,
        )
        return evicted

    def _counts(self, session: SessionRecord, new: SessionRecord) -> bool:
        return not self._per_app or session.client_id == new.client_id
