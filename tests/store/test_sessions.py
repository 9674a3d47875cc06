"""Sessions: put, rotate, revoke, list, devices (moto and DynamoDB Local)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.errors import ConditionFailed, RotationRefused
from chalicelib.store import SessionRecord, Store, session_sk, user_pk
from tests.store.records import (
    IDLE,
    NEW_KEY_HASH,
    NOW,
    ODD_BYTES,
    OTHER,
    SESSION_KEY_HASH,
    SESSION_MAC_KEY,
    USER,
    Backend,
    a_session,
    a_user,
)

# -- sessions ---------------------------------------------------------------------------------


def test_put_and_get_session_round_trip(store: Store, backend: Backend) -> None:
    session = a_session()
    store.sessions.put(session)
    assert store.sessions.get(USER, "sess0") == session
    item = backend.item(user_pk(USER), session_sk("sess0"))
    assert bytes(item["current_hash"]["B"]) == session.current_hash
    assert item["expires_at"] == {"N": str(NOW + IDLE)}  # the TTL attribute
    assert store.sessions.get(USER, "nope") is None
    assert store.sessions.get(OTHER, "sess0") is None


def test_put_session_never_overwrites(store: Store) -> None:
    store.sessions.put(a_session())
    with pytest.raises(ConditionFailed):
        store.sessions.put(a_session(current_hash=b"another"))
    assert store.sessions.get(USER, "sess0") == a_session()


def rotate(
    store: Store,
    session: SessionRecord,
    presented: bytes,
    now: int,
    generation: int = 1,
    key_hash: bytes = SESSION_KEY_HASH,
) -> SessionRecord:
    return store.sessions.rotate(
        session.user_id,
        session.session_id,
        presented_hash=presented,
        new_hash=ODD_BYTES[::-1],
        new_generation=generation,
        sealed_new=ODD_BYTES,
        key_hash=key_hash,
        now=now,
        idle_expires_at=now + IDLE,
    )


def test_rotate_session(store: Store, backend: Backend) -> None:
    session = a_session()
    store.sessions.put(session)
    rotated = rotate(store, session, session.current_hash, NOW + 10)
    assert rotated == store.sessions.get(USER, "sess0")
    assert rotated == replace(
        session,
        current_hash=ODD_BYTES[::-1],
        previous_hash=session.current_hash,
        rotated_at=NOW + 10,
        sealed_current=ODD_BYTES,
        idle_expires_at=NOW + 10 + IDLE,
        generation=1,
        last_refreshed_at=NOW + 10,
    )
    item = backend.item(user_pk(USER), session_sk("sess0"))
    assert item["expires_at"] == {"N": str(NOW + 10 + IDLE)}


def test_rotate_session_keeps_its_key_hash_and_counts_generations(store: Store) -> None:
    session = a_session(generation=41)
    store.sessions.put(session)

    rotated = rotate(store, session, session.current_hash, NOW + 10, generation=42)

    assert (rotated.generation, rotated.key_hash, rotated.mac_key) == (42, SESSION_KEY_HASH, None)
    assert store.sessions.get(USER, "sess0") == rotated


@pytest.mark.parametrize("mac_key", [SESSION_MAC_KEY, None], ids=["v2", "v1"])
def test_rotate_session_of_earlier_tokens_takes_a_key_hash_and_keeps_its_mac_key(
    store: Store, mac_key: bytes | None
) -> None:
    """A v2 session (a MAC key, no key hash) or a v1 one (neither): its first rotation into v3
    tokens stores the new key's hash; the MAC key stays, for the session's older v2 tokens."""
    session = a_session(mac_key=mac_key, key_hash=None)
    store.sessions.put(session)
    assert store.sessions.get(USER, "sess0").key_hash is None

    rotated = rotate(store, session, session.current_hash, NOW + 10, key_hash=NEW_KEY_HASH)

    assert (rotated.key_hash, rotated.mac_key) == (NEW_KEY_HASH, mac_key)
    assert store.sessions.get(USER, "sess0") == rotated


def test_rotate_session_near_absolute_expiry(store: Store, backend: Backend) -> None:
    """The idle expiry may pass the absolute one; the session still ends at the absolute one."""
    session = a_session(absolute_expires_at=NOW + IDLE + 5)
    store.sessions.put(session)
    rotated = rotate(store, session, session.current_hash, NOW + 100)
    assert rotated.expires_at == NOW + IDLE + 5
    assert rotated.is_live(NOW + IDLE + 4) and not rotated.is_live(NOW + IDLE + 5)
    item = backend.item(user_pk(USER), session_sk("sess0"))
    assert item["expires_at"] == {"N": str(NOW + 100 + IDLE)}  # TTL: the new idle expiry


@pytest.mark.parametrize(
    "case",
    ["not-current", "rotated-by-another", "revoked", "idle-expired", "absolute-expired", "missing"],
)
def test_rotate_session_condition_failed(store: Store, backend: Backend, case: str) -> None:
    session = a_session(absolute_expires_at=NOW + IDLE + 1)
    store.sessions.put(session)
    presented, now = session.current_hash, NOW + 10
    if case == "not-current":
        presented = b"\x00" * 32
    elif case == "rotated-by-another":
        rotate(store, session, session.current_hash, NOW + 1)  # the racing winner
    elif case == "revoked":
        store.sessions.revoke(USER, "sess0", now=NOW + 1, reason="logout")
    elif case == "idle-expired":
        now = NOW + IDLE  # dead at exactly idle_expires_at
    elif case == "absolute-expired":
        session = replace(session, idle_expires_at=NOW + IDLE + 10)
        now = NOW + IDLE + 1
        backend.client.update_item(
            TableName=backend.table,
            Key={"pk": {"S": user_pk(USER)}, "sk": {"S": session_sk("sess0")}},
            UpdateExpression="SET idle_expires_at = :idle",
            ExpressionAttributeValues={":idle": {"N": str(NOW + IDLE + 10)}},
        )
    elif case == "missing":
        session = a_session("no-such-session")
    before = backend.items()
    as_it_was = store.sessions.get(session.user_id, session.session_id)
    with pytest.raises(RotationRefused) as refused:
        rotate(store, session, presented, now)
    assert refused.value.session == as_it_was  # handed back by the refused write itself
    assert (as_it_was is None) == (case == "missing")
    assert backend.items() == before


def test_revoke_session_once(store: Store, backend: Backend) -> None:
    session = a_session()
    store.sessions.put(session)
    rotate(store, session, session.current_hash, NOW + 1)
    assert store.sessions.revoke(USER, "sess0", now=NOW + 2, reason="logout") is True
    revoked = store.sessions.get(USER, "sess0")
    assert (revoked.revoked_at, revoked.revoked_reason) == (NOW + 2, "logout")
    assert revoked.sealed_current is None  # the sealed current token goes with the session
    assert not revoked.is_live(NOW + 2)

    assert store.sessions.revoke(USER, "sess0", now=NOW + 3, reason="again") is False
    again = store.sessions.get(USER, "sess0")
    assert (again.revoked_at, again.revoked_reason) == (NOW + 2, "logout")


def test_revoke_missing_session_writes_nothing(store: Store, backend: Backend) -> None:
    assert store.sessions.revoke(USER, "nope", now=NOW, reason="logout") is False
    assert backend.items() == []


def test_list_sessions_of_one_user(store: Store) -> None:
    store.users.upsert(a_user())
    mine = [a_session(f"sess{i:03d}", current_hash=bytes([i]) * 32) for i in range(60)]
    for session in mine:
        store.sessions.put(session)
    store.sessions.put(a_session("theirs", user_id=OTHER))
    assert sorted(store.sessions.of_user(USER), key=lambda s: s.session_id) == mine
    assert store.sessions.of_user("nobody" + "n" * 16) == []


def test_list_sessions_follows_pages(store: Store, backend: Backend) -> None:
    """Five sessions of ~300 KB each make more than one 1 MB Query page on DynamoDB."""
    pages = []
    backend.client.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: pages.append(len(parsed["Items"]))
    )
    padding = {"S": "x" * 300_000}
    for i in range(5):
        session = a_session(f"big{i}")
        store.sessions.put(session)
        backend.client.update_item(
            TableName=backend.table,
            Key={"pk": {"S": user_pk(USER)}, "sk": {"S": session_sk(session.session_id)}},
            UpdateExpression="SET padding = :p",
            ExpressionAttributeValues={":p": padding},
        )
    listed = store.sessions.of_user(USER)
    assert sorted(s.session_id for s in listed) == [f"big{i}" for i in range(5)]
    assert sum(pages) == 5 and len(pages) > 1  # the 1 MB page limit did split the result



def test_session_device_round_trip(store: Store, backend: Backend) -> None:
    session = a_session(
        device_name="张三的 iPhone",
        device_platform="ios",
        user_agent="Mozilla/5.0 MicroMessenger/8.0.50",
        source_ip="203.0.113.7",
    )
    store.sessions.put(session)
    assert store.sessions.get(USER, "sess0") == session
    item = backend.item(user_pk(USER), session_sk("sess0"))
    assert item["device_name"] == {"S": "张三的 iPhone"}
    assert item["source_ip"] == {"S": "203.0.113.7"}
    store.sessions.put(a_session("sess1"))  # nothing recorded: no attribute at all
    assert not {"device_name", "device_platform", "user_agent", "source_ip"} & set(
        backend.item(user_pk(USER), session_sk("sess1"))
    )


def test_revoke_live_session(store: Store, backend: Backend) -> None:
    store.sessions.put(a_session())
    assert store.sessions.revoke_live(USER, "sess0", now=NOW + 1, reason="ended") is True
    assert store.sessions.get(USER, "sess0").revoked_reason == "ended"
    assert store.sessions.revoke_live(USER, "sess0", now=NOW + 2, reason="other") is False
    assert store.sessions.get(USER, "sess0").revoked_at == NOW + 1
    assert store.sessions.revoke_live(OTHER, "sess0", now=NOW, reason="ended") is False
    assert backend.item(user_pk(OTHER), session_sk("sess0")) is None  # nothing created


def test_revoke_live_session_refuses_an_expired_one(store: Store) -> None:
    store.sessions.put(a_session())
    before = store.sessions.get(USER, "sess0")
    assert store.sessions.revoke_live(USER, "sess0", now=NOW + IDLE, reason="ended") is False
    assert store.sessions.get(USER, "sess0") == before


# -- revoked sessions leave the table within minutes (issue 21) -----------------------------


def test_a_revoked_session_expires_from_the_table_within_minutes(
    store: Store, backend: Backend
) -> None:
    """Revoking sets the TTL attribute to REVOKED_ITEM_TTL seconds later (it was the idle
    expiry, up to 30 days): the dead item stops being read by every Query of the user soon."""
    from chalicelib.store.sessions import REVOKED_ITEM_TTL

    assert 60 <= REVOKED_ITEM_TTL <= 900
    for sid in ("sess0", "sess1", "sess2"):
        store.sessions.put(a_session(sid))
    assert store.sessions.revoke(USER, "sess0", now=NOW + 5, reason="logout")
    assert store.sessions.revoke_live(USER, "sess1", now=NOW + 6, reason="ended")
    ttl = {
        sid: int(backend.item(user_pk(USER), session_sk(sid))["expires_at"]["N"])
        for sid in ("sess0", "sess1", "sess2")
    }
    assert ttl == {
        "sess0": NOW + 5 + REVOKED_ITEM_TTL,
        "sess1": NOW + 6 + REVOKED_ITEM_TTL,
        "sess2": NOW + IDLE,  # live: its idle expiry, as before
    }


def test_a_revocation_may_keep_its_item_longer(store: Store, backend: Backend) -> None:
    """`keep_until`: an evicted session's item stays so that its holder learns why."""
    store.sessions.put(a_session())
    assert store.sessions.revoke_live(
        USER, "sess0", now=NOW + 5, reason="evicted", keep_until=NOW + 500
    )
    item = backend.item(user_pk(USER), session_sk("sess0"))
    assert item["expires_at"] == {"N": str(NOW + 500)}
    assert store.sessions.get(USER, "sess0").revoked_reason == "evicted"


