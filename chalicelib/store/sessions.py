"""Sessions: one item per login session, in its user's partition, with its refresh-token state.

| pk               | sk              | attributes                                              |
|------------------|-----------------|---------------------------------------------------------|
| `USER#<user_id>` | `SESSION#<sid>` | user_id, session_id, client_id, current_hash,           |
|                  |                 | previous_hash?, rotated_at?, sealed_current?,           |
|                  |                 | generation, key_hash (v3), mac_key? (v2), audience?,    |
|                  |                 | created_at,                                             |
|                  |                 | idle_expires_at, absolute_expires_at, expires_at (TTL), |
|                  |                 | revoked_at?, revoked_reason?, device_name?,             |
|                  |                 | device_platform?, user_agent?, source_ip?,              |
|                  |                 | last_refreshed_at?, custom_claims?, profile_claims?,    |
|                  |                 | session_key_sealed?                                     |

`session_key_sealed` is the login's WeChat session_key, sealed (chalicelib/open_data.py); it
stays until the session ends: a rotation leaves it as it is.

Sessions live in their user's partition, so "every session of a user" is one strongly
consistent Query and no index is needed. Expiry is also checked in code: TTL deletion is lazy.

A revocation sets the TTL attribute to REVOKED_ITEM_TTL seconds later (unless told to keep the
item longer, `keep_until`): a dead session is then deleted by DynamoDB's TTL (typically within
two days of that moment) instead of lingering until its idle expiry, and every Query of the
user's partition (the sessions list, logout-all, a ban, set-claims, the session cap) stops
reading it. Until it is deleted a refresh still finds it and answers why it ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.errors import ConditionFailed, RotationRefused
from chalicelib.store.schema import (
    EXPIRES_AT,
    PK,
    SESSION_PREFIX,
    Item,
    b,
    get_b,
    get_n,
    get_s,
    key,
    n,
    s,
    session_sk,
    user_pk,
)
from chalicelib.store.table import Table
from chalicelib.store.users import CUSTOM_CLAIMS, PROFILE_CLAIMS

# The login's sealed WeChat session_key (chalicelib/open_data.py).
SESSION_KEY_SEALED = "session_key_sealed"

# How long a revoked session's item stays (its TTL, from the revocation): a few minutes, so
# that a refresh racing the revocation, a reuse of its tokens or a banned user's refresh still
# finds it and gets the same answer as at the moment it was revoked (issue 21).
REVOKED_ITEM_TTL = 300


@dataclass(frozen=True)
class SessionRecord:
    """A login session and the state of its refresh token (hashes and a sealed copy only)."""

    user_id: str
    session_id: str
    client_id: str
    current_hash: bytes  # SHA-256 of the current token (of its body for a v2 token)
    previous_hash: bytes | None
    rotated_at: int | None
    sealed_current: bytes | None  # the current body, sealed under the previous token's body
    created_at: int
    idle_expires_at: int
    absolute_expires_at: int
    revoked_at: int | None = None
    revoked_reason: str | None = None
    generation: int = 0  # of the current token; sessions from before generations: 0
    mac_key: bytes | None = field(default=None, repr=False)  # v2 tokens' MAC key, if it had any
    key_hash: bytes | None = field(default=None, repr=False)  # of its v3 tokens' key
    audience: str | None = None  # the `aud` of its access tokens; None: AUTH_AUDIENCE
    # Where the session was started (chalicelib/devices.py), and its last rotation: all None
    # for sessions from before they were recorded.
    device_name: str | None = None
    device_platform: str | None = None
    user_agent: str | None = None
    source_ip: str | None = None
    last_refreshed_at: int | None = None
    custom_claims: str | None = None  # the user's, copied at login and set-claims (JSON text)
    profile_claims: str | None = None  # the user's profile, copied at login and PATCH /me
    sealed_session_key: bytes | None = field(default=None, repr=False)  # open_data.py

    @property
    def expires_at(self) -> int:
        return min(self.idle_expires_at, self.absolute_expires_at)

    def is_live(self, now: int) -> bool:
        return self.revoked_at is None and now < self.expires_at


def item_to_session(item: Item) -> SessionRecord:
    return SessionRecord(
        user_id=item["user_id"]["S"],
        session_id=item["session_id"]["S"],
        client_id=item["client_id"]["S"],
        current_hash=bytes(item["current_hash"]["B"]),
        previous_hash=get_b(item, "previous_hash"),
        rotated_at=get_n(item, "rotated_at"),
        sealed_current=get_b(item, "sealed_current"),
        created_at=int(item["created_at"]["N"]),
        idle_expires_at=int(item["idle_expires_at"]["N"]),
        absolute_expires_at=int(item["absolute_expires_at"]["N"]),
        revoked_at=get_n(item, "revoked_at"),
        revoked_reason=get_s(item, "revoked_reason"),
        generation=get_n(item, "generation") or 0,
        mac_key=get_b(item, "mac_key"),
        key_hash=get_b(item, "key_hash"),
        audience=get_s(item, "audience"),
        device_name=get_s(item, "device_name"),
        device_platform=get_s(item, "device_platform"),
        user_agent=get_s(item, "user_agent"),
        source_ip=get_s(item, "source_ip"),
        last_refreshed_at=get_n(item, "last_refreshed_at"),
        custom_claims=get_s(item, CUSTOM_CLAIMS),
        profile_claims=get_s(item, PROFILE_CLAIMS),
        sealed_session_key=get_b(item, SESSION_KEY_SEALED),
    )


def new_session(table: str, session: SessionRecord) -> Item:
    """The guarded Put of a new session (a PutItem's arguments, or a transaction's `Put`)."""
    return {
        "TableName": table,
        "Item": {
            **key(user_pk(session.user_id), session_sk(session.session_id)),
            "user_id": s(session.user_id),
            "session_id": s(session.session_id),
            "client_id": s(session.client_id),
            "current_hash": b(session.current_hash),
            "generation": n(session.generation),
            "created_at": n(session.created_at),
            "idle_expires_at": n(session.idle_expires_at),
            "absolute_expires_at": n(session.absolute_expires_at),
            EXPIRES_AT: n(session.expires_at),
            **({"mac_key": b(session.mac_key)} if session.mac_key is not None else {}),
            **({"key_hash": b(session.key_hash)} if session.key_hash is not None else {}),
            **({"audience": s(session.audience)} if session.audience else {}),
            **{
                name: s(value)
                for name, value in (
                    ("device_name", session.device_name),
                    ("device_platform", session.device_platform),
                    ("user_agent", session.user_agent),
                    ("source_ip", session.source_ip),
                )
                if value is not None
            },
            **({CUSTOM_CLAIMS: s(session.custom_claims)} if session.custom_claims else {}),
            **({PROFILE_CLAIMS: s(session.profile_claims)} if session.profile_claims else {}),
            **(
                {SESSION_KEY_SEALED: b(session.sealed_session_key)}
                if session.sealed_session_key
                else {}
            ),
        },
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": {"#pk": PK},
    }


class Sessions:
    """The SESSION items: start, read, rotate, revoke, list, copy claims onto."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def put(self, session: SessionRecord) -> None:
        """Store a new session (ConditionFailed if its id is taken)."""
        self._table.request("put_item", **new_session(self._table.name, session))

    def get(self, user_id: str, session_id: str) -> SessionRecord | None:
        item = self._table.get(key(user_pk(user_id), session_sk(session_id)))
        return item_to_session(item) if item else None

    def of_user(self, user_id: str) -> list[SessionRecord]:
        """Every session of the user, revoked and expired ones too: one Query (paged)."""
        return [
            item_to_session(item) for item in self._table.query(user_pk(user_id), SESSION_PREFIX)
        ]

    def page(
        self, user_id: str, *, limit: int, after: str | None = None
    ) -> tuple[list[SessionRecord], str | None]:
        """At most `limit` sessions of the user (revoked and expired ones too), in session id
        order, after the session id `after` (None: from the first): one Query. Also the id to
        start the next page after; None when no session is left."""
        items, last_sk = self._table.query_page(
            user_pk(user_id),
            SESSION_PREFIX,
            limit=limit,
            after_sk=None if after is None else session_sk(after),
        )
        next_after = last_sk.removeprefix(SESSION_PREFIX) if last_sk is not None else None
        return [item_to_session(item) for item in items], next_after

    def rotate(
        self,
        user_id: str,
        session_id: str,
        *,
        presented_hash: bytes,
        new_hash: bytes,
        new_generation: int,
        sealed_new: bytes,
        key_hash: bytes,
        now: int,
        idle_expires_at: int,
    ) -> SessionRecord:
        """Make `new_hash` current, if and only if `presented_hash` still is and the session lives.

        One conditional UpdateItem and no read: it returns the rotated session, or raises
        RotationRefused with the session as DynamoDB found it (None if there is none). Of two
        racing rotations exactly one succeeds. The TTL attribute follows the new idle expiry
        (the absolute expiry is not known without a read; it is checked here and in code).
        `key_hash` is the hash of the new token's key (the presented token's, for a v3 token:
        then it is the value already stored); a v2 session's `mac_key` is left as it is, for its
        older tokens.
        """
        try:
            response = self._table.call(
                "update_item",
                Key=key(user_pk(user_id), session_sk(session_id)),
                UpdateExpression=(
                    "SET #cur = :new, #prev = :presented, #rot = :now, #sealed = :sealed,"
                    " #idle = :idle, #exp = :idle, #gen = :gen, #khash = :khash,"
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
                    "#khash": "key_hash",
                    "#refreshed": "last_refreshed_at",
                },
                ExpressionAttributeValues={
                    ":new": b(new_hash),
                    ":gen": n(new_generation),
                    ":khash": b(key_hash),
                    ":presented": b(presented_hash),
                    ":now": n(now),
                    ":sealed": b(sealed_new),
                    ":idle": n(idle_expires_at),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as e:
            raise RotationRefused(item_to_session(e.item) if e.item else None) from e
        return item_to_session(response["Attributes"])

    def revoke(
        self,
        user_id: str,
        session_id: str,
        *,
        now: int,
        reason: str,
        keep_until: int | None = None,
    ) -> bool:
        """Revoke a session unless it is already revoked or missing; True if this call did.
        Its item expires (TTL) at `keep_until`, by default REVOKED_ITEM_TTL seconds from now."""
        return self._revoke(
            user_id, session_id, now=now, reason=reason, live=False, keep_until=keep_until
        )

    def revoke_live(
        self,
        user_id: str,
        session_id: str,
        *,
        now: int,
        reason: str,
        keep_until: int | None = None,
    ) -> bool:
        """Revoke a session only if it is live (exists, not revoked, neither expiry passed);
        True if this call did. One conditional UpdateItem, no read. TTL as `revoke`'s."""
        return self._revoke(
            user_id, session_id, now=now, reason=reason, live=True, keep_until=keep_until
        )

    def _revoke(
        self,
        user_id: str,
        session_id: str,
        *,
        now: int,
        reason: str,
        live: bool,
        keep_until: int | None,
    ) -> bool:
        names = {
            "#pk": PK,
            "#revoked": "revoked_at",
            "#reason": "revoked_reason",
            "#sealed": "sealed_current",
            "#skey": SESSION_KEY_SEALED,  # an ended session keeps no session_key
            "#exp": EXPIRES_AT,
        }
        condition = "attribute_exists(#pk) AND attribute_not_exists(#revoked)"
        if live:
            condition += " AND #idle > :now AND #abs > :now"
            names.update({"#idle": "idle_expires_at", "#abs": "absolute_expires_at"})
        try:
            self._table.call(
                "update_item",
                Key=key(user_pk(user_id), session_sk(session_id)),
                UpdateExpression=(
                    "SET #revoked = :now, #reason = :reason, #exp = :gone REMOVE #sealed, #skey"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":now": n(now),
                    ":reason": s(reason),
                    ":gone": n(now + REVOKED_ITEM_TTL if keep_until is None else keep_until),
                },
            )
        except ConditionFailed:
            return False
        return True

    def set_claims(
        self, user_id: str, session_id: str, claims: str | None, *, name: str = CUSTOM_CLAIMS
    ) -> bool:
        """Copy the user's custom claims (None: remove them) onto one session, unless it was
        revoked or deleted meanwhile; True if it was written. One conditional UpdateItem.
        `name`: the attribute, PROFILE_CLAIMS for the profile's (PATCH /me)."""
        try:
            self._table.call(
                "update_item",
                Key=key(user_pk(user_id), session_sk(session_id)),
                UpdateExpression="REMOVE #claims" if claims is None else "SET #claims = :claims",
                ConditionExpression="attribute_exists(#pk) AND attribute_not_exists(#revoked)",
                ExpressionAttributeNames={
                    "#pk": PK,
                    "#claims": name,
                    "#revoked": "revoked_at",
                },
                **({"ExpressionAttributeValues": {":claims": s(claims)}} if claims else {}),
            )
        except ConditionFailed:
            return False
        return True
