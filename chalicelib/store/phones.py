"""Phone numbers: the number on its user's PROFILE, and the number's one owner (`PHONE#`).

| pk                      | sk        | attributes          |
|-------------------------|-----------|---------------------|
| `PHONE#<sha256(e164)>`  | `PHONE`   | user_id, bound_at   |

On the PROFILE: `phone_number` (E.164), `phone_country_code`, `phone_pure_number`,
`phone_hash`, `phone_bound_at` (all or none of them); `phone_moved_from` on the new owner and
`phone_moved_to`, `phone_moved_at` on the old one after a move (chalicelib/phone.py).
"""

from __future__ import annotations

from typing import Any

from chalicelib.store.logins import mark_bound
from chalicelib.store.schema import (
    PHONE,
    PK,
    PROFILE,
    Item,
    get_s,
    key,
    n,
    phone_pk,
    s,
    user_pk,
)
from chalicelib.store.table import Table
from chalicelib.store.users import CODE_CLAIMS, PHONE_ATTRIBUTES, PhoneRecord


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
        "ExpressionAttributeValues": {":owner": s(owner)},
    }


class Phones:
    """The PHONE# owner items and the numbers on profiles."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def owner(self, phone_hash: str) -> str | None:
        """The user id a phone number is bound to, if any (one consistent GetItem)."""
        item = self._table.get(key(phone_pk(phone_hash), PHONE))
        return get_s(item, "user_id") if item else None

    def bind(
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
        profile, others = binding_items(
            self._table.name,
            user_id,
            phone,
            previous_hash=previous_hash,
            owner=owner,
            code_hash=code_hash,
            now=now,
        )
        self._table.transact([profile, *others])

    def items(
        self,
        user_id: str,
        phone: PhoneRecord,
        *,
        previous_hash: str | None,
        owner: str | None,
        code_hash: str,
        now: int,
        may_log_in: bool = False,
    ) -> tuple[Item, list[Item]]:
        """`binding_items` of this table: for a transaction of another repository's (a phone
        login's, chalicelib/store/logins.py `finish`)."""
        return binding_items(
            self._table.name,
            user_id,
            phone,
            previous_hash=previous_hash,
            owner=owner,
            code_hash=code_hash,
            now=now,
            may_log_in=may_log_in,
        )


def binding_items(
    table: str,
    user_id: str,
    phone: PhoneRecord,
    *,
    previous_hash: str | None,
    owner: str | None,
    code_hash: str,
    now: int,
    may_log_in: bool = False,
) -> tuple[Item, list[Item]]:
    """A binding's items (`Phones.bind`): the Update of the user's PROFILE, and the others (the
    number's PHONE# Put, the code's claim marked applied, the previous number's Delete, the
    moved number's removal from its owner's profile). With `may_log_in` (a phone login's
    transaction, chalicelib/store/logins.py), the PROFILE's Update also checks what the login's
    ConditionCheck of the same item would (neither banned nor merged away) and hands the
    profile back when refused: a transaction may touch an item only once."""
    profile_names = {
        "#pk": PK,
        "#hash": "phone_hash",
        "#codes": CODE_CLAIMS,
        **{f"#a{i}": name for i, name in enumerate(PHONE_ATTRIBUTES)},
    }
    values: dict[str, Any] = {
        ":a0": s(phone.phone_number),
        ":a1": s(phone.country_code),
        ":a2": s(phone.pure_phone_number),
        ":a3": s(phone.phone_hash),
        ":a4": n(phone.bound_at),
        ":codes": {"SS": [code_hash]},  # the code's claim, erased with the user (issue 25)
    }
    condition = "attribute_exists(#pk) AND "
    if previous_hash is None:
        condition += "attribute_not_exists(#hash)"
    else:
        condition += "#hash = :prev"
        values[":prev"] = s(previous_hash)
    set_phone = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(PHONE_ATTRIBUTES)))
    moving = owner is not None and owner != user_id
    if moving:
        assert owner is not None
        set_phone += ", #moved = :moved"
        profile_names["#moved"] = "phone_moved_from"
        values[":moved"] = s(owner)
    update: Item = {
        "TableName": table,
        "Key": key(user_pk(user_id), PROFILE),
        "UpdateExpression": f"{set_phone} ADD #codes :codes",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": profile_names,
        "ExpressionAttributeValues": values,
    }
    if may_log_in:
        update["ConditionExpression"] += (
            " AND attribute_not_exists(#banned) AND attribute_not_exists(#merged)"
            " AND attribute_not_exists(#erase)"  # pending deletion (issue 25): no binding
        )
        profile_names.update(
            {"#banned": "banned_at", "#merged": "merged_into", "#erase": "erase_after"}
        )
        update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    others: list[Item] = [
        {
            "Put": {
                "TableName": table,
                "Item": {
                    **key(phone_pk(phone.phone_hash), PHONE),
                    "user_id": s(user_id),
                    "bound_at": n(now),
                },
                **_owned_by(owner),
            }
        },
        mark_bound(table, code_hash, now=now),
    ]
    if previous_hash is not None and previous_hash != phone.phone_hash:
        others.append(
            {
                "Delete": {
                    "TableName": table,
                    "Key": key(phone_pk(previous_hash), PHONE),
                    "ConditionExpression": "attribute_not_exists(#pk) OR #uid = :me",
                    "ExpressionAttributeNames": {"#pk": PK, "#uid": "user_id"},
                    "ExpressionAttributeValues": {":me": s(user_id)},
                }
            }
        )
    if moving:
        assert owner is not None
        others.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": key(user_pk(owner), PROFILE),
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
                        ":hash": s(phone.phone_hash),
                        ":to": s(user_id),
                        ":now": n(now),
                    },
                }
            }
        )
    return {"Update": update}, others
