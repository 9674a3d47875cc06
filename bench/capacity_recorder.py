"""capacity's measurements: every partition key each operation reads or writes, with its units.

A `KeyRecorder` hooks a botocore DynamoDB client's events (`before-parameter-build`,
`after-call`): for each request, and each item of a transaction, the partition key, whether it
is read or written, and its capacity units, computed from the item's size by DynamoDB's rules
(bench/capacity.py). The sizes of written items are read before and after with a second,
unhooked client. Each request also asks DynamoDB Local for its own figure
(`ReturnConsumedCapacity=TOTAL`), shown beside ours.

`measure_all` drives each operation through the Lambda handler (`app.app`, API Gateway HTTP API
events, harness.py), on a fresh table of DynamoDB Local with the fake WeChat, as returning users
of the primary app of a deployment with three apps:

- a container's first request (cold), its second at the same moment (steady: the per-request
  accesses), then, in fresh containers, a request after each idle time of a ladder (1 s to
  2 h): an access that comes back after Δ seconds of age is a cache's read, and a binary search
  finds its period to the second;
- the CPU time of steady requests (time.process_time, a container without the recorder).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import harness as h
from capacity import Access, Measured, Periodic, item_size, read_units, write_units

LADDER = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"})
FUNCTIONS = {"login": "login", "phone": "login", "refresh": "api", "verify": "api"}
EXTRA_APPS = ("wxcapacity-app-two", "wxcapacity-app-three")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _key_of(action: dict[str, Any]) -> dict[str, Any]:
    if "Key" in action:
        return action["Key"]
    return {"pk": action["Item"]["pk"], "sk": action["Item"]["sk"]}


class KeyRecorder:
    """The partition keys and units of every request a client makes (see the module doc)."""

    def __init__(self, client: Any, side: Any) -> None:
        self._client = client
        self._side = side
        self._pending: list[tuple[str, dict[str, Any], list[int]]] = []
        self.requests: list[list[Access]] = []
        self.local_units: list[float] = []
        events = client.meta.events
        events.register("before-parameter-build.dynamodb", self._before)
        events.register("after-call.dynamodb", self._after)

    def close(self) -> None:
        events = self._client.meta.events
        events.unregister("before-parameter-build.dynamodb", self._before)
        events.unregister("after-call.dynamodb", self._after)

    def take(self) -> tuple[list[Access], int, float]:
        """The accesses, requests and DynamoDB Local's units since the last take."""
        accesses = [a for request in self.requests for a in request]
        taken = (accesses, len(self.requests), sum(self.local_units))
        self.requests, self.local_units = [], []
        return taken

    def _size(self, table: str, key: dict[str, Any]) -> int:
        found = self._side.get_item(TableName=table, Key=key, ConsistentRead=True)
        return item_size(found.get("Item"))

    def _written_keys(self, operation: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        if operation == "TransactWriteItems":
            return [_key_of(next(iter(item.values()))) for item in params["TransactItems"]]
        if operation == "PutItem":
            return [_key_of({"Item": params["Item"]})]
        return [params["Key"]]

    def _table_of(self, operation: str, params: dict[str, Any]) -> str:
        if operation == "TransactWriteItems":
            return next(iter(params["TransactItems"][0].values()))["TableName"]
        return params["TableName"]

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        before: list[int] = []
        if model.name in WRITES:
            table = self._table_of(model.name, params)
            before = [self._size(table, key) for key in self._written_keys(model.name, params)]
        self._pending.append((model.name, copy.deepcopy(params), before))

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        operation, params, before = self._pending.pop()
        failed = "Error" in parsed
        accesses: list[Access] = []
        consistent = bool(params.get("ConsistentRead", False))
        if operation == "GetItem":
            size = item_size(parsed.get("Item"))
            units = read_units(size, consistent=consistent)
            accesses.append(
                Access(params["Key"]["pk"]["S"], "read", units, False, operation, consistent)
            )
        elif operation == "Query":
            pk = params["ExpressionAttributeValues"][":pk"]["S"]
            size = sum(item_size(item) for item in parsed.get("Items", []))
            units = read_units(size, consistent=consistent)
            accesses.append(Access(pk, "read", units, False, operation, consistent))
        elif operation in WRITES:
            table = self._table_of(operation, params)
            keys = self._written_keys(operation, params)
            transactional = operation == "TransactWriteItems"
            actions = (
                [next(iter(item.items())) for item in params["TransactItems"]]
                if transactional
                else [(operation, params)]
            )
            for key, old, (action, body) in zip(keys, before, actions, strict=True):
                size = old
                if not failed and action in ("Put", "PutItem"):
                    size = max(old, item_size(body["Item"]))
                elif not failed and action in ("Update", "UpdateItem"):
                    size = max(old, self._size(table, key))
                units = write_units(size, transactional=transactional)
                accesses.append(Access(key["pk"]["S"], "write", units, transactional, operation))
        else:
            raise RuntimeError(f"capacity: the recorder does not know {operation}")
        self.requests.append(accesses)
        consumed = parsed.get("ConsumedCapacity")
        for entry in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
            self.local_units.append(float(entry.get("CapacityUnits", 0.0)))


def _signatures(accesses: list[Access]) -> Counter:
    return Counter(a.signature() for a in accesses)


def extra(accesses: list[Access], baseline: list[Access]) -> list[Access]:
    """The accesses of `accesses` that `baseline` has not (compared by what they are, not by
    whose key: two logins touch two users' items)."""
    left = _signatures(baseline)
    found = []
    for access in accesses:
        if left[access.signature()] > 0:
            left[access.signature()] -= 1
        else:
            found.append(access)
    return found


class Operations:
    """The four operations through the handler, each request as a returning user of the primary
    app (its own code, its own user where the operation changes the user)."""

    def __init__(self, env: h.Env, app: Any, settings: Any) -> None:
        self.env = env
        self.app = app
        self.settings = settings
        self.appid = settings.wechat_appid
        self._n = 0
        self.sessions: dict[str, tuple[str, str, str]] = {}  # user -> user_id, sid, refresh
        self._ip = 0

    def next(self) -> int:
        self._n += 1
        return self._n

    def container(self, clock: Clock, dynamodb: Any = None) -> Any:
        from chalicelib import runtime

        return runtime.build(self.settings, dynamodb=dynamodb or self.env.client(), clock=clock)

    def _login_event(self, code: str) -> dict[str, Any]:
        event = h.api_event("POST", "/auth/login", body={"code": code, "appid": self.appid})
        self._ip += 1
        event["requestContext"]["identity"]["sourceIp"] = (
            f"10.{self._ip >> 16 & 255}.{self._ip >> 8 & 255}.{self._ip & 255}"
        )
        return event

    def setup(self, services: Any, users: int) -> None:
        """Register the other two apps; log every user in once (new users, not measured)."""
        from chalicelib.identity.apps import App

        for appid in EXTRA_APPS:
            services.apps.add(App(appid, secret=f"{appid}-local-secret"), now=services.now())
        with h.installed(self.app, services):
            for role in ("L", "R", "V", "P"):
                for k in range(users):
                    user = f"cap{role}{k}"
                    body = h.expect(self.app, self._login_event(f"{user}.0"))
                    user_id, sid = body["refresh_token"].split(".")[:2]
                    self.sessions[user] = (user_id, sid, body["refresh_token"])
            # What a running deployment already has: the WeChat token in the table (the first
            # container to need it fetches it once for the whole fleet).
            self.send("phone", services, users)

    def _bearer(self, services: Any, user: str) -> str:
        user_id, sid, _ = self.sessions[user]
        token, _ = services.access_tokens.mint(
            subject=user_id, session_id=sid, client_id=self.appid, now=services.now()
        )
        return token

    def event(
        self, name: str, services: Any, users: int
    ) -> tuple[dict[str, Any], Callable[[Any], None]]:
        """The next request of operation `name`, and what to do with its answer's body."""
        n = self.next()
        if name == "login":
            return self._login_event(f"capL{n % users}.{n}"), lambda body: None
        if name == "refresh":
            user = f"capR{n % users}"
            user_id, sid, token = self.sessions[user]

            def rotated(body: Any) -> None:
                self.sessions[user] = (user_id, sid, body["refresh_token"])

            return h.refresh_event(token), rotated
        if name == "verify":
            return h.verify_event(self._bearer(services, f"capV{n % users}")), lambda body: None
        user = f"capP{n % users}"
        headers = {"Authorization": f"Bearer {self._bearer(services, user)}"}
        body = {"code": f"phone.{user}.139{n:08d}"}
        return h.api_event("POST", "/auth/phone", body=body, headers=headers), lambda body: None

    def wechat_calls(self) -> int:
        from devserver.fake_wechat import STABLE_TOKEN_PATH

        wechat = self.env.wechat
        return wechat.calls + wechat.phone_calls + wechat.calls_to(STABLE_TOKEN_PATH)

    def send(self, name: str, services: Any, users: int) -> float:
        """Send the next request of `name`; the CPU seconds it took (time.process_time)."""
        event, answered = self.event(name, services, users)
        started = time.process_time()
        got, body = h.invoke(self.app, event)
        cpu = time.process_time() - started
        if got != 200:
            raise RuntimeError(f"capacity: {name} answered {got} {body!r}")
        answered(body)
        return cpu


@contextlib.contextmanager
def _recorded(ops: Operations, clock: Clock) -> Iterator[tuple[Any, KeyRecorder]]:
    client = ops.env.client()
    recorder = KeyRecorder(client, ops.env.client())
    services = ops.container(clock, client)
    try:
        with h.installed(ops.app, services):
            yield services, recorder
    finally:
        recorder.close()


def _probe(ops: Operations, name: str, users: int, start: float, delta: float) -> dict[str, Any]:
    """A fresh container: its first request, its second, then one after `delta` seconds."""
    clock = Clock(start)
    with _recorded(ops, clock) as (services, recorder):
        ops.send(name, services, users)
        first, _, _ = recorder.take()
        calls = ops.wechat_calls()
        ops.send(name, services, users)
        wechat = ops.wechat_calls() - calls
        steady, requests, local = recorder.take()
        clock.advance(delta)
        ops.send(name, services, users)
        later, _, _ = recorder.take()
    return {
        "first": first,
        "steady": steady,
        "later": later,
        "requests": requests,
        "local": local,
        "wechat": wechat,
    }


def _periods(probe: Callable[[float], dict[str, Any]], steady: list[Access]) -> list[Periodic]:
    """Each access a container makes again after some idle time, and the shortest such time."""
    found: dict[tuple[Any, ...], Periodic] = {}
    absent_at = 0.0
    for delta in LADDER:
        for access in extra(probe(delta)["later"], steady):
            signature = access.signature()
            if signature in found:
                continue
            low, high = absent_at, float(delta)  # absent after `low` s, present after `high` s
            while high - low > 1:
                middle = float(int((low + high) // 2))
                if signature in {a.signature() for a in extra(probe(middle)["later"], steady)}:
                    high = middle
                else:
                    low = middle
            found[signature] = Periodic(access, high)
        absent_at = float(delta)
    return list(found.values())


def _cpu_seconds(ops: Operations, name: str, users: int, calls: int) -> float:
    clock = Clock(time.time())
    services = ops.container(clock)
    with h.installed(ops.app, services):
        ops.send(name, services, users)  # warm
        samples = sorted(ops.send(name, services, users) for _ in range(calls))
    return samples[len(samples) // 2]


def memory_mb() -> int:
    config = json.loads((h.REPO_ROOT / ".chalice" / "config.json").read_text())
    return int(config["stages"]["prod"].get("lambda_memory_size", 128))


def measure_all(
    env: h.Env, *, quick: bool = False, ip_limit: str | None = None
) -> tuple[list[Measured], int]:
    """Every operation of the profile, measured (see the module doc); and the functions' MB."""
    from chalicelib.settings import Settings

    app = h.import_app()
    table = f"wxauth-capacity-{uuid.uuid4().hex[:8]}"
    env.create_table(table)
    overrides = {"AUTH_TABLE_NAME": table}
    if ip_limit:
        overrides["AUTH_LIMIT_LOGIN_PER_IP"] = ip_limit
    settings = Settings.from_env({**os.environ, **overrides})
    ops = Operations(env, app, settings)
    users = 40 if quick else 80
    start = time.time()
    ops.setup(ops.container(Clock(start)), users)
    measured = []
    for name in ("login", "refresh", "verify", "phone"):
        base = _probe(ops, name, users, start, 0)
        steady = base["steady"]
        periodic = [Periodic(a, 0.0) for a in extra(base["first"], steady)]
        periodic += _periods(partial(_probe, ops, name, users, start), steady)
        measured.append(
            Measured(
                name=name,
                function=FUNCTIONS[name],
                per_request=steady,
                periodic=periodic,
                requests=base["requests"],
                wechat_calls=base["wechat"],
                cpu_seconds=_cpu_seconds(ops, name, users, 5 if quick else 15),
                local_units=base["local"],
            )
        )
    env.client().delete_table(TableName=table)
    return measured, memory_mb()
