"""`wxauth-admin keys rotate [--activate-in SECONDS | --emergency]`: the access-token signing
keys, in Secrets Manager (`AUTH_SIGNING_KEYS_ARN`) or the local file (`AUTH_SIGNING_KEYS_FILE`).
"""

from __future__ import annotations

import argparse
from typing import Any

from chalicelib.cli import unmasked
from chalicelib.errors import AdminError
from chalicelib.settings import Settings
from chalicelib.signing_keys import DEFAULT_ACTIVATE_IN, KeySet, replace_file, rotate_for_service


def _seconds(value: str) -> int:
    if not value.isdigit() or int(value) > 86_400:
        raise argparse.ArgumentTypeError("must be a whole number of seconds, at most 86400")
    return int(value)


def add_parser(groups: Any) -> None:
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


def run(args: argparse.Namespace, settings: Settings, now: int) -> dict[str, Any]:
    """Rotate the keys where the settings keep them (the one command that needs no table)."""
    return rotate_keys(settings, now, 0 if args.emergency else args.activate_in, args.emergency)


def rotate_keys(settings: Settings, now: int, activate_in: int, emergency: bool) -> dict[str, Any]:
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
