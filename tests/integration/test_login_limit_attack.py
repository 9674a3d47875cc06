"""The per-IP login limit under attack, over real HTTP against the local server (issue #22,
item 4): `python -m devserver` (chalice local, the fake WeChat) on a DynamoDB of the test's own
(moto's server) behind a proxy that counts every request and can throttle the limit's counter
items, as DynamoDB does to a hot partition.

- a refused address's flood writes its counter no more (the container's deny set);
- a counter that throttles refuses the login (503) instead of letting it through;
- behind CloudFront each viewer has its own budget (not the edge's address), and
  `CloudFront-Viewer-Address` counts only with the origin secret: without it, however the
  attacker varies the header, it is the source IP that is counted;
- an IPv6 attacker rotating /64s inside one /48 meets the /48 tier.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests
from moto.server import ThreadedMotoServer

from chalicelib.limits import LOGIN_PER_IP, LOGIN_PER_IPV6_48, ip_key, ipv6_48_key
from chalicelib.store.schema import limit_pk
from tests.integration.local_server import LocalServer, local_server

pytestmark = pytest.mark.integration

ORIGIN_HEADER = "X-Origin-Verify"
ORIGIN_SECRET = "attack-test-origin-secret-0123456789abcdef"  # noqa: S105 - a test value
PER_IP = 3  # AUTH_LIMIT_LOGIN_PER_IP = 3/86400: one window for the whole run (but at midnight)
PER_48 = 5  # AUTH_LIMIT_LOGIN_PER_IPV6_48
THROTTLED = json.dumps(
    {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "Rate exceeded"}
).encode()

_codes = itertools.count(1)


@dataclass
class DynamoProxy:
    """A loopback HTTP proxy in front of moto's server: records each request's operation and
    body, and answers ThrottlingException to UpdateItem requests naming a key in `throttle`."""

    upstream: str
    seen: list[tuple[str, str]] = field(default_factory=list)
    throttle: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
                text = body.decode("utf-8", "replace")
                with proxy.lock:
                    proxy.seen.append((operation, text))
                    throttled = operation == "UpdateItem" and any(k in text for k in proxy.throttle)
                if throttled:
                    self._answer(400, {"Content-Type": "application/x-amz-json-1.0"}, THROTTLED)
                    return
                status, headers, answer = proxy.forward(self.path, dict(self.headers), body)
                self._answer(status, headers, answer)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def forward(self, path: str, headers: dict[str, str], body: bytes):
        target = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def counter_writes(self, name: str, key: str) -> int:
        """UpdateItem requests on limit `name`'s counter of `key` so far."""
        pk = limit_pk(name, key)
        with self.lock:
            return sum(op == "UpdateItem" and pk in text for op, text in self.seen)

    def operations_since(self, mark: int) -> list[str]:
        with self.lock:
            return [op for op, _ in self.seen[mark:]]

    def mark(self) -> int:
        with self.lock:
            return len(self.seen)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        moto.stop()


@pytest.fixture
def dynamo(moto_url: str) -> Iterator[DynamoProxy]:
    """A proxy of the test's own (its counts are the test's), in front of the shared moto."""
    proxy = DynamoProxy(moto_url)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def server(
    dynamo: DynamoProxy, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LocalServer]:
    """A fresh local server and table per test: every counter starts at zero."""
    endpoint = dynamo.start()
    env = {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AUTH_TABLE_NAME": f"wxauth-attack-{request.node.name[5:40]}",
        "AUTH_LIMIT_LOGIN_PER_IP": f"{PER_IP}/86400",
        "AUTH_LIMIT_LOGIN_PER_IPV6_48": f"{PER_48}/86400",
        "AUTH_ORIGIN_SECRET_HEADER": ORIGIN_HEADER,
        "AUTH_ORIGIN_SECRET": ORIGIN_SECRET,
    }
    with local_server(tmp_path_factory.mktemp("limit-attack"), env=env) as running:
        yield running


