"""throughput: `/auth/refresh` over real HTTP to the local server (`python -m devserver` on a free
port, DynamoDB Local behind it) at 1, 8 and 32 concurrent clients, each client refreshing its own
session in a loop with its latest refresh token, against `GET /.well-known/jwks.json` on the same
server at the same concurrency (the server's HTTP floor). Checks: no errors, and no lost
rotation (every successful refresh returned a new token, and each client's latest token still
refreshes at the end).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import harness as h
from common import Section, Summary, fmt_ms, fmt_ratio, markdown_table, percentile, verdict

LEVELS = (1, 8, 32)
TIMEOUT = 30.0


@contextlib.contextmanager
def devserver(env: h.Env, log_path: Any) -> Iterator[int]:
    """`python -m devserver` on a free port against DynamoDB Local; stopped (SIGTERM, then
    SIGKILL of its process group) however the block ends."""
    from devserver.__main__ import accepts_connections, free_port, pdeathsig_setter

    port = free_port()
    server_env = dict(
        os.environ, PORT=str(port), AUTH_TABLE_NAME=f"wxauth-http-{uuid.uuid4().hex[:6]}"
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed module
            [sys.executable, "-m", "devserver"],
            cwd=h.REPO_ROOT,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=pdeathsig_setter(),
            process_group=0,
        )
        try:
            deadline = time.monotonic() + 60
            while not accepts_connections(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"devserver did not start; see {log_path}")
                time.sleep(0.1)
            yield port
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)


@dataclass
class Client:
    port: int
    refresh_token: str = ""
    refreshes: int = 0
    tokens_seen: set[str] = field(default_factory=set)
    conn: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        self.conn.connect()

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        assert self.conn is not None
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.connect()
            raise
        return response.status, json.loads(raw) if raw else None

    def refresh(self) -> bool:
        status, body = self.request("POST", "/auth/refresh", {"refresh_token": self.refresh_token})
        if status != 200:
            return False
        new = body["refresh_token"]
        self.refreshes += 1
        self.tokens_seen.add(new)
        self.refresh_token = new
        return True

    def jwks(self) -> bool:
        status, _ = self.request("GET", "/.well-known/jwks.json")
        return status == 200


@dataclass
class Result:
    ok: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.ok / self.seconds


def load(clients: list[Client], kind: str, seconds: float) -> Result:
    """Every client calls `kind` in a loop for `seconds`, released together."""
    barrier = threading.Barrier(len(clients) + 1)
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in clients]
    errors = [0] * len(clients)

    def work(i: int) -> None:
        call = getattr(clients[i], kind)
        barrier.wait(TIMEOUT)
        while not stop.is_set():
            started = time.perf_counter()
            try:
                ok = call()
            except (OSError, http.client.HTTPException, ValueError):
                ok = False
            if ok:
                latencies[i].append(time.perf_counter() - started)
            else:
                errors[i] += 1

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(clients))]
    for t in threads:
        t.start()
    barrier.wait(TIMEOUT)
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(TIMEOUT + 5)
    elapsed = time.perf_counter() - started
    flat = [x for per in latencies for x in per]
    return Result(len(flat), sum(errors), elapsed, flat)


def p50(latencies: list[float]) -> float:
    return percentile(latencies, 50) if latencies else float("inf")


def p50_p99(latencies: list[float]) -> str:
    if not latencies:
        return "n/a"
    return f"{fmt_ms(percentile(latencies, 50))} / {fmt_ms(percentile(latencies, 99))}"


def merge(results: list[Result]) -> Result:
    return Result(
        sum(r.ok for r in results),
        sum(r.errors for r in results),
        sum(r.seconds for r in results),
        [x for r in results for x in r.latencies],
    )


def run(env: h.Env, *, quick: bool = False, profile: bool = False) -> Section:
    seconds, reps = (1.5, 1) if quick else (3.0, 2)
    log_path = env.workdir / "devserver.log"
    with devserver(env, log_path) as port:
        clients = [Client(port) for _ in range(max(LEVELS))]
        run_id = uuid.uuid4().hex[:8]
        for i, client in enumerate(clients):
            client.connect()
            status, body = client.request("POST", "/auth/login", {"code": f"tp{i}-{run_id}.1"})
            if status != 200:
                raise RuntimeError(f"login over HTTP answered {status} {body}")
            client.refresh_token = body["refresh_token"]
            client.tokens_seen.add(client.refresh_token)
        rows = []
        total_errors = 0
        worst: float = 0.0
        for level in LEVELS:
            group = clients[:level]
            load(group, "jwks", 0.3)  # warm up this many connections
            base, subj = [], []
            for _ in range(reps):
                base.append(load(group, "jwks", seconds))
                subj.append(load(group, "refresh", seconds))
            b, s = merge(base), merge(subj)
            total_errors += b.errors + s.errors
            r = s.rps / b.rps if b.rps else 0.0
            worst = max(worst, 1 / r if r else float("inf"))
            rows.append(
                (
                    level,
                    f"{s.rps:.0f}",
                    f"{b.rps:.0f}",
                    fmt_ratio(r),
                    p50_p99(s.latencies),
                    p50_p99(b.latencies),
                    fmt_ratio(p50(s.latencies) / p50(b.latencies)),
                    f"{s.errors} / {b.errors}",
                )
            )
        # No lost rotation: every refresh gave a new token, and the latest one still works.
        stale = [i for i, client in enumerate(clients) if not client.refresh()]
        successes = sum(c.refreshes for c in clients)
        rotations = sum(len(c.tokens_seen) - 1 for c in clients)  # minus the login's token
    lost_ok = not stale and successes == rotations
    body = (
        f"`python -m devserver` (`chalice local`, one process, a thread per connection) on "
        f"DynamoDB Local; {reps} x {seconds:g} s per subject and level, baseline and subject "
        "alternating; each client keeps one keep-alive connection. Latencies are per request "
        "over all reps.\n\n"
        + markdown_table(
            [
                "clients",
                "refresh req/s",
                "jwks req/s (floor)",
                "refresh / floor throughput",
                "refresh p50 / p99",
                "jwks p50 / p99",
                "p50 ratio",
                "errors refresh / jwks",
            ],
            rows,
        )
        + f"\n\nNo lost rotation: {successes} successful refreshes, {rotations} distinct new "
        f"refresh tokens; every client's latest token refreshed at the end"
        + (f" except clients {stale}" if stale else "")
        + f": {verdict(lost_ok)}. Errors in total: {total_errors} (must be 0): "
        f"{verdict(total_errors == 0)}."
    )
    return Section(
        "throughput under concurrency",
        body,
        [
            Summary("HTTP refresh errors", str(total_errors), "0", total_errors == 0),
            Summary(
                "HTTP no lost rotation",
                f"{successes} refreshes = {rotations} rotations",
                "equal",
                lost_ok,
            ),
            Summary(
                "HTTP refresh throughput, worst level",
                f"floor / refresh = {fmt_ratio(worst)}",
                "",
                None,
            ),
        ],
    )
