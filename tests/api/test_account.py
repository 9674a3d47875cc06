"""A user's own sessions through the HTTP surface: GET /auth/sessions, DELETE
/auth/sessions/{sid}, logout {"others": true}, and the device a login records."""

from __future__ import annotations

import json

import jwt
import pytest

import app
from tests.conftest import START, table_items
from tests.events import http_api_v1_event
from tests.http import assert_error, basic, bearer, post, token, verdict

SECRET_FIELDS = ("hash", "key", "token", "sealed", "mac", "secret")


def sid_of(tokens: dict) -> str:
    return jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]


def sessions_of(client, tokens: dict) -> list[dict]:
    response = client.http.get("/auth/sessions", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.body
    assert response.headers["Cache-Control"] == "no-store"
    return response.json_body["sessions"]


def end(client, tokens: dict, sid: str):
    return client.http.delete(f"/auth/sessions/{sid}", headers=bearer(tokens["access_token"]))


def login_with(client, code: str, device: object = None, headers: dict | None = None) -> dict:
    body: dict = {"code": code}
    if device is not None:
        body["device"] = device
    response = post(client, "/auth/login", body, headers=headers)
    assert response.status_code == 200, response.json_body
    return response.json_body


# -- listing ---------------------------------------------------------------------------------


def test_list_shows_my_live_sessions_with_their_device(client, clock):
    phone = login_with(
        client,
        "alice.1",
        {"name": "张三的 iPhone", "platform": "ios"},
        {"user-agent": "Mozilla/5.0 MicroMessenger/8.0.50"},
    )
    clock.advance(10)
    laptop = login_with(client, "alice.2")
    login_with(client, "bob.1")  # another user's session: never listed

    listed = sessions_of(client, phone)
    assert [s["id"] for s in listed] == [sid_of(laptop), sid_of(phone)]  # newest first
    mine = listed[1]
    assert mine == {
        "id": sid_of(phone),
        "current": True,
        "created_at": clock.now - 10,
        "last_refreshed_at": None,
        "expires_at": clock.now - 10 + 2_592_000,
        "device": {"name": "张三的 iPhone", "platform": "ios"},
        "user_agent": "Mozilla/5.0 MicroMessenger/8.0.50",
        "source_ip": "127.0.0.0/24",  # chalice's test client sends 127.0.0.1: masked
    }
    assert listed[0]["current"] is False and listed[0]["device"] is None
    text = json.dumps(listed)
    assert phone["refresh_token"] not in text and phone["access_token"] not in text
    assert not [name for s in listed for name in s if any(w in name for w in SECRET_FIELDS)]


def test_list_keeps_last_refreshed_at_and_drops_ended_sessions(client, clock):
    first = login_with(client, "alice.1")
    second = login_with(client, "alice.2")
    clock.advance(60)
    refreshed = post(client, "/auth/refresh", {"refresh_token": first["refresh_token"]}).json_body
    assert end(client, first, sid_of(second)).status_code == 204
    listed = sessions_of(client, refreshed)
    assert [(s["id"], s["last_refreshed_at"]) for s in listed] == [(sid_of(first), clock.now)]


def test_list_needs_a_users_token(client, services):
    assert_error(client.http.get("/auth/sessions"), 401, "invalid_token")
    record, secret = services.clients.create(["orders:read"], now=START, client_id="shop")
    client_id = record.client_id
    machine = token(client, {"grant_type": "client_credentials"}, basic(client_id, secret))
    response = client.http.get("/auth/sessions", headers=bearer(machine.json_body["access_token"]))
    assert_error(response, 403, "insufficient_scope")
    response = client.http.delete(
        "/auth/sessions/" + "a" * 22, headers=bearer(machine.json_body["access_token"])
    )
    assert_error(response, 403, "insufficient_scope")


def test_list_and_end_request_counts(client, dynamodb_requests):
    tokens = login_with(client, "alice.1")
    other = login_with(client, "alice.2")
    dynamodb_requests.clear()
    sessions_of(client, tokens)
    assert dynamodb_requests == ["GetItem", "Query"]
    dynamodb_requests.clear()
    assert end(client, tokens, sid_of(other)).status_code == 204
    assert dynamodb_requests == ["GetItem", "UpdateItem"]


def test_refresh_and_verify_stay_one_request(client, dynamodb_requests):
    tokens = login_with(client, "alice.1", {"name": "Pixel", "platform": "android"})
    dynamodb_requests.clear()
    refreshed = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert dynamodb_requests == ["UpdateItem"]
    dynamodb_requests.clear()
    assert verdict(client, refreshed.json_body["access_token"])["valid"] is True
    assert dynamodb_requests == ["GetItem"]


# -- ending one ------------------------------------------------------------------------------


def test_end_one_of_mine(client):
    phone = login_with(client, "alice.1")
    laptop = login_with(client, "alice.2")
    response = end(client, phone, sid_of(laptop))
    assert response.status_code == 204 and response.headers["Cache-Control"] == "no-store"
    assert verdict(client, laptop["access_token"]) == {"valid": False, "reason": "revoked"}
    refused = post(client, "/auth/refresh", {"refresh_token": laptop["refresh_token"]})
    assert_error(refused, 400, "invalid_grant")
    assert verdict(client, phone["access_token"])["valid"] is True
    assert_error(end(client, phone, sid_of(laptop)), 404, "not_found")  # already ended


def test_end_the_current_session(client):
    tokens = login_with(client, "alice.1")
    assert end(client, tokens, sid_of(tokens)).status_code == 204
    assert verdict(client, tokens["access_token"]) == {"valid": False, "reason": "revoked"}
    refused = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_error(refused, 400, "invalid_grant")


@pytest.mark.parametrize("sid", ["bob", "A" * 22, "x" * 23, "%2e%2e", "a b", "ab.c"])
def test_end_of_an_unknown_or_malformed_sid_is_404_and_changes_nothing(client, dynamodb, sid):
    tokens = login_with(client, "alice.1")
    before = table_items(dynamodb)
    assert_error(end(client, tokens, sid), 404, "not_found")
    assert table_items(dynamodb) == before


def test_another_users_sid_is_404_and_their_session_lives(client, dynamodb):
    alice = login_with(client, "alice.1")
    bob = login_with(client, "bob.1")
    before = table_items(dynamodb)
    assert_error(end(client, alice, sid_of(bob)), 404, "not_found")
    assert table_items(dynamodb) == before
    assert verdict(client, bob["access_token"])["valid"] is True


def test_end_of_an_expired_session_is_404(client, clock):
    old = login_with(client, "alice.1")
    clock.advance(2_592_000 - 100)
    fresh = login_with(client, "alice.2")
    clock.advance(100)  # old's idle expiry
    assert_error(end(client, fresh, sid_of(old)), 404, "not_found")


# -- logout of the others --------------------------------------------------------------------


def test_logout_others_keeps_the_current_session(client):
    keep = login_with(client, "alice.1")
    others = [login_with(client, "alice.2"), login_with(client, "alice.3")]
    bob = login_with(client, "bob.1")
    response = post(client, "/auth/logout", {"others": True}, headers=bearer(keep["access_token"]))
    assert response.status_code == 204
    for tokens in others:
        assert verdict(client, tokens["access_token"]) == {"valid": False, "reason": "revoked"}
    assert verdict(client, keep["access_token"])["valid"] is True
    assert verdict(client, bob["access_token"])["valid"] is True
    refreshed = post(client, "/auth/refresh", {"refresh_token": keep["refresh_token"]})
    assert refreshed.status_code == 200
    assert [s["id"] for s in sessions_of(client, refreshed.json_body)] == [sid_of(keep)]


@pytest.mark.parametrize(
    "body",
    [{"all": True, "others": True}, {"others": "yes"}, {"others": 1}, {"others": None}],
)
def test_bad_logout_bodies_change_nothing(client, dynamodb, body):
    tokens = login_with(client, "alice.1")
    login_with(client, "alice.2")
    before = table_items(dynamodb)
    response = post(client, "/auth/logout", body, headers=bearer(tokens["access_token"]))
    assert_error(response, 400, "invalid_request")
    assert table_items(dynamodb) == before


def test_logout_others_false_is_a_plain_logout(client):
    tokens = login_with(client, "alice.1")
    other = login_with(client, "alice.2")
    response = post(
        client, "/auth/logout", {"others": False}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 204
    assert verdict(client, tokens["access_token"])["valid"] is False
    assert verdict(client, other["access_token"])["valid"] is True


# -- the device at login ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "device",
    [
        "iPhone",
        ["iPhone"],
        7,
        {"name": 7},
        {"name": ""},
        {"name": "n" * 65},
        {"platform": "p" * 33},
        {"name": "bad\ttab"},
        {"name": "ok", "extra": "no"},
    ],
)
def test_bad_device_is_invalid_request_and_changes_nothing(client, dynamodb, wechat, device):
    before = table_items(dynamodb)
    response = post(client, "/auth/login", {"code": "alice.1", "device": device})
    assert_error(response, 400, "invalid_request")
    assert table_items(dynamodb) == before
    assert wechat.calls == 0


def test_user_agent_is_truncated(client):
    tokens = login_with(client, "alice.1", headers={"user-agent": "U" * 1000})
    assert sessions_of(client, tokens)[0]["user_agent"] == "U" * 256


def test_a_replayed_code_keeps_the_first_sessions_device(client):
    first = login_with(client, "alice.1", {"name": "first"})
    again = login_with(client, "alice.1", {"name": "second"})
    assert sid_of(again) == sid_of(first)
    assert sessions_of(client, again)[0]["device"] == {"name": "first", "platform": None}


def test_source_ip_from_api_gateway(client, services, dynamodb):
    """Payload 1.0 from an HTTP API: requestContext.identity.sourceIp is recorded whole and
    shown masked; the operators' listing (wxauth-admin sessions list) has it whole."""
    event = http_api_v1_event(
        "POST",
        "/auth/login",
        headers={"content-type": "application/json", "user-agent": "wx/1"},
        body=json.dumps({"code": "alice.1", "device": {"platform": "android"}}),
    )
    event["requestContext"]["identity"]["sourceIp"] = "2001:db8:abcd:12::7"
    answer = app.app(event, None)
    assert answer["statusCode"] == 200, answer["body"]
    tokens = json.loads(answer["body"])
    session = services.store.sessions.get(tokens["user"]["id"], sid_of(tokens))
    assert session.source_ip == "2001:db8:abcd:12::7" and session.user_agent == "wx/1"
    listed = sessions_of(client, tokens)
    assert listed[0]["source_ip"] == "2001:db8:abcd::/48"
    assert listed[0]["device"] == {"name": None, "platform": "android"}


def test_end_session_through_api_gateway(client):
    tokens = login_with(client, "alice.1")
    other = login_with(client, "alice.2")
    event = http_api_v1_event(
        "DELETE",
        f"/auth/sessions/{sid_of(other)}",
        headers=bearer(tokens["access_token"]),
        route_path="/auth/sessions/{sid}",
        path_parameters={"sid": sid_of(other)},
    )
    assert app.app(event, None)["statusCode"] == 204
    assert verdict(client, other["access_token"])["valid"] is False


# -- the list in pages (issue 21) --------------------------------------------------------------


def put_sessions(dynamodb, sessions) -> None:
    """Sessions written straight to the table, 25 to a BatchWriteItem (revoked ones too)."""
    from chalicelib.store.sessions import new_session
    from tests.conftest import TABLE

    def item(session) -> dict:
        written = new_session(TABLE, session)["Item"]
        if session.revoked_at is not None:
            written["revoked_at"] = {"N": str(session.revoked_at)}
            written["revoked_reason"] = {"S": session.revoked_reason}
        return written

    for start in range(0, len(sessions), 25):
        batch = [{"PutRequest": {"Item": item(s)}} for s in sessions[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={TABLE: batch})


def some_sessions(user_id: str, count: int, *, now: int, revoked_every: int = 0) -> list:
    """`count` sessions of the user, made at `now - i` seconds (every `revoked_every`th one
    revoked), with random 22-character ids as a login makes them."""
    from dataclasses import replace

    from chalicelib.store import SessionRecord
    from chalicelib.tokens import refresh as refresh_tokens

    made = []
    for i in range(count):
        record = SessionRecord(
            user_id=user_id,
            session_id=refresh_tokens.new_id(),
            client_id="wx-test-appid",
            current_hash=bytes(32),
            previous_hash=None,
            rotated_at=None,
            sealed_current=None,
            created_at=now - i,
            idle_expires_at=now + 3600,
            absolute_expires_at=now + 7200,
        )
        if revoked_every and i % revoked_every == 0:
            record = replace(record, revoked_at=now - 1, revoked_reason="logout")
        made.append(record)
    return made


def page_of(client, tokens: dict, query: str = "") -> dict:
    response = client.http.get("/auth/sessions" + query, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.body
    assert response.headers["Cache-Control"] == "no-store"
    assert set(response.json_body) == {"sessions", "next_cursor"}
    return response.json_body


def test_a_thousand_sessions_are_listed_in_pages_never_anothers(client, dynamodb, clock):
    alice = login_with(client, "alice.1")
    bob = login_with(client, "bob.1")
    now = int(clock.now)
    mine = some_sessions(alice["user"]["id"], 1000, now=now, revoked_every=7)
    put_sessions(dynamodb, mine + some_sessions(bob["user"]["id"], 50, now=now))
    live = {s.session_id for s in mine if s.revoked_at is None} | {sid_of(alice)}
    assert len(live) == 858

    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        page = page_of(client, alice, "?limit=100" + (f"&cursor={cursor}" if cursor else ""))
        pages += 1
        listed = page["sessions"]
        assert len(listed) <= 100
        created = [s["created_at"] for s in listed]
        assert created == sorted(created, reverse=True)  # each page newest first
        seen += [s["id"] for s in listed]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(live)  # every live session once, no revoked one, no bob's
    assert 9 <= pages <= 12


def test_the_default_page_is_twenty_and_the_cursor_reads_only_the_callers_sessions(
    client, dynamodb, clock
):
    alice = login_with(client, "alice.1")
    bob = login_with(client, "bob.1")
    put_sessions(dynamodb, some_sessions(alice["user"]["id"], 30, now=int(clock.now)))
    first = page_of(client, alice)
    assert len(first["sessions"]) == 20 and first["next_cursor"]
    # alice's cursor in bob's hands: a position in bob's own list, never alice's sessions
    theirs = page_of(client, bob, f"?cursor={first['next_cursor']}")["sessions"]
    assert {s["id"] for s in theirs} <= {sid_of(bob)}
    rest = page_of(client, alice, f"?cursor={first['next_cursor']}&limit=100")
    assert rest["next_cursor"] is None
    ids = [s["id"] for s in first["sessions"] + rest["sessions"]]
    assert len(ids) == len(set(ids)) == 31


def test_a_small_list_is_one_page_newest_first(client, clock):
    first = login_with(client, "alice.1")
    clock.advance(5)
    second = login_with(client, "alice.2")
    page = page_of(client, first, "?limit=1")
    assert [s["id"] for s in page["sessions"]] in ([sid_of(first)], [sid_of(second)])
    assert page["next_cursor"]
    whole = page_of(client, first)
    assert [s["id"] for s in whole["sessions"]] == [sid_of(second), sid_of(first)]
    assert whole["next_cursor"] is None


def test_a_page_reads_at_most_three_queries_of_its_limit(
    client, dynamodb, clock, dynamodb_requests
):
    """Dead sessions do not make a page read the whole partition: at most three Queries of
    `limit` items each; the page may then hold fewer sessions (none, even) and a cursor."""
    from tests.conftest import items_read_by_queries

    alice = login_with(client, "alice.1")
    put_sessions(
        dynamodb, some_sessions(alice["user"]["id"], 200, now=int(clock.now), revoked_every=1)
    )
    read = items_read_by_queries(dynamodb)
    dynamodb_requests.clear()
    page = page_of(client, alice, "?limit=10")
    assert dynamodb_requests == ["GetItem", "Query", "Query", "Query"]
    assert sum(read) <= 30 and len(page["sessions"]) <= 1
    seen = [s["id"] for s in page["sessions"]]
    while page["next_cursor"]:
        page = page_of(client, alice, f"?limit=10&cursor={page['next_cursor']}")
        seen += [s["id"] for s in page["sessions"]]
    assert seen == [sid_of(alice)]


@pytest.mark.parametrize(
    "query",
    [
        "?limit=0",
        "?limit=101",
        "?limit=-1",
        "?limit=abc",
        "?limit=1.5",
        "?limit=",
        "?limit=%201",
        "?cursor=",
        "?cursor=not-a-cursor",
        "?cursor=" + "A" * 300,
        "?cursor=%00",
        "?cursor=QUJD",  # base64 of "ABC"
    ],
)
def test_a_bad_limit_or_cursor_is_invalid_request(client, dynamodb, query):
    tokens = login_with(client, "alice.1")
    before = table_items(dynamodb)
    response = client.http.get("/auth/sessions" + query, headers=bearer(tokens["access_token"]))
    assert_error(response, 400, "invalid_request")
    assert table_items(dynamodb) == before
