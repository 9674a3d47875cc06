"""A copy of one's data (issue 25, item 2; PIPL art. 45): `GET /me/export`.

Everything the table holds about the user, found as its erasure finds it
(chalicelib/store/user_data.py): the profile, the identities per app, the unionids, the
pending links, the phone number, the sessions and their devices, the custom claims, the
records of its login and phone codes, the accounts merged into it, and a pending deletion.
Never a secret: no token, no hash of a token, code or number, no MAC or session key, no
sealed value, no operator's note (a ban's or a merge's reason). docs/miniprogram.md,
"Account deletion and your data", documents each field.

Cost: the partition's Query, a GetItem per identity, a Query (two) per unionid, the phone
owner's GetItem, a GetItem per code record and per merged account, the queued deletion's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalicelib.errors import TokenError

if TYPE_CHECKING:
    from chalicelib.store.deletions import Deletions
    from chalicelib.store.logins import LoginRecord
    from chalicelib.store.sessions import SessionRecord
    from chalicelib.store.user_data import Partition, UserData
    from chalicelib.store.users import UserRecord

FORMAT_VERSION = 1


class Exporter:
    def __init__(self, data: UserData, deletions: Deletions) -> None:
        self._data = data
        self._deletions = deletions

    def export(self, user_id: str, now: int) -> dict[str, Any]:
        """The user's data as `GET /me/export` answers it; TokenError if there is no user."""
        partition = self._data.partition(user_id)
        user = partition.profile
        if user is None:
            raise TokenError("the user of this access token no longer exists")
        identities = self._identities(partition)
        unionids = sorted({i["unionid"] for i in identities if i["unionid"]} | _own(user))
        found = [self._data.unionid(u, user_id) for u in unionids]
        return {
            "version": FORMAT_VERSION,
            "exported_at": now,
            "user": {
                "id": user.user_id,
                "created_at": user.created_at,
                "appid": user.appid,
                "openid": user.openid,
                "unionid": user.unionid,
                "nickname": user.nickname,  # PATCH /me (issue 25, item 4)
                "avatar_url": user.avatar_url,
                "profile_updated_at": user.profile_updated_at,
            },
            "identities": identities,
            "unionids": [
                {"unionid": f.unionid, "owner_since": f.owner_since, "linked_at": f.linked_at}
                for f in found
                if f.owner_since is not None or f.linked_at is not None
            ],
            "pending_links": [link.public() for f in found for link in f.pending],
            "phone": self._phone(user),
            "claims": json.loads(user.custom_claims) if user.custom_claims else None,
            "claims_set_at": user.claims_set_at,
            "sessions": [_session(s) for s in sorted(partition.sessions, key=_by_time)],
            "code_records": self._code_records(user, partition.sessions),
            "merged_accounts": self._merged(user),
            "deletion": self._deletion(user),
        }

    def _identities(self, partition: Partition) -> list[dict[str, Any]]:
        """Each listed identity with its own item's times (and the profile's first identity of
        a user from before identities were listed)."""
        user = partition.profile
        assert user is not None
        listed = {(i.appid, i.openid): i for i in partition.listed}
        if user.openid and (user.appid, user.openid) not in listed:
            stored = self._data.identity(user.appid, user.openid)
            if stored is None or stored.user_id == user.user_id:
                listed[(user.appid, user.openid)] = stored or _legacy(user)
        out = []
        for (appid, openid), listing in sorted(listed.items()):
            item = self._data.identity(appid, openid)
            if item is not None and item.user_id != user.user_id:
                continue  # moved to another user since: not this user's
            out.append(
                {
                    "appid": appid,
                    "kind": listing.kind,
                    "openid": openid,
                    "unionid": (item or listing).unionid,
                    "created_at": item.created_at if item is not None else None,
                    "linked_at": partition.linked_at.get((appid, openid)),
                }
            )
        return out

    def _phone(self, user: UserRecord) -> dict[str, Any] | None:
        moved_to = None
        if user.phone_moved_to is not None:
            moved_to = {"user_id": user.phone_moved_to, "at": user.phone_moved_at}
        if user.phone is None:
            return {"moved_to": moved_to} if moved_to else None
        owner = self._data.phone_owner(user.phone.phone_hash)
        return {
            "phone_number": user.phone.phone_number,
            "country_code": user.phone.country_code,
            "pure_phone_number": user.phone.pure_phone_number,
            "bound_at": user.phone.bound_at,
            "owner_since": owner[1] if owner and owner[0] == user.user_id else None,
            "moved_from": user.phone_moved_from,
            "moved_to": moved_to,
        }

    def _code_records(self, user: UserRecord, sessions: list[SessionRecord]) -> list[dict]:
        """The claims of the codes it used that are still stored (replay records, kept a few
        minutes): when, for which session; never the code, its hash or the sealed tokens."""
        records = []
        for session in sessions:
            if session.login_claim:
                claim = self._data.claim(session.login_claim)
                if claim is not None and claim.user_id in (None, user.user_id):
                    records.append(_code("login", claim, session.session_id))
        for code_hash in user.code_claims:
            claim = self._data.claim(code_hash)
            if claim is not None and claim.user_id in (None, user.user_id):
                records.append(_code("phone", claim, None))
        return sorted(records, key=lambda r: (r["claimed_at"] or 0, r["kind"]))

    def _merged(self, user: UserRecord) -> list[dict[str, Any]]:
        out = []
        for merged in user.merged_from:
            profile = self._data.partition(merged).profile
            if profile is not None and profile.merged_into == user.user_id:
                out.append(
                    {
                        "id": profile.user_id,
                        "created_at": profile.created_at,
                        "appid": profile.appid,
                        "openid": profile.openid,
                        "merged_at": profile.merged_at,
                    }
                )
        return out

    def _deletion(self, user: UserRecord) -> dict[str, Any] | None:
        if user.erase_after is None:
            return None
        record = self._deletions.get(user.user_id, user.erase_after)
        return {
            "requested_at": user.deletion_requested_at,
            "erase_after": user.erase_after,
            "requested_by": record.requested_by if record is not None else None,
        }


