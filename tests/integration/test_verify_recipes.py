"""The Python verification recipe (examples/verify/python/verify.py, docs/backend.md "Verify
tokens in your backend") against the local server: a token it issued is accepted; expired, for
another audience or issuer, of another type, or signed by another key, it is refused. The
expired token is signed with the server's own key (its key set file), with `exp` in the past:
the recipe is checked at the signature and the JWKS it fetched, and nothing sleeps. Revocation:
an OAuth client made with `wxauth-admin client create --scopes introspect` introspects a token
(RFC 7662) before and after its session's logout. (The Node recipe's test is
examples/verify/node/verify.test.mjs, `make test-examples`.)

The server runs on a moto server of the test's own (not the devserver's embedded one), so that
the admin command line can reach its table."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from types import ModuleType

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration.local_server import REPO_ROOT, LocalServer, local_server

pytestmark = pytest.mark.integration

_codes = itertools.count(1)


@pytest.fixture(scope="module")
def recipe() -> ModuleType:
    path = REPO_ROOT / "examples" / "verify" / "python" / "verify.py"
    spec = importlib.util.spec_from_file_location("wxauth_verify_recipe", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def dynamodb_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, dynamodb_endpoint: str
) -> Iterator[LocalServer]:
    env = {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint, **AWS}
    with local_server(tmp_path_factory.mktemp("verify-recipes"), env=env) as running:
        yield running


def create_client(dynamodb_endpoint: str, scopes: str) -> tuple[str, str]:
    """`wxauth-admin client create --scopes ...` against the server's table: (id, secret)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AUTH_", "WECHAT_"))}
    env.update(AWS, AWS_ENDPOINT_URL_DYNAMODB=dynamodb_endpoint)  # the devserver's table: wxauth
    result = subprocess.run(  # noqa: S603 - the project's own command line
        [sys.executable, "-m", "chalicelib.admin", "client", "create", "--scopes", scopes],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    created = json.loads(result.stdout)
    return created["client_id"], created["client_secret"]


@pytest.fixture(scope="module")
def issuer(server: LocalServer) -> str:
    return requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()[
        "issuer"
    ]


def login(server: LocalServer) -> dict:
    code = f"verify-py-{next(_codes)}.1"
    response = requests.post(f"{server.url}/auth/login", json={"code": code}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def verifier(recipe: ModuleType, server: LocalServer, issuer: str, audience: str = "wxauth"):
    # The JWKS at 127.0.0.1: the issuer names localhost.
    return recipe.Verifier(
        issuer=issuer, audience=audience, jwks_uri=f"{server.url}/.well-known/jwks.json"
    )


def server_key(server: LocalServer) -> tuple[str, str]:
    """The server's active signing key (kid, PEM), from the key set file it was given."""
    keyset = json.loads(server.keys_file.read_text())
    (key,) = [k for k in keyset["keys"] if k["kid"] == keyset["active_kid"]]
    return key["kid"], key["private_key_pem"]


def test_a_token_wxauth_issued_is_accepted(recipe, server, issuer) -> None:
    answer = login(server)
    claims = verifier(recipe, server, issuer).verify(answer["access_token"])
    assert claims["sub"] == answer["user"]["id"]
    assert claims["iss"] == issuer and claims["aud"] == "wxauth"
    assert claims["sid"] and claims["jti"] and claims["client_id"]


def test_an_expired_token_is_refused(recipe, server, issuer) -> None:
    claims = jwt.decode(login(server)["access_token"], options={"verify_signature": False})
    kid, pem = server_key(server)
    now = int(time.time())
    expired = jwt.encode(
        {**claims, "iat": now - 3600, "exp": now - 120},  # past the 60 s leeway
        pem,
        algorithm="RS256",
        headers={"kid": kid, "typ": "at+jwt"},
    )
    # The server refuses it too (same key, same claims but exp).
    verified = requests.post(f"{server.url}/auth/verify", json={"token": expired}, timeout=10)
    assert verified.json() == {"valid": False, "reason": "expired"}
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier(recipe, server, issuer).verify(expired)


def test_another_audience_or_issuer_is_refused(recipe, server, issuer) -> None:
    token = login(server)["access_token"]
    with pytest.raises(jwt.InvalidAudienceError):
        verifier(recipe, server, issuer, audience="another-api").verify(token)
    with pytest.raises(jwt.InvalidIssuerError):
        verifier(recipe, server, "https://auth.elsewhere.example").verify(token)


def test_another_type_or_another_key_is_refused(recipe, server, issuer) -> None:
    claims = jwt.decode(login(server)["access_token"], options={"verify_signature": False})
    kid, pem = server_key(server)
    id_token = jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})
    with pytest.raises(jwt.InvalidTokenError, match="at\\+jwt"):
        verifier(recipe, server, issuer).verify(id_token)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})
    with pytest.raises(jwt.InvalidSignatureError):
        verifier(recipe, server, issuer).verify(forged)


def test_a_revoked_session_is_inactive_by_introspection(
    recipe, server, issuer, dynamodb_endpoint
) -> None:
    """Log in, log out: a local check still accepts the token (it cannot know), introspection
    answers active: false."""
    discovery = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["introspection_endpoint"] == f"{issuer}/oauth/introspect"
    client_id, secret = create_client(dynamodb_endpoint, "introspect")
    endpoint = f"{server.url}/oauth/introspect"  # 127.0.0.1: the issuer names localhost
    answer = login(server)
    token = answer["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})

    active = recipe.introspect(
        token, introspection_endpoint=endpoint, client_id=client_id, client_secret=secret
    )
    assert active["active"] is True
    assert (active["sub"], active["sid"]) == (answer["user"]["id"], claims["sid"])
    assert active["token_type"] == "Bearer" and active["exp"] == claims["exp"]

    logout = requests.post(
        f"{server.url}/auth/logout", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert logout.status_code == 204
    assert verifier(recipe, server, issuer).verify(token)["sub"] == answer["user"]["id"]
    revoked = recipe.introspect(
        token, introspection_endpoint=endpoint, client_id=client_id, client_secret=secret
    )
    assert revoked == {"active": False}


def test_introspection_refuses_a_wrong_secret_and_a_client_without_the_scope(
    recipe, server, dynamodb_endpoint
) -> None:
    endpoint = f"{server.url}/oauth/introspect"
    token = login(server)["access_token"]
    client_id, _ = create_client(dynamodb_endpoint, "introspect")
    other_id, other_secret = create_client(dynamodb_endpoint, "orders:read")
    for who, secret, status in ((client_id, "wrong", 401), (other_id, other_secret, 403)):
        with pytest.raises(requests.HTTPError) as refused:
            recipe.introspect(
                token, introspection_endpoint=endpoint, client_id=who, client_secret=secret
            )
        assert refused.value.response.status_code == status
