"""Phone numbers: code results, the binding's transaction (moto and DynamoDB Local)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.errors import ConditionFailed, MergedAway, UserBanned
from chalicelib.store import PhoneRecord, Store, user_pk
from tests.store.records import (
    CODE,
    NOW,
    ODD_BYTES,
    OTHER,
    USER,
    Backend,
    a_session,
    a_user,
    claim,
    finish_with,
)

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

    # the code's claim is named on the profile: the user's erasure finds it (issue 25)
    assert store.users.get(USER) == replace(a_user(), phone=NUMBER, code_claims=(PHONE_CODE,))
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


# -- a phone login's number, in the login's transaction (issue 24, item 1) -------------------


def _phone_login(store: Store, *, previous_hash: str | None = None, owner: str | None = None):
    """The login's transaction of USER's session with NUMBER bound in it."""
    claim(store, NOW)
    claimed_phone_code(store)
    profile, items = store.phones.items(
        USER,
        NUMBER,
        previous_hash=previous_hash,
        owner=owner,
        code_hash=PHONE_CODE,
        now=NOW,
        may_log_in=True,
    )
    finish_with(store, CODE, a_session(), phone_items=items, profile_update=profile)


def test_a_phone_login_binds_the_number_in_the_logins_transaction(
    store: Store, backend: Backend
) -> None:
    store.users.upsert(a_user())

    _phone_login(store)

    assert store.users.get(USER).phone == NUMBER
    assert store.phones.owner(NUMBER.phone_hash) == USER
    assert store.sessions.get(USER, "sess0") is not None
    assert store.logins.get(PHONE_CODE).bound_at == NOW


@pytest.mark.parametrize("why", ["banned", "merged", "another number"])
def test_a_phone_login_refused_by_the_profile_writes_nothing(
    store: Store, backend: Backend, why: str
) -> None:
    store.users.upsert(a_user())
    if why == "banned":
        store.users.ban(USER, now=NOW, reason=None)
    elif why == "merged":
        store.users.upsert(a_user(OTHER))
        backend.client.update_item(
            TableName=backend.table,
            Key={"pk": {"S": user_pk(USER)}, "sk": {"S": "PROFILE"}},
            UpdateExpression="SET merged_into = :o",
            ExpressionAttributeValues={":o": {"S": OTHER}},
        )
    else:
        claimed_phone_code(store)
        store.phones.bind(
            USER, OTHER_NUMBER, previous_hash=None, owner=None, code_hash=PHONE_CODE, now=NOW
        )
        store.logins.release(PHONE_CODE)
        backend.client.delete_item(
            TableName=backend.table, Key={"pk": {"S": "LOGIN#" + PHONE_CODE}, "sk": {"S": "LOGIN"}}
        )
    before = backend.items()
    expected = {"banned": UserBanned, "merged": MergedAway, "another number": ConditionFailed}

    with pytest.raises(expected[why]):
        _phone_login(store)  # the profile's number as read: none

    claims = {"LOGIN#" + PHONE_CODE, "LOGIN#" + CODE}
    assert [i for i in backend.items() if i["pk"]["S"] not in claims] == before
    assert store.sessions.get(USER, "sess0") is None


def test_a_phone_login_replaces_the_number_read_on_the_profile(
    store: Store, backend: Backend
) -> None:
    store.users.upsert(a_user())
    claimed_phone_code(store)
    store.phones.bind(
        USER, OTHER_NUMBER, previous_hash=None, owner=None, code_hash=PHONE_CODE, now=NOW
    )
    backend.client.delete_item(
        TableName=backend.table, Key={"pk": {"S": "LOGIN#" + PHONE_CODE}, "sk": {"S": "LOGIN"}}
    )

    _phone_login(store, previous_hash=OTHER_NUMBER.phone_hash)

    assert store.users.get(USER).phone == NUMBER
    assert store.phones.owner(OTHER_NUMBER.phone_hash) is None
