"""`wxauth-admin app ...` and `wxauth-admin user merge|pending` (wired in chalicelib/admin.py).

    wxauth-admin app add --appid APPID --kind {mini-program,official-account,mobile-app}
                         (--secret-arn ARN | --secret SECRET) [--client-id ID] [--audience AUD]
    wxauth-admin app list                 (never prints a secret)
    wxauth-admin app disable APPID        (and: app enable APPID)
    wxauth-admin user pending             links not made: a unionid that would join two users
    wxauth-admin user merge --into A --from B

`--secret` stores the secret in the APP item and is refused unless the table is a local one
(`AWS_ENDPOINT_URL_DYNAMODB` set): in AWS, give the ARN of a Secrets Manager secret.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from chalicelib.cli import unmasked
from chalicelib.errors import AdminError, MergeRefused, RequestError
from chalicelib.identity.apps import APPID_RE, KINDS, App

if TYPE_CHECKING:
    from chalicelib.runtime import Services

USER_COMMANDS = ("pending", "merge")


def handles(args: argparse.Namespace) -> bool:
    """True for the commands this module runs: `app ...`, `user pending|merge`."""
    return args.group == "app" or (args.group == "user" and args.command in USER_COMMANDS)


def _appid(value: str) -> str:
    if not APPID_RE.fullmatch(value):
        raise argparse.ArgumentTypeError("APPID must be 1 to 64 of A-Z a-z 0-9 _ -")
    return value


def add_parsers(groups: Any, user_commands: Any, user_id: Any) -> None:
    """Add the `app` group to wxauth-admin's subparsers and `pending`, `merge` to its `user`
    group's (`user_commands`); `user_id` checks user ids."""
    app = groups.add_parser("app", help="the apps (mini-programs, official accounts, mobile apps)")
    commands = app.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="register an app")
    add.add_argument("--appid", required=True, type=unmasked(_appid))
    add.add_argument("--kind", required=True, choices=sorted(KINDS))
    secret = add.add_mutually_exclusive_group(required=True)
    text = unmasked(str)
    secret.add_argument(
        "--secret-arn", type=text, help="Secrets Manager secret holding the app secret"
    )
    secret.add_argument("--secret", type=text, help="the app secret itself (local tables only)")
    add.add_argument("--client-id", type=text, help="the tokens' client_id (default: the appid)")
    add.add_argument("--audience", type=text, help="the tokens' aud (default: AUTH_AUDIENCE)")
    commands.add_parser("list", help="list every app (never their secrets)")
    for name, text in (("disable", "refuse logins of"), ("enable", "re-enable")):
        command = commands.add_parser(name, help=f"{text} an app, at once")
        command.add_argument("appid", type=unmasked(_appid), metavar="APPID")

    user_commands.add_parser("pending", help="links not made (a unionid on two users)")
    merge = user_commands.add_parser(
        "merge", help="move every identity of --from to --into, end --from's sessions"
    )
    merge.add_argument("--into", required=True, type=user_id, metavar="USER_ID")
    merge.add_argument("--from", dest="source", required=True, type=user_id, metavar="USER_ID")


def run(args: argparse.Namespace, services: Services, now: int) -> Any:
    """Carry out an `app` or `user` command; the JSON-able result."""
    if args.group == "user":
        graph = services.graph
        if args.command == "pending":
            return [link.public() for link in graph.pending()]
        try:
            result = graph.merge(args.into, args.source, now=now)
        except MergeRefused as e:
            raise AdminError(str(e)) from e
        result["sessions_revoked"] = services.sessions.revoke_all(
            args.source, now=now, reason="merged"
        )
        return result
    apps = services.apps
    assert apps is not None
    if args.command == "add":
        if args.secret and not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
            raise AdminError(
                "--secret is for local tables only: store the secret in Secrets Manager and"
                " give --secret-arn"
            )
        try:
            app = apps.add(
                App(
                    appid=args.appid,
                    kind=args.kind,
                    client_id=args.client_id or args.appid,
                    audience=args.audience,
                    secret_arn=args.secret_arn,
                    secret=args.secret,
                ),
                now=now,
            )
        except RequestError as e:
            raise AdminError(str(e)) from e
        return app.public()
    if args.command == "list":
        return [app.public() for app in apps.apps(fresh=True).values()]
    enabled = args.command == "enable"
    if not apps.set_enabled(args.appid, enabled, now=now):
        raise AdminError(f"no app {args.appid}")
    return {"appid": args.appid, "enabled": enabled}
