"""The `authorization_code` grant of `/oauth/token` (RFC 6749 §4.1.3, with PKCE: RFC 7636),
registered on OAuthService (chalicelib/runtime.py).

The client is a confidential one authenticated by its secret (HTTP Basic or `client_secret`),
or a public one named by `client_id` (no secret: PKCE is its proof). The code must be the
sign-in's, byte for byte (its SHA-256, compared in constant time), not expired, issued to
this client, for this `redirect_uri` (required, and identical, when the authorization
request had one), and `code_verifier` must hash to the sign-in's `code_challenge`. Each
refusal is `invalid_grant` (a client's, `invalid_client`) and writes nothing.

The answer is a session's tokens, as a login's, plus `user` (`id`, `is_new`): the session
carries the client's id (`client_id` of its tokens) and the website app's audience (`aud`: the
app's `audience`, else its client id), and records the browser's User-Agent and address from
the callback. A relying party whose client id is the website app's own client id (by default
its appid) thus gets exactly the tokens of a login through the website app: wxauth's own web
login. Two DynamoDB requests (the client's GetItem unless a container remembers it, the
sign-in's GetItem, one transaction); with AUTH_MAX_SESSIONS_PER_USER, the cap's.

A code presented again after it was redeemed is a replay (RFC 6749 §4.1.2: the code leaked):
the session it started is revoked (`authorization_code_replay`), and the answer is
`invalid_grant`. Two redemptions racing end the same way: the transaction lets one through,
the other finds it redeemed.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

from chalicelib.devices import DeviceInfo
from chalicelib.errors import GrantError
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import Events
from chalicelib.http_input import string_field
from chalicelib.identity.apps import AppRegistry, token_audience
from chalicelib.logs import log_event
from chalicelib.oauth import TokenGrant
from chalicelib.store.authorizations import Authorization, Authorizations
from chalicelib.weblogin import params

if TYPE_CHECKING:
    from chalicelib.clients import ClientStore
    from chalicelib.sessions import SessionManager

REASON_REPLAY = "authorization_code_replay"
MAX_CODE = 128
MAX_VERIFIER = 128
WEB_PLATFORM = "web"  # the session's device platform


class AuthorizationCodeGrant:
    def __init__(
        self,
        authorizations: Authorizations,
        clients: ClientStore,
        sessions: SessionManager,
        apps: AppRegistry,
        *,
        events: Events = EVENTS_OFF,
    ) -> None:
        self._store = authorizations
        self._clients = clients
        self._sessions = sessions
        self._apps = apps
        self._events = events

    def __call__(self, form: dict[str, str], basic: tuple[str, str] | None, now: int) -> TokenGrant:
        code = string_field(form, "code", max_length=MAX_CODE)
        verifier = params.check_verifier(
            string_field(form, "code_verifier", max_length=MAX_VERIFIER)
        )
        redirect_uri = form.get("redirect_uri")
        if redirect_uri is not None and len(redirect_uri) > params.MAX_REDIRECT_URI:
            raise GrantError("redirect_uri is not the authorization request's")
        client = self._clients.identify(form, basic)
        authz_id = params.authz_id_of(code)
        authz = self._store.get(authz_id) if authz_id else None
        presented = params.digest(params.CODE, code)
        if (
            authz is None
            or authz.code_hash is None
            or not hmac.compare_digest(authz.code_hash, presented)
        ):
            raise GrantError("authorization code unknown")
        if authz.redeemed_at is not None:
            self._revoke(authz, client.client_id, now)
        assert authz.code_expires_at is not None and authz.user_id is not None
        if now >= authz.code_expires_at:
            raise GrantError("authorization code expired")
        if not hmac.compare_digest(authz.client_id.encode(), client.client_id.encode()):
            raise GrantError("the authorization code was issued to another client")
        if (authz.redirect_uri_given or redirect_uri is not None) and redirect_uri != (
            authz.redirect_uri
        ):
            raise GrantError("redirect_uri is not the authorization request's")
        if not params.verifier_matches(verifier, authz.code_challenge):
            raise GrantError("code_verifier does not match the code_challenge")
        app = self._apps.resolve(authz.appid)
        session, tokens = self._sessions.prepare(
            authz.user_id,
            client_id=client.client_id,
            now=now,
            device=DeviceInfo(
                platform=WEB_PLATFORM, user_agent=authz.user_agent, source_ip=authz.source_ip
            ),
            custom_claims=authz.custom_claims,
            profile_claims=authz.profile_claims,
            audience=token_audience(app),
        )
        first = self._store.redeem(authz, code_hash=presented, session=session, now=now)
        if first is not None:  # another redemption came first
            self._revoke(first, client.client_id, now)
        self._events.user_logged_in(
            authz.user_id,
            session.session_id,
            client_id=client.client_id,
            appid=app.appid,
            is_new=authz.is_new,
            now=now,
        )
        self._sessions.enforce_cap(session, now)  # AUTH_MAX_SESSIONS_PER_USER
        body = {**tokens.response(now), "user": {"id": authz.user_id, "is_new": authz.is_new}}
        return TokenGrant(body, authz.user_id)

    def _revoke(self, authz: Authorization, client_id: str, now: int) -> None:
        """A code redeemed before: end the session it started (RFC 6749 §4.1.2), refuse."""
        if authz.user_id and authz.session_id:
            self._sessions.revoke(authz.user_id, authz.session_id, now=now, reason=REASON_REPLAY)
        log_event(
            "authorization_code_replayed",
            level=logging.WARNING,
            client_id=client_id,
            user_id=authz.user_id,
        )
        raise GrantError("authorization code already used; the session it started is revoked")
