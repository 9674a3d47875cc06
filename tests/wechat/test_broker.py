"""The access-token broker against moto and DynamoDB Local, and the fake WeChat over loopback HTTP.

Every test injects the clock (shared by the broker and the fake) and a sleep that advances it:
nothing waits for an expiry. The concurrency across processes is in
tests/integration/test_broker_processes.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from chalicelib import crypto
from chalicelib.errors import (
    WeChatConfigError,
    WeChatRateLimited,
    WeChatTokenInvalid,
    WeChatUnavailable,
)
from chalicelib.logs import Metrics
from chalicelib.store import Store, wxtoken_pk
from chalicelib.wechat import broker as broker_module
from chalicelib.wechat.broker import (
    EXPIRY_MARGIN,
    FORCE_INTERVAL,
    LEASE_SECONDS,
    MAX_POLLS,
    REFRESH_AHEAD,
    AccessTokenBroker,
)
from chalicelib.wechat.client import WeChatClient, check_token_errcode
from devserver.fake_wechat import API_DOMAIN_IP_PATH, STABLE_TOKEN_PATH, FakeWeChat
from tests.conftest import BACKENDS, START, FakeClock, backend_table

APPID = "wx-broker-appid"
SECRET = "broker-app-secret-0123456789abcdef"
TTL = 7200  # the fake's expires_in


@pytest.fixture(params=BACKENDS)
def table(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    with backend_table(request, "broker") as created:
        yield created


@pytest.fixture
def store(table: tuple[Any, str]) -> Store:
    return Store(*table)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeWeChat]:
    with FakeWeChat(APPID, SECRET, clock=clock) as server:
        yield server


class Sleeps(list):
    """The injected sleep: records each wait and advances the clock by it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.hook: Callable[[int], None] | None = None

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.clock.advance(seconds)
        if self.hook is not None:
            self.hook(len(self))


@pytest.fixture
def sleeps(clock: FakeClock) -> Sleeps:
    return Sleeps(clock)


@pytest.fixture
def make_broker(
    store: Store, fake: FakeWeChat, clock: FakeClock, sleeps: Sleeps
) -> Callable[..., AccessTokenBroker]:
    """A broker as one container has it (its own WeChat client), sharing the table and fake."""

    def make(**overrides: Any) -> AccessTokenBroker:
        kwargs: dict[str, Any] = {
            "appid": APPID,
            "clock": clock,
            "sleep": sleeps,
            "metrics": Metrics("test"),
            "secret": lambda: SECRET,
            "rand_below": lambda n: 0,  # refresh exactly REFRESH_AHEAD[0] s before expiry
        }
        kwargs.update(overrides)
        wechat = WeChatClient(
            base_url=fake.url,
            appid=APPID,
            secret=kwargs["secret"],
            sleep=lambda _: None,
            http=requests.Session(),
        )
        return AccessTokenBroker(store.wechat, wechat, **kwargs)

    return make


@pytest.fixture
def broker(make_broker: Callable[..., AccessTokenBroker]) -> AccessTokenBroker:
    return make_broker()


def stable_calls(fake: FakeWeChat) -> int:
    return fake.calls_to(STABLE_TOKEN_PATH)


def downstream(fake: FakeWeChat) -> Callable[[str], dict[str, Any]]:
    """A WeChat API called with the access token (get_api_domain_ip), as a careful caller
    does it: WeChatTokenInvalid when WeChat refuses the token."""
    calls: list[str] = []

    def call(token: str) -> dict[str, Any]:
        calls.append(token)
        response = requests.get(
            f"{fake.url}{API_DOMAIN_IP_PATH}", params={"access_token": token}, timeout=10
        )
        body = response.json()
        check_token_errcode(body)
        return body

    call.calls = calls  # type: ignore[attr-defined]
    return call


def token_item(table: tuple[Any, str]) -> dict[str, Any]:
    client, name = table
    key = {"pk": {"S": wxtoken_pk(APPID)}, "sk": {"S": "TOKEN"}}
    return client.get_item(TableName=name, Key=key, ConsistentRead=True)["Item"]


