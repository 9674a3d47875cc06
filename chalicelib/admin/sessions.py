"""`wxauth-admin sessions ...`: a user's login sessions, as operators see them.

wxauth-admin sessions list USER_ID
wxauth-admin sessions revoke USER_ID SESSION_ID
wxauth-admin sessions revoke-all USER_ID
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from chalicelib.cli import SESSION_ID, USER_ID
from chalicelib.errors import AdminError

if TYPE_CHECKING:
    from chalicelib.runtime import Services
    from chalicelib.store.sessions import SessionRecord

REASON_ADMIN = "admin"


def add_parser(groups: Any) -> None:
    sessions = groups.add_parser("sessions", help="a user's login sessions")
    session_commands = sessions.add_subparsers(dest="command", required=True)
    listing = session_commands.add_parser("list", help="list a user's sessions")
    listing.add_argument("user_id", type=USER_ID, metavar="USER_ID")
    revoke = session_commands.add_parser("revoke", help="end one session now")
    revoke.add_argument("user_id", type=USER_ID, metavar="USER_ID")
    revoke.add_argument("session_id", type=SESSION_ID, metavar="SESSION_ID")
    revoke_all = session_commands.add_parser("revoke-all", help="end every session of a user")
    revoke_all.add_argument("user_id", type=USER_ID, metavar="USER_ID")


def run(args: argparse.Namespace, services: Services, now: int) -> Any:
    sessions = services.sessions
    if args.command == "list":
        return [session_json(s, now) for s in sessions.list_sessions(args.user_id)]
    if args.command == "revoke":
        session = sessions.find(args.user_id, args.session_id)
        if session is None:
            raise AdminError(f"user {args.user_id} has no session {args.session_id}")
        revoked = sessions.revoke(args.user_id, args.session_id, now=now, reason=REASON_ADMIN)
        return {"session_id": args.session_id, "revoked": revoked, "already_revoked": not revoked}
    count = sessions.revoke_all(args.user_id, now=now, reason=REASON_ADMIN)
    return {"user_id": args.user_id, "revoked": count}


def session_json(session: SessionRecord, now: int) -> dict[str, Any]:
    """A session as `sessions list` prints it: everything but hashes, keys and tokens."""
    return {
        "session_id": session.session_id,
        "client_id": session.client_id,
        "live": session.is_live(now),
        "created_at": session.created_at,
        "rotated_at": session.rotated_at,
        "expires_at": session.expires_at,
        "idle_expires_at": session.idle_expires_at,
        "absolute_expires_at": session.absolute_expires_at,
        "revoked_at": session.revoked_at,
        "revoked_reason": session.revoked_reason,
        "last_refreshed_at": session.last_refreshed_at,
        "device_name": session.device_name,
        "device_platform": session.device_platform,
        "user_agent": session.user_agent,
        "source_ip": session.source_ip,  # unmasked, for operators
    }
