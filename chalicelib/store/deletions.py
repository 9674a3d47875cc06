"""Deletions (issue 25, item 1): a user's deletion asked for, due after a cooling-off period,
its erasure's progress, and the tombstones it leaves.

| pk                    | sk                       | attributes                                 |
|-----------------------|--------------------------|--------------------------------------------|
| `USER#<user_id>`      | `PROFILE`                | deletion_requested_at, erase_after (users) |
| `DELETION`            | `<erase_after>#<user_id>`| user_id, requested_at, erase_after,        |
|                       |                          | requested_by (`user`, `operator`), step?,  |
|                       |                          | attempts?, last_attempt_at?,               |
|                       |                          | erased_user_ids (L)?                        |
| `TOMBSTONE#<hmac>`    | `<requested_at>`         | deleted_at                                 |

The `DELETION` partition orders deletions by the time they are due (10-digit epoch seconds
first): the scheduled erasure reads the due ones with one Query, never a Scan. Deletions are
rare (a user asks once), so one partition holds them all. The item is deleted when the user's
erasure is complete and announced; until then it records the erasure's progress (`step`).

A tombstone is keyed by an HMAC of an erased identity's appid and openid under a server key
(chalicelib/deletion.py): nothing in it names the user, and without the key the table cannot
tell whether an openid was ever deleted. Its sort key is the deletion's `requested_at`, so that
an erasure run again writes the same item; a login's new identity counts them (one Query).
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import ConditionFailed
from chalicelib.store.schema import (
    DELETION_PK,
    PK,
    PROFILE,
    Item,
    deletion_sk,
    due_sk,
    get_n,
    get_s,
    get_strings,
    key,
    n,
    s,
    strings,
    tombstone_pk,
    tombstone_sk,
    user_pk,
)
from chalicelib.store.table import Table
from chalicelib.store.users import UserRecord, item_to_user

REQUESTED_BY_USER = "user"
REQUESTED_BY_OPERATOR = "operator"


@dataclass(frozen=True)
class DeletionRecord:
    """A deletion asked for: due at `erase_after`; `step`: the erasure's last finished step."""

    user_id: str
    requested_at: int
    erase_after: int
    requested_by: str = REQUESTED_BY_USER
    step: str | None = None
    attempts: int = 0
    last_attempt_at: int | None = None
    erased_user_ids: tuple[str, ...] = ()  # the user and the users merged into it


def item_to_deletion(item: Item) -> DeletionRecord:
    return DeletionRecord(
        user_id=item["user_id"]["S"],
        requested_at=int(item["requested_at"]["N"]),
        erase_after=int(item["erase_after"]["N"]),
        requested_by=get_s(item, "requested_by") or REQUESTED_BY_USER,
        step=get_s(item, "step"),
        attempts=get_n(item, "attempts") or 0,
        last_attempt_at=get_n(item, "last_attempt_at"),
        erased_user_ids=get_strings(item, "erased_user_ids"),
    )


def _queue_key(user_id: str, erase_after: int) -> Item:
    return key(DELETION_PK, deletion_sk(erase_after, user_id))


