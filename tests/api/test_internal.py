"""POST /wechat/access-token through chalice.test.Client: the scope check, the answer, the errors.

WeChat's stable_token is stubbed with `responses` (as jscode2session is in tests/conftest.py),
on the same mock as the login stub.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import responses

from tests.conftest import START, WECHAT_BASE, WeChatStub
from tests.http import assert_error, basic, bearer, login, post, token

ROUTE = "/wechat/access-token"
SCOPE = "wechat:access_token"
SERVER_TOKEN = "wxat-route-server-token-0123456789abcdefghij"


class StableTokenStub:
    """stable_token over `responses`: answers SERVER_TOKEN, or the queued errcodes first."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.calls = 0
        self.errcodes: list[int] = []
        self._lock = threading.Lock()
        url = f"{WECHAT_BASE}/cgi-bin/stable_token"
        mock.remove(responses.POST, url)  # WeChatStub's own per-app tokens: replaced here
        mock.add_callback(responses.POST, url, callback=self._answer)

    def _answer(self, request) -> tuple[int, dict[str, str], str]:
        with self._lock:
            self.calls += 1
            if self.errcodes:
                body = {"errcode": self.errcodes.pop(0), "errmsg": "stub error"}
            else:
                body = {"access_token": SERVER_TOKEN, "expires_in": 7200}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)


@pytest.fixture
def wechat() -> Iterator[WeChatStub]:
    """The conftest's jscode2session stub, its mock kept so that stable_token joins it."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        stub = WeChatStub(mock)
        stub.mock = mock  # type: ignore[attr-defined]
        yield stub


@pytest.fixture
def stable(wechat: WeChatStub) -> StableTokenStub:
    return StableTokenStub(wechat.mock)  # type: ignore[attr-defined]


def client_token(client, services, scopes: list[str], client_id: str = "orders-backend") -> str:
    _, secret = services.clients.create(scopes, now=START, client_id=client_id)
    response = token(client, {"grant_type": "client_credentials"}, basic(client_id, secret))
    assert response.status_code == 200, response.json_body
    return response.json_body["access_token"]


def test_a_client_with_the_scope_gets_the_server_access_token(client, services, stable) -> None:
    access = client_token(client, services, [SCOPE])

    first = post(client, ROUTE, headers=bearer(access))
    again = post(client, ROUTE, headers=bearer(access))

    assert first.status_code == 200, first.json_body
    assert first.json_body == {"access_token": SERVER_TOKEN, "expires_in": 7200 - 60}
    assert first.headers["Cache-Control"] == "no-store"
    assert again.json_body["access_token"] == SERVER_TOKEN
    assert stable.calls == 1  # the second answer came from the table


def test_a_client_without_the_scope_is_refused(client, services, stable) -> None:
    access = client_token(client, services, ["orders:read"])
    response = post(client, ROUTE, headers=bearer(access))
    assert_error(response, 403, "insufficient_scope")
    assert "insufficient_scope" in response.headers["WWW-Authenticate"]
    assert stable.calls == 0


def test_a_users_token_is_refused(client, stable) -> None:
    response = post(client, ROUTE, headers=bearer(login(client)["access_token"]))
    assert_error(response, 403, "insufficient_scope")
    assert stable.calls == 0


def test_no_or_a_bad_token_is_401(client, stable) -> None:
    assert_error(post(client, ROUTE), 401, "invalid_token")
    assert_error(post(client, ROUTE, headers=bearer("nope")), 401, "invalid_token")
    assert stable.calls == 0


def test_only_post(client) -> None:
    response = client.http.get(ROUTE)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"


def test_wechat_unavailable_is_503_with_retry_after(client, services, stable) -> None:
    access = client_token(client, services, [SCOPE])
    stable.errcodes = [-1, -1]
    response = post(client, ROUTE, headers=bearer(access))
    assert_error(response, 503, "temporarily_unavailable")
    assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("errcode", [45009, 45011])
def test_wechat_quota_is_429_slow_down(client, services, stable, errcode: int) -> None:
    access = client_token(client, services, [SCOPE])
    stable.errcodes = [errcode]
    response = post(client, ROUTE, headers=bearer(access))
    assert_error(response, 429, "slow_down")
    assert response.headers["Retry-After"] == "60"


def test_ip_not_allowlisted_is_a_configuration_error(client, services, stable, log_lines):
    access = client_token(client, services, [SCOPE])
    stable.errcodes = [40164]
    response = post(client, ROUTE, headers=bearer(access))
    assert_error(response, 500, "server_error")
    events = [json.loads(line) for line in log_lines if line.startswith('{"event"')]
    assert any(e.get("errcode") == 40164 for e in events)
    assert any(e["event"] == "configuration_error" for e in events)


def test_the_server_token_is_in_no_log_line(client, services, stable, log_lines, caplog):
    caplog.set_level("DEBUG")
    access = client_token(client, services, [SCOPE])
    assert post(client, ROUTE, headers=bearer(access)).status_code == 200
    everything = log_lines + [r.getMessage() for r in caplog.records]
    assert [json.loads(line)["route"] for line in log_lines if '"event":"request"' in line][
        -1
    ] == ROUTE
    assert not [line for line in everything if SERVER_TOKEN in line]
    assert not [line for line in everything if access in line]
