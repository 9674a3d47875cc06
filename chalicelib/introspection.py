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

A client's successful authentication is remembered in the container for AUTH_MEMO_SECONDS,
keyed by its id and the SHA-256 of its secret, so that a gateway introspecting every request
pays one scrypt and one GetItem per container and minute, not per call; a wrong secret is never
let in by the memo, and a disabled client is refused once its memo lapses.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from typing import Any

from chalicelib.clients import ClientRecord, ClientStore, client_credentials
from chalicelib.errors import InsufficientScope, RequestError, TokenError
from chalicelib.sessions import SessionManager
from chalicelib.tokens.access import AccessTokens

INTROSPECT_SCOPE = "introspect"
AUTH_MEMO_SECONDS = 60
MAX_REMEMBERED = 64
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
        self._lock = threading.Lock()
        # client_id -> (SHA-256 of its secret, the client, remembered until)
        self._memo: dict[str, tuple[bytes, ClientRecord, int]] = {}

    def introspect(
        self, form: dict[str, str], basic: tuple[str, str] | None, now: int
    ) -> dict[str, Any]:
        """The introspection response for `form` (`token`, `token_type_hint`?, and the
        client's credentials if posted); `basic` is HTTP Basic's (client_id, secret)."""
        form = {name: value for name, value in form.items() if value != ""}
        client = self._authenticate(*client_credentials(form, basic), now=now)
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

    def _authenticate(self, client_id: str, secret: str, *, now: int) -> ClientRecord:
        digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            remembered = self._memo.get(client_id)
        if remembered is not None:
            known, client, until = remembered
            if now < until and hmac.compare_digest(known, digest):
                return client
        client = self._clients.authenticate(client_id, secret)  # ClientAuthError if not
        with self._lock:
            if len(self._memo) >= MAX_REMEMBERED:
                self._memo.clear()
            self._memo[client_id] = (digest, client, now + AUTH_MEMO_SECONDS)
        return client

    def forget(self) -> None:
        """Drop every remembered authentication (after a SnapStart restore)."""
        with self._lock:
            self._memo.clear()
