"""Sessions: rotation, grace window, reuse detection, idle and absolute expiry, revocation."""

from __future__ import annotations

import hashlib
import json

import pytest

from chalicelib import crypto
from chalicelib.errors import GrantError, ReuseDetected, RevokedToken
from chalicelib.logs import Metrics
from chalicelib.store.sessions import new_session
from chalicelib.tokens import refresh as refresh_tokens
from tests.conftest import BACKENDS, START, table_items

GRACE = 30
IDLE = 2_592_000
ABSOLUTE = 7_776_000
USER_A = "userA" + "a" * 17  # user ids are 22 base64url characters
USER_B = "userB" + "b" * 17
USER_Z = "userZ" + "z" * 17


@pytest.fixture
def sessions(services):
    return services.sessions


@pytest.fixture
def started(sessions):
    return sessions.start(USER_A, client_id="wx-test-appid", now=START)


def test_start_stores_only_a_hash_of_the_refresh_token(started, dynamodb):
    items = table_items(dynamodb)
    assert len(items) == 1
    raw = json.dumps(items, default=repr)
    assert started.refresh_token not in raw
    parsed = refresh_tokens.parse(started.refresh_token)
    secret_part = parsed.body.rsplit(".", 1)[1]
    assert secret_part not in raw
    assert parsed.version == 3 and parsed.key not in raw
    assert items[0]["current_hash"]["B"] == hashlib.sha256(started.refresh_token.encode()).digest()
    assert items[0]["key_hash"]["B"] == refresh_tokens.key_hash(parsed.key)
    assert items[0]["generation"] == {"N": "0"}
    assert "mac_key" not in items[0]
    assert int(items[0]["expires_at"]["N"]) == START + IDLE


def test_refresh_rotates(sessions, started, services):
    issued = sessions.refresh(started.refresh_token, START + 10)
    assert issued.refresh_token != started.refresh_token
    assert issued.session_id == started.session_id
    claims = services.access_tokens.check(issued.access_token, START + 10)
    assert (claims.subject, claims.session_id) == (USER_A, started.session_id)
    # the new token rotates in turn
    again = sessions.refresh(issued.refresh_token, START + 20)
    assert again.refresh_token not in (started.refresh_token, issued.refresh_token)


def test_previous_token_within_grace_returns_the_same_current_token(sessions, started, dynamodb):
    issued = sessions.refresh(started.refresh_token, START)
    before = table_items(dynamodb)
    replay = sessions.refresh(started.refresh_token, START + GRACE - 1)
    assert replay.refresh_token == issued.refresh_token
    assert table_items(dynamodb) == before  # a replay writes nothing
    # and the current token still works afterwards
    assert sessions.refresh(issued.refresh_token, START + GRACE).refresh_token


def test_previous_token_at_the_end_of_grace_revokes_the_session(sessions, started, services):
    issued = sessions.refresh(started.refresh_token, START)
    with pytest.raises(ReuseDetected):
        sessions.refresh(started.refresh_token, START + GRACE)
    with pytest.raises(GrantError):
        sessions.refresh(issued.refresh_token, START + GRACE + 1)
    claims = services.access_tokens.check(issued.access_token, START + GRACE + 1)
    with pytest.raises(RevokedToken):
        sessions.require_live(claims, START + GRACE + 1)


