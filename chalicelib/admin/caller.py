"""Where an admin command runs and who runs it: is the table a local one, and the operator.

- `local_table(client)`: the DynamoDB client's endpoint is on this machine (a loopback address
  or `localhost`, whatever set it: `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`, a config
  file). Only then may an app's secret be stored in the table (`app add --secret`); any other
  endpoint, AWS's own included, is not local.
- `caller_arn(client)`: the AWS identity the command's requests are signed as, from STS
  `GetCallerIdentity` (which needs no permission) in the table's region, with the credentials
  chain the table's client uses; None for a local table (no request leaves the machine) or if
  STS does not answer within its budget.
- `operator_name(given)`: who says they ran it: `--operator`, else the login name (`$USER`).
"""

from __future__ import annotations

import getpass
import ipaddress
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.budgets import CallBudget

# STS answers in milliseconds; an operator's command may wait a few seconds, not a minute.
STS = CallBudget(connect_timeout=2, read_timeout=3, attempts=2)
MAX_OPERATOR = 100


def local_table(client: Any) -> bool:
    """True if the DynamoDB client talks to this machine (loopback or `localhost`)."""
    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None) or ""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def caller_arn(client: Any) -> str | None:
    """The ARN AWS knows the command's caller by; None for a local table or without answer."""
    if local_table(client):
        return None
    try:
        sts = aws.session().create_client(
            "sts", region_name=client.meta.region_name, config=STS.config()
        )
        return str(sts.get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError, KeyError):
        return None


def operator_name(given: str | None) -> str:
    """`--operator` as given, else the login name of whoever runs the command."""
    if given:
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without $USER or passwd entry)
        return "unknown"


def operator_argument(value: str) -> str:
    """An argparse `type` for `--operator`: 1 to MAX_OPERATOR printable characters."""
    import argparse

    if not value or len(value) > MAX_OPERATOR or not value.isprintable():
        raise argparse.ArgumentTypeError(
            f"OPERATOR must be 1 to {MAX_OPERATOR} printable characters"
        )
    return value