LOCAL = ip_key("127.0.0.1")  # what every request to the local server comes from


def log_in(server: LocalServer, *, viewer: str | None = None, secret: str | None = None):
    headers = {}
    if viewer is not None:
        headers["CloudFront-Viewer-Address"] = viewer
    if secret is not None:
        headers[ORIGIN_HEADER] = secret
    code = f"attacker-{next(_codes)}.1"
    return requests.post(
        f"{server.url}/auth/login", json={"code": code}, headers=headers, timeout=60
    )


def test_a_refused_addresss_flood_no_longer_writes_its_counter(server, dynamo):
    for _ in range(PER_IP):
        response = log_in(server)
        assert response.status_code == 200, response.text
    for _ in range(25):
        refused = log_in(server)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "slow_down"
        assert int(refused.headers["Retry-After"]) >= 1
    # PER_IP counted, one refused by the counter, then none: 25 refusals, 1 write
    assert dynamo.counter_writes(LOGIN_PER_IP, LOCAL) == PER_IP + 1


def test_a_throttled_counter_refuses_the_login_instead_of_letting_it_through(server, dynamo):
    dynamo.throttle.add(limit_pk(LOGIN_PER_IP, LOCAL))
    mark = dynamo.mark()
    response = log_in(server)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert "Retry-After" in response.headers
    # refused before anything else: no claim, no session, no WeChat exchange
    assert set(dynamo.operations_since(mark)) == {"UpdateItem"}
    again = dynamo.mark()
    assert log_in(server).status_code == 503
    assert dynamo.operations_since(again) == []  # within Retry-After: not even the counter


def test_behind_cloudfront_each_viewer_has_its_own_budget(server, dynamo):
    """With the origin secret, the viewer's address is counted, not the edge's (127.0.0.1
    here): three viewers log in PER_IP times each, none is refused; a fourth try is."""
    for viewer in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        for port in range(PER_IP):
            response = log_in(server, viewer=f"{viewer}:{4000 + port}", secret=ORIGIN_SECRET)
            assert response.status_code == 200, response.text
        assert dynamo.counter_writes(LOGIN_PER_IP, viewer) == PER_IP
    refused = log_in(server, viewer="198.51.100.1:4999", secret=ORIGIN_SECRET)
    assert refused.status_code == 429
    assert dynamo.counter_writes(LOGIN_PER_IP, LOCAL) == 0


def test_a_spoofed_viewer_address_without_the_origin_secret_is_not_believed(server, dynamo):
    """Straight to the API: whatever CloudFront-Viewer-Address (or X-Forwarded-For) says, the
    login counts as its source address (127.0.0.1 here), and the limit holds."""
    answers = []
    for n in range(PER_IP + 5):
        secret = None if n % 2 else "a-guess-" + ORIGIN_SECRET[8:-1]  # none, or a near miss
        answers.append(log_in(server, viewer=f"203.0.113.{n}:80", secret=secret).status_code)
    assert answers == [200] * PER_IP + [429] * 5
    assert dynamo.counter_writes(LOGIN_PER_IP, LOCAL) == PER_IP + 1
    assert all(dynamo.counter_writes(LOGIN_PER_IP, f"203.0.113.{n}") == 0 for n in range(8))


def test_an_ipv6_attacker_rotating_64s_meets_the_48_tier(server, dynamo):
    answers = [
        log_in(server, viewer=f"2001:db8:77:{n:x}::1:443", secret=ORIGIN_SECRET).status_code
        for n in range(PER_48 + 3)  # a fresh /64 each time: the /64 limit never bites
    ]
    assert answers == [200] * PER_48 + [429] * 3
    assert dynamo.counter_writes(LOGIN_PER_IPV6_48, ipv6_48_key("2001:db8:77::1")) == PER_48 + 1
    other = log_in(server, viewer="2001:db8:78::1:443", secret=ORIGIN_SECRET)  # another /48
    assert other.status_code == 200, other.text
