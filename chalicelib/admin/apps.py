"""`wxauth-admin app ...`: the apps a deployment serves (chalicelib/identity/apps.py).

    wxauth-admin app add --appid APPID --kind {mini-program,official-account,mobile-app,website}
                         (--secret-arn ARN | --secret SECRET) [--client-id ID] [--audience AUD]
    wxauth-admin app list                 (never prints a secret)
    wxauth-admin app disable APPID [--no-wait]   (and: app enable APPID [--no-wait])

`--secret` stores the secret in the APP item and is refused unless the table is on this
machine (the DynamoDB client's endpoint is a loopback address or `localhost`,
chalicelib/admin/caller.py): in AWS, or any other DynamoDB, give the ARN of a Secrets Manager
secret.

`disable` and `enable` write the app's item, then wait until every container has read it
again (AUTH_APPS_CACHE_TTL seconds, and the longest a login already under way may take: no
login checks the item itself, issue #21), so that when the command returns the change is in
force everywhere; `--no-wait` returns at once and prints when it will be (`in_force_at`).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from chalicelib.admin.caller import local_table
from chalicelib.cli import unmasked
from chalicelib.errors import AdminError, RequestError
from chalicelib.identity.apps import APPID_RE, KINDS, App

if TYPE_CHECKING:
    from chalicelib.runtime import Services

def _appid(value: str) -> str:
    if not APPID_RE.fullmatch(value):
        raise argparse.ArgumentTypeError("APPID must be 1 to 64 of A-Z a-z 0-9 _ -")
    return value


def add_parser(groups: Any) -> None:
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
    secret.add_argument(
        "--secret",
        type=text,
        help="the app secret itself (a table on this machine only: a loopback endpoint)",
    )
    add.add_argument("--client-id", type=text, help="the tokens' client_id (default: the appid)")
    add.add_argument("--audience", type=text, help="the tokens' aud (default: the client id)")
    commands.add_parser("list", help="list every app (never their secrets)")
    for name, text in (("disable", "refuse logins of"), ("enable", "re-enable")):
        command = commands.add_parser(
            name, help=f"{text} an app (returns once every container has seen it)"
        )
        command.add_argument("appid", type=unmasked(_appid), metavar="APPID")
        command.add_argument(
            "--no-wait",
            action="store_true",
            help="return at once; the change is in force everywhere at `in_force_at`",
        )


def run(args: argparse.Namespace, services: Services, now: int) -> Any:
    apps = services.apps
    assert apps is not None
    if args.command == "add":
        if args.secret and not local_table(services.store.client):
            raise AdminError(
                "--secret is for local tables only (a DynamoDB endpoint on this machine):"
                " store the secret in Secrets Manager and give --secret-arn"
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
    wait = apps.in_force_after()
    if not args.no_wait:
        print(
            f"wxauth-admin: app {args.appid} {args.command}d; waiting {wait} s until every"
            " container has read it (--no-wait to return at once)",
            file=sys.stderr,
            flush=True,
        )
        services.sleep(wait)
    return {"appid": args.appid, "enabled": enabled, "in_force_at": now + wait}
