"""`python -m devserver` (`make run`) over real processes: it serves, keeps settings it is given,
and stops everything it started on SIGTERM/SIGINT, or when it is killed itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from devserver.__main__ import accepts_connections, free_port
from devserver.fake_wechat import FakeWeChat, openid_for

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
JWKS_PATH = "/.well-known/jwks.json"
START_TIMEOUT = 90.0
READY_LINE = "ready (Ctrl-C stops everything)"
STOP_TIMEOUT = 10.0

# Settings the devserver fills in or decides on: the runner's own values must not leak in.
MANAGED_ENV = (
    "PORT",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "WECHAT_APPID",
    "WECHAT_SECRET",
    "WECHAT_SECRET_ARN",
    "WECHAT_API_BASE",
    "WECHAT_OPEN_BASE",
    "AUTH_TABLE_NAME",
    "AUTH_ISSUER",
    "AUTH_SIGNING_KEYS_FILE",
    "AUTH_SIGNING_KEYS_ARN",
    "AUTH_EVENT_BUS",
    "AUTH_EVENT_LOG",
)


@dataclass
class DevServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def child_pids(pid: int) -> list[int]:
    """Live children of `pid`, from /proc (no psutil)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        if int(ppid) == pid and not is_gone(int(entry.name)):
            children.append(int(entry.name))
    return children


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def is_gone(pid: int) -> bool:
    """True if `pid` no longer runs: no /proc entry, or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def start_devserver(tmp: Path, extra_env: Mapping[str, str] | None = None) -> DevServer:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in MANAGED_ENV}
    env["PORT"] = str(port)
    env["AUTH_SIGNING_KEYS_FILE"] = str(tmp / "signing-keys.json")
    env.update(extra_env or {})
    log = tmp / f"devserver-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devserver"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return DevServer(process, port, log)


def wait_until_serving(server: DevServer) -> requests.Response:
    """Wait until chalice local answers JWKS_PATH; fail with the devserver's output if it dies."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"devserver exited with {server.process.returncode} before serving:\n"
                + server.output()
            )
        try:
            response = requests.get(server.url + JWKS_PATH, timeout=5)
        except requests.ConnectionError:
            time.sleep(0.2)
            continue
        # The banner follows the first accepted connection by up to one poll of the devserver's
        # loop (0.1 s): a test reading it must not race that poll.
        if not wait_for(lambda: READY_LINE in server.output(), 5):
            pytest.fail("devserver served but never printed its banner:\n" + server.output())
        return response
    pytest.fail(f"devserver did not serve within {START_TIMEOUT} s:\n" + server.output())


def app_has_route(path: str) -> bool:
    app = REPO_ROOT / "app.py"
    return app.exists() and path in app.read_text()


def assert_jwks_ok_if_routed(response: requests.Response) -> None:
    if app_has_route(JWKS_PATH):
        assert response.status_code == 200, response.text
        assert "keys" in response.json()


def stop(server: DevServer, signum: int = signal.SIGTERM) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signum)
        try:
            server.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[DevServer]:
    """A devserver with the embedded DynamoDB and fake WeChat, serving."""
    server = start_devserver(tmp_path)
    try:
        assert_jwks_ok_if_routed(wait_until_serving(server))
        yield server
    finally:
        stop(server)


def chalice_child(server: DevServer) -> int:
    children = [p for p in child_pids(server.process.pid) if "local" in cmdline(p)]
    assert len(children) == 1, f"expected one chalice local child, got {children}"
    assert "devserver.chalice_local" in cmdline(children[0])
    return children[0]


