"""Routes for other services of the deployment: the app's WeChat server access token, and a
user's openid in each app."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.edge import NO_STORE, Call, Routes, token_response
from chalicelib.tokens.access import AccessClaims

routes = Routes(Blueprint(__name__))

WECHAT_ACCESS_TOKEN_SCOPE = "wechat:access_token"  # noqa: S105 - a scope name


@routes.protected("/wechat/access-token", ["POST"], scope=WECHAT_ACCESS_TOKEN_SCOPE)
def wechat_access_token(call: Call, claims: AccessClaims) -> Response:
    """The app's WeChat server access_token, for other backends (client credentials holding
    `wechat:access_token`), so that none of them calls cgi-bin/token and invalidates ours."""
    brokered = call.services.broker.current()
    return token_response(
        {"access_token": brokered.access_token, "expires_in": brokered.expires_in(call.now)}
    )


@routes.protected("/users/{user_id}/identities", ["GET"], scope="users:openid")
def user_identities(call: Call, claims: AccessClaims) -> Response:
    """A user's openid per app, for WeChat server calls while the user is offline
    (chalicelib/identity/directory.py): client credentials holding `users:openid`."""
    user_id = (call.request.uri_params or {}).get("user_id", "")
    return Response(
        body=call.services.directory.identities(user_id), status_code=200, headers=dict(NO_STORE)
    )
