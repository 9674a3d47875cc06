"""The devserver's signal handling: a burst of signals cannot deadlock it, and a second signal
during the stop kills the child at once instead of waiting for its SIGTERM timeout."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from devserver.__main__ import STOP_TIMEOUT, StopRequest, _stop_child

REPO_ROOT = Path(__file__).resolve().parents[2]

# The main thread waits as the devserver's main loop does while another thread sends the
# process SIGTERM after SIGTERM. With the earlier handler (`threading.Event.set`, whose lock the
# main thread may hold inside `Event.wait` when the handler runs) this harness hung in one of
# three runs; it must finish every time.
POUND = """
import os, signal, threading, time
from devserver.__main__ import StopRequest

stop = StopRequest()
stop.install()

def pound():
    for _ in range(3000):
        os.kill(os.getpid(), signal.SIGTERM)

sender = threading.Thread(target=pound, daemon=True)
sender.start()
deadline = time.monotonic() + 10
while sender.is_alive() and time.monotonic() < deadline:
    stop.wait(0.0001)
sender.join(10)
print(len(stop.signals), sender.is_alive())
"""


def test_a_burst_of_signals_does_not_deadlock_the_main_loop():
    for _ in range(3):
        result = subprocess.run(
            [sys.executable, "-c", POUND],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=40,  # on expiry subprocess.run kills the harness with SIGKILL
        )
        assert result.returncode == 0, result.stderr
        received, sender_alive = result.stdout.split()
        assert sender_alive == "False" and int(received) > 0


def test_wait_wakes_up_at_once_on_a_signal():
    stop = StopRequest()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    previous_fd = signal.set_wakeup_fd(-1)
    try:
        stop.install()
        threading.Timer(0.2, signal.raise_signal, (signal.SIGTERM,)).start()
        started = time.monotonic()

        assert stop.wait(30) is True

        assert time.monotonic() - started < 10
        assert stop.signals == [signal.SIGTERM]
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def child_ignoring_sigterm() -> subprocess.Popen[bytes]:
    """A child process that ignores SIGTERM, ready once this returns."""
    child = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    return child


def test_a_second_signal_kills_a_child_that_ignores_sigterm():
    child = child_ignoring_sigterm()
    try:
        stop = StopRequest()
        stop.signals.append(signal.SIGTERM)  # the first signal: the one that began the stop
        threading.Timer(0.3, stop.signals.append, (signal.SIGTERM,)).start()
        started = time.monotonic()

        _stop_child(child, stop)

        assert time.monotonic() - started < STOP_TIMEOUT - 1
        assert child.returncode == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(monkeypatch):
    monkeypatch.setattr("devserver.__main__.STOP_TIMEOUT", 0.5)
    child = child_ignoring_sigterm()
    try:
        _stop_child(child, StopRequest())

        assert child.returncode == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_signal_during_the_exit_does_not_replace_the_exit_code(tmp_path) -> None:
    """Once the stop is done, `_exit` ends the process with its code even if a SIGTERM lands
    while it exits: before, the interpreter's own exit reset the handlers to the default, and
    the test of a second signal during the stop saw -15 now and then."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "exit_with_a_signal.py"
    script.write_text(
        "import logging, os, signal\n"
        "import devserver.__main__ as devserver\n"
        # what the interpreter's exit leaves in place: the default, which dies of a SIGTERM
        "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
        "real_shutdown = logging.shutdown\n"
        "def shutdown_with_a_signal():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # a second Ctrl-C / SIGTERM, during the exit\n"
        "    real_shutdown()\n"
        "logging.shutdown = shutdown_with_a_signal\n"
        "devserver._exit(3)\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(script)], cwd=root, env={"PYTHONPATH": str(root)}, timeout=60
    )
    assert result.returncode == 3
