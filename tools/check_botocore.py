"""Check chalicelib/aws.py's fast path against the installed botocore: the same built-in
handlers, in the same order, as a stock session's for every event a client of aws.SERVICES can
emit; the same data from the loader (plain dicts); a working client of every service.

    python tools/check_botocore.py          # exit 0: this botocore may be in VERIFIED_BOTOCORE

Run it in a throwaway venv holding only botocore (the version to check) before widening
aws.VERIFIED_BOTOCORE; tests/test_aws.py runs the same checks on the locked botocore.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # clients need one; no call is made
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import botocore  # noqa: E402
import botocore.session  # noqa: E402
from botocore import handlers  # noqa: E402
from botocore.model import ServiceModel  # noqa: E402

from chalicelib import aws  # noqa: E402

DATA = [
    ("load_data", ("endpoints",)),
    ("load_data", ("partitions",)),
    ("load_data", ("sdk-default-configuration",)),
    ("load_service_model", ("dynamodb", "service-2")),
    ("load_service_model", ("dynamodb", "endpoint-rule-set-1")),
    ("load_service_model", ("secretsmanager", "service-2")),
]


def handlers_of(session: botocore.session.Session, event_name: str) -> list[object]:
    """The handlers `session` calls for `event_name`, in order (botocore's own lookup)."""
    aliaser = session.get_component("event_emitter")
    return list(aliaser._emitter._handlers.prefix_search(aliaser._alias_event_name(event_name)))


def event_names(service: str) -> list[str]:
    """Every event name a client of `service` can emit that a built-in handler listens to."""
    model = ServiceModel(aws.AppLoader().load_service_model(service, "service-2"), service)
    service_id = model.service_id.hyphenize()
    kinds = {spec[0].split(".")[0] for spec in handlers.BUILTIN_HANDLERS} - {"docs"}
    sections = {
        spec[0].split(".")[1] for spec in handlers.BUILTIN_HANDLERS if spec[0][:5] == "docs."
    }
    names = [f"{kind}{suffix}" for kind in kinds for suffix in ("", f".{service_id}")]
    for op in model.operation_names:
        names += [f"{kind}.{service_id}.{op}" for kind in kinds]
        names += [f"docs.{section}.{service_id}.{op}.complete-section" for section in sections]
    return names


def problems() -> list[str]:
    found: list[str] = []
    ours, stock = aws.fast_session(), botocore.session.get_session()
    available = set(stock.get_available_services())
    for service in aws.SERVICES:
        if service not in available:  # newer than this botocore (signin: `aws login`)
            continue
        for name in event_names(service):
            if handlers_of(ours, name) != handlers_of(stock, name):
                found.append(f"{service}: handlers differ for {name}")
        try:
            aws.client(service, aws=ours)
        except Exception as e:  # noqa: BLE001 - reported, whatever it is
            found.append(f"{service}: no client ({type(e).__name__}: {e})")
    stock_loader = stock.get_component("data_loader")
    for method, args in DATA:
        mine, theirs = getattr(aws.AppLoader(), method)(*args), getattr(stock_loader, method)(*args)
        if type(mine) is not dict or mine != theirs or list(mine) != list(theirs):
            found.append(f"loader: {method}{args} differs")
    return found


if __name__ == "__main__":
    found = problems()
    for problem in found:
        print(problem)
    verified = "inside" if aws.fast_path_supported(botocore.__version__) else "outside"
    print(
        f"botocore {botocore.__version__} ({verified} aws.VERIFIED_BOTOCORE):"
        f" {'FAILED' if found else 'ok'} ({len(found)} problems)"
    )
    sys.exit(1 if found else 0)
