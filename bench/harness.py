"""The benchmarks' environment: DynamoDB Local, a fake WeChat, the app's settings, API Gateway
HTTP API events (payload format 1.0) posted into the Lambda handler, botocore event hooks that
count DynamoDB requests, and a sink that counts the bytes of the app's log lines.

Only the app's public seams are used: `app.app`, `app.services()` / `app._services`,
`services().store.client`, `runtime.build` and `Settings`, so the benchmarks measure whatever
code is in the tree they run in.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

TABLE = "wxauth-bench"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",  # DynamoDB Local keeps one database per key id and region
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
READ_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})


class Env:
    """DynamoDB Local (one per run, in memory), an in-process fake WeChat and the environment
    the app reads its settings from. Everything started is stopped by `close()`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._stack = contextlib.ExitStack()
        self.endpoint = ""
        self.wechat: Any = None

    def start(self) -> Env:
        from chalicelib.settings import LOCAL_APPID, LOCAL_SECRET
        from devserver.fake_wechat import FakeWeChat
        from tests.integration.dynamodb_local import DynamoDBLocal

        for name in list(os.environ):
            if name.startswith("AWS_"):  # never reach a real AWS account from a benchmark
                del os.environ[name]
        os.environ.update(FAKE_AWS)
        ddb = DynamoDBLocal()
        self._stack.callback(ddb.stop)
        ddb.install()
        self.endpoint = ddb.start()
        self.wechat = FakeWeChat(LOCAL_APPID, LOCAL_SECRET)
        wechat_url = self.wechat.start("127.0.0.1", 0)
        self._stack.callback(self.wechat.stop)
        os.environ.update(
            AWS_ENDPOINT_URL_DYNAMODB=self.endpoint,
            AUTH_TABLE_NAME=TABLE,
            AUTH_SIGNING_KEYS_FILE=str(self.workdir / "signing-keys.json"),
            AUTH_ISSUER="http://localhost:8000",
            WECHAT_APPID=LOCAL_APPID,
            WECHAT_SECRET=LOCAL_SECRET,
            WECHAT_API_BASE=wechat_url,
        )
        self.create_table(TABLE)
        return self

    def client(self) -> Any:
        """A plain botocore DynamoDB client for DynamoDB Local (not the app's)."""
        from tests.integration.dynamodb_local import dynamodb_client

        return dynamodb_client(self.endpoint)

    def create_table(self, name: str) -> None:
        from chalicelib.store import create_table

        create_table(self.client(), name)

    def close(self) -> None:
        self._stack.close()


# -- the app ------------------------------------------------------------------------------------


class LogSink(io.TextIOBase):
    """Where the app's log lines go instead of stdout: counted (lines, UTF-8 bytes, what
    CloudWatch Logs ingests of them), then dropped."""

    def __init__(self) -> None:
        self.lines = 0
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        self.bytes += len(text.encode())
        return len(text)

    def reset(self) -> None:
        self.lines = self.bytes = 0


LOG_SINK = LogSink()


def import_app() -> ModuleType:
    """`import app` with its log lines sent to `LOG_SINK` (still formatted and written, as on
    Lambda, and counted, but not mixed into the benchmark's markdown)."""
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(LOG_SINK):
        import app
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and handler.stream is real_stdout:
                handler.setStream(LOG_SINK)
    return app


@dataclass
class LambdaContext:
    function_name: str = "wxauth-bench"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:wxauth-bench"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


CONTEXT = LambdaContext()


