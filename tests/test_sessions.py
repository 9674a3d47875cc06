"""Sessions: rotation, grace window, reuse detection, idle and absolute expiry, revocation."""

from __future__ import annotations

import json

import pytest

from chalicelib import refresh_tokens
from chalicelib.errors import GrantError, ReuseDetected, RevokedToken
from chalicelib.logs import Metrics
from tests.conftest import START, table_items

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
    secret_part = started.refresh_token.rsplit(".", 1)[1]
    assert secret_part not in raw
    assert items[0]["current_hash"]["B"] == refresh_tokens.token_hash(started.refresh_token)
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


def test_token_two_rotations_old_is_rejected_without_revoking(sessions, started):
    second = sessions.refresh(started.refresh_token, START)
    third = sessions.refresh(second.refresh_token, START + 1)
    with pytest.raises(GrantError) as caught:
        sessions.refresh(started.refresh_token, START + 2)
    assert not isinstance(caught.value, ReuseDetected)
    assert sessions.refresh(third.refresh_token, START + 3)


def test_forged_secret_for_a_real_session_changes_nothing(sessions, started, dynamodb):
    before = table_items(dynamodb)
    forged = f"{USER_A}.{started.session_id}.{'A' * 43}"
    for token in (forged, started.refresh_token[:-1] + "x"):
        with pytest.raises(GrantError):
            sessions.refresh(token, START + 1)
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
    store = services.store
    real_rotate = store.rotate_session
    winner = {}

    def race_then_rotate(*args, **kwargs):
        if not winner:  # another refresh rotates just before our write
            winner["issued"] = None
            winner["issued"] = sessions.refresh(started.refresh_token, START)
        return real_rotate(*args, **kwargs)

    store.rotate_session = race_then_rotate
    try:
        issued = sessions.refresh(started.refresh_token, START + 1)
    finally:
        store.rotate_session = real_rotate
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
    forged = refresh_tokens.mint(USER_Z, refresh_tokens.new_id())
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
    from chalicelib.errors import StoreUnavailable
    from chalicelib.store import RotationRefused

    live = services.store.get_session(USER_A, started.session_id)

    def refuse(*args, **kwargs):
        raise RotationRefused(live)

    services.store.rotate_session = refuse
    with pytest.raises(StoreUnavailable):
        sessions.refresh(started.refresh_token, START + 1)
