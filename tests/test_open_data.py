"""POST /auth/decrypt (chalicelib/open_data.py, issue 25 item 5): WeChat's encryptedData,
decrypted with the session's sealed session_key, which never leaves the server. The test vectors
are made by encrypting with the stub WeChat's session_key (tests/conftest.py)."""

from __future__ import annotations

import base64
import json

import pytest

from chalicelib.open_data import open_session_key, seal_session_key
from chalicelib.store.sessions import SESSION_KEY_SEALED
from tests.conftest import (
    START,
    STUB_SESSION_KEY_MARK,
    TEST_APPID,
    TEST_SECRET,
    encrypt_open_data,
    stub_session_key,
    table_items,
)
from tests.http import assert_error, bearer, login, post

WERUN = {"stepInfoList": [{"timestamp": START - 86_400, "step": 4321}]}


def payload(data: dict | None = None, *, appid: str = TEST_APPID, timestamp: int = START) -> dict:
    return {**(data or WERUN), "watermark": {"appid": appid, "timestamp": timestamp}}


def decrypt(client, tokens: dict, body: object):
    return post(client, "/auth/decrypt", body, headers=bearer(tokens["access_token"]))


def session_items(dynamodb) -> list[dict]:
    return [i for i in table_items(dynamodb) if i["sk"]["S"].startswith("SESSION#")]


def user_items(dynamodb) -> list[dict]:
    return [i for i in table_items(dynamodb) if not i["pk"]["S"].startswith("WXTOKEN#")]


# -- the good path ----------------------------------------------------------------------------


def test_decrypts_with_the_sessions_key(client, wechat, dynamodb_requests):
    tokens = login(client, "alice.1")
    key = stub_session_key(TEST_APPID, "alice.1")
    dynamodb_requests.clear()
    response = decrypt(client, tokens, encrypt_open_data(key, payload()))
    assert response.status_code == 200, response.body
    assert response.json_body == payload()
    assert response.headers["Cache-Control"] == "no-store"
    assert dynamodb_requests == ["GetItem"]  # the token check's: the session holds the key
    assert wechat.check_sessions == 0


def test_the_key_is_kept_sealed_and_survives_a_refresh(client, dynamodb, clock):
    tokens = login(client, "alice.1")
    key = stub_session_key(TEST_APPID, "alice.1")
    (item,) = session_items(dynamodb)
    sealed = item[SESSION_KEY_SEALED]["B"]
    assert key.encode() not in sealed and base64.b64decode(key) not in sealed
    assert key not in json.dumps(table_items(dynamodb), default=str)

    clock.advance(60)
    refreshed = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    (item,) = session_items(dynamodb)
    assert item[SESSION_KEY_SEALED]["B"] == sealed  # the rotation leaves it as it is
    data = payload(timestamp=int(clock.now))
    response = decrypt(client, refreshed.json_body, encrypt_open_data(key, data))
    assert response.status_code == 200 and response.json_body == data


def test_a_logout_removes_the_sealed_key(client, dynamodb):
    tokens = login(client, "alice.1")
    client.http.post("/auth/logout", headers=bearer(tokens["access_token"]))
    (item,) = session_items(dynamodb)
    assert SESSION_KEY_SEALED not in item


def test_the_seal_is_bound_to_the_secret_the_app_and_the_user():
    sealed = seal_session_key(TEST_SECRET, appid="a", user_id="u", session_key="k")
    assert open_session_key(TEST_SECRET, sealed, appid="a", user_id="u") == "k"
    from chalicelib.errors import GrantError

    for secret, appid, user_id in [
        ("other", "a", "u"),
        (TEST_SECRET, "b", "u"),
        (TEST_SECRET, "a", "v"),
    ]:
        with pytest.raises(GrantError):
            open_session_key(secret, sealed, appid=appid, user_id=user_id)


# -- refused ----------------------------------------------------------------------------------


