"""The store contract: one suite, run unchanged against moto and the real DynamoDB Local.

Every test gets a fresh table made by `store.create_table`. A test may read the raw items
(`Backend.item`) to pin the schema, but asserts only what both backends must agree on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from chalicelib.errors import ConditionFailed, RotationRefused, StoreUnavailable
from chalicelib.store import (
    PhoneRecord,
    SessionRecord,
    Store,
    UserRecord,
    create_table,
    login_pk,
    session_sk,
    user_pk,
)
from chalicelib.store.apps import App
from chalicelib.store.identities import Identity
from chalicelib.store.logins import LoginRecord
from chalicelib.store.sessions import new_session
from chalicelib.tokens import refresh as refresh_tokens
from tests.conftest import BACKENDS, TABLE, backend_table, table_items
from tests.integration.dynamodb_local import dynamodb_client

NOW = 1_800_000_000
IDLE = 1000
ABSOLUTE = 5000
USER = "user0" + "u" * 17
OTHER = "user1" + "o" * 17
# Every byte value, zeros and high bytes included: binary attributes must survive as is.
ODD_BYTES = bytes(range(256)) + b"\x00\x00\xff"
SESSION_MAC_KEY = b"\x00mac-key\xff" + bytes(range(22))
CANDIDATE_MAC_KEY = b"\x01" * 32  # what a rotation offers; kept only where there is none


@dataclass
class Backend:
    name: str
    client: Any
    table: str

    @property
    def store(self) -> Store:
        return Store(self.client, self.table)

    def item(self, pk: str, sk: str) -> dict[str, Any] | None:
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        return self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")

    def items(self) -> list[dict[str, Any]]:
        pages = self.client.get_paginator("scan").paginate(
            TableName=self.table, ConsistentRead=True
        )
        items = [item for page in pages for item in page["Items"]]
        return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with backend_table(request, "store") as (client, table):
        yield Backend(request.param, client, table)


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store


def a_user(user_id: str = USER, unionid: str | None = None) -> UserRecord:
    return UserRecord(
        user_id=user_id, appid="wx-app", openid=f"openid-{user_id}", unionid=unionid, created_at=NOW
    )


def a_session(session_id: str = "sess0", user_id: str = USER, **changes: Any) -> SessionRecord:
    record = SessionRecord(
        user_id=user_id,
        session_id=session_id,
        client_id="wx-app",
        current_hash=b"\x00current-hash\xff" + ODD_BYTES[:16],
        previous_hash=None,
        rotated_at=None,
        sealed_current=None,
        created_at=NOW,
        idle_expires_at=NOW + IDLE,
        absolute_expires_at=NOW + ABSOLUTE,
        mac_key=SESSION_MAC_KEY,
    )
    return replace(record, **changes)


def test_create_table_is_idempotent_and_enables_ttl(backend: Backend) -> None:
    assert create_table(backend.client, backend.table) is False
    ttl = backend.client.describe_time_to_live(TableName=backend.table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


# -- users ------------------------------------------------------------------------------------


def test_upsert_user_creates_once(store: Store) -> None:
    assert store.users.upsert(a_user()) is None  # None: this call created it
    assert store.users.get(USER) == a_user()
    assert store.users.upsert(replace(a_user(), created_at=NOW + 5)) == a_user()
    assert store.users.get(USER) == a_user()  # created_at keeps its first value


def test_upsert_user_keeps_the_first_unionid(store: Store) -> None:
    store.users.upsert(a_user())
    assert store.users.upsert(a_user(unionid="u-first")) == a_user()
    assert store.users.get(USER).unionid == "u-first"  # a unionid appearing later is recorded
    assert store.users.upsert(a_user(unionid="u-second")) == a_user(unionid="u-first")
    assert store.users.upsert(a_user()) == a_user(unionid="u-first")  # none given: kept
    assert store.users.get(USER) == a_user(unionid="u-first")


def test_get_missing_user(store: Store) -> None:
    assert store.users.get(USER) is None


def test_users_by_unionid(store: Store) -> None:
    for i, user_id in enumerate((USER, OTHER)):
        code = f"code{i}"
        claim(store, NOW, code=code)
        finish(store, code, a_session(user_id=user_id), unionid="u-shared", now=NOW)
    assert sorted(store.identities.users_of_unionid("u-shared")) == sorted([USER, OTHER])
    assert store.identities.users_of_unionid("u-nobody") == []


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
    store: Store, session: SessionRecord, presented: bytes, now: int, generation: int = 1
) -> SessionRecord:
    return store.sessions.rotate(
        session.user_id,
        session.session_id,
        presented_hash=presented,
        new_hash=ODD_BYTES[::-1],
        new_generation=generation,
        sealed_new=ODD_BYTES,
        mac_key=CANDIDATE_MAC_KEY,
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


def test_rotate_session_keeps_the_session_mac_key_and_counts_generations(
    store: Store,
) -> None:
    session = a_session(generation=41)
    store.sessions.put(session)

    rotated = rotate(store, session, session.current_hash, NOW + 10, generation=42)

    assert rotated.generation == 42
    assert rotated.mac_key == SESSION_MAC_KEY  # the offered key is not taken
    assert store.sessions.get(USER, "sess0") == rotated


def test_rotate_session_gives_a_v1_session_the_offered_mac_key(store: Store) -> None:
    """A session from before generations has no MAC key: its first rotation stores one."""
    session = a_session(mac_key=None)
    store.sessions.put(session)
    assert store.sessions.get(USER, "sess0").mac_key is None

    rotated = rotate(store, session, session.current_hash, NOW + 10)

    assert rotated.mac_key == CANDIDATE_MAC_KEY
    assert (rotated.generation, store.sessions.get(USER, "sess0").mac_key) == (1, CANDIDATE_MAC_KEY)


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


# -- WeChat code claims -----------------------------------------------------------------------

CODE = "c0de" * 16
APPID = "wx-store-test"


def claim(store: Store, now: int, lease: int = 20, ttl: int = 300, code: str = CODE) -> bool:
    return store.logins.claim(code, now=now, lease_until=now + lease, expires_at=now + ttl)


def finish(
    store: Store, code: str, session: SessionRecord, *, unionid: str | None, now: int
) -> None:
    """The login's finishing transaction, for the primary app's identity of the session's user."""
    store.logins.finish(
        code,
        session,
        sealed_response=ODD_BYTES,
        unionid=unionid,
        identity=Identity(APPID, f"openid-{session.user_id}", session.user_id, unionid=unionid),
        app=App(appid=APPID, client_id=APPID, primary=True),
        now=now,
    )


