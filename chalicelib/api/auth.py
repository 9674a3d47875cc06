"""Routes for mini-programs: log in with a WeChat code, refresh, verify, log out."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.edge import Call, Routes, authenticate, no_content, token_response
from chalicelib.errors import RequestError, TokenError
from chalicelib.http_input import access_token_from_header, bool_field, string_field
from chalicelib.tokens.access import MAX_TOKEN_LENGTH as MAX_ACCESS_TOKEN_LENGTH
from chalicelib.tokens.access import seconds_left
from chalicelib.tokens.refresh import MAX_TOKEN_LENGTH as MAX_REFRESH_TOKEN_LENGTH

routes = Routes(Blueprint(__name__))


@routes.endpoint("/auth/login", ["POST"])
def login(call: Call) -> Response:
    # at the first login: see runtime.Services
    from chalicelib.devices import device_info
    from chalicelib.identity.apps import MAX_APPID_LENGTH
    from chalicelib.login import MAX_CODE_LENGTH, MAX_NONCE_LENGTH

    # API Gateway's source IP, or behind CloudFront the viewer's (chalicelib/limits.py)
    ip = call.services.client_address.of(call.request.context, call.request.headers)
    call.services.before_login(ip, call.now)
    body = call.json()
    code = string_field(body, "code", max_length=MAX_CODE_LENGTH)
    appid = None  # omitted (or null): the deployment's one enabled app
    if body.get("appid") is not None:
        appid = string_field(body, "appid", max_length=MAX_APPID_LENGTH)
    nonce = None  # omitted (or null): a replay of the code is answered only briefly, if at all
    if body.get("login_nonce") is not None:
        nonce = string_field(body, "login_nonce", max_length=MAX_NONCE_LENGTH)
    phone_code = None  # omitted (or null): no number bound (issue 24, item 1: one-tap login)
    if body.get("phone_code") is not None:
        phone_code = string_field(body, "phone_code", max_length=MAX_CODE_LENGTH)
    # The login's optional `device`, its User-Agent and API Gateway's source IP.
    device = device_info(body, user_agent=call.header("user-agent"), source_ip=ip)
    result = call.services.login.login(
        code, call.now, appid, device=device, nonce=nonce, phone_code=phone_code
    )
    call.user_id = result.tokens.user_id
    return token_response(result.response(call.now))


@routes.endpoint("/auth/refresh", ["POST"])
def refresh(call: Call) -> Response:
    token = string_field(call.json(), "refresh_token", max_length=MAX_REFRESH_TOKEN_LENGTH)
    issued = call.services.sessions.refresh(token, call.now)
    call.user_id = issued.user_id
    return token_response(issued.response(call.now))


@routes.endpoint("/auth/verify", ["POST"])
def verify(call: Call) -> dict[str, Any]:
    body = call.json(required=False)
    if "token" in body:
        token = string_field(body, "token", max_length=MAX_ACCESS_TOKEN_LENGTH)
    else:
        token = access_token_from_header(call.header("authorization"))
    if token is None:
        raise RequestError('send the access token as {"token": ...} or in Authorization')
    svc = call.services
    try:
        claims = svc.access_tokens.check(token, call.now)
        svc.sessions.require_live(claims, call.now)
    except TokenError as e:
        return {"valid": False, "reason": e.reason}
    call.user_id = claims.subject
    return {
        "valid": True,
        "sub": claims.subject,
        "sid": claims.session_id,
        "exp": claims.expires_at,
        "expires_in": seconds_left(claims.expires_at, call.now),
    }


@routes.endpoint("/auth/logout", ["POST"])
def logout(call: Call) -> Response:
    claims = authenticate(call, users_only=True, deletion_pending=True)
    assert claims.user_id is not None and claims.session_id is not None
    body = call.json(required=False)
    everywhere = bool_field(body, "all", default=False)
    others = bool_field(body, "others", default=False)
    if everywhere and others:
        raise RequestError('send {"all": true} or {"others": true}, not both')
    sessions = call.services.sessions
    if others:
        sessions.revoke_others(claims.user_id, claims.session_id, now=call.now)
    elif everywhere:
        sessions.revoke_all(claims.user_id, now=call.now)
    else:
        sessions.revoke(claims.user_id, claims.session_id, now=call.now)
    return no_content()
