"""The OAuth 2.0 token endpoint (RFC 6749 §6 refresh, §4.4 client credentials) and token
revocation (RFC 7009), over already-parsed form parameters.

- `refresh_token`: the mini-program's public client (RFC 6749 §2.1) refreshes a session exactly
  as `/auth/refresh` does: same rotation, grace and reuse detection. No client authentication;
  an optional `client_id` must be the WeChat appid the session was issued to. A website's
  confidential client (issue 24) authenticates as for client credentials, and the session
  must be its own (RFC 6749 §6).
- `authorization_code` (issue 24): chalicelib/weblogin/grant.py, registered by the runtime.
- `client_credentials`: a registered client authenticates with HTTP Basic or with
  `client_id` + `client_secret` (one method only) and gets an access token for itself: `sub` and
  `client_id` are its id, `scope` is what it asked for (default: all its scopes), no `sid`, no
  refresh token.
- introspection (RFC 7662): chalicelib/introspection.py, for clients holding `introspect`.
- revocation: a refresh token that is its session's current or previous one ends the session; an
  access token of a session ends that session too (RFC 7009 §2.1 allows it). Anything else, or a
  client credentials token (stateless, it lives until `exp`), is answered the same way: nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.clients import ClientStore, client_credentials, grant_scope
from chalicelib.errors import (
    ClientAuthError,
    GrantError,
    InvalidScope,
    RequestError,
    TokenError,
    UnsupportedGrantType,
)
from chalicelib.http_input import string_field
from chalicelib.introspection import Introspection
from chalicelib.sessions import SessionManager
from chalicelib.tokens import refresh as refresh_tokens
from chalicelib.tokens.access import MAX_TOKEN_LENGTH as MAX_ACCESS_TOKEN_LENGTH
from chalicelib.tokens.access import AccessTokens, client_subject, seconds_left

GRANT_TYPES = ("refresh_token", "client_credentials")  # registered by OAuthService, in order
REASON_REVOKED = "oauth_revoke"
MAX_PARAMETER_LENGTH = 512


@dataclass(frozen=True)
class TokenGrant:
    """A token response (RFC 6749 §5.1) and, for the request log, the user it was issued to."""

    body: dict[str, object]
    user_id: str | None


# A grant: (the form, HTTP Basic's (client_id, secret) if sent, now) -> the token response.
Grant = Callable[[dict[str, str], "tuple[str, str] | None", int], TokenGrant]


def _present(form: dict[str, str]) -> dict[str, str]:
    """RFC 6749 §3.1: a parameter sent without a value is treated as omitted."""
    return {name: value for name, value in form.items() if value != ""}


class OAuthService:
    def __init__(
        self,
        *,
        sessions: SessionManager,
        clients: ClientStore,
        access_tokens: AccessTokens,
        public_client_id: str,
    ) -> None:
        self._sessions = sessions
        self._clients = clients
        self._access = access_tokens
        self._public_client_id = public_client_id
        self._grants: dict[str, Grant] = {}
        self.introspection = Introspection(
            clients=clients, access_tokens=access_tokens, sessions=sessions
        )
        self.register_grant("refresh_token", self._refresh)
        self.register_grant("client_credentials", self._client_credentials)

    def register_grant(self, grant_type: str, grant: Grant) -> None:
        """Answer token requests of `grant_type` with `grant` (Authlib's `register_grant`):
        the token endpoint never branches on the grant type."""
        self._grants[grant_type] = grant

    @property
    def grant_types(self) -> tuple[str, ...]:
        return tuple(self._grants)

    # -- POST /oauth/token ------------------------------------------------------------------

    def token(self, form: dict[str, str], basic: tuple[str, str] | None, now: int) -> TokenGrant:
        """Answer a token request; `basic` is (client_id, secret) from HTTP Basic, if sent."""
        form = _present(form)
        grant_type = string_field(form, "grant_type", max_length=MAX_PARAMETER_LENGTH)
        grant = self._grants.get(grant_type)
        if grant is None:
            *others, last = self._grants
            raise UnsupportedGrantType(f"grant_type must be {', '.join(others)} or {last}")
        return grant(form, basic, now)

    def _refresh(self, form: dict[str, str], basic: tuple[str, str] | None, now: int) -> TokenGrant:
        token = string_field(form, "refresh_token", max_length=refresh_tokens.MAX_TOKEN_LENGTH)
        client_id = form.get("client_id")
        if basic is not None:
            basic_id, basic_secret = basic
            if client_id is not None and client_id != basic_id:
                raise RequestError("client_id differs from the HTTP Basic user")
            client_id, secret = basic_id, basic_secret
        else:
            secret = ""
        if secret or "client_secret" in form:  # a website's client (issue 24): authenticate it
            if basic is not None and "client_secret" in form:
                raise RequestError("authenticate with HTTP Basic or client_secret, not both")
            if client_id is None:
                raise ClientAuthError("client_secret needs client_id")
            client = self._clients.authenticate(client_id, secret or form["client_secret"])
            self._require_issued_to(token, client.client_id)
        elif client_id is not None and client_id != self._public_client_id:
            self._require_issued_to(token, client_id)
        if "scope" in form:
            raise InvalidScope("sessions carry no scope: refresh without one")
        issued = self._sessions.refresh(token, now)
        return TokenGrant(issued.response(now), issued.user_id)

    def _require_issued_to(self, token: str, client_id: str) -> None:
        """Another app's `client_id` (chalicelib/identity): the session must be that app's.
        One GetItem more, only for a refresh that names a client other than the primary app."""
        presented = refresh_tokens.parse(token)
        session = self._sessions.find(presented.user_id, presented.session_id)
        # bytes: compare_digest refuses str with non-ASCII characters (a client_id may have them)
        if session is None or not hmac.compare_digest(
            session.client_id.encode("utf-8"), client_id.encode("utf-8", "surrogatepass")
        ):
            raise GrantError("the refresh token was not issued to this client")

    def _client_credentials(
        self, form: dict[str, str], basic: tuple[str, str] | None, now: int
    ) -> TokenGrant:
        client_id, secret = client_credentials(form, basic)
        client = self._clients.authenticate(client_id, secret)
        scope = " ".join(grant_scope(client, form.get("scope")))
        access_token, expires_at = self._access.mint(
            subject=client_subject(client.client_id),
            client_id=client.client_id,
            scope=scope,
            now=now,
        )
        body: dict[str, object] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": seconds_left(expires_at, now),
            "scope": scope,
        }
        return TokenGrant(body, None)

    # -- POST /oauth/introspect (RFC 7662: chalicelib/introspection.py) -----------------------

    def introspect(
        self, form: dict[str, str], basic: tuple[str, str] | None, now: int
    ) -> dict[str, object]:
        return self.introspection.introspect(form, basic, now)

    # -- POST /oauth/revoke -----------------------------------------------------------------

    def revoke(self, form: dict[str, str], now: int) -> str | None:
        """Revoke what `token` names, if anything; return the user whose session ended."""
        form = _present(form)
        token = string_field(form, "token", max_length=MAX_ACCESS_TOKEN_LENGTH)
        # token_type_hint only speeds up a search (RFC 7009 §2.1); the two formats never
        # overlap, so it is not needed and any value is accepted.
        try:
            refresh_token = refresh_tokens.parse(token)
        except GrantError:
            return self._revoke_access_token(token, now)
        # A forged token for a real session revokes nothing.
        if self._sessions.revoke_by_refresh_token(refresh_token, now=now, reason=REASON_REVOKED):
            return refresh_token.user_id
        return None

    def _revoke_access_token(self, token: str, now: int) -> str | None:
        try:
            claims = self._access.check(token, now)
            self._sessions.require_live(claims, now)
        except TokenError:
            return None
        if claims.session_id is None:
            return None
        self._sessions.revoke(claims.subject, claims.session_id, now=now, reason=REASON_REVOKED)
        return claims.subject
