"""The user's profile (chalicelib/profile.py, issue 25 item 4): PATCH /me's checks, WeChat's
msg_sec_check on and off, the `nickname`/`picture` claims after the next refresh."""

from __future__ import annotations

import dataclasses
import json

import jwt
import pytest

from chalicelib import runtime
from chalicelib.profile import MAX_AVATAR_URL, MAX_NICKNAME, avatar_url, nickname
from chalicelib.settings import Settings
from tests.conftest import TEST_SECRET, table_items
from tests.http import assert_error, bearer, login

QLOGO = "https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132"


def patch_me(client, access_token: str, body: object, raw: str | None = None):
    data = raw if raw is not None else json.dumps(body)
    headers = {"content-type": "application/json", **bearer(access_token)}
    return client.http.patch("/me", headers=headers, body=data)


def user_items(dynamodb) -> list[dict]:
    """The table without the app's brokered server access token (WXTOKEN#: the check's own)."""
    return [i for i in table_items(dynamodb) if not i["pk"]["S"].startswith("WXTOKEN#")]


def claims_of(tokens: dict) -> dict:
    return jwt.decode(tokens["access_token"], options={"verify_signature": False})


def with_settings(settings: Settings, dynamodb, clock, **changes) -> runtime.Services:
    changed = dataclasses.replace(settings, **changes)
    return runtime.build(changed, dynamodb=dynamodb, clock=clock, sleep=lambda _: None)


@pytest.fixture
def profile_client(request, settings, dynamodb, clock, wechat, monkeypatch):
    """The app with the settings a test names (`@pytest.mark.parametrize(... indirect)`)."""
    from chalice.test import Client

    import app

    services = with_settings(settings, dynamodb, clock, **getattr(request, "param", {}))
    monkeypatch.setattr(app, "_services", services)
    with Client(app.app) as test_client:
        yield test_client


# -- the values -------------------------------------------------------------------------------


def test_nickname_is_nfc_trimmed_and_bounded():
    assert nickname("  Cafe\u0301 ") == "Café"  # NFC: one character, not two
    assert nickname("😀" * MAX_NICKNAME) == "😀" * MAX_NICKNAME
    assert nickname("👨‍👩‍👧") == "👨‍👩‍👧"  # the emoji joiner is allowed
    assert nickname(None) is None


@pytest.mark.parametrize(
    "value",
    ["", "   ", "a" * (MAX_NICKNAME + 1), "bad\nname", "bell\x07", "rtl\u202eevil", "x\u2028y", 7],
)
def test_bad_nicknames_are_refused(value):
    from chalicelib.errors import RequestError

    with pytest.raises(RequestError):
        nickname(value)


HOSTS = ("thirdwx.qlogo.cn", "wx.qlogo.cn", "*.cdn.example.com")


@pytest.mark.parametrize(
    "value",
    [QLOGO, "https://wx.qlogo.cn/x.png", "https://img.cdn.example.com/a/b.jpg?v=1"],
)
def test_good_avatar_urls(value):
    assert avatar_url(value, HOSTS) == value


@pytest.mark.parametrize(
    "value",
    [
        "http://thirdwx.qlogo.cn/x",  # not https
        "https://evil.example/x",  # not on the list
        "https://thirdwx.qlogo.cn.evil.example/x",  # a look-alike
        "https://cdn.example.com/x",  # *.cdn.example.com is under it, not it
        "https://user@thirdwx.qlogo.cn/x",
        "https://thirdwx.qlogo.cn:8443/x",
        "https://thirdwx.qlogo.cn/a b",
        "https://thirdwx.qlogo.cn/\x00",
        "https://thirdwx.qlogo.cn/é",
        "javascript:alert(1)",
        "https://thirdwx.qlogo.cn/" + "a" * MAX_AVATAR_URL,
        "",
        ["https://thirdwx.qlogo.cn/x"],
    ],
)
def test_bad_avatar_urls_are_refused(value):
    from chalicelib.errors import RequestError

    with pytest.raises(RequestError):
        avatar_url(value, HOSTS)


def test_no_host_takes_no_avatar():
    from chalicelib.errors import RequestError

    with pytest.raises(RequestError):
        avatar_url(QLOGO, ())


# -- PATCH /me --------------------------------------------------------------------------------


def test_patch_sets_shows_and_clears_the_profile(client):
    tokens = login(client)
    response = patch_me(client, tokens["access_token"], {"nickname": " 小明 ", "avatar_url": QLOGO})
    assert response.status_code == 200, response.body
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json_body["nickname"] == "小明"
    assert response.json_body["avatar_url"] == QLOGO

    me = client.http.get("/me", headers=bearer(tokens["access_token"])).json_body
    assert (me["nickname"], me["avatar_url"]) == ("小明", QLOGO)
    assert me["identities"] and me["identities"] == response.json_body["identities"]

    cleared = patch_me(client, tokens["access_token"], {"nickname": None})
    assert cleared.status_code == 200
    assert (cleared.json_body["nickname"], cleared.json_body["avatar_url"]) == (None, QLOGO)
    me = client.http.get("/me", headers=bearer(tokens["access_token"])).json_body
    assert me["nickname"] is None and me["avatar_url"] == QLOGO


