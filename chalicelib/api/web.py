"""Routes for browsers (issue 24, item 2): a website's sign-in with WeChat.

`GET /oauth/authorize` sends the browser to WeChat's QR-code page (302, with the sign-in's
cookie), or back to the relying party with an `error`; `GET /oauth/wechat/callback` is where
WeChat sends it back, and sends it on to the relying party with a `code` or an `error` (302).
What cannot be sent to a relying party (no client, an unregistered redirect URI, a state that
is no live sign-in of this browser's) is answered to the browser as the contract's JSON error.
Every answer to the relying party carries `iss` (RFC 9207: which server answered).
The service is chalicelib/weblogin/.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib import logs
from chalicelib.api.edge import NO_STORE, Call, Routes, error_response
from chalicelib.errors import ConfigurationError
from chalicelib.http_input import cookie

if TYPE_CHECKING:
    from chalicelib.weblogin.authorize import ToRelyingParty

routes = Routes(Blueprint(__name__))

# RFC 6749 §4.1.2.1: the only `error` values of an authorization response; any other code the
# error table gives is said with the nearest of these.
AUTHORIZATION_ERRORS = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    }
)
NEAREST = {"invalid_grant": "access_denied", "slow_down": "temporarily_unavailable"}
# RFC 6749 §4.1.2.1: error_description is %x20-21 / %x23-5B / %x5D-7E.
_DESCRIPTION_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}


def _query(call: Call) -> dict[str, list[str]]:
    params = call.request.query_params
    return {} if params is None else {name: params.getlist(name) for name in params}


def _cookie(name: str, value: str, max_age: int) -> str:
    """A sign-in's cookie: this browser's only (`__Host-`: Secure, Path=/, no Domain), never
    read by scripts, sent on WeChat's top-level redirect back (Lax), gone with the sign-in."""
    return f"{name}={value}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Lax"


def _redirect(location: str, set_cookie: str | None = None) -> Response:
    headers = {"Location": location, **NO_STORE}
    if set_cookie is not None:
        headers["Set-Cookie"] = set_cookie
    return Response(body="", status_code=302, headers=headers)


def _to_relying_party(back: ToRelyingParty, call: Call) -> Response:
    """The authorization response (RFC 6749 §4.1.2): `code` or `error`, `state`, and `iss`."""
    from chalicelib.weblogin.params import with_query

    issuer = call.services.settings.issuer
    if back.error is None:
        answer = {"code": back.code, "state": back.state, "iss": issuer}
        return _redirect(with_query(back.redirect_uri, answer))
    _, code = error_response(back.error)
    code = NEAREST.get(code, code)
    if code not in AUTHORIZATION_ERRORS or isinstance(back.error, ConfigurationError):
        code, description = "server_error", "the service is misconfigured; see its logs"
        logs.log_event(
            "web_login_failed",
            level=logging.ERROR,
            error_type=type(back.error).__name__,
            detail=str(back.error) if isinstance(back.error, ConfigurationError) else None,
        )
    else:
        description = "".join(c for c in str(back.error) if c in _DESCRIPTION_CHARS)
    answer = {"error": code, "error_description": description, "state": back.state, "iss": issuer}
    return _redirect(with_query(back.redirect_uri, answer))


@routes.endpoint("/oauth/authorize", ["GET"])
def authorize(call: Call) -> Response:
    """RFC 6749 §4.1.1 with PKCE (RFC 7636, S256): on to WeChat, or back with an error."""
    from chalicelib.weblogin.authorize import ToWeChat

    # a sign-in costs a write: the per-IP login limit, if set (AUTH_LIMIT_LOGIN_PER_IP)
    ip = call.services.client_address.of(call.request.context, call.request.headers)
    call.services.before_login(ip, call.now)
    started = call.services.web_login.authorize(_query(call), call.now)
    if isinstance(started, ToWeChat):
        set_cookie = _cookie(started.cookie_name, started.cookie_value, started.max_age)
        return _redirect(started.location, set_cookie)
    return _to_relying_party(started, call)


@routes.endpoint("/oauth/wechat/callback", ["GET"])
def wechat_callback(call: Call) -> Response:
    """WeChat's way back (`code`, `state`; no `code`: the user refused): on to the relying
    party with an authorization code, or an error. The sign-in's cookie is cleared."""
    from chalicelib.devices import clean_source_ip, clean_user_agent

    web = call.services.web_login
    query = _query(call)
    name = web.cookie_name(query)
    held = cookie(call.header("cookie"), name) if name else None
    ip = call.services.client_address.of(call.request.context, call.request.headers)
    back = web.callback(
        query,
        held,
        call.now,
        user_agent=clean_user_agent(call.header("user-agent")),
        source_ip=clean_source_ip(ip),
    )
    response = _to_relying_party(back, call)
    if name is not None:
        response.headers["Set-Cookie"] = _cookie(name, "", 0)
    return response