def test_a_tampered_iv_is_400_and_the_key_is_current(client, wechat, dynamodb):
    tokens = login(client, "alice.1")
    body = encrypt_open_data(stub_session_key(TEST_APPID, "alice.1"), payload())
    iv = bytearray(base64.b64decode(body["iv"]))
    iv[0] ^= 0x01  # CBC: the first block's first byte changes, so the JSON does not parse
    before = session_items(dynamodb)
    response = decrypt(client, tokens, {**body, "iv": base64.b64encode(bytes(iv)).decode()})
    assert_error(response, 400, "invalid_request")
    assert "altered" in response.json_body["error_description"]
    assert wechat.check_sessions == 1  # WeChat said the key is current: the data is wrong
    assert session_items(dynamodb) == before


def test_undecryptable_data_asks_wechat_at_most_ten_times_a_session(client, wechat, dynamodb):
    """AUTH_LIMIT_DECRYPT_CHECK_PER_SESSION (10 in 600 s by default): garbage costs WeChat a
    checksession each time, so an eleventh is 429 slow_down without asking WeChat; the session
    and good data are not affected by it."""
    tokens = login(client, "alice.1")
    key = stub_session_key(TEST_APPID, "alice.1")
    garbage = {**encrypt_open_data(key, payload()), "iv": base64.b64encode(b"\x01" * 16).decode()}
    for _ in range(10):
        assert_error(decrypt(client, tokens, garbage), 400, "invalid_request")
    assert wechat.check_sessions == 10
    before = session_items(dynamodb)

    refused = decrypt(client, tokens, garbage)

    assert_error(refused, 429, "slow_down")
    assert int(refused.headers["Retry-After"]) > 0
    assert wechat.check_sessions == 10
    assert session_items(dynamodb) == before
    assert decrypt(client, tokens, encrypt_open_data(key, payload())).status_code == 200


def test_tampered_data_is_400(client, wechat):
    tokens = login(client, "alice.1")
    body = encrypt_open_data(stub_session_key(TEST_APPID, "alice.1"), payload())
    data = bytearray(base64.b64decode(body["encryptedData"]))
    data[-1] ^= 0x55  # the padding breaks
    response = decrypt(client, tokens, {**body, "encryptedData": base64.b64encode(data).decode()})
    assert_error(response, 400, "invalid_request")


def test_another_apps_watermark_is_400(client, wechat):
    tokens = login(client, "alice.1")
    key = stub_session_key(TEST_APPID, "alice.1")
    response = decrypt(client, tokens, encrypt_open_data(key, payload(appid="wx-other-app")))
    assert_error(response, 400, "invalid_request")
    assert "another app" in response.json_body["error_description"]


@pytest.mark.parametrize(
    "watermark",
    [None, {"appid": TEST_APPID}, {"appid": TEST_APPID, "timestamp": "1"}],
)
def test_a_missing_or_bad_watermark_is_400(client, wechat, watermark):
    tokens = login(client, "alice.1")
    data = {**WERUN, **({"watermark": watermark} if watermark else {})}
    body = encrypt_open_data(stub_session_key(TEST_APPID, "alice.1"), data)
    assert_error(decrypt(client, tokens, body), 400, "invalid_request")


def test_old_data_is_400(client, wechat, clock):
    tokens = login(client, "alice.1")
    key = stub_session_key(TEST_APPID, "alice.1")
    clock.advance(301)  # AUTH_DECRYPT_MAX_AGE's default is 300 s
    response = decrypt(client, tokens, encrypt_open_data(key, payload(timestamp=START)))
    assert_error(response, 400, "invalid_request")
    assert "old" in response.json_body["error_description"]
    fresh = payload(timestamp=int(clock.now) - 10)
    assert decrypt(client, tokens, encrypt_open_data(key, fresh)).status_code == 200


def test_data_from_the_future_is_400(client, wechat):
    tokens = login(client, "alice.1")
    key = stub_session_key(TEST_APPID, "alice.1")
    body = encrypt_open_data(key, payload(timestamp=START + 3600))
    assert_error(decrypt(client, tokens, body), 400, "invalid_request")