def test_a_refused_revocation_leaves_the_ttl_alone(store: Store, backend: Backend) -> None:
    store.sessions.put(a_session())
    assert store.sessions.revoke(USER, "sess0", now=NOW + 1, reason="logout")
    before = backend.items()
    assert not store.sessions.revoke(USER, "sess0", now=NOW + 400, reason="again")
    assert not store.sessions.revoke_live(USER, "sess0", now=NOW + 400, reason="again")
    assert backend.items() == before


# -- the sessions list in pages (issue 21) ----------------------------------------------------


def put_many(backend: Backend, sessions: list[SessionRecord]) -> None:
    """Sessions written 25 to a BatchWriteItem (a thousand PutItems would be slow here)."""
    from chalicelib.store.sessions import new_session

    for start in range(0, len(sessions), 25):
        batch = [
            {"PutRequest": {"Item": new_session(backend.table, s)["Item"]}}
            for s in sessions[start : start + 25]
        ]
        while batch:
            answer = backend.client.batch_write_item(RequestItems={backend.table: batch})
            batch = answer.get("UnprocessedItems", {}).get(backend.table, [])


def test_a_thousand_sessions_come_in_pages(store: Store, backend: Backend) -> None:
    mine = [a_session(f"s{i:04d}" + "x" * 17) for i in range(1000)]
    put_many(backend, mine + [a_session(f"t{i:04d}" + "y" * 17, user_id=OTHER) for i in range(30)])
    queries = []
    backend.client.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: queries.append(parsed["ScannedCount"])
    )
    seen: list[str] = []
    after = None
    while True:
        page, after = store.sessions.page(USER, limit=100, after=after)
        assert len(page) <= 100 and {s.user_id for s in page} <= {USER}
        seen += [s.session_id for s in page]
        if after is None:
            break
        assert after == page[-1].session_id
    assert seen == sorted(s.session_id for s in mine)  # each once, in session id order
    assert max(queries) <= 100 and len(queries) in (10, 11)  # a read of a page at a time


