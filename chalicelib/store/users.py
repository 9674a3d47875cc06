"""Users: the PROFILE item of each user, and its phone number.

| pk               | sk        | attributes                                                    |
|------------------|-----------|---------------------------------------------------------------|
| `USER#<user_id>` | `PROFILE` | user_id, appid, openid (the first identity's), unionid?,      |
|                  |           | created_at, phone_* (chalicelib/store/phones.py), banned_at?, |
|                  |           | ban_reason?, custom_claims?, claims_set_at?, merged_into?,    |
|                  |           | merged_at?, merged_by?, merge_reason?, merged_from (SS)?,     |
|                  |           | last_merge_at?, nickname?, avatar_url?, profile_updated_at?,  |
|                  |           | deletion_requested_at?, erase_after? (a deletion's            |
|                  |           | cooling-off: chalicelib/deletion.py), code_claims (SS)? (the  |
|                  |           | claims of its phone codes, erased with the user)              |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import ConditionFailed
from chalicelib.store.schema import (
    PK,
    PROFILE,
    Item,
    get_n,
    get_s,
    get_string_set,
    key,
    n,
    s,
    user_pk,
)
from chalicelib.store.table import Table

# Custom claims (chalicelib/tokens/claims.py), canonical JSON text: on a PROFILE, and copied onto
# its user's SESSION and IDENTITY items so that a refresh's (or a login's) one write returns them.
CUSTOM_CLAIMS = "custom_claims"
# The profile as access-token claims (AUTH_PROFILE_CLAIM, chalicelib/profile.py), JSON text:
# copied onto the user's SESSION and IDENTITY items by PATCH /me, as custom claims are.
PROFILE_CLAIMS = "profile_claims"
PROFILE_ATTRIBUTES = ("nickname", "avatar_url")  # what PATCH /me sets (issue 25, item 4)
# The hashes of the claims (LOGIN# items) of the user's phone codes, added by each binding:
# the erasure of the user deletes them (chalicelib/erasure.py).
CODE_CLAIMS = "code_claims"
# The phone number on a user's PROFILE item (all or none of them).
PHONE_ATTRIBUTES = (
    "phone_number",
    "phone_country_code",
    "phone_pure_number",
    "phone_hash",
    "phone_bound_at",
)


@dataclass(frozen=True)
class PhoneRecord:
    """A user's verified phone number: E.164, and the parts WeChat returned."""

    phone_number: str = field(repr=False)  # E.164, e.g. +8613800138000
    country_code: str
    pure_phone_number: str = field(repr=False)
    phone_hash: str  # hex SHA-256 of phone_number: the key of its PHONE# item
    bound_at: int


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
    custom_claims: str | None = None  # chalicelib/tokens/claims.py: JSON text
    merged_into: str | None = None  # `wxauth-admin user merge` moved this user's identities
    # The user's own profile (PATCH /me, chalicelib/profile.py; issue 25, item 4)
    nickname: str | None = None
    avatar_url: str | None = None
    profile_updated_at: int | None = None
    # Issue 25, item 1 (chalicelib/deletion.py): a deletion asked for, erased after
    # `erase_after`; and what the erasure and the export follow from the profile.
    deletion_requested_at: int | None = None
    erase_after: int | None = None
    merged_from: tuple[str, ...] = ()
    phone_moved_from: str | None = None
    phone_moved_to: str | None = None
    code_claims: tuple[str, ...] = ()  # hashes of its phone codes' claims (LOGIN# items)
    claims_set_at: int | None = None
    last_merge_at: int | None = None
    phone_moved_at: int | None = None
    merged_at: int | None = None


def item_to_phone(item: Item) -> PhoneRecord | None:
    """The number on a PROFILE item, if it has one."""
    if "phone_hash" not in item:
        return None
    return PhoneRecord(
        phone_number=item["phone_number"]["S"],
        country_code=item["phone_country_code"]["S"],
        pure_phone_number=item["phone_pure_number"]["S"],
        phone_hash=item["phone_hash"]["S"],
        bound_at=int(item["phone_bound_at"]["N"]),
    )


