"""The `authorization_code` grant of `/oauth/token` (chalicelib/weblogin/grant.py) through
chalice.test.Client: PKCE, the client and redirect URI a code is bound to, expiry, and a
replay revoking what the code issued (issue 24, item 2)."""

from __future__ import annotations

import json

import jwt
import pytest

from tests.conftest import table_items
from tests.http import assert_error, basic, token, verdict
from tests.weblogin.flow import (
    CONFIDENTIAL,
    FIRST_PARTY,
    PUBLIC,
    RP_URI,
    SPA_URI,
    WEB_APPID,
    pkce,
    redeem,
    sign_in,
)

pytestmark = pytest.mark.usefixtures("clients")

TOKEN_RESPONSE = {
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "refresh_expires_in",
    "user",
}


def claims_of(body: dict) -> dict:
    return jwt.decode(body["access_token"], options={"verify_signature": False})


def test_a_confidential_client_gets_a_sessions_tokens(client, fake, clients, dynamodb_requests):
    flow = sign_in(client, fake, "alice")
    del dynamodb_requests[:]
    answer = redeem(client, flow, secret=clients.confidential_secret)
    sent = list(dynamodb_requests)
    assert answer.status_code == 200, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json_body
    assert set(body) == TOKEN_RESPONSE and body["token_type"] == "Bearer"
    assert body["user"]["is_new"] is True
    claims = claims_of(body)
    assert claims["sub"] == body["user"]["id"]
    assert claims["client_id"] == CONFIDENTIAL
    assert claims["aud"] == WEB_APPID  # the website app's (its client id: its appid)
    assert verdict(client, body["access_token"])["valid"]
    # the client's GetItem, the sign-in's GetItem, the session's transaction
    assert sent == ["GetItem", "GetItem", "TransactWriteItems"]

    # its refresh token is the client's: refreshed with its secret, refused to another client
    refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    assert_error(token(client, {**refresh, "client_id": PUBLIC}), 400, "invalid_grant")
    rotated = token(client, refresh, basic(CONFIDENTIAL, clients.confidential_secret))
    assert rotated.status_code == 200, rotated.body
    assert claims_of(rotated.json_body)["client_id"] == CONFIDENTIAL


def test_a_public_client_needs_no_secret_and_http_basic_may_name_it(client, fake):
    flow = sign_in(client, fake, "alice", client_id=PUBLIC)
    answer = redeem(client, flow, client_id=PUBLIC)
    assert answer.status_code == 200, answer.body
    assert claims_of(answer.json_body)["client_id"] == PUBLIC

    again = sign_in(client, fake, "alice", client_id=PUBLIC)
    params = {
        "grant_type": "authorization_code",
        "code": again.code,
        "redirect_uri": SPA_URI,
        "code_verifier": again.verifier,
    }
    by_basic = token(client, params, basic(PUBLIC, ""))
    assert by_basic.status_code == 200, by_basic.body