def test_a_page_starts_after_any_id_and_stays_in_the_partition(
    store: Store, backend: Backend
) -> None:
    for sid in ("a", "c", "e"):
        store.sessions.put(a_session(sid))
    store.sessions.put(a_session("d", user_id=OTHER))
    page, after = store.sessions.page(USER, limit=5, after="b")  # no session "b": a position
    assert ([s.session_id for s in page], after) == (["c", "e"], None)
    page, after = store.sessions.page(USER, limit=1, after="c")
    # DynamoDB says where it stopped when the page is full, even at the end (moto does not)
    assert [s.session_id for s in page] == ["e"] and after in ("e", None)
    assert store.sessions.page(USER, limit=1, after="e") == ([], None)
    assert store.sessions.page("nobody" + "n" * 16, limit=5) == ([], None)


# -- issue 25: the profile's claims, the sealed WeChat session_key -------------------------------


def test_a_sessions_profile_claims_and_sealed_session_key_round_trip_and_survive_a_rotation(
    store: Store, backend: Backend
) -> None:
    session = a_session(profile_claims='{"nickname":"小明"}', sealed_session_key=ODD_BYTES)
    store.sessions.put(session)
    assert store.sessions.get(USER, "sess0") == session
    item = backend.item(user_pk(USER), session_sk("sess0"))
    assert bytes(item["session_key_sealed"]["B"]) == ODD_BYTES
    assert item["profile_claims"] == {"S": '{"nickname":"小明"}'}

    rotated = rotate(store, session, session.current_hash, NOW + 10)  # a refresh: one write
    assert (rotated.sealed_session_key, rotated.profile_claims) == (
        ODD_BYTES,
        '{"nickname":"小明"}',
    )
    assert "sealed_session_key" not in repr(rotated)


