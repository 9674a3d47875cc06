"""Users: the PROFILE item of each user, and its phone number.

| pk               | sk        | attributes                                                    |
|------------------|-----------|---------------------------------------------------------------|
| `USER#<user_id>` | `PROFILE` | user_id, appid, openid (the first identity's), unionid?,      |
|                  |           | created_at, phone_* (chalicelib/store/phones.py), banned_at?, |
|                  |           | ban_reason?, custom_claims?, claims_set_at?, merged_into?,    |
|                  |           | merged_at?, merged_by?, merge_reason?, merged_from (SS)?,     |
|                  |           | last_merge_at?, nickname?, avatar_url?, profile_updated_at?   |
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


def may_log_in(table: str, user_id: str) -> Item:
    """A login transaction's ConditionCheck: the user's PROFILE is neither banned (`banned_at`)
    nor merged away (`merged_into`); refused, it hands back the PROFILE (which of the two)."""
    return {
        "ConditionCheck": {
            "TableName": table,
            "Key": key(user_pk(user_id), PROFILE),
            "ConditionExpression": (
                "attribute_not_exists(#banned) AND attribute_not_exists(#merged)"
            ),
            "ExpressionAttributeNames": {"#banned": "banned_at", "#merged": "merged_into"},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


@dataclass(frozen=True)
class MergeNote:
    """Who ran a merge and why, noted on the absorbed profile (`merged_by`, `merge_reason`)."""

    merged_by: str
    reason: str | None = None


def merge_notes(
    table: str, *, into: str, source: str, claims: str | None, note: MergeNote, now: int
) -> list[Item]:
    """A merge's notes on both profiles (`merged_into`/`merged_at`/`merged_by`/`merge_reason`
    on `source`, `merged_from` on `into`), each guarded: the profile exists, is not banned,
    and was not merged away (`source`: unless into `into`, a merge run again); and `into`'s
    custom claims are still `claims` (what the moved identities get)."""
    if claims is None:
        same_claims, claim_values = "attribute_not_exists(#claims)", {}
    else:
        same_claims, claim_values = "#claims = :claims", {":claims": s(claims)}
    # A merge run again (what a crash left behind) keeps the first run's time, operator and
    # reason: each run has its own log line.
    source_set = "SET #into = :into, #at = if_not_exists(#at, :now), #by = if_not_exists(#by, :by)"
    source_values = {":into": s(into), ":now": n(now), ":by": s(note.merged_by)}
    if note.reason is not None:
        source_set += ", #reason = if_not_exists(#reason, :reason)"
        source_values[":reason"] = s(note.reason)
    return [
        _merge_note(
            table,
            source,
            source_set,
            {"#into": "merged_into", "#at": "merged_at", "#by": "merged_by",
             **({"#reason": "merge_reason"} if note.reason is not None else {})},
            source_values,
            merged="(attribute_not_exists(#merged) OR #merged = :into)",
        ),
        _merge_note(
            table,
            into,
            "ADD #from :from SET #at = :now",
            {"#from": "merged_from", "#at": "last_merge_at", "#claims": CUSTOM_CLAIMS},
            {":from": {"SS": [source]}, ":now": n(now), **claim_values},
            also=same_claims,
        ),
    ]  # fmt: skip


def _merge_note(
    table: str,
    user_id: str,
    update: str,
    names: dict[str, str],
    values: dict[str, Any],
    *,
    merged: str = "attribute_not_exists(#merged)",
    also: str | None = None,
) -> Item:
    guard = f"attribute_exists(#pk) AND attribute_not_exists(#banned) AND {merged}"
    return {
        "Update": {
            "TableName": table,
            "Key": key(user_pk(user_id), PROFILE),
            "UpdateExpression": update,
            "ConditionExpression": f"{guard} AND {also}" if also else guard,
            "ExpressionAttributeNames": {
                "#pk": PK,
                "#merged": "merged_into",
                "#banned": "banned_at",
                **names,
            },
            "ExpressionAttributeValues": values,
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