def api_event(
    method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """What the deployed stack's API Gateway HTTP API posts to the function for a route (payload
    format 1.0: `version` "1.0", `requestContext.resourcePath` the route's path, stage
    `$default`, header names lowercased): `tests/events.http_api_v1_event`, the
    deploy simulation's builder, with a JSON body."""
    from tests.events import http_api_v1_event

    all_headers = {
        "User-Agent": "wxauth-bench",
        **({"Content-Type": "application/json"} if body is not None else {}),
        **(headers or {}),
    }
    text = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    return http_api_v1_event(method, path, headers=all_headers, body=text, api_id="abcdef1234")


def invoke(app: ModuleType, event: dict[str, Any]) -> tuple[int, Any]:
    """Post an event into the Lambda handler; (status, parsed JSON body or raw body)."""
    response = app.app(event, CONTEXT)
    body = response.get("body")
    with contextlib.suppress(TypeError, ValueError):
        body = json.loads(body) if body else body
    return response["statusCode"], body


def expect(app: ModuleType, event: dict[str, Any], status: int = 200) -> Any:
    got, body = invoke(app, event)
    if got != status:
        raise RuntimeError(f"{event['httpMethod']} {event['path']}: {got} {body!r}")
    return body


def login_event(code: str) -> dict[str, Any]:
    return api_event("POST", "/auth/login", body={"code": code})


def refresh_event(refresh_token: str) -> dict[str, Any]:
    return api_event("POST", "/auth/refresh", body={"refresh_token": refresh_token})


def verify_event(access_token: str) -> dict[str, Any]:
    return api_event("POST", "/auth/verify", body={"token": access_token})


def logout_event(access_token: str) -> dict[str, Any]:
    return api_event("POST", "/auth/logout", headers={"Authorization": f"Bearer {access_token}"})


def new_services(app: ModuleType, dynamodb: Any = None) -> Any:
    """A fresh service graph from the environment (`runtime.build`), not yet installed."""
    from chalicelib import runtime
    from chalicelib.settings import Settings

    settings = Settings.from_env()
    if dynamodb is None:
        return runtime.build(settings)
    return runtime.build(settings, dynamodb=dynamodb)


@contextlib.contextmanager
def installed(app: ModuleType, services: Any) -> Any:
    """Make `services` the app's service graph for the duration."""
    saved = app._services
    app._services = services
    try:
        yield services
    finally:
        app._services = saved


# -- counting DynamoDB requests -----------------------------------------------------------------


class DynamoCounter:
    """Counts a botocore DynamoDB client's calls by operation and sums their consumed capacity
    (it asks every call for `ReturnConsumedCapacity=TOTAL`), from the client's event hooks."""

    def __init__(self, client: Any) -> None:
        self._events = client.meta.events
        self.calls: Counter[str] = Counter()
        self.http_attempts = 0
        self.read_units = 0.0
        self.write_units = 0.0
        self.units_by_operation: Counter[str] = Counter()
        self.params: list[tuple[str, dict[str, Any]]] = []
        self._events.register("before-parameter-build.dynamodb", self._before)
        self._events.register("before-send.dynamodb", self._send)
        self._events.register("after-call.dynamodb", self._after)

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        self.params.append((model.name, copy.deepcopy(params)))

    def _send(self, **_: Any) -> None:
        self.http_attempts += 1

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        consumed = parsed.get("ConsumedCapacity")
        for item in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
            read, write = item.get("ReadCapacityUnits"), item.get("WriteCapacityUnits")
            if read is None and write is None:
                units = float(item.get("CapacityUnits", 0.0))
                if model.name in READ_OPERATIONS:
                    read = units
                else:
                    write = units
            self.read_units += float(read or 0.0)
            self.write_units += float(write or 0.0)
            self.units_by_operation[model.name] += float(read or 0.0) + float(write or 0.0)

    def reset(self) -> None:
        self.calls.clear()
        self.params.clear()
        self.units_by_operation.clear()
        self.http_attempts = 0
        self.read_units = self.write_units = 0.0

    def transaction_items(self) -> int:
        """Items written by the TransactWriteItems calls (each billed twice its write units)."""
        return sum(
            len(p.get("TransactItems", [])) for op, p in self.params if op == "TransactWriteItems"
        )

    @property
    def requests(self) -> int:
        return sum(self.calls.values())

    @property
    def writes(self) -> int:
        return sum(n for op, n in self.calls.items() if op not in READ_OPERATIONS)

    def by_operation(self) -> str:
        return ", ".join(f"{op} {n}" for op, n in sorted(self.calls.items())) or "none"

    def close(self) -> None:
        self._events.unregister("before-parameter-build.dynamodb", self._before)
        self._events.unregister("before-send.dynamodb", self._send)
        self._events.unregister("after-call.dynamodb", self._after)


# -- a DynamoDB client without a network --------------------------------------------------------


class Recorder:
    """Wraps a botocore client; remembers each API call's arguments and answer."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.recordings: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in self._client.meta.method_to_api_mapping:
            return attr

        def recorded(**kwargs: Any) -> Any:
            response = attr(**kwargs)
            self.recordings.setdefault(name, []).append((copy.deepcopy(kwargs), response))
            return response

        return recorded


class ReplayClient:
    """Answers API calls from a Recorder's recordings (matched on equal arguments), in process;
    any other API call is an error. Non-API attributes (`meta`, `exceptions`) are the real
    client's, so error classes and event hooks still exist."""

    def __init__(self, client: Any, recordings: dict[str, list[tuple[dict, dict]]]) -> None:
        self._client = client
        self._recordings = recordings

    def __getattr__(self, name: str) -> Any:
        if name not in self._client.meta.method_to_api_mapping:
            return getattr(self._client, name)
        answers = self._recordings.get(name, [])

        def replay(**kwargs: Any) -> Any:
            for args, response in answers:
                if args == kwargs:
                    return response
            raise RuntimeError(f"ReplayClient: no recorded answer for {name}({kwargs})")

        setattr(self, name, replay)  # later lookups skip __getattr__
        return replay


def quiet_stderr() -> contextlib.AbstractContextManager[io.StringIO]:
    return contextlib.redirect_stderr(io.StringIO())


def profile_top(fn: Any, calls: int, top: int = 15) -> list[tuple[str, int, float, float]]:
    """cProfile `calls` calls of `fn`: the `top` functions by own time (where the time goes), as
    (function, calls, own seconds per fn call, cumulative seconds per fn call)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        where = filename.replace(str(REPO_ROOT) + "/", "")
        where = where.split("site-packages/", 1)[-1]
        rows.append((f"{where}:{line}({name})", ncalls, tottime / calls, cumtime / calls))
    rows.sort(key=lambda r: r[2], reverse=True)
    return rows[:top]


def profile_table(rows: list[tuple[str, int, float, float]], calls: int) -> str:
    from common import fmt_ms, markdown_table

    return markdown_table(
        ["function", "calls per request", "own time per request", "cumulative per request"],
        [(f"`{f}`", f"{n / calls:g}", fmt_ms(own), fmt_ms(cum)) for f, n, own, cum in rows],
    )