def test_a_revocation_removes_the_sealed_session_key(store: Store, backend: Backend) -> None:
    store.sessions.put(a_session(sealed_session_key=ODD_BYTES))
    assert store.sessions.revoke(USER, "sess0", now=NOW + 2, reason="logout") is True
    assert store.sessions.get(USER, "sess0").sealed_session_key is None
    assert "session_key_sealed" not in backend.item(user_pk(USER), session_sk("sess0"))


def test_profile_claims_are_copied_onto_a_live_session_only(store: Store, backend: Backend) -> None:
    from chalicelib.store.sessions import PROFILE_CLAIMS

    store.sessions.put(a_session(custom_claims='{"tier":"gold"}'))
    store.sessions.put(a_session("sess1"))
    store.sessions.revoke(USER, "sess1", now=NOW, reason="logout")
    value = '{"picture":"https://wx.qlogo.cn/a"}'

    assert store.sessions.set_claims(USER, "sess0", value, name=PROFILE_CLAIMS) is True
    assert store.sessions.set_claims(USER, "sess1", value, name=PROFILE_CLAIMS) is False
    assert store.sessions.set_claims(USER, "nope", value, name=PROFILE_CLAIMS) is False
    copied = store.sessions.get(USER, "sess0")
    assert (copied.profile_claims, copied.custom_claims) == (value, '{"tier":"gold"}')
    assert store.sessions.get(USER, "sess1").profile_claims is None
    assert store.sessions.get(USER, "nope") is None  # nothing made
    assert store.sessions.set_claims(USER, "sess0", None, name=PROFILE_CLAIMS) is True
    assert "profile_claims" not in backend.item(user_pk(USER), session_sk("sess0"))
