"""What other backends may look up about a user: its openid in each app, for WeChat server
calls made while the user is offline (subscribe messages, `touser` is the app's openid).

Served at `GET /users/{user_id}/identities` to a client-credentials token holding the scope
`users:openid` (chalicelib/api/internal.py). Never the unionid: no WeChat server call a backend
makes for a user of one app takes it (each takes that app's openid), and it is the one id that
ties the user across every app of the WeChat Open Platform account, this deployment's or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.errors import UnknownUser

if TYPE_CHECKING:
    from chalicelib.identity.graph import IdentityGraph
    from chalicelib.store.users import Users

USERS_OPENID_SCOPE = "users:openid"
_USER_ID_LENGTH = 22  # chalicelib.login.user_id_for: 22 base64url characters
_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class Directory:
    def __init__(self, users: Users, graph: IdentityGraph) -> None:
        self._users = users
        self._graph = graph

    def identities(self, user_id: str) -> dict[str, Any]:
        """`{"user_id", "identities": [{"appid", "kind", "openid"}]}`: the profile's GetItem and
        one Query of its identities. UnknownUser (404) for an id that is no user's (one that
        cannot be is refused without a read). A user merged into another (`wxauth-admin user
        merge`) has no identity left and names that user in `merged_into`."""
        if len(user_id) != _USER_ID_LENGTH or not set(user_id) <= _BASE64URL:
            raise UnknownUser("no such user")
        user = self._users.get(user_id)
        if user is None:
            raise UnknownUser("no such user")
        if user.merged_into:
            return {"user_id": user_id, "identities": [], "merged_into": user.merged_into}
        listed = self._graph.identities_of(user)
        return {"user_id": user_id, "identities": [i.public() for i in listed]}
