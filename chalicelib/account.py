"""The signed-in user's own account, as `GET /me` shows it: profile, phone, identities."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.errors import TokenError

if TYPE_CHECKING:
    from chalicelib.identity.graph import IdentityGraph
    from chalicelib.store.users import PhoneRecord, UserRecord, Users


def phone_json(phone: PhoneRecord | None) -> dict[str, object] | None:
    """A bound number as `/me` and `POST /auth/phone` show it."""
    if phone is None:
        return None
    return {
        "phone_number": phone.phone_number,
        "country_code": phone.country_code,
        "pure_phone_number": phone.pure_phone_number,
        "bound_at": phone.bound_at,
    }


def deletion_json(user: UserRecord) -> dict[str, int] | None:
    """A pending deletion as `/me` and the login show it: when asked, when erased."""
    if user.erase_after is None:
        return None
    return {"requested_at": user.deletion_requested_at or 0, "erase_after": user.erase_after}


class Account:
    def __init__(self, users: Users, graph: IdentityGraph) -> None:
        self._users = users
        self._graph = graph

    def me(self, user_id: str) -> dict[str, Any]:
        """What `GET /me` answers: one GetItem (the profile) and one Query (its identities);
        TokenError if the user no longer exists."""
        user = self._users.get(user_id)
        if user is None:
            raise TokenError("the user of this access token no longer exists")
        return {
            "id": user.user_id,
            "appid": user.appid,
            "openid": user.openid,
            "unionid": user.unionid,
            "created_at": user.created_at,
            "phone": phone_json(user.phone),
            "identities": [i.public() for i in self._graph.identities_of(user)],
            "deletion": deletion_json(user),  # issue 25: a deletion asked for, or null
        }


def phone_claims(users: Users) -> Callable[[str], Mapping[str, object]]:
    """AUTH_PHONE_CLAIM: `phone_number` (OIDC) on a user's access tokens, once bound.

    One consistent GetItem of the profile per token minted (login, refresh)."""

    def claims(user_id: str) -> Mapping[str, object]:
        user = users.get(user_id)
        if user is None or user.phone is None:
            return {}
        return {"phone_number": user.phone.phone_number}

    return claims
