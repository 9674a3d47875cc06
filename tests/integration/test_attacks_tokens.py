"""Issue 22, read as an attacker would, over real HTTP against the local server (`python -m
devserver`, its gateway matching routes as an HTTP API does), on a moto server and a fake WeChat
of the test's own (so that the WeChat calls can be counted and a second app registered):

- item 1: a used login code handed to its second holder;
- item 5: the login reached through paths that no route matches (API Gateway's `$default`);
- item 7: a refresh token with one character of its last part changed.

Each attack is followed by the legitimate request it must not have spoiled."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import jwt
import pytest
import requests
from moto.server import ThreadedMotoServer

from devserver.fake_wechat import FakeWeChat
from tests.integration.local_server import REPO_ROOT, LocalServer, local_server

pytestmark = pytest.mark.integration

APPID, SECRET = "wx-attack-appid", "attack-secret-0123456789"
OA_APPID, OA_SECRET = "wx-attack-oa", "attack-oa-secret-0123456789"  # an official account
TABLE = "wxauth-attacks"
_codes = itertools.count(1)


@dataclass
class Target:
    server: LocalServer
    wechat: FakeWeChat

    @property
    def url(self) -> str:
        return self.server.url

    def post(self, path: str, body: dict | None = None, **kwargs) -> requests.Response:
        return requests.post(f"{self.url}{path}", json=body, timeout=30, **kwargs)


def admin(env: dict[str, str], *argv: str) -> None:
    """`wxauth-admin` against the server's table (a local one: `--secret` is allowed)."""
    done = subprocess.run(  # noqa: S603 - the project's own command line
        [sys.executable, "-m", "chalicelib.admin", *argv],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    wechat = FakeWeChat(APPID, SECRET, apps={OA_APPID: OA_SECRET})
    wechat.start()
    aws = {
        "AWS_ENDPOINT_URL_DYNAMODB": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AUTH_TABLE_NAME": TABLE,
    }
    env = {**aws, "WECHAT_API_BASE": wechat.url, "WECHAT_APPID": APPID, "WECHAT_SECRET": SECRET}
    try:
        with local_server(tmp_path_factory.mktemp("attacks"), env=env) as server:
            # before the first login, so that the server's first read of the apps sees it
            admin(aws, "app", "add", "--appid", OA_APPID, "--kind", "official-account",
                  "--secret", OA_SECRET)  # fmt: skip
            yield Target(server, wechat)
    finally:
        wechat.stop()
        moto.stop()


def new_code(user: str = "mallory") -> str:
    return f"{user}-{next(_codes)}.1"


# -- item 1: a used code is no bearer credential --------------------------------------------------


def test_a_leaked_code_gets_its_second_holder_nothing(target: Target) -> None:
    code, nonce = new_code("victim"), "a1" * 32
    first = target.post("/auth/login", {"code": code, "appid": APPID, "login_nonce": nonce})
    assert first.status_code == 200, first.text
    victim = first.json()

    for stolen in (
        {"code": code, "appid": APPID},
        {"code": code, "appid": APPID, "login_nonce": "b2" * 32},
        {"code": code, "appid": APPID, "login_nonce": nonce[:-1] + "0"},
    ):
        answer = target.post("/auth/login", stolen)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_grant"
        assert victim["refresh_token"] not in answer.text
        assert victim["user"]["id"] not in answer.text

    retry = target.post("/auth/login", {"code": code, "appid": APPID, "login_nonce": nonce})
    assert retry.status_code == 200 and retry.json()["refresh_token"] == victim["refresh_token"]
    assert target.wechat.calls_for(code) == 1


def test_a_client_without_a_nonce_still_gets_its_retry_and_nobody_else_does(
    target: Target,
) -> None:
    """A mini-program client from before the nonce retries a lost answer at once: answered.
    An attacker who sends a nonce is not the first caller: refused."""
    code = new_code("old-client")
    first = target.post("/auth/login", {"code": code, "appid": APPID})
    assert first.status_code == 200, first.text
    retry = target.post("/auth/login", {"code": code, "appid": APPID})
    assert retry.status_code == 200
    assert retry.json()["refresh_token"] == first.json()["refresh_token"]
    stolen = target.post("/auth/login", {"code": code, "appid": APPID, "login_nonce": "c" * 64})
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"


def test_an_official_accounts_code_from_a_url_is_never_replayed_without_its_nonce(
    target: Target,
) -> None:
    """The code of an official account's web page arrives as `?code=...&state=...`: Referer,
    analytics, a shared link. Whoever posts it after the page did gets nothing, at once."""
    code = new_code("reader")
    first = target.post("/auth/login", {"code": code, "appid": OA_APPID})
    assert first.status_code == 200, first.text
    stolen = target.post("/auth/login", {"code": code, "appid": OA_APPID})
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert first.json()["refresh_token"] not in stolen.text


# -- item 5: no view behind the catch-all route ------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/auth/login/", "/$default/auth/login", "/prod/auth/login", "//auth/login"]
)
def test_the_login_is_not_reached_through_paths_no_route_matches(target: Target, path: str) -> None:
    """Each of these goes to API Gateway's `$default` route, under its loose throttle; answered
    there, the login would run ten times as often as its own route allows."""
    code = new_code("flooder")
    answer = target.post(path, {"code": code, "appid": APPID})
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "not_found"
    assert target.wechat.calls_for(code) == 0  # WeChat never saw the code
    # the code is unspent: the real route logs in with it (WeChat takes a code once)
    assert target.post("/auth/login", {"code": code, "appid": APPID}).status_code == 200


