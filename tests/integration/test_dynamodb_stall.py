"""A refresh while DynamoDB is stalled: a bounded 503, then the client's retry keeps the session.

DynamoDB Local here is this module's own process (SIGSTOP would stall every other test's
server), paused with SIGSTOP while a refresh is in flight: it still accepts connections (the
kernel's backlog) and never answers, and when SIGCONT resumes it, it may apply the rotations
that the service already gave up on. The app runs in this process, served over real HTTP by
Chalice's local server, built by `runtime.build` with its own botocore clients and an injected
clock: the client's retry "after Retry-After" is the clock moved on, never a sleep.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import BotoCoreError, ClientError
from chalice.config import Config as ChaliceConfig
from chalice.local import LocalDevServer, create_local_server

import app as wxauth
from chalicelib import budgets, runtime
from chalicelib.errors import StoreUnavailable
from chalicelib.settings import Settings, minimum_refresh_grace
from chalicelib.store import create_table, session_sk, user_pk
from chalicelib.tokens import refresh as refresh_tokens
from devserver.__main__ import free_port
from devserver.fake_wechat import FakeWeChat
from tests.conftest import START, FakeClock
from tests.integration.dynamodb_local import DynamoDBLocal, dynamodb_client

pytestmark = pytest.mark.integration

APPID = "wx-stall-appid"
SECRET = "stall-app-secret"
HTTP_TIMEOUT = 60.0  # longer than any wait under test: the server's bound is what is measured
# What a noisy 2-core machine may add to a measured wait (scheduling, a JVM resuming).
MARGIN = 3.0


def sha256(token: str) -> bytes:
    """The stored hash of a refresh token: SHA-256 of its body (all but the MAC)."""
    return refresh_tokens.parse(token).hash


@dataclass
class Stack:
    url: str
    clock: FakeClock
    ddb: DynamoDBLocal
    table: Any  # a botocore client of DynamoDB Local, for reading the table directly
    table_name: str

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(self.url + path, json=body, timeout=HTTP_TIMEOUT)

    def session_item(self, user_id: str, session_id: str) -> dict[str, Any]:
        key = {"pk": {"S": user_pk(user_id)}, "sk": {"S": session_sk(session_id)}}
        item = self.table.get_item(TableName=self.table_name, Key=key, ConsistentRead=True)
        return item["Item"]

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        """DynamoDB Local paused (SIGSTOP) inside the block, always resumed (SIGCONT) after it."""
        assert self.ddb.pid is not None
        os.killpg(self.ddb.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.ddb.pid, signal.SIGCONT)

    def wait_until_dynamodb_answers(self) -> None:
        """After SIGCONT: until DynamoDB Local answers again (it may first serve its backlog)."""
        probe = dynamodb_client(
            self.ddb.endpoint_url,
            connect_timeout=1,
            read_timeout=2,
            retries={"total_max_attempts": 1},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                probe.list_tables(Limit=1)
                return
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@pytest.fixture
def stack(tmp_path: Path, key_set_json: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    ddb = DynamoDBLocal()
    fake = FakeWeChat(APPID, SECRET)
    server: LocalDevServer | None = None
    thread: threading.Thread | None = None
    ddb.install()
    ddb.start()
    try:
        table = dynamodb_client(ddb.endpoint_url)
        table_name = f"wxauth-stall-{uuid.uuid4().hex[:10]}"
        create_table(table, table_name)
        keys = tmp_path / "signing-keys.json"
        keys.write_text(key_set_json)
        # The app's own DynamoDB client, made by runtime.build as in Lambda, goes to this
        # DynamoDB Local (botocore's endpoint override; fake credentials from conftest).
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", ddb.endpoint_url)
        settings = Settings.from_env(
            {
                "WECHAT_APPID": APPID,
                "WECHAT_SECRET": SECRET,
                "WECHAT_API_BASE": fake.start("127.0.0.1", 0),
                "AUTH_TABLE_NAME": table_name,
                "AUTH_ISSUER": "https://auth.stall.test",
                "AUTH_SIGNING_KEYS_FILE": str(keys),
                # The shortest grace the settings accept: the rule is tested at its edge.
                "AUTH_REFRESH_GRACE": str(minimum_refresh_grace()),
            }
        )
        clock = FakeClock(START)
        monkeypatch.setattr(wxauth, "_services", runtime.build(settings, clock=clock))
        port = free_port()
        server = create_local_server(
            wxauth.app, ChaliceConfig.create(chalice_stage="local"), "127.0.0.1", port
        )
        thread = threading.Thread(target=server.server.serve_forever, daemon=True)
        thread.start()
        yield Stack(f"http://127.0.0.1:{port}", clock, ddb, table, table_name)
    finally:
        if server is not None:
            server.shutdown()
            server.server.server_close()
        if thread is not None:
            thread.join(10)
        fake.stop()
        if ddb.pid is not None:  # never leave it stopped: SIGTERM waits for a SIGCONT
            with contextlib.suppress(ProcessLookupError):
                os.killpg(ddb.pid, signal.SIGCONT)
        ddb.stop()  # SIGTERM, then SIGKILL: the java process is gone after this


def test_a_refresh_while_dynamodb_is_stalled_is_a_bounded_503_and_the_retry_keeps_the_session(
    stack: Stack,
) -> None:
    login = stack.post("/auth/login", {"code": "stall.1"})
    assert login.status_code == 200, login.text
    tokens = login.json()
    old = tokens["refresh_token"]
    user_id, session_id = tokens["user"]["id"], old.split(".")[1]

    with stack.stalled():
        started = time.monotonic()
        stalled = stack.post("/auth/refresh", {"refresh_token": old})
        elapsed = time.monotonic() - started

    # 503 temporarily_unavailable with Retry-After, within the bound the grace rule relies on.
    assert stalled.status_code == 503, stalled.text
    assert stalled.json()["error"] == "temporarily_unavailable"
    assert "refresh_token" not in stalled.json() and "access_token" not in stalled.json()
    retry_after = int(stalled.headers["Retry-After"])
    assert retry_after == StoreUnavailable.retry_after  # what the grace rule counts on
    assert elapsed < budgets.DYNAMODB.worst_case, elapsed
    # In a stall no answer comes, so no throttling backoff: each attempt waits its read timeout.
    assert elapsed < budgets.DYNAMODB.attempts * budgets.DYNAMODB.read_timeout + MARGIN, elapsed

    stack.wait_until_dynamodb_answers()
    # The client retries after Retry-After with the same token. The clock is moved to the
    # latest moment the grace rule covers: the longest DynamoDB wait, Retry-After, and 1 s of
    # round trips after the stalled refresh read the time.
    stack.clock.advance(math.ceil(budgets.DYNAMODB.worst_case) + retry_after + 1)
    retried = stack.post("/auth/refresh", {"refresh_token": old})

    # Whether DynamoDB applied the stalled rotation when it resumed (the retry is then in
    # grace and answers that rotation's token) or not (the retry rotates now), the session
    # converges: one current token, the old one just before it, nothing revoked.
    assert retried.status_code == 200, retried.text
    current = retried.json()["refresh_token"]
    assert current != old and current.split(".")[:2] == [user_id, session_id]
    item = stack.session_item(user_id, session_id)
    assert "revoked_at" not in item, item.get("revoked_reason")
    assert bytes(item["current_hash"]["B"]) == sha256(current)
    assert bytes(item["previous_hash"]["B"]) == sha256(old)
    assert int(item["rotated_at"]["N"]) in (START, int(stack.clock()))
    verdict = stack.post("/auth/verify", {"token": retried.json()["access_token"]})
    assert verdict.json()["valid"] is True and verdict.json()["sid"] == session_id
    # And the token the retry got is the live one: it rotates in turn.
    stack.clock.advance(1)
    onward = stack.post("/auth/refresh", {"refresh_token": current})
    assert onward.status_code == 200, onward.text
