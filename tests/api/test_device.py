"""The device authorization grant through the app (issue 24, item 3; RFC 8628): chalicelib/api/
device.py and chalicelib/device/, on moto, the stub WeChat and the injected clock."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import responses

from chalicelib.device.codes import GRANT_TYPE
from tests.conftest import TEST_APPID, WECHAT_BASE, WeChatStub, table_items
from tests.http import assert_error, bearer, form_post, login, post, token

PNG = b"\x89PNG\r\n\x1a\n" + b"fake-png-body"


class WxaCodeStub:
    """getwxacodeunlimit over `responses`: a PNG for every scene, each body sent kept."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.errcode: int | None = None  # answer this errcode instead of an image

    def answer(self, request):
        self.sent.append(json.loads(request.body))
        if self.errcode is not None:
            body = json.dumps({"errcode": self.errcode, "errmsg": "stub"})
            return 200, {"Content-Type": "application/json"}, body
        return 200, {"Content-Type": "image/png"}, PNG


@pytest.fixture
def wxacode() -> WxaCodeStub:
    return WxaCodeStub()


@pytest.fixture
def wechat(wxacode: WxaCodeStub) -> Iterator[WeChatStub]:
    """The conftest's stub WeChat, and getwxacodeunlimit."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        stub = WeChatStub(mock)
        mock.add_callback(
            responses.POST, f"{WECHAT_BASE}/wxa/getwxacodeunlimit", callback=wxacode.answer
        )
        yield stub


def authorize(client, ip="198.51.100.7", **params):
    return form_post(
        client,
        "/oauth/device_authorization",
        {"client_id": TEST_APPID, **params},
        headers={"user-agent": "SmartTV/1.0"},
    )


def poll(client, device_code, client_id=TEST_APPID):
    return token(
        client, {"grant_type": GRANT_TYPE, "device_code": device_code, "client_id": client_id}
    )


def test_a_confirmed_device_login_gives_the_device_the_confirming_users_tokens(client, clock):
    started = authorize(client)
    assert started.status_code == 200, started.body
    body = started.json_body
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert body["expires_in"] == 300 and body["interval"] == 5
    assert_error(poll(client, body["device_code"]), 400, "authorization_pending")
    user = login(client)
    shown = client.http.get(
        f"/auth/device/{body['user_code']}", headers=bearer(user["access_token"])
    )
    assert shown.status_code == 200, shown.body
    assert shown.json_body["status"] == "pending"
    assert shown.json_body["client_id"] == TEST_APPID
    confirmed = post(
        client,
        "/auth/device/confirm",
        {"user_code": body["user_code"]},
        bearer(user["access_token"]),
    )
    assert confirmed.status_code == 200, confirmed.body
    clock.advance(5)
    tokens = poll(client, body["device_code"])
    assert tokens.status_code == 200, tokens.body
    assert set(tokens.json_body) >= {"access_token", "refresh_token"}
    again = post(
        client,
        "/auth/device/confirm",
        {"user_code": body["user_code"]},
        bearer(user["access_token"]),
    )
    assert again.status_code == 400
    assert again.json_body["error"] == "invalid_grant"
    assert again.json_body["reason"] == "device_login_decided"
    clock.advance(5)
    assert_error(poll(client, body["device_code"]), 400, "invalid_grant")
    assert table_items