def test_post_is_patch_for_wx_request(client, dynamodb):
    """wx.request has no PATCH: POST /me is the same operation."""
    tokens = login(client)
    headers = {"content-type": "application/json", **bearer(tokens["access_token"])}
    body = json.dumps({"nickname": "小红"})
    response = client.http.post("/me", headers=headers, body=body)
    assert response.status_code == 200 and response.json_body["nickname"] == "小红"
    before = table_items(dynamodb)
    bad = client.http.post("/me", headers=headers, body=json.dumps({"nickname": "a\x00"}))
    assert_error(bad, 400, "invalid_request")
    assert table_items(dynamodb) == before


def test_a_new_user_has_no_profile(client):
    tokens = login(client)
    me = client.http.get("/me", headers=bearer(tokens["access_token"])).json_body
    assert me["nickname"] is None and me["avatar_url"] is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"nickname": "a" * (MAX_NICKNAME + 1)},
        {"nickname": "tab\tname"},
        {"nickname": ""},
        {"nickname": 3},
        {"avatar_url": "https://evil.example/a.png"},
        {"avatar_url": "http://thirdwx.qlogo.cn/a.png"},
        {"avatarUrl": QLOGO},
        {"nickname": "ok", "extra": 1},
        {"nickname": "ok", "avatar_url": "https://evil.example/a.png"},  # all or nothing
    ],
)
def test_bad_input_is_400_and_changes_nothing(client, dynamodb, body):
    tokens = login(client)
    before = table_items(dynamodb)
    assert_error(patch_me(client, tokens["access_token"], body), 400, "invalid_request")
    assert table_items(dynamodb) == before


@pytest.mark.parametrize("raw", ["not json", "[]", '"x"', "null"])
def test_a_body_that_is_not_an_object_is_400(client, dynamodb, raw):
    tokens = login(client)
    before = table_items(dynamodb)
    assert_error(patch_me(client, tokens["access_token"], None, raw=raw), 400, "invalid_request")
    assert table_items(dynamodb) == before


def test_patch_needs_a_user_access_token(client, dynamodb):
    before = table_items(dynamodb)
    assert_error(patch_me(client, "not-a-token", {"nickname": "x"}), 401, "invalid_token")
    tokens = login(client)
    client.http.post("/auth/logout", headers=bearer(tokens["access_token"]))
    before = table_items(dynamodb)
    assert_error(patch_me(client, tokens["access_token"], {"nickname": "x"}), 401, "invalid_token")
    assert table_items(dynamodb) == before


def test_patch_requests(client, dynamodb_requests):
    tokens = login(client)
    dynamodb_requests.clear()
    assert patch_me(client, tokens["access_token"], {"nickname": "小明"}).status_code == 200
    # the token check's GetItem, the profile's UpdateItem, the identities' Query and the copy
    # on the one identity, the sessions' Query and the copy on the one live session
    assert dynamodb_requests == [
        "GetItem",
        "UpdateItem",
        "Query",
        "UpdateItem",
        "Query",
        "UpdateItem",
    ]


# -- AUTH_PROFILE_SECURITY_CHECK --------------------------------------------------------------

CHECK_ON = {"profile_security_check": True}


def test_with_the_check_off_wechat_is_not_asked(client, wechat):
    tokens = login(client)
    assert patch_me(client, tokens["access_token"], {"nickname": "risky name"}).status_code == 200
    assert wechat.sec_checks == []


@pytest.mark.parametrize("profile_client", [CHECK_ON], indirect=True)
def test_a_passed_nickname_is_stored_after_the_check(profile_client, wechat):
    tokens = login(profile_client)
    response = patch_me(profile_client, tokens["access_token"], {"nickname": "小明"})
    assert response.status_code == 200, response.body
    assert response.json_body["nickname"] == "小明"
    (sent,) = wechat.sec_checks
    assert sent == {
        "version": 2,
        "openid": "openid-alice",
        "scene": 1,
        "content": "小明",
        "nickname": "小明",
    }


@pytest.mark.parametrize("profile_client", [CHECK_ON], indirect=True)
def test_a_risky_nickname_is_refused_and_nothing_stored(profile_client, wechat, dynamodb):
    tokens = login(profile_client)
    before = user_items(dynamodb)
    response = patch_me(
        profile_client, tokens["access_token"], {"nickname": "risky words", "avatar_url": QLOGO}
    )
    assert_error(response, 400, "risky_content")
    assert "risky words" not in response.body.decode()
    assert user_items(dynamodb) == before


