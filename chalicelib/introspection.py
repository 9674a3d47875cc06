"""Token introspection (RFC 7662): a resource server asks whether an access token is good now.

Who may ask: a registered OAuth client (`wxauth-admin client create`) holding the scope
`introspect`, authenticated as at /oauth/token (HTTP Basic or client_secret_post, one method).
Failed authentication is 401 invalid_client (§2.3); an authenticated client without the scope
is 403 insufficient_scope. Kong, Envoy, Spring Security's opaque-token support and Authlib then
work unchanged.

What it is told (§2.2): for an access token that `/auth/verify` would accept now (signature,
`typ`, `iss`, `aud`, `exp`, and for a user's token a live session: one GetItem),
`{"active": true, "token_type": "Bearer"}` plus every claim the token carries (`iss`, `sub`,
`aud`, `exp`, `iat`, `jti`, `client_id`; `sid` on a user's token, `scope` on a client's, `ext`
and `phone_number` where the token has them). For anything else (expired, a revoked or ended
session, a refresh token, a forgery, garbage) `{"active": false}` and nothing more (§2.2: no
hint of why). Refresh tokens are never active here: only the mini-program holds them, and a
resource server that was handed one has been handed the wrong thing.

A client's successful authentication is remembered by the client store (chalicelib/clients.py,
AUTH_CLIENTS_CACHE_TTL: the hash of the accepted secret, never the secret), so that a gateway
introspecting every request pays one GetItem per container and minute for its client, not per
call; a wrong secret is never let in, and a disabled client is refused once that lapses.
"""

from __future__ import annotations

from typing import Any

from chalicelib.clients import ClientStore, client_credentials
from chalicelib.errors import InsufficientScope, RequestError, TokenError
from chalicelib.sessions import SessionManager
from chalicelib.tokens.access import AccessTokens

INTROSPECT_SCOPE = "introspect"
INACTIVE: dict[str, Any] = {"active": False}


class Introspection:
    def __init__(
        self,
        *,
        clients: ClientStore,
        access_tokens: AccessTokens,
        sessions: SessionManager,
    ) -> None:
        self._clients = clients
        self._access = access_tokens
        self._sessions = sessions

    def introspect(
        self, form: dict[str, str], basic: tuple[str, str] | None, now: int
    ) -> dict[str, Any]:
        """The introspection response for `form` (`token`, `token_type_hint`?, and the
        client's credentials if posted); `basic` is HTTP Basic's (client_id, secret)."""
        form = {name: value for name, value in form.items() if value != ""}
        client = self._clients.authenticate(*client_credentials(form, basic))
        if INTROSPECT_SCOPE not in client.scopes:
            raise InsufficientScope(f"this client lacks the scope {INTROSPECT_SCOPE}")
        token = form.get("token")
        if token is None:
            raise RequestError("token is required")
        # token_type_hint is accepted and not needed: only access tokens can be active.
        try:
            claims = self._access.check(token, now)
            self._sessions.require_live(claims, now)
        except TokenError:
            return dict(INACTIVE)
        return {"active": True, **claims.claims, "token_type": "Bearer"}