def all_items(table: tuple[Any, str]) -> list[dict[str, Any]]:
    client, name = table
    return client.scan(TableName=name, ConsistentRead=True)["Items"]


def metric_lines(log_lines: list[str], name: str) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in log_lines if line.startswith('{"_aws"')]
    return [line for line in found if name in line]


# -- the cache ---------------------------------------------------------------------------------


def test_first_token_is_fetched_once_and_then_served_from_the_table(
    broker, make_broker, fake, table
) -> None:
    first = broker.token()
    again = broker.token()
    other_container = make_broker().token()

    assert first == again == other_container
    assert stable_calls(fake) == 1
    assert fake.tokens.check_access_token(first) == 0


def test_the_token_is_stored_sealed_never_in_plaintext(broker, table) -> None:
    token = broker.token()

    item = token_item(table)
    assert token not in json.dumps(all_items(table), default=repr)
    assert token.encode() not in item["sealed_token"]["B"]
    context = b"wechat-access-token|" + APPID.encode()
    assert crypto.unseal(SECRET, item["sealed_token"]["B"], context=context) == (token.encode())
    assert int(item["token_expires_at"]["N"]) == START + TTL
    assert int(item["expires_at"]["N"]) > START + TTL  # the TTL attribute outlives the token
    assert "lease_until" not in item  # released once the token is stored


def test_a_token_sealed_under_another_app_secret_is_not_used(make_broker, fake) -> None:
    make_broker().token()
    with pytest.raises(WeChatConfigError):  # it fetched again (and the fake knows no such secret)
        make_broker(secret=lambda: "another-secret").token()
    assert stable_calls(fake) == 2


def test_current_answers_how_long_the_token_may_be_used(broker, clock) -> None:
    brokered = broker.current()
    assert brokered.expires_in(int(clock())) == TTL - EXPIRY_MARGIN
    clock.advance(1000)
    assert broker.current().expires_in(int(clock())) == TTL - EXPIRY_MARGIN - 1000


# -- per container (issue #21: the item was read on every use, up to 41 times under a lease) ----


