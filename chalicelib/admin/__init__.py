"""`wxauth-admin` (or `python -m chalicelib.admin`): manage clients, sessions, users, apps and
signing keys.

Works against whatever the environment points at, as the service does: `AUTH_TABLE_NAME` and
boto3's own settings (`AWS_ENDPOINT_URL_DYNAMODB` for a local DynamoDB, else AWS), and
`AUTH_SIGNING_KEYS_ARN` (Secrets Manager) or `AUTH_SIGNING_KEYS_FILE` (local file) for keys.

    wxauth-admin client create|list|disable|enable ...     (chalicelib/admin/clients.py)
    wxauth-admin sessions list|revoke|revoke-all ...        (chalicelib/admin/sessions.py)
    wxauth-admin user ban|unban|set-claims|show-claims|clear-claims|pending|merge ...
                      delete|erase-due ...
                                                           (chalicelib/admin/users.py)
    wxauth-admin app add|list|disable|enable ...            (chalicelib/admin/apps.py)
    wxauth-admin keys rotate [--activate-in SECONDS | --emergency]   (chalicelib/admin/keys.py)

Results are JSON on stdout. Nothing secret is printed, except a new client's secret, once.
Exit codes: 0 done, 1 failed (not found, already exists, AWS error), 2 bad arguments.
`main(argv)` returns the exit code (argparse's too) instead of exiting. Ids that begin with `-`
are taken as ids (chalicelib/cli.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import runtime
from chalicelib.admin import apps, clients, keys, sessions, users
from chalicelib.cli import mask, option_strings
from chalicelib.errors import AdminError, WxAuthError
from chalicelib.settings import Settings

# The groups that work on the table, by name; `keys` works on the key set.
TABLE_GROUPS = {"client": clients, "sessions": sessions, "user": users, "app": apps}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="wxauth-admin",
        description="Manage wxauth clients, sessions, users, apps and signing keys.",
    )
    groups = top.add_subparsers(
        dest="group", required=True, metavar="{client,sessions,user,keys,app}"
    )
    for group in (clients, sessions, users, apps, keys):
        group.add_parser(groups)
    return top


def _run(args: argparse.Namespace, settings: Settings, now: int) -> Any:
    if args.group == "keys":
        return keys.run(args, settings, now)
    services = runtime.build(settings)
    try:
        return TABLE_GROUPS[args.group].run(args, services, now)
    finally:
        services.events.flush()  # after the command's writes (SessionEnded); never raises


def main(argv: list[str] | None = None) -> int:
    top = parser()
    given = sys.argv[1:] if argv is None else argv
    try:
        args = top.parse_args(mask(given, option_strings(top)))
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