def complete(store: Store, unionid: str | None = None, now: int = NOW) -> None:
    finish(store, CODE, a_session(), unionid=unionid, now=now)


def test_claim_free_code(store: Store, backend: Backend) -> None:
    assert claim(store, NOW) is True
    assert store.logins.get(CODE) == LoginRecord(
        code_hash=CODE, lease_until=NOW + 20, expires_at=NOW + 300
    )
    assert backend.item(login_pk(CODE), "LOGIN")["expires_at"] == {"N": str(NOW + 300)}


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
    assert store.sessions.get(USER, "sess0") == a_session()
    assert store.identities.users_of_unionid("u-1") == []
    assert store.logins.get(CODE) == LoginRecord(
        code_hash=CODE,
        lease_until=NOW + 20,
        expires_at=NOW + 300,
        sealed_response=ODD_BYTES,
        user_id=USER,
        session_id="sess0",
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


# -- an unavailable DynamoDB ------------------------------------------------------------------


def test_unreachable_dynamodb_is_store_unavailable() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = dynamodb_client(endpoint, retries={"max_attempts": 2, "mode": "standard"})
    store = Store(client, "wxauth")
    with pytest.raises(StoreUnavailable):
        store.sessions.get(USER, "sess0")
    with pytest.raises(StoreUnavailable):
        store.logins.claim(CODE, now=NOW, lease_until=NOW + 20, expires_at=NOW + 300)


# -- DynamoDB failing in the middle of a request (chalice.test.Client on moto) ----------------

JSON = {"content-type": "application/json"}


def post(client: Any, path: str, body: dict[str, Any]) -> Any:
    return client.http.post(path, headers=JSON, body=json.dumps(body))


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.body
    assert response.json_body["error"] == "temporarily_unavailable"
    assert response.headers["Retry-After"] == str(StoreUnavailable.retry_after)


def test_throttled_rotation_is_503_and_leaves_the_session_as_it_was(client, dynamodb) -> None:
    tokens = post(client, "/auth/login", {"code": "alice.1"}).json_body
    user_id, session_id = tokens["refresh_token"].split(".")[:2]
    key = {"pk": {"S": user_pk(user_id)}, "sk": {"S": session_sk(session_id)}}
    stored = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    before = table_items(dynamodb)

    assert stored  # the rotation is one conditional write, and it is throttled
    with Stubber(dynamodb) as stubber:
        stubber.add_client_error(
            "update_item",
            service_error_code="ProvisionedThroughputExceededException",
            http_status_code=400,
        )
        response = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        stubber.assert_no_pending_responses()

    assert_unavailable(response)
    assert "refresh_token" not in response.json_body
    assert table_items(dynamodb) == before
    # The presented token is still the current one: the client's retry rotates it.
    retried = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert retried.status_code == 200, retried.body
    item = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    assert bytes(item["previous_hash"]["B"]) == refresh_tokens.parse(tokens["refresh_token"]).hash


def test_throttled_login_transaction_leaves_no_session(client, dynamodb) -> None:
    def throttle(**_: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
            "TransactWriteItems",
        )

    dynamodb.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", throttle)
    try:
        response = post(client, "/auth/login", {"code": "alice.1"})
    finally:
        dynamodb.meta.events.unregister(
            "provide-client-params.dynamodb.TransactWriteItems", throttle
        )

    assert_unavailable(response)
    kinds = [item["sk"]["S"] for item in table_items(dynamodb)]
    # the user and its identity (idempotent); no session, and the claim released
    assert kinds == ["IDENTITY", "PROFILE"]


@pytest.mark.parametrize(
    ("reason", "raised"),
    [
        ("ConditionalCheckFailed", ConditionFailed),
        ("TransactionConflict", StoreUnavailable),
        ("ThrottlingError", StoreUnavailable),
        ("ValidationError", ClientError),  # a bug, not an outage: no 503 that hides it
    ],
)
def test_cancelled_transactions(dynamodb, reason: str, raised: type[Exception]) -> None:
    store = Store(dynamodb, TABLE)
    with Stubber(dynamodb) as stubber:
        stubber.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            http_status_code=400,
            response_meta={},
            modeled_fields={"CancellationReasons": [{"Code": "None"}, {"Code": reason}]},
        )
        with pytest.raises(raised):
            store.table.transact([{"Put": new_session(TABLE, a_session())}])


