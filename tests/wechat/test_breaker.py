"""The jscode2session circuit breaker and the abuse limits through the service and HTTP surface.

The stub WeChat (`err-45011`, `err--1` codes) and moto; the clock is injected and advanced.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from chalicelib import runtime
from chalicelib.errors import RateLimited, WeChatBusy, WeChatRateLimited, WeChatUnavailable
from chalicelib.limits import Limit
from chalicelib.wechat.breaker import CACHE_SECONDS, OPEN_SECONDS, open_period
from tests.conftest import START, table_items

JSON = {"content-type": "application/json"}


def build(settings, dynamodb, clock, **changes) -> runtime.Services:
    return runtime.build(
        dataclasses.replace(settings, **changes),
        dynamodb=dynamodb,
        clock=clock,
        sleep=lambda _: None,
    )


def login(svc: runtime.Services, code: str):
    """A login as the route runs it: the per-IP limit and the breaker, then the exchange."""
    now = svc.now()
    svc.before_login("203.0.113.7", now)
    return svc.login.login(code, now)


def test_periods_double_up_to_a_minute() -> None:
    assert [open_period(n) for n in range(1, 7)] == [10, 20, 40, 60, 60, 60]


@pytest.mark.parametrize(
    ("code", "raised", "refused"),
    [
        ("err-45011", WeChatRateLimited, WeChatRateLimited),
        ("err--1", WeChatBusy, WeChatUnavailable),
    ],
)
def test_45011_and_busy_open_it_and_no_call_reaches_wechat_while_open(
    services, wechat, clock, code, raised, refused
) -> None:
    with pytest.raises(raised):
        login(services, code)
    calls = wechat.calls
    clock.advance(OPEN_SECONDS - 1)
    with pytest.raises(refused) as error:
        login(services, "alice.1")
    assert wechat.calls == calls  # refused without calling WeChat
    assert error.value.retry_after == 1
    clock.advance(1)  # closed: the next login is the probe, and goes through
    assert login(services, "alice.2").tokens.user_id
    assert wechat.calls == calls + 1


def test_a_failed_probe_reopens_it_for_twice_as_long(services, wechat, clock) -> None:
    with pytest.raises(WeChatRateLimited):
        login(services, "err-45011.1")
    clock.advance(OPEN_SECONDS)
    with pytest.raises(WeChatRateLimited):
        login(services, "err-45011.2")  # the probe
    assert services.breaker.state.open_until == int(clock()) + 2 * OPEN_SECONDS
    calls = wechat.calls
    clock.advance(2 * OPEN_SECONDS - 1)
    with pytest.raises(WeChatRateLimited):
        login(services, "alice.1")
    assert wechat.calls == calls


def test_other_wechat_errors_do_not_open_it(services, wechat) -> None:
    for code in ("err-40029", "err-40226"):
        with pytest.raises(Exception):  # noqa: B017 - only the breaker's state matters here
            login(services, code)
    assert not services.breaker.state.is_open(services.now())
    assert login(services, "alice.1").tokens.user_id


def test_it_is_shared_by_containers_on_one_table(settings, dynamodb, clock, wechat) -> None:
    first, second = build(settings, dynamodb, clock), build(settings, dynamodb, clock)
    login(second, "bob.1")  # the second container has read (taken) the breaker as closed
    with pytest.raises(WeChatRateLimited):
        login(first, "err-45011")
    calls = wechat.calls
    clock.advance(CACHE_SECONDS)  # the second one's copy is now due for a read
    with pytest.raises(WeChatRateLimited) as refused:
        login(second, "bob.2")
    assert wechat.calls == calls
    assert refused.value.retry_after == OPEN_SECONDS - CACHE_SECONDS
    # A third container, cold, opens it again on its own failure: the longest opening stays.
    third = build(settings, dynamodb, clock)
    with pytest.raises(WeChatRateLimited):
        login(third, "err-45011.2")
    assert third.breaker.state.open_until >= first.breaker.state.open_until


def test_the_breaker_read_is_amortized(services, wechat, clock, dynamodb_requests) -> None:
    """Logins once a second for 20 s: the breaker item is read once per CACHE_SECONDS. The
    first login (the user's first: it creates the identity) is not counted."""
    login(services, "carol.0")
    clock.advance(1)
    dynamodb_requests.clear()
    for n in range(1, 21):
        login(services, f"carol.{n}")
        clock.advance(1)
    reads = dynamodb_requests.count("GetItem")
    assert 20 // CACHE_SECONDS - 1 <= reads <= 20 // CACHE_SECONDS
    assert len(dynamodb_requests) == 3 * 20 + reads  # a returning login: 3, and the amortized read


# -- through HTTP ---------------------------------------------------------------------------------


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch):
    """A chalice.test.Client over the app wired to the given services."""
    from chalice.test import Client

    import app

    clients = []

    def make(svc: runtime.Services):
        monkeypatch.setattr(app, "_services", svc)
        client = Client(app.app)
        clients.append(client)
        return client

    yield make


def post(client, path, body):
    return client.http.post(path, headers=JSON, body=json.dumps(body))


def assert_slow_down(response, status=429, code="slow_down"):
    assert response.status_code == status, response.body
    assert response.json_body["error"] == code
    assert set(response.json_body) == {"error", "error_description"}
    assert int(response.headers["Retry-After"]) >= 1
    return int(response.headers["Retry-After"])


