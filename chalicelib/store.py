"""The DynamoDB store: the single-table item schema and every read and write of it.

One table, string keys `pk` and `sk`, TTL on `expires_at` (epoch seconds). Item types:

| pk                      | sk                 | what                                          |
|-------------------------|--------------------|-----------------------------------------------|
| `USER#<user_id>`        | `PROFILE`          | a user: appid, openid, unionid, created_at    |
| `USER#<user_id>`        | `SESSION#<sid>`    | a session and its refresh-token state         |
| `UNIONID#<unionid>`     | `USER#<user_id>`   | links a unionid to each user carrying it      |
| `UNIONID#<unionid>`     | `OWNER`            | the unionid's one user (chalicelib/identity)  |
| `IDENTITY#<appid>#<oid>`| `IDENTITY`         | an app's openid -> its user (identity graph)  |
| `USER#<user_id>`        | `IDENTITY#<a>#<o>` | the user's identities, listed (`/me`, merge)  |
| `PENDING`               | `LINK#<u>#<uid>`   | a unionid link not made: two existing users   |
| `APP`                   | `APP#<appid>`      | a registered app (chalicelib/identity/apps)   |
| `LOGIN#<sha256(code)>`  | `LOGIN`            | a WeChat code being or already exchanged      |
| `PHONE#<sha256(phone)>` | `PHONE`            | a phone number's one owner (chalicelib/phone) |
| `CLIENT`                | `CLIENT#<id>`      | an OAuth client (client credentials grant)    |
| `WXTOKEN#<appid>`       | `TOKEN`            | the app's WeChat server access_token (sealed),|
|                         |                    | its refresh lease, the last forced refresh    |
| `WXTOKEN#<appid>`       | `FORCED#<day>`     | forced refreshes counted that (UTC+8) day     |
| `LIMIT#<name>#<sha256>` | `<window start>`   | an abuse-limit counter (chalicelib/limits.py) |
| `BREAKER#<appid>`       | `JSCODE2SESSION`   | the WeChat login breaker (wechat/breaker.py)  |

A returning user's login is three requests: the `LOGIN#` claim (PutItem), the `IDENTITY#`
item (UpdateItem), one transaction (session, claim result, unionid link, listed identity, the
`APP` item's ConditionCheck); docs/contributors.md, "Data model", counts the other paths.

Sessions live in their user's partition, so "every session of a user" is one strongly
consistent Query and no index is needed. Expiry is also checked in code: TTL deletion is lazy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from chalicelib.errors import StoreUnavailable, UserBanned

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

PK = "pk"
SK = "sk"
EXPIRES_AT = "expires_at"  # the table's TTL attribute

PROFILE = "PROFILE"
LOGIN = "LOGIN"
PHONE = "PHONE"
# The phone number on a user's PROFILE item (all or none of them).
PHONE_ATTRIBUTES = (
    "phone_number",
    "phone_country_code",
    "phone_pure_number",
    "phone_hash",
    "phone_bound_at",
)

WXTOKEN = "TOKEN"
FORCED_PREFIX = "FORCED#"
# The WeChat access-token item's attributes (the broker's lease follows Powertools' idempotency
# layer: `attribute_not_exists(#pk) OR #lease < :now` takes it).
CACHED_SEALED = "sealed_token"
CACHED_EXPIRES_AT = "token_expires_at"  # when WeChat said it expires (fetch time + expires_in)
CACHED_REFRESH_AT = "refresh_at"  # jittered: from then on one request refreshes it ahead
CACHED_FETCHED_AT = "fetched_at"
CACHED_LEASE_UNTIL = "lease_until"
CACHED_LAST_FORCED_AT = "last_forced_at"
FORCED_COUNT = "count"
SESSION_PREFIX = "SESSION#"
# Custom claims (chalicelib/claims.py), canonical JSON text: on a PROFILE, and copied onto its
# user's SESSION items so that a refresh's one UpdateItem returns them.
CUSTOM_CLAIMS = "custom_claims"

# DynamoDB answers these when it is overloaded or failing; after botocore's own bounded
# retries they become StoreUnavailable (503 temporarily_unavailable with Retry-After).
_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)
# Why a TransactWriteItems was cancelled, per item (`CancellationReasons`).
_RETRYABLE_CANCELLATIONS = frozenset(
    {
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "TransactionConflict",
        "RequestLimitExceeded",
    }
)
_TRANSPORT_ERRORS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
)


class ConditionFailed(Exception):
    """A guarded write lost its race; internal to the store and its callers in chalicelib."""

    def __init__(
        self,
        operation: str,
        item: dict[str, Any] | None = None,
        reasons: list[str | None] | None = None,
    ) -> None:
        super().__init__(operation)
        self.item = item  # the item as it was, where the write asked for it back
        self.reasons = reasons  # a transaction's: one code (or None) per item, in order


class RotationRefused(ConditionFailed):
    """The presented hash is not current, or the session is not live; `session` as it was."""

    def __init__(self, session: SessionRecord | None) -> None:
        super().__init__("update_item")
        self.session = session


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


def session_sk(session_id: str) -> str:
    return f"{SESSION_PREFIX}{session_id}"


def login_pk(code_hash: str) -> str:
    return f"LOGIN#{code_hash}"


def phone_pk(phone_hash: str) -> str:
    return f"PHONE#{phone_hash}"


@dataclass(frozen=True)
class PhoneRecord:
    """A user's verified phone number: E.164, and the parts WeChat returned."""

    phone_number: str = field(repr=False)  # E.164, e.g. +8613800138000
    country_code: str
    pure_phone_number: str = field(repr=False)
    phone_hash: str  # hex SHA-256 of phone_number: the key of its PHONE# item
    bound_at: int

