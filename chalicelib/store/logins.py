"""Code claims: a WeChat code (login or phone) claimed once, and its sealed result kept.

| pk                     | sk      | attributes                                                  |
|------------------------|---------|-------------------------------------------------------------|
| `LOGIN#<sha256(code)>` | `LOGIN` | lease_until, expires_at (TTL), claimed_at, nonce_hash?,     |
|                        |         | sealed_response?, user_id?, session_id?, bound_at? (a phone |
|                        |         | code: when it was applied), refused? (WeChat refused the    |
|                        |         | code: `rejected`, `blocked`, `rate_limited`; until          |
|                        |         | `lease_until`)                                              |

A claim is a guarded Put (`attribute_not_exists(#pk)`, or an expired item, or a dead holder's
lease without a result); a code WeChat refused keeps its claim with `refused` (`refuse`), so
that the same code is answered without calling WeChat again until its `lease_until`; the result
is written by the login's finishing transaction
(`finish`, which composes the other aggregates' items with their builders) or, for a phone
code, `record_result` (and `mark_bound` in the binding's transaction, chalicelib/store/phones.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from chalicelib.errors import (
    AccountDeleted,
    ConditionFailed,
    DeletionPending,
    MergedAway,
    UserBanned,
)
from chalicelib.store.identities import Identity, listing_item, unionid_link
from chalicelib.store.schema import (
    EXPIRES_AT,
    LOGIN,
    PK,
    Item,
    b,
    get_b,
    get_n,
    get_s,
    key,
    login_pk,
    n,
    s,
)
from chalicelib.store.sessions import SessionRecord, new_session
from chalicelib.store.table import Table
from chalicelib.store.users import Users, item_to_user, may_log_in


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
    refused: str | None = None  # WeChat refused the code, until lease_until (code_claims.py)
    claimed_at: int | None = None  # None: claimed by an earlier release
    nonce_hash: bytes | None = field(default=None, repr=False)  # the claimant's login_nonce's

    @property
    def done(self) -> bool:
        return self.sealed_response is not None


def item_to_login(item: Item) -> LoginRecord:
    return LoginRecord(
        code_hash=item[PK]["S"].removeprefix("LOGIN#"),
        lease_until=int(item["lease_until"]["N"]),
        expires_at=int(item[EXPIRES_AT]["N"]),
        sealed_response=get_b(item, "sealed_response"),
        user_id=get_s(item, "user_id"),
        session_id=get_s(item, "session_id"),
        bound_at=get_n(item, "bound_at"),
        refused=get_s(item, "refused"),
        claimed_at=get_n(item, "claimed_at"),
        nonce_hash=get_b(item, "nonce_hash"),
    )


def login_result(
    table: str, code_hash: str, *, sealed_response: bytes, user_id: str, session_id: str
) -> Item:
    """The finishing transaction's Update of a claim: its sealed result and whose it is."""
    return {
        "Update": {
            "TableName": table,
            "Key": key(login_pk(code_hash), LOGIN),
            "UpdateExpression": "SET #sealed = :sealed, #uid = :uid, #sid = :sid",
            "ConditionExpression": "attribute_exists(#pk)",
            "ExpressionAttributeNames": {
                "#pk": PK,
                "#sealed": "sealed_response",
                "#uid": "user_id",
                "#sid": "session_id",
            },
            "ExpressionAttributeValues": {
                ":sealed": b(sealed_response),
                ":uid": s(user_id),
                ":sid": s(session_id),
            },
        }
    }


def mark_bound(table: str, code_hash: str, *, now: int) -> Item:
    """A phone binding's Update of its code's claim: the result was applied (`bound_at`)."""
    return {
        "Update": {
            "TableName": table,
            "Key": key(login_pk(code_hash), LOGIN),
            "UpdateExpression": "SET #bound = :now",
            "ConditionExpression": "attribute_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": PK, "#bound": "bound_at"},
            "ExpressionAttributeValues": {":now": n(now)},
        }
    }


