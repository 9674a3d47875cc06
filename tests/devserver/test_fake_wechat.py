"""The fake WeChat answers like `jscode2session`, following the code conventions it documents."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devserver.fake_wechat import FakeWeChat, openid_for, unionid_for

APPID = "wx-test-appid"
SECRET = "test-secret"


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    with FakeWeChat(APPID, SECRET) as server:
        yield server


def exchange(fake: FakeWeChat, code: str | None, **overrides: str | None) -> requests.Response:
    params: dict[str, str | None] = {
        "appid": APPID,
        "secret": SECRET,
        "js_code": code,
        "grant_type": "authorization_code",
    }
    params.update(overrides)
    return requests.get(f"{fake.url}/sns/jscode2session", params=params, timeout=10)


def body(fake: FakeWeChat, code: str | None, **overrides: str | None) -> dict[str, Any]:
    response = exchange(fake, code, **overrides)
    assert response.status_code == 200
    return response.json()


def test_success_is_text_plain_json_with_openid_and_session_key(fake: FakeWeChat) -> None:
    response = exchange(fake, "alice.1")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain"
    data = response.json()
    assert set(data) == {"openid", "session_key"}
    assert data["openid"] == openid_for(APPID, "alice")
    assert data["openid"].startswith("o") and len(data["openid"]) == 28
    assert len(base64.b64decode(data["session_key"], validate=True)) == 16


def test_same_user_gets_same_openid_with_distinct_codes(fake: FakeWeChat) -> None:
    first = body(fake, "alice.1")
    second = body(fake, "alice.2")
    other = body(fake, "bob.1")

    assert first["openid"] == second["openid"]
    assert first["session_key"] != second["session_key"]
    assert other["openid"] != first["openid"]


def test_bare_user_code_works(fake: FakeWeChat) -> None:
    assert body(fake, "carol")["openid"] == openid_for(APPID, "carol")


def test_openid_depends_on_appid_and_unionid_does_not() -> None:
    assert openid_for("wx-a", "union-dan") != openid_for("wx-b", "union-dan")
    assert unionid_for("union-dan").startswith("u") and len(unionid_for("union-dan")) == 28


def test_unionid_only_for_union_users(fake: FakeWeChat) -> None:
    with_union = body(fake, "union-dan.1")
    again = body(fake, "union-dan.2")
    without = body(fake, "dan.1")

    assert with_union["unionid"] == unionid_for("union-dan") == again["unionid"]
    assert "unionid" not in without


def test_code_works_once(fake: FakeWeChat) -> None:
    assert "openid" in body(fake, "alice.1")

    assert body(fake, "alice.1")["errcode"] == 40163
    assert "openid" in body(fake, "alice.2")


@pytest.mark.parametrize(
    ("code", "errcode"),
    [
        ("err-40029", 40029),
        ("err-40163", 40163),
        ("err-40226", 40226),
        ("err-45011", 45011),
        ("err--1", -1),
        ("err-40029.some-suffix", 40029),
        ("err-12345", 12345),
    ],
)
def test_err_codes_answer_their_errcode_every_time(
    fake: FakeWeChat, code: str, errcode: int
) -> None:
    for _ in range(2):
        data = body(fake, code)
        assert data["errcode"] == errcode
        assert isinstance(data["errmsg"], str) and data["errmsg"]
        assert "openid" not in data


@pytest.mark.parametrize("code", ["err-abc", ".1", "slow-x.alice", "slow-10"])
def test_malformed_codes_are_invalid(fake: FakeWeChat, code: str) -> None:
    assert body(fake, code)["errcode"] == 40029


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"appid": None}, 41002),
        ({"secret": None}, 41004),
        ({"js_code": None}, 41008),
        ({"js_code": ""}, 41008),
        ({"appid": "wx-other"}, 40013),
        ({"secret": "wrong-secret"}, 40125),
        ({"grant_type": "client_credential"}, 40002),
        ({"grant_type": None}, 40002),
    ],
)
def test_bad_parameters(fake: FakeWeChat, overrides: dict[str, str | None], errcode: int) -> None:
    data = body(fake, "alice.1", **overrides)

    assert data["errcode"] == errcode
    assert SECRET not in data["errmsg"]


def test_rejected_request_does_not_use_the_code(fake: FakeWeChat) -> None:
    assert body(fake, "alice.1", secret="wrong-secret")["errcode"] == 40125

    assert "openid" in body(fake, "alice.1")


def test_calls_are_counted_in_total_and_per_code(fake: FakeWeChat) -> None:
    body(fake, "alice.1")
    body(fake, "alice.1")
    body(fake, "err-40029")

    assert fake.calls == 3
    assert fake.calls_for("alice.1") == 2
    assert fake.calls_for("err-40029") == 1
    assert fake.calls_for("never-sent") == 0


def test_stats_and_reset(fake: FakeWeChat) -> None:
    body(fake, "alice.1")
    body(fake, "bob.1")
    assert requests.get(f"{fake.url}/_fake/stats", timeout=10).json() == {
        "calls": 2,
        "phone_calls": 0,
    }

    assert requests.post(f"{fake.url}/_fake/reset", timeout=10).status_code == 200

    assert requests.get(f"{fake.url}/_fake/stats", timeout=10).json() == {
        "calls": 0,
        "phone_calls": 0,
    }
    assert fake.calls == 0 and fake.calls_for("alice.1") == 0
    assert "openid" in body(fake, "alice.1")  # used codes are forgotten too


def test_slow_code_waits_then_answers_as_its_user(fake: FakeWeChat) -> None:
    started = time.monotonic()
    data = body(fake, "slow-300.alice.9")
    elapsed = time.monotonic() - started

    assert elapsed >= 0.29
    assert data["openid"] == openid_for(APPID, "alice")
    assert body(fake, "slow-1.alice.9")["openid"] == data["openid"]
    assert body(fake, "slow-1.alice.9")["errcode"] == 40163


def test_slow_code_can_answer_an_error(fake: FakeWeChat) -> None:
    assert body(fake, "slow-1.err-45011")["errcode"] == 45011


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("POST", "/sns/jscode2session")])
def test_unknown_paths_are_404_json(fake: FakeWeChat, method: str, path: str) -> None:
    response = requests.request(method, f"{fake.url}{path}", timeout=10)

    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


def test_start_returns_url_and_stop_frees_the_port() -> None:
    fake = FakeWeChat(APPID, SECRET)
    url = fake.start()
    assert url.startswith("http://127.0.0.1:")
    assert requests.get(f"{url}/_fake/stats", timeout=10).ok

    fake.stop()

    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_fake/stats", timeout=2)


# -- getuserphonenumber ------------------------------------------------------------------------


def server_token(fake: FakeWeChat) -> str:
    """A server access_token the fake issued (stable_token), as the broker would hold."""
    body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    response = requests.post(f"{fake.url}/cgi-bin/stable_token", json=body, timeout=10)
    return response.json()["access_token"]


def phone(
    fake: FakeWeChat, code: object, user: str | None = "alice", token: str | None = None
) -> dict:
    token = server_token(fake) if token is None else token
    body: dict[str, object] = {"code": code}
    if user is not None:
        body["openid"] = openid_for(APPID, user)
    response = requests.post(
        f"{fake.url}/wxa/business/getuserphonenumber",
        params={"access_token": token},
        json=body,
        timeout=10,
    )
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/plain"
    return response.json()


def test_phone_code_answers_the_users_number_once(fake: FakeWeChat) -> None:
    first = phone(fake, "phone.alice.13800138000")
    assert first["errcode"] == 0
    info = first["phone_info"]
    assert (info["phoneNumber"], info["purePhoneNumber"], info["countryCode"]) == (
        "13800138000",
        "13800138000",
        "86",
    )
    assert info["watermark"]["appid"] == APPID
    assert phone(fake, "phone.alice.13800138000")["errcode"] == 40029  # single use
    foreign = phone(fake, "phone.alice.1-4155550100.2")["phone_info"]
    assert (foreign["phoneNumber"], foreign["countryCode"]) == ("+14155550100", "1")
    assert fake.phone_calls == 3 and fake.phone_calls_for("phone.alice.13800138000") == 2
    assert fake.calls == 0  # jscode2session's count is its own


def test_phone_code_of_another_user_is_refused_and_stays_usable(fake: FakeWeChat) -> None:
    assert phone(fake, "phone.bob.13900139000", user="alice")["errcode"] == 40003
    assert phone(fake, "phone.bob.13900139000", user="bob")["errcode"] == 0


def test_phone_code_expires_five_minutes_after_its_time() -> None:
    now = [1_800_000_000.0]
    with FakeWeChat(APPID, SECRET, clock=lambda: now[0]) as fake:
        code = "phone.alice.13800138000.t1800000000"
        now[0] += 300
        assert phone(fake, code)["errcode"] == 40029
        now[0] -= 1
        assert phone(fake, code)["errcode"] == 0


@pytest.mark.parametrize("errcode", [1400001, 45009, 40029, -1])
def test_phone_err_codes(fake: FakeWeChat, errcode: int) -> None:
    assert phone(fake, f"phone.err-{errcode}.1")["errcode"] == errcode


def test_phone_access_token_checks(fake: FakeWeChat) -> None:
    assert phone(fake, "phone.alice.1", token="")["errcode"] == 41001
    assert phone(fake, "phone.alice.1", token="never-issued")["errcode"] == 40001
    old = server_token(fake)
    fake.refuse_access_token(old)
    assert phone(fake, "phone.alice.13800138000", token=old)["errcode"] == 40001
    fake.tokens.invalidate()
    new = server_token(fake)
    assert phone(fake, "phone.alice.13800138000", token=new)["errcode"] == 0
    assert phone(fake, "", token=new)["errcode"] == 41008
    assert phone(fake, "alice.1", token=new)["errcode"] == 40029  # a login code


APP_B, SECRET_B = "wx-app-b", "secret-of-b"


def test_each_app_has_its_own_server_tokens_and_phone_codes() -> None:
    """Issue 22, item 10: a second mini-program's phone code works only with that app's token
    and the user's openid in that app; with the first app's token it is 40029."""
    with FakeWeChat(APPID, SECRET, apps={APP_B: SECRET_B}) as fake:
        body = {"grant_type": "client_credential", "appid": APP_B, "secret": SECRET_B}
        token_b = requests.post(f"{fake.url}/cgi-bin/stable_token", json=body, timeout=10).json()
        token_b = token_b["access_token"]
        token_a = server_token(fake)
        assert token_a != token_b
        assert fake.access_token_app(token_b) == APP_B and fake.access_token_app(token_a) == APPID
        wrong_secret = {**body, "secret": SECRET}
        answer = requests.post(f"{fake.url}/cgi-bin/stable_token", json=wrong_secret, timeout=10)
        assert answer.json()["errcode"] == 40125

        code = f"phone.bob.13900139000.@{APP_B}"

        def ask(token: str, openid: str) -> dict:
            return requests.post(
                f"{fake.url}/wxa/business/getuserphonenumber",
                params={"access_token": token},
                json={"code": code, "openid": openid},
                timeout=10,
            ).json()

        assert ask(token_a, openid_for(APPID, "bob"))["errcode"] == 40029  # the first app's token
        assert ask(token_b, openid_for(APPID, "bob"))["errcode"] == 40003  # the first app's openid
        answer = ask(token_b, openid_for(APP_B, "bob"))  # the code stayed usable until now
        assert answer["errcode"] == 0 and answer["phone_info"]["watermark"]["appid"] == APP_B
        plain = phone(fake, "phone.alice.13800138000", token=token_b)
        assert plain["errcode"] == 40029  # no `@`: the primary app's code
        fake.app_tokens[APP_B].invalidate()
        assert ask(token_b, openid_for(APP_B, "bob"))["errcode"] == 40001


def test_phone_stats_and_reset(fake: FakeWeChat) -> None:
    phone(fake, "phone.alice.13800138000")
    assert requests.get(f"{fake.url}/_fake/stats", timeout=10).json() == {
        "calls": 0,
        "phone_calls": 1,
    }
    requests.post(f"{fake.url}/_fake/reset", timeout=10)
    assert fake.phone_calls == 0
    assert phone(fake, "phone.alice.13800138000")["errcode"] == 0


# -- stable_token and the access-token check (the broker's side of the fake) -------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def token_clock() -> _Clock:
    return _Clock()


@pytest.fixture
def token_fake(token_clock: _Clock) -> Iterator[FakeWeChat]:
    with FakeWeChat(APPID, SECRET, clock=token_clock) as server:
        yield server


def stable(fake: FakeWeChat, force: bool | None = None, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    if force is not None:
        payload["force_refresh"] = force
    payload.update(overrides)
    response = requests.post(f"{fake.url}/cgi-bin/stable_token", json=payload, timeout=10)
    assert response.status_code == 200
    return response.json()


def check(fake: FakeWeChat, token: str) -> dict[str, Any]:
    url = f"{fake.url}/cgi-bin/get_api_domain_ip"
    return requests.get(url, params={"access_token": token}, timeout=10).json()


def test_stable_token_normal_mode_answers_the_same_token(token_fake, token_clock) -> None:
    first = stable(token_fake)
    token_clock.now += 1000
    again = stable(token_fake, force=False)
    assert first["access_token"] == again["access_token"]
    assert (first["expires_in"], again["expires_in"]) == (7200, 6200)
    assert check(token_fake, first["access_token"]) == {"ip_list": ["127.0.0.1"]}
    assert token_fake.calls_to("/cgi-bin/stable_token") == 2
    assert token_fake.calls_to("/cgi-bin/get_api_domain_ip") == 1
    assert token_fake.calls == 0  # jscode2session's count is its own


def test_stable_token_renews_in_the_last_five_minutes_keeping_the_old_valid(
    token_fake, token_clock
) -> None:
    old = stable(token_fake)["access_token"]
    token_clock.now += 7200 - 300
    new = stable(token_fake)["access_token"]
    assert new != old
    assert check(token_fake, old) == {"ip_list": ["127.0.0.1"]}
    token_clock.now += 300
    assert check(token_fake, old)["errcode"] == 40001  # expired
    assert check(token_fake, new) == {"ip_list": ["127.0.0.1"]}


def test_force_refresh_invalidates_and_is_limited(token_fake, token_clock) -> None:
    old = stable(token_fake)["access_token"]
    new = stable(token_fake, force=True)["access_token"]
    assert new != old
    assert check(token_fake, old)["errcode"] == 40001
    assert stable(token_fake, force=True)["errcode"] == 45011  # within 30 s
    for _ in range(19):
        token_clock.now += 30
        assert "access_token" in stable(token_fake, force=True)
    token_clock.now += 30
    assert stable(token_fake, force=True)["errcode"] == 45009  # 20 a day
    assert token_fake.tokens.forced == 20
    token_clock.now += 86400
    assert "access_token" in stable(token_fake, force=True)


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"appid": ""}, 41002),
        ({"secret": None}, 41004),
        ({"grant_type": "authorization_code"}, 40002),
        ({"appid": "wx-other"}, 40013),
        ({"secret": "wrong"}, 40125),
    ],
)
def test_stable_token_errors(token_fake, overrides: dict, errcode: int) -> None:
    assert stable(token_fake, **overrides)["errcode"] == errcode


def test_stable_token_body_not_json_and_injected_failures(token_fake) -> None:
    raw = requests.post(f"{token_fake.url}/cgi-bin/stable_token", data=b"{nope", timeout=10)
    assert raw.json()["errcode"] == 47001
    token_fake.tokens.fail_next(40164)
    assert stable(token_fake)["errcode"] == 40164
    assert "access_token" in stable(token_fake)


def test_unknown_and_invalidated_tokens_are_40001(token_fake) -> None:
    assert check(token_fake, "wxat-made-up")["errcode"] == 40001
    token = stable(token_fake)["access_token"]
    token_fake.tokens.invalidate()
    assert check(token_fake, token)["errcode"] == 40001
    assert stable(token_fake)["access_token"] != token
