"""A merge's transaction: every identity and unionid of one user moved to another.

`wxauth-admin user merge --into A --from B` (chalicelib/identity/graph.py decides what moves):
each identity of B (and its listing in B's partition) moved to A, with A's custom claims in
place of B's (a login through a moved identity carries A's claims, never B's), each unionid's
OWNER and link moved, the pending links between them resolved, the merge noted on both
profiles (A's note checks that A's claims are still those the identities get). One
TransactWriteItems, so at most MAX_MERGE_ITEMS items.
"""

from __future__ import annotations

from chalicelib.errors import MergeRefused
from chalicelib.store.identities import Identity, PendingLink, listing_item, pending_key
from chalicelib.store.schema import (
    IDENTITY,
    OWNER,
    PK,
    Item,
    identity_pk,
    identity_sk,
    key,
    n,
    s,
    unionid_pk,
    user_pk,
)
from chalicelib.store.table import Table
from chalicelib.store.users import CUSTOM_CLAIMS, PROFILE_CLAIMS, MergeNote, merge_notes

MAX_MERGE_ITEMS = 100  # TransactWriteItems' limit
REASON_MERGED = "merged"


class Merges:
    """Merges of two users' identities (the one cross-aggregate write of the identity graph)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def merge(
        self,
        into: str,
        source: str,
        *,
        identities: list[Identity],
        unionids: list[str],
        resolved: list[PendingLink],
        claims: str | None,
        note: MergeNote,
        now: int,
    ) -> None:
        """Move `identities` and `unionids` of `source` to `into` in one transaction, each
        identity with `claims` (`into`'s custom claims as read; None: none), resolve
        `resolved`, note the merge on both profiles (`note`: who ran it and why, on `source`'s).
        MergeRefused (nothing written) past MAX_MERGE_ITEMS items; ConditionFailed if a user
        changed meanwhile (banned, merged, `into`'s claims) or a unionid belongs to a third
        user."""
        items = merge_items(
            self._table.name,
            into,
            source,
            identities=identities,
            unionids=unionids,
            resolved=resolved,
            claims=claims,
            note=note,
            now=now,
        )
        if len(items) > MAX_MERGE_ITEMS:
            raise MergeRefused(f"user {source} has too many identities to merge in one transaction")
        self._table.transact(items)


def merge_items(
    table: str,
    into: str,
    source: str,
    *,
    identities: list[Identity],
    unionids: list[str],
    resolved: list[PendingLink],
    claims: str | None,
    note: MergeNote,
    now: int,
) -> list[Item]:
    """The merge's items, in order (see the module doc); each guarded, so that the
    transaction fails if a user changed meanwhile or a unionid belongs to a third user."""
    items: list[Item] = []
    for identity in identities:
        items += [
            _move_identity(table, identity, into=into, source=source, claims=claims, now=now),
            {
                "Delete": {
                    "TableName": table,
                    "Key": key(user_pk(source), identity_sk(identity.appid, identity.openid)),
                }
            },
            listing_item(
                table,
                Identity(
                    identity.appid,
                    identity.openid,
                    into,
                    identity.kind,
                    identity.unionid,
                    identity.created_at,
                ),
                now=now,
            ),
        ]
    for unionid in unionids:
        items += [
            _move_owner(table, unionid, into=into, source=source, now=now),
            {"Delete": {"TableName": table, "Key": key(unionid_pk(unionid), user_pk(source))}},
            {
                "Put": {
                    "TableName": table,
                    "Item": {
                        **key(unionid_pk(unionid), user_pk(into)),
                        "unionid": s(unionid),
                        "user_id": s(into),
                        "linked_at": n(now),
                    },
                }
            },
        ]
    items += [_resolve(table, link, into=into, now=now) for link in resolved]
    items += merge_notes(table, into=into, source=source, claims=claims, note=note, now=now)
    return items


def _move_identity(
    table: str, identity: Identity, *, into: str, source: str, claims: str | None, now: int
) -> Item:
    """The identity item now points at `into`, with `into`'s custom claims (`claims`; None:
    none), if it pointed at `source` (or was never written: a profile's own identity from
    before identity items)."""
    update = (
        "SET #uid = :into, #appid = :appid, #openid = :openid,"
        " #kind = if_not_exists(#kind, :kind), #c = if_not_exists(#c, :now)"
    )
    values = {
        ":into": s(into),
        ":from": s(source),
        ":appid": s(identity.appid),
        ":openid": s(identity.openid),
        ":kind": s(identity.kind),
        ":now": n(now),
    }
    if claims is None:
        update += " REMOVE #claims, #profile"
    else:
        update += ", #claims = :claims REMOVE #profile"
        values[":claims"] = s(claims)
    return {
        "Update": {
            "TableName": table,
            "Key": key(identity_pk(identity.appid, identity.openid), IDENTITY),
            "UpdateExpression": update,
            "ConditionExpression": "attribute_not_exists(#pk) OR #uid = :from",
            "ExpressionAttributeNames": {
                "#pk": PK,
                "#uid": "user_id",
                "#appid": "appid",
                "#openid": "openid",
                "#kind": "kind",
                "#c": "created_at",
                "#claims": CUSTOM_CLAIMS,
                "#profile": PROFILE_CLAIMS,  # the source's profile: not the kept user's
            },
            "ExpressionAttributeValues": values,
        }
    }


def _move_owner(table: str, unionid: str, *, into: str, source: str, now: int) -> Item:
    """The unionid's OWNER is `into`, if it was `source`, `into` or nobody."""
    return {
        "Put": {
            "TableName": table,
            "Item": {
                **key(unionid_pk(unionid), OWNER),
                "user_id": s(into),
                "unionid": s(unionid),
                "created_at": n(now),
            },
            "ConditionExpression": "attribute_not_exists(#pk) OR #uid = :from OR #uid = :into",
            "ExpressionAttributeNames": {"#pk": PK, "#uid": "user_id"},
            "ExpressionAttributeValues": {":from": s(source), ":into": s(into)},
        }
    }


def _resolve(table: str, link: PendingLink, *, into: str, now: int) -> Item:
    return {
        "Update": {
            "TableName": table,
            "Key": pending_key(link),
            "UpdateExpression": "SET #at = :now, #how = :how, #into = :into",
            "ExpressionAttributeNames": {
                "#at": "resolved_at",
                "#how": "resolution",
                "#into": "merged_into",
            },
            "ExpressionAttributeValues": {
                ":now": n(now),
                ":how": s(REASON_MERGED),
                ":into": s(into),
            },
        }
    }