@pytest.fixture
def sent(table: tuple[Any, str]) -> list[tuple[str, dict[str, Any]]]:
    """Every request sent to the table: (operation, its parameters)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    table[0].meta.events.register(
        "before-parameter-build.dynamodb",
        lambda params, model, **_: calls.append((model.name, dict(params))),
    )
    return calls


def operations(sent: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [operation for operation, _ in sent]


def test_a_container_reads_the_item_once_until_its_moment(broker, make_broker, sent) -> None:
    first = broker.token()
    assert operations(sent) == ["GetItem", "UpdateItem", "UpdateItem"]  # read, lease, store
    sent.clear()
    for _ in range(40):
        assert broker.token() == first
        assert broker.current().access_token == first
    assert sent == []  # 80 uses, no request

    other = make_broker()  # another container: one read, eventually consistent, no write
    for _ in range(41):
        assert other.token() == first
    assert operations(sent) == ["GetItem"]
    assert sent[0][1]["ConsistentRead"] is False


def test_at_its_moment_a_container_takes_the_token_another_refreshed_without_a_write(
    make_broker, fake, clock, sent
) -> None:
    spread = (120 - EXPIRY_MARGIN) // 2  # refresh_at is 120 s before expiry (rand 0)
    early = make_broker()  # its moment: refresh_at itself
    late = make_broker(rand_below=lambda n: n - 1 if n == spread else 0)  # refresh_at + 29 s
    old = early.token()
    assert late.token() == old
    clock.advance(TTL - 120)
    sent.clear()
    assert late.token() == old  # not its moment yet: no request
    assert sent == []
    new = early.token()  # its moment: read, lease, fetch, store
    assert new != old and stable_calls(fake) == 2
    clock.advance(spread - 1)
    sent.clear()
    assert late.token() == new
    assert operations(sent) == ["GetItem"]  # it found the new token: no lease attempt
    assert stable_calls(fake) == 2


def test_threads_of_one_container_make_one_lease_attempt(make_broker, fake, sent) -> None:
    broker = make_broker(sleep=lambda seconds: time.sleep(0.01))
    threads = 8
    barrier = threading.Barrier(threads)
    tokens: list[str] = []

    def use() -> None:
        barrier.wait(timeout=30)
        tokens.append(broker.token())

    workers = [threading.Thread(target=use) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(tokens) == threads and len(set(tokens)) == 1
    assert operations(sent) == ["GetItem", "UpdateItem", "UpdateItem"]  # the others waited
    assert stable_calls(fake) == 1


def test_a_waiting_container_only_reads_while_the_lease_is_held(
    broker, store, fake, clock, sleeps, sent
) -> None:
    now = int(clock())
    another_holds_the_lease(store, now, until=now + LEASE_SECONDS)
    context = b"wechat-access-token|" + APPID.encode()

    def holder_finishes(polls: int) -> None:
        if polls == 3:
            store.wechat.put(
                APPID,
                sealed_token=crypto.seal(SECRET, b"wxat-from-the-holder", context=context),
                fetched_at=now,
                token_expires_at=now + TTL,
                refresh_at=now + TTL - 120,
                expires_at=now + TTL + 86400,
                lease_until=now + LEASE_SECONDS,
            )

    sleeps.hook = holder_finishes
    sent.clear()
    assert broker.token() == "wxat-from-the-holder"
    writes = [op for op in operations(sent) if op != "GetItem"]
    assert writes == ["UpdateItem"]  # the test's own put; the waiting container wrote nothing
    assert operations(sent).count("GetItem") == 4  # the first read and one per poll
    assert all(params["ConsistentRead"] is False for op, params in sent if op == "GetItem")


def test_the_read_that_decides_a_forced_refresh_is_strongly_consistent(broker, fake, sent):
    broker.token()
    fake.tokens.invalidate()
    sent.clear()
    broker.call(downstream(fake))
    reads = [params["ConsistentRead"] for op, params in sent if op == "GetItem"]
    assert reads == [True]  # one read, then the forced refresh's writes
    assert fake.tokens.forced == 1


# -- ahead of expiry ---------------------------------------------------------------------------


def test_refreshed_ahead_of_expiry_at_its_jittered_moment(broker, fake, clock) -> None:
    first = broker.token()
    clock.advance(TTL - 121)  # rand_below 0: refresh_at is 120 s before expiry
    assert broker.token() == first
    assert stable_calls(fake) == 1

    clock.advance(1)
    second = broker.token()
    assert stable_calls(fake) == 2
    assert second != first  # the fake renews in the last 5 minutes, as WeChat does
    assert broker.token() == second and stable_calls(fake) == 2


def test_the_refresh_moment_is_jittered_in_the_last_five_to_two_minutes(make_broker, table):
    moments = []
    for below in (lambda n: 0, lambda n: n - 1):
        broker = make_broker(rand_below=below)
        table[0].delete_item(  # forget the cached token
            TableName=table[1], Key={"pk": {"S": wxtoken_pk(APPID)}, "sk": {"S": "TOKEN"}}
        )
        broker.token()
        item = token_item(table)
        moments.append(int(item["token_expires_at"]["N"]) - int(item["refresh_at"]["N"]))
    assert moments == [120, 300]


def test_a_failed_refresh_ahead_serves_the_old_token_until_the_margin(broker, fake, clock):
    first = broker.token()
    clock.advance(TTL - 120)
    fake.tokens.fail_next(-1, count=2)  # WeChat busy twice: the client gives up
    assert broker.token() == first  # still valid for 2 minutes: served
    assert stable_calls(fake) == 3

    clock.advance(60)  # now exactly EXPIRY_MARGIN before expiry: never used any more
    fake.tokens.fail_next(-1, count=2)
    with pytest.raises(WeChatUnavailable):
        broker.token()
    assert broker.token() != first  # WeChat back: a new one


def test_a_token_answered_again_unchanged_is_not_refetched_at_every_request(
    make_broker, fake, clock, table
) -> None:
    def draw(n: int) -> int:  # refresh 300 s before expiry; each container's moment: refresh_at
        return n - 1 if n == REFRESH_AHEAD[1] - REFRESH_AHEAD[0] + 1 else 0

    make_broker(rand_below=draw).token()
    # WeChat answers the same token until its own renewal (5 minutes before expiry): a
    # refresh due 320 s before expiry gets the old one back, and waits REFRESH_RETRY seconds.
    item = token_item(table)
    make_broker()._store.put(
        APPID,
        sealed_token=item["sealed_token"]["B"],
        fetched_at=START,
        token_expires_at=START + TTL,
        refresh_at=START + TTL - 320,
        expires_at=START + TTL + 86400,
        lease_until=None,
    )
    broker = make_broker(rand_below=draw)  # a container that reads the item as it is now
    clock.advance(TTL - 320)
    broker.token()
    assert stable_calls(fake) == 2
    for _ in range(3):
        broker.token()
        make_broker(rand_below=draw).token()  # other containers read the item: not due yet
    assert stable_calls(fake) == 2
    assert int(token_item(table)["refresh_at"]["N"]) == int(clock()) + 60
    clock.advance(60)
    broker.token()
    assert stable_calls(fake) == 3  # and now WeChat's renewal has come: a new token


# -- the lease ---------------------------------------------------------------------------------


def another_holds_the_lease(store: Store, now: int, *, until: int) -> None:
    store.wechat.lease(APPID, now=now, lease_until=until, seen_fetched_at=None)


def test_a_request_that_read_before_another_stored_does_not_fetch_again(
    make_broker, store, fake, clock
) -> None:
    """The race the 8-process test found: A reads (nothing), B leases, fetches, stores and
    releases; then A's lease must fail (the item changed), and A uses B's token."""
    a, b = make_broker(), make_broker()
    real_get = store.wechat.get
    reads: list[int] = []

    def get_then_b_stores(appid: str, **kwargs: Any):
        record = real_get(appid, **kwargs)
        reads.append(1)
        if len(reads) == 1:
            b.token()  # between A's read and A's lease
        return record

    store.wechat.get = get_then_b_stores  # type: ignore[method-assign]
    token = a.token()
    store.wechat.get = real_get  # type: ignore[method-assign]

    assert stable_calls(fake) == 1
    assert token == b.token()


def test_a_waiting_request_reads_what_the_lease_holder_stored(
    broker, store, fake, clock, sleeps
) -> None:
    now = int(clock())
    another_holds_the_lease(store, now, until=now + LEASE_SECONDS)
    context = b"wechat-access-token|" + APPID.encode()

    def holder_finishes(polls: int) -> None:
        if polls == 3:
            store.wechat.put(
                APPID,
                sealed_token=crypto.seal(SECRET, b"wxat-from-the-holder", context=context),
                fetched_at=now,
                token_expires_at=now + TTL,
                refresh_at=now + TTL - 120,
                expires_at=now + TTL + 86400,
                lease_until=now + LEASE_SECONDS,
            )

    sleeps.hook = holder_finishes
    assert broker.token() == "wxat-from-the-holder"
    assert stable_calls(fake) == 0
    assert len(sleeps) == 3


def test_a_lease_whose_holder_died_is_taken_once_it_expires(broker, store, fake, clock, sleeps):
    now = int(clock())
    another_holds_the_lease(store, now, until=now + 2)  # taken 13 s ago, then it died

    token = broker.token()

    assert fake.tokens.check_access_token(token) == 0
    assert stable_calls(fake) == 1
    assert 2 <= sum(sleeps) <= 3  # waited only until the lease had passed


def test_waiting_is_bounded_then_503(broker, store, fake, clock, sleeps) -> None:
    now = int(clock())
    another_holds_the_lease(store, now, until=now + 3600)  # a stuck lease

    with pytest.raises(WeChatUnavailable) as raised:
        broker.token()

    assert len(sleeps) == MAX_POLLS
    assert stable_calls(fake) == 0
    assert raised.value.retry_after == 5


def test_a_failed_fetch_releases_the_lease(broker, fake, table) -> None:
    fake.tokens.fail_next(45009)
    with pytest.raises(WeChatRateLimited):
        broker.token()
    assert "lease_until" not in token_item(table)
    assert broker.token()  # at once, without waiting for the lease


def test_a_fetch_whose_lease_was_taken_over_does_not_overwrite_the_table(
    broker, store, fake, clock, table
) -> None:
    """A slow normal fetch, overtaken by a forced refresh (which takes the lease over): its
    put must not replace the forced, newer token."""
    broker.token()
    real_stable_token = broker._wechat.stable_token

    def slow_then_overtaken(*, force_refresh: bool = False):
        fetched = real_stable_token(force_refresh=force_refresh)
        store.wechat.claim_forced_refresh(APPID, now=int(clock()), interval=30, lease_until=10**10)
        store.wechat.put(
            APPID,
            sealed_token=b"newer",
            fetched_at=int(clock()),
            token_expires_at=int(clock()) + TTL,
            refresh_at=int(clock()) + TTL - 120,
            expires_at=int(clock()) + TTL + 86400,
            lease_until=10**10,
        )
        return fetched

    clock.advance(TTL - 120)  # the refresh ahead of expiry is due
    broker._wechat.stable_token = slow_then_overtaken  # type: ignore[method-assign]
    assert broker.token()  # it still answers with what WeChat gave it
    assert token_item(table)["sealed_token"]["B"] == b"newer"


def test_a_forced_refresh_refused_with_45011_uses_the_token_another_system_forced(
    broker, fake, clock
) -> None:
    old = broker.token()
    fake.tokens.invalidate()
    fake.tokens.fail_next(45011)  # "forced less than 30 s ago", by someone else
    assert broker.call(downstream(fake)) == {"ip_list": ["127.0.0.1"]}
    assert broker.token() != old
    assert stable_calls(fake) == 3  # the first fetch, the refused force, the normal fetch


# -- a refused token: call() -------------------------------------------------------------------


def test_call_passes_the_token_and_returns_the_answer(broker, fake) -> None:
    request = downstream(fake)
    assert broker.call(request) == {"ip_list": ["127.0.0.1"]}
    assert request.calls == [broker.token()]


def test_a_refused_token_is_force_refreshed_once_and_the_call_retried(
    broker, fake, log_lines
) -> None:
    old = broker.token()
    fake.tokens.invalidate()  # WeChat now answers 40001 to the cached token
    request = downstream(fake)

    assert broker.call(request) == {"ip_list": ["127.0.0.1"]}

    assert request.calls[0] == old and request.calls[1] != old and len(request.calls) == 2
    assert fake.tokens.forced == 1
    assert broker.token() == request.calls[1]
    forced = metric_lines(log_lines, "WeChatTokenForceRefresh")
    assert len(forced) == 1 and forced[0]["used_today"] == 1
    assert len(metric_lines(log_lines, "WeChatTokenRejected")) == 1


def test_a_token_refused_after_another_request_replaced_it_is_not_forced_again(
    make_broker, fake
) -> None:
    one, other = make_broker(), make_broker()
    old = one.token()
    fake.tokens.invalidate()
    seen: list[str] = []

    def slow_request(token: str) -> str:
        seen.append(token)
        if len(seen) == 1:
            other.call(downstream(fake))  # meanwhile another container forces a refresh
            raise WeChatTokenInvalid("refused")
        return token

    assert one.call(slow_request) != old
    assert seen[0] == old
    assert fake.tokens.forced == 1  # the cache already held another token: no second force


def test_never_loops_and_forces_at_most_once_per_30_seconds(broker, fake, clock, sleeps):
    attempts: list[str] = []

    def always_refused(token: str) -> None:
        attempts.append(token)
        raise WeChatTokenInvalid("refused")

    with pytest.raises(WeChatTokenInvalid):
        broker.call(always_refused)
    assert len(attempts) == 2 and fake.tokens.forced == 1

    clock.advance(5)
    with pytest.raises(WeChatUnavailable):  # the window's refresh is used: wait, then give up
        broker.call(always_refused)
    assert len(attempts) == 3 and fake.tokens.forced == 1

    clock.advance(FORCE_INTERVAL)
    with pytest.raises(WeChatTokenInvalid):
        broker.call(always_refused)
    assert len(attempts) == 5 and fake.tokens.forced == 2


def test_the_daily_budget_of_forced_refreshes(make_broker, fake, clock, log_lines) -> None:
    broker = make_broker(daily_force_budget=2)

    def always_refused(token: str) -> None:
        raise WeChatTokenInvalid("refused")

    for _ in range(2):
        with pytest.raises(WeChatTokenInvalid):
            broker.call(always_refused)
        clock.advance(FORCE_INTERVAL + 1)
    with pytest.raises(WeChatRateLimited):
        broker.call(always_refused)
    assert fake.tokens.forced == 2
    assert len(metric_lines(log_lines, "WeChatTokenForceRefreshRefused")) == 1
    events = [json.loads(line) for line in log_lines if '"event"' in line]
    assert any(e["event"] == "wechat_force_refresh_budget_exhausted" for e in events)

    clock.advance(86400)  # WeChat's next day: a new budget
    with pytest.raises(WeChatTokenInvalid):
        broker.call(always_refused)
    assert fake.tokens.forced == 3


# On the real engine only: moto's conditional writes are not atomic across threads (its
# DynamoDB backend takes no lock), and this test is about the guarded write's atomicity.
@pytest.mark.integration
@pytest.mark.parametrize("table", ["dynamodb_local"], indirect=True)
def test_many_requests_refused_at_once_force_exactly_one_refresh(make_broker, fake, clock) -> None:
    count = 12
    brokers = [make_broker(sleep=lambda s: time.sleep(0.1)) for _ in range(count)]
    old = brokers[0].token()
    fake.tokens.invalidate()
    barrier = threading.Barrier(count)
    answered: list[str] = []
    lock = threading.Lock()

    def request(token: str) -> str:
        if check := fake.tokens.check_access_token(token):
            barrier.wait(timeout=30)  # every request has been refused before any re-reads
            check_token_errcode({"errcode": check})
        with lock:
            answered.append(token)
        return token

    results: list[str] = []
    errors: list[BaseException] = []

    def run(b: AccessTokenBroker) -> None:
        try:
            results.append(b.call(request))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(b,)) for b in brokers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert not errors
    assert len(results) == count and len(set(results)) == 1 and results[0] != old
    assert fake.tokens.forced == 1
    assert stable_calls(fake) == 2  # the first fetch, the one forced refresh


def test_no_token_in_any_log_line(broker, fake, clock, log_lines, caplog) -> None:
    caplog.set_level("DEBUG")
    # As logs.configure() does in the service: urllib3's request lines quote the query string
    # (a downstream call's access_token=...).
    caplog.set_level("WARNING", logger="urllib3")
    first = broker.token()
    fake.tokens.invalidate()
    broker.call(downstream(fake))
    clock.advance(TTL - 100)
    fake.tokens.fail_next(-1, count=2)
    broker.token()
    second = broker.token()
    everything = log_lines + [r.getMessage() for r in caplog.records]
    assert len(everything) >= 3
    for value in {first, second, SECRET}:
        assert not [line for line in everything if value in line]


def test_module_constants_keep_their_promises() -> None:
    low, high = broker_module.REFRESH_AHEAD
    assert EXPIRY_MARGIN < low < high <= 300  # inside WeChat's 5-minute early renewal
    assert MAX_POLLS * broker_module.POLL_INTERVAL < 29  # under API Gateway's timeout
