"""Device logins and their mini-program code images (chalicelib/store/devices.py; issue 24, item
3): every write guarded, a refused one changing nothing (moto and DynamoDB Local)."""

from __future__ import annotations

import pytest

from chalicelib.errors import DeletionPending, DeviceLoginRefused, UserBanned
from chalicelib.store import Store
from chalicelib.store.devices import CONFIRMED, DENIED, ISSUED, PENDING, DeviceLoginRecord
from chalicelib.store.schema import PROFILE, device_pk, key, n, user_pk
from tests.store.records import NOW, ODD_BYTES, USER, Backend, a_session, a_user

CODE = "WDJBMJHT"
HASH = b"\x00device-code\xff" + ODD_BYTES[:18]
OTHER_HASH = b"\x01" * 32


def a_login(**changes) -> DeviceLoginRecord:
    values = {
        "device_login_id": "dl0",
        "device_code_hash": HASH,
        "client_id": "wx-app",
        "created_at": NOW,
        "code_expires_at": NOW + 300,
        "interval": 5,
        "next_poll_at": NOW,
        "source_ip": "203.0.113.9",
        "user_agent": "SmartTV/1.0",
        **changes,
    }
    return DeviceLoginRecord(**values)


@pytest.fixture
def started(store: Store) -> Store:
    assert store.devices.create(CODE, a_login(), now=NOW) is True
    return store


def test_a_login_is_kept_under_the_hash_of_its_user_code_never_the_code(
    started: Store, backend: Backend
) -> None:
    assert started.devices.get(CODE) == a_login()
    (item,) = backend.items()
    assert item["pk"]["S"] == device_pk(CODE) and CODE not in item["pk"]["S"]
    assert item["status"] == {"S": PENDING}
    assert item["expires_at"] == {"N": str(NOW + 300 + 3600)}  # expired_token, not unknown
    assert bytes(item["device_code_hash"]["B"]) == HASH


def test_a_user_code_is_taken_until_its_login_expires(started: Store, backend: Backend) -> None:
    before = backend.items()
    assert started.devices.create(CODE, a_login(device_login_id="dl1"), now=NOW + 299) is False
    assert backend.items() == before
    assert started.devices.create(CODE, a_login(device_login_id="dl1"), now=NOW + 300) is True


def test_a_poll_in_time_moves_the_next_one_and_a_refused_one_writes_nothing(
    started: Store, backend: Backend
) -> None:
    started.devices.poll(CODE, HASH, client_id="wx-app", now=NOW, next_from=NOW - 1)
    assert started.devices.get(CODE).next_poll_at == NOW + 4
    before = backend.items()
    for code_hash, client_id, now in (
        (HASH, "wx-app", NOW + 3),  # too soon
        (OTHER_HASH, "wx-app", NOW + 10),  # another device code
        (HASH, "another", NOW + 10),  # another client
        (HASH, "wx-app", NOW + 300),  # expired
    ):
        with pytest.raises(DeviceLoginRefused) as refused:
            started.devices.poll(CODE, code_hash, client_id=client_id, now=now, next_from=now - 1)
        assert refused.value.login == started.devices.get(CODE)
    assert backend.items() == before
    with pytest.raises(DeviceLoginRefused) as unknown:
        started.devices.poll("BCDFGHJK", HASH, client_id="wx-app", now=NOW, next_from=NOW)
    assert unknown.value.login is None


def test_slow_down_adds_to_the_interval(started: Store) -> None:
    assert started.devices.slow_down(CODE, HASH, now=NOW + 2, step=5, next_from=NOW + 1)
    login = started.devices.get(CODE)
    assert (login.interval, login.next_poll_at) == (10, NOW + 11)
    assert not started.devices.slow_down(CODE, OTHER_HASH, now=NOW + 3, step=5, next_from=NOW)


@pytest.mark.parametrize("status", [CONFIRMED, DENIED])
def test_a_login_is_decided_once(started: Store, backend: Backend, status: str) -> None:
    decided = started.devices.decide(CODE, status=status, user_id=USER, now=NOW + 10)
    assert (decided.status, decided.user_id, decided.decided_at) == (status, USER, NOW + 10)
    before = backend.items()
    for again in (CONFIRMED, DENIED):
        with pytest.raises(DeviceLoginRefused) as refused:
            started.devices.decide(CODE, status=again, user_id="someone", now=NOW + 11)
        assert refused.value.login == decided
    assert backend.items() == before