def item_to_user(item: Item) -> UserRecord:
    return UserRecord(
        user_id=item["user_id"]["S"],
        appid=item["appid"]["S"],
        openid=item["openid"]["S"],
        unionid=get_s(item, "unionid"),
        created_at=int(item["created_at"]["N"]),
        phone=item_to_phone(item),
        banned_at=get_n(item, "banned_at"),
        ban_reason=get_s(item, "ban_reason"),
        custom_claims=get_s(item, CUSTOM_CLAIMS),
        merged_into=get_s(item, "merged_into"),
        nickname=get_s(item, "nickname"),
        avatar_url=get_s(item, "avatar_url"),
        profile_updated_at=get_n(item, "profile_updated_at"),
        deletion_requested_at=get_n(item, "deletion_requested_at"),
        erase_after=get_n(item, "erase_after"),
        merged_from=get_string_set(item, "merged_from"),
        phone_moved_from=get_s(item, "phone_moved_from"),
        phone_moved_to=get_s(item, "phone_moved_to"),
        code_claims=get_string_set(item, CODE_CLAIMS),
        claims_set_at=get_n(item, "claims_set_at"),
        last_merge_at=get_n(item, "last_merge_at"),
        phone_moved_at=get_n(item, "phone_moved_at"),
        merged_at=get_n(item, "merged_at"),
    )


def not_banned(table: str, user_id: str) -> Item:
    """A transaction's ConditionCheck: the user's PROFILE has no `banned_at`."""
    return {
        "ConditionCheck": {
            "TableName": table,
            "Key": key(user_pk(user_id), PROFILE),
            "ConditionExpression": "attribute_not_exists(#banned)",
            "ExpressionAttributeNames": {"#banned": "banned_at"},
        }
    }


