"""Code claims and the login's finishing transaction (moto and DynamoDB Local)."""

from __future__ import annotations

import pytest

from chalicelib.errors import ConditionFailed, UserBanned
from chalicelib.store import Store, login_pk
from chalicelib.store.logins import LoginRecord
from tests.store.records import (
    CODE,
    NOW,
    ODD_BYTES,
    USER,
    Backend,
    a_session,
    a_user,
    claim,
    complete,
    finish,
)


def test_claim_free_code(store: Store, backend: Backend) -> None:
    assert claim(store, NOW) is True
    assert store.logins.get(CODE) == LoginRecord(
        code_hash=CODE, lease_until=NOW + 20, expires_at=NOW + 300, claimed_at=NOW
    )
    item = backend.item(login_pk(CODE), "LOGIN")
    assert item["expires_at"] == {"N": str(NOW + 300)}
    assert "nonce_hash" not in item


def test_a_claim_keeps_its_claimants_nonce_hash(store: Store, backend: Backend) -> None:
    """Issue 22, item 1: the claim's own PutItem records the first caller's nonce (hashed)."""
    assert store.logins.claim(
        CODE, now=NOW, lease_until=NOW + 20, expires_at=NOW + 300, nonce_hash=ODD_BYTES[:32]
    )
    record = store.logins.get(CODE)
    assert (record.nonce_hash, record.claimed_at) == (ODD_BYTES[:32], NOW)
    assert backend.item(login_pk(CODE), "LOGIN")["nonce_hash"] == {"B": ODD_BYTES[:32]}
    # a later claim of the expired code is a new claim, with its own claimant's nonce
    assert store.logins.claim(CODE, now=NOW + 300, lease_until=NOW + 320, expires_at=NOW + 600)
    record = store.logins.get(CODE)
    assert (record.nonce_hash, record.claimed_at) == (None, NOW + 300)


def test_a_claim_of_an_earlier_release_reads_without_claimed_at(
    store: Store, backend: Backend
) -> None:
    claim(store, NOW)
    backend.client.update_item(
        TableName=backend.table,
        Key={"pk": {"S": login_pk(CODE)}, "sk": {"S": "LOGIN"}},
        UpdateExpression="REMOVE claimed_at",
    )
    assert store.logins.get(CODE).claimed_at is None


def test_claim_held_code(store: Store) -> None:
    assert claim(store, NOW) is True
    assert claim(store, NOW + 19) is False
    assert store.logins.get(CODE).lease_until == NOW + 20


def test_claim_after_the_lease_passed(store: Store) -> None:
    assert claim(store, NOW) is True
    assert claim(store, NOW + 20) is True  # the holder died without a result
    assert store.logins.get(CODE).lease_until == NOW + 40


def test_claim_done_code(store: Store) -> None:
    claim(store, NOW)
    complete(store)
    assert claim(store, NOW + 100) is False  # lease passed, but there is a result to replay
    assert store.logins.get(CODE).done


def test_claim_expired_code(store: Store) -> None:
    claim(store, NOW)
    complete(store)
    assert claim(store, NOW + 300) is True  # expired (TTL deletion is lazy): a fresh claim
    record = store.logins.get(CODE)
    assert not record.done and record.lease_until == NOW + 320


def test_finish_login(store: Store) -> None:
    claim(store, NOW)
    complete(store)
    # the session keeps its code's claim's key: the user's erasure finds the claim (issue 25)
    assert store.sessions.get(USER, "sess0") == a_session(login_claim=CODE)
    assert store.identities.users_of_unionid("u-1") == []
    assert store.logins.get(CODE) == LoginRecord(
        code_hash=CODE,
        lease_until=NOW + 20,
        expires_at=NOW + 300,
        sealed_response=ODD_BYTES,
        user_id=USER,
        session_id="sess0",
        claimed_at=NOW,
    )


def test_finish_unclaimed_login_writes_nothing(store: Store, backend: Backend) -> None:
    with pytest.raises(ConditionFailed):
        complete(store, unionid="u-1")
    assert backend.items() == []  # one transaction: no session and no link either


def test_finish_login_links_the_unionid_once(store: Store, backend: Backend) -> None:
    claim(store, NOW)
    complete(store, unionid="u-1", now=NOW)
    claim(store, NOW, code="another")
    finish(store, "another", a_session("sess1"), unionid="u-1", now=NOW + 9)
    assert store.identities.users_of_unionid("u-1") == [USER]
    link = backend.item("UNIONID#u-1", f"USER#{USER}")
    assert link["linked_at"] == {"N": str(NOW)}  # the first link's time stays


def test_release_login(store: Store) -> None:
    claim(store, NOW)
    store.logins.release(CODE)
    assert store.logins.get(CODE) is None
    store.logins.release(CODE)  # nothing to release: no error
    assert claim(store, NOW + 1) is True


def test_release_login_not_after_done(store: Store) -> None:
    claim(store, NOW)
    complete(store)
    store.logins.release(CODE)
    assert store.logins.get(CODE).sealed_response == ODD_BYTES


def test_finish_login_refuses_a_user_banned_meanwhile(store: Store, backend: Backend) -> None:

    store.users.upsert(a_user())
    claim(store, NOW)
    store.users.ban(USER, now=NOW, reason=None)  # after the login read the user
    before = backend.items()
    with pytest.raises(UserBanned):
        complete(store, unionid="u-1")
    assert backend.items() == before  # no session, no result, no link
    store.users.unban(USER)
    complete(store)
    assert store.sessions.get(USER, "sess0") == a_session(login_claim=CODE)


def test_a_refused_claim_is_kept_until_its_time(store: Store, backend: Backend) -> None:
    claim(store, NOW)
    assert store.logins.refuse(CODE, reason="rate_limited", until=NOW + 60) is True
    assert store.logins.get(CODE).refused == "rate_limited"
    assert claim(store, NOW + 59) is False  # refused, not released
    assert store.logins.get(CODE).lease_until == NOW + 60
    assert claim(store, NOW + 60) is True  # its time is over: claimed afresh
    assert store.logins.get(CODE) == LoginRecord(
        code_hash=CODE, lease_until=NOW + 80, expires_at=NOW + 360, claimed_at=NOW + 60
    )


def test_refuse_leaves_a_missing_or_finished_claim_alone(store: Store, backend: Backend) -> None:
    assert store.logins.refuse(CODE, reason="rejected", until=NOW + 300) is False
    assert backend.items() == []
    claim(store, NOW)
    complete(store)
    done = store.logins.get(CODE)
    assert store.logins.refuse(CODE, reason="rejected", until=NOW + 300) is False
    assert store.logins.get(CODE) == done
