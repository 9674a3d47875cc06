"""What the store contract suite shares: the backends, and records to write with them.

Every test gets a fresh table made by `create_table`, on moto and on the real DynamoDB Local
(`backend`). A test may read the raw items (`Backend.item`) to pin the schema, but asserts only
what both backends must agree on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from chalicelib.store import SessionRecord, Store, UserRecord
from chalicelib.store.identities import Identity
from tests.conftest import BACKENDS, backend_table

NOW = 1_800_000_000
IDLE = 1000
ABSOLUTE = 5000
USER = "user0" + "u" * 17
OTHER = "user1" + "o" * 17
# Every byte value, zeros and high bytes included: binary attributes must survive as is.
ODD_BYTES = bytes(range(256)) + b"\x00\x00\xff"
SESSION_MAC_KEY = b"\x00mac-key\xff" + bytes(range(22))  # a v2 session's
SESSION_KEY_HASH = b"\x00key-hash\xff" + bytes(range(21))  # of a v3 session's token key
NEW_KEY_HASH = b"\x01" * 32  # what a rotation of a v2 (or v1) session writes
CODE = "c0de" * 16
APPID = "wx-store-test"


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
        key_hash=SESSION_KEY_HASH,
    )
    return replace(record, **changes)


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
        now=now,
    )


def complete(store: Store, unionid: str | None = None, now: int = NOW) -> None:
    finish(store, CODE, a_session(), unionid=unionid, now=now)


def finish_with(store: Store, code: str, session: SessionRecord, **phone: Any) -> None:
    """`finish` with a phone login's items (`phone_items`, `profile_update`)."""
    store.logins.finish(
        code,
        session,
        sealed_response=ODD_BYTES,
        unionid=None,
        identity=Identity(APPID, f"openid-{session.user_id}", session.user_id),
        now=NOW,
        **phone,
    )