def test_the_token_routes_are_not_reached_through_a_trailing_slash(target: Target) -> None:
    login = target.post("/auth/login", {"code": new_code(), "appid": APPID}).json()
    for path, body in (
        ("/auth/refresh/", {"refresh_token": login["refresh_token"]}),
        ("/auth/verify/", {"token": login["access_token"]}),
    ):
        answer = target.post(path, body)
        assert answer.status_code == 404, (path, answer.text)
    # nothing rotated: the refresh token is still current
    refreshed = target.post("/auth/refresh", {"refresh_token": login["refresh_token"]})
    assert refreshed.status_code == 200
    other_method = requests.get(f"{target.url}/auth/login", timeout=10)
    assert other_method.status_code == 405 and other_method.headers["Allow"] == "POST"


# -- item 7: only an issued refresh token refreshes -----------------------------------------------


def flipped(token: str, index: int) -> str:
    index %= len(token)
    return token[:index] + ("B" if token[index] != "B" else "C") + token[index + 1 :]


@pytest.mark.parametrize("index", [-1, -7, -43])
def test_a_refresh_token_with_its_last_part_changed_is_refused_and_rotates_nothing(
    target: Target, index: int
) -> None:
    login = target.post("/auth/login", {"code": new_code(), "appid": APPID}).json()
    token = login["refresh_token"]
    forged = flipped(token, index)

    answer = target.post("/auth/refresh", {"refresh_token": forged})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_grant"
    oauth = requests.post(
        f"{target.url}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": forged},
        timeout=30,
    )
    assert oauth.status_code == 400 and oauth.json()["error"] == "invalid_grant"

    # the session did not rotate: the issued token is still current, and refreshes
    refreshed = target.post("/auth/refresh", {"refresh_token": token})
    assert refreshed.status_code == 200, refreshed.text
    rotated = refreshed.json()["refresh_token"]
    # and the rotated one, altered in turn, is refused too; the real one goes on
    assert target.post("/auth/refresh", {"refresh_token": flipped(rotated, -2)}).status_code == 400
    assert target.post("/auth/refresh", {"refresh_token": rotated}).status_code == 200


def test_a_forged_token_from_an_access_tokens_ids_refreshes_nothing(target: Target) -> None:
    """Every access token shows the user and session ids: a token made up from them is
    invalid_grant, and does not revoke the session (its owner goes on)."""
    login = target.post("/auth/login", {"code": new_code(), "appid": APPID}).json()
    claims = jwt.decode(login["access_token"], options={"verify_signature": False})
    made_up = f"{claims['sub']}.{claims['sid']}.0.{'A' * 43}.{'K' * 43}"
    answer = target.post("/auth/refresh", {"refresh_token": made_up})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert target.post("/auth/refresh", {"refresh_token": login["refresh_token"]}).ok


def test_the_server_log_names_no_token(target: Target) -> None:
    login = target.post("/auth/login", {"code": new_code(), "appid": APPID}).json()
    target.post("/auth/refresh", {"refresh_token": flipped(login["refresh_token"], -1)})
    output = target.server.output()
    assert login["refresh_token"] not in output
    assert login["refresh_token"].rsplit(".", 1)[1] not in output
