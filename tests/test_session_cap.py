"""The cap on live sessions per user (AUTH_MAX_SESSIONS_PER_USER, AUTH_MAX_SESSIONS_SCOPE;
chalicelib/session_cap.py): a login beyond it ends the least recently used session, says so in
a SessionEnded event, and that session's next refresh says why."""

from __future__ import annotations

import json
from dataclasses import replace

import jwt
import pytest

import app
from chalicelib import runtime
from chalicelib.errors import StoreUnavailable
from chalicelib.logs import Metrics
from tests.conftest import START, TEST_APPID, table_items
from tests.http import assert_error, bearer, post, token, verdict
from tests.identity import fixtures as identity_fixtures
from tests.identity.fixtures import APP_B, register_apps

fake = identity_fixtures.fake
fake_wechat = identity_fixtures.fake_wechat


@pytest.fixture
def capped(settings, dynamodb, clock, fake_wechat, monkeypatch):
    """`capped(max_sessions, scope)`: the app wired to a service graph with that cap (and the
    apps of tests/identity/fixtures.py), events printed to the log; its services."""

    made: list[runtime.Services] = []

    def make(max_sessions: int | None, scope: str = "user") -> runtime.Services:
        built = runtime.build(
            replace(
                settings,
                max_sessions_per_user=max_sessions,
                max_sessions_scope=scope,
                event_log=True,
            ),
            dynamodb=dynamodb,
            clock=clock,
            sleep=lambda _: None,
            metrics=Metrics(stack="test"),
        )
        if not made:  # the apps are in the table: a second graph finds them
            register_apps(built)
        made.append(built)
        monkeypatch.setattr(app, "_services", built)
        return built

    return make


@pytest.fixture
def http():
    from chalice.test import Client

    with Client(app.app) as test_client:
        yield test_client


def log_in(http, code: str, appid: str = TEST_APPID) -> dict:
    body = {"code": code, "appid": appid}
    response = post(http, "/auth/login", body)
    assert response.status_code == 200, response.json_body
    return response.json_body


def sid_of(tokens: dict) -> str:
    return jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]


def refresh(http, tokens: dict):
    return post(http, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})


def events_of(log_lines: list[str], detail_type: str) -> list[dict]:
    found = []
    for line in log_lines:
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("event") == "auth_event" and record.get("detail-type") == detail_type:
            found.append(record["detail"])
    return found


def test_a_login_beyond_the_cap_ends_the_least_recently_used_session(
    capped, http, clock, log_lines
):
    capped(2)
    first = log_in(http, "alice.1")
    clock.advance(10)
    second = log_in(http, "alice.2")
    clock.advance(10)
    first = refresh(http, first).json_body  # the first is now the more recently used
    clock.advance(10)
    third = log_in(http, "alice.3")

    assert verdict(http, second["access_token"]) == {"valid": False, "reason": "revoked"}
    for tokens in (first, third):
        assert verdict(http, tokens["access_token"])["valid"] is True
    (ended,) = events_of(log_lines, "SessionEnded")
    assert ended["reason"] == "evicted" and ended["session_ids"] == [sid_of(second)]
    assert ended["user_id"] == third["user"]["id"] and ended["all_sessions"] is False
    assert ended["evicted_by_session_id"] == sid_of(third)


def test_the_evicted_sessions_refresh_says_why(capped, http, clock):
    capped(1)
    phone = log_in(http, "alice.1")
    clock.advance(60)
    log_in(http, "alice.2")
    for refused in (
        refresh(http, phone),
        token(http, {"grant_type": "refresh_token", "refresh_token": phone["refresh_token"]}),
    ):
        assert refused.status_code == 400, refused.body
        body = refused.json_body
        assert body["error"] == "invalid_grant" and body["reason"] == "session_evicted"
        assert "too many devices" in body["error_description"]
        assert set(body) == {"error", "error_description", "reason"}
        assert refused.headers["Cache-Control"] == "no-store"


def test_an_evicted_sessions_item_stays_so_that_its_holder_is_told(capped, http, clock, dynamodb):
    """Not REVOKED_ITEM_TTL (five minutes): up to EVICTED_NOTICE_TTL, or its own expiry."""
    from chalicelib.session_cap import EVICTED_NOTICE_TTL

    capped(1)
    old = log_in(http, "alice.1")
    clock.advance(60)
    log_in(http, "alice.2")
    (item,) = [i for i in table_items(dynamodb) if i["sk"]["S"] == f"SESSION#{sid_of(old)}"]
    assert int(item["expires_at"]["N"]) == int(clock.now) + EVICTED_NOTICE_TTL
    clock.advance(EVICTED_NOTICE_TTL - 1)
    assert refresh(http, old).json_body.get("reason") == "session_evicted"


def test_under_the_cap_nothing_ends_and_the_login_costs_one_query_more(
    capped, http, clock, dynamodb_requests
):
    capped(3)
    first = log_in(http, "alice.1")
    clock.advance(1)
    dynamodb_requests.clear()
    second = log_in(http, "alice.2")
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems", "Query"]
    clock.advance(1)
    dynamodb_requests.clear()
    log_in(http, "alice.3")
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems", "Query"]
    clock.advance(1)
    dynamodb_requests.clear()
    log_in(http, "alice.4")  # the fourth: the Query, and the one eviction's UpdateItem
    assert dynamodb_requests == [
        "PutItem",
        "UpdateItem",
        "TransactWriteItems",
        "Query",
        "UpdateItem",
    ]
    assert verdict(http, first["access_token"])["valid"] is False
    assert verdict(http, second["access_token"])["valid"] is True


