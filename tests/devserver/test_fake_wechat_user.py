"""The fake WeChat's checksession, msg_sec_check and encrypted open data
(devserver/fake_wechat_user.py, issue 25 items 4 and 5)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
import requests

from chalicelib.open_data import decrypt
from devserver.fake_wechat import FakeWeChat, openid_for
from tests.devserver.test_fake_wechat import APPID, SECRET, body, server_token


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    with FakeWeChat(APPID, SECRET, clock=lambda: 1_800_000_000.0) as server:
        yield server


def check_session(fake: FakeWeChat, token: str, openid: str, key: str) -> int:
    signature = hmac.new(key.encode(), b"", hashlib.sha256).hexdigest()
    query = {"access_token": token, "openid": openid, "signature": signature}
    response = requests.get(f"{fake.url}/wxa/checksession", params=query, timeout=10)
    return response.json()["errcode"]


def test_checksession_knows_the_current_session_key_only(fake: FakeWeChat) -> None:
    token, openid = server_token(fake), openid_for(APPID, "alice")
    first = body(fake, "alice.1")["session_key"]
    assert check_session(fake, token, openid, first) == 0
    second = body(fake, "alice.2")["session_key"]  # wx.login again: the key changes
    assert check_session(fake, token, openid, first) == 87009
    assert check_session(fake, token, openid, second) == 0
    assert check_session(fake, "not-a-token", openid, second) == 40001


def sec_check(fake: FakeWeChat, token: str, payload: object) -> dict:
    url = f"{fake.url}/wxa/msg_sec_check"
    response = requests.post(url, params={"access_token": token}, json=payload, timeout=10)
    return response.json()


@pytest.mark.parametrize(
    ("content", "suggest"), [("小明", "pass"), ("so risky", "risky"), ("review me", "review")]
)
def test_msg_sec_check_verdicts(fake: FakeWeChat, content: str, suggest: str) -> None:
    payload = {"version": 2, "openid": "o", "scene": 1, "content": content}
    answer = sec_check(fake, server_token(fake), payload)
    assert answer["errcode"] == 0 and answer["result"]["suggest"] == suggest


def test_msg_sec_check_errors(fake: FakeWeChat) -> None:
    token = server_token(fake)
    assert sec_check(fake, "bad", {"openid": "o", "content": "x"})["errcode"] == 40001
    assert sec_check(fake, token, {"content": "x"})["errcode"] == 40003
    assert sec_check(fake, token, ["x"])["errcode"] == 47001


def test_open_data_is_encrypted_with_the_current_key(fake: FakeWeChat) -> None:
    key = body(fake, "alice.1")["session_key"]
    response = requests.post(
        f"{fake.url}/_fake/open-data",
        json={"user": "alice", "data": {"stepInfoList": [{"step": 5}]}},
        timeout=10,
    )
    assert response.status_code == 200
    sealed = response.json()
    data = decrypt(key, base64.b64decode(sealed["encryptedData"]), base64.b64decode(sealed["iv"]))
    assert data == {
        "stepInfoList": [{"step": 5}],
        "watermark": {"appid": APPID, "timestamp": 1_800_000_000},
    }
    unknown = requests.post(
        f"{fake.url}/_fake/open-data", data=json.dumps({"user": "nobody", "data": {}}), timeout=10
    )
    assert unknown.status_code == 404
