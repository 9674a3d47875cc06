"""POST /oauth/introspect (RFC 7662) through chalice.test.Client: who may ask (an OAuth client
holding the scope `introspect`, by HTTP Basic or client_secret_post), and what it is told: the
claims of an access token that is good now, else `{"active": false}` and nothing more, for an
expired token, a revoked or ended session, a refresh token and anything malformed alike."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.introspection import INTROSPECT_SCOPE
from chalicelib.tokens import claims as custom_claims
from tests.api.test_internal import client_token
from tests.conftest import START, TEST_APPID, table_items
from tests.http import assert_error, basic, bearer, form_post, login, post

ROUTE = "/oauth/introspect"
INACTIVE = {"active": False}


@pytest.fixture
def gateway(services) -> tuple[str, str]:
    """An OAuth client that may introspect (client_id, secret)."""
    record, secret = services.clients.create([INTROSPECT_SCOPE], now=START, client_id="gateway")
    return record.client_id, secret


def introspect(client, token, credentials, **extra):
    return form_post(client, ROUTE, {"token": token, **extra}, basic(*credentials))


def answer(client, token, credentials, **extra) -> dict:
    response = introspect(client, token, credentials, **extra)
    assert response.status_code == 200, response.body
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    return response.json_body


# -- active tokens -------------------------------------------------------------------------------


def test_a_users_live_token_is_active_with_its_claims(client, gateway) -> None:
    tokens = login(client, "alice.1")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})

    body = answer(client, tokens["access_token"], gateway)

    assert body == {"active": True, "token_type": "Bearer", **claims}
    assert body["sub"] == tokens["user"]["id"]
    assert body["client_id"] == TEST_APPID
    assert body["aud"] == "wxauth-test" and body["iss"] == "https://auth.test"
    assert {"sid", "exp", "iat", "jti"} <= set(body)
    assert "scope" not in body


def test_client_secret_post_authenticates_too(client, gateway) -> None:
    token = login(client, "alice.1")["access_token"]
    client_id, secret = gateway
    response = form_post(
        client, ROUTE, {"token": token, "client_id": client_id, "client_secret": secret}
    )
    assert response.status_code == 200
    assert response.json_body["active"] is True


def test_custom_claims_come_back_in_ext(client, services, gateway) -> None:
    user = login(client, "alice.1")["user"]["id"]
    custom_claims.set_claims(services.store, user, {"roles": ["editor"]}, now=START)
    token = login(client, "alice.2")["access_token"]

    assert answer(client, token, gateway)["ext"] == {"roles": ["editor"]}


def test_a_client_credentials_token_is_active_with_its_scope(client, services, gateway) -> None:
    token = client_token(client, services, ["orders:read"], client_id="orders-backend")

    body = answer(client, token, gateway)

    assert body["active"] is True
    assert body["sub"] == "client:orders-backend" and body["client_id"] == "orders-backend"
    assert body["scope"] == "orders:read"
    assert "sid" not in body


def test_the_hint_changes_nothing(client, gateway) -> None:
    token = login(client, "alice.1")["access_token"]
    for hint in ("access_token", "refresh_token", "something_else"):
        assert answer(client, token, gateway, token_type_hint=hint)["active"] is True


# -- inactive tokens: {"active": false} and nothing else ----------------------------------------


def test_an_expired_token_is_inactive(client, clock, gateway) -> None:
    token = login(client, "alice.1")["access_token"]
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    clock.advance(exp - clock() - 1)
    assert answer(client, token, gateway)["active"] is True
    clock.advance(1)
    assert answer(client, token, gateway) == INACTIVE


def test_a_token_of_a_logged_out_session_is_inactive(client, gateway) -> None:
    token = login(client, "alice.1")["access_token"]
    assert post(client, "/auth/logout", headers=bearer(token)).status_code == 204
    assert answer(client, token, gateway) == INACTIVE


def test_a_token_of_a_session_ended_from_elsewhere_is_inactive(client, gateway) -> None:
    first = login(client, "alice.1")
    second = login(client, "alice.2")
    sid = jwt.decode(first["access_token"], options={"verify_signature": False})["sid"]
    ended = client.http.delete(f"/auth/sessions/{sid}", headers=bearer(second["access_token"]))
    assert ended.status_code == 204
    assert answer(client, first["access_token"], gateway) == INACTIVE
    assert answer(client, second["access_token"], gateway)["active"] is True


def test_refresh_tokens_are_inactive_even_the_current_one(client, gateway) -> None:
    """Only the mini-program holds them; a resource server never receives one."""
    refresh_token = login(client, "alice.1")["refresh_token"]
    assert answer(client, refresh_token, gateway) == INACTIVE
    hinted = answer(client, refresh_token, gateway, token_type_hint="refresh_token")
    assert hinted == INACTIVE


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "a.b.c", "x" * 8100, "eyJhbGciOiJub25lIn0.e30.", "\u00e9\u00e8", " "],
    ids=["garbage", "three-dots", "huge", "alg-none", "non-ascii", "space"],
)
def test_anything_malformed_is_inactive(client, gateway, token) -> None:
    assert answer(client, token, gateway) == INACTIVE


def test_a_forgery_under_the_servers_kid_is_inactive(client, gateway) -> None:
    real = login(client, "alice.1")["access_token"]
    claims = jwt.decode(real, options={"verify_signature": False})
    kid = jwt.get_unverified_header(real)["kid"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})
    assert answer(client, forged, gateway) == INACTIVE


# -- who may ask ---------------------------------------------------------------------------------


def test_a_wrong_secret_is_invalid_client(client, gateway) -> None:
    token = login(client, "alice.1")["access_token"]
    response = introspect(client, token, (gateway[0], "wrong"))
    assert_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"] == 'Basic realm="wxauth"'
    assert_error(introspect(client, token, ("nobody", gateway[1])), 401, "invalid_client")


def test_no_client_authentication_is_invalid_client(client) -> None:
    token = login(client, "alice.1")["access_token"]
    assert_error(form_post(client, ROUTE, {"token": token}), 401, "invalid_client")
    # an access token is no client authentication
    response = form_post(client, ROUTE, {"token": token}, bearer(token))
    assert_error(response, 401, "invalid_client")


def test_a_client_without_the_scope_is_refused(client, services) -> None:
    _, secret = services.clients.create(["orders:read"], now=START, client_id="orders-backend")
    token = login(client, "alice.1")["access_token"]
    assert_error(introspect(client, token, ("orders-backend", secret)), 403, "insufficient_scope")


def test_a_missing_token_is_invalid_request_once_authenticated(client, gateway) -> None:
    assert_error(form_post(client, ROUTE, {}, basic(*gateway)), 400, "invalid_request")
    assert_error(form_post(client, ROUTE, {"token": ""}, basic(*gateway)), 400, "invalid_request")
    assert_error(form_post(client, ROUTE, {}), 401, "invalid_client")


def test_basic_and_client_secret_together_are_invalid_request(client, gateway) -> None:
    token = login(client, "alice.1")["access_token"]
    params = {"token": token, "client_secret": gateway[1]}
    response = form_post(client, ROUTE, params, basic(*gateway))
    assert_error(response, 400, "invalid_request")


def test_a_json_body_is_invalid_request(client, gateway) -> None:
    response = client.http.post(
        ROUTE, headers={"content-type": "application/json", **basic(*gateway)}, body="{}"
    )
    assert_error(response, 400, "invalid_request")


# -- cost and side effects -----------------------------------------------------------------------


def test_requests_and_the_memo_of_a_clients_authentication(
    client, services, clock, gateway, dynamodb_requests
) -> None:
    """A user's token: the client's GetItem the first time, then only the session's GetItem
    while the client store remembers the authentication (AUTH_CLIENTS_CACHE_TTL); a wrong
    secret is never let in by it, and a client disabled by another container stops once it
    lapses."""
    token = login(client, "alice.1")["access_token"]
    del dynamodb_requests[:]

    assert answer(client, token, gateway)["active"] is True
    assert dynamodb_requests == ["GetItem", "GetItem"]
    del dynamodb_requests[:]
    assert answer(client, token, gateway)["active"] is True
    assert dynamodb_requests == ["GetItem"]
    assert_error(introspect(client, token, (gateway[0], "wrong")), 401, "invalid_client")

    assert services.store.clients.set_enabled(gateway[0], False)  # another container's command
    clock.advance(services.settings.clients_cache_ttl - 1)
    assert answer(client, token, gateway)["active"] is True  # remembered, for a while
    clock.advance(1)
    assert_error(introspect(client, token, gateway), 401, "invalid_client")


def test_introspection_writes_nothing(client, dynamodb, clock, gateway) -> None:
    tokens = login(client, "alice.1")
    before = table_items(dynamodb)
    answer(client, tokens["access_token"], gateway)
    answer(client, tokens["refresh_token"], gateway)
    answer(client, "garbage", gateway)
    introspect(client, tokens["access_token"], (gateway[0], "wrong"))
    assert table_items(dynamodb) == before


def test_the_answer_is_logged_without_the_token(client, gateway, log_lines) -> None:
    token = login(client, "alice.1")["access_token"]
    del log_lines[:]
    answer(client, token, gateway)
    assert log_lines and not any(token in line or gateway[1] in line for line in log_lines)


def test_discovery_names_the_endpoint(client) -> None:
    body = client.http.get("/.well-known/openid-configuration").json_body
    assert body["introspection_endpoint"] == "https://auth.test/oauth/introspect"
    assert body["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
