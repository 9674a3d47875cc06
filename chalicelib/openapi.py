"""The OpenAPI 3.1 description of the HTTP API: `chalicelib/openapi.json`, served at
`GET /openapi.json`.

The JSON file is the source (edit it by hand; shared answers live in `components`).
tests/test_openapi.py holds it to the app: every Chalice route and method is described, and
nothing else; tests/integration/test_schemathesis.py fuzzes the local server against it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SPEC_FILE = Path(__file__).with_name("openapi.json")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@cache
def _spec() -> dict[str, Any]:
    return json.loads(SPEC_FILE.read_text(encoding="utf-8"))


def document(server_url: str | None = None) -> dict[str, Any]:
    """The description; with `server_url` (the service's issuer), `servers` names it instead
    of the local server. The file is read once per process; no request reaches DynamoDB."""
    spec = _spec()
    if server_url is None:
        return spec
    return {**spec, "servers": [{"url": server_url.rstrip("/")}]}


def operations(spec: dict[str, Any]) -> set[str]:
    """`"METHOD /path"` of every operation the description has."""
    return {
        f"{method.upper()} {path}"
        for path, item in spec.get("paths", {}).items()
        for method in item
        if method in HTTP_METHODS
    }
