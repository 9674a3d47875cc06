"""WeChat DevTools against `make run` (docs/miniprogram.md, "WeChat DevTools walkthrough"): a
real `wx.login` code is random and has no `.`, so the fake WeChat makes each one a new user;
with FAKE_WECHAT_USER every such code logs in as that one user (codes stay single-use, and the
fake's own `<user>.<n>` and `err-` codes keep their meaning)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import requests

from chalicelib.settings import LOCAL_APPID, LOCAL_SECRET
from devserver.fake_wechat import FakeWeChat, openid_for
from tests.integration.local_server import local_server


def devtools_code() -> str:
    """What wx.login hands out: 32 characters, letters and digits, no `.`."""
    return secrets.token_hex(16)


def exchange(fake: FakeWeChat, code: str) -> dict:
    return fake.jscode2session(
        {
            "appid": LOCAL_APPID,
            "secret": LOCAL_SECRET,
            "js_code": code,
            "grant_type": "authorization_code",
        }
    )


def test_without_the_setting_every_devtools_code_is_a_new_user() -> None:
    fake = FakeWeChat(LOCAL_APPID, LOCAL_SECRET)
    first, second = exchange(fake, devtools_code()), exchange(fake, devtools_code())
    assert first["openid"] != second["openid"]


def test_with_the_setting_every_devtools_code_is_that_user_and_works_once() -> None:
    fake = FakeWeChat(LOCAL_APPID, LOCAL_SECRET, devtools_user="dev")
    code = devtools_code()
    first = exchange(fake, code)
    assert first["openid"] == openid_for(LOCAL_APPID, "dev")
    assert exchange(fake, devtools_code())["openid"] == first["openid"]
    assert exchange(fake, code)["errcode"] == 40163  # still single-use
    # The fake's own codes keep their users and errors.
    assert exchange(fake, "alice.1")["openid"] == openid_for(LOCAL_APPID, "alice")
    assert exchange(fake, "err-40029")["errcode"] == 40029
    assert exchange(fake, "err-45011.1")["errcode"] == 45011


@pytest.mark.integration
def test_make_run_with_fake_wechat_user_logs_devtools_in_as_one_user(tmp_path: Path) -> None:
    with local_server(tmp_path, env={"FAKE_WECHAT_USER": "devtools"}) as server:
        answers = [
            requests.post(
                f"{server.url}/auth/login", json={"code": devtools_code()}, timeout=30
            ).json()["user"]
            for _ in range(2)
        ]
    assert answers[0]["id"] == answers[1]["id"]
    assert [a["is_new"] for a in answers] == [True, False]
