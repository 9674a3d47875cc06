"""Structured logs: one JSON line per request, and CloudWatch Embedded Metric Format lines.

Lines go to stdout through the standard `logging` module, already formatted as JSON, so that
CloudWatch Logs (and EMF) read them as they are. Callers pass only what is safe to log: never a
token, a code, a session_key or a secret.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

LOGGER_NAME = "wxauth.events"  # not "wxauth": Chalice owns that logger and prefixes its lines
METRICS_NAMESPACE = "wxauth"

_logger = logging.getLogger(LOGGER_NAME)


def configure(stream: Any = None) -> None:
    """Send the `wxauth` logger's lines, unprefixed, to stdout (idempotent)."""
    if any(getattr(h, "_wxauth", False) for h in _logger.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._wxauth = True  # type: ignore[attr-defined]
    _logger.addHandler(handler)
    _logger.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    _logger.propagate = False
    # urllib3 logs request lines at DEBUG, and WeChat's query string holds the app secret and
    # the code: keep it quiet whatever the root level is.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # botocore logs every request's parameters and every response body at DEBUG: DynamoDB
    # items, phone numbers (personal data) among them.
    logging.getLogger("botocore").setLevel(logging.INFO)


def _dump(fields: dict[str, Any]) -> str:
    return json.dumps(fields, separators=(",", ":"), default=str, sort_keys=False)


def log_request(**fields: Any) -> None:
    level = logging.ERROR if fields.get("status", 200) >= 500 else logging.INFO
    _logger.log(level, _dump({"event": "request", **fields}))


def log_event(event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    _logger.log(level, _dump({"event": event, **fields}))


class Metrics:
    """Counts written as EMF lines: namespace `wxauth`, dimension `Stack`."""

    def __init__(self, stack: str | None = None) -> None:
        self._stack = stack or os.environ.get("WXAUTH_STACK_NAME", "local")

    def count(self, name: str, value: int = 1, **properties: Any) -> None:
        line = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": METRICS_NAMESPACE,
                        "Dimensions": [["Stack"]],
                        "Metrics": [{"Name": name, "Unit": "Count"}],
                    }
                ],
            },
            "Stack": self._stack,
            name: value,
            **properties,
        }
        _logger.warning(_dump(line))
