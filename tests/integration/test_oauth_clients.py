"""Standard clients against wxauth over real HTTP, unchanged: Authlib's OAuth2Session refreshes
a WeChat login, fetches client-credentials tokens and introspects tokens (RFC 7662); pyjwt's
PyJWKClient verifies access tokens from the served `jwks_uri` across a key rotation; the admin
command line acts on the same stack.

The stack: `chalice local` (a child process) on moto's DynamoDB server and the fake WeChat.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from jwt import PyJWKClient
from moto.server import ThreadedMotoServer

from chalicelib.signing_keys import KeySet, replace_file
from chalicelib.store import create_table
from devserver.__main__ import chalice_local_command, free_port
from devserver.fake_wechat import FakeWeChat
from tests.integration.dynamodb_local import dynamodb_client

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
APPID = "wx-oauth-it-appid"
APP_SECRET = "oauth-it-app-secret"
TABLE = "wxauth-oauth-it"
AUDIENCE = "wxauth"  # the default AUTH_AUDIENCE
START_TIMEOUT = 90.0
_codes = itertools.count(1)


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    keys_file: Path

    def discovery(self) -> dict:
        response = requests.get(f"{self.url}/.well-known/openid-configuration", timeout=10)
        response.raise_for_status()
        return response.json()

    def login(self, user: str = "alice") -> dict:
        code = f"{user}.{next(_codes)}"
        response = requests.post(f"{self.url}/auth/login", json={"code": code}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def admin(self, *argv: str) -> tuple[int, object, str]:
        """`python -m chalicelib.admin ...` against this stack: (exit code, JSON output, stderr)."""
        result = subprocess.run(
            [sys.executable, "-m", "chalicelib.admin", *argv],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        out = json.loads(result.stdout) if result.stdout.strip() else None
        return result.returncode, out, result.stderr

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("oauth-clients")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    wechat = FakeWeChat(APPID, APP_SECRET)
    wechat.start()
    process = None
    try:
        host, moto_port = moto.get_host_and_port()
        endpoint = f"http://{host}:{moto_port}"
        port = free_port()
        keys_file = tmp / "signing-keys.json"
        replace_file(str(keys_file), KeySet.new(int(time.time())))
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AUTH_", "WECHAT_"))
        }
        env.update(
            {
                "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AUTH_TABLE_NAME": TABLE,
                "AUTH_ISSUER": f"http://127.0.0.1:{port}",
                "AUTH_SIGNING_KEYS_FILE": str(keys_file),
                "WECHAT_API_BASE": wechat.url,
                "WECHAT_APPID": APPID,
                "WECHAT_SECRET": APP_SECRET,
                # A container keeps the clients it authenticated AUTH_CLIENTS_CACHE_TTL
                # seconds (tests/test_admin.py, with an injected clock); here none, so that
                # the admin's `client disable` in another process is seen at once.
                "AUTH_CLIENTS_CACHE_TTL": "0",
            }
        )
        dynamodb = dynamodb_client(endpoint)
        create_table(dynamodb, TABLE)
        log = tmp / "chalice-local.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                chalice_local_command(port),
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        stack = Stack(f"http://127.0.0.1:{port}", env, process, log, keys_file)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"chalice local exited with {process.returncode}:\n{stack.output()}")
            try:
                stack.discovery()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"chalice local did not serve in time:\n{stack.output()}")
                time.sleep(0.2)
        yield stack
    finally:
        if process is not None:
            stop(process)
        wechat.stop()
        moto.stop()


def test_discovery_names_this_server(stack: Stack) -> None:
    body = stack.discovery()
    assert body["issuer"] == stack.url
    assert body["jwks_uri"] == f"{stack.url}/.well-known/jwks.json"
    assert body["token_endpoint"] == f"{stack.url}/oauth/token"
    assert body["revocation_endpoint"] == f"{stack.url}/oauth/revoke"
    assert body["introspection_endpoint"] == f"{stack.url}/oauth/introspect"


# -- Authlib: refresh ----------------------------------------------------------------------------


def test_authlib_refreshes_a_wechat_login(stack: Stack) -> None:
    endpoints = stack.discovery()
    tokens = stack.login()
    session = OAuth2Session(client_id=APPID, token=tokens)

    refreshed = session.refresh_token(
        endpoints["token_endpoint"], refresh_token=tokens["refresh_token"]
    )

    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert refreshed["access_token"] != tokens["access_token"]
    assert session.token["access_token"] == refreshed["access_token"]
    me = session.get(f"{stack.url}/me", timeout=10)  # Authlib sends the new Bearer token
    assert me.status_code == 200 and me.json()["id"] == tokens["user"]["id"]

    # a retried refresh with the old token (within the grace window) converges on the same one
    retry = OAuth2Session(client_id=APPID).refresh_token(
        endpoints["token_endpoint"], refresh_token=tokens["refresh_token"]
    )
    assert retry["refresh_token"] == refreshed["refresh_token"]

    # RFC 7009 revocation through Authlib ends the session
    revoked = session.revoke_token(
        endpoints["revocation_endpoint"],
        token=refreshed["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200
    with pytest.raises(OAuthError) as failure:
        session.refresh_token(endpoints["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert failure.value.error == "invalid_grant"
    verdict = requests.post(
        f"{stack.url}/auth/verify", json={"token": refreshed["access_token"]}, timeout=10
    )
    assert verdict.json() == {"valid": False, "reason": "revoked"}


def test_admin_revoke_makes_the_next_authlib_refresh_fail(stack: Stack) -> None:
    tokens = stack.login("bob")
    user_id, session_id = tokens["refresh_token"].split(".")[:2]

    code, out, err = stack.admin("sessions", "revoke", user_id, session_id)

    assert code == 0, err
    assert out["revoked"] is True
    with pytest.raises(OAuthError) as failure:
        OAuth2Session(client_id=APPID).refresh_token(
            stack.discovery()["token_endpoint"], refresh_token=tokens["refresh_token"]
        )
    assert failure.value.error == "invalid_grant"


# -- Authlib: client credentials -----------------------------------------------------------------


def test_authlib_fetches_client_credentials_tokens(stack: Stack) -> None:
    token_endpoint = stack.discovery()["token_endpoint"]
    code, created, err = stack.admin(
        "client", "create", "--scopes", "orders:read orders:write", "--client-id", "shop-backend"
    )
    assert code == 0, err
    secret = created["client_secret"]

    # client_secret_basic (Authlib's default when it has a secret), asking for one scope
    session = OAuth2Session("shop-backend", secret, scope="orders:read")
    token = session.fetch_token(token_endpoint, grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "orders:read"
    assert "refresh_token" not in token
    hello = session.get(f"{stack.url}/example/hello", timeout=10)
    assert hello.status_code == 200
    assert hello.json() == {
        "hello": "client:shop-backend",
        "client_id": "shop-backend",
        "session_id": None,
        "scope": "orders:read",
    }

    # client_secret_post, every scope of the client
    post_session = OAuth2Session(
        "shop-backend", secret, token_endpoint_auth_method="client_secret_post"
    )
    token = post_session.fetch_token(token_endpoint, grant_type="client_credentials")
    assert token["scope"] == "orders:read orders:write"

    with pytest.raises(OAuthError) as failure:
        OAuth2Session("shop-backend", secret[::-1]).fetch_token(
            token_endpoint, grant_type="client_credentials"
        )
    assert failure.value.error == "invalid_client"

    assert stack.admin("client", "disable", "shop-backend")[0] == 0
    with pytest.raises(OAuthError) as failure:
        session.fetch_token(token_endpoint, grant_type="client_credentials")
    assert failure.value.error == "invalid_client"

    assert secret not in stack.output()


# -- Authlib: introspection (RFC 7662) -----------------------------------------------------------


def test_authlib_introspects_a_token_before_and_after_logout(stack: Stack) -> None:
    endpoint = stack.discovery()["introspection_endpoint"]
    code, created, err = stack.admin(
        "client", "create", "--scopes", "introspect", "--client-id", "api-gateway"
    )
    assert code == 0, err
    gateway = OAuth2Session("api-gateway", created["client_secret"])
    tokens = stack.login("erin")

    active = gateway.introspect_token(endpoint, token=tokens["access_token"])
    assert active.status_code == 200, active.text
    body = active.json()
    assert body["active"] is True and body["sub"] == tokens["user"]["id"]
    assert body["client_id"] == APPID and body["iss"] == stack.url and body["aud"] == AUDIENCE
    # a refresh token is never active, whatever the hint
    hinted = gateway.introspect_token(
        endpoint, token=tokens["refresh_token"], token_type_hint="refresh_token"
    )
    assert hinted.json() == {"active": False}

    logout = requests.post(
        f"{stack.url}/auth/logout",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert logout.status_code == 204
    after = gateway.introspect_token(endpoint, token=tokens["access_token"])
    assert after.json() == {"active": False}

    # client_secret_post works the same; a wrong secret is 401 invalid_client
    posted = OAuth2Session(
        "api-gateway", created["client_secret"], token_endpoint_auth_method="client_secret_post"
    ).introspect_token(endpoint, token=stack.login("erin")["access_token"])
    assert posted.json()["active"] is True
    wrong = OAuth2Session("api-gateway", "wrong").introspect_token(endpoint, token="x")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert created["client_secret"] not in stack.output()


# -- PyJWKClient across a key rotation -----------------------------------------------------------


def verify(verifier: PyJWKClient, token: str, issuer: str) -> dict:
    key = verifier.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=issuer)


def test_pyjwk_client_verifies_tokens_before_and_after_a_key_rotation(stack: Stack) -> None:
    discovery = stack.discovery()
    # Production: verifiers cache the JWKS for 300 s and a new key is published 600 s before it
    # signs. Here the same schedule, shrunk: a 1 s cache, a key published 3 s ahead.
    verifier = PyJWKClient(discovery["jwks_uri"], lifespan=1)
    before = stack.login("carol")
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
    assert verify(verifier, before["access_token"], discovery["issuer"])["sub"]

    code, rotated, err = stack.admin("keys", "rotate", "--activate-in", "3")

    assert code == 0, err
    new_kid = rotated["active_kid"]
    assert rotated["retired_kid"] == old_kid != new_kid
    # published at once (the server notices the rewritten key file), not yet signing
    jwks = requests.get(discovery["jwks_uri"], timeout=10).json()
    assert {key["kid"] for key in jwks["keys"]} == {old_kid, new_kid}
    during = stack.login("carol")
    assert jwt.get_unverified_header(during["access_token"])["kid"] == old_kid

    deadline = time.monotonic() + 20
    while True:
        after = stack.login("carol")
        if jwt.get_unverified_header(after["access_token"])["kid"] == new_kid:
            break
        assert time.monotonic() < deadline, "the new key never started signing"
        time.sleep(0.25)

    for tokens in (before, during, after):
        claims = verify(verifier, tokens["access_token"], discovery["issuer"])
        assert claims["sub"] == before["user"]["id"]
    # a refresh after the rotation is signed by the new key too
    refreshed = OAuth2Session(client_id=APPID).refresh_token(
        discovery["token_endpoint"], refresh_token=before["refresh_token"]
    )
    assert jwt.get_unverified_header(refreshed["access_token"])["kid"] == new_kid
    assert verify(verifier, refreshed["access_token"], discovery["issuer"])["sid"]


def test_no_token_or_secret_in_the_server_log(stack: Stack) -> None:
    tokens = stack.login("dave")
    OAuth2Session(client_id=APPID).refresh_token(
        stack.discovery()["token_endpoint"], refresh_token=tokens["refresh_token"]
    )
    output = stack.output()
    assert tokens["refresh_token"] not in output
    assert tokens["access_token"] not in output
    assert APP_SECRET not in output