def test_without_the_setting_a_returning_login_stays_three_requests(
    capped, http, dynamodb_requests
):
    capped(None)
    sessions = [log_in(http, f"alice.{i}") for i in range(1, 5)]
    dynamodb_requests.clear()
    log_in(http, "alice.9")
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems"]
    assert all(verdict(http, s["access_token"])["valid"] for s in sessions)


def test_a_replayed_code_ends_nothing(capped, http, clock, dynamodb):
    capped(1)
    first = log_in(http, "alice.1")
    before = table_items(dynamodb)
    again = log_in(http, "alice.1")
    assert sid_of(again) == sid_of(first)
    assert table_items(dynamodb) == before


def test_a_failed_login_ends_nothing(capped, http, dynamodb, clock):
    """A banned user's login is refused by its transaction: the cap is never reached."""
    from chalicelib.bans import Bans

    services = capped(1)
    first = log_in(http, "alice.1")
    Bans(services.store.users, services.sessions).ban(first["user"]["id"], now=int(clock.now))
    before = table_items(dynamodb)
    refused = post(http, "/auth/login", {"code": "alice.2", "appid": TEST_APPID})
    assert_error(refused, 403, "access_denied")
    assert [i for i in table_items(dynamodb) if i["sk"]["S"].startswith("SESSION#")] == [
        i for i in before if i["sk"]["S"].startswith("SESSION#")
    ]


def test_several_evictions_at_once_after_the_cap_was_lowered(capped, http, clock, log_lines):
    capped(None)
    old = []
    for i in range(1, 5):
        old.append(log_in(http, f"alice.{i}"))
        clock.advance(1)
    capped(2)  # the operator lowers the cap: the next login ends the three oldest
    log_lines.clear()
    new = log_in(http, "alice.9")
    assert [verdict(http, s["access_token"])["valid"] for s in old] == [False] * 3 + [True]
    assert verdict(http, new["access_token"])["valid"] is True
    (ended,) = events_of(log_lines, "SessionEnded")
    assert sorted(ended["session_ids"]) == sorted(sid_of(s) for s in old[:3])


def test_a_failed_eviction_never_fails_the_login(capped, http, clock, monkeypatch, log_lines):
    """DynamoDB fails the cap's Query: the login (already written) answers 200, the failure is
    counted and logged; the next login evicts what is over the cap."""
    services = capped(1)
    first = log_in(http, "alice.1")
    store = services.store.sessions
    real = store.of_user

    def unavailable(*args, **kwargs):
        raise StoreUnavailable("DynamoDB query failed: ThrottlingException")

    monkeypatch.setattr(store, "of_user", unavailable)
    second = log_in(http, "alice.2")
    assert verdict(http, first["access_token"])["valid"] is True
    metrics = [json.loads(line) for line in log_lines if '"SessionCapDeferred"' in line]
    assert metrics and metrics[0]["SessionCapDeferred"] == 1
    monkeypatch.setattr(store, "of_user", real)
    third = log_in(http, "alice.3")
    assert [verdict(http, s["access_token"])["valid"] for s in (first, second, third)] == [
        False,
        False,
        True,
    ]


def test_user_scope_counts_every_app(capped, http):
    capped(1, "user")
    a = log_in(http, "union-bob.1", TEST_APPID)
    b = log_in(http, "union-bob.2", APP_B)
    assert a["user"]["id"] == b["user"]["id"]
    assert verdict(http, a["access_token"])["valid"] is False


def test_app_scope_counts_only_the_logging_in_apps_sessions(capped, http, clock):
    capped(1, "app")
    a = log_in(http, "union-bob.1", TEST_APPID)
    clock.advance(1)
    b = log_in(http, "union-bob.2", APP_B)
    assert a["user"]["id"] == b["user"]["id"]
    assert verdict(http, a["access_token"])["valid"] is True  # another app's: not counted
    clock.advance(1)
    b2 = log_in(http, "union-bob.3", APP_B)
    assert verdict(http, b["access_token"])["valid"] is False
    assert verdict(http, a["access_token"])["valid"] is True
    assert verdict(http, b2["access_token"])["valid"] is True
    listed = http.http.get("/auth/sessions", headers=bearer(b2["access_token"])).json_body
    assert sorted(s["id"] for s in listed["sessions"]) == sorted([sid_of(a), sid_of(b2)])


def test_least_recently_used_counts_a_refresh_or_else_the_login(capped, http, clock):
    """Never refreshed: its login time; refreshed: its last refresh (ties: the older login)."""
    capped(3)
    a = log_in(http, "alice.1")  # t0
    clock.advance(100)
    b = log_in(http, "alice.2")  # t0 + 100
    clock.advance(100)
    c = log_in(http, "alice.3")  # t0 + 200
    clock.advance(100)
    a = refresh(http, a).json_body  # used at t0 + 300
    clock.advance(100)
    log_in(http, "alice.4")  # b is the least recently used
    assert [verdict(http, s["access_token"])["valid"] for s in (a, b, c)] == [True, False, True]
    clock.advance(100)
    log_in(http, "alice.5")  # then c
    assert [verdict(http, s["access_token"])["valid"] for s in (a, c)] == [True, False]


def test_the_admin_listing_shows_why(capped, http, clock):
    services = capped(1)
    old = log_in(http, "alice.1")
    clock.advance(1)
    log_in(http, "alice.2")
    session = services.sessions.find(old["user"]["id"], sid_of(old))
    assert (session.revoked_reason, session.revoked_at) == ("evicted", START + 1)
