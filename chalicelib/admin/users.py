"""`wxauth-admin user ...`: bans, custom claims, and the identity graph's pending links and merges.

    wxauth-admin user ban USER_ID [--reason TEXT]
    wxauth-admin user unban USER_ID
    wxauth-admin user set-claims USER_ID '{"roles": ["editor"]}'
    wxauth-admin user show-claims USER_ID
    wxauth-admin user clear-claims USER_ID
    wxauth-admin user pending [USER_ID]   links not made: a unionid that would join two users
                                          (of one user: a few Queries; of all: a Scan)
    wxauth-admin user merge --into USER_ID --from USER_ID [--force --reason TEXT]
                            [--operator NAME]
    wxauth-admin user delete USER_ID [--now] [--operator NAME]
                                          the user's deletion, as if it asked (banned users
                                          too): erased after AUTH_DELETION_COOLDOWN, or now
    wxauth-admin user erase-due           erase every user whose deletion is due (what the
                                          scheduled DeletionHandler does every hour)

A merge needs a pending link between the two users or a unionid they share, unless `--force`
with a `--reason`; it never merges a banned user. Who ran it (`--operator`, else the login
name; in AWS also the caller's ARN from STS) and why go on the absorbed profile
(`merged_by`, `merge_reason`) and into a `user_merged` log line; the `UserMerged` auth event
names the two users (docs/operators.md, "Several apps, one user").
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from chalicelib.admin.caller import caller_arn, operator_argument, operator_name
from chalicelib.bans import MAX_BAN_REASON, Bans, validate_reason
from chalicelib.cli import USER_ID, unmasked
from chalicelib.errors import AdminError, MergeRefused, RequestError, UnknownUser
from chalicelib.logs import log_event
from chalicelib.tokens import claims

if TYPE_CHECKING:
    from chalicelib.runtime import Services

REASON_MERGED = "merged"


def _claims(value: str) -> dict[str, object]:
    try:
        return claims.parse(value)
    except RequestError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _ban_reason(value: str) -> str:
    try:
        reason = validate_reason(value)
    except RequestError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    assert reason is not None
    return reason


def add_parser(groups: Any) -> None:
    """`user`: bans (chalicelib/bans.py), custom claims (chalicelib/tokens/claims.py), pending
    links and merges (chalicelib/identity/graph.py)."""
    user = groups.add_parser("user", help="ban or unban a user; a user's custom claims; merges")
    user_commands = user.add_subparsers(dest="command", required=True)
    ban_help = (
        "refuse the user's logins and refreshes (403 access_denied) and revoke every live"
        " session now: verify and protected routes refuse its access tokens at once"
    )
    ban = user_commands.add_parser("ban", help=ban_help, description=ban_help)
    ban.add_argument("user_id", type=USER_ID, metavar="USER_ID")
    ban.add_argument(
        "--reason",
        type=unmasked(_ban_reason),
        help=f"for operators, stored on the user (at most {MAX_BAN_REASON} printable"
        " characters); never shown to the user",
    )
    unban_help = "let the user log in again; sessions the ban revoked stay revoked"
    unban = user_commands.add_parser("unban", help=unban_help, description=unban_help)
    unban.add_argument("user_id", type=USER_ID, metavar="USER_ID")
    set_claims = user_commands.add_parser(
        "set-claims",
        help=f"replace the user's custom claims (a JSON object, at most {claims.MAX_BYTES}"
        f" bytes) and copy them onto each live session: access tokens carry them under"
        f" `{claims.NAMESPACE}` from each session's next refresh (or login) on",
    )
    set_claims.add_argument("user_id", type=USER_ID, metavar="USER_ID")
    set_claims.add_argument("claims", type=unmasked(_claims), metavar="JSON")
    for name, text in (
        ("show-claims", "print the user's custom claims"),
        ("clear-claims", "remove the user's custom claims (and from each live session)"),
    ):
        command = user_commands.add_parser(name, help=text)
        command.add_argument("user_id", type=USER_ID, metavar="USER_ID")
    pending_help = (
        "links not made (a unionid on two users); with USER_ID, that user's (as the unionid's"
        " owner or the other user: a few Queries), without it everyone's (a Scan of the table)"
    )
    pending = user_commands.add_parser("pending", help=pending_help, description=pending_help)
    pending.add_argument("user_id", nargs="?", type=USER_ID, metavar="USER_ID")
    merge_help = (
        "move every identity of --from to --into, end --from's sessions; needs a pending link"
        " or a shared unionid between them, else --force --reason"
    )
    merge = user_commands.add_parser("merge", help=merge_help, description=merge_help)
    merge.add_argument("--into", required=True, type=USER_ID, metavar="USER_ID")
    merge.add_argument("--from", dest="source", required=True, type=USER_ID, metavar="USER_ID")
    merge.add_argument(
        "--force",
        action="store_true",
        help="merge users with no pending link and no shared unionid (needs --reason)",
    )
    merge.add_argument(
        "--reason",
        type=unmasked(_ban_reason),
        help=f"why they are one person (at most {MAX_BAN_REASON} printable characters):"
        " stored on the absorbed user and logged, for operators",
    )
    merge.add_argument(
        "--operator",
        type=unmasked(operator_argument),
        help="who runs the merge (default: the login name); in AWS the caller's ARN is"
        " recorded too",
    )
    delete_help = (
        "delete the user (issue 25): every session ends now, and it is erased when"
        " AUTH_DELETION_COOLDOWN is over (it may log in meanwhile only to cancel); banned users"
        " too. --now: erase it now (also a deletion already asked for)"
    )
    delete = user_commands.add_parser("delete", help=delete_help, description=delete_help)
    delete.add_argument("user_id", type=USER_ID, metavar="USER_ID")
    delete.add_argument("--now", action="store_true", help="erase it now, no cooling-off")
    delete.add_argument(
        "--operator", type=unmasked(operator_argument), help="who asks (default: the login name)"
    )
    erase_help = "erase every user whose deletion is due (the scheduled DeletionHandler's run)"
    user_commands.add_parser("erase-due", help=erase_help, description=erase_help)


def run(args: argparse.Namespace, services: Services, now: int) -> Any:
    if args.command in ("ban", "unban"):
        bans = Bans(services.store.users, services.sessions, services.events)
        try:
            if args.command == "ban":
                result = bans.ban(args.user_id, now=now, reason=args.reason)
            else:
                result = bans.unban(args.user_id)
        except UnknownUser as e:
            raise AdminError(f"no user {args.user_id}") from e
        return dataclasses.asdict(result)
    if args.command == "pending":
        return [link.public() for link in services.graph.pending(user_id=args.user_id)]
    if args.command == "merge":
        return _merge(args, services, now)
    if args.command == "delete":
        return _delete(args, services, now)
    if args.command == "erase-due":
        return [dataclasses.asdict(done) for done in services.erasure.run_due(now)]
    if args.command == "show-claims":
        user = services.store.users.get(args.user_id)
        if user is None:
            raise AdminError(f"no user {args.user_id}")
        return {"user_id": user.user_id, "claims": claims.loads(user.custom_claims)}
    given = args.claims if args.command == "set-claims" else None
    result = claims.set_claims(services.store, args.user_id, given, now=now)
    return {
        "user_id": result.user_id,
        "claims": result.claims,
        "sessions_updated": result.sessions_updated,
    }


def _merge(args: argparse.Namespace, services: Services, now: int) -> dict[str, Any]:
    """The merge, then the absorbed user's sessions ended, the log line and the event."""
    if args.force and not args.reason:
        raise AdminError("--force needs --reason: why these users are one person")
    operator = operator_name(args.operator)
    caller = caller_arn(services.store.client)
    try:
        result = services.graph.merge(
            args.into,
            args.source,
            now=now,
            merged_by=f"{operator} ({caller})" if caller else operator,
            force=args.force,
            reason=args.reason,
        )
    except MergeRefused as e:
        raise AdminError(str(e)) from e
    revoked = services.sessions.revoke_all(args.source, now=now, reason=REASON_MERGED)
    log_event(  # WARNING: an irreversible operator action (and so on stderr, by `logging`)
        "user_merged",
        level=logging.WARNING,
        into=args.into,
        from_user_id=args.source,
        forced=result["forced"],
        operator=operator,
        caller=caller,
        reason=args.reason,
        identities_moved=len(result["identities"]),
        sessions_ended=revoked,
    )
    services.events.user_merged(
        args.into,
        merged_user_id=args.source,
        identities_moved=len(result["identities"]),
        forced=result["forced"],
        sessions_ended=revoked,
        now=now,
    )
    return {
        **result,
        "sessions_revoked": revoked,
        "operator": operator,
        "caller": caller,
        "reason": args.reason,
    }


def _delete(args: argparse.Namespace, services: Services, now: int) -> dict[str, Any]:
    """The deletion queued (chalicelib/deletion.py), then with --now erased at once."""
    try:
        record = services.deletion.request_by_operator(args.user_id, now=now, at_once=args.now)
    except UnknownUser as e:
        raise AdminError(f"no user {args.user_id}") from e
    operator = operator_name(args.operator)
    log_event(  # WARNING: an operator's irreversible action once it is due
        "user_delete",
        level=logging.WARNING,
        user_id=args.user_id,
        operator=operator,
        caller=caller_arn(services.store.client),
        now=args.now,
        erase_after=record.erase_after,
    )
    result: dict[str, Any] = {
        "user_id": args.user_id,
        "requested_at": record.requested_at,
        "erase_after": record.erase_after,
        "erased": False,
    }
    if args.now:
        erased = services.erasure.erase(record, now)
        result.update(erased=True, erased_user_ids=list(erased.erased_user_ids))
    return result
