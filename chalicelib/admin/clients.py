"""`wxauth-admin client ...`: OAuth clients (client credentials; websites' sign-ins).

    wxauth-admin client create --scopes "orders:read orders:write" [--client-id shop-backend]
    wxauth-admin client create --redirect-uri https://shop.example/cb [--redirect-uri ...]
                               [--public] [--client-id shop-web]   (issue 24: /oauth/authorize)
    wxauth-admin client list
    wxauth-admin client disable CLIENT_ID      (and: client enable CLIENT_ID)
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from chalicelib.cli import unmasked
from chalicelib.clients import SCOPE_TOKEN_RE, validate_client_id
from chalicelib.errors import AdminError, ClientExists, InvalidScope, RequestError

if TYPE_CHECKING:
    from chalicelib.runtime import Services


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


def add_parser(groups: Any) -> None:
    client = groups.add_parser("client", help="OAuth clients (client credentials grant)")
    client_commands = client.add_subparsers(dest="command", required=True)
    create = client_commands.add_parser(
        "create", help="register a client and print its secret, once"
    )
    create.add_argument(
        "--scopes",
        default=[],
        type=unmasked(_scopes),
        help='space-separated, e.g. "orders:read"',
    )
    create.add_argument("--client-id", type=unmasked(_client_id), help="default: a random id")
    create.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        dest="redirect_uris",
        type=unmasked(str),
        help="where /oauth/authorize may send the browser back (exact match; repeatable)",
    )
    create.add_argument(
        "--public",
        action="store_true",
        help="no secret: a web page or an app, proved by PKCE alone (needs --redirect-uri)",
    )
    client_commands.add_parser("list", help="list every client (never their secrets)")
    for name, text in (("disable", "refuse new tokens to"), ("enable", "re-enable")):
        command = client_commands.add_parser(name, help=f"{text} a client")
        command.add_argument("client_id", type=unmasked(_client_id), metavar="CLIENT_ID")


def run(args: argparse.Namespace, services: Services, now: int) -> Any:
    clients = services.clients
    if args.command == "create":
        try:
            record, secret = clients.create(
                args.scopes,
                now=now,
                client_id=args.client_id,
                redirect_uris=args.redirect_uris,
                public=args.public,
            )
        except (ClientExists, RequestError, InvalidScope) as e:
            raise AdminError(str(e)) from e
        if secret is None:
            return record.public()
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
