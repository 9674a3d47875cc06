"""`wxauth-admin` (or `python -m chalicelib.admin`): manage clients, sessions and signing keys.

Works against whatever the environment points at, as the service does: `AUTH_TABLE_NAME` and
boto3's own settings (`AWS_ENDPOINT_URL_DYNAMODB` for a local DynamoDB, else AWS), and
`AUTH_SIGNING_KEYS_ARN` (Secrets Manager) or `AUTH_SIGNING_KEYS_FILE` (local file) for keys.

    wxauth-admin client create --scopes "orders:read orders:write" [--client-id shop-backend]
    wxauth-admin client list
    wxauth-admin client disable CLIENT_ID      (and: client enable CLIENT_ID)
    wxauth-admin sessions list USER_ID
    wxauth-admin sessions revoke USER_ID SESSION_ID
    wxauth-admin sessions revoke-all USER_ID
    wxauth-admin user ban USER_ID [--reason TEXT]
    wxauth-admin user unban USER_ID
    wxauth-admin keys rotate [--activate-in SECONDS | --emergency]
    wxauth-admin user set-claims USER_ID '{"roles": ["editor"]}'
    wxauth-admin user show-claims USER_ID
    wxauth-admin user clear-claims USER_ID
    wxauth-admin app add|list|disable|enable ...    (chalicelib/identity/admin.py)
    wxauth-admin user pending | user merge --into USER_ID --from USER_ID

Results are JSON on stdout. Nothing secret is printed, except a new client's secret, once.
Exit codes: 0 done, 1 failed (not found, already exists, AWS error), 2 bad arguments.
`main(argv)` returns the exit code (argparse's too) instead of exiting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import runtime
from chalicelib.bans import MAX_BAN_REASON, Bans, validate_reason
from chalicelib.cli import ID_RE, mask, unmasked
from chalicelib.clients import SCOPE_TOKEN_RE, validate_client_id
from chalicelib.errors import AdminError, ClientExists, RequestError, UnknownUser, WxAuthError
from chalicelib.identity import admin as identity_admin
from chalicelib.settings import Settings
from chalicelib.signing_keys import DEFAULT_ACTIVATE_IN, KeySet, replace_file, rotate_for_service
from chalicelib.store.sessions import SessionRecord
from chalicelib.tokens import claims


def _wxauth_id(kind: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not ID_RE.fullmatch(value):
            raise argparse.ArgumentTypeError(f"{kind} must be 22 base64url characters")
        return value

    return unmasked(check)


def _client_id(value: str) -> str:
    try:
        return validate_client_id(value)
    except RequestError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _scopes(value: str) -> list[str]:
    scopes = [scope for scope in value.split(" ") if scope]
    if not scopes:
        raise argparse.ArgumentTypeError("give at least one scope")
    bad = [scope for scope in scopes if not SCOPE_TOKEN_RE.fullmatch(scope)]
    if bad:
        raise argparse.ArgumentTypeError(
            "scopes are space-separated printable ASCII without quotes or backslashes"
        )
    return scopes


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="wxauth-admin",
        description="Manage wxauth clients, sessions, users and signing keys.",
    )
    groups = top.add_subparsers(
        dest="group", required=True, metavar="{client,sessions,user,keys,app}"
    )

    client = groups.add_parser("client", help="OAuth clients (client credentials grant)")
    client_commands = client.add_subparsers(dest="command", required=True)
    create = client_commands.add_parser(
        "create", help="register a client and print its secret, once"
    )
    create.add_argument(
        "--scopes",
        required=True,
        type=unmasked(_scopes),
        help='space-separated, e.g. "orders:read"',
    )
    create.add_argument("--client-id", type=unmasked(_client_id), help="default: a random id")
    client_commands.add_parser("list", help="list every client (never their secrets)")
    for name, text in (("disable", "refuse new tokens to"), ("enable", "re-enable")):
        command = client_commands.add_parser(name, help=f"{text} a client")
        command.add_argument("client_id", type=unmasked(_client_id), metavar="CLIENT_ID")

    sessions = groups.add_parser("sessions", help="a user's login sessions")
    session_commands = sessions.add_subparsers(dest="command", required=True)
    listing = session_commands.add_parser("list", help="list a user's sessions")
    listing.add_argument("user_id", type=_wxauth_id("USER_ID"), metavar="USER_ID")
    revoke = session_commands.add_parser("revoke", help="end one session now")
    revoke.add_argument("user_id", type=_wxauth_id("USER_ID"), metavar="USER_ID")
    revoke.add_argument("session_id", type=_wxauth_id("SESSION_ID"), metavar="SESSION_ID")
    revoke_all = session_commands.add_parser("revoke-all", help="end every session of a user")
    revoke_all.add_argument("user_id", type=_wxauth_id("USER_ID"), metavar="USER_ID")

    identity_admin.add_parsers(groups, _add_user_commands(groups), _wxauth_id("USER_ID"))

    keys = groups.add_parser("keys", help="access-token signing keys")
    key_commands = keys.add_subparsers(dest="command", required=True)
    rotate = key_commands.add_parser(
        "rotate",
        help="publish a new key, sign with it after --activate-in seconds; keep the old key"
        " published until its last token has expired",
    )
    when = rotate.add_mutually_exclusive_group()
    when.add_argument(
        "--activate-in",
        type=unmasked(_seconds),
        default=DEFAULT_ACTIVATE_IN,
        metavar="SECONDS",
        help=f"publish now, sign from then on (default {DEFAULT_ACTIVATE_IN}: every container"
        " has loaded the new key and JWKS caches have expired by then)",
    )
    when.add_argument(
        "--emergency",
        action="store_true",
        help="the old key may be compromised: sign with the new key at once and unpublish every"
        " other key (their access tokens stop verifying; clients refresh, sessions are kept)",
    )
    return top


def _claims(value: str) -> dict[str, object]:
    try:
        return claims.parse(value)
    except RequestError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _add_user_commands(groups: Any) -> Any:
    """`user`: bans (chalicelib/bans.py) and custom claims (chalicelib/tokens/claims.py)."""
    user = groups.add_parser("user", help="ban or unban a user; a user's custom claims")
    user_commands = user.add_subparsers(dest="command", required=True)
    ban_help = (
        "refuse the user's logins and refreshes (403 access_denied) and revoke every live"
        " session now: verify and protected routes refuse its access tokens at once"
    )
    ban = user_commands.add_parser("ban", help=ban_help, description=ban_help)
    ban.add_argument("user_id", type=_wxauth_id("USER_ID"), metavar="USER_ID")
    ban.add_argument(
        "--reason",
        type=unmasked(_ban_reason),
        help=f"for operators, stored on the user (at most {MAX_BAN_REASON} printable"
        " characters); never shown to the user",
    )
    unban_help = "let the user log in again; sessions the ban revoked stay revoked"
    unban = user_commands.add_parser("unban", help=unban_help, description=unban_help)
    unban.add_argument("user_id", type=_wxauth_id("USER_ID"), metavar="USER_ID")
    set_claims = user_commands.add_parser(
        "set-claims",
        help=f"replace the user's custom claims (a JSON object, at most {claims.MAX_BYTES}"
        f" bytes) and copy them onto each live session: access tokens carry them under"
        f" `{claims.NAMESPACE}` from each session's next refresh (or login) on",
    )
    set_claims.add_argument("user_id", type=_wxauth_id("USER_ID"), metavar="USER_ID")
    set_claims.add_argument("claims", type=unmasked(_claims), metavar="JSON")
    for name, text in (
        ("show-claims", "print the user's custom claims"),
        ("clear-claims", "remove the user's custom claims (and from each live session)"),
    ):
        command = user_commands.add_parser(name, help=text)
        command.add_argument("user_id", type=_wxauth_id("USER_ID"), metavar="USER_ID")
    return user_commands  # chalicelib/identity/admin.py adds `pending` and `merge`


def _ban_reason(value: str) -> str:
    try:
        reason = validate_reason(value)
    except RequestError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    assert reason is not None
    return reason


def _run_user(args: argparse.Namespace, services: runtime.Services, now: int) -> Any:
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


def _seconds(value: str) -> int:
    if not value.isdigit() or int(value) > 86_400:
        raise argparse.ArgumentTypeError("must be a whole number of seconds, at most 86400")
    return int(value)


def _session(session: SessionRecord, now: int) -> dict[str, Any]:
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


def _run(args: argparse.Namespace, settings: Settings, now: int) -> Any:
    if args.group == "keys":
        return _rotate_keys(
            settings, now, 0 if args.emergency else args.activate_in, args.emergency
        )
    services = runtime.build(settings)
    try:
        return _command(args, services, now)
    finally:
        services.events.flush()  # after the command's writes (SessionEnded); never raises


def _command(args: argparse.Namespace, services: runtime.Services, now: int) -> Any:
    """A command that works on the table (every group but `keys`)."""
    if identity_admin.handles(args):
        return identity_admin.run(args, services, now)
    if args.group == "client":
        clients = services.clients
        if args.command == "create":
            try:
                record, secret = clients.create(args.scopes, now=now, client_id=args.client_id)
            except ClientExists as e:
                raise AdminError(str(e)) from e
            print(
                "Store client_secret now: it is shown this once and cannot be recovered.",
                file=sys.stderr,
            )
            return {**record.public(), "client_secret": secret}
        if args.command == "list":
            return [client.public() for client in clients.list_clients()]
        enabled = args.command == "enable"
        if not clients.set_enabled(args.client_id, enabled):
            raise AdminError(f"no client {args.client_id}")
        return {"client_id": args.client_id, "enabled": enabled}

    if args.group == "user":
        return _run_user(args, services, now)
    sessions = services.sessions
    if args.command == "list":
        return [_session(s, now) for s in sessions.list_sessions(args.user_id)]
    if args.command == "revoke":
        session = services.sessions.find(args.user_id, args.session_id)
        if session is None:
            raise AdminError(f"user {args.user_id} has no session {args.session_id}")
        revoked = sessions.revoke(args.user_id, args.session_id, now=now, reason="admin")
        return {"session_id": args.session_id, "revoked": revoked, "already_revoked": not revoked}
    count = sessions.revoke_all(args.user_id, now=now, reason="admin")
    return {"user_id": args.user_id, "revoked": count}


def _rotate_keys(settings: Settings, now: int, activate_in: int, emergency: bool) -> dict[str, Any]:
    def rotate(current: KeySet) -> KeySet:
        return rotate_for_service(
            current,
            now,
            access_ttl=settings.access_ttl,
            activate_in=activate_in,
            emergency=emergency,
        )

    if settings.signing_keys_arn:
        import boto3

        secrets = boto3.client("secretsmanager")
        current = KeySet.from_json(
            secrets.get_secret_value(SecretId=settings.signing_keys_arn)["SecretString"]
        )
        rotated = rotate(current)
        secrets.put_secret_value(SecretId=settings.signing_keys_arn, SecretString=rotated.to_json())
        where = settings.signing_keys_arn
    else:
        path = settings.signing_keys_file
        try:
            with open(path, encoding="utf-8") as f:
                current = KeySet.from_json(f.read())
        except FileNotFoundError as e:
            raise AdminError(
                f"no signing key file at {path} (the server creates it on first use)"
            ) from e
        rotated = rotate(current)
        replace_file(path, rotated)
        where = path
    kept = {key.kid for key in rotated.keys}
    return {
        "keys": where,
        "active_kid": rotated.active_kid,
        "signs_from": now + activate_in,
        "retired_kid": current.active_kid,
        "published_kids": [key.kid for key in rotated.keys],
        "dropped_kids": [key.kid for key in current.keys if key.kid not in kept],
    }


def _option_strings(top: argparse.ArgumentParser) -> set[str]:
    """Every option string of `top` and its subcommands' parsers (`-h`, `--reason`, ...)."""
    found: set[str] = set()
    parsers = [top]
    while parsers:
        current = parsers.pop()
        for action in current._actions:
            found.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return found


def main(argv: list[str] | None = None) -> int:
    top = parser()
    given = sys.argv[1:] if argv is None else argv
    try:
        args = top.parse_args(mask(given, _option_strings(top)))
    except SystemExit as e:  # argparse has printed the usage and what is wrong
        return e.code if isinstance(e.code, int) else 2
    now = int(time.time())
    try:
        result = _run(args, Settings.from_env(), now)
    except (AdminError, WxAuthError) as e:
        print(f"wxauth-admin: error: {e}", file=sys.stderr)
        return 1
    except ClientError as e:
        error = e.response.get("Error", {})
        print(
            f"wxauth-admin: error: AWS {e.operation_name} failed:"
            f" {error.get('Code', '?')} {error.get('Message', '')}".rstrip(),
            file=sys.stderr,
        )
        return 1
    except BotoCoreError as e:
        print(f"wxauth-admin: error: AWS call failed: {type(e).__name__}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
