"""Every item that holds one user's data, across the aggregates: read for the user's copy of
their data (`GET /me/export`, chalicelib/export.py), deleted by their erasure
(chalicelib/erasure.py). Issue 25, items 1 and 2.

The items a user's keys reach:
- the user's partition `USER#<user_id>`: PROFILE, SESSION#..., the IDENTITY#... listings;
- each identity's `IDENTITY#<appid>#<openid>` item (of this user: guarded by its `user_id`);
- each unionid's partition `UNIONID#<unionid>`: its OWNER (if this user), the `USER#<user_id>`
  link, the pending links (`PENDING#...`) whose owner or user is this user; and the same links
  in the `PENDING` partition of earlier releases (`LINK#<unionid>#...`);
- the phone number's owner `PHONE#<sha256>` (if this user's);
- the claims (`LOGIN#...`) of the codes that started its sessions (each session's
  `login_claim`) and of its phone codes (the profile's `code_claims`): they carry its id;
- the other users' profiles that name it as where their phone number went or came from
  (`phone_moved_to`, `phone_moved_from`): only that reference.

Like chalicelib/store/merges.py this module composes other aggregates' items; the policy (what
is erased in which order, what is shown) is the callers'.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from chalicelib.errors import ConditionFailed
from chalicelib.store.identities import Identity, PendingLink, item_to_identity, item_to_pending
from chalicelib.store.logins import LoginRecord, item_to_login
from chalicelib.store.schema import (
    IDENTITY,
    IDENTITY_PREFIX,
    LOGIN,
    OWNER,
    PENDING_LINK_PREFIX,
    PENDING_PK,
    PHONE,
    PK,
    PROFILE,
    SESSION_PREFIX,
    SK,
    USER_PREFIX,
    Item,
    get_n,
    get_s,
    identity_pk,
    key,
    login_pk,
    pending_sk,
    phone_pk,
    s,
    unionid_pk,
    user_pk,
)
from chalicelib.store.sessions import SessionRecord, item_to_session
from chalicelib.store.table import Table
from chalicelib.store.users import UserRecord, item_to_user


@dataclass(frozen=True)
class Partition:
    """What the user's own partition holds: the profile, sessions and listed identities, and
    how many other items (none today)."""

    profile: UserRecord | None
    sessions: list[SessionRecord] = field(default_factory=list)
    listed: list[Identity] = field(default_factory=list)
    linked_at: dict[tuple[str, str], int] = field(default_factory=dict)  # listing's linked_at
    others: int = 0


@dataclass(frozen=True)
class UnionidItems:
    """A unionid's items that name one user: whether it is the OWNER (since when), its link
    (since when), and the pending links it is the owner or the other user of."""

    unionid: str
    owner_since: int | None = None
    linked_at: int | None = None
    pending: list[PendingLink] = field(default_factory=list)


class UserData:
    """Reads and deletes of one user's items wherever they are (see the module doc)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    # -- reading ------------------------------------------------------------------------------

    def partition(self, user_id: str) -> Partition:
        """The user's partition: one Query (a request per 1 MB page)."""
        profile, sessions, listed, linked_at, others = None, [], [], {}, 0
        for item in self._table.query(user_pk(user_id)):
            sk = item[SK]["S"]
            if sk == PROFILE:
                profile = item_to_user(item)
            elif sk.startswith(SESSION_PREFIX):
                sessions.append(item_to_session(item))
            elif sk.startswith(IDENTITY_PREFIX):
                identity = item_to_identity(item)
                listed.append(identity)
                linked_at[(identity.appid, identity.openid)] = get_n(item, "linked_at") or 0
            else:
                others += 1
        return Partition(profile, sessions, listed, linked_at, others)

    def identity(self, appid: str, openid: str) -> Identity | None:
        item = self._table.get(key(identity_pk(appid, openid), IDENTITY))
        return item_to_identity(item) if item else None

    def unionid(self, unionid: str, user_id: str) -> UnionidItems:
        """The unionid's items naming `user_id`: one Query of its partition, one of the old
        `PENDING` partition's links of this unionid."""
        owner_since = linked_at = None
        pending: list[PendingLink] = []
        for item in self._table.query(unionid_pk(unionid)):
            sk = item[SK]["S"]
            if sk == OWNER and get_s(item, "user_id") == user_id:
                owner_since = get_n(item, "created_at") or 0
            elif sk == f"{USER_PREFIX}{user_id}":
                linked_at = get_n(item, "linked_at") or 0
            elif sk.startswith(PENDING_LINK_PREFIX) and _names(item, user_id):
                pending.append(item_to_pending(item))
        for item in self._table.query(PENDING_PK, pending_sk(unionid, "")):
            if _names(item, user_id):
                pending.append(item_to_pending(item))
        return UnionidItems(unionid, owner_since, linked_at, pending)

    def phone_owner(self, phone_hash: str) -> tuple[str, int] | None:
        """The owner item of a number: (user_id, bound_at), None if there is none."""
        item = self._table.get(key(phone_pk(phone_hash), PHONE))
        if item is None:
            return None
        return item["user_id"]["S"], get_n(item, "bound_at") or 0

    def claim(self, code_hash: str) -> LoginRecord | None:
        item = self._table.get(key(login_pk(code_hash), LOGIN))
        return item_to_login(item) if item else None

    # -- deleting -----------------------------------------------------------------------------

    def delete_claim(self, code_hash: str, user_id: str) -> None:
        """A code's claim, if it is this user's (or names no one: a claim never finished)."""
        self._table.delete(key(login_pk(code_hash), LOGIN), owner=("user_id", user_id))

    def delete_session(self, session: SessionRecord) -> None:
        """A session and the claim of the code that started it (the claim first: a run cut
        between the two finds the session again, and with it the claim's key)."""
        if session.login_claim:
            self.delete_claim(session.login_claim, session.user_id)
        self._table.delete(key(user_pk(session.user_id), f"{SESSION_PREFIX}{session.session_id}"))

    def delete_phone_owner(self, phone_hash: str, user_id: str) -> None:
        """The number's owner item, if it still names this user."""
        self._table.delete(key(phone_pk(phone_hash), PHONE), owner=("user_id", user_id))

    def forget_phone_move(self, other: str, user_id: str) -> None:
        """Remove what `other`'s profile says of a number moved to or from `user_id` (the
        move's attributes that name it), leaving the rest of `other`'s profile alone."""
        for attribute, also in (("phone_moved_to", "phone_moved_at"), ("phone_moved_from", None)):
            names = {"#ref": attribute, **({"#at": also} if also else {})}
            with contextlib.suppress(ConditionFailed):
                self._table.call(
                    "update_item",
                    Key=key(user_pk(other), PROFILE),
                    UpdateExpression="REMOVE " + ", ".join(names),
                    ConditionExpression="#ref = :me",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":me": s(user_id)},
                )

    def delete_unionid_items(self, found: UnionidItems, user_id: str) -> None:
        """The unionid's OWNER (if still this user's), its link and its pending links."""
        unionid = found.unionid
        if found.owner_since is not None:
            self._table.delete(key(unionid_pk(unionid), OWNER), owner=("user_id", user_id))
        self._table.delete(key(unionid_pk(unionid), f"{USER_PREFIX}{user_id}"))
        for link in found.pending:
            if link.legacy:
                self._table.delete(key(PENDING_PK, pending_sk(link.unionid, link.user_id)))
            else:
                self._table.delete(
                    key(unionid_pk(link.unionid), f"{PENDING_LINK_PREFIX}{link.user_id}")
                )

    def delete_identity(self, appid: str, openid: str, user_id: str) -> None:
        """An identity's item, if it points at this user."""
        self._table.delete(key(identity_pk(appid, openid), IDENTITY), owner=("user_id", user_id))

    def clear_partition(self, user_id: str) -> int:
        """Every item left in the user's partition, the PROFILE last (and a session's code
        claim before the session): one Query, a DeleteItem per item. How many it deleted."""
        items = list(self._table.query(user_pk(user_id)))
        items.sort(key=lambda item: item[SK]["S"] == PROFILE)
        for item in items:
            claim = get_s(item, "login_claim")
            if claim is not None:
                self.delete_claim(claim, user_id)
            self._table.delete(key(user_pk(user_id), item[SK]["S"]))
        return len(items)


def _names(item: Item, user_id: str) -> bool:
    return user_id in (get_s(item, "owner"), get_s(item, "user_id")) and PK in item
