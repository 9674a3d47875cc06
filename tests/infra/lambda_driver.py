"""Runs in the child process of tests/infra/test_deploy_simulated.py, as Lambda's Python
bootstrap would: imports the handler named by `_HANDLER` from the unzipped package, then calls
it once per event.

Protocol: one JSON line on stdout describes the interpreter (what it can import, from where,
the app's routes); then each line read from stdin is an event, answered by one JSON line, the
handler's return value. Everything else the process writes to its stdout (the app's log lines,
which Lambda sends to CloudWatch) goes to stderr instead.

Self-contained on purpose: the standard library only, nothing of the repository, since the
point is that the package runs with nothing but what Lambda provides beside it.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import time
import uuid


class Context:
    """The attributes of Lambda's context object that a handler may read."""

    def __init__(self) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = "simulated"
        self.invoked_function_arn = os.environ.get("WXAUTH_SIM_FUNCTION_ARN", "")
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + float(os.environ.get("WXAUTH_SIM_TIMEOUT", "20"))

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _origin(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    return spec.origin if spec else None


def _elsewhere(name: str, task_root: str) -> list[str]:
    """Every sys.path entry other than the package that could provide `name`."""
    found = []
    for entry in sys.path:
        if os.path.realpath(entry or ".") == os.path.realpath(task_root):
            continue
        if importlib.machinery.PathFinder.find_spec(name, [entry]) is not None:
            found.append(entry)
    return found


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # print() and the app's log lines: stderr

    task_root = os.environ["LAMBDA_TASK_ROOT"]
    module_name, _, attribute = os.environ["_HANDLER"].rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    routes = sorted(
        [method, path]
        for path, methods in getattr(handler, "routes", {}).items()
        for method in methods
    )
    protocol.write(
        json.dumps(
            {
                "python": list(sys.version_info[:3]),
                "executable": sys.executable,
                "sys_path": sys.path,
                "task_root": task_root,
                "chalice": _origin("chalice"),
                "chalice_elsewhere": _elsewhere("chalice", task_root),
                "boto3": _origin("boto3"),
                "botocore": _origin("botocore"),
                "moto": _origin("moto"),
                "pytest": _origin("pytest"),
                "routes": routes,
            }
        )
        + "\n"
    )
    for line in sys.stdin:
        if not line.strip():
            continue
        response = handler(json.loads(line), Context())
        protocol.write(json.dumps(response) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
