"""Bans: a banned user's sessions die at once, refresh and login answer 403 access_denied."""

from __future__ import annotations

import jwt
import pytest

from chalicelib.bans import Bans
from chalicelib.errors import RequestError, UnknownUser
from tests.conftest import table_items
from tests.http import assert_error, bearer, login, post, token, verdict


@pytest.fixture
def bans(services) -> Bans:
    return Bans(services.store.users, services.sessions)


def user_of(tokens: dict) -> str:
    return tokens["user"]["id"]


def session_items(dynamodb) -> list[dict]:
    return [item for item in table_items(dynamodb) if item["sk"]["S"].startswith("SESSION#")]


def test_ban_bites_within_one_request(client, bans, clock):
    first, second = login(client, "alice.1"), login(client, "alice.2")
    bob = login(client, "bob.1")
    result = bans.ban(user_of(first), now=int(clock.now), reason="fraud")
    assert result.sessions_revoked == 2 and result.banned_at == int(clock.now)

    for tokens in (first, second):
        assert verdict(client, tokens["access_token"]) == {"valid": False, "reason": "revoked"}
        assert_error(
            client.http.get("/me", headers=bearer(tokens["access_token"])), 401, "invalid_token"
        )
        refused = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert_error(refused, 403, "access_denied")
        assert "fraud" not in refused.body.decode()  # the reason is for operators
        grant = token(
            client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        )
        assert_error(grant, 403, "access_denied")
    assert verdict(client, bob["access_token"])["valid"] is True


def test_banned_refresh_is_one_request_and_writes_nothing(
    client, bans, clock, dynamodb, dynamodb_requests
):
    tokens = login(client, "alice.1")
    bans.ban(user_of(tokens), now=int(clock.now))
    before = table_items(dynamodb)
    dynamodb_requests.clear()
    refused = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_error(refused, 403, "access_denied")
    assert dynamodb_requests == ["UpdateItem"]
    assert table_items(dynamodb) == before


def test_banned_login_is_refused_and_creates_no_session(
    client, bans, clock, dynamodb, dynamodb_requests
):
    tokens = login(client, "alice.1")
    bans.ban(user_of(tokens), now=int(clock.now))
    sessions_before = session_items(dynamodb)
    dynamodb_requests.clear()
    assert_error(post(client, "/auth/login", {"code": "alice.2"}), 403, "access_denied")
    # claim, identity, the finishing transaction (its check of the PROFILE refuses), release:
    # a returning login reads no PROFILE (chalicelib/identity/graph.py), the ban costs the try
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems", "DeleteItem"]
    assert session_items(dynamodb) == sessions_before
    # the claim released: only alice.1's finished login is left
    assert len([i for i in table_items(dynamodb) if i["pk"]["S"].startswith("LOGIN#")]) == 1


def test_a_ban_between_the_logins_read_and_write_is_caught(client, bans, services, clock, dynamodb):
    """The login read the PROFILE before the ban, and writes its session after the ban
    revoked every session: the finishing transaction's check on the PROFILE refuses it."""
    user_id = user_of(login(client, "alice.1"))
    resolve = services.graph.resolve  # where the login finds the user (identity graph)

    def resolve_then_ban(app, wx, now):
        resolved = resolve(app, wx, now)
        bans.ban(user_id, now=int(clock.now))
        return resolved

    services.graph.resolve = resolve_then_ban
    keys_before = [i["sk"] for i in session_items(dynamodb)]
    assert_error(post(client, "/auth/login", {"code": "alice.2"}), 403, "access_denied")
    after = session_items(dynamodb)
    assert [i["sk"] for i in after] == keys_before  # no session slipped in after the ban
    assert all(i["revoked_reason"] == {"S": "banned"} for i in after)


def test_unban_lets_new_logins_in_and_old_sessions_stay_revoked(client, bans, clock):
    old = login(client, "alice.1")
    bans.ban(user_of(old), now=int(clock.now))
    assert bans.unban(user_of(old)).banned is False
    fresh = login(client, "alice.2")
    assert fresh["user"] == {"id": user_of(old), "is_new": False}
    assert verdict(client, fresh["access_token"])["valid"] is True
    assert verdict(client, old["access_token"])["valid"] is False
    refused = post(client, "/auth/refresh", {"refresh_token": old["refresh_token"]})
    assert_error(refused, 403, "access_denied")


def test_a_replayed_code_of_a_banned_user_is_refused(client, bans, clock):
    tokens = login(client, "alice.1")
    bans.ban(user_of(tokens), now=int(clock.now))
    assert_error(post(client, "/auth/login", {"code": "alice.1"}), 403, "access_denied")


def test_ban_of_an_unknown_user(bans, dynamodb):
    with pytest.raises(UnknownUser):
        bans.ban("u" * 22, now=0)
    with pytest.raises(UnknownUser):
        bans.unban("u" * 22)
    assert table_items(dynamodb) == []


@pytest.mark.parametrize("reason", ["", "r" * 201, "line\nbreak"])
def test_bad_ban_reason_writes_nothing(client, bans, dynamodb, reason):
    tokens = login(client, "alice.1")
    before = table_items(dynamodb)
    with pytest.raises(RequestError):
        bans.ban(user_of(tokens), now=0, reason=reason)
    assert table_items(dynamodb) == before


def test_client_credentials_tokens_are_not_touched(client, bans, services, clock):
    from tests.conftest import START

    record, secret = services.clients.create(["orders:read"], now=START, client_id="shop")
    from tests.http import basic

    machine = token(client, {"grant_type": "client_credentials"}, basic("shop", secret))
    tokens = login(client, "alice.1")
    bans.ban(user_of(tokens), now=int(clock.now))
    access = machine.json_body["access_token"]
    assert jwt.decode(access, options={"verify_signature": False})["sub"] == "client:shop"
    assert verdict(client, access)["valid"] is True


def test_a_banned_refresh_answers_403_while_the_revoked_item_lives_then_400(
    client, bans, clock, dynamodb
):
    """The ban's revocations expire from the table REVOKED_ITEM_TTL seconds later: until
    DynamoDB deletes them a refresh answers 403 access_denied, afterwards 400 invalid_grant
    (an unknown session), and the client's next login answers 403 again."""
    from chalicelib.store.sessions import REVOKED_ITEM_TTL
    from tests.conftest import ttl_sweep

    tokens = login(client, "alice.1")
    banned_at = int(clock.now)
    bans.ban(user_of(tokens), now=banned_at)
    (item,) = session_items(dynamodb)
    assert int(item["expires_at"]["N"]) == banned_at + REVOKED_ITEM_TTL
    clock.advance(REVOKED_ITEM_TTL + 60)
    refused = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_error(refused, 403, "access_denied")  # expired, not yet deleted: still read
    ttl_sweep(dynamodb, int(clock.now))
    assert session_items(dynamodb) == []
    refused = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_error(refused, 400, "invalid_grant")
    assert_error(post(client, "/auth/login", {"code": "alice.2"}), 403, "access_denied")
