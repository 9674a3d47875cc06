"""The signed-in user's own account, as `GET /me` shows it: profile, phone, identities; and
`PATCH /me`, its nickname and avatar (chalicelib/profile.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.errors import TokenError

if TYPE_CHECKING:
    from chalicelib.identity.graph import IdentityGraph
    from chalicelib.profile import Profiles
    from chalicelib.store.identities import Identity
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


class Account:
    def __init__(
        self, users: Users, graph: IdentityGraph, profiles: Profiles | None = None
    ) -> None:
        self._users = users
        self._graph = graph
        self._profiles = profiles

    def me(self, user_id: str) -> dict[str, Any]:
        """What `GET /me` answers: one GetItem (the profile) and one Query (its identities);
        TokenError if the user no longer exists."""
        return self._document(self._user(user_id))

    def _user(self, user_id: str) -> UserRecord:
        user = self._users.get(user_id)
        if user is None:
            raise TokenError("the user of this access token no longer exists")
        return user

    def _document(self, user: UserRecord, identities: list[Identity] | None = None) -> dict:
        return {
            "id": user.user_id,
            "appid": user.appid,
            "openid": user.openid,
            "unionid": user.unionid,
            "created_at": user.created_at,
            "nickname": user.nickname,  # issue 25, item 4: PATCH /me
            "avatar_url": user.avatar_url,
            "phone": phone_json(user.phone),
            "identities": [
                i.public()
                for i in (identities if identities is not None else self._graph.identities_of(user))
            ],
        }

    def update_profile(
        self, user_id: str, body: dict[str, Any], *, client_id: str | None, now: int
    ) -> dict[str, Any]:
        """`PATCH /me` (chalicelib/profile.py), answered as `GET /me` then: the profile's
        UpdateItem and the identities' Query (with AUTH_PROFILE_SECURITY_CHECK a GetItem
        first, and WeChat), and with AUTH_PROFILE_CLAIM the copies onto live sessions."""
        assert self._profiles is not None
        seen: list[list[Identity]] = []

        def identities(user: UserRecord | None) -> list[Identity]:  # one Query, kept
            if not seen:
                seen.append(self._graph.identities_of(user or self._user(user_id)))
            return seen[0]

        user = self._profiles.update(
            user_id, body, client_id=client_id, identities=identities, now=now
        )
        return self._document(user, identities(user))


def phone_claims(users: Users) -> Callable[[str], Mapping[str, object]]:
    """AUTH_PHONE_CLAIM: `phone_number` (OIDC) on a user's access tokens, once bound.

    One consistent GetItem of the profile per token minted (login, refresh)."""

    def claims(user_id: str) -> Mapping[str, object]:
        user = users.get(user_id)
        if user is None or user.phone is None:
            return {}
        return {"phone_number": user.phone.phone_number}

    return claims