def test_a_key_replaced_by_a_later_wx_login_is_session_key_expired(client, wechat, dynamodb):
    old_session = login(client, "alice.1")
    new_session = login(client, "alice.2")  # wx.login again: WeChat's key for alice changed
    new_key = stub_session_key(TEST_APPID, "alice.2")
    body = encrypt_open_data(new_key, payload())  # data WeChat encrypted since, with the new key

    response = decrypt(client, old_session, body)
    assert_error(response, 400, "session_key_expired")
    assert "log in again" in response.json_body["error_description"]
    assert wechat.check_sessions == 1
    assert decrypt(client, new_session, body).status_code == 200


@pytest.mark.parametrize("errcode", [-1, 40013, 45009])
def test_checksession_failing_is_503(client, wechat, dynamodb, errcode):
    tokens = login(client, "alice.1")
    body = encrypt_open_data(stub_session_key(TEST_APPID, "other"), payload())  # a wrong key
    wechat.check_session_errcodes.extend([errcode, errcode])  # -1 is retried once
    before = session_items(dynamodb)
    response = decrypt(client, tokens, body)
    assert_error(response, 503, "temporarily_unavailable")
    assert "Retry-After" in response.headers
    assert session_items(dynamodb) == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"encryptedData": "abc"},
        {"iv": "MDEyMzQ1Njc4OWFiY2RlZg=="},
        {"encryptedData": "not base64!", "iv": "MDEyMzQ1Njc4OWFiY2RlZg=="},
        {"encryptedData": "AAAA", "iv": "MDEyMzQ1Njc4OWFiY2RlZg=="},  # not whole blocks
        {"encryptedData": "A" * 24, "iv": "c2hvcnQ="},  # a short iv
        {"encryptedData": 5, "iv": "MDEyMzQ1Njc4OWFiY2RlZg=="},
        {"encryptedData": "A" * 24, "iv": "MDEyMzQ1Njc4OWFiY2RlZg==", "extra": 1},
        {"encryptedData": "A" * 8000, "iv": "MDEyMzQ1Njc4OWFiY2RlZg=="},
    ],
)
def test_bad_input_is_400_and_asks_wechat_nothing(client, wechat, dynamodb, body):
    tokens = login(client, "alice.1")
    before = user_items(dynamodb)
    assert decrypt(client, tokens, body).status_code in (400, 413)
    assert wechat.check_sessions == 0
    assert user_items(dynamodb) == before


def test_a_session_without_a_kept_key_is_session_key_expired(client, dynamodb):
    tokens = login(client, "alice.1")
    (item,) = session_items(dynamodb)
    dynamodb.update_item(  # a session of an earlier release
        TableName="wxauth-test",
        Key={"pk": item["pk"], "sk": item["sk"]},
        UpdateExpression="REMOVE #k",
        ExpressionAttributeNames={"#k": SESSION_KEY_SEALED},
    )
    body = encrypt_open_data(stub_session_key(TEST_APPID, "alice.1"), payload())
    assert_error(decrypt(client, tokens, body), 400, "session_key_expired")


def test_decrypt_needs_a_user_access_token(client):
    body = encrypt_open_data(stub_session_key(TEST_APPID, "alice.1"), payload())
    assert_error(post(client, "/auth/decrypt", body), 401, "invalid_token")


def test_no_session_key_in_any_answer_or_log_line(client, wechat, log_lines, caplog):
    tokens = login(client, "alice.1")
    key = stub_session_key(TEST_APPID, "alice.1")
    answers = [tokens]
    answers.append(decrypt(client, tokens, encrypt_open_data(key, payload())).json_body)
    wrong = encrypt_open_data(stub_session_key(TEST_APPID, "x"), payload())
    answers.append(decrypt(client, tokens, wrong).json_body)
    login(client, "alice.2")
    answers.append(decrypt(client, tokens, wrong).json_body)
    answers.append(client.http.get("/me", headers=bearer(tokens["access_token"])).json_body)
    logs = "\n".join(log_lines) + caplog.text
    for secret in (key, STUB_SESSION_KEY_MARK, TEST_SECRET):
        assert secret not in json.dumps(answers) + logs
    assert "stepInfoList" not in logs and "4321" not in logs  # nor what it decrypts to