@pytest.mark.parametrize("profile_client", [CHECK_ON], indirect=True)
def test_a_review_verdict_is_stored(profile_client, wechat):
    tokens = login(profile_client)
    response = patch_me(profile_client, tokens["access_token"], {"nickname": "review me"})
    assert response.status_code == 200 and response.json_body["nickname"] == "review me"


@pytest.mark.parametrize("profile_client", [CHECK_ON], indirect=True)
def test_no_recent_visit_is_400_not_retried_and_nothing_stored(profile_client, wechat, dynamodb):
    """61010: WeChat checks only users who opened the mini-program recently; a retry cannot
    help, so the client is told what to do (400), not to come back later (503)."""
    tokens = login(profile_client)
    wechat.sec_check_errcodes.append(61010)
    before = user_items(dynamodb)
    response = patch_me(profile_client, tokens["access_token"], {"nickname": "小明"})
    assert_error(response, 400, "invalid_request")
    assert "61010" in response.json_body["error_description"]
    assert "Retry-After" not in response.headers
    assert user_items(dynamodb) == before


@pytest.mark.parametrize("errcode", [-1, 44004])
@pytest.mark.parametrize("profile_client", [CHECK_ON], indirect=True)
def test_wechat_failing_is_503_and_nothing_stored(profile_client, wechat, dynamodb, errcode):
    tokens = login(profile_client)
    wechat.sec_check_errcodes.extend([errcode, errcode])  # -1 is retried once
    before = user_items(dynamodb)
    response = patch_me(profile_client, tokens["access_token"], {"nickname": "小明"})
    assert_error(response, 503, "temporarily_unavailable")
    assert "Retry-After" in response.headers
    assert user_items(dynamodb) == before


@pytest.mark.parametrize("profile_client", [CHECK_ON], indirect=True)
def test_a_refused_server_token_is_replaced_once(profile_client, wechat):
    tokens = login(profile_client)
    assert patch_me(profile_client, tokens["access_token"], {"nickname": "a"}).status_code == 200
    wechat.refused_tokens.update(wechat.token_apps)  # WeChat forgets the broker's token
    assert patch_me(profile_client, tokens["access_token"], {"nickname": "b"}).status_code == 200
    assert len(wechat.sec_checks) == 3


@pytest.mark.parametrize("profile_client", [CHECK_ON], indirect=True)
def test_clearing_or_an_avatar_alone_asks_wechat_nothing(profile_client, wechat):
    tokens = login(profile_client)
    body = {"nickname": None, "avatar_url": QLOGO}
    assert patch_me(profile_client, tokens["access_token"], body).status_code == 200
    assert wechat.sec_checks == []


# -- AUTH_PROFILE_CLAIM -----------------------------------------------------------------------


def refresh(client, tokens: dict) -> dict:
    from tests.http import post

    response = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200, response.body
    return response.json_body


def test_without_the_claim_tokens_carry_no_profile(client):
    tokens = login(client)
    patch_me(client, tokens["access_token"], {"nickname": "小明", "avatar_url": QLOGO})
    claims = claims_of(refresh(client, tokens))
    assert "nickname" not in claims and "picture" not in claims


@pytest.mark.parametrize("profile_client", [{"profile_claim": True}], indirect=True)
def test_the_claim_comes_with_the_next_refresh(profile_client, dynamodb_requests):
    tokens = login(profile_client)
    other = login(profile_client, "alice.2")  # another live session of the same user
    assert "nickname" not in claims_of(tokens)
    body = {"nickname": "小明", "avatar_url": QLOGO}
    assert patch_me(profile_client, tokens["access_token"], body).status_code == 200

    dynamodb_requests.clear()
    refreshed = refresh(profile_client, other)
    assert dynamodb_requests == ["UpdateItem"]  # still one request
    claims = claims_of(refreshed)
    assert (claims["nickname"], claims["picture"]) == ("小明", QLOGO)

    patch_me(profile_client, refreshed["access_token"], {"avatar_url": None})
    claims = claims_of(refresh(profile_client, refreshed))
    assert claims["nickname"] == "小明" and "picture" not in claims


@pytest.mark.parametrize("profile_client", [{"profile_claim": True}], indirect=True)
def test_a_returning_login_carries_the_claim_in_three_requests(
    profile_client, wechat, dynamodb_requests
):
    tokens = login(profile_client)
    patch_me(profile_client, tokens["access_token"], {"nickname": "小明"})
    dynamodb_requests.clear()
    calls = wechat.calls
    again = login(profile_client, "alice.2")
    assert claims_of(again)["nickname"] == "小明"
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems"]
    assert wechat.calls == calls + 1


def test_no_secret_in_the_answers_or_logs(client, log_lines, caplog):
    tokens = login(client)
    response = patch_me(client, tokens["access_token"], {"nickname": "小明"})
    text = response.body.decode() + "\n".join(log_lines) + caplog.text
    for secret in (TEST_SECRET, tokens["access_token"], tokens["refresh_token"], "SESSIONKE"):
        assert secret not in text
    assert "小明" not in "\n".join(log_lines)  # the values are not logged either
