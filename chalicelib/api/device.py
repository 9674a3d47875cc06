"""Routes of the device login (issue 24, item 3; RFC 8628, chalicelib/device/): scan-to-login on a
PC, TV or kiosk through the mini-program.

- the device's: `POST /oauth/device_authorization` (form), `GET /oauth/device?user_code=` (the
  mini-program code to show, an image); it then polls `POST /oauth/token` with the device code
  grant (registered on OAuthService);
- the mini-program's, with a user's access token: `GET /auth/device/{user_code}`,
  `POST /auth/device/confirm`, `POST /auth/device/deny` (`{"user_code": ...}`).
"""

from __future__ import annotations

import re

from chalice import Blueprint, Response

from chalicelib.api.edge import NO_STORE, Call, Routes, token_response
from chalicelib.errors import RequestError
from chalicelib.http_input import basic_credentials, string_field
from chalicelib.tokens.access import AccessClaims

routes = Routes(Blueprint(__name__))

MAX_USER_CODE = 32  # chalicelib/device/codes.py reads 8 letters among dashes and spaces


@routes.endpoint("/oauth/device_authorization", ["POST"])
def device_authorization(call: Call) -> Response:
    """RFC 8628 §3.1: a new device login (its answer carries the device code: never cached)."""
    form = call.form()
    basic = basic_credentials(call.header("authorization"))
    # API Gateway's source IP, or behind CloudFront the viewer's (chalicelib/limits.py)
    ip = call.services.client_address.of(call.request.context, call.request.headers)
    body = call.services.device.grant.authorize(
        form, basic, source_ip=ip, user_agent=call.header("user-agent"), now=call.now
    )
    return token_response(body)


@routes.endpoint("/oauth/device", ["GET"])
def device_code_image(call: Call) -> Response:
    """The mini-program code of a user code (`verification_uri_complete`), PNG or JPEG as WeChat
    made it, cacheable by the device until the login expires."""
    user_code = (call.request.query_params or {}).get("user_code")
    if user_code is None:
        raise RequestError(
            "user_code is required: this URI serves the mini-program code of a device login"
            " (verification_uri_complete)"
        )
    accept = call.header("accept")
    if not _accepts_image(accept):
        # Chalice refuses a binary answer unless Accept names a binary type or */*: said here,
        # in the contract's shape (an <img>, curl and requests all send */*).
        raise RequestError("this answer is an image: send Accept: image/png, image/jpeg or */*")
    code, until = call.services.device.images.image(user_code, call.now)
    return Response(
        body=code.image,
        status_code=200,
        headers={
            "Content-Type": code.content_type,
            "Cache-Control": f"private, max-age={max(0, until - call.now)}",
        },
    )


def _accepts_image(accept: str | None) -> bool:
    """Chalice's rule for a binary answer: Accept has */*, or names a binary media type."""
    if accept is None:
        return False
    ranges = {part.strip().lower() for part in re.split("[,;]", accept)}
    return "*/*" in ranges or bool(ranges & {"image/png", "image/jpeg"})


@routes.protected("/auth/device/{user_code}", ["GET"], users_only=True)
def device_login(call: Call, claims: AccessClaims) -> Response:
    """What the mini-program shows before the user confirms: who asks, from where, when."""
    assert claims.user_id is not None
    user_code = (call.request.uri_params or {}).get("user_code", "")
    body = call.services.device.confirmations.show(user_code, claims.user_id, call.now)
    return Response(body=body, status_code=200, headers=dict(NO_STORE))


@routes.protected("/auth/device/confirm", ["POST"], users_only=True)
def confirm_device_login(call: Call, claims: AccessClaims) -> Response:
    """The user lets the device in: its session will be this user's."""
    assert claims.user_id is not None
    user_code = string_field(call.json(), "user_code", max_length=MAX_USER_CODE)
    body = call.services.device.confirmations.confirm(user_code, claims.user_id, call.now)
    return Response(body=body, status_code=200, headers=dict(NO_STORE))


@routes.protected("/auth/device/deny", ["POST"], users_only=True)
def deny_device_login(call: Call, claims: AccessClaims) -> Response:
    """The user turns the device away: it gets access_denied."""
    assert claims.user_id is not None
    user_code = string_field(call.json(), "user_code", max_length=MAX_USER_CODE)
    body = call.services.device.confirmations.deny(user_code, claims.user_id, call.now)
    return Response(body=body, status_code=200, headers=dict(NO_STORE))