def test_an_expired_or_unknown_login_cannot_be_decided(started: Store, backend: Backend) -> None:
    before = backend.items()
    with pytest.raises(DeviceLoginRefused) as expired:
        started.devices.decide(CODE, status=CONFIRMED, user_id=USER, now=NOW + 300)
    assert expired.value.login.status == PENDING
    with pytest.raises(DeviceLoginRefused) as unknown:
        started.devices.decide("BCDFGHJK", status=CONFIRMED, user_id=USER, now=NOW)
    assert unknown.value.login is None
    assert backend.items() == before


def test_issue_stores_the_session_and_uses_the_code_up_once(
    started: Store, backend: Backend
) -> None:
    started.users.upsert(a_user())
    started.devices.decide(CODE, status=CONFIRMED, user_id=USER, now=NOW + 10)
    session = a_session("devsess")
    started.devices.issue(CODE, HASH, session, now=NOW + 15)
    login = started.devices.get(CODE)
    assert (login.status, login.session_id, login.issued_at) == (ISSUED, "devsess", NOW + 15)
    assert started.sessions.get(USER, "devsess") is not None
    before = backend.items()
    with pytest.raises(DeviceLoginRefused) as again:
        started.devices.issue(CODE, HASH, a_session("second"), now=NOW + 20)
    assert again.value.login.status == ISSUED
    assert backend.items() == before


def test_issue_refuses_a_banned_user_and_writes_nothing(started: Store, backend: Backend) -> None:
    started.users.upsert(a_user())
    started.users.ban(USER, reason="test", now=NOW)
    started.devices.decide(CODE, status=CONFIRMED, user_id=USER, now=NOW + 10)
    before = backend.items()
    with pytest.raises(UserBanned):
        started.devices.issue(CODE, HASH, a_session("devsess"), now=NOW + 15)
    assert backend.items() == before


def test_issue_refuses_a_user_pending_deletion_and_writes_nothing(
    started: Store, backend: Backend
) -> None:
    """The user confirmed, then asked for the account's deletion (issue 25): the device gets
    no session, and the refusal says why (not a ban)."""
    started.users.upsert(a_user())
    started.devices.decide(CODE, status=CONFIRMED, user_id=USER, now=NOW + 10)
    started.table.call(
        "update_item",
        Key=key(user_pk(USER), PROFILE),
        UpdateExpression="SET erase_after = :t, deletion_requested_at = :now",
        ExpressionAttributeValues={":t": n(NOW + 7 * 86_400), ":now": n(NOW + 12)},
    )
    before = backend.items()
    with pytest.raises(DeletionPending):
        started.devices.issue(CODE, HASH, a_session("devsess"), now=NOW + 15)
    assert backend.items() == before


def test_the_image_is_fetched_under_one_lease_and_kept(started: Store, backend: Backend) -> None:
    devices = started.devices
    assert devices.image(CODE) is None
    assert devices.lease_image(CODE, now=NOW, lease_until=NOW + 30, expires_at=NOW + 300)
    assert not devices.lease_image(CODE, now=NOW + 1, lease_until=NOW + 31, expires_at=NOW + 300)
    assert not devices.store_image(
        CODE, image=b"\x89PNG late", content_type="image/png", lease_until=NOW + 31
    )
    assert devices.store_image(
        CODE, image=b"\x89PNG" + ODD_BYTES, content_type="image/png", lease_until=NOW + 30
    )
    kept = devices.image(CODE)
    assert (kept.image, kept.content_type, kept.expires_at) == (
        b"\x89PNG" + ODD_BYTES,
        "image/png",
        NOW + 300,
    )
    # kept: no new lease while it lives, even after the first lease's end
    assert not devices.lease_image(CODE, now=NOW + 60, lease_until=NOW + 90, expires_at=NOW + 300)


def test_a_released_or_lapsed_lease_lets_another_request_fetch(started: Store) -> None:
    devices = started.devices
    assert devices.lease_image(CODE, now=NOW, lease_until=NOW + 30, expires_at=NOW + 300)
    devices.release_image(CODE, lease_until=NOW + 30)
    assert devices.image(CODE) is None
    assert devices.lease_image(CODE, now=NOW, lease_until=NOW + 30, expires_at=NOW + 300)
    assert devices.lease_image(CODE, now=NOW + 30, lease_until=NOW + 60, expires_at=NOW + 300)
