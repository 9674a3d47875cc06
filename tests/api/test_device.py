"""The device authorization grant through the app (issue 24, item 3; RFC 8628): chalicelib/api/
device.py and chalicelib/device/, on moto, the stub WeChat and the injected clock."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import jwt
import pytest
import responses

from chalicelib.device.codes import GRANT_TYPE
from tests.conftest import START, TEST_APPID, WECHAT_BASE, WeChatStub, table_items
from tests.events import http_api_v1_event
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


def start(client) -> dict:
    answer = authorize(client)
    assert answer.status_code == 200, answer.body
    return answer.json_body


def image(client, user_code, accept="image/png"):
    headers = {"accept": accept} if accept else {}
    return client.http.get(f"/oauth/device?user_code={user_code}", headers=headers)


def test_the_mini_program_code_is_made_once_per_user_code_and_served_as_png(client, wxacode, clock):
    body = start(client)
    for _ in range(2):
        answer = image(client, body["user_code"])
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "image/png"
        assert answer.headers["Cache-Control"] == "private, max-age=300"
        assert answer.body == PNG
    # the home page of the released mini-program: its page reads the user code from `scene`
    assert wxacode.sent == [
        {"scene": body["user_code"], "check_path": True, "env_version": "release"}
    ]
    clock.advance(100)
    assert image(client, body["user_code"].lower(), "*/*").headers["Cache-Control"] == (
        "private, max-age=200"
    )
    assert len(wxacode.sent) == 1


def test_the_image_needs_an_accept_that_takes_it_and_a_live_user_code(client, wxacode, clock):
    body = start(client)
    assert_error(image(client, body["user_code"], accept=None), 400, "invalid_request")
    assert_error(image(client, body["user_code"], "application/json"), 400, "invalid_request")
    assert_error(image(client, "BCDF-GHJK"), 404, "not_found")
    assert_error(image(client, "not a code"), 400, "invalid_request")
    assert_error(
        client.http.get("/oauth/device", headers={"accept": "*/*"}), 400, "invalid_request"
    )
    clock.advance(300)
    assert_error(image(client, body["user_code"]), 404, "not_found")
    assert wxacode.sent == []


def test_a_wechat_failure_is_503_and_the_next_request_tries_again(client, wxacode):
    body = start(client)
    wxacode.errcode = -1  # system busy, twice: WeChatUnavailable after one retry
    answer = image(client, body["user_code"])
    assert_error(answer, 503, "temporarily_unavailable")
    assert len(wxacode.sent) == 2
    wxacode.errcode = None
    assert image(client, body["user_code"]).status_code == 200
    assert len(wxacode.sent) == 3


def test_a_page_wechat_refuses_is_a_server_error_naming_no_secret(client, wxacode):
    body = start(client)
    wxacode.errcode = 41030
    answer = image(client, body["user_code"])
    assert_error(answer, 500, "server_error")
    assert "access_token" not in answer.body.decode()


def test_request_counts(client, dynamodb_requests, clock):
    """device_authorization: the per-IP counter and the login's PutItem; a poll one UpdateItem
    whatever it answers (a slow_down two); a confirm the user's counter and one UpdateItem;
    the poll that gets the tokens: its refused UpdateItem, the profile, one transaction."""
    user = login(client)
    del dynamodb_requests[:]
    body = start(client)
    assert dynamodb_requests == ["UpdateItem", "PutItem"]
    del dynamodb_requests[:]
    assert_error(poll(client, body["device_code"]), 400, "authorization_pending")
    assert dynamodb_requests == ["UpdateItem"]
    del dynamodb_requests[:]
    clock.advance(1)
    assert_error(poll(client, body["device_code"]), 400, "slow_down")
    assert dynamodb_requests == ["UpdateItem", "UpdateItem"]
    del dynamodb_requests[:]
    headers = bearer(user["access_token"])
    shown = client.http.get(f"/auth/device/{body['user_code']}", headers=headers)
    assert shown.status_code == 200
    assert dynamodb_requests[-2:] == ["UpdateItem", "GetItem"]  # after the token's session check
    del dynamodb_requests[:]
    post(client, "/auth/device/confirm", {"user_code": body["user_code"]}, headers)
    assert dynamodb_requests[-2:] == ["UpdateItem", "UpdateItem"]
    del dynamodb_requests[:]
    clock.advance(10)
    assert poll(client, body["device_code"]).status_code == 200
    assert dynamodb_requests == ["UpdateItem", "GetItem", "TransactWriteItems"]


def test_an_oauth_client_needs_the_device_login_scope(client, services):
    allowed, secret = services.clients.create(["device_login"], now=START, client_id="tv-app")
    other, _ = services.clients.create(["orders:read"], now=START, client_id="shop")
    public = form_post(client, "/oauth/device_authorization", {"client_id": "tv-app"})
    assert public.status_code == 200, public.body
    confidential = form_post(
        client,
        "/oauth/device_authorization",
        {"client_id": "tv-app", "client_secret": secret},
    )
    assert confidential.status_code == 200, confidential.body
    wrong = form_post(
        client,
        "/oauth/device_authorization",
        {"client_id": "tv-app", "client_secret": "wrong"},
    )
    assert_error(wrong, 401, "invalid_client")
    refused = form_post(client, "/oauth/device_authorization", {"client_id": "shop"})
    assert_error(refused, 400, "unauthorized_client")
    assert_error(authorize(client, scope="openid"), 400, "invalid_scope")
    assert allowed.client_id == "tv-app" and other.client_id == "shop"


def test_the_device_session_is_the_oauth_clients(client, services, clock):
    services.clients.create(["device_login"], now=START, client_id="tv-app")
    body = form_post(client, "/oauth/device_authorization", {"client_id": "tv-app"}).json_body
    user = login(client)
    post(
        client,
        "/auth/device/confirm",
        {"user_code": body["user_code"]},
        bearer(user["access_token"]),
    )
    clock.advance(5)
    # the login is the client's: another client id is refused, the right one gets tokens
    assert_error(poll(client, body["device_code"], client_id=TEST_APPID), 400, "invalid_grant")
    tokens = poll(client, body["device_code"], client_id="tv-app")
    assert tokens.status_code == 200, tokens.body
    claims = jwt.decode(tokens.json_body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "tv-app"
    assert claims["aud"] == "wxauth-test"  # AUTH_AUDIENCE: the user's token, for its APIs


def test_events_confirmed_and_denied_never_carry_a_code(client, services, monkeypatch):
    sent: list[tuple[str, int, dict]] = []
    monkeypatch.setattr(
        services.events, "emit", lambda kind, now, **detail: sent.append((kind, now, detail))
    )
    first, second = start(client), start(client)
    user = login(client)
    headers = bearer(user["access_token"])
    post(client, "/auth/device/confirm", {"user_code": first["user_code"]}, headers)
    post(client, "/auth/device/deny", {"user_code": second["user_code"]}, headers)
    emitted = [(kind, detail) for kind, _, detail in sent]
    kinds = [kind for kind, _ in emitted]
    assert "DeviceLoginConfirmed" in kinds and "DeviceLoginDenied" in kinds
    for kind, detail in emitted:
        if kind.startswith("DeviceLogin"):
            assert set(detail) == {"user_id", "client_id", "device_login_id"}
            text = json.dumps(detail)
            for code in (first, second):
                assert code["user_code"] not in text
                assert code["device_code"] not in text


def test_a_client_credentials_token_cannot_confirm(client, services):
    record, secret = services.clients.create(["orders:read"], now=START, client_id="shop")
    issued = token(
        client, {"grant_type": "client_credentials", "client_id": "shop", "client_secret": secret}
    ).json_body
    body = start(client)
    answer = post(
        client,
        "/auth/device/confirm",
        {"user_code": body["user_code"]},
        bearer(issued["access_token"]),
    )
    assert answer.status_code in (401, 403)
    assert record.client_id == "shop"


def test_the_image_is_a_base64_binary_answer_in_an_http_api_event(client, services, wxacode):
    """Behind the HTTP API (payload 1.0) the PNG goes back base64-encoded with isBase64Encoded:
    image/png is one of Chalice's binary types, and the request's Accept takes it."""
    import app

    body = start(client)
    event = http_api_v1_event(
        "GET", "/oauth/device", headers={"accept": "image/png"}, route_path="/oauth/device"
    )
    event["queryStringParameters"] = {"user_code": body["user_code"]}
    event["multiValueQueryStringParameters"] = {"user_code": [body["user_code"]]}
    answer = app.app(event, None)
    assert answer["statusCode"] == 200
    assert answer["isBase64Encoded"] is True
    assert base64.b64decode(answer["body"]) == PNG
    assert answer["headers"]["Content-Type"] == "image/png"
