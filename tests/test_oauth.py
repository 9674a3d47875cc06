"""The OAuth 2.0 surface through chalice.test.Client: /oauth/token (refresh and client
credentials), /oauth/revoke, discovery, and routes protected with `@protected`."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from chalicelib.tokens import refresh as refresh_tokens
from tests.conftest import START, TEST_APPID, table_items
from tests.http import (
    assert_error,
    basic,
    bearer,
    form_post,
    login,
    post,
    revoke,
    token,
    verdict,
)

TOKEN_RESPONSE = {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in"}


@pytest.fixture
def registered(services):
    """A client for the client credentials grant: (client_id, secret)."""
    record, secret = services.clients.create(
        ["orders:read", "orders:write"], now=START, client_id="shop-backend"
    )
    return record.client_id, secret


# -- refresh_token grant -------------------------------------------------------------------------


def test_refresh_grant_rotates_like_auth_refresh(client):
    tokens = login(client)
    response = token(
        client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )

    assert response.status_code == 200, response.body
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.json_body
    assert set(body) == TOKEN_RESPONSE
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1800
    assert body["refresh_token"] != tokens["refresh_token"]
    assert (
        verdict(client, body["access_token"])["sid"]
        == verdict(client, tokens["access_token"])["sid"]
    )
    # and /auth/refresh accepts what /oauth/token issued: one session, two doors
    again = post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert again.status_code == 200


def test_refresh_grant_replays_within_grace_and_revokes_on_reuse(client, clock):
    tokens = login(client)
    params = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    first = token(client, params).json_body
    clock.advance(29)
    replay = token(client, params)
    assert replay.status_code == 200
    assert replay.json_body["refresh_token"] == first["refresh_token"]

    clock.advance(1)
    assert_error(token(client, params), 400, "invalid_grant")
    current = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    assert_error(token(client, current), 400, "invalid_grant")
    assert verdict(client, first["access_token"]) == {"valid": False, "reason": "revoked"}


def test_refresh_grant_accepts_the_public_client_id(client):
    tokens = login(client)
    response = token(
        client,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": TEST_APPID,
        },
    )
    assert response.status_code == 200, response.body
    # as HTTP Basic with an empty password, as some clients send a public client's id
    response = token(
        client,
        {"grant_type": "refresh_token", "refresh_token": response.json_body["refresh_token"]},
        headers=basic(TEST_APPID, ""),
    )
    assert response.status_code == 200, response.body


def test_refresh_grant_ignores_empty_parameters(client):
    tokens = login(client)
    params = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "scope": "",
        "client_id": "",
    }
    assert token(client, params).status_code == 200


@pytest.mark.parametrize(
    ("extra", "headers", "status", "error"),
    [
        ({"client_id": "someone-else"}, "none", 400, "invalid_grant"),
        ({"client_secret": "x"}, "none", 401, "invalid_client"),
        ({}, "basic-with-secret", 401, "invalid_client"),
        ({"client_id": "other"}, "basic-empty", 400, "invalid_request"),
        ({"scope": "orders:read"}, "none", 400, "invalid_scope"),
    ],
)
def test_refresh_grant_client_and_scope_errors_change_nothing(
    client, dynamodb, extra, headers, status, error
):
    tokens = login(client)
    headers = {
        "none": {},
        "basic-with-secret": basic(TEST_APPID, "secret"),
        "basic-empty": basic(TEST_APPID, ""),
    }[headers]
    before = table_items(dynamodb)
    params = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **extra}

    response = token(client, params, headers)

    assert_error(response, status, error)
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Basic realm="wxauth"'
    assert table_items(dynamodb) == before


def test_refresh_grant_bad_tokens_are_invalid_grant_and_change_nothing(client, dynamodb):
    tokens = login(client)
    before = table_items(dynamodb)
    parsed = refresh_tokens.parse(tokens["refresh_token"])
    forged = refresh_tokens.sign(  # the real session, a made-up secret and key
        refresh_tokens.mint(parsed.user_id, parsed.session_id, 0), b"\0" * 32
    )
    for candidate in ("garbage", tokens["access_token"][:500], forged):
        response = token(client, {"grant_type": "refresh_token", "refresh_token": candidate})
        assert_error(response, 400, "invalid_grant")
    assert_error(
        token(client, {"grant_type": "refresh_token", "refresh_token": "r" * 513}),
        400,
        "invalid_request",
    )
    assert_error(token(client, {"grant_type": "refresh_token"}), 400, "invalid_request")
    assert table_items(dynamodb) == before


# -- the token endpoint's input ------------------------------------------------------------------


@pytest.mark.parametrize("grant_type", ["password", "implicit", "x" * 500])
def test_unsupported_grant_type(client, grant_type):
    response = token(client, {"grant_type": grant_type, "username": "a", "password": "b"})
    assert_error(response, 400, "unsupported_grant_type")
    assert grant_type[:20] not in response.json_body["error_description"]


def test_a_registered_grant_answers_its_grant_type_and_is_listed(client, services):
    """Grants register (OAuthService.register_grant): the endpoint never branches on the type."""
    from chalicelib.oauth import TokenGrant

    seen = []

    def example_grant(form, basic, now):
        seen.append((form.get("grant_type"), basic, now))
        return TokenGrant({"access_token": "x", "token_type": "Bearer"}, None)

    services.oauth.register_grant("urn:example:grant", example_grant)
    response = token(client, {"grant_type": "urn:example:grant"})
    assert response.status_code == 200 and response.json_body["access_token"] == "x"
    assert seen == [("urn:example:grant", None, START)]
    discovery = client.http.get("/.well-known/openid-configuration").json_body
    assert discovery["grant_types_supported"][-1] == "urn:example:grant"
    assert (
        "urn:example:grant" in token(client, {"grant_type": "nope"}).json_body["error_description"]
    )


@pytest.mark.parametrize(
    ("raw", "headers"),
    [
        ("", {}),
        ("grant_type=", {}),
        ("refresh_token=abc", {}),
        ("grant_type=refresh_token&grant_type=client_credentials", {}),
        ("grant_type=" + "x" * 600, {}),
        (json.dumps({"grant_type": "client_credentials"}), {"content-type": "application/json"}),
        ("grant_type=client_credentials", {"content-type": "text/plain"}),
        ("grant_type=client_credentials", {"content-type": ""}),
        ("grant_type=client_credentials&x=" + "a" * 9000, {}),
        (b"grant_type=\xff\xfe", {}),
    ],
)
def test_malformed_token_requests_are_invalid_request(client, dynamodb, raw, headers):
    before = table_items(dynamodb)
    response = form_post(client, "/oauth/token", raw=raw, headers=headers)
    assert_error(response, 400, "invalid_request")
    assert table_items(dynamodb) == before


def test_token_endpoint_is_post_only(client):
    assert client.http.get("/oauth/token").status_code == 405


# -- client_credentials grant --------------------------------------------------------------------


def test_client_credentials_with_basic(client, registered, services):
    client_id, secret = registered
    response = token(client, {"grant_type": "client_credentials"}, basic(client_id, secret))

    assert response.status_code == 200, response.body
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json_body
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}  # no refresh token
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1800
    assert body["scope"] == "orders:read orders:write"
    header = jwt.get_unverified_header(body["access_token"])
    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": services.keys.get().active_kid}
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == client_id and claims["sub"] == f"client:{client_id}"
    assert claims["scope"] == "orders:read orders:write"
    assert "sid" not in claims
    assert claims["iss"] == "https://auth.test" and claims["aud"] == "wxauth-test"
    assert verdict(client, body["access_token"]) == {
        "valid": True,
        "sub": f"client:{client_id}",
        "sid": None,
        "exp": START + 1801,
        "expires_in": 1800,
    }


def test_client_credentials_with_form_fields(client, registered):
    client_id, secret = registered
    response = token(
        client,
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert response.status_code == 200, response.body
    # Basic plus the same client_id in the form is one method, not two
    response = token(
        client,
        {"grant_type": "client_credentials", "client_id": client_id},
        basic(client_id, secret),
    )
    assert response.status_code == 200, response.body


@pytest.mark.parametrize(
    ("scope", "granted"),
    [
        ("orders:read", "orders:read"),
        ("orders:write orders:read", "orders:write orders:read"),
        ("orders:read orders:read", "orders:read"),
        ("", "orders:read orders:write"),
    ],
)
def test_client_credentials_scope_subsets(client, registered, scope, granted):
    response = token(
        client, {"grant_type": "client_credentials", "scope": scope}, basic(*registered)
    )
    assert response.status_code == 200, response.body
    assert response.json_body["scope"] == granted
    claims = jwt.decode(response.json_body["access_token"], options={"verify_signature": False})
    assert claims["scope"] == granted


@pytest.mark.parametrize("scope", ["admin", "orders:read admin", 'bad"scope'])
def test_client_credentials_scope_beyond_the_clients_is_invalid_scope(client, registered, scope):
    response = token(
        client, {"grant_type": "client_credentials", "scope": scope}, basic(*registered)
    )
    assert_error(response, 400, "invalid_scope")


def test_client_credentials_bad_credentials_are_invalid_client(
    client, registered, services, dynamodb, log_lines
):
    client_id, secret = registered
    services.clients.create(["a"], now=START, client_id="disabled-one")
    disabled_secret = services.clients.create(["a"], now=START, client_id="disabled-two")[1]
    services.clients.set_enabled("disabled-two", False)
    before = table_items(dynamodb)
    cases = [
        ({}, basic(client_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"))),
        ({}, basic("nobody", secret)),
        ({}, basic("disabled-two", disabled_secret)),
        ({"client_id": client_id, "client_secret": "wrong"}, {}),
        ({"client_id": "nobody", "client_secret": secret}, {}),
        ({}, {}),
        ({"client_id": client_id}, {}),
        ({}, {"authorization": "Bearer abc"}),
    ]
    for extra, headers in cases:
        response = token(client, {"grant_type": "client_credentials", **extra}, headers)
        assert_error(response, 401, "invalid_client")
        assert response.headers["WWW-Authenticate"] == 'Basic realm="wxauth"'
        assert secret not in response.body.decode()
    assert table_items(dynamodb) == before
    assert not [line for line in log_lines if secret in line or disabled_secret in line]


@pytest.mark.parametrize(
    ("extra", "headers"),
    [
        ({"client_secret": "s"}, "basic"),
        ({"client_id": "other-client"}, "basic"),
        ({"client_secret": "s"}, {}),
    ],
)
def test_client_credentials_ambiguous_authentication_is_invalid_request(
    client, registered, extra, headers
):
    headers = basic(*registered) if headers == "basic" else headers
    response = token(client, {"grant_type": "client_credentials", **extra}, headers)
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("grant_type", ["client_credentials", "refresh_token"])
@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic é漢",  # base64.b64decode's bare ValueError: was a 500
        "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
    ],
    ids=["bad-base64", "no-colon", "non-ascii", "not-utf8"],
)
def test_unreadable_basic_credentials_are_invalid_client(
    client, dynamodb, log_lines, grant_type, authorization
):
    """RFC 6749 §5.2: a failed client authentication in Authorization is 401 invalid_client
    with the Basic challenge; the header is not echoed."""
    before = table_items(dynamodb)
    response = token(client, {"grant_type": grant_type}, {"authorization": authorization})
    assert_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"] == 'Basic realm="wxauth"'
    assert authorization.split(" ", 1)[1] not in response.body.decode()
    assert table_items(dynamodb) == before
    assert not [line for line in log_lines if '"status":500' in line]


def test_client_credentials_token_on_protected_routes(client, registered):
    access = token(client, {"grant_type": "client_credentials"}, basic(*registered)).json_body
    hello = client.http.get("/example/hello", headers=bearer(access["access_token"]))
    assert hello.status_code == 200
    assert hello.json_body == {
        "hello": "client:shop-backend",
        "client_id": "shop-backend",
        "session_id": None,
        "scope": "orders:read orders:write",
    }
    # /me and logout are for users: a client has no profile and no sessions
    assert_error(
        client.http.get("/me", headers=bearer(access["access_token"])), 403, "insufficient_scope"
    )
    assert_error(
        client.http.post("/auth/logout", headers=bearer(access["access_token"])),
        403,
        "insufficient_scope",
    )
    phone = client.http.post(
        "/auth/phone",
        headers={**bearer(access["access_token"]), "content-type": "application/json"},
        body=json.dumps({"code": "phone.alice.13800138000"}),
    )
    assert_error(phone, 403, "insufficient_scope")


def test_a_client_whose_id_is_a_user_id_cannot_act_as_that_user(client, services, monkeypatch):
    """A client stored with a user's id (as `client create --client-id <user id>` allowed
    before): its tokens' `sub` is `client:<id>`, and user routes refuse them."""
    from dataclasses import replace

    from chalicelib import clients as clients_module

    user = login(client)
    user_id = user["user"]["id"]
    with monkeypatch.context() as patched:  # the check of the previous release
        patched.setattr(clients_module, "validate_client_id", lambda client_id: client_id)
        _, secret = services.clients.create(["orders:read"], now=START, client_id=user_id)
    access = token(client, {"grant_type": "client_credentials"}, basic(user_id, secret)).json_body
    claims = jwt.decode(access["access_token"], options={"verify_signature": False})
    assert claims["sub"] == f"client:{user_id}" != user_id
    before = [replace(s) for s in services.store.sessions.of_user(user_id)]

    me = client.http.get("/me", headers=bearer(access["access_token"]))
    assert_error(me, 403, "insufficient_scope")
    assert user_id not in me.body.decode()
    for body in (None, {"all": True}):
        response = client.http.post(
            "/auth/logout",
            headers={**bearer(access["access_token"]), "content-type": "application/json"},
            body=json.dumps(body) if body else None,
        )
        assert_error(response, 403, "insufficient_scope")
    assert services.store.sessions.of_user(user_id) == before
    assert verdict(client, user["access_token"])["valid"] is True


