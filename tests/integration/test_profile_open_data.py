"""Issue 25, items 4 and 5, over real HTTP against the local server (`python -m devserver`) on a
moto server and a fake WeChat of the test's own (its checksession, msg_sec_check and encrypted
open data: devserver/fake_wechat_user.py), with AUTH_PROFILE_SECURITY_CHECK and
AUTH_PROFILE_CLAIM on: PATCH /me checked by WeChat and shown in GET /me and in the next
refresh's access token; POST /auth/decrypt with the session's sealed session_key, refused with
`session_key_expired` once a later wx.login replaced it; no session_key in the server's log."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import jwt
import pytest
import requests
from moto.server import ThreadedMotoServer

from devserver.fake_wechat import FakeWeChat
from tests.integration.local_server import LocalServer, local_server

pytestmark = pytest.mark.integration

APPID, SECRET = "wx-profile-appid", "profile-secret-0123456789"
TABLE = "wxauth-profile"
AVATAR = "https://thirdwx.qlogo.cn/mmopen/vi_32/integration/132"
_codes = itertools.count(1)


@dataclass
class Target:
    server: LocalServer
    wechat: FakeWeChat

    def call(self, method: str, path: str, body: object = None, token: str | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self.server.url}{path}"
        return requests.request(method, url, json=body, headers=headers, timeout=30)

    def login(self, user: str) -> tuple[dict, str]:
        """A login of `user`, and the session_key WeChat answered it (the fake's current)."""
        answer = self.call("POST", "/auth/login", {"code": f"{user}.{next(_codes)}"})
        assert answer.status_code == 200, answer.text
        return answer.json(), self.wechat.session_keys.current(APPID, openid(user))

    def open_data(self, user: str, data: dict) -> dict:
        """What wx.getWeRunData gives the mini-program: encrypted with the user's current key."""
        answer = requests.post(
            f"{self.wechat.url}/_fake/open-data", json={"user": user, "data": data}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        return answer.json()


def openid(user: str) -> str:
    from devserver.fake_wechat import openid_for

    return openid_for(APPID, user)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    wechat = FakeWeChat(APPID, SECRET)
    wechat.start()
    env = {
        "AWS_ENDPOINT_URL_DYNAMODB": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AUTH_TABLE_NAME": TABLE,
        "WECHAT_API_BASE": wechat.url,
        "WECHAT_APPID": APPID,
        "WECHAT_SECRET": SECRET,
        "AUTH_PROFILE_SECURITY_CHECK": "true",
        "AUTH_PROFILE_CLAIM": "true",
    }
    try:
        with local_server(tmp_path_factory.mktemp("profile"), env=env) as server:
            yield Target(server, wechat)
    finally:
        wechat.stop()
        moto.stop()


def test_profile_checked_shown_and_claimed_after_the_refresh(target: Target) -> None:
    tokens, _ = target.login("carol")
    access = tokens["access_token"]

    risky = target.call("PATCH", "/me", {"nickname": "so risky"}, access)
    assert risky.status_code == 400 and risky.json()["error"] == "risky_content"
    assert target.call("GET", "/me", token=access).json()["nickname"] is None

    bad_host = target.call("PATCH", "/me", {"avatar_url": "https://evil.example/a.png"}, access)
    assert bad_host.status_code == 400 and bad_host.json()["error"] == "invalid_request"

    done = target.call("PATCH", "/me", {"nickname": "卡萝 🌸", "avatar_url": AVATAR}, access)
    assert done.status_code == 200, done.text
    me = target.call("GET", "/me", token=access).json()
    assert (me["nickname"], me["avatar_url"]) == ("卡萝 🌸", AVATAR)

    refreshed = target.call("POST", "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    claims = jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})
    assert (claims["nickname"], claims["picture"]) == ("卡萝 🌸", AVATAR)


def test_decrypt_with_the_sealed_key_until_a_later_wx_login(target: Target) -> None:
    tokens, key = target.login("dave")
    werun = {"stepInfoList": [{"timestamp": 1_700_000_000, "step": 8848}]}
    sealed = target.open_data("dave", werun)

    answer = target.call("POST", "/auth/decrypt", sealed, tokens["access_token"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["stepInfoList"] == werun["stepInfoList"]
    assert answer.json()["watermark"]["appid"] == APPID

    tampered = {**sealed, "iv": "A" * 22 + "=="}
    refused = target.call("POST", "/auth/decrypt", tampered, tokens["access_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"

    newer, _ = target.login("dave")  # wx.login again: WeChat's key for dave changes
    fresh = target.open_data("dave", werun)
    stale = target.call("POST", "/auth/decrypt", fresh, tokens["access_token"])
    assert stale.status_code == 400 and stale.json()["error"] == "session_key_expired"
    ok = target.call("POST", "/auth/decrypt", fresh, newer["access_token"])
    assert ok.status_code == 200

    for text in (answer.text, refused.text, stale.text, target.server.output()):
        assert key not in text
