"""Routes for the signed-in user's own account: `/me` (and its profile), the phone number, the
sessions, the session's encrypted WeChat data."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.edge import NO_STORE, Call, Routes, no_content
from chalicelib.http_input import string_field
from chalicelib.tokens.access import AccessClaims

routes = Routes(Blueprint(__name__))


@routes.protected("/me", users_only=True)
def me(call: Call, claims: AccessClaims) -> dict[str, Any]:
    assert claims.user_id is not None
    return call.services.account.me(claims.user_id)


@routes.protected("/me", ["PATCH", "POST"], users_only=True)
def update_me(call: Call, claims: AccessClaims) -> Response:
    """The user's nickname and avatar URL (chalicelib/profile.py); answered as GET /me.
    POST too, the same: wx.request has no PATCH (its methods are OPTIONS, GET, HEAD, POST, PUT,
    DELETE, TRACE, CONNECT), so a mini-program sends POST /me."""
    assert claims.user_id is not None
    body = call.services.account.update_profile(
        claims.user_id, call.json(), client_id=claims.client_id, now=call.now
    )
    return Response(body=body, status_code=200, headers=dict(NO_STORE))


@routes.protected("/auth/decrypt", ["POST"], users_only=True)
def decrypt(call: Call, claims: AccessClaims) -> Response:
    """WeChat's encryptedData, decrypted with the session's sealed session_key
    (chalicelib/open_data.py): no request more than the token check's GetItem."""
    assert call.session is not None
    data = call.services.open_data.decrypt(call.session, call.json(), call.now)
    return Response(body=data, status_code=200, headers=dict(NO_STORE))


@routes.protected("/auth/phone", ["POST"], users_only=True)
def bind_phone(call: Call, claims: AccessClaims) -> Response:
    from chalicelib.account import phone_json
    from chalicelib.login import MAX_CODE_LENGTH

    assert claims.user_id is not None
    code = string_field(call.json(), "code", max_length=MAX_CODE_LENGTH)
    phone = call.services.phone.bind_user(
        claims.user_id, code, call.now, client_id=claims.client_id  # the session's app
    )
    return Response(body={"phone": phone_json(phone)}, status_code=200, headers=dict(NO_STORE))


@routes.protected("/auth/sessions", ["GET"], users_only=True)
def list_sessions(call: Call, claims: AccessClaims) -> Response:
    """A page of the caller's live sessions, this one marked `current`, and the cursor of the
    next: a GetItem and 1 to 3 Queries (chalicelib/sessions.py, `live_page`)."""
    from chalicelib.devices import cursor_of, page_request, session_json

    assert claims.user_id is not None
    limit, after = page_request(call.request.query_params)
    sessions, after = call.services.sessions.live_page(
        claims.user_id, call.now, limit=limit, after=after
    )
    body = {
        "sessions": [session_json(s, current_session_id=claims.session_id) for s in sessions],
        "next_cursor": cursor_of(after),
    }
    return Response(body=body, status_code=200, headers=dict(NO_STORE))


@routes.protected("/auth/sessions/{sid}", ["DELETE"], users_only=True)
def end_session(call: Call, claims: AccessClaims) -> Response:
    """End one of the caller's own live sessions (this one too): a GetItem and an UpdateItem."""
    assert claims.user_id is not None
    session_id = (call.request.uri_params or {}).get("sid", "")
    call.services.sessions.end(claims.user_id, session_id, now=call.now)
    return no_content()


@routes.protected("/example/hello")
def example_hello(call: Call, claims: AccessClaims) -> dict[str, Any]:
    """An example of a protected route: one decorator, and the view has the verified claims."""
    return {
        "hello": claims.subject,
        "client_id": claims.client_id,
        "session_id": claims.session_id,
        "scope": claims.scope,
    }
