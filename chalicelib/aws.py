"""botocore clients for a Lambda cold start: made the way boto3.client makes them, cheaper.

`boto3.client(...)` is `botocore.session.Session().create_client(...)` plus `import boto3`,
which imports s3transfer (never used here). Two more costs of a first client are botocore's
data loader's, and both go through its own extension point (the session's `data_loader`):
- to check a service name it lists every one of its ~400 data directories;
- it parses its JSON (1.2 MB of endpoints.json, the DynamoDB model) into OrderedDicts, twice as
  slow as plain dicts, which keep their order too.
Together about a quarter of a cold start's first request (bench/RESULTS.md). Then the
session's: it registers botocore's ~130 built-in event handlers, most of them for services the
app never calls (S3 alone has 37), checking each one's signature, and every client copies them
all (half the Python calls of a cold start's first request). The session here registers
those that apply to every service or to one of SERVICES: the same handlers in the same order
for any event a client of SERVICES emits (`tests/test_aws.py` compares them with a stock
session's). The clients are the same: same credentials chain, region, `AWS_ENDPOINT_URL_*`
overrides and config. How long each call may take is chalicelib/budgets.py's.

All three lean on botocore's internals (its handler table, its loader classes), and in Lambda
botocore is the runtime's, which Lambda updates on its own schedule. So the fast path is taken
only for the botocore releases it was checked against (VERIFIED_BOTOCORE: tools/check_botocore.py
compares it with a stock session, release by release); with any other botocore, `session()` is
botocore's stock session, slower to start (1.54x `import boto3` instead of 1.32x, in one
`make bench` run: docs/contributors.md, "botocore's internals")
and otherwise the same, and says so once in the log (`aws_stock_session`). infra/build.py
refuses to build when the locked botocore, the one the tests check, is outside the range.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from typing import Any

import botocore
import botocore.session
from botocore import handlers
from botocore.config import Config
from botocore.loaders import JSONFileLoader, Loader

# (major, minor) of the first and the last botocore release line the fast path was checked
# against with tools/check_botocore.py (handlers, loader data, clients), every line between
# them included: docs/contributors.md, "botocore's internals".
VERIFIED_BOTOCORE = ((1, 34), (1, 44))


def fast_path_supported(version: str) -> bool:
    """Whether `version` (botocore's `__version__`) is in VERIFIED_BOTOCORE."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    first, last = VERIFIED_BOTOCORE
    return first <= (major, minor) <= last


# Every AWS service the app calls, and those botocore's own credential providers may call for
# it (assume role and web identity: sts; SSO: sso, sso-oidc; `aws login`: signin); `events` is
# EventBridge (AUTH_EVENT_BUS, chalicelib/events.py), `lambda` the pre-token hook
# (AUTH_TOKEN_HOOK_ARN, chalicelib/tokens/claims.py). In Lambda the credentials come from the
# environment and none of the latter is used.
SERVICES = ("dynamodb", "secretsmanager", "events", "lambda", "sts", "sso", "sso-oidc", "signin")


# How event names spell SERVICES: `<event>.<service id, hyphenized>[.<operation>...]`, or
# `docs.<section>.<service id>...`; botocore's event aliases map `secretsmanager` to the
# second spelling.
EVENT_SERVICE_NAMES = frozenset(
    {
        "dynamodb",
        "secrets-manager",
        "secretsmanager",
        "eventbridge",
        "events",
        "lambda",  # the pre-token hook (chalicelib/tokens/claims.py)
        "sts",
        "sso",
        "sso-oidc",
        "signin",
    }
)


def handler_applies(event_name: str) -> bool:
    """Whether a built-in handler registered for `event_name` can fire for a client of
    SERVICES: it names no service (`request-created`), every service (`*`), or one of them."""
    parts = event_name.split(".")
    at = 2 if parts[0] == "docs" else 1
    service = parts[at] if len(parts) > at else "*"
    return service == "*" or service in EVENT_SERVICE_NAMES


def register_builtin_handlers(aws: botocore.session.Session) -> None:
    """What `Session(include_builtin_handlers=True)` registers, but for handler_applies()."""
    events = aws.get_component("event_emitter")
    for spec in handlers.BUILTIN_HANDLERS:
        event_name, handler = spec[0], spec[1]
        if not handler_applies(event_name):
            continue
        if len(spec) == 2:
            aws.register(event_name, handler)
        elif spec[2] is handlers.REGISTER_FIRST:
            events.register_first(event_name, handler)
        elif spec[2] is handlers.REGISTER_LAST:
            events.register_last(event_name, handler)


class PlainJSONFileLoader(JSONFileLoader):
    """botocore's JSON data files (`.json` or `.json.gz`) as plain dicts."""

    def load_file(self, file_path: str) -> Any:
        for extension, opener in ((".json", open), (".json.gz", gzip.open)):
            path = file_path + extension
            if os.path.isfile(path):
                with opener(path, "rb") as f:
                    return json.loads(f.read().decode("utf-8"))
        return super().load_file(file_path)  # a form botocore reads and this does not


class AppLoader(Loader):
    """botocore's data loader, knowing only SERVICES; its search paths are botocore's own
    (`AWS_DATA_PATH`, then ~/.aws/models, then botocore's data)."""

    def __init__(self, data_path: str | None = None) -> None:
        extra = [
            os.path.expanduser(os.path.expandvars(path))
            for path in (data_path.split(os.pathsep) if data_path else [])
        ]
        super().__init__(extra_search_paths=extra, file_loader=PlainJSONFileLoader())

    def list_available_services(self, type_name: str) -> list[str]:
        return list(SERVICES)


def fast_session() -> botocore.session.Session:
    """The session of the fast path (see the module doc), whatever the botocore."""
    aws = botocore.session.Session(include_builtin_handlers=False)
    register_builtin_handlers(aws)
    aws.register_component("data_loader", AppLoader(aws.get_config_variable("data_path")))
    return aws


_stock_logged = False


def session() -> botocore.session.Session:
    """The fast session with a botocore of VERIFIED_BOTOCORE, else botocore's stock one."""
    global _stock_logged
    if fast_path_supported(botocore.__version__):
        return fast_session()
    if not _stock_logged:
        from chalicelib.logs import log_event

        _stock_logged = True
        log_event(
            "aws_stock_session",
            level=logging.WARNING,
            botocore=botocore.__version__,
            verified=[".".join(map(str, v)) for v in VERIFIED_BOTOCORE],
        )
    return botocore.session.Session()


def client(service: str, config: Config | None = None, *, aws: Any = None) -> Any:
    """A botocore client for one of SERVICES (another raises botocore's UnknownServiceError)."""
    return (aws or session()).create_client(service, config=config)