def test_disabling_a_client_stops_new_tokens(client, registered, services):
    assert (
        token(client, {"grant_type": "client_credentials"}, basic(*registered)).status_code == 200
    )
    services.clients.set_enabled(registered[0], False)
    response = token(client, {"grant_type": "client_credentials"}, basic(*registered))
    assert_error(response, 401, "invalid_client")


# -- /oauth/revoke -------------------------------------------------------------------------------


def test_revoking_a_refresh_token_ends_its_session(client):
    tokens = login(client)
    other = login(client, "alice.2")

    response = revoke(client, {"token": tokens["refresh_token"]})

    assert response.status_code == 200 and response.body == b""
    assert response.headers["Cache-Control"] == "no-store"
    assert verdict(client, tokens["access_token"]) == {"valid": False, "reason": "revoked"}
    assert_error(
        token(client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}),
        400,
        "invalid_grant",
    )
    assert_error(
        client.http.get("/me", headers=bearer(tokens["access_token"])), 401, "invalid_token"
    )
    assert verdict(client, other["access_token"])["valid"] is True  # other sessions live on
    assert revoke(client, {"token": tokens["refresh_token"]}).status_code == 200  # idempotent


def test_revoking_the_previous_refresh_token_ends_the_session(client, clock):
    tokens = login(client)
    current = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]}).json_body
    clock.advance(60)  # past the grace window

    response = revoke(
        client, {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    )

    assert response.status_code == 200
    assert verdict(client, current["access_token"]) == {"valid": False, "reason": "revoked"}


def test_revoking_an_access_token_ends_its_session(client):
    tokens = login(client)
    response = revoke(client, {"token": tokens["access_token"], "token_type_hint": "access_token"})
    assert response.status_code == 200
    assert verdict(client, tokens["access_token"]) == {"valid": False, "reason": "revoked"}
    assert_error(
        post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]}),
        400,
        "invalid_grant",
    )


