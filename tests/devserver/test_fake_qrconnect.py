"""The fake WeChat's `connect/qrconnect` (website apps, issue 24 item 2) over HTTP: it "scans"
for the user a test names, refuses what WeChat refuses, and its codes are the website app's
`sns/oauth2/access_token` codes."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devserver.fake_wechat import FakeWeChat, openid_for, unionid_for

APPID = "wx-test-appid"
SECRET = "test-secret"
WEB = "wx-test-website"
WEB_SECRET = "website-secret"
BACK = "https://auth.example/oauth/wechat/callback"


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    with FakeWeChat(APPID, SECRET, apps={WEB: WEB_SECRET}) as server:
        yield server


def qrconnect(fake: FakeWeChat, user: str | None = None, **overrides: str | None):
    params: dict[str, str | None] = {
        "appid": WEB,
        "redirect_uri": BACK,
        "response_type": "code",
        "scope": "snsapi_login",
        "state": "st.1",
    }
    params.update(overrides)
    headers = {"X-Fake-WeChat-User": user} if user else {}
    return requests.get(
        f"{fake.url}/connect/qrconnect",
        params=params,
        headers=headers,
        allow_redirects=False,
        timeout=10,
    )


def back_query(response: requests.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(BACK + "?")
    return parse_qs(urlsplit(location).query)


def oauth2(fake: FakeWeChat, code: str) -> dict:
    params = {"appid": WEB, "secret": WEB_SECRET, "code": code, "grant_type": "authorization_code"}
    return requests.get(f"{fake.url}/sns/oauth2/access_token", params=params, timeout=10).json()


def test_a_named_user_scans_and_the_code_is_theirs_once(fake: FakeWeChat) -> None:
    query = back_query(qrconnect(fake, "union-bob"))
    assert query["state"] == ["st.1"]
    [code] = query["code"]
    assert code.startswith("union-bob.qr-")

    answer = oauth2(fake, code)
    assert answer["openid"] == openid_for(WEB, "union-bob")
    assert answer["unionid"] == unionid_for("union-bob")  # the mini-program's too
    assert answer["scope"] == "snsapi_login"
    assert oauth2(fake, code)["errcode"] == 40163  # once
    other = back_query(qrconnect(fake, "union-bob"))["code"][0]
    assert other != code


def test_deny_comes_back_with_the_state_only(fake: FakeWeChat) -> None:
    assert back_query(qrconnect(fake, "deny")) == {"state": ["st.1"]}


def test_without_a_user_a_page_asks_and_its_form_answers(fake: FakeWeChat) -> None:
    page = qrconnect(fake)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "/connect/qrconnect/confirm" in page.text and "st.1" in page.text

    confirm = {
        "appid": WEB,
        "redirect_uri": BACK,
        "response_type": "code",
        "scope": "snsapi_login",
        "state": "st.1",
    }
    allowed = requests.get(
        f"{fake.url}/connect/qrconnect/confirm",
        params={**confirm, "user": "carol"},
        allow_redirects=False,
        timeout=10,
    )
    assert oauth2(fake, back_query(allowed)["code"][0])["openid"] == openid_for(WEB, "carol")
    denied = requests.get(
        f"{fake.url}/connect/qrconnect/confirm",
        params={**confirm, "user": "carol", "decision": "deny"},
        allow_redirects=False,
        timeout=10,
    )
    assert back_query(denied) == {"state": ["st.1"]}


def test_fake_wechat_user_scans_when_no_one_is_named() -> None:
    with FakeWeChat(APPID, SECRET, apps={WEB: WEB_SECRET}, devtools_user="dev") as fake:
        code = back_query(qrconnect(fake))["code"][0]
        assert code.startswith("dev.qr-")


@pytest.mark.parametrize(
    "overrides",
    [
        {"appid": "wx-nobody"},
        {"appid": None},
        {"redirect_uri": None},
        {"redirect_uri": "ftp://x/"},
        {"response_type": "token"},
        {"scope": "snsapi_base"},
    ],
)
def test_what_wechat_refuses_cannot_be_visited(fake: FakeWeChat, overrides) -> None:
    response = qrconnect(fake, "alice", **overrides)
    assert response.status_code == 400
    assert "该链接无法访问" in response.text
    assert "Location" not in response.headers


def test_a_mini_program_code_answers_snsapi_base_and_reset_forgets(fake: FakeWeChat) -> None:
    params = {
        "appid": WEB,
        "secret": WEB_SECRET,
        "code": "alice.1",
        "grant_type": "authorization_code",
    }
    answer = requests.get(f"{fake.url}/sns/oauth2/access_token", params=params, timeout=10).json()
    assert answer["scope"] == "snsapi_base"
    code = back_query(qrconnect(fake, "alice"))["code"][0]
    fake.reset()
    assert oauth2(fake, code)["scope"] == "snsapi_base"  # forgotten, as every used code