def assert_stopped(running: DevServer, child: int) -> None:
    """The devserver exited 0 within STOP_TIMEOUT, chalice local is gone, the port closed."""
    try:
        returncode = running.process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("devserver did not exit within 10 s:\n" + running.output())
    assert returncode == 0, running.output()
    assert wait_for(lambda: is_gone(child), 5), "chalice local outlived the devserver"
    assert not accepts_connections(running.port)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_devserver_and_chalice_local(running: DevServer, signum: int) -> None:
    child = chalice_child(running)

    running.process.send_signal(signum)

    assert_stopped(running, child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_killed_devserver_takes_chalice_local_with_it(running: DevServer) -> None:
    child = chalice_child(running)

    running.process.kill()
    running.process.wait()

    assert wait_for(lambda: is_gone(child), STOP_TIMEOUT), "chalice local outlived SIGKILL"
    assert wait_for(lambda: not accepts_connections(running.port), 5)


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in MANAGED_ENV}
        env["PORT"] = str(port)
        result = subprocess.run(
            [sys.executable, "-m", "devserver"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr


# -- settings given in the environment win ----------------------------------------------------

GIVEN_APPID = "wx-given-appid"
GIVEN_SECRET = "given-secret"
GIVEN_TABLE = "wxauth-given"
GIVEN_ISSUER = "https://issuer.example.test"


@dataclass
class GivenSetup:
    server: DevServer
    wechat: FakeWeChat
    dynamodb_endpoint: str

    def dynamodb(self) -> DynamoDBClient:
        return boto3.client(
            "dynamodb",
            endpoint_url=self.dynamodb_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="module")
def given(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GivenSetup]:
    """A devserver started with WeChat, DynamoDB, table and issuer set by the caller."""
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    wechat = FakeWeChat(GIVEN_APPID, GIVEN_SECRET)
    wechat.start()
    server = start_devserver(
        tmp_path_factory.mktemp("devserver-given"),
        {
            "WECHAT_API_BASE": wechat.url,
            "WECHAT_APPID": GIVEN_APPID,
            "WECHAT_SECRET": GIVEN_SECRET,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AUTH_TABLE_NAME": GIVEN_TABLE,
            "AUTH_ISSUER": GIVEN_ISSUER,
        },
    )
    try:
        wait_until_serving(server)
        yield GivenSetup(server, wechat, endpoint)
    finally:
        stop(server)
        wechat.stop()
        moto.stop()


def test_given_dynamodb_endpoint_gets_the_table(given: GivenSetup) -> None:
    assert GIVEN_TABLE in given.dynamodb().list_tables()["TableNames"]
    assert "(AWS_ENDPOINT_URL_DYNAMODB)" in given.server.output()


def test_given_wechat_and_dynamodb_are_used_for_login(given: GivenSetup) -> None:
    before = given.wechat.calls

    response = requests.post(
        given.server.url + "/auth/login", json={"code": "given-user.1"}, timeout=30
    )

    assert response.status_code == 200, response.text
    assert response.json()["user"]["is_new"] is True
    assert given.wechat.calls_for("given-user.1") == 1
    assert given.wechat.calls == before + 1
    items = given.dynamodb().scan(TableName=GIVEN_TABLE)["Items"]
    assert any(
        item.get("openid", {}).get("S") == openid_for(GIVEN_APPID, "given-user") for item in items
    )


def test_phone_binding_over_http_with_the_fake_wechat(given: GivenSetup) -> None:
    """POST /auth/phone end to end: chalice local, the placeholder broker, the fake WeChat."""
    url = given.server.url

    def login(code: str) -> str:
        response = requests.post(url + "/auth/login", json={"code": code}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def bind(token: str, code: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return requests.post(url + "/auth/phone", json={"code": code}, headers=headers, timeout=30)

    carol, dave = login("phone-carol.1"), login("phone-dave.1")
    code = "phone.phone-carol.13800138000"

    first = bind(carol, code)
    again = bind(carol, code)

    assert first.status_code == 200, first.text
    assert first.json()["phone"]["phone_number"] == "+8613800138000"
    assert again.json() == first.json()
    assert given.wechat.phone_calls_for(code) == 1  # the retry did not pay again
    me = requests.get(url + "/me", headers={"Authorization": f"Bearer {carol}"}, timeout=30)
    assert me.json()["phone"] == first.json()["phone"]
    stolen = bind(dave, "phone.phone-carol.13900139000")  # WeChat's openid check
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    taken = bind(dave, "phone.phone-dave.13800138000")
    assert taken.status_code == 409 and taken.json()["error"] == "phone_in_use"
    assert "13800138000" not in given.server.output()


def test_given_issuer_is_kept(given: GivenSetup) -> None:
    response = requests.get(given.server.url + "/.well-known/openid-configuration", timeout=30)

    assert response.status_code == 200, response.text
    assert response.json()["issuer"] == GIVEN_ISSUER


# -- concurrency, answers outside the routes, stopping twice ----------------------------------

BURST = 100


def _one_request(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _burst(port: int, raw: bytes, count: int) -> tuple[list[bytes], list[str]]:
    """`count` connections opened at once (released together at a barrier), one request each."""
    barrier = threading.Barrier(count)
    answers: list[bytes] = []
    failures: list[str] = []

    def connect() -> None:
        barrier.wait(30)
        try:
            answers.append(_one_request(port, raw))
        except OSError as e:
            failures.append(repr(e))

    threads = [threading.Thread(target=connect) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers, failures


def test_auth_events_are_printed_to_the_log(running: DevServer) -> None:
    """AUTH_EVENT_LOG is the local server's default: each event a JSON line, no bus needed."""
    code = "eve.1"
    response = requests.post(f"{running.url}/auth/login", json={"code": code}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()

    def events() -> list[dict]:
        lines = [line for line in running.output().splitlines() if '"auth_event"' in line]
        return [json.loads(line[line.index("{") :]) for line in lines]

    assert wait_for(lambda: len(events()) == 2, 5), running.output()
    created, logged_in = events()
    assert created["detail-type"] == "UserCreated"
    assert logged_in["detail-type"] == "UserLoggedIn"
    assert logged_in["detail"]["user_id"] == body["user"]["id"]
    assert logged_in["detail"]["version"] == 1
    for secret in (body["access_token"], body["refresh_token"], code):
        assert secret not in json.dumps(events())


def test_a_burst_of_new_connections_is_all_answered(running: DevServer) -> None:
    """BURST connections opened at once, twice: with socketserver's backlog of 5, 7 to 11 of
    100 were reset."""
    raw = f"GET {JWKS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    for _ in range(2):
        answers, failures = _burst(running.port, raw, BURST)

        assert failures == []
        assert len(answers) == BURST
        assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers)


def test_unknown_paths_and_other_methods_over_http(running: DevServer) -> None:
    secret = "Bearer eyJTHIS-MUST-NOT-BE-ECHOED.eyJ9.c2ln"
    with requests.Session() as http:  # one keep-alive connection for every request
        for method, path, status, code, allow in [
            ("GET", "/nope", 404, "not_found", None),
            ("POST", "/auth/login/extra", 404, "not_found", None),
            ("GET", "/auth/login", 405, "method_not_allowed", "POST"),
            ("OPTIONS", "/me", 405, "method_not_allowed", "GET, PATCH, POST"),
            ("PROPFIND", "/me", 405, "method_not_allowed", "GET, PATCH, POST"),
            ("HEAD", "/.well-known/jwks.json", 405, "method_not_allowed", "GET"),
            ("GET", JWKS_PATH, 200, None, None),  # the connection is still in step after HEAD
        ]:
            response = http.request(
                method, running.url + path, headers={"authorization": secret}, timeout=30
            )

            assert response.status_code == status, (method, path, response.text)
            assert "THIS-MUST-NOT-BE-ECHOED" not in response.text
            if code is None:
                continue
            assert response.headers["Cache-Control"] == "no-store"
            assert response.headers.get("Allow") == allow
            if method != "HEAD":
                assert response.json() == {
                    "error": code,
                    "error_description": response.json()["error_description"],
                }
    # Chalice answered an unknown path with a 403 quoting Authorization (ASCII-encoded: a
    # non-ASCII one broke the connection)
    answer = _one_request(
        running.port,
        b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Authorization: Basic \xc3\xa9\xe6\xbc\xa2\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 404 "), answer
    assert b'"error":"not_found"' in answer
    assert b"\xc3\xa9" not in answer and b"Authorization" not in answer


def _embedded_ports(server: DevServer) -> list[int]:
    """The ports of the embedded moto and fake WeChat, from the devserver's banner."""
    ports = []
    for line in server.output().splitlines():
        if line.strip().startswith(("DynamoDB:", "WeChat:")):
            ports.append(int(line.split("http://127.0.0.1:", 1)[1].split()[0].split("/")[0]))
    assert len(ports) == 2, server.output()
    return ports


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGTERM)],
    ids=["SIGTERM-SIGTERM", "SIGINT-SIGTERM"],
)
def test_a_second_signal_during_the_stop(running: DevServer, signals: tuple[int, int]) -> None:
    """A second signal while stopping neither deadlocks nor leaves anything running: the
    devserver exits 0 within the bound, and chalice local, moto and the fake WeChat are gone."""
    child = chalice_child(running)
    embedded = _embedded_ports(running)
    first, second = signals

    running.process.send_signal(first)
    time.sleep(0.05)  # into the stop, not before it
    running.process.send_signal(second)

    assert_stopped(running, child)
    assert not [port for port in embedded if accepts_connections(port)]