def _own(user: UserRecord) -> set[str]:
    return {user.unionid} if user.unionid else set()


def _legacy(user: UserRecord) -> Any:
    from chalicelib.store.identities import Identity

    return Identity(user.appid, user.openid, user.user_id, unionid=user.unionid)


def _by_time(session: SessionRecord) -> tuple[int, str]:
    return session.created_at, session.session_id


def _session(session: SessionRecord) -> dict[str, Any]:
    """A session as stored, but for its secrets (token hashes, sealed token, key hash, MAC
    key, the code claim's key): the full source address, unlike GET /auth/sessions."""
    device = None
    if session.device_name is not None or session.device_platform is not None:
        device = {"name": session.device_name, "platform": session.device_platform}
    return {
        "id": session.session_id,
        "client_id": session.client_id,
        "audience": session.audience,
        "created_at": session.created_at,
        "last_refreshed_at": session.last_refreshed_at or session.rotated_at,
        "idle_expires_at": session.idle_expires_at,
        "absolute_expires_at": session.absolute_expires_at,
        "revoked_at": session.revoked_at,
        "revoked_reason": session.revoked_reason,
        "device": device,
        "user_agent": session.user_agent,
        "source_ip": session.source_ip,
        "restricted": session.restricted,
        "claims": json.loads(session.custom_claims) if session.custom_claims else None,
    }


def _code(kind: str, claim: LoginRecord, session_id: str | None) -> dict[str, Any]:
    return {
        "kind": kind,
        "session_id": session_id,
        "claimed_at": claim.claimed_at,
        "expires_at": claim.expires_at,
        "bound_at": claim.bound_at,
    }
