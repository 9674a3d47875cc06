"""GET /users/{user_id}/identities: a backend (client credentials holding `users:openid`) looks
up a user's openid in each app, for WeChat server calls made while the user is offline
(subscribe messages). Never a unionid; a user's own token, or a client without the scope, is
refused; an unknown user is 404."""

from __future__ import annotations

import pytest

from chalicelib.identity.apps import MINI_PROGRAM, OFFICIAL_ACCOUNT
from chalicelib.identity.directory import USERS_OPENID_SCOPE
from devserver.fake_wechat import openid_for, unionid_for
from tests.api.test_internal import client_token
from tests.conftest import START, TEST_APPID, table_items
from tests.http import assert_error, bearer
from tests.identity import fixtures as identity_fixtures
from tests.identity.fixtures import APP_B, APP_OA
from tests.identity.test_several_apps import conflicting_users, log_in, run_admin

fake = identity_fixtures.fake
fake_wechat = identity_fixtures.fake_wechat
services = identity_fixtures.services


def route(user_id: str) -> str:
    return f"/users/{user_id}/identities"


@pytest.fixture
def backend(client, services) -> str:
    """A client-credentials access token holding users:openid."""
    return client_token(client, services, [USERS_OPENID_SCOPE], client_id="notify-backend")


def lookup(client, user_id: str, token: str):
    return client.http.get(route(user_id), headers=bearer(token))


def test_a_users_openid_in_each_app(client, services, backend, dynamodb_requests) -> None:
    first = log_in(client, "union-bob.1", TEST_APPID)
    log_in(client, "union-bob.2", APP_B)
    log_in(client, "union-bob.3", APP_OA)
    user_id = first["user"]["id"]
    del dynamodb_requests[:]

    response = lookup(client, user_id, backend)

    assert response.status_code == 200, response.body
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json_body
    assert body["user_id"] == user_id
    expected = [
        {"appid": appid, "kind": kind, "openid": openid_for(appid, "union-bob")}
        for appid, kind in (
            (TEST_APPID, MINI_PROGRAM),
            (APP_B, MINI_PROGRAM),
            (APP_OA, OFFICIAL_ACCOUNT),
        )
    ]
    by_appid = lambda i: i["appid"]  # noqa: E731
    assert sorted(body["identities"], key=by_appid) == sorted(expected, key=by_appid)
    assert set(body) == {"user_id", "identities"}
    assert unionid_for("union-bob") not in response.body.decode()  # no unionid, by any name
    # the backend's token is a session-less JWT: the profile's GetItem and one Query
    assert dynamodb_requests == ["GetItem", "Query"]


def test_a_users_own_token_is_refused(client) -> None:
    tokens = log_in(client, "alice.1", TEST_APPID)
    response = lookup(client, tokens["user"]["id"], tokens["access_token"])
    assert_error(response, 403, "insufficient_scope")


def test_a_client_without_the_scope_is_refused(client, services) -> None:
    user_id = log_in(client, "alice.1", TEST_APPID)["user"]["id"]
    token = client_token(client, services, ["wechat:access_token"], client_id="other-backend")
    assert_error(lookup(client, user_id, token), 403, "insufficient_scope")


def test_no_token_is_401(client) -> None:
    user_id = log_in(client, "alice.1", TEST_APPID)["user"]["id"]
    assert_error(client.http.get(route(user_id)), 401, "invalid_token")


def test_an_unknown_user_is_404(client, backend, dynamodb_requests) -> None:
    del dynamodb_requests[:]
    assert_error(lookup(client, "A" * 22, backend), 404, "not_found")
    assert dynamodb_requests == ["GetItem"]
    del dynamodb_requests[:]
    for malformed in ("abc", "x" * 23, "client:orders-backend"):
        assert_error(lookup(client, malformed, backend), 404, "not_found")
    assert dynamodb_requests == []  # no read for an id that cannot be a user's


def test_a_merged_away_user_names_the_user_it_was_merged_into(
    client, services, fake, backend
) -> None:
    x, y, _ = conflicting_users(services, fake)
    run_admin(services, "user", "merge", "--into", x.tokens.user_id, "--from", y.tokens.user_id)

    body = lookup(client, y.tokens.user_id, backend).json_body

    assert body == {"user_id": y.tokens.user_id, "identities": [], "merged_into": x.tokens.user_id}
    kept = lookup(client, x.tokens.user_id, backend).json_body
    assert {i["appid"] for i in kept["identities"]} == {TEST_APPID, APP_B}


def test_the_lookup_writes_nothing(client, dynamodb, backend) -> None:
    user_id = log_in(client, "alice.1", TEST_APPID)["user"]["id"]
    before = table_items(dynamodb)
    assert lookup(client, user_id, backend).status_code == 200
    assert lookup(client, "B" * 22, backend).status_code == 404
    assert table_items(dynamodb) == before


def test_the_service_alone(services) -> None:
    result = services.login.login("carol.1", START, TEST_APPID)
    found = services.directory.identities(result.tokens.user_id)
    assert found == {
        "user_id": result.tokens.user_id,
        "identities": [
            {"appid": TEST_APPID, "kind": MINI_PROGRAM, "openid": openid_for(TEST_APPID, "carol")}
        ],
    }
