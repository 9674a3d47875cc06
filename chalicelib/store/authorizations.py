"""Web sign-ins (issue 24, item 2): a browser's trip to WeChat and back, and the authorization
code it ends in, one item.

| pk           | sk      | attributes                                                        |
|--------------|---------|-------------------------------------------------------------------|
| `AUTHZ#<id>` | `AUTHZ` | authz_id, client_id, redirect_uri, redirect_uri_given (BOOL),     |
|              |         | state? (the relying party's), code_challenge, appid (the website  |
|              |         | app), state_hash (B), browser_hash (B), created_at, expires_at    |
|              |         | (TTL); consumed_at? (the callback took it); code_hash (B)?,       |
|              |         | code_expires_at?, user_id?, is_new?, openid?, kind?, unionid?,    |
|              |         | custom_claims?, profile_claims?, user_agent?, source_ip?;         |
|              |         | redeemed_at?, session_id?                                         |

Its life: `start` (the authorization endpoint, a guarded Put), `take` (the callback: one guarded
UpdateItem that only the browser holding the state and its cookie passes, once, before the
item's expiry), `issue_code` (the callback, once WeChat named the user), `get` and `redeem`
(the token endpoint: one transaction that starts the session and marks the code used, with
the identity's listing, the unionid link and the user's ban/merge check, as a login's
transaction). The policy (hashes, lifetimes, PKCE, what a replay revokes) is
chalicelib/weblogin/'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.errors import ConditionFailed, DeletionPending, MergedAway, UserBanned
from chalicelib.store.identities import Identity, listing_item, unionid_link
from chalicelib.store.schema import (
    AUTHZ,
    EXPIRES_AT,
    PK,
    Item,
    authz_pk,
    b,
    boolean,
    get_b,
    get_bool,
    get_n,
    get_s,
    key,
    n,
    s,
)
from chalicelib.store.sessions import SessionRecord, new_session
from chalicelib.store.table import Table
from chalicelib.store.users import (
    CUSTOM_CLAIMS,
    PROFILE_CLAIMS,
    Users,
    item_to_user,
    may_log_in,
)


@dataclass(frozen=True)
class Authorization:
    """A web sign-in as stored: the request it started with, then the user WeChat named (once
    the callback issued a code), then the session the code started (once redeemed)."""

    authz_id: str
    client_id: str
    redirect_uri: str
    redirect_uri_given: bool  # the authorization request named it (RFC 6749 §4.1.3)
    code_challenge: str
    appid: str
    created_at: int
    expires_at: int
    state: str | None = None  # the relying party's, handed back with the code
    consumed_at: int | None = None
    code_hash: bytes | None = field(default=None, repr=False)
    code_expires_at: int | None = None
    user_id: str | None = None
    is_new: bool = False
    openid: str | None = None
    kind: str | None = None
    unionid: str | None = None
    custom_claims: str | None = None
    profile_claims: str | None = None  # the identity's copy (chalicelib/profile.py)
    user_agent: str | None = None
    source_ip: str | None = None
    redeemed_at: int | None = None
    session_id: str | None = None

    @property
    def identity(self) -> Identity:
        """The identity WeChat named at the callback (for the redemption's listing)."""
        assert self.user_id is not None and self.openid is not None
        return Identity(self.appid, self.openid, self.user_id, self.kind or "", self.unionid)


@dataclass(frozen=True)
class IssuedCode:
    """What the callback stores with the code: its hash and expiry, and who signed in."""

    code_hash: bytes = field(repr=False)
    code_expires_at: int
    keep_until: int  # the item's TTL: a replay within it still finds the code's session
    user_id: str
    is_new: bool
    identity: Identity
    custom_claims: str | None = None
    profile_claims: str | None = None
    user_agent: str | None = None
    source_ip: str | None = None


_STRINGS = (
    "state",
    "user_id",
    "openid",
    "kind",
    "unionid",
    "user_agent",
    "source_ip",
    "session_id",
)
_NUMBERS = ("consumed_at", "code_expires_at", "redeemed_at")


def item_to_authorization(item: Item) -> Authorization:
    strings = {name: get_s(item, name) for name in _STRINGS}
    numbers = {name: get_n(item, name) for name in _NUMBERS}
    return Authorization(
        authz_id=item["authz_id"]["S"],
        client_id=item["client_id"]["S"],
        redirect_uri=item["redirect_uri"]["S"],
        redirect_uri_given=get_bool(item, "redirect_uri_given", True),
        code_challenge=item["code_challenge"]["S"],
        appid=item["appid"]["S"],
        created_at=int(item["created_at"]["N"]),
        expires_at=int(item[EXPIRES_AT]["N"]),
        code_hash=get_b(item, "code_hash"),
        is_new=get_bool(item, "is_new", False),
        custom_claims=get_s(item, CUSTOM_CLAIMS),
        profile_claims=get_s(item, PROFILE_CLAIMS),
        **strings,
        **numbers,
    )


class Authorizations:
    """The AUTHZ items."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def start(self, authz: Authorization, *, state_hash: bytes, browser_hash: bytes) -> bool:
        """Store a new web sign-in (guarded: False if its id is taken, nothing written)."""
        item: Item = {
            **key(authz_pk(authz.authz_id), AUTHZ),
            "authz_id": s(authz.authz_id),
            "client_id": s(authz.client_id),
            "redirect_uri": s(authz.redirect_uri),
            "redirect_uri_given": boolean(authz.redirect_uri_given),
            "code_challenge": s(authz.code_challenge),
            "appid": s(authz.appid),
            "state_hash": b(state_hash),
            "browser_hash": b(browser_hash),
            "created_at": n(authz.created_at),
            EXPIRES_AT: n(authz.expires_at),
        }
        if authz.state is not None:
            item["state"] = s(authz.state)
        return self._table.put_new(item)

    def get(self, authz_id: str) -> Authorization | None:
        item = self._table.get(key(authz_pk(authz_id), AUTHZ))
        return item_to_authorization(item) if item else None

    def take(
        self, authz_id: str, *, state_hash: bytes, browser_hash: bytes, now: int
    ) -> tuple[Authorization | None, Authorization | None]:
        """The callback's claim of a sign-in: one UpdateItem that passes only for the sign-in's
        state and browser hashes, before its expiry, once. (the sign-in, None) if this call
        took it; (None, the item as it is) if not, (None, None) if there is no item."""
        try:
            response = self._table.call(
                "update_item",
                Key=key(authz_pk(authz_id), AUTHZ),
                UpdateExpression="SET #consumed = :now",
                ConditionExpression=(
                    "attribute_exists(#pk) AND #exp > :now AND attribute_not_exists(#consumed)"
                    " AND #state = :state AND #browser = :browser"
                ),
                ExpressionAttributeNames={
                    "#pk": PK,
                    "#exp": EXPIRES_AT,
                    "#consumed": "consumed_at",
                    "#state": "state_hash",
                    "#browser": "browser_hash",
                },
                ExpressionAttributeValues={
                    ":now": n(now),
                    ":state": b(state_hash),
                    ":browser": b(browser_hash),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as e:
            old = item_to_authorization(e.item) if e.item else self.get(authz_id)
            return None, old
        return item_to_authorization(response["Attributes"]), None

    def issue_code(self, authz_id: str, code: IssuedCode) -> bool:
        """Store the authorization code of a sign-in this callback took (guarded: once, and
        only after `take`); False if it was not written."""
        identity = code.identity
        attributes: dict[str, Item] = {
            "code_hash": b(code.code_hash),
            "code_expires_at": n(code.code_expires_at),
            EXPIRES_AT: n(code.keep_until),
            "user_id": s(code.user_id),
            "is_new": boolean(code.is_new),
            "openid": s(identity.openid),
            "kind": s(identity.kind),
        }
        optional = (
            ("unionid", identity.unionid),
            (CUSTOM_CLAIMS, code.custom_claims),
            (PROFILE_CLAIMS, code.profile_claims),
            ("user_agent", code.user_agent),
            ("source_ip", code.source_ip),
        )
        attributes.update({name: s(value) for name, value in optional if value})
        names = {f"#a{i}": name for i, name in enumerate(attributes)}
        values = {f":a{i}": value for i, value in enumerate(attributes.values())}
        try:
            self._table.call(
                "update_item",
                Key=key(authz_pk(authz_id), AUTHZ),
                UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(names))),
                ConditionExpression=(
                    "attribute_exists(#pk) AND attribute_exists(#consumed)"
                    " AND attribute_not_exists(#hash)"
                ),
                ExpressionAttributeNames={
                    **names,
                    "#pk": PK,
                    "#consumed": "consumed_at",
                    "#hash": "code_hash",
                },
                ExpressionAttributeValues=values,
            )
        except ConditionFailed:
            return False
        return True

    def redeem(
        self, authz: Authorization, *, code_hash: bytes, session: SessionRecord, now: int
    ) -> Authorization | None:
        """One transaction, all or nothing, in this order: the new session, the code marked
        used (guarded: this code, not used before), the unionid link (with a unionid), the
        identity listed in its user's partition, and last the check that the user is neither
        banned nor merged away. None if this call redeemed the code; the item as it was if
        another redemption came first (a replay). UserBanned or MergedAway from the last check
        (the login's rule, chalicelib/store/logins.py)."""
        table = self._table.name
        identity = authz.identity
        items: list[Item] = [
            {"Put": new_session(table, session)},
            {
                "Update": {
                    "TableName": table,
                    "Key": key(authz_pk(authz.authz_id), AUTHZ),
                    "UpdateExpression": "SET #redeemed = :now, #sid = :sid",
                    "ConditionExpression": "#hash = :hash AND attribute_not_exists(#redeemed)",
                    "ExpressionAttributeNames": {
                        "#hash": "code_hash",
                        "#redeemed": "redeemed_at",
                        "#sid": "session_id",
                    },
                    "ExpressionAttributeValues": {
                        ":hash": b(code_hash),
                        ":now": n(now),
                        ":sid": s(session.session_id),
                    },
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ]
        if identity.unionid:
            items.append(unionid_link(table, identity.unionid, identity.user_id, now=now))
        items += [listing_item(table, identity, now=now), may_log_in(table, identity.user_id)]
        try:
            self._table.transact(items)
        except ConditionFailed as e:
            reasons, olds = e.reasons or [], e.items or []
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                old = olds[1] if len(olds) > 1 else None
                return item_to_authorization(old) if old else self.get(authz.authz_id)
            if reasons and reasons[-1] == "ConditionalCheckFailed":
                raise self._refusal(identity.user_id, olds[-1] if olds else None) from e
            raise
        return None

    def _refusal(
        self, user_id: str, profile: Item | None
    ) -> MergedAway | DeletionPending | UserBanned:
        """Why the user may not start a session: merged away, pending deletion (issue 25: a
        website gets no session of an account on its way out), else banned."""
        user = item_to_user(profile) if profile else Users(self._table).get(user_id)
        if user is not None and user.merged_into and user.banned_at is None:
            return MergedAway(
                "this account was merged into another one; sign in again",
                user_id=user_id,
                merged_into=user.merged_into,
            )
        if user is not None and user.erase_after is not None and user.banned_at is None:
            return DeletionPending(
                "this account is pending deletion",
                requested_at=user.deletion_requested_at or 0,
                erase_after=user.erase_after,
            )
        return UserBanned("this user is banned")
