"""`python -m devserver` (`make run`): the whole service on one machine, in the foreground.

Fills in only the settings missing from the environment (a variable set to an empty string
counts as missing; a non-empty one is never overridden), starts an embedded DynamoDB (moto)
unless `AWS_ENDPOINT_URL_DYNAMODB` is set and the fake WeChat unless `WECHAT_API_BASE` is set,
creates the table if missing, then runs `chalice local` as a child process on `PORT`.

SIGINT or SIGTERM stops the child (SIGKILL after 5 s, or at once on a second signal), the fake
WeChat and moto, and exits 0. The signal handler only records the signal (a byte on a pipe
wakes the main loop, `signal.set_wakeup_fd`), so a signal arriving in the middle of anything,
another signal included, cannot deadlock it; a watchdog kills the child and exits 1 if the stop
takes longer than SHUTDOWN_BOUND all the same. If the child exits by itself, everything stops
and its exit code is ours. On Linux both this process and the child get SIGTERM when their
parent dies, so nothing outlives `make run`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from types import FrameType
from typing import NoReturn

from devserver.fake_wechat import FakeWeChat, fake_apps

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 8000
STOP_TIMEOUT = 5.0  # SIGTERM to SIGKILL for the child
SHUTDOWN_BOUND = 15.0  # from the first signal to our exit, whatever hangs
EXIT_FORCED = 1  # our exit code when the watchdog had to end the stop
PR_SET_PDEATHSIG = 1


def log(message: str) -> None:
    print(f"devserver: {message}", file=sys.stderr, flush=True)


def fill_env(env: MutableMapping[str, str], name: str, value: str) -> str:
    """Set `name` unless it already has a non-empty value; return the value in effect."""
    if not env.get(name):
        env[name] = value
    return env[name]


def pdeathsig_setter() -> Callable[[], None] | None:
    """A function making the calling process get SIGTERM when its parent dies (Linux only).

    libc and prctl are looked up here, before any fork, so the function is safe to run as a
    subprocess `preexec_fn` in a process that has threads.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_pdeathsig() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_pdeathsig


class StopRequest:
    """SIGINT and SIGTERM, recorded and nothing more.

    The handler appends the signal number to a list: no lock, no I/O, nothing that a second
    signal arriving inside the first handler (or inside anything the main thread was doing)
    could deadlock on. `threading.Event.set` takes a lock: a signal landing while the main
    thread held it, in `Event.wait`, hung `make run` once. The main loop sleeps in `select` on
    a pipe that `signal.set_wakeup_fd` writes a byte to when a signal arrives, so it wakes at
    once.
    """

    def __init__(self) -> None:
        self.signals: list[int] = []
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def install(self) -> None:
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        signal.signal(signal.SIGINT, self._record)
        signal.signal(signal.SIGTERM, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def is_set(self) -> bool:
        return bool(self.signals)

    def wait(self, timeout: float) -> bool:
        """Sleep until a signal arrives or `timeout` passes; True if one has arrived."""
        if not self.signals:
            with contextlib.suppress(InterruptedError):
                select.select([self._read], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 512):
                pass
        return self.is_set()


def _start_watchdog(child: subprocess.Popen[bytes] | None, seconds: float) -> None:
    """A last resort: if we have not exited `seconds` from now, kill the child and exit."""

    def expire() -> None:
        time.sleep(seconds)
        if child is not None:
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGKILL)
        os.write(2, b"devserver: the stop took too long; exiting\n")
        os._exit(EXIT_FORCED)

    threading.Thread(target=expire, name="devserver-watchdog", daemon=True).start()