def test_an_open_breaker_answers_429_or_503_with_retry_after(
    settings, dynamodb, clock, wechat, http
) -> None:
    client = http(build(settings, dynamodb, clock))
    assert post(client, "/auth/login", {"code": "err-45011"}).status_code == 429
    assert assert_slow_down(post(client, "/auth/login", {"code": "alice.1"})) == OPEN_SECONDS
    clock.advance(OPEN_SECONDS)
    assert post(client, "/auth/login", {"code": "err--1"}).status_code == 503
    busy = post(client, "/auth/login", {"code": "alice.2"})
    assert assert_slow_down(busy, 503, "temporarily_unavailable") == 2 * OPEN_SECONDS


def test_login_per_ip_is_checked_before_anything_else(
    settings, dynamodb, clock, wechat, http
) -> None:
    client = http(build(settings, dynamodb, clock, limit_login_per_ip=Limit(2, 60)))
    assert post(client, "/auth/login", {"code": "alice.1"}).status_code == 200
    assert post(client, "/auth/login", {"nope": 1}).status_code == 400  # counted too
    before, calls = table_items(dynamodb), wechat.calls
    assert assert_slow_down(post(client, "/auth/login", {"code": "alice.2"})) == 60
    assert wechat.calls == calls
    assert table_items(dynamodb) == before  # nothing written, sessions as they were
    clock.advance(60)
    assert post(client, "/auth/login", {"code": "alice.3"}).status_code == 200


def test_login_per_openid_is_checked_after_the_exchange(settings, dynamodb, clock, wechat) -> None:
    svc = build(settings, dynamodb, clock, limit_login_per_openid=Limit(1, 300))
    login(svc, "alice.1")
    sessions = [i for i in table_items(dynamodb) if i["sk"]["S"].startswith("SESSION#")]
    login(svc, "bob.1")  # another openid has its own budget
    with pytest.raises(RateLimited) as refused:
        login(svc, "alice.2")
    assert refused.value.retry_after == 300
    after = table_items(dynamodb)
    claims = [i for i in after if i["pk"]["S"].startswith("LOGIN#")]
    assert all("sealed_response" in i for i in claims)  # the refused login's claim was freed
    alice = sessions[0]["pk"]["S"]
    assert [i for i in after if i["pk"]["S"] == alice and i["sk"]["S"].startswith("SESSION#")] == (
        sessions
    )


def test_refresh_is_one_request_unset_and_two_with_a_limit(
    settings, dynamodb, clock, wechat, dynamodb_requests
) -> None:
    plain = build(settings, dynamodb, clock)
    token = login(plain, "alice.1").tokens.refresh_token
    dynamodb_requests.clear()
    token = plain.sessions.refresh(token, START).refresh_token
    assert dynamodb_requests == ["UpdateItem"]

    limited = build(settings, dynamodb, clock, limit_refresh_per_session=Limit(2, 60))
    dynamodb_requests.clear()
    token = limited.sessions.refresh(token, START + 1).refresh_token
    assert dynamodb_requests == ["UpdateItem", "UpdateItem"]  # the counter, the rotation


def test_refresh_per_session_refuses_before_the_rotation(
    settings, dynamodb, clock, wechat, http
) -> None:
    svc = build(settings, dynamodb, clock, limit_refresh_per_session=Limit(1, 60))
    client = http(svc)
    first = login(svc, "alice.1").tokens.refresh_token
    second = login(svc, "bob.1").tokens.refresh_token
    token = post(client, "/auth/refresh", {"refresh_token": first}).json_body["refresh_token"]
    sessions = [i for i in table_items(dynamodb) if i["sk"]["S"].startswith("SESSION#")]
    assert assert_slow_down(post(client, "/auth/refresh", {"refresh_token": token})) == 60
    oauth = client.http.post(
        "/oauth/token",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=f"grant_type=refresh_token&refresh_token={token}",
    )
    assert_slow_down(oauth)  # the OAuth refresh grant counts against the same session
    assert [i for i in table_items(dynamodb) if i["sk"]["S"].startswith("SESSION#")] == sessions
    assert post(client, "/auth/refresh", {"refresh_token": second}).status_code == 200
    clock.advance(60)
    assert post(client, "/auth/refresh", {"refresh_token": token}).status_code == 200


# -- the shared item on both backends --------------------------------------------------------------

from tests.test_limits import table  # noqa: E402, F401 - the moto / DynamoDB Local fixture


def test_racing_trips_keep_the_longest_opening(table) -> None:  # noqa: F811
    from chalicelib.store import Store
    from chalicelib.wechat.breaker import QUOTA, Breaker

    store = Store(*table).guards
    first, second = Breaker(store, appid="wx-a"), Breaker(store, appid="wx-a")
    other_app = Breaker(store, appid="wx-b")
    first.trip(QUOTA, START)
    first.trip(QUOTA, START + 10)  # a repeated trip: 20 s, until START + 30
    state = second.trip(QUOTA, START + 11)  # knows of no trip: would open until START + 21
    assert state.open_until == START + 30 and state.trips == 2  # the item's, kept
    assert second.state == state
    other_app.check(START)  # cold: closed without a read
    other_app.check(START + 12)  # read: another appid's breaker is its own
    third = Breaker(store, appid="wx-a", cache_seconds=0)
    third.check(START + 28)  # a cold start reads nothing: taken as closed
    with pytest.raises(WeChatRateLimited):
        third.check(START + 29)  # its first read finds the opening