def test_reuse_emits_a_metric(services, started, log_lines):
    services.sessions._metrics = Metrics(stack="test-stack")
    services.sessions.refresh(started.refresh_token, START)
    assert not [line for line in log_lines if "_aws" in line]
    with pytest.raises(ReuseDetected):
        services.sessions.refresh(started.refresh_token, START + 3600)
    lines = [json.loads(line) for line in log_lines if "_aws" in line]
    assert len(lines) == 1
    metric = lines[0]
    assert metric["RefreshTokenReuse"] == 1 and metric["Stack"] == "test-stack"
    assert metric["generations_behind"] == 1
    directive = metric["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "wxauth" and directive["Dimensions"] == [["Stack"]]


def test_grace_zero_means_no_replay(services, settings, dynamodb, clock):
    from dataclasses import replace

    from chalicelib import runtime

    strict = runtime.build(replace(settings, refresh_grace=0), dynamodb=dynamodb, clock=clock)
    first = strict.sessions.start(USER_B, client_id="x", now=START)
    strict.sessions.refresh(first.refresh_token, START)
    with pytest.raises(ReuseDetected):
        strict.sessions.refresh(first.refresh_token, START)


def test_grace_zero_means_no_replay_even_for_a_clock_a_second_behind(
    services, settings, dynamodb, clock
):
    """The racing refresh read its clock a second before the winner's: still reuse."""
    from dataclasses import replace

    from chalicelib import runtime

    strict = runtime.build(replace(settings, refresh_grace=0), dynamodb=dynamodb, clock=clock)
    first = strict.sessions.start(USER_B, client_id="x", now=START)
    strict.sessions.refresh(first.refresh_token, START + 1)
    with pytest.raises(ReuseDetected):
        strict.sessions.refresh(first.refresh_token, START)


def test_grace_covers_a_clock_a_second_behind(sessions, started):
    issued = sessions.refresh(started.refresh_token, START + 1)
    assert sessions.refresh(started.refresh_token, START).refresh_token == issued.refresh_token


def generations(sessions, started, count: int, now: int = START) -> list[str]:
    """The refresh tokens T0 (the login's) .. T<count> of one session, rotated one by one."""
    tokens = [started.refresh_token]
    for i in range(count):
        tokens.append(sessions.refresh(tokens[-1], now + i).refresh_token)
    return tokens


@pytest.mark.parametrize("older", [0, 1, 2], ids=lambda n: f"T{n}-of-T4")
def test_any_older_token_of_the_session_revokes_it(sessions, started, services, older):
    """T0 -> .. -> T4; any of T0..T2 (two or more rotations old: never in grace) is theft."""
    tokens = generations(sessions, started, 4)
    with pytest.raises(ReuseDetected):
        sessions.refresh(tokens[older], START + 10)
    session = services.store.sessions.get(USER_A, started.session_id)
    assert session.revoked_reason == "refresh_token_reuse"
    with pytest.raises(GrantError):
        sessions.refresh(tokens[4], START + 11)  # the current token died with the session


def test_the_login_token_revokes_after_two_rotations_even_within_grace(sessions, started):
    """Grace covers only the previous token: T0 after T0 -> T1 -> T2 is reuse at once."""
    tokens = generations(sessions, started, 2)
    with pytest.raises(ReuseDetected):
        sessions.refresh(tokens[0], START + 2)


def test_reuse_of_an_older_token_is_one_refused_write_then_the_revocation(
    sessions, started, dynamodb_requests
):
    tokens = generations(sessions, started, 3)
    dynamodb_requests.clear()
    with pytest.raises(ReuseDetected):
        sessions.refresh(tokens[0], START + 10)
    assert dynamodb_requests == ["UpdateItem", "UpdateItem"]  # the refused rotation, the revoke


def test_a_refresh_is_still_one_request_at_a_high_generation(sessions, started, dynamodb_requests):
    tokens = generations(sessions, started, 5)
    dynamodb_requests.clear()
    issued = sessions.refresh(tokens[-1], START + 10)
    assert dynamodb_requests == ["UpdateItem"]
    assert refresh_tokens.parse(issued.refresh_token).generation == 6


def test_generations_count_up_from_zero_at_login(sessions, started):
    tokens = generations(sessions, started, 3)
    assert [refresh_tokens.parse(t).generation for t in tokens] == [0, 1, 2, 3]


def test_forged_secret_for_a_real_session_changes_nothing(sessions, started, dynamodb):
    generations(sessions, started, 2)
    before = table_items(dynamodb)
    parsed = refresh_tokens.parse(started.refresh_token)
    forged = [
        f"{USER_A}.{started.session_id}.{'A' * 43}",  # v1 form
        f"{USER_A}.{started.session_id}.0.{'A' * 43}.{parsed.mac}",  # someone else's MAC
        f"{USER_A}.{started.session_id}.0.{'A' * 43}.{'A' * 22}",  # a made-up MAC
        f"{parsed.body}.{'A' * 22}",  # a real old body with a made-up MAC
        started.refresh_token[:-1] + ("x" if started.refresh_token[-1] != "x" else "y"),
    ]
    for token in forged:
        with pytest.raises(GrantError) as caught:
            sessions.refresh(token, START + 10)
        assert not isinstance(caught.value, ReuseDetected)
    assert table_items(dynamodb) == before


def test_an_authentic_token_from_a_future_generation_revokes_nothing(
    sessions, started, services, dynamodb
):
    """Only what a session really issued counts as reuse: a token with its key but of a
    generation it never reached (a leaked key, say) is a plain invalid_grant."""
    generations(sessions, started, 2)
    key = refresh_tokens.parse(started.refresh_token).key
    before = table_items(dynamodb)
    for generation in (2, 3, 99):
        body = refresh_tokens.mint(USER_A, started.session_id, generation)
        with pytest.raises(GrantError) as caught:
            sessions.refresh(refresh_tokens.issue(body, key), START + 10)
        assert not isinstance(caught.value, ReuseDetected)
    assert table_items(dynamodb) == before


def flipped(token: str, index: int) -> str:
    """`token` with the character at `index` changed (to another base64url character)."""
    index %= len(token)
    return token[:index] + ("B" if token[index] != "B" else "C") + token[index + 1 :]


@pytest.mark.parametrize("index", [-1, -2, -22, -43], ids=lambda i: f"key-char{i}")
def test_a_current_token_with_its_key_changed_refreshes_nothing(
    sessions, started, dynamodb, dynamodb_requests, index
):
    """Issue 22, item 7: one character of the last part of a valid, current refresh token
    changed. It was answered 200 and rotated the session (only the body was compared)."""
    issued = sessions.refresh(started.refresh_token, START)
    before = table_items(dynamodb)
    dynamodb_requests.clear()
    with pytest.raises(GrantError) as caught:
        sessions.refresh(flipped(issued.refresh_token, index), START + 1)
    assert not isinstance(caught.value, ReuseDetected)
    assert dynamodb_requests == ["UpdateItem"]  # refused by its condition: still one request
    assert table_items(dynamodb) == before
    # the real token is still current: it refreshes, and the previous one is in grace
    assert sessions.refresh(issued.refresh_token, START + 2).refresh_token


def test_only_the_issued_token_byte_for_byte_refreshes(sessions, started, dynamodb):
    """Every character that can change while the token stays well-formed, one at a time."""
    token = started.refresh_token
    before = table_items(dynamodb)
    for index, char in enumerate(token):
        if char == "." or index in range(46, 47):  # separators; the generation (`0`)
            continue
        with pytest.raises(GrantError):
            sessions.refresh(flipped(token, index), START + 1)
    assert table_items(dynamodb) == before
    assert sessions.refresh(token, START + 2).refresh_token


def test_the_previous_token_with_its_key_changed_gets_nothing_in_grace(sessions, started, dynamodb):
    issued = sessions.refresh(started.refresh_token, START)
    before = table_items(dynamodb)
    with pytest.raises(GrantError) as caught:
        sessions.refresh(flipped(started.refresh_token, -5), START + 1)
    assert not isinstance(caught.value, ReuseDetected)
    assert table_items(dynamodb) == before
    assert sessions.refresh(started.refresh_token, START + 2).refresh_token == issued.refresh_token


def test_a_token_of_another_session_is_not_reuse_in_this_one(sessions, started, dynamodb):
    """The MAC binds the session id: an old token of session B, its session id swapped for A's,
    does not count as an old token of A."""
    generations(sessions, started, 2)
    other = sessions.start(USER_A, client_id="wx-test-appid", now=START)
    old_other = generations(sessions, other, 2)[0]
    swapped = old_other.replace(other.session_id, started.session_id)
    before = table_items(dynamodb)
    with pytest.raises(GrantError) as caught:
        sessions.refresh(swapped, START + 10)
    assert not isinstance(caught.value, ReuseDetected)
    assert table_items(dynamodb) == before


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", None, 42, "x" * 600])
def test_malformed_tokens(sessions, started, dynamodb, token):
    before = table_items(dynamodb)
    with pytest.raises(GrantError):
        sessions.refresh(token, START)
    assert table_items(dynamodb) == before


def test_idle_expiry(sessions, started):
    with pytest.raises(GrantError):
        sessions.refresh(started.refresh_token, START + IDLE)


def test_refresh_just_before_idle_expiry_extends_the_session(sessions, started):
    issued = sessions.refresh(started.refresh_token, START + IDLE - 1)
    assert issued.refresh_expires_at == START + IDLE - 1 + IDLE
    assert sessions.refresh(issued.refresh_token, START + 2 * IDLE - 2)


def test_absolute_expiry_wins_over_activity(sessions, started):
    token = started.refresh_token
    now = START
    while now + IDLE - 1 < START + ABSOLUTE:
        now += IDLE - 1
        issued = sessions.refresh(token, now)
        assert issued.refresh_expires_at <= START + ABSOLUTE
        token = issued.refresh_token
    with pytest.raises(GrantError):
        sessions.refresh(token, START + ABSOLUTE)


def test_revoke_all_ends_every_session_of_the_user(sessions, started):
    other = sessions.start(USER_A, client_id="x", now=START)
    stranger = sessions.start(USER_Z, client_id="x", now=START)
    assert sessions.revoke_all(USER_A, now=START + 1) == 2
    for issued in (started, other):
        with pytest.raises(GrantError):
            sessions.refresh(issued.refresh_token, START + 2)
    assert sessions.refresh(stranger.refresh_token, START + 2)
    assert sessions.revoke_all(USER_A, now=START + 3) == 0


def test_revoked_session_does_not_replay_within_grace(sessions, started):
    sessions.refresh(started.refresh_token, START)
    sessions.revoke(USER_A, started.session_id, now=START + 1)
    with pytest.raises(GrantError):
        sessions.refresh(started.refresh_token, START + 2)


def test_lost_race_converges_on_the_winner(sessions, started, services):
    """A refresh whose conditional write loses answers the winner's token."""
    store = services.store.sessions
    real_rotate = store.rotate
    winner = {}

    def race_then_rotate(*args, **kwargs):
        if not winner:  # another refresh rotates just before our write
            winner["issued"] = None
            winner["issued"] = sessions.refresh(started.refresh_token, START)
        return real_rotate(*args, **kwargs)

    store.rotate = race_then_rotate
    try:
        issued = sessions.refresh(started.refresh_token, START + 1)
    finally:
        store.rotate = real_rotate
    assert issued.refresh_token == winner["issued"].refresh_token


def test_a_refresh_is_one_dynamodb_request(sessions, started, dynamodb_requests):
    issued = sessions.refresh(started.refresh_token, START + 1)
    assert dynamodb_requests == ["UpdateItem"]
    dynamodb_requests.clear()
    sessions.refresh(issued.refresh_token, START + 2)
    assert dynamodb_requests == ["UpdateItem"]


def test_a_grace_replay_is_one_refused_write_and_nothing_else(
    sessions, started, dynamodb, dynamodb_requests
):
    issued = sessions.refresh(started.refresh_token, START + 1)
    items = table_items(dynamodb)
    dynamodb_requests.clear()
    assert sessions.refresh(started.refresh_token, START + 2).refresh_token == issued.refresh_token
    assert dynamodb_requests == ["UpdateItem"]  # refused; the session came back with the refusal
    assert table_items(dynamodb) == items


def test_an_unknown_session_is_one_refused_write(sessions, dynamodb, dynamodb_requests):
    forged = refresh_tokens.issue(
        refresh_tokens.mint(USER_Z, refresh_tokens.new_id(), 3), refresh_tokens.new_key()
    )
    with pytest.raises(GrantError):
        sessions.refresh(forged, START)
    assert dynamodb_requests == ["UpdateItem"]
    assert table_items(dynamodb) == []  # the refused update created no item


@pytest.mark.parametrize("client_id", ["wx-test-appid", "another-client"])
def test_the_access_token_of_a_refresh_names_the_sessions_client(services, client_id):
    sessions = services.sessions
    started = sessions.start(USER_B, client_id=client_id, now=START)
    issued = sessions.refresh(started.refresh_token, START + 1)
    replayed = sessions.refresh(started.refresh_token, START + 2)  # grace: the same session
    for tokens, now in ((issued, START + 1), (replayed, START + 2)):
        claims = services.access_tokens.check(tokens.access_token, now)
        assert (claims.client_id, claims.subject, claims.session_id) == (
            client_id,
            USER_B,
            started.session_id,
        )
        assert claims.issued_at == now


def test_a_refusal_of_the_current_token_of_a_live_session_is_retryable(sessions, started, services):
    """Not a state DynamoDB hands back; if it did, the client retries instead of logging out."""
    from chalicelib.errors import RotationRefused, StoreUnavailable

    live = services.store.sessions.get(USER_A, started.session_id)

    def refuse(*args, **kwargs):
        raise RotationRefused(live)

    services.store.sessions.rotate = refuse
    with pytest.raises(StoreUnavailable):
        sessions.refresh(started.refresh_token, START + 1)


# -- sessions from before generations (v1 tokens: `<user>.<sid>.<secret>`, no MAC key) --------


def v1_session(services, now: int = START, rotated_from: str | None = None):
    """A session as the previous release stored it, and its v1 token(s)."""
    from chalicelib.sessions import _context
    from chalicelib.store import SessionRecord

    session_id = refresh_tokens.new_id()
    current = f"{USER_A}.{session_id}.{crypto.b64url(b'c' * 32)}"
    previous = f"{USER_A}.{session_id}.{crypto.b64url(b'p' * 32)}"
    rotated = rotated_from is not None
    record = SessionRecord(
        user_id=USER_A,
        session_id=session_id,
        client_id="wx-test-appid",
        current_hash=refresh_tokens.token_hash(current),
        previous_hash=refresh_tokens.token_hash(previous) if rotated else None,
        rotated_at=now if rotated else None,
        sealed_current=(
            crypto.seal(previous, current.encode(), context=_context(USER_A, session_id))
            if rotated
            else None
        ),
        created_at=now,
        idle_expires_at=now + IDLE,
        absolute_expires_at=now + ABSOLUTE,
    )
    item = new_session(services.settings.table_name, record)["Item"]
    del item["generation"]  # the previous release wrote neither
    if rotated:
        item["previous_hash"] = {"B": record.previous_hash}
        item["rotated_at"] = {"N": str(now)}
        item["sealed_current"] = {"B": record.sealed_current}
    services.store.client.put_item(TableName=services.settings.table_name, Item=item)
    return session_id, current, previous


def test_a_v1_token_rotates_into_a_v3_token_of_generation_one(services, sessions):
    session_id, current, _ = v1_session(services)
    issued = sessions.refresh(current, START + 1)
    parsed = refresh_tokens.parse(issued.refresh_token)
    assert (parsed.session_id, parsed.generation, parsed.version) == (session_id, 1, 3)
    stored = services.store.sessions.get(USER_A, session_id)
    assert refresh_tokens.holds_key(parsed, stored.key_hash)
    # and on from there, with theft detection for every older v3 token
    second = sessions.refresh(issued.refresh_token, START + 2)
    sessions.refresh(second.refresh_token, START + 3)
    with pytest.raises(ReuseDetected):
        sessions.refresh(issued.refresh_token, START + 4)


def test_the_previous_v1_token_in_grace_gets_the_current_token(services, sessions):
    session_id, current, previous = v1_session(services)
    issued = sessions.refresh(current, START + 1)
    assert sessions.refresh(current, START + 2).refresh_token == issued.refresh_token
    with pytest.raises(ReuseDetected):
        sessions.refresh(current, START + 1 + GRACE)


def test_a_session_rotated_by_the_previous_release_replays_its_v1_token(services, sessions):
    """Rotated just before the upgrade: the sealed current token is a v1 token, handed out as
    it is to the previous token within grace."""
    session_id, current, previous = v1_session(services, rotated_from="previous")
    assert sessions.refresh(previous, START + 1).refresh_token == current
    with pytest.raises(ReuseDetected):
        sessions.refresh(previous, START + GRACE)


def test_an_older_v1_token_is_invalid_grant_without_revoking(services, sessions):
    """v1 tokens carry no MAC: two rotations old, one cannot tell them from forged ones."""
    session_id, current, previous = v1_session(services, rotated_from="previous")
    second = sessions.refresh(current, START + 1)
    with pytest.raises(GrantError) as caught:
        sessions.refresh(previous, START + 2)
    assert not isinstance(caught.value, ReuseDetected)
    assert sessions.refresh(second.refresh_token, START + 3)


# -- revoked sessions leave the table within minutes (issue 21) -----------------------------


def test_logout_all_reads_only_the_sessions_the_ttl_left(sessions, started, dynamodb):
    """40 logged-out sessions: their items expire REVOKED_ITEM_TTL after the logout, so a
    logout-all ten minutes later reads the two live sessions, not 42 items (before: the dead
    ones stayed until their idle expiry, 30 days)."""
    from tests.conftest import items_read_by_queries, ttl_sweep

    other = sessions.start(USER_A, client_id="x", now=START)
    for _ in range(40):
        gone = sessions.start(USER_A, client_id="x", now=START)
        assert sessions.revoke(USER_A, gone.session_id, now=START + 10)
    assert ttl_sweep(dynamodb, START + 610) == 40  # DynamoDB's TTL, some minutes later
    read = items_read_by_queries(dynamodb)
    assert sessions.revoke_all(USER_A, now=START + 610) == 2
    assert read == [2]
    for issued in (started, other):
        with pytest.raises(GrantError):
            sessions.refresh(issued.refresh_token, START + 611)


def test_reuse_answers_as_before_while_the_revoked_item_lives(sessions, started, dynamodb):
    from chalicelib.store.sessions import REVOKED_ITEM_TTL
    from tests.conftest import ttl_sweep

    issued = sessions.refresh(started.refresh_token, START)
    with pytest.raises(ReuseDetected):
        sessions.refresh(started.refresh_token, START + GRACE)
    (item,) = table_items(dynamodb)
    assert int(item["expires_at"]["N"]) == START + GRACE + REVOKED_ITEM_TTL
    for token in (started.refresh_token, issued.refresh_token):
        with pytest.raises(GrantError, match="revoked or expired"):
            sessions.refresh(token, START + GRACE + REVOKED_ITEM_TTL - 1)
    ttl_sweep(dynamodb, START + GRACE + REVOKED_ITEM_TTL + 1)
    assert table_items(dynamodb) == []
    for token in (started.refresh_token, issued.refresh_token):  # an unknown session, as ever
        with pytest.raises(GrantError, match="unknown"):
            sessions.refresh(token, START + GRACE + REVOKED_ITEM_TTL + 1)


# -- the sessions list in pages, on both backends (issue 21) ----------------------------------


@pytest.fixture(params=BACKENDS)
def backend_services(request, settings, clock):
    from dataclasses import replace

    from chalicelib import runtime
    from tests.conftest import backend_table

    with backend_table(request, "pages") as (client, table):
        yield runtime.build(replace(settings, table_name=table), dynamodb=client, clock=clock)


def test_a_thousand_live_sessions_page_by_page(backend_services):
    """1,000 sessions of one user (every tenth ended) and another user's: pages of 100 give
    every live one once, none of the other user's, each page newest first."""
    from chalicelib.store.sessions import new_session

    services = backend_services
    sessions = services.sessions
    table = services.store.table
    mine = [sessions.prepare(USER_A, client_id="x", now=START + i)[0] for i in range(1000)]
    theirs = [sessions.prepare(USER_B, client_id="x", now=START)[0] for _ in range(20)]
    for start in range(0, 1020, 25):
        batch = [
            {"PutRequest": {"Item": new_session(table.name, s)["Item"]}}
            for s in (mine + theirs)[start : start + 25]
        ]
        while batch:
            answer = services.store.client.batch_write_item(RequestItems={table.name: batch})
            batch = answer.get("UnprocessedItems", {}).get(table.name, [])
    for session in mine[::10]:
        assert sessions.end(USER_A, session.session_id, now=START + 1000) is None
    live = {s.session_id for s in mine} - {s.session_id for s in mine[::10]}

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page, after = sessions.live_page(USER_A, START + 1001, limit=100, after=after)
        pages += 1
        assert len(page) <= 100 and {s.user_id for s in page} <= {USER_A}
        assert [s.created_at for s in page] == sorted((s.created_at for s in page), reverse=True)
        seen += [s.session_id for s in page]
        if after is None:
            break
    assert sorted(seen) == sorted(live) and len(seen) == 900
    assert pages in (9, 10)


# -- sessions of v2 tokens (`<user>.<sid>.<gen>.<secret>.<mac>`: MAC key in the item) ---------


def v2_session(services, generation: int = 2, now: int = START):
    """A session as the previous release stored it (the hash of the body only, the MAC key in
    the item), rotated `generation` times: its v2 tokens T0 .. T<generation>, the last current."""
    from chalicelib.sessions import _context
    from chalicelib.store import SessionRecord

    session_id = refresh_tokens.new_id()
    mac_key = refresh_tokens.new_mac_key()
    bodies = [refresh_tokens.mint(USER_A, session_id, g) for g in range(generation + 1)]
    record = SessionRecord(
        user_id=USER_A,
        session_id=session_id,
        client_id="wx-test-appid",
        current_hash=refresh_tokens.token_hash(bodies[-1]),
        previous_hash=refresh_tokens.token_hash(bodies[-2]),
        rotated_at=now,
        sealed_current=crypto.seal(
            bodies[-2], bodies[-1].encode(), context=_context(USER_A, session_id)
        ),
        created_at=now,
        idle_expires_at=now + IDLE,
        absolute_expires_at=now + ABSOLUTE,
        generation=generation,
        mac_key=mac_key,
    )
    item = new_session(services.settings.table_name, record)["Item"]
    item["previous_hash"] = {"B": record.previous_hash}
    item["rotated_at"] = {"N": str(now)}
    item["sealed_current"] = {"B": record.sealed_current}
    services.store.client.put_item(TableName=services.settings.table_name, Item=item)
    return session_id, [refresh_tokens.sign(body, mac_key) for body in bodies]


def test_a_v2_token_is_checked_before_the_write_then_rotates_into_v3(
    services, sessions, dynamodb_requests
):
    session_id, tokens = v2_session(services)
    dynamodb_requests.clear()
    issued = sessions.refresh(tokens[-1], START + 1)
    assert dynamodb_requests == ["GetItem", "UpdateItem"]  # the MAC, checked before the write
    parsed = refresh_tokens.parse(issued.refresh_token)
    assert (parsed.version, parsed.generation, parsed.session_id) == (3, 3, session_id)
    stored = services.store.sessions.get(USER_A, session_id)
    assert stored.current_hash == parsed.hash and refresh_tokens.holds_key(parsed, stored.key_hash)
    dynamodb_requests.clear()
    sessions.refresh(issued.refresh_token, START + 2)  # from now on: one request
    assert dynamodb_requests == ["UpdateItem"]


@pytest.mark.parametrize("index", [-1, -11, -22])
def test_a_current_v2_token_with_its_mac_changed_writes_nothing(
    services, sessions, dynamodb, dynamodb_requests, index
):
    """Issue 22, item 7, for the tokens of sessions from before v3."""
    _, tokens = v2_session(services)
    before = table_items(dynamodb)
    dynamodb_requests.clear()
    with pytest.raises(GrantError) as caught:
        sessions.refresh(flipped(tokens[-1], index), START + 1)
    assert not isinstance(caught.value, ReuseDetected)
    assert dynamodb_requests == ["GetItem"]
    assert table_items(dynamodb) == before
    assert sessions.refresh(tokens[-1], START + 2).refresh_token


def test_the_previous_v2_token_in_grace_gets_the_current_v2_token(services, sessions, dynamodb):
    """Rotated by the previous release just before the upgrade: the sealed current is a body."""
    _, tokens = v2_session(services)
    before = table_items(dynamodb)
    assert sessions.refresh(tokens[-2], START + 1).refresh_token == tokens[-1]
    assert table_items(dynamodb) == before
    with pytest.raises(ReuseDetected):
        sessions.refresh(tokens[-2], START + GRACE)


def test_a_migrated_v2_token_in_grace_gets_the_v3_token(services, sessions):
    _, tokens = v2_session(services)
    issued = sessions.refresh(tokens[-1], START + 1)
    assert sessions.refresh(tokens[-1], START + 2).refresh_token == issued.refresh_token
    with pytest.raises(ReuseDetected):
        sessions.refresh(tokens[-1], START + 1 + GRACE)


def test_an_older_v2_token_revokes_the_session_even_after_the_move_to_v3(services, sessions):
    session_id, tokens = v2_session(services, generation=3)
    issued = sessions.refresh(tokens[-1], START + 1)
    with pytest.raises(ReuseDetected):
        sessions.refresh(tokens[0], START + 2)
    assert services.store.sessions.get(USER_A, session_id).revoked_reason == "refresh_token_reuse"
    with pytest.raises(GrantError):
        sessions.refresh(issued.refresh_token, START + 3)


def test_a_made_up_v2_token_for_a_real_session_changes_nothing(services, sessions, dynamodb):
    session_id, tokens = v2_session(services)
    before = table_items(dynamodb)
    made_up = [
        refresh_tokens.sign(refresh_tokens.mint(USER_A, session_id, 0), b"k" * 32),
        f"{refresh_tokens.parse(tokens[0]).body}.{'A' * 22}",
    ]
    for token in made_up:
        with pytest.raises(GrantError) as caught:
            sessions.refresh(token, START + 1)
        assert not isinstance(caught.value, ReuseDetected)
    assert table_items(dynamodb) == before


def test_a_v2_token_with_its_mac_changed_revokes_nothing_through_oauth_revoke(services, sessions):
    session_id, tokens = v2_session(services)
    parsed = refresh_tokens.parse(flipped(tokens[-1], -3))
    assert not sessions.revoke_by_refresh_token(parsed, now=START + 1, reason="oauth_revoke")
    assert services.store.sessions.get(USER_A, session_id).revoked_at is None
    real = refresh_tokens.parse(tokens[-1])
    assert sessions.revoke_by_refresh_token(real, now=START + 1, reason="oauth_revoke")


# -- AUTH_LIMIT_REFRESH_PER_SESSION: only a token holder spends it (issue 22, item 8) ----------


@pytest.fixture
def limited(settings, dynamodb, clock):
    from dataclasses import replace

    from chalicelib import runtime
    from chalicelib.settings import Limit

    limit = Limit(2, 60)
    return runtime.build(
        replace(settings, limit_refresh_per_session=limit), dynamodb=dynamodb, clock=clock
    ).sessions


def test_made_up_tokens_do_not_spend_the_owners_refresh_budget(limited, dynamodb_requests):
    """Every access token shows the user and session ids. Tokens made up from them, as many
    as one likes, were counted against the session and kept its owner refused."""
    from chalicelib.errors import RateLimited

    started = limited.start(USER_A, client_id="x", now=START)
    made_up = [
        f"{USER_A}.{started.session_id}.0.{'A' * 43}.{refresh_tokens.new_key()}",
        f"{USER_A}.{started.session_id}.5.{'A' * 43}.{'B' * 22}",  # v2 form
        f"{USER_A}.{started.session_id}.{'A' * 43}",  # v1 form
    ]
    for token in made_up * 3:
        with pytest.raises((GrantError, RateLimited)):  # refused, or over the forger's own limit
            limited.refresh(token, START)
    first = limited.refresh(started.refresh_token, START)  # the owner's budget is whole
    second = limited.refresh(first.refresh_token, START + 1)
    with pytest.raises(RateLimited):  # ... and still counted: 2 a minute
        limited.refresh(second.refresh_token, START + 2)
    dynamodb_requests.clear()
    assert limited.refresh(second.refresh_token, START + 60).refresh_token  # the next window
    assert dynamodb_requests == ["UpdateItem", "UpdateItem"]  # the counter, the rotation


def test_a_v2_token_is_counted_only_once_its_mac_opened(services, settings, dynamodb, clock):
    from dataclasses import replace

    from chalicelib import runtime
    from chalicelib.errors import RateLimited
    from chalicelib.settings import Limit

    sessions = runtime.build(
        replace(settings, limit_refresh_per_session=Limit(1, 60)), dynamodb=dynamodb, clock=clock
    ).sessions
    session_id, tokens = v2_session(services)
    for _ in range(3):
        with pytest.raises(GrantError):
            sessions.refresh(flipped(tokens[-1], -1), START + 1)
    issued = sessions.refresh(tokens[-1], START + 1)  # not refused: the made-up ones spent nothing
    # the session's tokens are v3 from now on, counted under the session's new key
    second = sessions.refresh(issued.refresh_token, START + 2)
    with pytest.raises(RateLimited):
        sessions.refresh(second.refresh_token, START + 3)
