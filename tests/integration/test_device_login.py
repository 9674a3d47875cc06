"""Scan-to-login on a PC or TV, end to end over real HTTP (issue 24, item 3; RFC 8628).

The app is served by the devserver's `chalice local` server in the test process (so the clock
is injected: expiry and polling intervals are the clock moved on, never a sleep), on moto's
DynamoDB server and the fake WeChat, both on loopback. The test plays the device (form posts to
/oauth/device_authorization and /oauth/token) and the mini-program (a user logged in with a
fake WeChat code, then GET /auth/device/{user_code} and POST /auth/device/confirm or /deny).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from chalice.config import Config as ChaliceConfig
from moto.server import ThreadedMotoServer

import app as wxauth
from chalicelib import runtime
from chalicelib.settings import Settings
from chalicelib.store import create_table
from devserver.__main__ import free_port
from devserver.chalice_local import create_local_server
from devserver.fake_wechat import FakeWeChat
from devserver.fake_wxacode import png_text
from tests.conftest import START, FakeClock

pytestmark = pytest.mark.integration

APPID = "wx-device-appid"
SECRET = "device-app-secret"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PC = {"User-Agent": "Mozilla/5.0 (SmartTV; Tizen 7.0) DeviceLoginTest/1.0"}


@dataclass
class Stack:
    url: str
    clock: FakeClock
    fake: FakeWeChat
    dynamodb: Any
    table: str

    def authorize(self, client_id: str = APPID) -> requests.Response:
        return requests.post(
            f"{self.url}/oauth/device_authorization",
            data={"client_id": client_id},
            headers=PC,
            timeout=10,
        )

    def start(self) -> dict[str, Any]:
        response = self.authorize()
        assert response.status_code == 200, response.text
        return response.json()

    def poll(self, device_code: str, client_id: str = APPID) -> requests.Response:
        return requests.post(
            f"{self.url}/oauth/token",
            data={"grant_type": GRANT, "device_code": device_code, "client_id": client_id},
            headers=PC,
            timeout=10,
        )

    def login(self, code: str) -> dict[str, Any]:
        response = requests.post(f"{self.url}/auth/login", json={"code": code}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def as_user(self, method: str, path: str, access_token: str, **kwargs: Any):
        headers = {"Authorization": f"Bearer {access_token}"}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def sessions(self) -> list[dict[str, Any]]:
        """Every session item of the table (what a failed request must not change)."""
        items = self.dynamodb.scan(TableName=self.table, ConsistentRead=True)["Items"]
        return sorted(
            (i for i in items if i["sk"]["S"].startswith("SESSION#")), key=lambda i: i["sk"]["S"]
        )


@pytest.fixture
def stack(tmp_path: Path, key_set_json: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    fake = FakeWeChat(APPID, SECRET)
    server = thread = None
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        table = f"wxauth-device-{uuid.uuid4().hex[:10]}"  # moto's server keeps every table
        create_table(dynamodb, table)
        keys = tmp_path / "signing-keys.json"
        keys.write_text(key_set_json)
        settings = Settings.from_env(
            {
                "WECHAT_APPID": APPID,
                "WECHAT_SECRET": SECRET,
                "WECHAT_API_BASE": fake.start("127.0.0.1", 0),
                "AUTH_TABLE_NAME": table,
                "AUTH_ISSUER": "https://auth.device.test",
                "AUTH_SIGNING_KEYS_FILE": str(keys),
                "AUTH_LIMIT_DEVICE_PER_IP": "3/60",
                "AUTH_DEVICE_PAGE": "pages/device/confirm",
            }
        )
        clock = FakeClock(START)
        monkeypatch.setattr(wxauth, "_services", runtime.build(settings, clock=clock))
        app_port = free_port()
        # create_local_server swaps the app's class for a local one: put it back afterwards
        monkeypatch.setattr(wxauth.app, "__class__", type(wxauth.app))
        server = create_local_server(
            wxauth.app, ChaliceConfig.create(chalice_stage="local"), "127.0.0.1", app_port
        )
        thread = threading.Thread(target=server.server.serve_forever, daemon=True)
        thread.start()
        yield Stack(f"http://127.0.0.1:{app_port}", clock, fake, dynamodb, table)
    finally:
        if server is not None:
            server.shutdown()
            server.server.server_close()
        if thread is not None:
            thread.join(10)
        fake.stop()
        moto.stop()


def claims(access_token: str) -> dict[str, Any]:
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_confirmed_login_gives_the_device_a_session_of_the_confirming_user(stack: Stack):
    started = stack.start()
    assert started["expires_in"] == 300 and started["interval"] == 5
    assert started["verification_uri_complete"] == (
        f"https://auth.device.test/oauth/device?user_code={started['user_code']}"
    )
    # The device shows the mini-program code: a PNG of WeChat's, made once per user code.
    for _ in range(2):
        image = requests.get(
            f"{stack.url}/oauth/device",
            params={"user_code": started["user_code"]},
            headers={"Accept": "image/png"},
            timeout=10,
        )
        assert image.status_code == 200, image.text
        assert image.headers["Content-Type"] == "image/png"
        assert png_text(image.content) == {
            "scene": started["user_code"],
            "page": "pages/device/confirm",
            "env_version": "release",
        }
    assert stack.fake.wxacodes.calls[started["user_code"]] == 1
    assert stack.poll(started["device_code"]).json()["error"] == "authorization_pending"

    alice = stack.login("alice.1")
    shown = stack.as_user("GET", f"/auth/device/{started['user_code']}", alice["access_token"])
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "pending"
    assert shown.json()["client_id"] == APPID
    assert shown.json()["source_ip"] == "127.0.0.0/24"  # masked as GET /auth/sessions masks it
    assert shown.json()["user_agent"] == PC["User-Agent"]

    user_code = started["user_code"].lower().replace("-", " ")  # as a person may type it
    confirmed = stack.as_user(
        "POST", "/auth/device/confirm", alice["access_token"], json={"user_code": user_code}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"

    stack.clock.advance(5)
    tokens = stack.poll(started["device_code"])
    assert tokens.status_code == 200, tokens.text
    pc = tokens.json()
    assert claims(pc["access_token"])["sub"] == claims(alice["access_token"])["sub"]
    assert claims(pc["access_token"])["client_id"] == APPID
    assert claims(pc["access_token"])["sid"] != claims(alice["access_token"])["sid"]
    # The PC's session is one of alice's, recording the PC's User-Agent and address.
    listed = stack.as_user("GET", "/auth/sessions", alice["access_token"]).json()["sessions"]
    pc_session = next(s for s in listed if s["id"] == claims(pc["access_token"])["sid"])
    assert pc_session["user_agent"] == PC["User-Agent"]
    assert pc_session["source_ip"] == "127.0.0.0/24"
    # The PC's refresh token works like any other.
    refreshed = requests.post(
        f"{stack.url}/auth/refresh", json={"refresh_token": pc["refresh_token"]}, timeout=10
    )
    assert refreshed.status_code == 200, refreshed.text

    # One time: the code is used up, a second confirm is refused, a second poll gets nothing.
    sessions = stack.sessions()
    again = stack.as_user(
        "POST", "/auth/device/confirm", alice["access_token"], json={"user_code": user_code}
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert again.json()["reason"] == "device_login_decided"
    stack.clock.advance(5)
    replay = stack.poll(started["device_code"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert stack.sessions() == sessions


def test_the_devices_session_carries_the_users_profile_claims_as_a_logins(stack: Stack):
    """PATCH /me copies the profile onto the user's live sessions and identities; a device
    session made later gets it too (AUTH_PROFILE_CLAIM reads it from the session item)."""
    started = stack.start()
    alice = stack.login("alice.1")
    patched = stack.as_user("PATCH", "/me", alice["access_token"], json={"nickname": "阿丽"})
    assert patched.status_code == 200, patched.text
    confirmed = stack.as_user("POST", "/auth/device/confirm", alice["access_token"], json=started)
    assert confirmed.status_code == 200, confirmed.text
    stack.clock.advance(5)
    tokens = stack.poll(started["device_code"])
    assert tokens.status_code == 200, tokens.text

    pc = claims(tokens.json()["access_token"])
    item = stack.dynamodb.get_item(
        TableName=stack.table,
        Key={"pk": {"S": f"USER#{pc['sub']}"}, "sk": {"S": f"SESSION#{pc['sid']}"}},
        ConsistentRead=True,
    )["Item"]
    assert json.loads(item["profile_claims"]["S"]) == {"nickname": "阿丽"}


def test_a_denied_login_gets_access_denied_and_no_session(stack: Stack):
    started = stack.start()
    bob = stack.login("bob.1")
    sessions = stack.sessions()
    denied = stack.as_user(
        "POST", "/auth/device/deny", bob["access_token"], json={"user_code": started["user_code"]}
    )
    assert denied.status_code == 200, denied.text
    assert denied.json()["status"] == "denied"
    stack.clock.advance(5)
    answer = stack.poll(started["device_code"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "access_denied"
    # Denied once: a later confirm is refused, and the device still gets access_denied.
    late = stack.as_user(
        "POST",
        "/auth/device/confirm",
        bob["access_token"],
        json={"user_code": started["user_code"]},
    )
    assert late.status_code == 400 and late.json()["reason"] == "device_login_decided"
    stack.clock.advance(5)
    assert stack.poll(started["device_code"]).json()["error"] == "access_denied"
    assert stack.sessions() == sessions


def test_an_expired_login_gets_expired_token_and_cannot_be_confirmed(stack: Stack):
    started = stack.start()
    carol = stack.login("carol.1")
    stack.clock.advance(300)
    answer = stack.poll(started["device_code"])
    assert answer.status_code == 400 and answer.json()["error"] == "expired_token"
    sessions = stack.sessions()
    late = stack.as_user(
        "POST",
        "/auth/device/confirm",
        carol["access_token"],
        json={"user_code": started["user_code"]},
    )
    assert late.status_code == 400 and late.json()["reason"] == "device_login_expired"
    shown = stack.as_user("GET", f"/auth/device/{started['user_code']}", carol["access_token"])
    assert shown.json()["status"] == "expired"
    assert stack.poll(started["device_code"]).json()["error"] == "expired_token"
    assert stack.sessions() == sessions
    # The code's image is no longer made for it.
    image = requests.get(
        f"{stack.url}/oauth/device",
        params={"user_code": started["user_code"]},
        headers={"Accept": "*/*"},
        timeout=10,
    )
    assert image.status_code == 404 and image.json()["error"] == "not_found"
    assert stack.fake.wxacodes.calls[started["user_code"]] == 0


def test_polling_faster_than_the_interval_gets_slow_down_and_a_longer_interval(stack: Stack):
    started = stack.start()
    code = started["device_code"]
    assert stack.poll(code).json()["error"] == "authorization_pending"  # the first poll
    stack.clock.advance(2)
    assert stack.poll(code).json()["error"] == "slow_down"  # 2 s < 5 s
    stack.clock.advance(5)
    assert stack.poll(code).json()["error"] == "slow_down"  # the interval is now 10 s
    stack.clock.advance(15)
    assert stack.poll(code).json()["error"] == "authorization_pending"  # 15 s >= 15 s
    stack.clock.advance(15)
    assert stack.poll(code).json()["error"] == "authorization_pending"


def test_device_authorizations_are_limited_per_ip(stack: Stack):
    for _ in range(3):  # AUTH_LIMIT_DEVICE_PER_IP=3/60
        assert stack.authorize().status_code == 200
    refused = stack.authorize()
    assert refused.status_code == 429
    assert refused.json()["error"] == "slow_down"
    assert int(refused.headers["Retry-After"]) > 0
    stack.clock.advance(60)
    assert stack.authorize().status_code == 200


def test_bad_input_is_a_json_error_never_a_500(stack: Stack):
    started = stack.start()
    dave = stack.login("dave.1")
    sessions = stack.sessions()
    assert stack.authorize("no-such-client").json()["error"] == "invalid_client"
    assert stack.poll("not-a-device-code").json()["error"] == "invalid_grant"
    other = started["device_code"][:-4] + "AAAA"
    assert stack.poll(other).json()["error"] == "invalid_grant"
    assert stack.poll(started["device_code"], client_id="another").json()["error"] in (
        "invalid_grant",
        "invalid_client",
    )
    for body in ({}, {"user_code": 7}, {"user_code": "AAAA-AAAA"}, {"user_code": "x" * 40}):
        answer = stack.as_user("POST", "/auth/device/confirm", dave["access_token"], json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_request"
    unknown = stack.as_user(
        "POST", "/auth/device/confirm", dave["access_token"], json={"user_code": "BCDF-GHJK"}
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    anonymous = requests.post(
        f"{stack.url}/auth/device/confirm", json={"user_code": started["user_code"]}, timeout=10
    )
    assert anonymous.status_code == 401
    assert stack.sessions() == sessions
    assert started["device_code"] not in stack.fake.wxacodes.calls
