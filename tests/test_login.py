"""Login: one WeChat exchange per code, replay of the same tokens, one user per openid."""

from __future__ import annotations

import json
import threading

import pytest

from chalicelib.errors import (
    GrantError,
    RequestError,
    StoreUnavailable,
    WeChatRateLimited,
    WeChatUnavailable,
    WeChatUserBlocked,
)
from chalicelib.login import LoginPending, user_id_for
from chalicelib.store import UserRecord
from chalicelib.store.logins import LoginRecord
from tests.conftest import START, TEST_APPID, stub_session_key, table_items

NONCE = "n0nce-" + "a" * 27  # a login_nonce, as the mini-program client sends one


@pytest.fixture
def login(services):
    return services.login


def test_first_login_creates_the_user_and_a_session(login, services, wechat):
    result = login.login("alice.1", START)
    assert result.is_new is True
    assert result.tokens.user_id == user_id_for(TEST_APPID, "openid-alice")
    user = services.store.users.get(result.tokens.user_id)
    assert (user.appid, user.openid, user.unionid) == (TEST_APPID, "openid-alice", None)
    assert wechat.calls == 1
    body = result.response(START)
    assert body["user"] == {"id": result.tokens.user_id, "is_new": True}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1800


def test_second_login_finds_the_user(login, services):
    first = login.login("alice.1", START)
    second = login.login("alice.2", START + 5)
    assert second.is_new is False
    assert second.tokens.user_id == first.tokens.user_id
    assert second.tokens.session_id != first.tokens.session_id
    assert len(services.store.sessions.of_user(first.tokens.user_id)) == 2


def session_of(tokens) -> tuple:
    """What a login's replay must keep: the session and its refresh token."""
    return (tokens.user_id, tokens.session_id, tokens.refresh_token, tokens.refresh_expires_at)


def test_same_code_again_returns_the_same_session_without_calling_wechat(
    login, wechat, dynamodb, services
):
    first = login.login("alice.1", START, nonce=NONCE)
    items = table_items(dynamodb)
    again = login.login("alice.1", START + 59, nonce=NONCE)
    assert wechat.calls == 1
    assert session_of(again.tokens) == session_of(first.tokens) and again.is_new is True
    assert table_items(dynamodb) == items
    # still the same five minutes after (the code's WeChat validity), for the first caller
    late = login.login("alice.1", START + 299, nonce=NONCE)
    assert session_of(late.tokens) == session_of(first.tokens)
    assert wechat.calls == 1
    # with an access token minted for the replay, of the same session
    claims = services.access_tokens.check(late.tokens.access_token, START + 299)
    assert (claims.subject, claims.session_id, claims.issued_at) == (
        first.tokens.user_id,
        first.tokens.session_id,
        START + 299,
    )


def test_a_replay_after_the_first_access_token_expired_gets_a_usable_one(
    services, settings, dynamodb, clock, wechat
):
    """AUTH_ACCESS_TTL shorter than the code's five minutes: the replay must not hand back the
    first, expired, access token (expires_in 0) but a new one."""
    from dataclasses import replace

    from chalicelib import runtime

    short = runtime.build(replace(settings, access_ttl=60), dynamodb=dynamodb, clock=clock)
    first = short.login.login("alice.1", START, nonce=NONCE)
    again = short.login.login("alice.1", START + 200, nonce=NONCE)

    assert again.response(START + 200)["expires_in"] == 60
    assert short.access_tokens.check(again.tokens.access_token, START + 200 + 60)
    assert again.tokens.refresh_token == first.tokens.refresh_token


def test_the_sealed_replay_holds_no_access_token(login, dynamodb):
    """The replay re-mints the access token, so the login record keeps only what names the
    session (and stays small: one write unit less per login)."""
    login.login("alice.1", START)
    login_items = [i for i in table_items(dynamodb) if i["pk"]["S"].startswith("LOGIN#")]
    assert len(login_items) == 1
    assert len(login_items[0]["sealed_response"]["B"]) < 250


def test_replay_after_the_window_goes_to_wechat_and_is_refused(login, wechat):
    login.login("alice.1", START)
    with pytest.raises(GrantError):
        login.login("alice.1", START + 300)
    assert wechat.calls == 2


def test_replay_after_the_session_moved_on_is_refused(login, services):
    first = login.login("alice.1", START)
    services.sessions.refresh(first.tokens.refresh_token, START + 1)
    with pytest.raises(GrantError):
        login.login("alice.1", START + 2)


def test_replay_after_logout_is_refused(login, services):
    first = login.login("alice.1", START)
    services.sessions.revoke(first.tokens.user_id, first.tokens.session_id, now=START + 1)
    with pytest.raises(GrantError):
        login.login("alice.1", START + 2)


