"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: the
protocol's JSON messages, each ended by a NUL, on file descriptors 3 (to the browser) and 4
(from it)), so no WebDriver, no websocket library and no browser download: Debian's `chromium`
(`make chromium` installs it). Only what the demo test needs: open a page, evaluate JavaScript.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any

# The flags that work on the shared CI machine (no GPU, no sandbox as root, nothing fetched
# from the internet by the browser itself).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def executable() -> str:
    """Debian's chromium; an AssertionError saying how to install it (the test never skips)."""
    for path in (os.environ.get("CHROMIUM", ""), *CANDIDATES):
        if path and os.access(path, os.X_OK):
            return path
    found = shutil.which("chromium")
    assert found, "chromium is not installed: `make chromium` (apt-get install chromium)"
    return found


class Chromium:
    """A headless Chromium showing one page; `evaluate` runs JavaScript in it."""

    def __init__(self, url: str) -> None:
        self._profile = tempfile.mkdtemp(prefix="wxauth-chromium-")
        to_browser, self._in = os.pipe()
        self._out, from_browser = os.pipe()

        def descriptors() -> None:  # in the child: the protocol's pipes as fds 3 and 4
            a, b = os.dup(to_browser), os.dup(from_browser)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._process = subprocess.Popen(  # noqa: S603 - the system's browser, on loopback
            [executable(), *FLAGS, f"--user-data-dir={self._profile}", url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=descriptors,  # noqa: PLW1509 - only dup2, before exec
            close_fds=False,
            start_new_session=True,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._next_id = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._ready = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._session = self._attach()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._out, 65536):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._ready:
                        self._answers[message["id"]] = message
                        self._ready.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, **extra: Any) -> Any:
        with self._ready:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}, **extra}
        os.write(self._in, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        with self._ready:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                assert left > 0, f"chromium did not answer {method}"
                self._ready.wait(left)
            answer = self._answers.pop(ident)
        assert "error" not in answer, f"{method}: {answer['error']}"
        return answer["result"]

    def _attach(self) -> str:
        deadline = time.monotonic() + 30
        while True:
            pages = [
                t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page"
            ]
            if pages:
                break
            assert time.monotonic() < deadline, "chromium opened no page"
            time.sleep(0.1)
        attached = self.send(
            "Target.attachToTarget", {"targetId": pages[0]["targetId"], "flatten": True}
        )
        return attached["sessionId"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serializable)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True},
            sessionId=self._session,
        )
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 30.0) -> Any:
        """Evaluate until the value is truthy (the page works at its own pace: real time)."""
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"the page never had {expression}"
            time.sleep(0.2)
        return value

    def close(self) -> None:
        """Browser.close, then SIGKILL to its process group if it is still there after 10 s."""
        try:
            if self._process.poll() is None:
                with contextlib.suppress(AssertionError, OSError):
                    self.send("Browser.close")
                try:
                    self._process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self._process.pid, signal.SIGKILL)
                    self._process.wait()
        finally:
            os.close(self._in)
            self._reader.join(5)  # EOF once the browser is gone
            if not self._reader.is_alive():
                os.close(self._out)
            shutil.rmtree(self._profile, ignore_errors=True)