def wxtoken_pk(appid: str) -> str:
    return f"WXTOKEN#{appid}"


@dataclass(frozen=True)
class WeChatTokenRecord:
    """The cached access-token item: the token sealed (never plaintext), its times, the lease."""

    appid: str
    sealed_token: bytes | None = field(default=None, repr=False)
    token_expires_at: int = 0
    refresh_at: int = 0
    fetched_at: int = 0
    lease_until: int = 0
    last_forced_at: int | None = None


def item_to_wechat_token(item: dict[str, Any]) -> WeChatTokenRecord:
    return WeChatTokenRecord(
        appid=item[PK]["S"].removeprefix("WXTOKEN#"),
        sealed_token=_get_b(item, CACHED_SEALED),
        token_expires_at=_get_n(item, CACHED_EXPIRES_AT) or 0,
        refresh_at=_get_n(item, CACHED_REFRESH_AT) or 0,
        fetched_at=_get_n(item, CACHED_FETCHED_AT) or 0,
        lease_until=_get_n(item, CACHED_LEASE_UNTIL) or 0,
        last_forced_at=_get_n(item, CACHED_LAST_FORCED_AT),
    )


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    appid: str
    openid: str
    unionid: str | None
    created_at: int
    phone: PhoneRecord | None = None
    banned_at: int | None = None  # chalicelib/bans.py: set, login and refresh are refused
    ban_reason: str | None = None
    custom_claims: str | None = None  # chalicelib/claims.py: JSON text


@dataclass(frozen=True)
class SessionRecord:
    """A login session and the state of its refresh token (hashes and a sealed copy only)."""

    user_id: str
    session_id: str
    client_id: str
    current_hash: bytes  # SHA-256 of the current token's body
    previous_hash: bytes | None
    rotated_at: int | None
    sealed_current: bytes | None  # the current body, sealed under the previous token's body
    created_at: int
    idle_expires_at: int
    absolute_expires_at: int
    revoked_at: int | None = None
    revoked_reason: str | None = None
    generation: int = 0  # of the current token; sessions from before generations: 0
    mac_key: bytes | None = field(default=None, repr=False)  # None: a session of v1 tokens
    audience: str | None = None  # the `aud` of its access tokens; None: AUTH_AUDIENCE
    # Where the session was started (chalicelib/devices.py), and its last rotation: all None
    # for sessions from before they were recorded.
    device_name: str | None = None
    device_platform: str | None = None
    user_agent: str | None = None
    source_ip: str | None = None
    last_refreshed_at: int | None = None
    custom_claims: str | None = None  # the user's, copied at login and set-claims (JSON text)

    @property
    def expires_at(self) -> int:
        return min(self.idle_expires_at, self.absolute_expires_at)

    def is_live(self, now: int) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True)
class LoginRecord:
    """A WeChat code claimed by one request; `sealed_response` is set once the login is done."""

    code_hash: str
    lease_until: int
    expires_at: int
    sealed_response: bytes | None = None
    user_id: str | None = None
    session_id: str | None = None
    bound_at: int | None = None  # phone codes: when the result was applied to the user

    @property
    def done(self) -> bool:
        return self.sealed_response is not None


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def _b(value: bytes) -> dict[str, bytes]:
    return {"B": bytes(value)}


def _get_s(item: dict[str, Any], name: str) -> str | None:
    return item[name]["S"] if name in item else None