def test_revoke_of_tokens_it_cannot_or_need_not_act_on_is_200_and_changes_nothing(
    client, dynamodb, clock, registered
):
    login(client)
    client_token = token(client, {"grant_type": "client_credentials"}, basic(*registered))
    expired = login(client, "bob.1")
    clock.advance(1801)  # every access token above has expired
    fresh = login(client, "carol.1")
    parsed = refresh_tokens.parse(fresh["refresh_token"])
    user_id, session_id = parsed.user_id, parsed.session_id
    key = b"\x07" * 32
    forged = refresh_tokens.sign(refresh_tokens.mint(user_id, session_id, 0), key)  # made up
    old_forged = refresh_tokens.sign(refresh_tokens.mint(user_id, session_id, 0), key)
    unknown = refresh_tokens.sign(refresh_tokens.mint(user_id, refresh_tokens.new_id(), 0), key)
    before = table_items(dynamodb)

    for candidate, hint in [
        (forged, "refresh_token"),
        (old_forged, None),
        (unknown, None),
        ("garbage", None),
        ("a.b.c", "access_token"),
        (client_token.json_body["access_token"], None),  # stateless: lives until exp
        (expired["access_token"], "access_token"),
        (fresh["access_token"][:-4] + "AAAA", None),
    ]:
        params = {"token": candidate, **({"token_type_hint": hint} if hint else {})}
        response = revoke(client, params)
        assert response.status_code == 200 and response.body == b""

    assert table_items(dynamodb) == before
    assert verdict(client, fresh["access_token"])["valid"] is True