class Logins:
    """Claims of WeChat codes (logins and phone bindings) and their sealed results."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def claim(
        self,
        code_hash: str,
        *,
        now: int,
        lease_until: int,
        expires_at: int,
        nonce_hash: bytes | None = None,
    ) -> bool:
        """Claim a code for exchange; False if another request holds a live claim or result.

        A claim whose holder died (lease passed, no result) or whose item expired may be taken.
        The claim records when it was made and the hash of the claimant's login nonce, if any
        (a replay of the code must present it: chalicelib/login.py).
        """
        item = {
            **key(login_pk(code_hash), LOGIN),
            "lease_until": n(lease_until),
            EXPIRES_AT: n(expires_at),
            "claimed_at": n(now),
            **({"nonce_hash": b(nonce_hash)} if nonce_hash is not None else {}),
        }
        return self._table.take_lease(item, result="sealed_response", now=now)

    def get(self, code_hash: str) -> LoginRecord | None:
        item = self._table.get(key(login_pk(code_hash), LOGIN))
        return item_to_login(item) if item else None

    def release(self, code_hash: str) -> None:
        """Drop an unfinished claim so that a retry may exchange the code again (a claim with
        a result is kept)."""
        with contextlib.suppress(ConditionFailed):
            self._table.call(
                "delete_item",
                Key=key(login_pk(code_hash), LOGIN),
                ConditionExpression="attribute_not_exists(#sealed)",
                ExpressionAttributeNames={"#sealed": "sealed_response"},
            )

    def refuse(self, code_hash: str, *, reason: str, until: int) -> bool:
        """Keep an unfinished claim as refused by WeChat (`reason`) until `until`: the claim is
        not released, and cannot be taken again before then. False if it is gone or has a
        result."""
        try:
            self._table.call(
                "update_item",
                Key=key(login_pk(code_hash), LOGIN),
                UpdateExpression="SET #refused = :reason, #lease = :until",
                ConditionExpression="attribute_exists(#pk) AND attribute_not_exists(#sealed)",
                ExpressionAttributeNames={
                    "#pk": PK,
                    "#refused": "refused",
                    "#lease": "lease_until",
                    "#sealed": "sealed_response",
                },
                ExpressionAttributeValues={":reason": s(reason), ":until": n(until)},
            )
        except ConditionFailed:
            return False
        return True

    def record_result(self, code_hash: str, *, user_id: str, sealed_response: bytes) -> None:
        """Store a claimed code's sealed result (a phone code's, before it is applied).

        ConditionFailed if the claim is gone. `release` keeps a code with a result.
        """
        self._table.call(
            "update_item",
            Key=key(login_pk(code_hash), LOGIN),
            UpdateExpression="SET #sealed = :sealed, #uid = :uid",
            ConditionExpression="attribute_exists(#pk)",
            ExpressionAttributeNames={"#pk": PK, "#sealed": "sealed_response", "#uid": "user_id"},
            ExpressionAttributeValues={":sealed": b(sealed_response), ":uid": s(user_id)},
        )

    def finish(
        self,
        code_hash: str,
        session: SessionRecord,
        *,
        sealed_response: bytes,
        unionid: str | None,
        identity: Identity,
        now: int,
        pending_deletion: bool = False,
        phone_items: Sequence[Item] = (),
        profile_update: Item | None = None,
    ) -> None:
        """One transaction, all or nothing, in this order: the new session (which keeps the
        claim's key, `login_claim`, so that the user's erasure finds the claim), the claimed code's
        sealed result, the unionid link (with a unionid), the identity listed in its user's
        partition, and last the check that the user is neither banned nor merged away (its
        cancellation reason is the last one). Every item is the user's or the code's own: no
        item that other users' logins touch (an app's `APP` item was checked here until issue
        #21; concurrent transactions on one item cancel each other, and its partition capped an
        app's logins).

        A phone login (issue 24, item 1) adds its number's items (`phone_items`, before the
        check: chalicelib/store/phones.py `binding_items`) and, when the number is new on the
        profile, the PROFILE's Update (`profile_update`, made with `may_log_in`), which takes
        the check's place, last: a transaction touches an item once.

        ConditionFailed if the claim is gone (or, with `profile_update`, the profile's number
        changed since it was read); UserBanned if the PROFILE has `banned_at` (a ban that came
        after the login read the user: the ban's revocation of every session may have missed
        this one); MergedAway if it has `merged_into` (`wxauth-admin user merge`; the check
        hands the PROFILE back, or where a backend does not, one GetItem on this refusal only);
        DeletionPending if the user asked for the account's deletion (issue 25) and
        AccountDeleted if its cooling-off period is over. With `pending_deletion` (the
        restricted session of a user pending deletion) the check lets a pending deletion
        through while it is not due, and needs the PROFILE to exist.
        """
        table = self._table.name
        session = replace(session, login_claim=code_hash)
        items: list[Item] = [
            {"Put": new_session(table, session)},
            login_result(
                table,
                code_hash,
                sealed_response=sealed_response,
                user_id=session.user_id,
                session_id=session.session_id,
            ),
        ]
        if unionid:
            items.append(unionid_link(table, unionid, session.user_id, now=now))
        items += [
            listing_item(table, identity, now=now),
            *phone_items,
            # last: its cancellation reason is the last one
            profile_update
            or may_log_in(
                table, session.user_id, pending_until_after=now if pending_deletion else None
            ),
        ]
        try:
            self._table.transact(items)
        except ConditionFailed as e:
            if e.reasons and e.reasons[-1] == "ConditionalCheckFailed":
                profile = e.items[-1] if e.items else None  # the check's ALL_OLD
                user = item_to_user(profile) if profile else Users(self._table).get(session.user_id)
                if user is None and pending_deletion:
                    raise AccountDeleted("this account was deleted") from e
                if user is not None and user.banned_at is None and user.erase_after is not None:
                    if user.erase_after > now and not user.merged_into:
                        raise DeletionPending(
                            "this account is pending deletion",
                            requested_at=user.deletion_requested_at or 0,
                            erase_after=user.erase_after,
                        ) from e
                    raise AccountDeleted("this account was deleted") from e
                if user is not None and user.merged_into and user.banned_at is None:
                    raise MergedAway(
                        "this account was merged into another one; it cannot log in until"
                        " the merge is completed",
                        user_id=session.user_id,
                        merged_into=user.merged_into,
                    ) from e
                if profile_update is None or (user is not None and user.banned_at is not None):
                    raise UserBanned("this user is banned") from e
            raise
