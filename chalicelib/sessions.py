"""Sessions and refresh-token rotation: start, refresh (with grace and reuse detection), end.

Refresh, for a presented token T of session S, starts with one conditional UpdateItem that
rotates S if T is its current token and S is live, and otherwise writes nothing and hands back
S as it was (`ReturnValuesOnConditionCheckFailure`). No read comes first: the common case is
one DynamoDB request. Of racing refreshes exactly one rotates; the others land below.
- T is the previous token and was rotated less than `grace` seconds ago: answer the current
  token, unsealed from `sealed_current` with a key derived from T. Nothing more is written.
- T is the previous token, rotated `grace` seconds ago or more: theft. Revoke S and count a
  `RefreshTokenReuse` metric. The current token dies with S.
- Anything else (unknown session, older token, forged secret): invalid_grant, nothing written.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib import refresh_tokens
from chalicelib.access_tokens import AccessClaims, AccessTokens
from chalicelib.errors import GrantError, ReuseDetected, RevokedToken, StoreUnavailable
from chalicelib.logs import Metrics
from chalicelib.store import DynamoStore, RotationRefused, SessionRecord

REASON_LOGOUT = "logout"
REASON_REUSE = "refresh_token_reuse"


@dataclass(frozen=True)
class IssuedTokens:
    user_id: str
    session_id: str
    access_token: str
    access_expires_at: int
    refresh_token: str
    refresh_expires_at: int

    def response(self, now: int) -> dict[str, object]:
        """The RFC 6749 §5.1 token response, lifetimes counted from `now`."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": max(0, self.access_expires_at - now),
            "refresh_token": self.refresh_token,
            "refresh_expires_in": max(0, self.refresh_expires_at - now),
        }


def _context(user_id: str, session_id: str) -> bytes:
    return f"session|{user_id}|{session_id}".encode()


class SessionManager:
    def __init__(
        self,
        store: DynamoStore,
        access_tokens: AccessTokens,
        *,
        idle_ttl: int,
        absolute_ttl: int,
        grace: int,
        metrics: Metrics | None = None,
        rand: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._store = store
        self._access = access_tokens
        self._idle_ttl = idle_ttl
        self._absolute_ttl = absolute_ttl
        self._grace = grace
        self._metrics = metrics or Metrics()
        self._rand = rand

    def start(self, user_id: str, *, client_id: str, now: int) -> IssuedTokens:
        session, tokens = self.prepare(user_id, client_id=client_id, now=now)
        self._store.put_session(session)
        return tokens

    def prepare(
        self, user_id: str, *, client_id: str, now: int
    ) -> tuple[SessionRecord, IssuedTokens]:
        """A new session and its tokens, not yet stored (the caller writes the session)."""
        session_id = refresh_tokens.new_id(self._rand)
        token = refresh_tokens.mint(user_id, session_id, self._rand)
        absolute = now + self._absolute_ttl
        session = SessionRecord(
            user_id=user_id,
            session_id=session_id,
            client_id=client_id,
            current_hash=refresh_tokens.token_hash(token),
            previous_hash=None,
            rotated_at=None,
            sealed_current=None,
            created_at=now,
            idle_expires_at=min(now + self._idle_ttl, absolute),
            absolute_expires_at=absolute,
        )
        return session, self._issue(session, token, now)

    def refresh(self, token: object, now: int) -> IssuedTokens:
        user_id, session_id = refresh_tokens.parse(token)
        assert isinstance(token, str)
        presented = refresh_tokens.token_hash(token)
        new_token = refresh_tokens.mint(user_id, session_id, self._rand)
        try:
            session = self._store.rotate_session(
                user_id,
                session_id,
                presented_hash=presented,
                new_hash=refresh_tokens.token_hash(new_token),
                sealed_new=refresh_tokens.seal(
                    token,
                    new_token.encode("utf-8"),
                    context=_context(user_id, session_id),
                    rand=self._rand,
                ),
                now=now,
                idle_expires_at=now + self._idle_ttl,
            )
        except RotationRefused as refused:
            session = refused.session
        else:
            return self._issue(session, new_token, now)
        if session is None:
            raise GrantError("refresh token unknown")
        if not session.is_live(now):
            raise GrantError("refresh token revoked or expired")
        if session.previous_hash is not None and hmac.compare_digest(
            presented, session.previous_hash
        ):
            return self._replay_or_revoke(session, token, now)
        if hmac.compare_digest(presented, session.current_hash):
            # Refused although current and live: not a state DynamoDB hands back. Retryable.
            raise StoreUnavailable("the rotation was refused without a reason; try again")
        raise GrantError("refresh token unknown")

    def _replay_or_revoke(self, session: SessionRecord, token: str, now: int) -> IssuedTokens:
        in_grace = session.rotated_at is not None and now - session.rotated_at < self._grace
        if in_grace and session.sealed_current is not None:
            current = refresh_tokens.unseal(
                token,
                session.sealed_current,
                context=_context(session.user_id, session.session_id),
            ).decode("utf-8")
            if hmac.compare_digest(refresh_tokens.token_hash(current), session.current_hash):
                return self._issue(session, current, now)
        self._store.revoke_session(
            session.user_id, session.session_id, now=now, reason=REASON_REUSE
        )
        self._metrics.count("RefreshTokenReuse")
        raise ReuseDetected("refresh token was already rotated; the session is revoked")

    def _issue(self, session: SessionRecord, refresh_token: str, now: int) -> IssuedTokens:
        access_token, access_expires_at = self._access.mint(
            subject=session.user_id,
            session_id=session.session_id,
            client_id=session.client_id,
            now=now,
        )
        return IssuedTokens(
            user_id=session.user_id,
            session_id=session.session_id,
            access_token=access_token,
            access_expires_at=access_expires_at,
            refresh_token=refresh_token,
            refresh_expires_at=session.expires_at,
        )

    def require_live(self, claims: AccessClaims, now: int) -> SessionRecord | None:
        """The session behind an access token, or RevokedToken if it was revoked or ended.

        Tokens without `sid` (client credentials) have no session: None.
        """
        if claims.session_id is None:
            return None
        session = self._store.get_session(claims.subject, claims.session_id)
        if session is None or not session.is_live(now):
            raise RevokedToken("the session of this access token has ended")
        return session

    def is_current(self, user_id: str, session_id: str, refresh_token: str, now: int) -> bool:
        """True if `refresh_token` is the current token of a live session."""
        session = self._store.get_session(user_id, session_id)
        return (
            session is not None
            and session.is_live(now)
            and hmac.compare_digest(refresh_tokens.token_hash(refresh_token), session.current_hash)
        )

    def revoke(
        self, user_id: str, session_id: str, *, now: int, reason: str = REASON_LOGOUT
    ) -> bool:
        return self._store.revoke_session(user_id, session_id, now=now, reason=reason)

    def revoke_all(self, user_id: str, *, now: int, reason: str = REASON_LOGOUT) -> int:
        revoked = 0
        for session in self._store.list_sessions(user_id):
            if session.revoked_at is None and self.revoke(
                user_id, session.session_id, now=now, reason=reason
            ):
                revoked += 1
        return revoked

    def list_sessions(self, user_id: str) -> list[SessionRecord]:
        return self._store.list_sessions(user_id)
