"""Auth events for other backends: buffered during a request, published to Amazon EventBridge
after it (AUTH_EVENT_BUS), or printed to the log (AUTH_EVENT_LOG, the local server's default).

What happened is raised where it happened, right after the write that made it true succeeded
(`events.user_logged_in(...)` after the login's transaction, say): a failed write raises before
it and emits nothing. Events wait in a per-thread buffer until `flush()`, which `edge.handle`
calls once after the view (errors included: a reuse detection answers 400 after revoking) and
the admin CLI at the end of a command. One flush is at most one PutEvents call of at most
`MAX_ENTRIES` entries, through a client made at the first publish with the PUBLISH budget (one
attempt, short timeouts): it adds at most `PUBLISH.worst_case` seconds to a request, and never
fails it. Whatever is not published (the call failed or timed out, EventBridge refused entries,
more events than fit) is counted (metric `EventsDropped`) and logged without its content.

With neither setting nothing is buffered and no client is made: every helper returns at once.

Every event is an EventBridge entry with `Source` SOURCE, a `DetailType` below, `Time`, and a
JSON `Detail` (SCHEMA_VERSION): ids, the app, times in epoch seconds. Never a token, a code, a
session_key, a secret, a phone number or a hash of any of them (docs/backend.md, "Auth events").
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.budgets import CallBudget
from chalicelib.logs import Metrics, log_event

SOURCE = "wxauth"
SCHEMA_VERSION = 1
MAX_ENTRIES = 10  # PutEvents takes at most 10 entries per call
MAX_SESSION_IDS = 500  # of one SessionEnded (22 characters each: far below EventBridge's 256 KB)

# EventBridge answers PutEvents in tens of milliseconds; one attempt, and a second without an
# answer is an outage. At most 1.5 s added to a request, and only when events were raised.
PUBLISH = CallBudget(connect_timeout=0.5, read_timeout=1, attempts=1)

# detail-types
USER_CREATED = "UserCreated"
USER_LOGGED_IN = "UserLoggedIn"
REFRESH_TOKEN_REUSE_DETECTED = "RefreshTokenReuseDetected"  # noqa: S105 - an event name
SESSION_ENDED = "SessionEnded"
USER_BANNED = "UserBanned"
USER_MERGED = "UserMerged"
PHONE_BOUND = "PhoneBound"
# Issue 25, item 1: a user's deletion (chalicelib/deletion.py, chalicelib/erasure.py).
USER_DELETION_REQUESTED = "UserDeletionRequested"
USER_DELETION_CANCELLED = "UserDeletionCancelled"
USER_DELETED = "UserDeleted"
DEVICE_LOGIN_CONFIRMED = "DeviceLoginConfirmed"  # issue 24, item 3 (chalicelib/device/)
DEVICE_LOGIN_DENIED = "DeviceLoginDenied"
DETAIL_TYPES = (
    USER_CREATED,
    USER_LOGGED_IN,
    REFRESH_TOKEN_REUSE_DETECTED,
    SESSION_ENDED,
    USER_BANNED,
    USER_MERGED,
    PHONE_BOUND,
    USER_DELETION_REQUESTED,
    USER_DELETION_CANCELLED,
    USER_DELETED,
    DEVICE_LOGIN_CONFIRMED,
    DEVICE_LOGIN_DENIED,
)


class Events:
    """The sink the services raise events into; see the module docstring.

    `client()` makes the EventBridge client (called once, at the first publish); `bus` is the
    bus name or ARN (None: not published); `log` prints each event as a JSON line instead or
    as well (`{"event": "auth_event", "detail-type", "detail"}`). `issuer` and `appid` go into
    every event's detail (`appid` unless the event names its own).
    """

    def __init__(
        self,
        *,
        bus: str | None = None,
        client: Callable[[], Any] | None = None,
        log: bool = False,
        issuer: str = "",
        appid: str = "",
        metrics: Metrics | None = None,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if bus is not None and client is None:
            raise ValueError("a bus needs a client factory")
        self._bus = bus
        self._client_factory = client
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._log = log
        self._issuer = issuer
        self._appid = appid
        self._metrics = metrics or Metrics()
        self._new_id = new_id
        self._local = threading.local()

    @property
    def enabled(self) -> bool:
        return self._bus is not None or self._log

    # -- raising ------------------------------------------------------------------------------

    def emit(self, detail_type: str, now: int, **fields: Any) -> None:
        """Buffer one event (nothing when off); `fields` join the common detail fields."""
        if not self.enabled:
            return
        detail: dict[str, Any] = {
            "version": SCHEMA_VERSION,
            "event_id": self._new_id(),
            "occurred_at": now,
            "issuer": self._issuer,
            "appid": self._appid,
        }
        detail.update((name, value) for name, value in fields.items() if value is not None)
        self._buffer().append((detail_type, now, detail))

    def user_created(self, user_id: str, *, appid: str | None, now: int) -> None:
        self.emit(USER_CREATED, now, user_id=user_id, appid=appid, created_at=now)

    def user_logged_in(
        self,
        user_id: str,
        session_id: str,
        *,
        client_id: str,
        appid: str | None,
        is_new: bool,
        now: int,
    ) -> None:
        self.emit(
            USER_LOGGED_IN,
            now,
            user_id=user_id,
            session_id=session_id,
            client_id=client_id,
            appid=appid,
            is_new=is_new,
        )

    def refresh_token_reuse_detected(
        self, user_id: str, session_id: str, *, client_id: str, generations_behind: int, now: int
    ) -> None:
        self.emit(
            REFRESH_TOKEN_REUSE_DETECTED,
            now,
            user_id=user_id,
            session_id=session_id,
            client_id=client_id,
            generations_behind=generations_behind,
        )

    def session_ended(
        self,
        user_id: str,
        session_ids: Iterable[str],
        *,
        reason: str,
        now: int,
        all_sessions: bool = False,
        evicted_by_session_id: str | None = None,
    ) -> None:
        """One event per ending action: a logout ends one session, a logout-all (or a ban)
        every live one of the user's (`all_sessions`), a login beyond the cap on sessions the
        least recently used (reason `evicted`, `evicted_by_session_id`: the login's session).
        Nothing when `session_ids` is empty."""
        ids = list(session_ids)
        if not ids:
            return
        self.emit(
            SESSION_ENDED,
            now,
            user_id=user_id,
            session_ids=ids[:MAX_SESSION_IDS],
            session_count=len(ids),
            reason=reason,
            all_sessions=all_sessions,
            evicted_by_session_id=evicted_by_session_id,
        )

    def user_banned(
        self, user_id: str, *, now: int, sessions_ended: int, appid: str | None = None
    ) -> None:
        """For `wxauth-admin user ban`, after the ban's write; its revocations are a
        SessionEnded of their own (reason `banned`, `all_sessions`)."""
        self.emit(USER_BANNED, now, user_id=user_id, appid=appid, sessions_ended=sessions_ended)

    def user_merged(
        self,
        user_id: str,
        *,
        merged_user_id: str,
        identities_moved: int,
        forced: bool,
        sessions_ended: int,
        now: int,
    ) -> None:
        """For `wxauth-admin user merge`, after the merge's transaction: `merged_user_id` is
        `user_id` from now on (its sessions' ending is a SessionEnded of its own). Never the
        operator or the reason: those are the operators' (the profile, the log line)."""
        self.emit(
            USER_MERGED,
            now,
            user_id=user_id,
            merged_user_id=merged_user_id,
            identities_moved=identities_moved,
            forced=forced,
            sessions_ended=sessions_ended,
        )

    def phone_bound(
        self, user_id: str, *, appid: str | None, moved_from_user_id: str | None, now: int
    ) -> None:
        """Never the number, nor its hash: who has it now, and whom it was moved from."""
        self.emit(
            PHONE_BOUND, now, user_id=user_id, appid=appid, moved_from_user_id=moved_from_user_id
        )

    def user_deletion_requested(
        self,
        user_id: str,
        *,
        erase_after: int,
        requested_by: str,
        sessions_ended: int,
        now: int,
    ) -> None:
        """After the deletion's write: the user (`requested_by` `user`, or `operator`) asked
        for it; from `erase_after` on it is erased (UserDeleted). Stop using its data now."""
        self.emit(
            USER_DELETION_REQUESTED,
            now,
            user_id=user_id,
            requested_at=now,
            erase_after=erase_after,
            requested_by=requested_by,
            sessions_ended=sessions_ended,
        )

    def user_deletion_cancelled(self, user_id: str, *, now: int) -> None:
        self.emit(USER_DELETION_CANCELLED, now, user_id=user_id)

    def user_deleted(
        self, user_id: str, *, erased_user_ids: Iterable[str], requested_at: int, now: int
    ) -> None:
        """After the erasure: nothing of the user is left in wxauth; erase yours (every id of
        `erased_user_ids`: the user and the users merged into it). Published at least once: a
        run that could not publish it tries again at the next run."""
        self.emit(
            USER_DELETED,
            now,
            user_id=user_id,
            erased_user_ids=list(erased_user_ids),
            requested_at=requested_at,
        )

    def device_login_confirmed(
        self, user_id: str, *, client_id: str, device_login_id: str, now: int
    ) -> None:
        """A user confirmed a device login in the mini-program (issue 24, item 3): the device's
        session, when it gets its tokens, is this user's (a UserLoggedIn then). Never the user
        or device code: `device_login_id` is a random id of the login."""
        self.emit(
            DEVICE_LOGIN_CONFIRMED,
            now,
            user_id=user_id,
            client_id=client_id,
            device_login_id=device_login_id,
        )

    def device_login_denied(
        self, user_id: str, *, client_id: str, device_login_id: str, now: int
    ) -> None:
        """A user denied a device login: its device gets `access_denied`."""
        self.emit(
            DEVICE_LOGIN_DENIED,
            now,
            user_id=user_id,
            client_id=client_id,
            device_login_id=device_login_id,
        )

    # -- publishing -------------------------------------------------------------------------

    def pending(self) -> list[tuple[str, int, dict[str, Any]]]:
        """This thread's buffered events (detail-type, time, detail), oldest first."""
        return list(self._buffer())

    def discard(self) -> None:
        self._buffer().clear()

    def flush(self) -> int:
        """Publish this thread's buffered events and empty the buffer; never raises.

        At most one PutEvents call; returns how many events were dropped (not published)."""
        if not self.enabled:
            return 0
        buffered = self._buffer()
        if not buffered:
            return 0
        events, self._local.events = buffered, []
        try:
            if self._log:
                for detail_type, _, detail in events:
                    log_event("auth_event", **{"detail-type": detail_type, "detail": detail})
            if self._bus is None:
                return 0
            return self._publish(events)
        except Exception as e:  # never the request's failure; only what and how many
            return self._dropped(events, "error", error_type=type(e).__name__)

    def _publish(self, events: list[tuple[str, int, dict[str, Any]]]) -> int:
        sent, overflow = events[:MAX_ENTRIES], events[MAX_ENTRIES:]
        dropped = self._dropped(overflow, "overflow") if overflow else 0
        entries = [
            {
                "Source": SOURCE,
                "DetailType": detail_type,
                "Detail": json.dumps(detail, separators=(",", ":")),
                "Time": datetime.fromtimestamp(now, UTC),
                "EventBusName": self._bus,
            }
            for detail_type, now, detail in sent
        ]
        try:
            answer = self._events_client().put_events(Entries=entries)
        except (ClientError, BotoCoreError) as e:
            return dropped + self._dropped(sent, "put_events_failed", error_type=type(e).__name__)
        failed = [
            (event, result.get("ErrorCode"))
            for event, result in zip(sent, answer.get("Entries", []), strict=False)
            if result.get("ErrorCode")
        ]
        if answer.get("FailedEntryCount") and not failed:  # counted, but no entry says which
            return dropped + self._dropped(sent, "entries_failed")
        if failed:
            codes = sorted({str(code) for _, code in failed})
            dropped += self._dropped(
                [event for event, _ in failed], "entries_failed", error_codes=codes
            )
        return dropped

    def _events_client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    assert self._client_factory is not None
                    self._client = self._client_factory()
        return self._client

    def _dropped(
        self, events: list[tuple[str, int, dict[str, Any]]], reason: str, **fields: Any
    ) -> int:
        """Count and log what was not published: how many of each detail-type, never a field."""
        kinds: dict[str, int] = {}
        for detail_type, _, _ in events:
            kinds[detail_type] = kinds.get(detail_type, 0) + 1
        log_event(
            "events_dropped",
            level=logging.WARNING,
            reason=reason,
            count=len(events),
            detail_types=kinds,
            **fields,
        )
        self._metrics.count("EventsDropped", len(events), reason=reason)
        return len(events)

    def _buffer(self) -> list[tuple[str, int, dict[str, Any]]]:
        events = getattr(self._local, "events", None)
        if events is None:
            events = self._local.events = []
        return events


OFF = Events()  # the sink of a graph built without one: nothing buffered, nothing published
