"""The identity graph: (appid, openid) identities, each pointing at one user, linked by unionid.

Items (also in chalicelib/store.py's table):

| pk                            | sk                             | what                            |
|-------------------------------|--------------------------------|---------------------------------|
| `IDENTITY#<appid>#<openid>`   | `IDENTITY`                     | user_id, appid, openid, kind,   |
|                               |                                | unionid?, created_at            |
| `USER#<user_id>`              | `IDENTITY#<appid>#<openid>`    | the identity, listed in its     |
|                               |                                | user's partition (`/me`, merge) |
| `UNIONID#<unionid>`           | `OWNER`                        | the unionid's one user: the     |
|                               |                                | arbiter of first logins         |
| `PENDING`                     | `LINK#<unionid>#<user_id>`     | a link not made: `user_id`'s    |
|                               |                                | identity carries a unionid that |
|                               |                                | `owner` already owns            |

Policy (README, "Several apps, one user"):
- A new identity whose unionid has an owner joins that user; otherwise its user id is
  `user_id_for(appid, openid)` (what single-app deployments always used, so their users resolve
  without a rewrite) and, with a unionid, it claims the unionid's OWNER item with a guarded Put:
  of two first logins from two apps at the same moment, exactly one claims it and the other
  joins its user.
- A unionid that appears later (the app was bound to the open platform since) is back-filled
  on the identity and linked if the unionid has no owner yet, or is owned by the same user.
- If linking would join two existing users, nothing is merged: a pending link is recorded, the
  `IdentityLinkPending` metric is counted, and both users go on as they were until an operator
  runs `wxauth-admin user merge --into A --from B`.
- A merge moves every identity (and unionid) of B to A in one transaction, records it on both
  profiles (`merged_into`/`merged_at` on B, `merged_from` on A), resolves the pending links
  between them, then revokes B's sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import MergeRefused
from chalicelib.identity.apps import MINI_PROGRAM, App, Exchanged
from chalicelib.logs import Metrics
from chalicelib.store import (
    CUSTOM_CLAIMS,
    PK,
    PROFILE,
    SK,
    ConditionFailed,
    DynamoStore,
    UserRecord,
    user_pk,
)

IDENTITY = "IDENTITY"
IDENTITY_PREFIX = "IDENTITY#"
OWNER = "OWNER"
PENDING_PK = "PENDING"
PENDING_PREFIX = "LINK#"
MAX_MERGE_ITEMS = 100  # TransactWriteItems' limit
REASON_MERGED = "merged"


def identity_pk(appid: str, openid: str) -> str:
    return f"{IDENTITY_PREFIX}{appid}#{openid}"


def identity_sk(appid: str, openid: str) -> str:
    """The identity's listing item in its user's partition."""
    return f"{IDENTITY_PREFIX}{appid}#{openid}"


def unionid_pk(unionid: str) -> str:
    return f"UNIONID#{unionid}"


def pending_sk(unionid: str, user_id: str) -> str:
    return f"{PENDING_PREFIX}{unionid}#{user_id}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


@dataclass(frozen=True)
class Identity:
    appid: str
    openid: str
    user_id: str
    kind: str = MINI_PROGRAM
    unionid: str | None = None
    created_at: int = 0
    # the user's custom claims, copied here by `wxauth-admin user set-claims` (chalicelib/claims)
    # so that a returning login finds them in the identity's UpdateItem, without a read
    custom_claims: str | None = None

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


def item_to_identity(item: dict[str, Any]) -> Identity:
    return Identity(
        appid=item["appid"]["S"],
        openid=item["openid"]["S"],
        user_id=item["user_id"]["S"],
        kind=item["kind"]["S"] if "kind" in item else MINI_PROGRAM,
        unionid=item["unionid"]["S"] if "unionid" in item else None,
        created_at=int(item["created_at"]["N"]) if "created_at" in item else 0,
        custom_claims=item[CUSTOM_CLAIMS]["S"] if CUSTOM_CLAIMS in item else None,
    )


def item_to_pending(item: dict[str, Any]) -> PendingLink:
    return PendingLink(
        unionid=item["unionid"]["S"],
        owner=item["owner"]["S"],
        user_id=item["user_id"]["S"],
        appid=item["appid"]["S"],
        openid=item["openid"]["S"],
        created_at=int(item["created_at"]["N"]),
        resolved_at=int(item["resolved_at"]["N"]) if "resolved_at" in item else None,
        resolution=item["resolution"]["S"] if "resolution" in item else None,
    )


@dataclass(frozen=True)
class Resolved:
    """Who logged in: the user, whether this login created it, and its identity."""

    user_id: str
    is_new: bool
    identity: Identity
    custom_claims: str | None = None  # the user's (chalicelib/claims.py), for the new session


class IdentityGraph:
    """Reads and guarded writes of the identity items; the login's resolution of a user."""

    def __init__(
        self,
        store: DynamoStore,
        *,
        user_id_for: Callable[[str, str], str],
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._user_id_for = user_id_for
        self._metrics = metrics or Metrics()

    # -- login ----------------------------------------------------------------------------

    def resolve(self, app: App, wx: Exchanged, now: int) -> Resolved:
        """The user of (app, openid), creating or linking what is missing.

        A returning identity: one UpdateItem (which also back-fills a unionid WeChat returns
        for the first time). A unionid back-filled: one Query and one guarded Put more (the
        unionid's owner), and a pending link (PutItem) if it would join two users. A new
        identity: that UpdateItem, with a unionid the Query and the Put, a GetItem when it
        joins another user, the profile's UpdateItem, the identity's guarded Put.
        """
        old = self._touch(app, wx)
        if old is not None:
            if wx.unionid and old.unionid is None:
                self._backfill(old, wx.unionid, now)
            return Resolved(
                old.user_id, False, _with_unionid(old, wx.unionid), old.custom_claims
            )
        return self._first(app, wx, now)

    def _touch(self, app: App, wx: Exchanged) -> Identity | None:
        names = {"#pk": PK}
        update = ""
        values: dict[str, Any] = {}
        if wx.unionid:
            update = "SET #u = if_not_exists(#u, :u)"
            names["#u"] = "unionid"
            values[":u"] = _s(wx.unionid)
        else:  # an update must change something: rewrite the kind (what it is anyway)
            update = "SET #kind = if_not_exists(#kind, :kind)"
            names["#kind"] = "kind"
            values[":kind"] = _s(app.kind)
        try:
            response = self._store.call(
                "update_item",
                Key={PK: _s(identity_pk(app.appid, wx.openid)), SK: _s(IDENTITY)},
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            )
        except ConditionFailed:
            return None
        return item_to_identity(response["Attributes"])

    def _first(self, app: App, wx: Exchanged, now: int) -> Resolved:
        derived = self._user_id_for(app.appid, wx.openid)
        user_id = derived
        conflict_owner: str | None = None
        if wx.unionid:
            owner = self.owner_of(wx.unionid, candidate=derived, now=now)
            if owner != derived:
                # Join the unionid's user, unless this identity already has one of its own: a
                # user of a single-app deployment (no identity item yet) whose unionid another
                # user got first. Not merged silently: a pending link.
                if self._store.get_user(derived) is None:
                    user_id = owner
                else:
                    conflict_owner = owner
        unionid = None if conflict_owner else wx.unionid  # a profile shows a linked unionid
        before = self._store.ensure_user(
            UserRecord(user_id, app.appid, wx.openid, unionid, created_at=now)
        )
        identity = self._create(
            Identity(app.appid, wx.openid, user_id, app.kind, wx.unionid, created_at=now)
        )
        if conflict_owner is not None and wx.unionid:
            self._pending(wx.unionid, conflict_owner, identity, now)
        return Resolved(
            identity.user_id,
            before is None and identity.user_id == user_id,
            identity,
            before.custom_claims if before is not None else None,
        )

    def _create(self, identity: Identity) -> Identity:
        """The identity item; of two racing first logins of one identity, the second gets the
        first's item (`ReturnValuesOnConditionCheckFailure`, or a read where not supported)."""
        item: dict[str, Any] = {
            PK: _s(identity_pk(identity.appid, identity.openid)),
            SK: _s(IDENTITY),
            "user_id": _s(identity.user_id),
            "appid": _s(identity.appid),
            "openid": _s(identity.openid),
            "kind": _s(identity.kind),
            "created_at": _n(identity.created_at),
        }
        if identity.unionid:
            item["unionid"] = _s(identity.unionid)
        try:
            self._store.call(
                "put_item",
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as e:
            winner = e.item or self.get(identity.appid, identity.openid)
            if winner is None:
                raise
            return winner if isinstance(winner, Identity) else item_to_identity(winner)
        return identity

    def owner_of(self, unionid: str, *, candidate: str, now: int) -> str:
        """The unionid's one user: its OWNER item's, else `candidate`, claimed with a guarded
        Put (a user linked to it before OWNER items existed, `UNIONID#`/`USER#`, is preferred).
        One Query, and the Put if there was no owner."""
        items = self._store.query_partition(unionid_pk(unionid))
        for item in items:
            if item[SK]["S"] == OWNER:
                return item["user_id"]["S"]
        linked = sorted(
            (item for item in items if item[SK]["S"].startswith("USER#")),
            key=lambda item: int(item["linked_at"]["N"]) if "linked_at" in item else 0,
        )
        if linked and candidate not in {item["user_id"]["S"] for item in linked}:
            candidate = linked[0]["user_id"]["S"]
        try:
            self._store.call(
                "put_item",
                Item={
                    PK: _s(unionid_pk(unionid)),
                    SK: _s(OWNER),
                    "user_id": _s(candidate),
                    "unionid": _s(unionid),
                    "created_at": _n(now),
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as e:
            if e.item:
                return e.item["user_id"]["S"]
            owner = self._store.call(
                "get_item",
                Key={PK: _s(unionid_pk(unionid)), SK: _s(OWNER)},
                ConsistentRead=True,
            ).get("Item")
            if owner is None:
                raise
            return owner["user_id"]["S"]
        return candidate

    def _backfill(self, identity: Identity, unionid: str, now: int) -> None:
        """A unionid WeChat returned for an identity that had none (stored by `_touch`)."""
        owner = self.owner_of(unionid, candidate=identity.user_id, now=now)
        if owner == identity.user_id:
            self._store.ensure_user(
                UserRecord(identity.user_id, identity.appid, identity.openid, unionid, now)
            )
        else:
            self._pending(unionid, owner, identity, now)

    def _pending(self, unionid: str, owner: str, identity: Identity, now: int) -> None:
        """Record the link not made (once per unionid and user) and count the metric."""
        try:
            self._store.call(
                "put_item",
                Item={
                    PK: _s(PENDING_PK),
                    SK: _s(pending_sk(unionid, identity.user_id)),
                    "unionid": _s(unionid),
                    "owner": _s(owner),
                    "user_id": _s(identity.user_id),
                    "appid": _s(identity.appid),
                    "openid": _s(identity.openid),
                    "created_at": _n(now),
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            )
        except ConditionFailed:
            return
        self._metrics.count("IdentityLinkPending", appid=identity.appid)

    def listing_item(self, identity: Identity, *, now: int) -> dict[str, Any]:
        """The finishing transaction's Put of the identity in its user's partition (rewritten at
        every login: it costs no request, and repairs a listing a crash left out)."""
        item: dict[str, Any] = {
            PK: _s(user_pk(identity.user_id)),
            SK: _s(identity_sk(identity.appid, identity.openid)),
            "appid": _s(identity.appid),
            "openid": _s(identity.openid),
            "kind": _s(identity.kind),
            "user_id": _s(identity.user_id),
            "linked_at": _n(now),
        }
        if identity.unionid:
            item["unionid"] = _s(identity.unionid)
        return {"Put": {"TableName": self._store.table_name, "Item": item}}

    # -- reading --------------------------------------------------------------------------

    def get(self, appid: str, openid: str) -> Identity | None:
        item = self._store.call(
            "get_item",
            Key={PK: _s(identity_pk(appid, openid)), SK: _s(IDENTITY)},
            ConsistentRead=True,
        ).get("Item")
        return item_to_identity(item) if item else None

    def identities_of(self, user: UserRecord) -> list[Identity]:
        """The user's identities (one Query of its partition). A user of a single-app deployment
        that has not logged in since has none listed: its profile's (appid, openid) is it."""
        listed = [
            item_to_identity(item)
            for item in self._store.query_partition(user_pk(user.user_id), IDENTITY_PREFIX)
        ]
        if not listed and user.openid:
            listed = [Identity(user.appid, user.openid, user.user_id, MINI_PROGRAM, user.unionid)]
        return listed

    def pending(self, *, include_resolved: bool = False) -> list[PendingLink]:
        links = [
            item_to_pending(i) for i in self._store.query_partition(PENDING_PK, PENDING_PREFIX)
        ]
        return [link for link in links if include_resolved or link.resolved_at is None]

    # -- merge (wxauth-admin user merge) --------------------------------------------------

    def merge(self, into: str, source: str, *, now: int) -> dict[str, Any]:
        """Move every identity and unionid of `source` to `into`, in one transaction, and
        record the merge on both profiles; the caller then revokes `source`'s sessions.

        MergeRefused, with nothing written, if a user is missing or already merged away, or if a
        unionid of `source` belongs to a third user. Sessions are not moved: `source`'s end."""
        if into == source:
            raise MergeRefused("a user cannot be merged into itself")
        target, absorbed = self._profile(into), self._profile(source)
        for user_id, profile in ((into, target), (source, absorbed)):
            if profile is None:
                raise MergeRefused(f"no user {user_id}")
            if "merged_into" in profile:
                raise MergeRefused(f"user {user_id} was already merged into another user")
        assert absorbed is not None
        identities = {
            (i.appid, i.openid): i
            for i in (
                item_to_identity(item)
                for item in self._store.query_partition(user_pk(source), IDENTITY_PREFIX)
            )
        }
        legacy_appid, legacy_openid = absorbed["appid"]["S"], absorbed["openid"]["S"]
        if (legacy_appid, legacy_openid) not in identities:
            stored = self.get(legacy_appid, legacy_openid)
            if stored is None or stored.user_id == source:
                identities[(legacy_appid, legacy_openid)] = stored or Identity(
                    legacy_appid, legacy_openid, source, MINI_PROGRAM, _opt(absorbed, "unionid")
                )
        unionids = {i.unionid for i in identities.values() if i.unionid}
        if "unionid" in absorbed:
            unionids.add(absorbed["unionid"]["S"])
        table = self._store.table_name
        items: list[dict[str, Any]] = []
        for identity in identities.values():
            items += [
                {
                    "Update": {
                        "TableName": table,
                        "Key": {
                            PK: _s(identity_pk(identity.appid, identity.openid)),
                            SK: _s(IDENTITY),
                        },
                        "UpdateExpression": (
                            "SET #uid = :into, #appid = :appid, #openid = :openid,"
                            " #kind = if_not_exists(#kind, :kind), #c = if_not_exists(#c, :now)"
                        ),
                        "ConditionExpression": "attribute_not_exists(#pk) OR #uid = :from",
                        "ExpressionAttributeNames": {
                            "#pk": PK,
                            "#uid": "user_id",
                            "#appid": "appid",
                            "#openid": "openid",
                            "#kind": "kind",
                            "#c": "created_at",
                        },
                        "ExpressionAttributeValues": {
                            ":into": _s(into),
                            ":from": _s(source),
                            ":appid": _s(identity.appid),
                            ":openid": _s(identity.openid),
                            ":kind": _s(identity.kind),
                            ":now": _n(now),
                        },
                    }
                },
                {
                    "Delete": {
                        "TableName": table,
                        "Key": {
                            PK: _s(user_pk(source)),
                            SK: _s(identity_sk(identity.appid, identity.openid)),
                        },
                    }
                },
                self.listing_item(
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
        for unionid in sorted(unionids):
            items += [
                {
                    "Put": {
                        "TableName": table,
                        "Item": {
                            PK: _s(unionid_pk(unionid)),
                            SK: _s(OWNER),
                            "user_id": _s(into),
                            "unionid": _s(unionid),
                            "created_at": _n(now),
                        },
                        "ConditionExpression": (
                            "attribute_not_exists(#pk) OR #uid = :from OR #uid = :into"
                        ),
                        "ExpressionAttributeNames": {"#pk": PK, "#uid": "user_id"},
                        "ExpressionAttributeValues": {":from": _s(source), ":into": _s(into)},
                    }
                },
                {
                    "Delete": {
                        "TableName": table,
                        "Key": {PK: _s(unionid_pk(unionid)), SK: _s(user_pk(source))},
                    }
                },
                {
                    "Put": {
                        "TableName": table,
                        "Item": {
                            PK: _s(unionid_pk(unionid)),
                            SK: _s(user_pk(into)),
                            "unionid": _s(unionid),
                            "user_id": _s(into),
                            "linked_at": _n(now),
                        },
                    }
                },
            ]
        resolved = [link for link in self.pending() if {link.owner, link.user_id} == {into, source}]
        for link in resolved:
            items.append(
                {
                    "Update": {
                        "TableName": table,
                        "Key": {PK: _s(PENDING_PK), SK: _s(pending_sk(link.unionid, link.user_id))},
                        "UpdateExpression": "SET #at = :now, #how = :how, #into = :into",
                        "ExpressionAttributeNames": {
                            "#at": "resolved_at",
                            "#how": "resolution",
                            "#into": "merged_into",
                        },
                        "ExpressionAttributeValues": {
                            ":now": _n(now),
                            ":how": _s(REASON_MERGED),
                            ":into": _s(into),
                        },
                    }
                }
            )
        items += [
            _profile_update(
                table,
                source,
                "SET #into = :into, #at = :now",
                {"#into": "merged_into", "#at": "merged_at"},
                {":into": _s(into), ":now": _n(now)},
            ),
            _profile_update(
                table,
                into,
                "ADD #from :from SET #at = :now",
                {"#from": "merged_from", "#at": "last_merge_at"},
                {":from": {"SS": [source]}, ":now": _n(now)},
            ),
        ]
        if len(items) > MAX_MERGE_ITEMS:
            raise MergeRefused(f"user {source} has too many identities to merge in one transaction")
        try:
            self._store.transact_write(items)
        except ConditionFailed as e:
            raise MergeRefused(
                "the users changed meanwhile, or a unionid of the user belongs to a third user;"
                " nothing was merged"
            ) from e
        return {
            "into": into,
            "from": source,
            "identities": [i.public() for i in identities.values()],
            "unionids": len(unionids),
            "pending_resolved": len(resolved),
        }

    def _profile(self, user_id: str) -> dict[str, Any] | None:
        return self._store.call(
            "get_item", Key={PK: _s(user_pk(user_id)), SK: _s(PROFILE)}, ConsistentRead=True
        ).get("Item")


def _profile_update(
    table: str, user_id: str, update: str, names: dict[str, str], values: dict[str, Any]
) -> dict[str, Any]:
    """A merge's note on a profile, which must exist and not have been merged away."""
    return {
        "Update": {
            "TableName": table,
            "Key": {PK: _s(user_pk(user_id)), SK: _s(PROFILE)},
            "UpdateExpression": update,
            "ConditionExpression": "attribute_exists(#pk) AND attribute_not_exists(#merged)",
            "ExpressionAttributeNames": {"#pk": PK, "#merged": "merged_into", **names},
            "ExpressionAttributeValues": values,
        }
    }


def _opt(item: dict[str, Any], name: str) -> str | None:
    return item[name]["S"] if name in item else None


def _with_unionid(identity: Identity, unionid: str | None) -> Identity:
    if identity.unionid or not unionid:
        return identity
    return Identity(
        identity.appid,
        identity.openid,
        identity.user_id,
        identity.kind,
        unionid,
        identity.created_at,
    )
