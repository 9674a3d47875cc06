"""Routes for backends: OAuth 2.0 (`/oauth/token`, `/oauth/introspect`, `/oauth/revoke`), the
signing keys and discovery (`/.well-known/*`), and the OpenAPI description."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.edge import NO_STORE, Call, Routes, token_response
from chalicelib.http_input import basic_credentials
from chalicelib.signing_keys import JWKS_MAX_AGE

routes = Routes(Blueprint(__name__))


@routes.endpoint("/oauth/token", ["POST"])
def oauth_token(call: Call) -> Response:
    form = call.form()
    basic = basic_credentials(call.header("authorization"))
    grant = call.services.oauth.token(form, basic, call.now)
    call.user_id = grant.user_id
    return token_response(grant.body)


@routes.endpoint("/oauth/introspect", ["POST"])
def oauth_introspect(call: Call) -> Response:
    """RFC 7662: 200 with `active` (and the token's claims when true), never cached."""
    form = call.form()
    basic = basic_credentials(call.header("authorization"))
    return token_response(call.services.oauth.introspect(form, basic, call.now))


@routes.endpoint("/oauth/revoke", ["POST"])
def oauth_revoke(call: Call) -> Response:
    call.user_id = call.services.oauth.revoke(call.form(), call.now)
    return Response(body="", status_code=200, headers={"Content-Type": "text/plain", **NO_STORE})


@routes.endpoint("/.well-known/jwks.json", ["GET"])
def jwks(call: Call) -> Response:
    return Response(
        body=call.services.keys.get().jwks(),
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )


@routes.endpoint("/.well-known/openid-configuration", ["GET"])
def openid_configuration(call: Call) -> Response:
    from chalicelib.discovery import openid_configuration

    body = openid_configuration(call.services.settings, call.services.oauth.grant_types)
    return Response(body=body, headers={"Cache-Control": "public, max-age=300"})


@routes.endpoint("/openapi.json", ["GET"])
def openapi_description(call: Call) -> Response:
    """The OpenAPI 3.1 description (chalicelib/openapi.json), its server the issuer."""
    from chalicelib.openapi import document

    return Response(
        body=document(call.services.settings.issuer),
        headers={"Cache-Control": "public, max-age=300"},
    )