def may_log_in(table: str, user_id: str, *, pending_until_after: int | None = None) -> Item:
    """A login transaction's ConditionCheck: the user's PROFILE is neither banned (`banned_at`)
    nor merged away (`merged_into`) nor pending deletion (`erase_after`); refused, it hands
    back the PROFILE (which of them). With `pending_until_after` (now), for the session of a
    user pending deletion (issue 25): the PROFILE exists and its deletion, if still asked
    for, is due after that time."""
    names = {"#banned": "banned_at", "#merged": "merged_into", "#erase": "erase_after"}
    condition = (
        "attribute_not_exists(#banned) AND attribute_not_exists(#merged)"
        " AND attribute_not_exists(#erase)"
    )
    extra: dict[str, Any] = {}
    if pending_until_after is not None:
        condition = (
            "attribute_exists(#pk) AND attribute_not_exists(#banned)"
            " AND attribute_not_exists(#merged)"
            " AND (attribute_not_exists(#erase) OR #erase > :now)"
        )
        names["#pk"] = PK
        extra = {"ExpressionAttributeValues": {":now": n(pending_until_after)}}
    return {
        "ConditionCheck": {
            "TableName": table,
            "Key": key(user_pk(user_id), PROFILE),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            **extra,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


class Users:
    """The PROFILE items: reads, the profile's upserts, bans, custom claims."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, user_id: str) -> UserRecord | None:
        """The user (one consistent GetItem), None if there is no such user."""
        item = self._table.get(key(user_pk(user_id), PROFILE))
        return item_to_user(item) if item else None

    def upsert(self, user: UserRecord) -> UserRecord | None:
        """Create the user, or keep it as it is; return it as it was before (None: created now).

        One UpdateItem, so concurrent first logins create exactly one user. `created_at` and
        `unionid` keep their first value. The single-app login's write from before identities
        (chalicelib/identity): logins now use `ensure`; kept for the data it wrote, which
        tests/identity/test_migration.py writes with it (tests/legacy/login_v1.py).
        """
        return self._write_profile(user, keep_identity=False)

    def ensure(self, user: UserRecord) -> UserRecord | None:
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
            ":uid": s(user.user_id),
            ":appid": s(user.appid),
            ":openid": s(user.openid),
            ":c": n(user.created_at),
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
            values[":u"] = s(user.unionid)
            update += ", #u = if_not_exists(#u, :u)"
        response = self._table.call(
            "update_item",
            Key=key(user_pk(user.user_id), PROFILE),
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        )
        old = response.get("Attributes")
        return item_to_user(old) if old else None

    def ban(self, user_id: str, *, now: int, reason: str | None) -> UserRecord | None:
        """Mark the user's PROFILE banned (`banned_at`, `ban_reason`); the user as it is now,
        None if there is no such user (nothing written). A second ban rewrites both."""
        names = {"#pk": PK, "#at": "banned_at", "#reason": "ban_reason"}
        values: dict[str, Any] = {":now": n(now)}
        if reason is None:
            update = "SET #at = :now REMOVE #reason"
        else:
            update = "SET #at = :now, #reason = :reason"
            values[":reason"] = s(reason)
        return self._update_existing(user_id, update, names, values)

    def unban(self, user_id: str) -> UserRecord | None:
        """Remove the ban from the user's PROFILE; the user as it was before, None if there is
        no such user (nothing written)."""
        try:
            response = self._table.call(
                "update_item",
                Key=key(user_pk(user_id), PROFILE),
                UpdateExpression="REMOVE #at, #reason",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK, "#at": "banned_at", "#reason": "ban_reason"},
                ReturnValues="ALL_OLD",
            )
        except ConditionFailed:
            return None
        return item_to_user(response["Attributes"])

    def set_claims(self, user_id: str, claims: str | None, *, now: int) -> bool:
        """Write the user's custom claims (JSON text; None: remove them) and `claims_set_at`;
        False if there is no such user (nothing written). One UpdateItem."""
        if claims is None:
            update, values = "REMOVE #claims SET #at = :now", {":now": n(now)}
        else:
            update = "SET #claims = :claims, #at = :now"
            values = {":claims": s(claims), ":now": n(now)}
        try:
            self._table.call(
                "update_item",
                Key=key(user_pk(user_id), PROFILE),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={
                    "#pk": PK,
                    "#claims": CUSTOM_CLAIMS,
                    "#at": "claims_set_at",
                },
                ExpressionAttributeValues=values,
            )
        except ConditionFailed:
            return False
        return True

    def set_profile(
        self, user_id: str, changes: dict[str, str | None], *, now: int
    ) -> UserRecord | None:
        """Set (or, for None, remove) the profile attributes named in `changes` (`nickname`,
        `avatar_url`) and `profile_updated_at`; the user as it is now, None if there is no such
        user (nothing written). One UpdateItem."""
        names = {"#pk": PK, "#at": "profile_updated_at"}
        values: dict[str, Any] = {":now": n(now)}
        sets, removes = ["#at = :now"], []
        for index, (name, value) in enumerate(sorted(changes.items())):
            if name not in PROFILE_ATTRIBUTES:
                raise ValueError(f"{name} is not a profile attribute")
            names[f"#p{index}"] = name
            if value is None:
                removes.append(f"#p{index}")
            else:
                values[f":p{index}"] = s(value)
                sets.append(f"#p{index} = :p{index}")
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return self._update_existing(user_id, update, names, values)

    def _update_existing(
        self, user_id: str, update: str, names: dict[str, str], values: dict[str, Any]
    ) -> UserRecord | None:
        """One UpdateItem of an existing PROFILE (`names` has `#pk`); the user as it is now,
        None if there is no such user (nothing written)."""
        try:
            response = self._table.call(
                "update_item",
                Key=key(user_pk(user_id), PROFILE),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return None
        return item_to_user(response["Attributes"])