def _set_own_pdeathsig() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _port_problem(port: int) -> str | None:
    """Why chalice local could not listen on 127.0.0.1:`port`, or None if it can."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return f"port {port} is already in use; set PORT to another one"
            return f"cannot listen on port {port}: {e.strerror}"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts_connections(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _start_moto(stack: contextlib.ExitStack) -> str:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per DynamoDB request
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    stack.callback(server.stop)
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


def _create_table(env: Mapping[str, str]) -> bool:
    import boto3
    from botocore.config import Config

    from chalicelib.store import create_table

    client = boto3.client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3}),
    )
    return create_table(client, env["AUTH_TABLE_NAME"])


def chalice_local_command(port: int) -> list[str]:
    """The command that serves the app (docs/contributors.md, Local server; the integration tests
    run it too): `chalice local`, through devserver.chalice_local (TCP_NODELAY), with this
    interpreter."""
    return [
        sys.executable,
        "-m",
        "devserver.chalice_local",
        "local",
        "--no-autoreload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--stage",
        "local",
    ]


def _stop_child(child: subprocess.Popen[bytes], stop: StopRequest) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT or as soon as another signal comes."""
    if child.poll() is not None:
        return
    signals_seen = len(stop.signals)
    child.terminate()
    deadline = STOP_TIMEOUT
    while deadline > 0:
        try:
            child.wait(0.1)
            return
        except subprocess.TimeoutExpired:
            deadline -= 0.1
        if len(stop.signals) > signals_seen:
            break
    log("chalice local did not stop in time; killing it")
    child.kill()
    child.wait()


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def main() -> int:
    stopping = StopRequest()
    stopping.install()
    _set_own_pdeathsig()

    env = os.environ
    raw_port = env.get("PORT") or str(DEFAULT_PORT)
    if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
        log(f"PORT must be a TCP port number, not {raw_port!r}")
        return 2
    port = int(raw_port)
    problem = _port_problem(port)
    if problem:
        log(problem)
        return 1

    fill_env(env, "AWS_DEFAULT_REGION", "us-east-1")
    from chalicelib.settings import LOCAL_APPID, LOCAL_SECRET

    appid = fill_env(env, "WECHAT_APPID", LOCAL_APPID)
    secret = fill_env(env, "WECHAT_SECRET", LOCAL_SECRET)
    fill_env(env, "AUTH_TABLE_NAME", "wxauth")
    fill_env(env, "AUTH_ISSUER", f"http://localhost:{port}")
    fill_env(env, "AUTH_SIGNING_KEYS_FILE", ".wxauth/signing-keys.json")
    fill_env(env, "AUTH_EVENT_LOG", "true")  # auth events as log lines: no EventBridge needed

    with contextlib.ExitStack() as stack:
        if env.get("AWS_ENDPOINT_URL_DYNAMODB"):
            dynamodb = f"{env['AWS_ENDPOINT_URL_DYNAMODB']} (AWS_ENDPOINT_URL_DYNAMODB)"
        else:
            env["AWS_ENDPOINT_URL_DYNAMODB"] = _start_moto(stack)
            fill_env(env, "AWS_ACCESS_KEY_ID", "testing")
            fill_env(env, "AWS_SECRET_ACCESS_KEY", "testing")
            dynamodb = f"{env['AWS_ENDPOINT_URL_DYNAMODB']} (embedded moto, in memory)"
        try:
            created = _create_table(env)
        except Exception as e:  # any failure here is the operator's to fix; say which
            log(f"cannot prepare table {env['AUTH_TABLE_NAME']!r} at {dynamodb}: {e}")
            return 1
        table = f"{env['AUTH_TABLE_NAME']} ({'created' if created else 'exists'})"

        if env.get("WECHAT_API_BASE"):
            wechat = f"{env['WECHAT_API_BASE']} (WECHAT_API_BASE)"
        else:
            fake = FakeWeChat(
                appid,
                secret,
                apps=fake_apps(env.get("FAKE_WECHAT_APPS")),
                devtools_user=env.get("FAKE_WECHAT_USER") or None,
            )
            env["WECHAT_API_BASE"] = fake.start("127.0.0.1", 0)
            fill_env(env, "WECHAT_OPEN_BASE", env["WECHAT_API_BASE"])  # qrconnect (issue 24)
            stack.callback(fake.stop)
            wechat = f"{env['WECHAT_API_BASE']} (built-in fake WeChat, appid {appid})"

        if stopping.is_set():
            _start_watchdog(None, SHUTDOWN_BOUND)
            return 0
        child = subprocess.Popen(  # noqa: S603 - fixed command line
            chalice_local_command(port),
            cwd=REPO_ROOT,
            env=dict(env),
            preexec_fn=pdeathsig_setter(),  # libc is resolved before the fork
            process_group=0,  # Ctrl-C reaches us only; we stop the child ourselves
        )
        stack.callback(_stop_child, child, stopping)

        ready = False
        while not stopping.is_set() and child.poll() is None:
            if not ready and accepts_connections(port):
                ready = True
                log(
                    f"wxauth on http://127.0.0.1:{port}\n"
                    f"  DynamoDB: {dynamodb}, table {table}\n"
                    f"  WeChat:   {wechat}\n"
                    f"  try:      curl -s -X POST localhost:{port}/auth/login"
                    " -H 'content-type: application/json' -d '{\"code\":\"alice.1\"}'\n"
                    "ready (Ctrl-C stops everything)"
                )
            stopping.wait(0.1 if not ready else 0.5)

        if stopping.is_set():
            log("stopping")
            _start_watchdog(child, SHUTDOWN_BOUND)
            return 0
        code = _exit_code(child.returncode)
        log(f"chalice local exited with code {code}; stopping")
        return code


def _exit(code: int) -> NoReturn:
    """Exit with `code` once everything is stopped, whatever signal comes now.

    The interpreter's own exit would first reset SIGINT and SIGTERM to their defaults (it does
    so for every Python handler while it finalizes), so that a second signal landing in that
    window (a Ctrl-C pressed twice, a supervisor's SIGTERM repeated) killed us with -15 instead
    of our exit code. Once the stop is done, further signals are ignored, the logs and the
    standard streams are flushed, and the process ends without finalizing.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
