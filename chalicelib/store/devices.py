"""Device logins (issue 24, item 3; RFC 8628): a PC, TV or kiosk waiting for a user to confirm
it in the mini-program, and the mini-program code image it shows.

| pk                      | sk        | attributes                                                |
|-------------------------|-----------|-----------------------------------------------------------|
| `DEVICE#<sha256(code)>` | `DEVICE`  | device_login_id, device_code_hash (B), client_id,         |
|                         |           | audience?, created_at, code_expires_at, interval,         |
|                         |           | next_poll_at, last_polled_at?, status (pending,           |
|                         |           | confirmed, denied, issued), source_ip?, user_agent?,      |
|                         |           | user_id?, decided_at?, session_id?, issued_at?,           |
|                         |           | expires_at (TTL: an hour after code_expires_at)           |
| `DEVICE#<sha256(code)>` | `WXACODE` | lease_until, image? (B), content_type?, expires_at (TTL:  |
|                         |           | the code's expiry; checked in code too)                   |

The partition is the user code's hash: the mini-program names a login by its user code, the
device by its device code, which carries the user code (chalicelib/device/codes.py), so both
find the one item with one key. Only the device code's hash is kept. Every write is guarded; a
refused one raises DeviceLoginRefused with the login as it was (`ReturnValuesOnConditionCheck
Failure`), so that a poll is one UpdateItem whatever its answer. The policy (what a refusal
means, the codes, the times) is chalicelib/device/'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.errors import (
    ConditionFailed,
    DeletionPending,
    DeviceLoginRefused,
    MergedAway,
    UserBanned,
)
from chalicelib.store.device_images import (  # noqa: F401 - re-exported
    DeviceImageRecord,
    DeviceImages,
    item_to_device_image,
)
from chalicelib.store.schema import (
    DEVICE,
    EXPIRES_AT,
    PK,
    Item,
    b,
    device_pk,
    get_n,
    get_s,
    key,
    n,
    s,
)
from chalicelib.store.sessions import SessionRecord, new_session
from chalicelib.store.table import Table
from chalicelib.store.users import Users, item_to_user, may_log_in

PENDING = "pending"
CONFIRMED = "confirmed"
DENIED = "denied"
ISSUED = "issued"  # the device got its tokens: the device code is used up
KEPT_AFTER_EXPIRY = 3600  # a poll after expiry still finds the login: expired_token, not unknown

_NAMES = {
    "#hash": "device_code_hash",
    "#status": "status",
    "#code_exp": "code_expires_at",
    "#next": "next_poll_at",
    "#interval": "interval",
    "#polled": "last_polled_at",
}


@dataclass(frozen=True)
class DeviceLoginRecord:
    """A device login: who asked (client, IP, User-Agent), until when, how often it may poll,
    and what the user decided."""

    device_login_id: str  # a random id for events and logs (never the user or device code)
    device_code_hash: bytes = field(repr=False)
    client_id: str
    created_at: int
    code_expires_at: int
    interval: int
    next_poll_at: int
    status: str = PENDING
    audience: str | None = None  # its session's `aud`; None: AUTH_AUDIENCE
    source_ip: str | None = None
    user_agent: str | None = None
    user_id: str | None = None  # who confirmed or denied it
    decided_at: int | None = None
    session_id: str | None = None
    issued_at: int | None = None

    def expired(self, now: int) -> bool:
        return now >= self.code_expires_at


def item_to_device_login(item: Item) -> DeviceLoginRecord:
    return DeviceLoginRecord(
        device_login_id=item["device_login_id"]["S"],
        device_code_hash=bytes(item["device_code_hash"]["B"]),
        client_id=item["client_id"]["S"],
        created_at=int(item["created_at"]["N"]),
        code_expires_at=int(item["code_expires_at"]["N"]),
        interval=int(item["interval"]["N"]),
        next_poll_at=int(item["next_poll_at"]["N"]),
        status=item["status"]["S"],
        audience=get_s(item, "audience"),
        source_ip=get_s(item, "source_ip"),
        user_agent=get_s(item, "user_agent"),
        user_id=get_s(item, "user_id"),
        decided_at=get_n(item, "decided_at"),
        session_id=get_s(item, "session_id"),
        issued_at=get_n(item, "issued_at"),
    )


class DeviceLogins(DeviceImages):
    """The DEVICE items: start, poll, slow down, decide, issue; and each one's image."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def _key(self, user_code: str, sk: str = DEVICE) -> Item:
        return key(device_pk(user_code), sk)

    def _refused(self, user_code: str, e: ConditionFailed) -> DeviceLoginRefused:
        """The login as a refused write found it (its answer, else a consistent read)."""
        item = e.item if e.item else (e.items or [None])[0]
        login = item_to_device_login(item) if item else self.get(user_code)
        return DeviceLoginRefused(login)

    def create(self, user_code: str, login: DeviceLoginRecord, *, now: int) -> bool:
        """Store a new pending login under `user_code`; False if a login that has not expired
        holds that code (the caller draws another). One guarded PutItem."""
        optional = {
            name: s(value)
            for name, value in (
                ("audience", login.audience),
                ("source_ip", login.source_ip),
                ("user_agent", login.user_agent),
            )
            if value is not None
        }
        try:
            self._table.call(
                "put_item",
                Item={
                    **self._key(user_code),
                    "device_login_id": s(login.device_login_id),
                    "device_code_hash": b(login.device_code_hash),
                    "client_id": s(login.client_id),
                    "created_at": n(login.created_at),
                    "code_expires_at": n(login.code_expires_at),
                    "interval": n(login.interval),
                    "next_poll_at": n(login.next_poll_at),
                    "status": s(PENDING),
                    EXPIRES_AT: n(login.code_expires_at + KEPT_AFTER_EXPIRY),
                    **optional,
                },
                ConditionExpression="attribute_not_exists(#pk) OR #code_exp <= :now",
                ExpressionAttributeNames={"#pk": PK, "#code_exp": "code_expires_at"},
                ExpressionAttributeValues={":now": n(now)},
            )
        except ConditionFailed:
            return False
        return True

    def get(self, user_code: str) -> DeviceLoginRecord | None:
        item = self._table.get(self._key(user_code))
        return item_to_device_login(item) if item else None

    def poll(
        self, user_code: str, device_code_hash: bytes, *, client_id: str, now: int, next_from: int
    ) -> None:
        """A device's poll of a pending login, by its client, in time (`next_poll_at` <= now):
        the next one is due at `next_from` + its interval. Anything else (another device code
        or client, not pending, expired, too soon) writes nothing and raises DeviceLoginRefused.
        One UpdateItem."""
        try:
            self._table.call(
                "update_item",
                Key=self._key(user_code),
                UpdateExpression="SET #polled = :now, #next = #interval + :from",
                ConditionExpression=(
                    "#hash = :hash AND #client = :client AND #status = :pending"
                    " AND #code_exp > :now AND #next <= :now"
                ),
                ExpressionAttributeNames={**_NAMES, "#client": "client_id"},
                ExpressionAttributeValues={
                    ":now": n(now),
                    ":from": n(next_from),
                    ":client": s(client_id),
                    ":hash": b(device_code_hash),
                    ":pending": s(PENDING),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as e:
            raise self._refused(user_code, e) from e

    def slow_down(
        self, user_code: str, device_code_hash: bytes, *, now: int, step: int, next_from: int
    ) -> bool:
        """A poll that came too soon: the interval grows by `step` and the next poll is due at
        `next_from` + the new interval. False if the login is no longer pending (nothing
        written). One UpdateItem."""
        try:
            self._table.call(
                "update_item",
                Key=self._key(user_code),
                UpdateExpression=(
                    "SET #polled = :now, #interval = #interval + :step, #next = #interval + :from"
                ),
                ConditionExpression="#hash = :hash AND #status = :pending AND #code_exp > :now",
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={
                    ":now": n(now),
                    ":step": n(step),
                    ":from": n(next_from + step),  # `#interval` on the right is the old one
                    ":hash": b(device_code_hash),
                    ":pending": s(PENDING),
                },
            )
        except ConditionFailed:
            return False
        return True

    def decide(self, user_code: str, *, status: str, user_id: str, now: int) -> DeviceLoginRecord:
        """Confirm or deny a pending login that has not expired, once: the login after it.
        DeviceLoginRefused (the login as it was, None if there is none) otherwise. One
        UpdateItem."""
        try:
            response = self._table.call(
                "update_item",
                Key=self._key(user_code),
                UpdateExpression="SET #status = :status, #uid = :uid, #decided = :now",
                ConditionExpression=(
                    "attribute_exists(#pk) AND #status = :pending AND #code_exp > :now"
                ),
                ExpressionAttributeNames={
                    "#pk": PK,
                    "#status": "status",
                    "#code_exp": "code_expires_at",
                    "#uid": "user_id",
                    "#decided": "decided_at",
                },
                ExpressionAttributeValues={
                    ":status": s(status),
                    ":uid": s(user_id),
                    ":now": n(now),
                    ":pending": s(PENDING),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as e:
            raise self._refused(user_code, e) from e
        return item_to_device_login(response["Attributes"])

    def issue(
        self, user_code: str, device_code_hash: bytes, session: SessionRecord, *, now: int
    ) -> None:
        """One transaction, all or nothing: the confirmed login becomes `issued` (its device code
        is used up), the confirming user's new session is stored, and the user is checked to be
        neither banned nor merged away (last, as in the login's transaction).
        DeviceLoginRefused if the login is no longer confirmed (another poll issued it, or it
        expired); UserBanned; MergedAway."""
        table = self._table.name
        items: list[Item] = [
            {
                "Update": {
                    "TableName": table,
                    "Key": self._key(user_code),
                    "UpdateExpression": "SET #status = :issued, #sid = :sid, #at = :now",
                    "ConditionExpression": (
                        "#hash = :hash AND #status = :confirmed AND #code_exp > :now"
                    ),
                    "ExpressionAttributeNames": {
                        "#hash": "device_code_hash",
                        "#status": "status",
                        "#code_exp": "code_expires_at",
                        "#sid": "session_id",
                        "#at": "issued_at",
                    },
                    "ExpressionAttributeValues": {
                        ":issued": s(ISSUED),
                        ":confirmed": s(CONFIRMED),
                        ":sid": s(session.session_id),
                        ":now": n(now),
                        ":hash": b(device_code_hash),
                    },
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {"Put": new_session(table, session)},
            may_log_in(table, session.user_id),  # last: its cancellation reason is the last one
        ]
        try:
            self._table.transact(items)
        except ConditionFailed as e:
            reasons = e.reasons or []
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise self._refused(user_code, e) from e
            if reasons and reasons[-1] == "ConditionalCheckFailed":
                profile = e.items[-1] if e.items else None
                user = item_to_user(profile) if profile else Users(self._table).get(session.user_id)
                if user is not None and user.merged_into and user.banned_at is None:
                    raise MergedAway(
                        "this account was merged into another one",
                        user_id=session.user_id,
                        merged_into=user.merged_into,
                    ) from e
                if user is not None and user.erase_after is not None and user.banned_at is None:
                    # the user asked for the account's deletion after confirming (issue 25)
                    raise DeletionPending("this account is pending deletion") from e
                raise UserBanned("this user is banned") from e
            raise
