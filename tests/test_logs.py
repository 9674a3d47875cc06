"""Logs: one JSON line per request, and never a secret, token, code or session_key."""

from __future__ import annotations

import json
import logging

from chalicelib.phone import phone_hash
from tests.api import test_internal as wechat_access
from tests.api.test_internal import SERVER_TOKEN, client_token
from tests.conftest import STUB_SESSION_KEY_MARK, TEST_APPID, TEST_SECRET, stub_session_key
from tests.http import bearer, post

# Fixtures: the conftest's WeChat stub, with stable_token on the same mock.
wechat = wechat_access.wechat
stable = wechat_access.stable


def test_a_full_session_logs_no_secret(client, services, log_lines, caplog, clock, request):
    caplog.set_level(logging.DEBUG)
    stable_token = request.getfixturevalue("stable")
    code = "union-grace.1"
    login = post(client, "/auth/login", {"code": code}).json_body
    replay = post(client, "/auth/login", {"code": code}).json_body
    refreshed = post(client, "/auth/refresh", {"refresh_token": login["refresh_token"]}).json_body
    client.http.get("/me", headers=bearer(refreshed["access_token"]))
    post(client, "/auth/verify", {"token": refreshed["access_token"]})
    post(client, "/auth/login", {"code": "err-40125"})  # a configuration error is logged
    phone_code = "phone.union-grace.13800138000"
    phone = post(
        client, "/auth/phone", {"code": phone_code}, headers=bearer(refreshed["access_token"])
    )
    assert phone.status_code == 200
    client.http.get("/me", headers=bearer(refreshed["access_token"]))
    post(client, "/auth/phone", {"code": phone_code}, headers=bearer(refreshed["access_token"]))
    post(
        client,
        "/auth/phone",
        {"code": "phone.union-grace.13900139000.nope"},
        headers=bearer(refreshed["access_token"]),
    )
    post(
        client,
        "/auth/phone",
        {"code": "phone.err-1400001"},
        headers=bearer(refreshed["access_token"]),
    )
    clock.advance(60)
    post(client, "/auth/refresh", {"refresh_token": login["refresh_token"]})  # reuse -> metric
    client.http.post("/auth/logout", headers=bearer(refreshed["access_token"]))
    key_pem = json.loads(services.keys.get().to_json())["keys"][0]["private_key_pem"]
    # The WeChat server access token: fetched, served to a client, refused once and replaced.
    backend = client_token(client, services, ["wechat:access_token"])
    served = post(client, "/wechat/access-token", headers=bearer(backend)).json_body
    refused: list[str] = []

    def refuse_once(token: str) -> str:
        refused.append(token)
        if len(refused) == 1:
            from chalicelib.errors import WeChatTokenInvalid

            raise WeChatTokenInvalid("refused")
        return token

    services.broker.call(refuse_once)

    secrets = {
        "app secret": TEST_SECRET,
        "code": code,
        "session_key": stub_session_key(TEST_APPID, code),
        "any session_key": STUB_SESSION_KEY_MARK,
        "access token": login["access_token"],
        "refreshed access token": refreshed["access_token"],
        "refresh token": login["refresh_token"],
        "refresh token secret part": login["refresh_token"].split(".")[3],
        "refresh token MAC": login["refresh_token"].split(".")[4],
        "rotated refresh token": refreshed["refresh_token"],
        "signing key": key_pem.splitlines()[1],
        "phone code": phone_code,
        "other phone code": "phone.union-grace.13900139000.nope",
        "phone number": "13800138000",
        # an unsalted SHA-256 of a phone number is the number: there are only so many numbers
        "phone number's hash": phone_hash("+8613800138000"),
        "other phone number": "13900139000",
        "WeChat server access token": SERVER_TOKEN,
        "client's access token": backend,
    }
    everything = log_lines + [r.getMessage() for r in caplog.records]
    assert replay["refresh_token"] == login["refresh_token"]
    secrets["replayed access token"] = replay["access_token"]
    assert len(everything) > 8
    assert served["access_token"] == SERVER_TOKEN and len(refused) == 2 and stable_token.calls == 2
    assert any("WeChatTokenForceRefresh" in line for line in everything)  # the refusal was seen
    for name, value in secrets.items():
        leaks = [line for line in everything if value in line]
        assert not leaks, f"{name} leaked into the logs: {leaks[0][:80]}..."


def test_one_structured_line_per_request(client, log_lines):
    post(client, "/auth/login", {"code": "heidi.1"})
    post(client, "/auth/login", raw="{nope")
    requests_logged = [json.loads(line) for line in log_lines if '"event":"request"' in line]
    assert len(requests_logged) == 2
    ok, bad = requests_logged
    assert ok["route"] == "/auth/login" and ok["status"] == 200 and ok["error"] is None
    assert ok["user_id"] and ok["request_id"] and isinstance(ok["latency_ms"], float)
    assert bad["status"] == 400 and bad["error"] == "invalid_request" and bad["user_id"] is None


def test_configuration_errors_are_logged_as_such(client, log_lines):
    post(client, "/auth/login", {"code": "err-40125"})
    events = [json.loads(line) for line in log_lines]
    wechat = [e for e in events if e.get("event") == "wechat_configuration_error"]
    assert wechat and wechat[0]["errcode"] == 40125