# -- phone numbers ----------------------------------------------------------------------------

PHONE_CODE = "phone-code-hash-" + "c" * 48
NUMBER = PhoneRecord(
    phone_number="+8613800138000",
    country_code="86",
    pure_phone_number="13800138000",
    phone_hash="a" * 64,
    bound_at=NOW,
)
OTHER_NUMBER = replace(NUMBER, phone_number="+8613900139000", phone_hash="b" * 64)


def claimed_phone_code(store: Store) -> None:
    assert store.logins.claim(PHONE_CODE, now=NOW, lease_until=NOW + 20, expires_at=NOW + 300)


def test_record_code_result_keeps_the_code_from_release(store: Store) -> None:
    claimed_phone_code(store)
    store.logins.record_result(PHONE_CODE, user_id=USER, sealed_response=ODD_BYTES)
    store.logins.release(PHONE_CODE)

    record = store.logins.get(PHONE_CODE)
    assert record is not None and record.done and record.sealed_response == ODD_BYTES
    assert (record.user_id, record.bound_at) == (USER, None)


def test_record_code_result_needs_the_claim(store: Store, backend: Backend) -> None:
    with pytest.raises(ConditionFailed):
        store.logins.record_result(PHONE_CODE, user_id=USER, sealed_response=b"x")
    assert backend.items() == []


def test_bind_phone_sets_the_profile_and_the_owner(store: Store) -> None:
    store.users.upsert(a_user())
    claimed_phone_code(store)

    store.phones.bind(
        USER, NUMBER, previous_hash=None, owner=None, code_hash=PHONE_CODE, now=NOW + 1
    )

    assert store.users.get(USER) == replace(a_user(), phone=NUMBER)
    assert store.phones.owner(NUMBER.phone_hash) == USER
    assert store.logins.get(PHONE_CODE).bound_at == NOW + 1
    store.users.upsert(a_user())  # a later login keeps the number
    assert store.users.get(USER).phone == NUMBER


