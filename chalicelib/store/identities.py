"""Identities: (appid, openid) pointing at a user, unionid links and owners, pending links.

| pk                          | sk                          | attributes                         |
|-----------------------------|-----------------------------|------------------------------------|
| `IDENTITY#<appid>#<openid>` | `IDENTITY`                  | user_id, appid, openid, kind,      |
|                             |                             | unionid?, created_at,              |
|                             |                             | custom_claims? (the user's, copied)|
|                             |                             | profile_claims? (the same)         |
| `USER#<user_id>`            | `IDENTITY#<appid>#<openid>` | the identity listed in its user's  |
|                             |                             | partition: appid, openid, kind,    |
|                             |                             | user_id, unionid?, linked_at       |
| `UNIONID#<unionid>`         | `OWNER`                     | user_id, unionid, created_at: the  |
|                             |                             | arbiter of first logins            |
| `UNIONID#<unionid>`         | `USER#<user_id>`            | unionid, user_id, linked_at        |
| `UNIONID#<unionid>`         | `PENDING#<user_id>`         | a pending link: unionid, owner,    |
|                             |                             | user_id, appid, openid, created_at,|
|                             |                             | resolved_at?, resolution?,         |
|                             |                             | merged_into?                       |
| `PENDING`                   | `LINK#<unionid>#<user_id>`  | the same, as earlier releases kept |
|                             |                             | it (read and resolved, not written)|

A pending link lives in its unionid's partition (issue 21: there was one `PENDING` partition
for all of them, which every merge read whole): the links of a user are those of its unionids,
found with one Query each (and one of the old partition, by the unionid's prefix); listing all
of them is a Scan, for an operator's command only.

The policy (who joins whom, when a link is left pending) is chalicelib/identity/graph.py's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import ConditionFailed
from chalicelib.store.schema import (
    IDENTITY,
    IDENTITY_PREFIX,
    OWNER,
    PENDING_LINK_PREFIX,
    PENDING_PK,
    PK,
    SK,
    USER_PREFIX,
    Item,
    get_n,
    get_s,
    identity_pk,
    identity_sk,
    key,
    n,
    pending_link_sk,
    pending_sk,
    s,
    unionid_pk,
    user_pk,
)
from chalicelib.store.table import Table
from chalicelib.store.users import CUSTOM_CLAIMS, PROFILE_CLAIMS

MINI_PROGRAM = "mini-program"  # the kind of an identity stored before kinds were


@dataclass(frozen=True)
class Identity:
    appid: str
    openid: str
    user_id: str
    kind: str = MINI_PROGRAM
    unionid: str | None = None
    created_at: int = 0
    # the user's custom claims (chalicelib/tokens/claims.py), copied here when the identity is
    # made, by `wxauth-admin user set-claims` and by a merge (the kept user's), so that a
    # returning login finds them in the identity's UpdateItem, without a read
    custom_claims: str | None = None
    profile_claims: str | None = None  # the same for the profile (PATCH /me, AUTH_PROFILE_CLAIM)

    def public(self) -> dict[str, str]:
        """What `/me` shows: no unionid, no secret."""
        return {"appid": self.appid, "kind": self.kind, "openid": self.openid}


@dataclass(frozen=True)
class PendingLink:
    unionid: str
    owner: str  # the user the unionid belongs to
    user_id: str  # the other user, whose identity carries the unionid
    appid: str
    openid: str
    created_at: int
    resolved_at: int | None = None
    resolution: str | None = None
    legacy: bool = False  # kept in the `PENDING` partition of earlier releases

    def public(self) -> dict[str, Any]:
        return {
            "unionid": self.unionid,
            "owner": self.owner,
            "user_id": self.user_id,
            "appid": self.appid,
            "openid": self.openid,
            "created_at": self.created_at,
            "resolved_at": self.resolved_at,
            "resolution": self.resolution,
        }


@dataclass(frozen=True)
class UnionidLink:
    """A `UNIONID#<unionid>`/`USER#<user_id>` item: a user carrying the unionid, since when."""

    user_id: str
    linked_at: int


def item_to_identity(item: Item) -> Identity:
    return Identity(
        appid=item["appid"]["S"],
        openid=item["openid"]["S"],
        user_id=item["user_id"]["S"],
        kind=get_s(item, "kind") or MINI_PROGRAM,
        unionid=get_s(item, "unionid"),
        created_at=get_n(item, "created_at") or 0,
        custom_claims=get_s(item, CUSTOM_CLAIMS),
        profile_claims=get_s(item, PROFILE_CLAIMS),
    )


def item_to_pending(item: Item) -> PendingLink:
    return PendingLink(
        unionid=item["unionid"]["S"],
        owner=item["owner"]["S"],
        user_id=item["user_id"]["S"],
        appid=item["appid"]["S"],
        openid=item["openid"]["S"],
        created_at=int(item["created_at"]["N"]),
        resolved_at=get_n(item, "resolved_at"),
        resolution=get_s(item, "resolution"),
        legacy=item[PK]["S"] == PENDING_PK,
    )


def pending_key(link: PendingLink) -> Item:
    """The `Key` of a pending link, where it is kept (its unionid's partition, or the old one)."""
    if link.legacy:
        return key(PENDING_PK, pending_sk(link.unionid, link.user_id))
    return key(unionid_pk(link.unionid), pending_link_sk(link.user_id))


def listing_item(table: str, identity: Identity, *, now: int) -> Item:
    """The Put of the identity in its user's partition (the finishing transaction rewrites it at
    every login: it costs no request, and repairs a listing a crash left out)."""
    item: Item = {
        **key(user_pk(identity.user_id), identity_sk(identity.appid, identity.openid)),
        "appid": s(identity.appid),
        "openid": s(identity.openid),
        "kind": s(identity.kind),
        "user_id": s(identity.user_id),
        "linked_at": n(now),
    }
    if identity.unionid:
        item["unionid"] = s(identity.unionid)
    return {"Put": {"TableName": table, "Item": item}}


def unionid_link(table: str, unionid: str, user_id: str, *, now: int) -> Item:
    """The Update linking `unionid` to `user_id` (`linked_at` keeps its first value); a login
    with a unionid rewrites it: cheap, and it repairs a missing link."""
    return {
        "Update": {
            "TableName": table,
            "Key": key(unionid_pk(unionid), user_pk(user_id)),
            "UpdateExpression": "SET #u = :u, #uid = :uid, #at = if_not_exists(#at, :now)",
            "ExpressionAttributeNames": {"#u": "unionid", "#uid": "user_id", "#at": "linked_at"},
            "ExpressionAttributeValues": {":u": s(unionid), ":uid": s(user_id), ":now": n(now)},
        }
    }


class Identities:
    """The identity items, unionid links and owners, and pending links."""

    def __init__(self, table: Table) -> None:
        self._table = table

    # -- a login's identity ---------------------------------------------------------------

    def touch(self, appid: str, openid: str, *, kind: str, unionid: str | None) -> Identity | None:
        """The identity as it was (None: there is none, nothing written). One UpdateItem,
        which also back-fills `unionid` where the identity has none yet."""
        names = {"#pk": PK}
        values: dict[str, Any] = {}
        if unionid:
            update = "SET #u = if_not_exists(#u, :u)"
            names["#u"] = "unionid"
            values[":u"] = s(unionid)
        else:  # an update must change something: rewrite the kind (what it is anyway)
            update = "SET #kind = if_not_exists(#kind, :kind)"
            names["#kind"] = "kind"
            values[":kind"] = s(kind)
        try:
            response = self._table.call(
                "update_item",
                Key=key(identity_pk(appid, openid), IDENTITY),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            )
        except ConditionFailed:
            return None
        return item_to_identity(response["Attributes"])

    def create(self, identity: Identity) -> Identity:
        """The identity item, with its user's custom claims (a returning login reads them from
        the identity's UpdateItem); of two racing first logins of one identity, the second gets
        the first's item (`ReturnValuesOnConditionCheckFailure`, or a read where not
        supported)."""
        item: Item = {
            **key(identity_pk(identity.appid, identity.openid), IDENTITY),
            "user_id": s(identity.user_id),
            "appid": s(identity.appid),
            "openid": s(identity.openid),
            "kind": s(identity.kind),
            "created_at": n(identity.created_at),
        }
        if identity.unionid:
            item["unionid"] = s(identity.unionid)
        if identity.custom_claims:
            item[CUSTOM_CLAIMS] = s(identity.custom_claims)
        if identity.profile_claims:
            item[PROFILE_CLAIMS] = s(identity.profile_claims)
        winner = self._table.put_new_or_get(item)
        return identity if winner is None else item_to_identity(winner)

    def relist(self, identity: Identity, *, now: int) -> None:
        """Write the identity's listing in its user's partition (one PutItem), outside a login's
        transaction: for an identity whose listing a crash left out, so that a merge run
        again finds it (chalicelib/identity/graph.py)."""
        listing = listing_item(self._table.name, identity, now=now)["Put"]["Item"]
        self._table.call("put_item", Item=listing)

    def get(self, appid: str, openid: str) -> Identity | None:
        item = self._table.get(key(identity_pk(appid, openid), IDENTITY))
        return item_to_identity(item) if item else None

    def of_user(self, user_id: str) -> list[Identity]:
        """The identities listed in the user's partition (one Query)."""
        return [
            item_to_identity(item) for item in self._table.query(user_pk(user_id), IDENTITY_PREFIX)
        ]

    # -- unionids ------------------------------------------------------------------------

    def unionid(self, unionid: str) -> tuple[str | None, list[UnionidLink]]:
        """The unionid's OWNER (None: none yet) and the users linked to it: one Query."""
        owner: str | None = None
        linked: list[UnionidLink] = []
        for item in self._table.query(unionid_pk(unionid)):
            if item[SK]["S"] == OWNER:
                owner = item["user_id"]["S"]
            elif item[SK]["S"].startswith(USER_PREFIX):
                linked.append(UnionidLink(item["user_id"]["S"], get_n(item, "linked_at") or 0))
        return owner, linked

    def users_of_unionid(self, unionid: str) -> list[str]:
        """The users linked to the unionid (`UNIONID#`/`USER#` items)."""
        return [link.user_id for link in self.unionid(unionid)[1]]

    def claim_owner(self, unionid: str, user_id: str, *, now: int) -> str:
        """Make `user_id` the unionid's OWNER with a guarded Put, unless it has one already:
        the owner in force (the winner of a race: from the failed Put's answer, or a read)."""
        owner = self._table.put_new_or_get(
            {
                **key(unionid_pk(unionid), OWNER),
                "user_id": s(user_id),
                "unionid": s(unionid),
                "created_at": n(now),
            }
        )
        return user_id if owner is None else owner["user_id"]["S"]

    # -- pending links ---------------------------------------------------------------------

    def add_pending(self, link: PendingLink) -> bool:
        """Record a link not made, once per unionid and user, in the unionid's partition; False
        if it was recorded before."""
        return self._table.put_new(
            {
                **key(unionid_pk(link.unionid), pending_link_sk(link.user_id)),
                "unionid": s(link.unionid),
                "owner": s(link.owner),
                "user_id": s(link.user_id),
                "appid": s(link.appid),
                "openid": s(link.openid),
                "created_at": n(link.created_at),
            }
        )

    def pending_of_unionid(self, unionid: str) -> list[PendingLink]:
        """The unionid's pending links, resolved ones included: one Query of its partition's
        `PENDING#` items, one of the old `PENDING` partition's for this unionid."""
        items = list(self._table.query(unionid_pk(unionid), PENDING_LINK_PREFIX))
        items += self._table.query(PENDING_PK, pending_sk(unionid, ""))
        return [item_to_pending(item) for item in items]

    def all_pending(self) -> list[PendingLink]:
        """Every pending link, resolved ones included, wherever kept: a Scan of the whole table
        (eventually consistent), for `wxauth-admin user pending` without a user."""
        found = self._table.scan(
            FilterExpression="begins_with(#sk, :link) OR #pk = :legacy",
            ExpressionAttributeNames={"#pk": PK, "#sk": SK},
            ExpressionAttributeValues={
                ":link": s(PENDING_LINK_PREFIX),
                ":legacy": s(PENDING_PK),
            },
        )
        links = [item_to_pending(item) for item in found]
        return sorted(links, key=lambda link: (link.created_at, link.unionid, link.user_id))

    # -- custom claims ---------------------------------------------------------------------

    def set_claims(
        self,
        user_id: str,
        claims: str | None,
        *,
        name: str = CUSTOM_CLAIMS,
        identities: list[Identity] | None = None,
    ) -> None:
        """Copy the user's custom claims (None: remove them) onto each of its identities: one
        Query of the user's listings (none if `identities` are given), one UpdateItem per
        identity, guarded so that an identity moved to another user (a merge) meanwhile, or
        never written, is left alone. `name`: PROFILE_CLAIMS for the profile's (PATCH /me)."""
        for identity in self.of_user(user_id) if identities is None else identities:
            values: dict[str, Any] = {":uid": s(user_id)}
            if claims is None:
                update = "REMOVE #claims"
            else:
                update = "SET #claims = :claims"
                values[":claims"] = s(claims)
            with contextlib.suppress(ConditionFailed):
                self._table.call(
                    "update_item",
                    Key=key(identity_pk(identity.appid, identity.openid), IDENTITY),
                    UpdateExpression=update,
                    ConditionExpression="#uid = :uid",
                    ExpressionAttributeNames={"#claims": name, "#uid": "user_id"},
                    ExpressionAttributeValues=values,
                )