def test_the_login_record_holds_no_token_and_no_session_key(login, dynamodb):
    result = login.login("union-bob.1", START)
    dump = json.dumps(table_items(dynamodb), default=repr)
    for secret in (
        result.tokens.refresh_token,
        result.tokens.access_token,
        "alice.1",
        stub_session_key(TEST_APPID, "union-bob.1"),
    ):
        assert secret not in dump


def test_unionid_is_stored_and_linked(login, services):
    result = login.login("union-bob.1", START)
    user = services.store.users.get(result.tokens.user_id)
    assert user.unionid == "unionid-union-bob"
    linked = services.store.identities.users_of_unionid("unionid-union-bob")
    assert linked == [result.tokens.user_id]


def test_unionid_appearing_later_is_linked_to_the_existing_user(services, wechat):
    login = services.login
    # a user created earlier without a unionid
    user_id = user_id_for(TEST_APPID, "openid-union-carol")
    services.store.users.upsert(UserRecord(user_id, TEST_APPID, "openid-union-carol", None, START))
    result = login.login("union-carol.1", START + 10)
    assert result.is_new is False and result.tokens.user_id == user_id
    user = services.store.users.get(user_id)
    assert (user.unionid, user.created_at) == ("unionid-union-carol", START)
    assert services.store.identities.users_of_unionid("unionid-union-carol") == [user_id]


def test_the_first_unionid_stays(login, services):
    user_id = user_id_for(TEST_APPID, "openid-union-dora")
    services.store.users.upsert(
        UserRecord(user_id, TEST_APPID, "openid-union-dora", "unionid-first", START)
    )
    login.login("union-dora.1", START + 10)
    assert services.store.users.get(user_id).unionid == "unionid-first"


@pytest.mark.parametrize(
    ("code", "requests"),
    [
        # the claim, the identity (none yet), the profile, the identity's Put, the transaction
        ("alice.1", ["PutItem", "UpdateItem", "UpdateItem", "PutItem", "TransactWriteItems"]),
        # and the unionid's owner: a Query, then its guarded Put (chalicelib/identity/graph.py)
        (
            "union-bob.1",
            ["PutItem", "UpdateItem", "Query", "PutItem", "UpdateItem", "PutItem"]
            + ["TransactWriteItems"],
        ),
    ],
)
def test_a_first_login_creates_the_identity(
    login, services, wechat, dynamodb_requests, code, requests
):
    services.apps.apps()  # the container's app registry, read once (a Query), then cached
    dynamodb_requests.clear()
    login.login(code, START)
    assert dynamodb_requests == requests
    assert wechat.calls == 1


def test_a_returning_login_is_three_dynamodb_requests(login, wechat, dynamodb_requests):
    login.login("union-bob.1", START)
    dynamodb_requests.clear()
    # within CACHE_SECONDS of the last: the breaker's amortized read
    # (tests/wechat/test_breaker.py) is not due, and the login itself is the claim, the identity
    # and the transaction
    login.login("union-bob.2", START + 1)
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems"]
    assert wechat.calls == 2


def test_a_lost_claim_is_a_retryable_failure_that_writes_no_session(login, services, dynamodb):
    """If the claim vanished (deleted, expired) the transaction writes nothing at all."""
    real_finish = services.store.logins.finish

    def finish_after_the_claim_vanished(code_hash, *args, **kwargs):
        services.store.logins.release(code_hash)
        return real_finish(code_hash, *args, **kwargs)

    login._logins.finish = finish_after_the_claim_vanished
    with pytest.raises(StoreUnavailable):
        login.login("alice.1", START)
    kinds = sorted(item["sk"]["S"].split("#")[0] for item in table_items(dynamodb))
    assert kinds == ["IDENTITY", "PROFILE"]  # the user, but no session and no claim


@pytest.mark.parametrize(
    ("code", "error", "reason", "held_for"),
    [
        ("err-40029", GrantError, "rejected", 300),
        ("err-40163", GrantError, "rejected", 300),
        ("err-41008", GrantError, "rejected", 300),
        ("err-40226", WeChatUserBlocked, "blocked", 300),
        ("err-45011", WeChatRateLimited, "rate_limited", 60),
    ],
)
def test_a_code_wechat_refused_keeps_its_claim_as_refused_and_stores_no_session(
    login, dynamodb, code, error, reason, held_for
):
    before = table_items(dynamodb)
    with pytest.raises(error):
        login.login(code, START)
    after = [item for item in table_items(dynamodb) if not item["pk"]["S"].startswith("BREAKER#")]
    added = [item for item in after if item not in before]
    assert [item["pk"]["S"][:6] for item in added] == ["LOGIN#"]  # no session, no user
    assert added[0]["refused"] == {"S": reason}
    assert added[0]["lease_until"] == {"N": str(START + held_for)}
    assert "sealed_response" not in added[0]