def test_bind_phone_refuses_a_number_bound_meanwhile(store: Store, backend: Backend) -> None:
    for user in (USER, OTHER):
        store.users.upsert(a_user(user))
    claimed_phone_code(store)
    store.phones.bind(OTHER, NUMBER, previous_hash=None, owner=None, code_hash=PHONE_CODE, now=NOW)
    before = backend.items()

    with pytest.raises(ConditionFailed):
        store.phones.bind(
            USER, NUMBER, previous_hash=None, owner=None, code_hash=PHONE_CODE, now=NOW
        )
    assert backend.items() == before


def test_bind_phone_moves_a_number_in_one_transaction(store: Store, backend: Backend) -> None:
    for user in (USER, OTHER):
        store.users.upsert(a_user(user))
    claimed_phone_code(store)
    store.phones.bind(OTHER, NUMBER, previous_hash=None, owner=None, code_hash=PHONE_CODE, now=NOW)

    store.phones.bind(USER, NUMBER, previous_hash=None, owner=OTHER, code_hash=PHONE_CODE, now=NOW)

    assert store.users.get(USER).phone == NUMBER
    assert store.users.get(OTHER).phone is None
    assert store.phones.owner(NUMBER.phone_hash) == USER
    assert backend.item(user_pk(OTHER), "PROFILE")["phone_moved_to"] == {"S": USER}
    assert backend.item(user_pk(USER), "PROFILE")["phone_moved_from"] == {"S": OTHER}


def test_bind_phone_releases_the_previous_number(store: Store) -> None:
    store.users.upsert(a_user())
    claimed_phone_code(store)
    store.phones.bind(USER, NUMBER, previous_hash=None, owner=None, code_hash=PHONE_CODE, now=NOW)

    store.phones.bind(
        USER,
        OTHER_NUMBER,
        previous_hash=NUMBER.phone_hash,
        owner=None,
        code_hash=PHONE_CODE,
        now=NOW,
    )

    assert store.users.get(USER).phone == OTHER_NUMBER
    assert store.phones.owner(NUMBER.phone_hash) is None
    assert store.phones.owner(OTHER_NUMBER.phone_hash) == USER


def test_bind_phone_guards_the_users_current_number(store: Store, backend: Backend) -> None:
    store.users.upsert(a_user())
    claimed_phone_code(store)
    store.phones.bind(USER, NUMBER, previous_hash=None, owner=None, code_hash=PHONE_CODE, now=NOW)
    before = backend.items()

    with pytest.raises(ConditionFailed):  # read before the first binding: stale
        store.phones.bind(
            USER, OTHER_NUMBER, previous_hash=None, owner=None, code_hash=PHONE_CODE, now=NOW
        )
    assert backend.items() == before


# -- devices and bans (chalicelib/devices.py, chalicelib/bans.py) -----------------------------


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


def test_ban_and_unban_user(store: Store, backend: Backend) -> None:
    store.users.upsert(a_user())
    banned = store.users.ban(USER, now=NOW + 5, reason="spam")
    assert banned == replace(a_user(), banned_at=NOW + 5, ban_reason="spam")
    assert store.users.get(USER) == banned
    assert store.users.upsert(a_user()) == banned  # a login's upsert hands back the ban
    assert store.users.ban(USER, now=NOW + 9, reason=None) == replace(a_user(), banned_at=NOW + 9)
    assert store.users.unban(USER) == replace(a_user(), banned_at=NOW + 9)
    assert store.users.get(USER) == a_user()
    assert "banned_at" not in backend.item(user_pk(USER), "PROFILE")


def test_ban_of_an_unknown_user_writes_nothing(store: Store, backend: Backend) -> None:
    assert store.users.ban(USER, now=NOW, reason="spam") is None
    assert store.users.unban(USER) is None
    assert backend.items() == []


def test_finish_login_refuses_a_user_banned_meanwhile(store: Store, backend: Backend) -> None:
    from chalicelib.errors import UserBanned

    store.users.upsert(a_user())
    claim(store, NOW)
    store.users.ban(USER, now=NOW, reason=None)  # after the login read the user
    before = backend.items()
    with pytest.raises(UserBanned):
        complete(store, unionid="u-1")
    assert backend.items() == before  # no session, no result, no link
    store.users.unban(USER)
    complete(store)
    assert store.sessions.get(USER, "sess0") == a_session()
