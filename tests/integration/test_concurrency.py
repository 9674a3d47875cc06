"""The service under the races that break token services, over real HTTP, on the real engine.

Each server is `chalice local --no-autoreload` (docs/contributors.md, "Local server") run from
the virtualenv, against DynamoDB Local and a fake WeChat served over HTTP by this process.
Requests start together at a `threading.Barrier`; `chalice local` serves each in its own
thread. Every count is asserted from the table's contents, read back from DynamoDB Local, not
from responses alone.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.login import user_id_for
from chalicelib.store import create_table, login_pk, session_sk, user_pk
from chalicelib.tokens import refresh as refresh_tokens
from devserver.__main__ import chalice_local_command, free_port, pdeathsig_setter
from devserver.fake_wechat import FakeWeChat, openid_for, unionid_for
from tests.integration.dynamodb_local import dynamodb_client

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
APPID = "wx-concurrency-appid"
SECRET = "concurrency-app-secret"
START_TIMEOUT = 60.0
HTTP_TIMEOUT = 30.0


# -- helpers ----------------------------------------------------------------------------------


def sha256(token: str) -> bytes:
    """The stored hash of a refresh token: SHA-256 of its body (all but the MAC)."""
    return refresh_tokens.parse(token).hash


def together[T](server: Server, count: int, call: Callable[[Client, int], T]) -> list[T]:
    """Run `call(client, 0..count-1)` in `count` threads, released at the same moment.

    Each thread has its own keep-alive connection, opened (and accepted by the server)
    before the barrier: `chalice local` listens with a backlog of 5, and a burst of new
    connections would test the kernel's accept queue instead of the service.
    """
    clients = [server.client() for _ in range(count)]
    for client in clients:
        client.warm_up()
    barrier = threading.Barrier(count)

    def run(i: int) -> T:
        barrier.wait(timeout=HTTP_TIMEOUT)
        return call(clients[i], i)

    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(run, range(count)))
    finally:
        for client in clients:
            client.close()


@dataclass
class Table:
    """One table of DynamoDB Local, read directly (never through the service)."""

    client: Any
    name: str

    def items(self, pk: str | None = None) -> list[dict[str, Any]]:
        pages = self.client.get_paginator("scan").paginate(TableName=self.name, ConsistentRead=True)
        items = [item for page in pages for item in page["Items"]]
        if pk is not None:
            items = [item for item in items if item["pk"]["S"] == pk]
        return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))

    def item(self, pk: str, sk: str) -> dict[str, Any] | None:
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        return self.client.get_item(TableName=self.name, Key=key, ConsistentRead=True).get("Item")

    def session(self, user_id: str, session_id: str) -> dict[str, Any]:
        item = self.item(user_pk(user_id), session_sk(session_id))
        assert item is not None, "session item missing"
        return item

    def sessions(self, user_id: str) -> list[dict[str, Any]]:
        return [i for i in self.items(user_pk(user_id)) if i["sk"]["S"].startswith("SESSION#")]

    def profiles(self, user_id: str) -> list[dict[str, Any]]:
        return [i for i in self.items(user_pk(user_id)) if i["sk"]["S"] == "PROFILE"]


def new_table(endpoint: str) -> Table:
    table = Table(dynamodb_client(endpoint), f"wxauth-race-{uuid.uuid4().hex[:10]}")
    create_table(table.client, table.name)
    return table


class Server:
    """`chalice local` in its own process group, stopped by PID (group) at the end."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"chalice-local-{self.port}.log"
        self._client = Client(self.url)
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WECHAT_", "AUTH_"))
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                chalice_local_command(self.port),
                cwd=REPO_ROOT,
                env={**base, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, signalled by stop()
                preexec_fn=pdeathsig_setter(),  # and SIGTERM if this process dies first
            )  # fmt: skip
        atexit.register(self.stop)

    def wait_until_serving(self) -> None:
        """Until JWKS answers 200 (which also builds the service graph); fail with the log."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"chalice local exited with {self.process.returncode}:\n{self.output()}"
                )
            with contextlib.suppress(requests.ConnectionError):
                response = requests.get(self.url + "/.well-known/jwks.json", timeout=5)
                assert response.status_code == 200, response.text
                return
            time.sleep(0.1)
        pytest.fail(f"chalice local did not serve within {START_TIMEOUT} s:\n{self.output()}")

    def stop(self) -> None:
        atexit.unregister(self.stop)
        self._client.close()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self) -> Client:
        """A new client on its own connection (see `together`)."""
        return Client(self.url)

    # One request at a time, on the server's own client.

    def post(self, path: str, body: dict[str, Any] | None = None, token: str | None = None):
        return self._client.post(path, body, token)

    def login(self, code: str) -> dict[str, Any]:
        return self._client.login(code)

    def refresh(self, refresh_token: str) -> requests.Response:
        return self._client.refresh(refresh_token)

    def verify(self, access_token: str) -> dict[str, Any]:
        return self._client.verify(access_token)

    def me(self, access_token: str) -> requests.Response:
        return self._client.me(access_token)


class Client:
    """One HTTP client of a server, on its own keep-alive connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def warm_up(self) -> None:
        assert self.http.get(self.url + "/.well-known/jwks.json", timeout=HTTP_TIMEOUT).ok

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, body: dict[str, Any] | None = None, token: str | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post(self.url + path, json=body, headers=headers, timeout=HTTP_TIMEOUT)

    def login(self, code: str) -> dict[str, Any]:
        response = self.post("/auth/login", {"code": code})
        assert response.status_code == 200, response.text
        return response.json()

    def refresh(self, refresh_token: str) -> requests.Response:
        return self.post("/auth/refresh", {"refresh_token": refresh_token})

    def verify(self, access_token: str) -> dict[str, Any]:
        response = self.post("/auth/verify", {"token": access_token})
        assert response.status_code == 200, response.text
        return response.json()

    def me(self, access_token: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {access_token}"}
        return self.http.get(self.url + "/me", headers=headers, timeout=HTTP_TIMEOUT)


class CuttableProxy:
    """A TCP forwarder to DynamoDB Local: `cut()` makes it unreachable (connections refused,
    open ones dropped) while DynamoDB Local itself keeps running and can still be read."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").rsplit(":", 1)
        self._target = (host, int(port))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._acceptor: threading.Thread | None = None

    def restore(self) -> None:
        if self._acceptor is not None:
            return
        listener = socket.create_server(("127.0.0.1", self.port), backlog=128)
        listener.settimeout(0.05)
        self._stopping.clear()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        if self._acceptor is None:
            return
        self._stopping.set()
        self._acceptor.join()
        self._acceptor = None
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while not self._stopping.is_set():
                try:
                    downstream, _ = listener.accept()
                except TimeoutError:
                    continue
                downstream.settimeout(None)
                upstream = socket.create_connection(self._target)
                with self._lock:
                    self._open.update((downstream, upstream))
                for src, dst in ((downstream, upstream), (upstream, downstream)):
                    threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wechat() -> Iterator[FakeWeChat]:
    fake = FakeWeChat(APPID, SECRET)
    fake.start("127.0.0.1", 0)
    try:
        yield fake
    finally:
        fake.stop()


@dataclass
class Deployment:
    server: Server
    table: Table


@pytest.fixture(scope="module")
def deploy(
    dynamodb_local_endpoint: str,
    wechat: FakeWeChat,
    key_set_json: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Deployment]]:
    """Start servers (each with a fresh table); all of them are stopped when the module ends.

    `deploy(grace=.., dynamodb=..)`: `dynamodb` is the endpoint the server uses (default
    DynamoDB Local itself); the table is always created and read on DynamoDB Local.
    """
    servers: list[Server] = []

    def start(*, grace: int = 30, dynamodb: str | None = None) -> Deployment:
        tmp = tmp_path_factory.mktemp("chalice-local")
        keys = tmp / "signing-keys.json"
        keys.write_text(key_set_json)
        table = new_table(dynamodb_local_endpoint)
        env = {
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb or dynamodb_local_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AUTH_TABLE_NAME": table.name,
            "AUTH_ISSUER": "https://auth.concurrency.test",
            "AUTH_SIGNING_KEYS_FILE": str(keys),
            "AUTH_REFRESH_GRACE": str(grace),
            "WECHAT_API_BASE": wechat.url,
            "WECHAT_APPID": APPID,
            "WECHAT_SECRET": SECRET,
        }
        server = Server(tmp, env)
        servers.append(server)
        server.wait_until_serving()
        return Deployment(server, table)

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def main(deploy: Callable[..., Deployment]) -> Deployment:
    """The default settings: a 30 s grace window."""
    return deploy()


@pytest.fixture(scope="module")
def strict(deploy: Callable[..., Deployment]) -> Deployment:
    """No grace window: every second presentation of a rotated token is reuse."""
    return deploy(grace=0)


def ids(tokens: dict[str, Any]) -> tuple[str, str]:
    """(user id, session id) of a token response (refresh tokens: `<uid>.<sid>.<gen>.<...>`)."""
    user_id, session_id = tokens["refresh_token"].split(".")[:2]
    assert user_id == tokens.get("user", {}).get("id", user_id)
    return user_id, session_id


def assert_refused(response: requests.Response) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_grant"
    assert "access_token" not in body and "refresh_token" not in body


# -- refresh races ----------------------------------------------------------------------------


def test_50_concurrent_refreshes_converge_on_one_rotation(main: Deployment) -> None:
    server, table = main.server, main.table
    tokens = server.login("refresh50.1")
    user_id, session_id = ids(tokens)
    old = tokens["refresh_token"]

    responses = together(server, 50, lambda c, _: c.refresh(old))

    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    (new,) = {b["refresh_token"] for b in bodies}  # every response carries the same new token
    assert new != old
    # Exactly one rotation: the current token came from `old`, and nothing rotated it since.
    item = table.session(user_id, session_id)
    assert bytes(item["current_hash"]["B"]) == sha256(new)
    assert bytes(item["previous_hash"]["B"]) == sha256(old)
    assert "revoked_at" not in item and "rotated_at" in item
    assert len(table.sessions(user_id)) == 1
    verdicts = together(server, 50, lambda c, i: c.verify(bodies[i]["access_token"]))
    assert all(v["valid"] and v["sid"] == session_id for v in verdicts), verdicts
    # The converged token is the current one: it rotates in turn.
    assert server.refresh(new).status_code == 200


def assert_session_dead(server: Server, access_tokens: list[str], refresh_tokens: list[str]):
    for refresh_token in refresh_tokens:
        assert_refused(server.refresh(refresh_token))
    for access_token in access_tokens:
        assert server.verify(access_token) == {"valid": False, "reason": "revoked"}
        me = server.me(access_token)
        assert me.status_code == 401 and me.json()["error"] == "invalid_token"


def test_rotated_token_presented_50_times_after_grace_revokes_the_session(
    strict: Deployment,
) -> None:
    server, table = strict.server, strict.table
    tokens = server.login("reuse50.1")
    user_id, session_id = ids(tokens)
    rotated = server.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    current = rotated.json()

    responses = together(server, 50, lambda c, _: c.refresh(tokens["refresh_token"]))

    for response in responses:
        assert_refused(response)
    item = table.session(user_id, session_id)
    assert item["revoked_reason"] == {"S": "refresh_token_reuse"} and "revoked_at" in item
    assert "sealed_current" not in item
    assert bytes(item["current_hash"]["B"]) == sha256(current["refresh_token"])  # not rotated
    assert_session_dead(
        server,
        [tokens["access_token"], current["access_token"]],
        [tokens["refresh_token"], current["refresh_token"]],
    )


def test_50_concurrent_refreshes_without_grace_revoke_the_session(strict: Deployment) -> None:
    """With AUTH_REFRESH_GRACE=0 a concurrent refresh is reuse: no response keeps working."""
    server, table = strict.server, strict.table
    tokens = server.login("nograce50.1")
    user_id, session_id = ids(tokens)

    responses = together(server, 50, lambda c, _: c.refresh(tokens["refresh_token"]))

    winners = [r for r in responses if r.status_code == 200]
    for response in responses:
        if response.status_code != 200:
            assert_refused(response)
    assert len(winners) <= 1
    item = table.session(user_id, session_id)
    assert item["revoked_reason"] == {"S": "refresh_token_reuse"}
    handed_out = [r.json() for r in winners]
    assert_session_dead(
        server,
        [tokens["access_token"], *(b["access_token"] for b in handed_out)],
        [tokens["refresh_token"], *(b["refresh_token"] for b in handed_out)],
    )


# -- login races ------------------------------------------------------------------------------


def test_20_concurrent_first_logins_create_one_user(main: Deployment, wechat: FakeWeChat) -> None:
    server, table = main.server, main.table
    user = f"union-first-{uuid.uuid4().hex[:6]}"  # a unionid is linked too
    codes = [f"{user}.{i}" for i in range(20)]

    responses = together(server, 20, lambda c, i: c.post("/auth/login", {"code": codes[i]}))

    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    user_id = user_id_for(APPID, openid_for(APPID, user))
    assert {b["user"]["id"] for b in bodies} == {user_id}
    assert sum(b["user"]["is_new"] for b in bodies) == 1
    assert [wechat.calls_for(code) for code in codes] == [1] * 20
    (profile,) = table.profiles(user_id)  # exactly one user item
    assert profile["openid"] == {"S": openid_for(APPID, user)}
    assert profile["unionid"] == {"S": unionid_for(user)}
    links = table.items(f"UNIONID#{unionid_for(user)}")
    # the unionid's owner (chalicelib/identity/graph.py) and its one link, both to that user
    assert [(link["sk"]["S"], link["user_id"]["S"]) for link in links] == [
        ("OWNER", user_id),
        (f"USER#{user_id}", user_id),
    ]
    sessions = table.sessions(user_id)
    assert len(sessions) == 20
    assert {s["session_id"]["S"] for s in sessions} == {ids(b)[1] for b in bodies}


def test_20_concurrent_posts_of_one_code_exchange_it_once(
    main: Deployment, wechat: FakeWeChat
) -> None:
    server, table = main.server, main.table
    user = f"samecode-{uuid.uuid4().hex[:6]}"
    code = f"{user}.1"

    responses = together(server, 20, lambda c, _: c.post("/auth/login", {"code": code}))

    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert wechat.calls_for(code) == 1
    # one session: the same refresh token for all (each replay mints its own access token)
    (tokens,) = {(b["user"]["id"], b["refresh_token"]) for b in bodies}
    user_id, session_id = ids(bodies[0])
    assert len(table.profiles(user_id)) == 1
    (session,) = table.sessions(user_id)  # exactly one session
    assert session["session_id"] == {"S": session_id}
    assert bytes(session["current_hash"]["B"]) == sha256(tokens[1])
    code_hash = hashlib.sha256(f"{APPID}\x00{code}".encode()).hexdigest()
    claim = table.item(login_pk(code_hash), "LOGIN")
    assert claim["session_id"] == {"S": session_id} and "sealed_response" in claim


# -- logout racing a refresh ------------------------------------------------------------------


@pytest.mark.parametrize("order", ["logout-first", "refresh-first", "together"])
def test_logout_racing_a_refresh_leaves_the_session_revoked(main: Deployment, order: str) -> None:
    server, table = main.server, main.table
    user = f"race-{order}-{uuid.uuid4().hex[:6]}"
    rounds = 10 if order == "together" else 1
    logins = [server.login(f"{user}.{i}") for i in range(rounds)]

    def logout(client: Client, i: int) -> requests.Response:
        return client.post("/auth/logout", {}, token=logins[i]["access_token"])

    def refresh(client: Client, i: int) -> requests.Response:
        return client.refresh(logins[i]["refresh_token"])

    client = server.client()
    if order == "logout-first":
        outcomes = [(logout(client, 0), refresh(client, 0))]
    elif order == "refresh-first":
        refreshed = refresh(client, 0)
        outcomes = [(logout(client, 0), refreshed)]
    else:  # even threads refresh, odd ones log out, two per session
        answers = together(
            server, 2 * rounds, lambda c, i: (logout if i % 2 else refresh)(c, i // 2)
        )
        outcomes = [(answers[2 * i + 1], answers[2 * i]) for i in range(rounds)]

    for tokens, (logged_out, refreshed) in zip(logins, outcomes, strict=True):
        assert logged_out.status_code == 204, logged_out.text
        assert refreshed.status_code in (200, 400), refreshed.text
        user_id, session_id = ids(tokens)
        item = table.session(user_id, session_id)
        assert item["revoked_reason"] == {"S": "logout"} and "revoked_at" in item
        access, refresh_tokens = [tokens["access_token"]], [tokens["refresh_token"]]
        if refreshed.status_code == 200:
            body = refreshed.json()
            access.append(body["access_token"])
            refresh_tokens.append(body["refresh_token"])
        else:
            assert_refused(refreshed)
        assert_session_dead(server, access, refresh_tokens)
    assert all(s.get("revoked_at") for s in table.sessions(ids(logins[0])[0]))


# -- DynamoDB unreachable ---------------------------------------------------------------------


@dataclass
class Outage:
    server: Server
    table: Table
    proxy: CuttableProxy


@pytest.fixture(scope="module")
def outage(deploy: Callable[..., Deployment], dynamodb_local_endpoint: str) -> Iterator[Outage]:
    """A server whose DynamoDB is reached through a proxy the test can cut."""
    proxy = CuttableProxy(dynamodb_local_endpoint)
    proxy.restore()
    try:
        deployment = deploy(dynamodb=proxy.url)
        yield Outage(deployment.server, deployment.table, proxy)
    finally:
        proxy.cut()


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert "access_token" not in response.json()


def test_unreachable_dynamodb_is_503_and_writes_nothing(outage: Outage, wechat: FakeWeChat) -> None:
    server, table, proxy = outage.server, outage.table, outage.proxy
    tokens = server.login("outage-a.1")
    before = table.items()

    proxy.cut()
    try:
        answers = [
            server.post("/auth/login", {"code": "outage-b.1"}),
            server.refresh(tokens["refresh_token"]),
            server.post("/auth/logout", {}, token=tokens["access_token"]),
        ]
    finally:
        proxy.restore()

    for response in answers:
        assert_unavailable(response)
    assert wechat.calls_for("outage-b.1") == 0  # the code was not spent
    assert table.items() == before
    # DynamoDB is back: the client's retry with the same token rotates normally.
    retried = server.refresh(tokens["refresh_token"])
    assert retried.status_code == 200, retried.text
    assert server.post("/auth/login", {"code": "outage-b.1"}).status_code == 200


def test_dynamodb_lost_during_a_login_leaves_no_user_and_no_session(
    outage: Outage, wechat: FakeWeChat
) -> None:
    server, table, proxy = outage.server, outage.table, outage.proxy
    code = "slow-1000.outage-mid.1"  # WeChat takes 1 s: DynamoDB goes away meanwhile
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(server.post, "/auth/login", {"code": code})
        deadline = time.monotonic() + 10
        while wechat.calls_for(code) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        proxy.cut()
        try:
            response = pending.result(timeout=HTTP_TIMEOUT)
        finally:
            proxy.restore()

    assert wechat.calls_for(code) == 1
    assert_unavailable(response)
    user_id = user_id_for(APPID, openid_for(APPID, "outage-mid"))
    assert table.items(user_pk(user_id)) == []  # neither the user nor a session
    code_hash = hashlib.sha256(f"{APPID}\x00{code}".encode()).hexdigest()
    # The claim could not be released either: it holds the code until its lease passes
    # (WeChat has spent the code anyway), and there is no result to replay.
    claim = table.item(login_pk(code_hash), "LOGIN")
    assert claim is not None and "sealed_response" not in claim and "session_id" not in claim