def test_first_party_web_login_ends_in_the_website_apps_own_tokens(client, fake):
    flow = sign_in(client, fake, "alice", client_id=FIRST_PARTY)
    body = redeem(client, flow, client_id=FIRST_PARTY).json_body
    claims = claims_of(body)
    assert claims["client_id"] == WEB_APPID and claims["aud"] == WEB_APPID
    assert "access_token" not in flow.to_rp and body["access_token"] not in flow.to_rp


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"code_verifier": pkce()[0]}, 400, "invalid_grant"),  # another verifier
        ({"code_verifier": "short"}, 400, "invalid_request"),
        ({"code_verifier": None}, 400, "invalid_request"),
        ({"redirect_uri": SPA_URI}, 400, "invalid_grant"),
        ({"redirect_uri": RP_URI + "&x=1"}, 400, "invalid_grant"),
        ({"redirect_uri": None}, 400, "invalid_grant"),  # the request had one: required
        ({"code": None}, 400, "invalid_request"),
        ({"code": "not-ours"}, 400, "invalid_grant"),
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_secret": None}, 401, "invalid_client"),  # a confidential client, no secret
        ({"client_id": PUBLIC, "client_secret": None}, 400, "invalid_grant"),  # another client
        ({"client_id": "nobody", "client_secret": None}, 401, "invalid_client"),
    ],
)
def test_a_wrong_verifier_redirect_uri_or_client_is_refused_and_changes_nothing(
    client, fake, clients, dynamodb, overrides, status, error
):
    flow = sign_in(client, fake, "alice")
    before = table_items(dynamodb)
    params = {"secret": clients.confidential_secret, **overrides}
    secret = params.pop("secret")
    if "client_secret" in params:
        secret = params.pop("client_secret")
    assert_error(redeem(client, flow, secret=secret, **params), status, error)
    assert table_items(dynamodb) == before

    # the code is still good for its own client
    assert redeem(client, flow, secret=clients.confidential_secret).status_code == 200


def test_an_expired_code_is_refused(client, fake, clients, clock, dynamodb):
    flow = sign_in(client, fake, "alice")
    clock.advance(60)  # AUTH_AUTHORIZATION_CODE_TTL's default
    before = table_items(dynamodb)
    refused = redeem(client, flow, secret=clients.confidential_secret)
    assert_error(refused, 400, "invalid_grant")
    assert "expired" in refused.json_body["error_description"]
    assert table_items(dynamodb) == before


def test_a_replayed_code_is_refused_and_revokes_the_session_it_started(client, fake, clients):
    flow = sign_in(client, fake, "alice")
    first = redeem(client, flow, secret=clients.confidential_secret).json_body
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}

    replay = redeem(client, flow, secret=clients.confidential_secret)
    assert_error(replay, 400, "invalid_grant")
    assert first["refresh_token"] not in replay.body.decode()
    assert not verdict(client, first["access_token"])["valid"]
    refused = token(client, refresh, basic(CONFIDENTIAL, clients.confidential_secret))
    assert_error(refused, 400, "invalid_grant")


def test_a_replay_by_another_client_revokes_too(client, fake, clients):
    flow = sign_in(client, fake, "alice")
    first = redeem(client, flow, secret=clients.confidential_secret).json_body
    assert_error(redeem(client, flow, client_id=PUBLIC), 400, "invalid_grant")
    assert not verdict(client, first["access_token"])["valid"]


def test_the_code_and_verifier_are_in_no_log_line(client, fake, clients, log_lines):
    flow = sign_in(client, fake, "alice")
    redeem(client, flow, secret=clients.confidential_secret)
    redeem(client, flow, secret=clients.confidential_secret)  # the replay's warning
    text = "\n".join(str(line) for line in log_lines)
    assert "authorization_code_replayed" in text
    for secret in (flow.code, flow.code.partition(".")[2], flow.verifier):
        assert secret not in text


def test_the_profile_claims_reach_a_website_session_as_a_logins(client, fake, clients, services):
    """PATCH /me copies the profile onto the user's identities; a later website sign-in's
    session carries it, as a mini-program login's does (AUTH_PROFILE_CLAIM reads it there)."""
    first = redeem(client, sign_in(client, fake, "alice"), secret=clients.confidential_secret)
    patched = client.http.patch(
        "/me",
        body=json.dumps({"nickname": "阿丽"}),
        headers={
            "authorization": f"Bearer {first.json_body['access_token']}",
            "content-type": "application/json",
        },
    )
    assert patched.status_code == 200, patched.body

    again = redeem(client, sign_in(client, fake, "alice"), secret=clients.confidential_secret)

    assert again.status_code == 200, again.body
    claims = claims_of(again.json_body)
    session = services.store.sessions.get(claims["sub"], claims["sid"])
    assert session is not None and json.loads(session.profile_claims) == {"nickname": "阿丽"}