class Deletions:
    """The deletion marks on profiles, the `DELETION` queue, and tombstones."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def start(
        self, user_id: str, *, now: int, erase_after: int, requested_by: str
    ) -> tuple[bool, UserRecord | None]:
        """One transaction: the profile marked (`deletion_requested_at`, `erase_after`) and the
        deletion queued. Guarded: the profile exists, is not merged away and has no deletion
        asked for already. (True, None) if written; else (False, the profile as it was, None if
        there is none), nothing written."""
        table = self._table.name
        items: list[Item] = [
            {
                "Update": {
                    "TableName": table,
                    "Key": key(user_pk(user_id), PROFILE),
                    "UpdateExpression": "SET #asked = :now, #erase = :erase",
                    "ConditionExpression": (
                        "attribute_exists(#pk) AND attribute_not_exists(#erase)"
                        " AND attribute_not_exists(#merged)"
                    ),
                    "ExpressionAttributeNames": {
                        "#pk": PK,
                        "#asked": "deletion_requested_at",
                        "#erase": "erase_after",
                        "#merged": "merged_into",
                    },
                    "ExpressionAttributeValues": {":now": n(now), ":erase": n(erase_after)},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Put": {
                    "TableName": table,
                    "Item": {
                        **_queue_key(user_id, erase_after),
                        "user_id": s(user_id),
                        "requested_at": n(now),
                        "erase_after": n(erase_after),
                        "requested_by": s(requested_by),
                    },
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": PK},
                }
            },
        ]
        try:
            self._table.transact(items)
        except ConditionFailed as e:
            profile = e.items[0] if e.items else None
            if profile is None:  # a backend that hands back nothing: read it
                profile = self._table.get(key(user_pk(user_id), PROFILE))
            return False, item_to_user(profile) if profile else None
        return True, None

    def cancel(self, user_id: str, *, erase_after: int, now: int) -> bool:
        """One transaction: the profile's marks removed and the queued deletion deleted, only
        while that deletion is still asked for and not yet due (`erase_after` > now). False
        if not (nothing written)."""
        table = self._table.name
        items: list[Item] = [
            {
                "Update": {
                    "TableName": table,
                    "Key": key(user_pk(user_id), PROFILE),
                    "UpdateExpression": "REMOVE #asked, #erase",
                    "ConditionExpression": "#erase = :erase AND #erase > :now",
                    "ExpressionAttributeNames": {
                        "#asked": "deletion_requested_at",
                        "#erase": "erase_after",
                    },
                    "ExpressionAttributeValues": {":erase": n(erase_after), ":now": n(now)},
                }
            },
            {"Delete": {"TableName": table, "Key": _queue_key(user_id, erase_after)}},
        ]
        try:
            self._table.transact(items)
        except ConditionFailed:
            return False
        return True

    def get(self, user_id: str, erase_after: int) -> DeletionRecord | None:
        """The queued deletion of `user_id` due at `erase_after` (one consistent GetItem)."""
        item = self._table.get(_queue_key(user_id, erase_after))
        return item_to_deletion(item) if item else None

    def due(self, now: int) -> list[DeletionRecord]:
        """Every queued deletion due at `now` or before, the earliest first: one Query (a
        request per 1 MB page)."""
        items = self._table.query_between(DELETION_PK, due_sk(0), f"{due_sk(now)}~")
        return [item_to_deletion(item) for item in items]

    def progress(
        self,
        record: DeletionRecord,
        *,
        step: str,
        now: int,
        erased_user_ids: tuple[str, ...] | None = None,
    ) -> bool:
        """Record that the erasure finished `step` (and counts an attempt when it begins);
        False if the deletion is no longer queued (another run completed it)."""
        names = {"#pk": PK, "#step": "step", "#last": "last_attempt_at", "#tries": "attempts"}
        values: dict[str, object] = {":step": s(step), ":now": n(now), ":one": n(1)}
        update = "SET #step = :step, #last = :now ADD #tries :one"
        if erased_user_ids is not None:
            update = "SET #step = :step, #last = :now, #erased = :erased ADD #tries :one"
            names["#erased"] = "erased_user_ids"
            values[":erased"] = strings(list(erased_user_ids))
        try:
            self._table.call(
                "update_item",
                Key=_queue_key(record.user_id, record.erase_after),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ConditionFailed:
            return False
        return True

    def done(self, record: DeletionRecord) -> None:
        """The erasure is complete and announced: the queued deletion goes (one DeleteItem)."""
        self._table.delete(_queue_key(record.user_id, record.erase_after))

    # -- tombstones -------------------------------------------------------------------------

    def bury(self, keyed_hash: str, *, requested_at: int, now: int) -> None:
        """The tombstone of one erased identity (its keyed hash), once per deletion: written
        again by an erasure run again, it keeps its first `deleted_at`."""
        self._table.put_new(
            {
                **key(tombstone_pk(keyed_hash), tombstone_sk(requested_at)),
                "deleted_at": n(now),
            }
        )

    def tombstones(self, keyed_hash: str) -> int:
        """How many times an identity with this keyed hash was erased: one Query."""
        return sum(1 for _ in self._table.query(tombstone_pk(keyed_hash)))