def _get_n(item: dict[str, Any], name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def _get_b(item: dict[str, Any], name: str) -> bytes | None:
    return bytes(item[name]["B"]) if name in item else None


def item_to_user(item: dict[str, Any]) -> UserRecord:
    return UserRecord(
        user_id=item["user_id"]["S"],
        appid=item["appid"]["S"],
        openid=item["openid"]["S"],
        unionid=_get_s(item, "unionid"),
        created_at=int(item["created_at"]["N"]),
        phone=item_to_phone(item),
        banned_at=_get_n(item, "banned_at"),
        ban_reason=_get_s(item, "ban_reason"),
        custom_claims=_get_s(item, CUSTOM_CLAIMS),
    )


def _owned_by(owner: str | None) -> dict[str, Any]:
    """The guard of a PHONE# Put: the number is unbound (None), or still bound to `owner`."""
    if owner is None:
        return {
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": PK},
        }
    return {
        "ConditionExpression": "#uid = :owner",
        "ExpressionAttributeNames": {"#uid": "user_id"},
        "ExpressionAttributeValues": {":owner": _s(owner)},
    }


def item_to_phone(item: dict[str, Any]) -> PhoneRecord | None:
    if "phone_hash" not in item:
        return None
    return PhoneRecord(
        phone_number=item["phone_number"]["S"],
        country_code=item["phone_country_code"]["S"],
        pure_phone_number=item["phone_pure_number"]["S"],
        phone_hash=item["phone_hash"]["S"],
        bound_at=int(item["phone_bound_at"]["N"]),
    )


def item_to_session(item: dict[str, Any]) -> SessionRecord:
    return SessionRecord(
        user_id=item["user_id"]["S"],
        session_id=item["session_id"]["S"],
        client_id=item["client_id"]["S"],
        current_hash=bytes(item["current_hash"]["B"]),
        previous_hash=_get_b(item, "previous_hash"),
        rotated_at=_get_n(item, "rotated_at"),
        sealed_current=_get_b(item, "sealed_current"),
        created_at=int(item["created_at"]["N"]),
        idle_expires_at=int(item["idle_expires_at"]["N"]),
        absolute_expires_at=int(item["absolute_expires_at"]["N"]),
        revoked_at=_get_n(item, "revoked_at"),
        revoked_reason=_get_s(item, "revoked_reason"),
        generation=_get_n(item, "generation") or 0,
        mac_key=_get_b(item, "mac_key"),
        audience=_get_s(item, "audience"),
        device_name=_get_s(item, "device_name"),
        device_platform=_get_s(item, "device_platform"),
        user_agent=_get_s(item, "user_agent"),
        source_ip=_get_s(item, "source_ip"),
        last_refreshed_at=_get_n(item, "last_refreshed_at"),
        custom_claims=_get_s(item, CUSTOM_CLAIMS),
    )


def item_to_login(item: dict[str, Any]) -> LoginRecord:
    return LoginRecord(
        code_hash=item[PK]["S"].removeprefix("LOGIN#"),
        lease_until=int(item["lease_until"]["N"]),
        expires_at=int(item[EXPIRES_AT]["N"]),
        sealed_response=_get_b(item, "sealed_response"),
        user_id=_get_s(item, "user_id"),
        session_id=_get_s(item, "session_id"),
        bound_at=_get_n(item, "bound_at"),
    )


def create_table(client: DynamoDBClient, table_name: str) -> bool:
    """Create the table (on-demand, TTL on `expires_at`) unless it exists; True if created."""
    try:
        client.create_table(
            TableName=table_name,
            AttributeDefinitions=[
                {"AttributeName": PK, "AttributeType": "S"},
                {"AttributeName": SK, "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": PK, "KeyType": "HASH"},
                {"AttributeName": SK, "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as e:
        if e.response["Error"]["Code"] == "ResourceInUseException":
            return False
        raise
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRES_AT},
    )
    return True


class DynamoStore:
    """Reads and guarded writes of every item type; raises StoreUnavailable, ConditionFailed."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    @property
    def client(self) -> DynamoDBClient:
        """The botocore DynamoDB client (benchmarks hook its events to count requests)."""
        return self._client

    # -- plumbing (also used by modules adding item types) --------------------------------------

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One request on this table; ConditionFailed, StoreUnavailable, or the ClientError."""
        return self._call_client(operation, TableName=self._table, **kwargs)

    def _call_client(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed(operation, e.response.get("Item")) from e
            if code == "TransactionCanceledException":
                reasons = {r.get("Code") for r in e.response.get("CancellationReasons", [])}
                if "ConditionalCheckFailed" in reasons:
                    codes = [r.get("Code") for r in e.response.get("CancellationReasons", [])]
                    raise ConditionFailed(operation, reasons=codes) from e
                if reasons & _RETRYABLE_CANCELLATIONS:
                    raise StoreUnavailable(f"DynamoDB {operation} cancelled") from e
                raise
            if code in _UNAVAILABLE_CODES or code == "TransactionConflictException":
                raise StoreUnavailable(f"DynamoDB {operation} failed: {code}") from e
            raise
        except _TRANSPORT_ERRORS as e:
            raise StoreUnavailable(f"DynamoDB {operation} failed: {type(e).__name__}") from e
        except BotoCoreError as e:
            if "retries" in type(e).__name__.lower():
                raise StoreUnavailable(f"DynamoDB {operation} failed") from e
            raise

    @property
    def table_name(self) -> str:
        return self._table

    def query_partition(self, pk: str, sk_prefix: str = "") -> list[dict[str, Any]]:
        """Every item of partition `pk` whose sk starts with `sk_prefix` (consistent, paged)."""
        return list(self._query(pk, sk_prefix))

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.call("get_item", Key={PK: _s(pk), SK: _s(sk)}, ConsistentRead=True)
        return response.get("Item")

    # -- users ------------------------------------------------------------------------------

    def upsert_user(self, user: UserRecord) -> UserRecord | None:
        """Create the user, or keep it as it is; return it as it was before (None: created now).

        One UpdateItem, so concurrent first logins create exactly one user. `created_at` and
        `unionid` keep their first value. The single-app login's write from before identities
        (chalicelib/identity): logins now use `ensure_user`; kept for the data it wrote, which
        tests/test_identity_migration.py writes with it (tests/legacy/login_v1.py).
        """
        return self._write_profile(user, keep_identity=False)

    def ensure_user(self, user: UserRecord) -> UserRecord | None:
        """Create the user's profile unless it exists, keeping every attribute already set (the
        first identity's appid and openid, created_at, the first unionid); return it as it was
        (None: created now). One UpdateItem. Used by the identity graph (chalicelib/identity),
        where a second app's identity may join an existing user without rewriting its profile.
        """
        return self._write_profile(user, keep_identity=True)

    def _write_profile(self, user: UserRecord, *, keep_identity: bool) -> UserRecord | None:
        """The PROFILE's UpdateItem; `keep_identity`: appid and openid only where unset too."""
        names = {"#uid": "user_id", "#appid": "appid", "#openid": "openid", "#c": "created_at"}
        values = {
            ":uid": _s(user.user_id),
            ":appid": _s(user.appid),
            ":openid": _s(user.openid),
            ":c": _n(user.created_at),
        }
        if keep_identity:
            identity = (
                "#appid = if_not_exists(#appid, :appid), #openid = if_not_exists(#openid, :openid)"
            )
        else:
            identity = "#appid = :appid, #openid = :openid"
        update = f"SET #uid = :uid, {identity}, #c = if_not_exists(#c, :c)"
        if user.unionid:
            names["#u"] = "unionid"
            values[":u"] = _s(user.unionid)
            update += ", #u = if_not_exists(#u, :u)"
        response = self.call(
            "update_item",
            Key={PK: _s(user_pk(user.user_id)), SK: _s(PROFILE)},
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        )
        old = response.get("Attributes")
        return item_to_user(old) if old else None

    def get_user(self, user_id: str) -> UserRecord | None:
        item = self._get(user_pk(user_id), PROFILE)
        return item_to_user(item) if item else None

    def users_by_unionid(self, unionid: str) -> list[str]:
        items = self._query(f"UNIONID#{unionid}", "USER#")
        return [item["user_id"]["S"] for item in items]

    # -- bans (chalicelib/bans.py) ----------------------------------------------------------

    def ban_user(self, user_id: str, *, now: int, reason: str | None) -> UserRecord | None:
        """Mark the user's PROFILE banned (`banned_at`, `ban_reason`); the user as it is now,
        None if there is no such user (nothing written). A second ban rewrites both."""
        names = {"#pk": PK, "#at": "banned_at", "#reason": "ban_reason"}
        values: dict[str, Any] = {":now": _n(now)}
        if reason is None:
            update = "SET #at = :now REMOVE #reason"
        else:
            update = "SET #at = :now, #reason = :reason"
            values[":reason"] = _s(reason)
        try:
            response = self.call(
                "update_item",
                Key={PK: _s(user_pk(user_id)), SK: _s(PROFILE)},
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return None
        return item_to_user(response["Attributes"])

    def unban_user(self, user_id: str) -> UserRecord | None:
        """Remove the ban from the user's PROFILE; the user as it was before, None if there is
        no such user (nothing written)."""
        try:
            response = self.call(
                "update_item",
                Key={PK: _s(user_pk(user_id)), SK: _s(PROFILE)},
                UpdateExpression="REMOVE #at, #reason",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK, "#at": "banned_at", "#reason": "ban_reason"},
                ReturnValues="ALL_OLD",
            )
        except ConditionFailed:
            return None
        return item_to_user(response["Attributes"])

    # -- sessions ---------------------------------------------------------------------------

    def _new_session(self, session: SessionRecord) -> dict[str, Any]:
        """The guarded Put of a new session (a PutItem's or a transaction item's arguments)."""
        return {
            "TableName": self._table,
            "Item": {
                PK: _s(user_pk(session.user_id)),
                SK: _s(session_sk(session.session_id)),
                "user_id": _s(session.user_id),
                "session_id": _s(session.session_id),
                "client_id": _s(session.client_id),
                "current_hash": _b(session.current_hash),
                "generation": _n(session.generation),
                "created_at": _n(session.created_at),
                "idle_expires_at": _n(session.idle_expires_at),
                "absolute_expires_at": _n(session.absolute_expires_at),
                EXPIRES_AT: _n(session.expires_at),
                **({"mac_key": _b(session.mac_key)} if session.mac_key is not None else {}),
                **({"audience": _s(session.audience)} if session.audience else {}),
                **{
                    name: _s(value)
                    for name, value in (
                        ("device_name", session.device_name),
                        ("device_platform", session.device_platform),
                        ("user_agent", session.user_agent),
                        ("source_ip", session.source_ip),
                    )
                    if value is not None
                },
                **({CUSTOM_CLAIMS: _s(session.custom_claims)} if session.custom_claims else {}),
            },
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": PK},
        }

    def put_session(self, session: SessionRecord) -> None:
        self._call_client("put_item", **self._new_session(session))

    def get_session(self, user_id: str, session_id: str) -> SessionRecord | None:
        item = self._get(user_pk(user_id), session_sk(session_id))
        return item_to_session(item) if item else None

    def rotate_session(
        self,
        user_id: str,
        session_id: str,
        *,
        presented_hash: bytes,
        new_hash: bytes,
        new_generation: int,
        sealed_new: bytes,
        mac_key: bytes,
        now: int,
        idle_expires_at: int,
    ) -> SessionRecord:
        """Make `new_hash` current, if and only if `presented_hash` still is and the session lives.

        One conditional UpdateItem and no read: it returns the rotated session, or raises
        RotationRefused with the session as DynamoDB found it (None if there is none). Of two
        racing rotations exactly one succeeds. The TTL attribute follows the new idle expiry
        (the absolute expiry is not known without a read; it is checked here and in code).
        `mac_key` is written only where the session has none yet (a session of v1 tokens): the
        returned session holds the key its tokens are signed with.
        """
        try:
            response = self.call(
                "update_item",
                Key={PK: _s(user_pk(user_id)), SK: _s(session_sk(session_id))},
                UpdateExpression=(
                    "SET #cur = :new, #prev = :presented, #rot = :now, #sealed = :sealed,"
                    " #idle = :idle, #exp = :idle, #gen = :gen, #key = if_not_exists(#key, :key),"
                    " #refreshed = :now"
                ),
                ConditionExpression=(
                    "#cur = :presented AND attribute_not_exists(#revoked)"
                    " AND #idle > :now AND #abs > :now"
                ),
                ExpressionAttributeNames={
                    "#cur": "current_hash",
                    "#prev": "previous_hash",
                    "#rot": "rotated_at",
                    "#sealed": "sealed_current",
                    "#idle": "idle_expires_at",
                    "#abs": "absolute_expires_at",
                    "#exp": EXPIRES_AT,
                    "#revoked": "revoked_at",
                    "#gen": "generation",
                    "#key": "mac_key",
                    "#refreshed": "last_refreshed_at",
                },
                ExpressionAttributeValues={
                    ":new": _b(new_hash),
                    ":gen": _n(new_generation),
                    ":key": _b(mac_key),
                    ":presented": _b(presented_hash),
                    ":now": _n(now),
                    ":sealed": _b(sealed_new),
                    ":idle": _n(idle_expires_at),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as e:
            raise RotationRefused(item_to_session(e.item) if e.item else None) from e
        return item_to_session(response["Attributes"])

    def revoke_session(self, user_id: str, session_id: str, *, now: int, reason: str) -> bool:
        """Revoke a session unless it is already revoked or missing; True if this call did."""
        try:
            self.call(
                "update_item",
                Key={PK: _s(user_pk(user_id)), SK: _s(session_sk(session_id))},
                UpdateExpression="SET #revoked = :now, #reason = :reason REMOVE #sealed",
                ConditionExpression="attribute_exists(#pk) AND attribute_not_exists(#revoked)",
                ExpressionAttributeNames={
                    "#pk": PK,
                    "#revoked": "revoked_at",
                    "#reason": "revoked_reason",
                    "#sealed": "sealed_current",
                },
                ExpressionAttributeValues={":now": _n(now), ":reason": _s(reason)},
            )
        except ConditionFailed:
            return False
        return True

    def revoke_live_session(self, user_id: str, session_id: str, *, now: int, reason: str) -> bool:
        """Revoke a session only if it is live (exists, not revoked, neither expiry passed);
        True if this call did. One conditional UpdateItem, no read."""
        try:
            self.call(
                "update_item",
                Key={PK: _s(user_pk(user_id)), SK: _s(session_sk(session_id))},
                UpdateExpression="SET #revoked = :now, #reason = :reason REMOVE #sealed",
                ConditionExpression=(
                    "attribute_exists(#pk) AND attribute_not_exists(#revoked)"
                    " AND #idle > :now AND #abs > :now"
                ),
                ExpressionAttributeNames={
                    "#pk": PK,
                    "#revoked": "revoked_at",
                    "#reason": "revoked_reason",
                    "#sealed": "sealed_current",
                    "#idle": "idle_expires_at",
                    "#abs": "absolute_expires_at",
                },
                ExpressionAttributeValues={":now": _n(now), ":reason": _s(reason)},
            )
        except ConditionFailed:
            return False
        return True

    def list_sessions(self, user_id: str) -> list[SessionRecord]:
        return [item_to_session(item) for item in self._query(user_pk(user_id), SESSION_PREFIX)]

    def _query(self, pk: str, sk_prefix: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {":pk": _s(pk), ":prefix": _s(sk_prefix)},
            "ConsistentRead": True,
        }
        if not sk_prefix:  # the whole partition
            kwargs["KeyConditionExpression"] = "#pk = :pk"
            kwargs["ExpressionAttributeNames"] = {"#pk": PK}
            kwargs["ExpressionAttributeValues"] = {":pk": _s(pk)}
        while True:
            response = self.call("query", **kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- WeChat code exchanges (login replay) -----------------------------------------------

    def claim_login(self, code_hash: str, *, now: int, lease_until: int, expires_at: int) -> bool:
        """Claim a code for exchange; False if another request holds a live claim or result.

        A claim whose holder died (lease passed, no result) or whose item expired may be taken.
        """
        try:
            self.call(
                "put_item",
                Item={
                    PK: _s(login_pk(code_hash)),
                    SK: _s(LOGIN),
                    "lease_until": _n(lease_until),
                    EXPIRES_AT: _n(expires_at),
                },
                ConditionExpression=(
                    "attribute_not_exists(#pk) OR #exp <= :now"
                    " OR (attribute_not_exists(#sealed) AND #lease <= :now)"
                ),
                ExpressionAttributeNames={
                    "#pk": PK,
                    "#exp": EXPIRES_AT,
                    "#sealed": "sealed_response",
                    "#lease": "lease_until",
                },
                ExpressionAttributeValues={":now": _n(now)},
            )
        except ConditionFailed:
            return False
        return True

    def get_login(self, code_hash: str) -> LoginRecord | None:
        item = self._get(login_pk(code_hash), LOGIN)
        return item_to_login(item) if item else None

    def finish_login(
        self,
        code_hash: str,
        session: SessionRecord,
        *,
        sealed_response: bytes,
        unionid: str | None,
        now: int,
        extra_items: Sequence[dict[str, Any]] = (),
    ) -> None:
        """One transaction: the new session, the claimed code's sealed result, the unionid link,
        and a check that the user is not banned, and `extra_items` (the identity graph's: the
        app's ConditionCheck, the identity listed in the user's partition; chalicelib/identity).

        Either all of them are written or none: ConditionFailed if the claim is gone or an
        extra item's condition fails, UserBanned if the PROFILE has `banned_at` (a ban that
        came after the login read the user: the ban's revocation of every session may have
        missed this one).
        """
        items: list[dict[str, Any]] = [
            {"Put": self._new_session(session)},
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {PK: _s(login_pk(code_hash)), SK: _s(LOGIN)},
                    "UpdateExpression": "SET #sealed = :sealed, #uid = :uid, #sid = :sid",
                    "ConditionExpression": "attribute_exists(#pk)",
                    "ExpressionAttributeNames": {
                        "#pk": PK,
                        "#sealed": "sealed_response",
                        "#uid": "user_id",
                        "#sid": "session_id",
                    },
                    "ExpressionAttributeValues": {
                        ":sealed": _b(sealed_response),
                        ":uid": _s(session.user_id),
                        ":sid": _s(session.session_id),
                    },
                }
            },
        ]
        if unionid:
            # Rewritten at every login with a unionid: cheap, and it repairs a missing link.
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {PK: _s(f"UNIONID#{unionid}"), SK: _s(f"USER#{session.user_id}")},
                        "UpdateExpression": (
                            "SET #u = :u, #uid = :uid, #at = if_not_exists(#at, :now)"
                        ),
                        "ExpressionAttributeNames": {
                            "#u": "unionid",
                            "#uid": "user_id",
                            "#at": "linked_at",
                        },
                        "ExpressionAttributeValues": {
                            ":u": _s(unionid),
                            ":uid": _s(session.user_id),
                            ":now": _n(now),
                        },
                    }
                }
            )
        items.extend(extra_items)
        items.append(
            {  # last: its cancellation reason is the last one
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": {PK: _s(user_pk(session.user_id)), SK: _s(PROFILE)},
                    "ConditionExpression": "attribute_not_exists(#banned)",
                    "ExpressionAttributeNames": {"#banned": "banned_at"},
                }
            }
        )
        try:
            self.transact_write(items)
        except ConditionFailed as e:
            if e.reasons and e.reasons[-1] == "ConditionalCheckFailed":
                raise UserBanned("this user is banned") from e
            raise

    def transact_write(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems (each item names its table); errors as in `call`."""
        self._call_client("transact_write_items", TransactItems=items)

    def release_login(self, code_hash: str) -> None:
        """Drop an unfinished claim so that a retry may exchange the code again."""
        with contextlib.suppress(ConditionFailed):
            self.call(
                "delete_item",
                Key={PK: _s(login_pk(code_hash)), SK: _s(LOGIN)},
                ConditionExpression="attribute_not_exists(#sealed)",
                ExpressionAttributeNames={"#sealed": "sealed_response"},
            )

    # -- phone numbers (chalicelib/phone.py) ------------------------------------------------

    def record_code_result(self, code_hash: str, *, user_id: str, sealed_response: bytes) -> None:
        """Store a claimed code's sealed result (a phone code's, before it is applied).

        ConditionFailed if the claim is gone. `release_login` keeps a code with a result.
        """
        self.call(
            "update_item",
            Key={PK: _s(login_pk(code_hash)), SK: _s(LOGIN)},
            UpdateExpression="SET #sealed = :sealed, #uid = :uid",
            ConditionExpression="attribute_exists(#pk)",
            ExpressionAttributeNames={"#pk": PK, "#sealed": "sealed_response", "#uid": "user_id"},
            ExpressionAttributeValues={":sealed": _b(sealed_response), ":uid": _s(user_id)},
        )

    def phone_owner(self, phone_hash: str) -> str | None:
        """The user id a phone number is bound to, if any."""
        item = self._get(phone_pk(phone_hash), PHONE)
        return item["user_id"]["S"] if item else None

    def bind_phone(
        self,
        user_id: str,
        phone: PhoneRecord,
        *,
        previous_hash: str | None,
        owner: str | None,
        code_hash: str,
        now: int,
    ) -> None:
        """One transaction: `phone` on the user and its PHONE# item pointing at the user.

        Guarded by what the caller read: the user's current phone is `previous_hash` (whose
        PHONE# item is deleted if it is another number) and the number's owner is `owner` (None:
        unbound; another user: the number is moved, removed from that user's profile). The code's
        claim is marked applied (`bound_at`). ConditionFailed if anything changed since the read.
        """
        profile_names = {
            "#pk": PK,
            "#hash": "phone_hash",
            **{f"#a{i}": name for i, name in enumerate(PHONE_ATTRIBUTES)},
        }
        values = {
            ":a0": _s(phone.phone_number),
            ":a1": _s(phone.country_code),
            ":a2": _s(phone.pure_phone_number),
            ":a3": _s(phone.phone_hash),
            ":a4": _n(phone.bound_at),
        }
        condition = "attribute_exists(#pk) AND "
        if previous_hash is None:
            condition += "attribute_not_exists(#hash)"
        else:
            condition += "#hash = :prev"
            values[":prev"] = _s(previous_hash)
        set_phone = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(PHONE_ATTRIBUTES)))
        moving = owner is not None and owner != user_id
        if moving:
            assert owner is not None
            set_phone += ", #moved = :moved"
            profile_names["#moved"] = "phone_moved_from"
            values[":moved"] = _s(owner)
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {PK: _s(user_pk(user_id)), SK: _s(PROFILE)},
                    "UpdateExpression": set_phone,
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": profile_names,
                    "ExpressionAttributeValues": values,
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        PK: _s(phone_pk(phone.phone_hash)),
                        SK: _s(PHONE),
                        "user_id": _s(user_id),
                        "bound_at": _n(now),
                    },
                    **_owned_by(owner),
                }
            },
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {PK: _s(login_pk(code_hash)), SK: _s(LOGIN)},
                    "UpdateExpression": "SET #bound = :now",
                    "ConditionExpression": "attribute_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": PK, "#bound": "bound_at"},
                    "ExpressionAttributeValues": {":now": _n(now)},
                }
            },
        ]
        if previous_hash is not None and previous_hash != phone.phone_hash:
            items.append(
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": {PK: _s(phone_pk(previous_hash)), SK: _s(PHONE)},
                        "ConditionExpression": "attribute_not_exists(#pk) OR #uid = :me",
                        "ExpressionAttributeNames": {"#pk": PK, "#uid": "user_id"},
                        "ExpressionAttributeValues": {":me": _s(user_id)},
                    }
                }
            )
        if moving:
            assert owner is not None
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {PK: _s(user_pk(owner)), SK: _s(PROFILE)},
                        "UpdateExpression": "REMOVE "
                        + ", ".join(f"#a{i}" for i in range(len(PHONE_ATTRIBUTES)))
                        + " SET #to = :to, #at = :now",
                        "ConditionExpression": "#hash = :hash",
                        "ExpressionAttributeNames": {
                            "#hash": "phone_hash",
                            "#to": "phone_moved_to",
                            "#at": "phone_moved_at",
                            **{f"#a{i}": name for i, name in enumerate(PHONE_ATTRIBUTES)},
                        },
                        "ExpressionAttributeValues": {
                            ":hash": _s(phone.phone_hash),
                            ":to": _s(user_id),
                            ":now": _n(now),
                        },
                    }
                }
            )
        self.transact_write(items)

    # -- the WeChat server access token (chalicelib/wechat/broker.py) -------------------------

    def get_wechat_token(self, appid: str) -> WeChatTokenRecord | None:
        item = self._get(wxtoken_pk(appid), WXTOKEN)
        return item_to_wechat_token(item) if item else None

    def lease_wechat_token(
        self, appid: str, *, now: int, lease_until: int, seen_fetched_at: int | None
    ) -> None:
        """Take the refresh lease: `attribute_not_exists(#pk) OR #lease < :now` (or no lease on
        the item: storing a token releases it by removing the attribute), and only if the
        token is still the one the caller read (`seen_fetched_at`; None: there was none), so
        that a request that read before another stored a token does not fetch again. A lost
        race raises ConditionFailed with the item as it was (`e.item`): the loser needs no read
        to see the token another request stored."""
        names = {"#lease": CACHED_LEASE_UNTIL, "#fetched": CACHED_FETCHED_AT}
        values = {":until": _n(lease_until), ":now": _n(now)}
        if seen_fetched_at is None:
            unchanged = "attribute_not_exists(#fetched)"
        else:
            unchanged = "#fetched = :seen"
            values[":seen"] = _n(seen_fetched_at)
        self.call(
            "update_item",
            Key={PK: _s(wxtoken_pk(appid)), SK: _s(WXTOKEN)},
            UpdateExpression="SET #lease = :until",
            ConditionExpression=f"(attribute_not_exists(#lease) OR #lease < :now) AND {unchanged}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def claim_forced_refresh(
        self, appid: str, *, now: int, interval: int, lease_until: int
    ) -> None:
        """Claim the one forced refresh of this `interval` (across every container) and the
        lease with it; ConditionFailed (with the item as it was) if one was claimed less than
        `interval` seconds ago."""
        self.call(
            "update_item",
            Key={PK: _s(wxtoken_pk(appid)), SK: _s(WXTOKEN)},
            UpdateExpression="SET #forced = :now, #lease = :until",
            ConditionExpression="attribute_not_exists(#forced) OR #forced <= :since",
            ExpressionAttributeNames={
                "#forced": CACHED_LAST_FORCED_AT,
                "#lease": CACHED_LEASE_UNTIL,
            },
            ExpressionAttributeValues={
                ":now": _n(now),
                ":since": _n(now - interval),
                ":until": _n(lease_until),
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def count_forced_refresh(self, appid: str, day: str, *, budget: int, expires_at: int) -> int:
        """Count one forced refresh against the day's budget; the day's count after it, or
        ConditionFailed if `budget` were already used that day."""
        response = self.call(
            "update_item",
            Key={PK: _s(wxtoken_pk(appid)), SK: _s(f"{FORCED_PREFIX}{day}")},
            UpdateExpression="ADD #count :one SET #exp = :exp",
            ConditionExpression="attribute_not_exists(#count) OR #count < :budget",
            ExpressionAttributeNames={"#count": FORCED_COUNT, "#exp": EXPIRES_AT},
            ExpressionAttributeValues={
                ":one": _n(1),
                ":budget": _n(budget),
                ":exp": _n(expires_at),
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"][FORCED_COUNT]["N"])

    def put_wechat_token(
        self,
        appid: str,
        *,
        sealed_token: bytes,
        fetched_at: int,
        token_expires_at: int,
        refresh_at: int,
        expires_at: int,
        lease_until: int | None,
    ) -> None:
        """Store a freshly fetched token and release the lease (`last_forced_at` is kept).

        Only while the caller still holds its lease (`lease_until`, None: unconditionally), so
        that a fetch whose lease lapsed or was taken over by a forced refresh cannot overwrite
        a newer token: ConditionFailed then.
        """
        names = {
            "#sealed": CACHED_SEALED,
            "#fetched": CACHED_FETCHED_AT,
            "#texp": CACHED_EXPIRES_AT,
            "#refresh": CACHED_REFRESH_AT,
            "#exp": EXPIRES_AT,
            "#lease": CACHED_LEASE_UNTIL,
        }
        values = {
            ":sealed": _b(sealed_token),
            ":fetched": _n(fetched_at),
            ":texp": _n(token_expires_at),
            ":refresh": _n(refresh_at),
            ":exp": _n(expires_at),
        }
        guard: dict[str, Any] = {}
        if lease_until is not None:
            guard["ConditionExpression"] = "#lease = :mine"
            values[":mine"] = _n(lease_until)
        self.call(
            "update_item",
            Key={PK: _s(wxtoken_pk(appid)), SK: _s(WXTOKEN)},
            UpdateExpression=(
                "SET #sealed = :sealed, #fetched = :fetched, #texp = :texp, #refresh = :refresh,"
                " #exp = :exp REMOVE #lease"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            **guard,
        )

    def release_wechat_token_lease(self, appid: str, *, lease_until: int) -> None:
        """Drop the lease this request holds (its fetch failed), so a retry need not wait."""
        with contextlib.suppress(ConditionFailed):
            self.call(
                "update_item",
                Key={PK: _s(wxtoken_pk(appid)), SK: _s(WXTOKEN)},
                UpdateExpression="REMOVE #lease",
                ConditionExpression="#lease = :until",
                ExpressionAttributeNames={"#lease": CACHED_LEASE_UNTIL},
                ExpressionAttributeValues={":until": _n(lease_until)},
            )