def test_a_failure_of_wechat_frees_the_code(login, dynamodb):
    before = table_items(dynamodb)
    with pytest.raises(WeChatUnavailable):
        login.login("err--1", START)
    after = [item for item in table_items(dynamodb) if not item["pk"]["S"].startswith("BREAKER#")]
    assert after == before


@pytest.mark.parametrize(
    ("code", "error"),
    [("err-40029", GrantError), ("err-40226", WeChatUserBlocked)],
)
def test_the_same_refused_code_again_is_answered_without_calling_wechat(
    login, wechat, code, error
):
    with pytest.raises(error):
        login.login(code, START)
    for later in (1, 100, 299):
        with pytest.raises(error):
            login.login(code, START + later)
    assert wechat.calls == 1


def test_a_code_wechat_asked_to_slow_down_for_is_tried_again_after_retry_after(login, wechat):
    with pytest.raises(WeChatRateLimited):
        login.login("err-45011.1", START)
    with pytest.raises(WeChatRateLimited) as again:
        login.login("err-45011.1", START + 45)
    assert again.value.retry_after == 15
    assert wechat.calls == 1
    with pytest.raises(WeChatRateLimited):
        login.login("err-45011.1", START + 60)  # WeChat asked for a minute: tried again
    assert wechat.calls == 2


def test_a_rejected_code_with_ten_waiters_makes_one_wechat_call(services, wechat):
    """The claimant's WeChat call is slow and rejects the code; ten requests with the same
    code wait meanwhile (real sleeps, with back-off), and each answers invalid_grant from the
    claim without calling WeChat."""
    import time

    login = services.login
    login._claims._sleep = time.sleep
    real_code2session = login._wechat.code2session
    entered, release = threading.Event(), threading.Event()

    def slow_code2session(code):
        entered.set()
        release.wait(5)
        return real_code2session(code)

    login._wechat.code2session = slow_code2session
    outcomes: list[BaseException | None] = []

    def attempt():
        try:
            login.login("err-40029.shared", START)
            outcomes.append(None)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            outcomes.append(e)

    holder = threading.Thread(target=attempt)
    holder.start()
    assert entered.wait(5)
    waiters = [threading.Thread(target=attempt) for _ in range(10)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.2)  # every waiter is polling the claim
    release.set()
    for thread in [holder, *waiters]:
        thread.join(10)
    assert wechat.calls == 1
    assert len(outcomes) == 11
    assert all(isinstance(error, GrantError) for error in outcomes), outcomes


@pytest.mark.parametrize("code", ["has space", "tab\there", "\u00e9t\u00e9", "x" * 129])
def test_malformed_codes_never_reach_wechat(login, wechat, code):
    with pytest.raises(RequestError):
        login.login(code, START)
    assert wechat.calls == 0


def test_pending_claim_makes_a_duplicate_wait_then_replay(services, wechat):
    """A duplicate that arrives while the first exchange runs waits for its result."""
    login = services.login
    waited = []
    real_sleep = login._claims._sleep

    def sleep_and_let_the_first_finish(seconds):
        waited.append(seconds)
        if len(waited) == 1:
            holder.join()

    first_done = {}
    real_code2session = login._wechat.code2session
    entered = threading.Event()
    release = threading.Event()

    def slow_code2session(code):
        entered.set()
        release.wait(5)
        return real_code2session(code)

    login._wechat.code2session = slow_code2session
    login._claims._sleep = sleep_and_let_the_first_finish
    holder = threading.Thread(target=lambda: first_done.update(r=login.login("dave.1", START)))
    holder.start()
    entered.wait(5)
    release.set()
    try:
        second = login.login("dave.1", START + 1)
    finally:
        login._claims._sleep = real_sleep
    holder.join()
    assert session_of(second.tokens) == session_of(first_done["r"].tokens)
    assert wechat.calls == 1
    assert waited


def test_a_claim_held_too_long_answers_login_pending(services):
    """Waiting backs off (50 ms, doubling, at most 1 s a pause) for 3 s in all: 7 polls, where
    it was 200 at 50 ms."""
    login = services.login
    logins = services.store.logins
    code_hash_claimed = logins.claim
    slept: list[float] = []
    login._claims._sleep = slept.append
    logins.claim = lambda *a, **k: False
    logins.get = lambda code_hash: LoginRecord(
        code_hash=code_hash, lease_until=START + 20, expires_at=START + 300, claimed_at=START
    )
    try:
        with pytest.raises(LoginPending):
            login.login("erin.1", START)
    finally:
        logins.claim = code_hash_claimed
    assert slept == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 0.45])
    assert sum(slept) == pytest.approx(3.0)


# -- a replay answers only the code's first caller (issue 22, item 1) --------------------------

