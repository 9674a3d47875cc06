"""The jscode2session circuit breaker and the abuse limits through the service and HTTP surface.

The stub WeChat (`err-45011`, `err--1`, `timeout` codes) and moto; the clock is injected and
advanced. The breaker opens on the app's failure rate over a sliding window (chalicelib/wechat/
breaker.py), never on one answer, and never on WeChat's per-user 45011.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from chalicelib import runtime
from chalicelib.errors import (
    RateLimited,
    WeChatBusy,
    WeChatRateLimited,
    WeChatUnavailable,
)
from chalicelib.limits import Limit
from chalicelib.wechat.breaker import (
    CACHE_SECONDS,
    OPEN_SECONDS,
    REPORTS_PER_WINDOW,
    open_period,
)
from tests.conftest import START, TEST_APPID, table_items

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


def fail(svc: runtime.Services, code: str, error: type[Exception] = WeChatUnavailable) -> None:
    with pytest.raises(error):
        login(svc, code)


def warm(svc: runtime.Services, clock, user: str = "warm") -> None:
    """A container past its cold start and its first read: it reports from now on. Its last
    login is one successful call in its counts."""
    login(svc, f"{user}.0")
    clock.advance(CACHE_SECONDS)
    login(svc, f"{user}.1")


def breaker_item(dynamodb) -> dict | None:
    items = [i for i in table_items(dynamodb) if i["pk"]["S"] == f"BREAKER#{TEST_APPID}"]
    return items[0] if items else None


def test_periods_double_up_to_a_minute() -> None:
    assert [open_period(n) for n in range(1, 7)] == [10, 20, 40, 60, 60, 60]


def test_45011_from_one_user_answers_that_login_alone(services, wechat, clock, dynamodb) -> None:
    """WeChat's 45011 on jscode2session is one user's limit (100 a minute for each user): that
    login is refused (Retry-After 60), and ten other users log in, now and at every sync."""
    warm(services, clock)
    with pytest.raises(WeChatRateLimited) as limited:
        login(services, "err-45011")
    assert limited.value.retry_after == 60
    for n in range(10):
        assert login(services, f"user{n}.1").tokens.user_id
        clock.advance(1)
    assert not services.breaker.state.is_open(services.now())
    item = breaker_item(dynamodb)
    assert item is None or "open_until" not in item


def test_a_single_busy_answer_opens_nothing(services, wechat, clock) -> None:
    warm(services, clock)
    fail(services, "err--1", WeChatBusy)
    for n in range(2 * CACHE_SECONDS):
        assert login(services, f"user{n}.1").tokens.user_id
        clock.advance(1)
    assert services.breaker.state.open_until == 0


def test_a_run_of_failures_over_the_threshold_opens_it(services, wechat, clock) -> None:
    """20 calls in the window, half of them failed (-1 and timeouts): the next sync reports
    them, trips the breaker, and refuses without calling WeChat."""
    warm(services, clock)
    clock.advance(1)
    for n in range(5):
        fail(services, f"err--1.{n}", WeChatBusy)
        fail(services, f"timeout.{n}")
    for n in range(9):  # and warm's one
        login(services, f"user{n}.1")
    clock.advance(CACHE_SECONDS - 1)
    calls = wechat.calls
    with pytest.raises(WeChatUnavailable) as refused:
        login(services, "alice.1")
    assert wechat.calls == calls  # refused without calling WeChat
    assert refused.value.retry_after == OPEN_SECONDS
    assert services.breaker.state.reason == "failure_rate"


@pytest.mark.parametrize(("failures", "successes"), [(9, 10), (18, 0)])  # and warm's one
def test_under_the_rate_or_the_minimum_it_stays_closed(
    services, wechat, clock, failures, successes
) -> None:
    warm(services, clock)
    clock.advance(1)
    for n in range(failures):
        fail(services, f"err--1.{n}", WeChatBusy)
    for n in range(successes):
        login(services, f"user{n}.1")
    clock.advance(CACHE_SECONDS - 1)
    assert login(services, "alice.1").tokens.user_id  # reported, and not over: closed


def trip(svc: runtime.Services, clock) -> None:
    warm(svc, clock)
    for n in range(20):
        fail(svc, f"err--1.{n}", WeChatBusy)
    clock.advance(CACHE_SECONDS)
    fail(svc, "alice.0")  # the sync trips it
    assert svc.breaker.state.is_open(svc.now())


def test_after_the_open_period_successful_probes_close_it(services, wechat, clock, log_lines):
    trip(services, clock)
    clock.advance(OPEN_SECONDS)  # half-open
    calls = wechat.calls
    for n in range(3):  # AUTH_BREAKER_PROBES
        assert login(services, f"probe{n}.1").tokens.user_id
    assert wechat.calls == calls + 3
    assert any('"WeChatBreakerClosed"' in line for line in log_lines)
    for n in range(10):  # closed: every login goes through
        assert login(services, f"user{n}.1").tokens.user_id


def test_a_failed_probe_reopens_it_for_twice_as_long(services, wechat, clock) -> None:
    trip(services, clock)
    clock.advance(OPEN_SECONDS)
    login(services, "probe.1")
    fail(services, "err--1.probe", WeChatBusy)  # a probe fails: open again, doubled
    assert services.breaker.state.open_until == services.now() + 2 * OPEN_SECONDS
    assert services.breaker.state.reason == "probe_failed"
    calls = wechat.calls
    clock.advance(2 * OPEN_SECONDS - 1)
    fail(services, "alice.1")
    assert wechat.calls == calls


def test_half_open_lets_only_the_probes_through_at_once(services, wechat, clock) -> None:
    from chalicelib.wechat.breaker import PROBE

    trip(services, clock)
    clock.advance(OPEN_SECONDS)
    breaker = services.breaker
    now = services.now()
    assert [breaker.acquire(now) for _ in range(3)] == [PROBE] * 3
    with pytest.raises(WeChatUnavailable) as refused:
        breaker.acquire(now)  # every probe in flight
    assert refused.value.retry_after == 1
    breaker.record(PROBE, False, now)
    assert breaker.acquire(now) == PROBE


def test_other_wechat_answers_count_as_successes(services, wechat, clock) -> None:
    warm(services, clock)
    for n in range(20):
        with pytest.raises(Exception):  # noqa: B017 - only the breaker's state matters here
            login(services, f"err-{40029 if n % 2 else 40226}.{n}")
    clock.advance(CACHE_SECONDS)
    assert login(services, "alice.1").tokens.user_id
    assert not services.breaker.state.is_open(services.now())


def test_an_opening_is_shared_by_containers_on_one_table(settings, dynamodb, clock, wechat):
    first, second = build(settings, dynamodb, clock), build(settings, dynamodb, clock)
    warm(second, clock, "bob")  # the second container has read the breaker, closed
    trip(first, clock)
    calls = wechat.calls
    clock.advance(CACHE_SECONDS)  # the second one's copy is now due for a read
    with pytest.raises(WeChatUnavailable) as refused:
        login(second, "bob.2")
    assert wechat.calls == calls
    assert refused.value.retry_after == OPEN_SECONDS - CACHE_SECONDS


def test_failures_spread_over_containers_add_up(settings, dynamodb, clock, wechat) -> None:
    """Four containers, five failures each: none has the minimum alone, the app has it."""
    containers = [build(settings, dynamodb, clock) for _ in range(4)]
    for i, svc in enumerate(containers):
        warm(svc, clock, f"c{i}")
    clock.advance(1)
    for i, svc in enumerate(containers):
        for n in range(5):
            fail(svc, f"err--1.{i}.{n}", WeChatBusy)
    clock.advance(CACHE_SECONDS)
    for i, svc in enumerate(containers[:-1]):
        assert login(svc, f"c{i}.2").tokens.user_id  # reported: about 5, 10, 15 of 20
    fail(containers[-1], "c3.2")  # the fourth report reaches 20 failures: tripped
    clock.advance(CACHE_SECONDS)
    for i, svc in enumerate(containers[:-1]):
        fail(svc, f"c{i}.3")  # each one read the opening


def test_reports_are_sampled_and_weighted(settings, dynamodb, clock, wechat) -> None:
    """With the app's checks at 50 times REPORTS_PER_WINDOW, a container reports one sync in
    50, its counts weighted by 50, and reads the others."""
    from chalicelib.store.guards import WindowCounts
    from chalicelib.wechat.breaker import Breaker

    svc = build(settings, dynamodb, clock)
    window = svc.settings.breaker_window
    checks = 50 * REPORTS_PER_WINDOW
    draws = iter([0.5, 0.01])
    breaker = Breaker(svc.store.guards, appid=TEST_APPID, random_source=lambda: next(draws))
    start = START - START % window
    svc.store.guards.report_breaker(
        TEST_APPID, start, WindowCounts(0, 0, checks), drop=(), expires_at=START + 600
    )
    breaker.check(START)  # cold
    breaker.check(START + CACHE_SECONDS)  # the first sync: a read, the sampling learned
    for _ in range(3):
        breaker.record(breaker.acquire(START + CACHE_SECONDS), False, START + CACHE_SECONDS)
    breaker.check(START + 2 * CACHE_SECONDS)  # 0.5: read, the counts dropped
    assert breaker.state.windows[start].calls == 0
    for _ in range(2):
        breaker.record(breaker.acquire(START + 11), False, START + 11)
    breaker.check(START + 3 * CACHE_SECONDS)  # 0.01 < 1/50: reported, weighted
    reported = breaker.state.windows[start + window]
    assert reported.calls == pytest.approx(2 * 50)
    assert reported.checks == pytest.approx(50) and reported.failures == 0


def test_breaker_requests_are_amortized(services, wechat, clock, dynamodb) -> None:
    """Logins once a second for 20 s: the breaker item is read or reported to once per
    CACHE_SECONDS. The first login (the user's first: it creates the identity) is not
    counted."""
    sent: list[tuple[str, str]] = []
    dynamodb.meta.events.register(
        "before-parameter-build.dynamodb",
        lambda model, params, **_: sent.append(
            (model.name, params.get("Key", {}).get("pk", {}).get("S", ""))
        ),
    )
    login(services, "carol.0")
    clock.advance(1)
    sent.clear()
    for n in range(1, 21):
        login(services, f"carol.{n}")
        clock.advance(1)
    breaker = [op for op, pk in sent if pk.startswith("BREAKER#")]
    assert 20 // CACHE_SECONDS - 1 <= len(breaker) <= 20 // CACHE_SECONDS
    assert breaker[0] == "GetItem"  # the first sync reads, the next ones report
    assert set(breaker[1:]) == {"UpdateItem"}
    assert len(sent) == 3 * 20 + len(breaker)  # a returning login: 3, and the amortized one


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


def test_45011_over_http_is_429_for_that_login_and_ten_others_log_in(
    settings, dynamodb, clock, wechat, http
) -> None:
    client = http(build(settings, dynamodb, clock))
    assert post(client, "/auth/login", {"code": "warm.0"}).status_code == 200
    clock.advance(CACHE_SECONDS)
    assert assert_slow_down(post(client, "/auth/login", {"code": "err-45011"})) == 60
    for n in range(10):
        assert post(client, "/auth/login", {"code": f"user{n}.1"}).status_code == 200
        clock.advance(1)


def test_an_open_breaker_answers_503_with_retry_after(
    settings, dynamodb, clock, wechat, http
) -> None:
    svc = build(settings, dynamodb, clock)
    client = http(svc)
    trip(svc, clock)
    busy = post(client, "/auth/login", {"code": "alice.2"})
    assert assert_slow_down(busy, 503, "temporarily_unavailable") == OPEN_SECONDS


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
    from chalicelib.wechat.breaker import FAILURE_RATE, Breaker

    store = Store(*table).guards
    first, second = Breaker(store, appid="wx-a"), Breaker(store, appid="wx-a")
    other_app = Breaker(store, appid="wx-b")
    first.trip(FAILURE_RATE, START)
    first.trip(FAILURE_RATE, START + 10)  # a repeated trip: 20 s, until START + 30
    state = second.trip(FAILURE_RATE, START + 11)  # knows of no trip: would open until START + 21
    assert state.open_until == START + 30 and state.trips == 2  # the item's, kept
    assert second.state == state
    other_app.check(START)  # cold: closed without a read
    other_app.check(START + 12)  # read: another appid's breaker is its own
    third = Breaker(store, appid="wx-a", cache_seconds=0)
    third.check(START + 28)  # a cold start reads nothing: taken as closed
    with pytest.raises(WeChatUnavailable):
        third.check(START + 29)  # its first read finds the opening


def test_reports_add_up_and_old_windows_go(table) -> None:  # noqa: F811
    """ADD of weighted counts, REMOVE of old windows, the item returned: one UpdateItem."""
    from chalicelib.store import Store
    from chalicelib.store.guards import WindowCounts

    guards = Store(*table).guards
    guards.report_breaker("wx-a", 100, WindowCounts(3, 1, 1), drop=(), expires_at=START)
    guards.report_breaker("wx-a", 110, WindowCounts(2.5, 0.5, 0.5), drop=(), expires_at=START)
    state = guards.report_breaker(
        "wx-a", 110, WindowCounts(4, 4, 2), drop=(90, 100), expires_at=START
    )
    assert set(state.windows) == {110}
    assert state.windows[110] == WindowCounts(6.5, 4.5, 2.5)
    assert guards.breaker("wx-a").windows == state.windows
    assert guards.breaker("wx-b") is None


def test_a_trip_drops_the_counts_that_led_to_it(table) -> None:  # noqa: F811
    from chalicelib.store import Store
    from chalicelib.store.guards import BreakerState, WindowCounts

    guards = Store(*table).guards
    guards.report_breaker("wx-a", 100, WindowCounts(30, 20, 1), drop=(), expires_at=START)
    guards.trip_breaker(
        "wx-a",
        BreakerState(open_until=125, reason="failure_rate", trips=1),
        now=115,
        expires_at=185,
        drop=(110, 100),
    )
    state = guards.breaker("wx-a")
    assert state.open_until == 125 and state.windows == {}
