"""`python -m devserver` (`make run`) on a free port, for tests that drive it from outside: the
README's examples, the verification recipes, `make run`'s own lock. Embedded DynamoDB and fake
WeChat; a key set file of the test's own; the runner's AWS, WeChat and auth settings left out
(so nothing of this machine's environment leaks in). Always stopped: SIGTERM, then SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
READY_PATH = "/.well-known/jwks.json"


@dataclass
class LocalServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    keys_file: Path  # its signing key set (AUTH_SIGNING_KEYS_FILE), written at its first token

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@contextmanager
def local_server(
    tmp: Path, *, python: str | None = None, env: Mapping[str, str] | None = None
) -> Iterator[LocalServer]:
    """A serving devserver (with `python`, default this interpreter), stopped on exit."""
    port = free_port()
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WECHAT_", "AUTH_"))
    }
    environ.pop("PORT", None)
    keys_file = tmp / f"keys-{port}.json"
    environ.update(PORT=str(port), AUTH_SIGNING_KEYS_FILE=str(keys_file))
    environ.update(env or {})
    log = tmp / f"devserver-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - the project's own server
            [python or sys.executable, "-m", "devserver"],
            cwd=REPO_ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LocalServer(process, port, log, keys_file)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(server.url + READY_PATH):
            if process.poll() is not None:
                raise RuntimeError(f"devserver exited {process.returncode}:\n{server.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"devserver not serving in time:\n{server.output()}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