def test_revoke_accepts_any_token_type_hint(client):
    tokens = login(client)
    assert (
        revoke(client, {"token": tokens["refresh_token"], "token_type_hint": "foo"}).status_code
        == 200
    )
    assert verdict(client, tokens["access_token"])["reason"] == "revoked"


@pytest.mark.parametrize(
    ("raw", "headers"),
    [
        ("", {}),
        ("token=", {}),
        ("token_type_hint=refresh_token", {}),
        ("token=a&token=b", {}),
        (json.dumps({"token": "abc"}), {"content-type": "application/json"}),
        ("token=abc", {"content-type": "text/plain"}),
        ("token=" + "a" * 8193, {}),
    ],
)
def test_malformed_revoke_requests_are_invalid_request(client, dynamodb, raw, headers):
    login(client)
    before = table_items(dynamodb)
    assert_error(
        form_post(client, "/oauth/revoke", raw=raw, headers=headers), 400, "invalid_request"
    )
    assert table_items(dynamodb) == before


# -- discovery -----------------------------------------------------------------------------------


def test_openid_configuration_serves_api_gateway_jwt_authorizers(client):
    response = client.http.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    body = response.json_body
    assert body["issuer"] == "https://auth.test"
    assert body["jwks_uri"] == "https://auth.test/.well-known/jwks.json"
    assert body["token_endpoint"] == "https://auth.test/oauth/token"
    assert body["revocation_endpoint"] == "https://auth.test/oauth/revoke"
    assert body["grant_types_supported"] == [
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",  # RFC 8628 (issue 24, item 3)
        "authorization_code",  # issue 24, item 2
    ]
    assert body["device_authorization_endpoint"] == "https://auth.test/oauth/device_authorization"
    assert set(body["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert body["id_token_signing_alg_values_supported"] == ["RS256"]
    assert body["authorization_endpoint"] == "https://auth.test/oauth/authorize"
    assert body["response_types_supported"] == ["code"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["authorization_response_iss_parameter_supported"] is True
    assert {"sub", "aud", "scope", "client_id"} <= set(body["claims_supported"])
    # the issuer of the document is the `iss` of the tokens, character for character
    claims = jwt.decode(login(client)["access_token"], options={"verify_signature": False})
    assert claims["iss"] == body["issuer"]


def test_jwks_keys_are_rsa_for_rs256(client):
    keys = client.http.get("/.well-known/jwks.json").json_body["keys"]
    assert keys and all(
        k["kty"] == "RSA" and k["alg"] == "RS256" and k["use"] == "sig" for k in keys
    )


# -- @protected ----------------------------------------------------------------------------------


def test_protected_route_gives_the_view_the_verified_claims(client):
    tokens = login(client)
    response = client.http.get("/example/hello", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    body = response.json_body
    assert body["hello"] == tokens["user"]["id"]
    assert body["client_id"] == TEST_APPID
    assert body["session_id"] == verdict(client, tokens["access_token"])["sid"]
    assert body["scope"] is None


def test_protected_route_makes_the_checks_of_verify(client, clock):
    tokens = login(client)
    revoked = login(client, "bob.1")
    revoke(client, {"token": revoked["refresh_token"]})
    for headers in ({}, bearer("garbage"), bearer(revoked["access_token"])):
        response = client.http.get("/example/hello", headers=headers)
        assert_error(response, 401, "invalid_token")
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="wxauth"')
    clock.advance(1801)
    assert_error(
        client.http.get("/example/hello", headers=bearer(tokens["access_token"])),
        401,
        "invalid_token",
    )


@pytest.fixture(scope="module")
def scoped_route():
    """A route needing a scope, registered on the real app for these tests only (removed after
    them: tests/test_openapi.py holds the app's routes to its OpenAPI description)."""
    import app

    path = "/_test/scoped"
    if path not in app.app.routes:

        @app.protected(path, scope="orders:write")
        def scoped(call, claims):
            return {"scope": claims.scope}

    yield path
    app.app.routes.pop(path, None)


def test_protected_route_with_a_scope(client, services, scoped_route):
    services.clients.create(["orders:read"], now=START, client_id="reader")
    reader_secret = services.clients.create(["orders:read"], now=START, client_id="reader-2")[1]
    writer_secret = services.clients.create(["orders:write"], now=START, client_id="writer")[1]
    writer = token(client, {"grant_type": "client_credentials"}, basic("writer", writer_secret))
    reader = token(client, {"grant_type": "client_credentials"}, basic("reader-2", reader_secret))
    user = login(client)

    ok = client.http.get(scoped_route, headers=bearer(writer.json_body["access_token"]))
    assert ok.status_code == 200 and ok.json_body == {"scope": "orders:write"}
    for access_token in (reader.json_body["access_token"], user["access_token"]):
        response = client.http.get(scoped_route, headers=bearer(access_token))
        assert_error(response, 403, "insufficient_scope")
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert_error(client.http.get(scoped_route), 401, "invalid_token")


@pytest.mark.parametrize("client_id", ["shop-b", "客户端", "\U000ec575_À¶lí", "é"])
def test_a_refresh_grant_naming_another_client_is_invalid_grant_never_a_500(client, client_id):
    """Found by schemathesis: a non-ASCII client_id made the constant-time comparison raise
    (hmac.compare_digest takes ASCII-only str) and the grant answer 500."""
    from urllib.parse import urlencode

    tokens = login(client)
    body = urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client_id,
        }
    )
    response = client.http.post(
        "/oauth/token",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=body,
    )
    assert_error(response, 400, "invalid_grant")