OTHER_NONCE = "0ther-" + "b" * 27


def test_a_replay_without_the_first_callers_nonce_gets_nothing(
    login, wechat, dynamodb, dynamodb_requests
):
    """A used code was a bearer credential for five minutes: whoever posted it again got the
    first login's refresh token. Now a code claimed with a nonce answers only that nonce."""
    first = login.login("alice.1", START, nonce=NONCE)
    items = table_items(dynamodb)
    for nonce in (None, OTHER_NONCE, NONCE[:-1] + "b", NONCE.upper()):
        dynamodb_requests.clear()
        with pytest.raises(GrantError) as refused:
            login.login("alice.1", START + 1, nonce=nonce)
        assert first.tokens.refresh_token not in str(refused.value)
        assert dynamodb_requests == ["PutItem", "GetItem"]  # the refused claim, the claim read
    assert table_items(dynamodb) == items and wechat.calls == 1
    assert session_of(login.login("alice.1", START + 2, nonce=NONCE).tokens) == session_of(
        first.tokens
    )


def test_the_claim_keeps_only_a_hash_of_the_nonce(login, dynamodb):
    login.login("alice.1", START, nonce=NONCE)
    raw = json.dumps(table_items(dynamodb), default=repr)
    assert NONCE not in raw and NONCE.encode().hex() not in raw
    (claim,) = [i for i in table_items(dynamodb) if i["pk"]["S"].startswith("LOGIN#")]
    assert len(claim["nonce_hash"]["B"]) == 32


def test_without_a_nonce_a_mini_program_code_replays_for_60_seconds(login, wechat):
    """Clients from before the nonce retry a lost answer with the code alone: still answered,
    briefly (AUTH_LOGIN_REPLAY_WITHOUT_NONCE), and never to a caller with a nonce."""
    first = login.login("alice.1", START)
    assert session_of(login.login("alice.1", START + 59).tokens) == session_of(first.tokens)
    with pytest.raises(GrantError):
        login.login("alice.1", START + 1, nonce=NONCE)  # not the first caller: it sent none
    with pytest.raises(GrantError):
        login.login("alice.1", START + 60)
    assert wechat.calls == 1


@pytest.mark.parametrize("window", [0, 5])
def test_the_window_without_a_nonce_is_a_setting(services, settings, dynamodb, clock, window):
    from dataclasses import replace

    from chalicelib import runtime

    built = runtime.build(
        replace(settings, login_replay_without_nonce=window), dynamodb=dynamodb, clock=clock
    )
    first = built.login.login("alice.1", START)
    if window:
        again = built.login.login("alice.1", START + window - 1)
        assert session_of(again.tokens) == session_of(first.tokens)
    with pytest.raises(GrantError):
        built.login.login("alice.1", START + window)


def test_a_claim_of_an_earlier_release_replays_without_a_nonce_as_before(login, services):
    """Claimed before the upgrade: no claimed_at; the lease tells when (lease_until - 20)."""
    first = login.login("alice.1", START)
    items = [i for i in table_items(services.store.client) if i["pk"]["S"].startswith("LOGIN#")]
    services.store.client.update_item(
        TableName=services.settings.table_name,
        Key={"pk": items[0]["pk"], "sk": items[0]["sk"]},
        UpdateExpression="REMOVE claimed_at",
    )
    assert session_of(login.login("alice.1", START + 59).tokens) == session_of(first.tokens)
    with pytest.raises(GrantError):
        login.login("alice.1", START + 60)


def test_a_replay_without_the_nonce_is_refused_at_once_while_the_code_is_exchanged(
    services, wechat
):
    """A stranger's replay does not wait for the claimant: refused at the first read."""
    waits: list[float] = []
    services.code_claims._sleep = waits.append
    logins = services.store.logins
    real_claim = logins.claim
    claimed = {}

    def claim_then_pending(code_hash, **kwargs):
        if not claimed:  # the first caller claims and is still at WeChat
            claimed["yes"] = real_claim(code_hash, **{**kwargs, "nonce_hash": b"n" * 32})
        return False

    logins.claim = claim_then_pending
    try:
        with pytest.raises(GrantError):
            services.login.login("alice.1", START)
    finally:
        logins.claim = real_claim
    assert waits == [] and wechat.calls == 0


@pytest.mark.parametrize(
    "nonce", ["short", "a" * 129, "has space" + "a" * 16, "é" * 20, "a+b/c=" * 4]
)
def test_a_malformed_nonce_is_invalid_request_before_anything(login, dynamodb, wechat, nonce):
    from chalicelib.errors import RequestError

    with pytest.raises(RequestError, match="login_nonce"):
        login.login("alice.1", START, nonce=nonce)
    assert table_items(dynamodb) == [] and wechat.calls == 0
