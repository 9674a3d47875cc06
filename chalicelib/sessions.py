"""Sessions and refresh-token rotation: start, refresh (with grace and reuse detection), end.

Refresh, for a presented token T of session S, starts with one conditional UpdateItem that
rotates S if T is its current token, byte for byte (the hash of all of T: see
chalicelib/tokens/refresh.py), and S is live, and otherwise writes nothing and hands back S as
it was (`ReturnValuesOnConditionCheckFailure`). No read comes first: the common case is one
DynamoDB request. Of racing refreshes exactly one rotates; the others land below.
- T is the previous token and was rotated less than `grace` seconds ago: answer the current
  token, unsealed from `sealed_current` with a key derived from T. Nothing more is written.
- T is the previous token, rotated `grace` seconds ago or more, or T is an older token of S
  (it carries S's key, or a v2 MAC that opens with S's `mac_key`, and its generation is below
  S's): theft. Revoke S and count a `RefreshTokenReuse` metric. The current token dies with S.
- Anything else (unknown session, forged secret, key or MAC, any character of a real token
  changed, a v1 token older than the previous one): invalid_grant, nothing written. Revoking
  on these would let anyone who has seen a `sid` log its owner out.
A v2 token's session is read first, its MAC checked before any write (tokens/refresh.py).
AUTH_LIMIT_REFRESH_PER_SESSION counts under `refresh_tokens.limit_key` (issue 22, item 8).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from chalicelib import crypto
from chalicelib.devices import DeviceInfo
from chalicelib.errors import (
    GrantError,
    ReuseDetected,
    RevokedToken,
    RotationRefused,
    SessionEvicted,
    StoreUnavailable,
    UserBanned,
)
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import Events
from chalicelib.logs import Metrics
from chalicelib.session_cap import EVICTED_DESCRIPTION, REASON_EVICTED, SessionCap
from chalicelib.session_ends import (
    REASON_BANNED,
    SessionEnds,
)
from chalicelib.store.sessions import SessionRecord, Sessions
from chalicelib.tokens import refresh as refresh_tokens
from chalicelib.tokens.access import AccessClaims, AccessTokens, seconds_left
from chalicelib.tokens.refresh import RefreshToken

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
            "expires_in": seconds_left(self.access_expires_at, now),
            "refresh_token": self.refresh_token,
            "refresh_expires_in": seconds_left(self.refresh_expires_at, now),
        }


def _context(user_id: str, session_id: str) -> bytes:
    return f"session|{user_id}|{session_id}".encode()


class SessionManager(SessionEnds):
    """Sessions: start and prepare (a login), refresh (rotation, grace, reuse), resume (a
    login's replay), require_live (every protected request); ending and listing them is
    SessionEnds' (chalicelib/session_ends.py)."""

    def __init__(
        self,
        store: Sessions,
        access_tokens: AccessTokens,
        *,
        idle_ttl: int,
        absolute_ttl: int,
        grace: int,
        metrics: Metrics | None = None,
        rand: Callable[[int], bytes] = secrets.token_bytes,
        extra_claims: Callable[[str], Mapping[str, object]] | None = None,
        events: Events = EVENTS_OFF,
        custom_claims: Callable[[SessionRecord], Mapping[str, object]] | None = None,
        refresh_limit: Callable[[str, int], None] | None = None,
        cap: SessionCap | None = None,
        profile_claim: bool = False,
    ) -> None:
        """`extra_claims(user_id)`: claims added to each access token minted for the user's
        sessions (AUTH_PHONE_CLAIM's `phone_number`); None adds none and reads nothing.
        `events`: RefreshTokenReuseDetected and SessionEnded, after their revocation's write.
        `custom_claims(session)`: chalicelib.tokens.claims.TokenClaims (the `ext` claim, from the
        session item and the pre-token hook); None adds none.
        `refresh_limit(session_key, now)`: called before each rotation, raises RateLimited to
        refuse it (AUTH_LIMIT_REFRESH_PER_SESSION: one more request; None: none).
        `cap`: AUTH_MAX_SESSIONS_PER_USER, enforced after each login (`enforce_cap`).
        `profile_claim`: AUTH_PROFILE_CLAIM, the session's copy of the profile (`nickname`,
        `picture`: chalicelib/profile.py) on its access tokens."""
        self._cap = cap
        self._profile_claim = profile_claim
        self._events = events
        self._refresh_limit = refresh_limit
        self._extra_claims = extra_claims
        self._custom_claims = custom_claims
        self._store = store
        self._access = access_tokens
        self._idle_ttl = idle_ttl
        self._absolute_ttl = absolute_ttl
        self._grace = grace
        self._metrics = metrics or Metrics()
        self._rand = rand

    def start(
        self, user_id: str, *, client_id: str, now: int, audience: str | None = None
    ) -> IssuedTokens:
        session, tokens = self.prepare(user_id, client_id=client_id, now=now, audience=audience)
        self._store.put(session)
        return tokens

    def prepare(
        self,
        user_id: str,
        *,
        client_id: str,
        now: int,
        device: DeviceInfo | None = None,
        custom_claims: str | None = None,
        audience: str | None = None,
        profile_claims: str | None = None,
        sealed_session_key: bytes | None = None,
    ) -> tuple[SessionRecord, IssuedTokens]:
        """A new session and its tokens, not yet stored (the caller writes the session).

        `device`: where the login came from (chalicelib/devices.py), recorded on the session.
        `custom_claims`: the user's (UserRecord.custom_claims), copied into the session.
        `client_id` and `audience` (None: AUTH_AUDIENCE) are the app's that logged in; the
        session keeps them, so that its refreshed access tokens carry them too.
        `profile_claims`, `sealed_session_key`: the profile's claims and the login's sealed
        WeChat session_key (chalicelib/profile.py, chalicelib/open_data.py), kept on the session.
        """
        device = device or DeviceInfo()
        session_id = refresh_tokens.new_id(self._rand)
        token = refresh_tokens.issue(
            refresh_tokens.mint(user_id, session_id, 0, self._rand),
            refresh_tokens.new_key(self._rand),
        )
        issued = refresh_tokens.parse(token)
        absolute = now + self._absolute_ttl
        session = SessionRecord(
            user_id=user_id,
            session_id=session_id,
            client_id=client_id,
            current_hash=issued.hash,
            previous_hash=None,
            rotated_at=None,
            sealed_current=None,
            created_at=now,
            idle_expires_at=min(now + self._idle_ttl, absolute),
            absolute_expires_at=absolute,
            key_hash=issued.key_hash,
            audience=audience,
            device_name=device.name,
            device_platform=device.platform,
            user_agent=device.user_agent,
            source_ip=device.source_ip,
            custom_claims=custom_claims,
            profile_claims=profile_claims,
            sealed_session_key=sealed_session_key,
        )
        return session, self._issue(session, token, now)

    def refresh(self, token: object, now: int) -> IssuedTokens:
        """Rotate the session of `token`: one conditional UpdateItem (see the module doc)."""
        presented = refresh_tokens.parse(token)
        if presented.version == 2:
            return self._refresh_v2(presented, now)
        if self._refresh_limit is not None:
            self._refresh_limit(refresh_tokens.limit_key(presented), now)
        return self._rotate(presented, now)

    def _rotate(self, presented: RefreshToken, now: int) -> IssuedTokens:
        """The one conditional write: only the current token, byte for byte, rotates."""
        user_id, session_id = presented.user_id, presented.session_id
        generation = (presented.generation or 0) + 1
        key = presented.key or refresh_tokens.new_key(self._rand)  # v1, v2: the first key
        body = refresh_tokens.mint(user_id, session_id, generation, self._rand)
        new_token = refresh_tokens.issue(body, key)
        context = _context(user_id, session_id)
        sealed = crypto.seal(presented.body, new_token.encode(), context=context, rand=self._rand)
        try:
            session = self._store.rotate(
                user_id,
                session_id,
                presented_hash=presented.hash,
                new_hash=refresh_tokens.token_hash(new_token),
                new_generation=generation,
                sealed_new=sealed,
                key_hash=refresh_tokens.key_hash(key),
                now=now,
                idle_expires_at=now + self._idle_ttl,
            )
        except RotationRefused as refused:
            return self._refused(refused.session, presented, now)
        return self._issue(session, new_token, now)

    def _refused(
        self, session: SessionRecord | None, presented: RefreshToken, now: int
    ) -> IssuedTokens:
        """Not the current token of a live session: a grace replay, a theft, or invalid_grant."""
        if session is None:
            raise GrantError("refresh token unknown")
        if session.revoked_reason == REASON_BANNED:
            raise UserBanned("this user is banned")
        if session.revoked_reason == REASON_EVICTED:
            raise SessionEvicted(EVICTED_DESCRIPTION)
        if not session.is_live(now):
            raise GrantError("refresh token revoked or expired")
        if session.previous_hash is not None and hmac.compare_digest(
            presented.hash, session.previous_hash
        ):
            return self._replay_or_revoke(session, presented, now)
        if hmac.compare_digest(presented.hash, session.current_hash):
            # Refused although current and live: not a state DynamoDB hands back. Retryable.
            raise StoreUnavailable("the rotation was refused without a reason; try again")
        if refresh_tokens.older(presented, session.generation, session.key_hash, session.mac_key):
            self._revoke_for_reuse(session, presented, now)
        raise GrantError("refresh token unknown")

    def _refresh_v2(self, presented: RefreshToken, now: int) -> IssuedTokens:
        """A v2 token's MAC, checked against its session's `mac_key` (one GetItem) before
        anything is written; then, for the current token, the rotation into v3 tokens."""
        session = self._store.get(presented.user_id, presented.session_id)
        if session is None or not refresh_tokens.authentic(presented, session.mac_key):
            raise GrantError("refresh token unknown")
        if not session.is_live(now) or not hmac.compare_digest(
            presented.hash, session.current_hash
        ):
            return self._refused(session, presented, now)  # ended, grace or theft: no rotation
        if self._refresh_limit is not None:
            self._refresh_limit(refresh_tokens.limit_key(presented), now)
        return self._rotate(presented, now)

    def _replay_or_revoke(
        self, session: SessionRecord, presented: RefreshToken, now: int
    ) -> IssuedTokens:
        # `now - rotated_at` may be negative: the rotation's container read the next second.
        in_grace = (
            self._grace > 0
            and session.rotated_at is not None
            and now - session.rotated_at < self._grace
        )
        if in_grace and session.sealed_current is not None:
            current = crypto.unseal(
                presented.body,
                session.sealed_current,
                context=_context(session.user_id, session.session_id),
            ).decode("utf-8")
            # a v3 token whole; a v2 body (sealed by an earlier release), hashed as it is stored
            if hmac.compare_digest(refresh_tokens.token_hash(current), session.current_hash):
                return self._issue(session, refresh_tokens.sealed(current, session.mac_key), now)
        self._revoke_for_reuse(session, presented, now)

    def _revoke_for_reuse(
        self, session: SessionRecord, presented: RefreshToken, now: int
    ) -> NoReturn:
        self._store.revoke(session.user_id, session.session_id, now=now, reason=REASON_REUSE)
        behind = session.generation - (presented.generation or 0)
        self._metrics.count("RefreshTokenReuse", generations_behind=behind)
        self._events.refresh_token_reuse_detected(
            session.user_id,
            session.session_id,
            client_id=session.client_id,
            generations_behind=behind,
            now=now,
        )
        self._events.session_ended(
            session.user_id, [session.session_id], reason=REASON_REUSE, now=now
        )
        raise ReuseDetected("refresh token was already rotated; the session is revoked")

    def _issue(self, session: SessionRecord, refresh_token: str, now: int) -> IssuedTokens:
        extra = dict(self._extra_claims(session.user_id)) if self._extra_claims else {}
        if self._custom_claims is not None:
            extra.update(self._custom_claims(session))
        if self._profile_claim and session.profile_claims:  # from the item: no request
            extra.update(json.loads(session.profile_claims))
        access_token, access_expires_at = self._access.mint(
            subject=session.user_id,
            session_id=session.session_id,
            client_id=session.client_id,
            now=now,
            audience=session.audience,
            extra=extra or None,
        )
        return IssuedTokens(
            user_id=session.user_id,
            session_id=session.session_id,
            access_token=access_token,
            access_expires_at=access_expires_at,
            refresh_token=refresh_token,
            refresh_expires_at=session.expires_at,
        )

    def enforce_cap(self, session: SessionRecord, now: int) -> None:
        """After a login stored `session`: AUTH_MAX_SESSIONS_PER_USER (unset: no request)."""
        if self._cap is not None:
            self._cap.enforce(session, now)

    def require_live(self, claims: AccessClaims, now: int) -> SessionRecord | None:
        """The session behind an access token, or RevokedToken if it was revoked or ended.

        Tokens without `sid` (client credentials) have no session: None.
        """
        if claims.session_id is None:
            return None
        session = self._store.get(claims.subject, claims.session_id)
        if session is None or not session.is_live(now):
            raise RevokedToken("the session of this access token has ended")
        return session

    def resume(self, refresh_token: str, now: int) -> IssuedTokens | None:
        """`refresh_token` with a new access token, if it is still the current token of a live
        session (a login's replay); None if the session has rotated since, or ended."""
        presented = refresh_tokens.parse(refresh_token)
        session = self._store.get(presented.user_id, presented.session_id)
        if session is not None and session.revoked_reason == REASON_BANNED:
            raise UserBanned("this user is banned")
        if (
            session is None
            or not session.is_live(now)
            or not hmac.compare_digest(presented.hash, session.current_hash)
        ):
            return None
        return self._issue(session, refresh_token, now)
