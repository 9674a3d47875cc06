"""The HTTP surface through chalice.test.Client: every route, error and header of the contract."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from botocore.exceptions import ClientError

from chalicelib.signing_keys import KeySet
from tests.conftest import START, TEST_SECRET, table_items
from tests.http import JSON, assert_error, bearer, login, post

# -- login ---------------------------------------------------------------------------------------


def test_login_returns_a_token_response(client):
    response = post(client, "/auth/login", {"code": "alice.1"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json_body
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
        "user",
    }
    assert body["token_type"] == "Bearer"
    # counted from the start of the current second: never more than the token really has
    assert body["expires_in"] == 1800 and body["refresh_expires_in"] == 2_592_000 - 1
    assert body["user"]["is_new"] is True and body["user"]["id"]
    assert login(client, "alice.2")["user"] == {"id": body["user"]["id"], "is_new": False}


def test_access_token_shape(client, services):
    token = login(client)["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["typ"] == "at+jwt"
    assert header["kid"] == services.keys.get().active_kid
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) >= {"iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id"}
    assert claims["iss"] == "https://auth.test" and claims["aud"] == "wxauth-test"
    assert claims["client_id"] == "wx-test-appid"
    # at least AUTH_ACCESS_TTL from anywhere in the second of issue (iat is rounded down)
    assert claims["exp"] - claims["iat"] == 1801 and claims["iat"] == START


def test_double_posted_code_returns_the_same_session(client, wechat, clock):
    body = {"code": "bob.1", "login_nonce": "f" * 64}
    first = post(client, "/auth/login", body).json_body
    clock.advance(100)
    second = post(client, "/auth/login", body).json_body
    assert second["refresh_token"] == first["refresh_token"] and second["user"] == first["user"]
    assert second["expires_in"] == first["expires_in"]  # a new access token, as long as the first
    assert second["refresh_expires_in"] == first["refresh_expires_in"] - 100
    assert wechat.calls == 1


def test_a_replayed_code_answers_only_its_first_callers_nonce(client, wechat, dynamodb, clock):
    """Issue 22, item 1, over HTTP: the second holder of a used code gets 400 invalid_grant and
    not a byte of the session; the first caller's retry (same nonce) gets the session."""
    nonce = "0123456789abcdef" * 4
    first = post(client, "/auth/login", {"code": "bob.1", "login_nonce": nonce}).json_body
    items = table_items(dynamodb)
    clock.advance(1)
    for body in ({"code": "bob.1"}, {"code": "bob.1", "login_nonce": "f" * 64}):
        response = post(client, "/auth/login", body)
        assert_error(response, 400, "invalid_grant")
        assert first["refresh_token"] not in response.body.decode()
    assert table_items(dynamodb) == items
    again = post(client, "/auth/login", {"code": "bob.1", "login_nonce": nonce}).json_body
    assert again["refresh_token"] == first["refresh_token"] and wechat.calls == 1


@pytest.mark.parametrize("nonce", [12345, ["x" * 20], "short", "x" * 129, "x y" * 10, ""])
def test_a_malformed_login_nonce_is_invalid_request(client, wechat, dynamodb, nonce):
    response = post(client, "/auth/login", {"code": "bob.1", "login_nonce": nonce})
    assert_error(response, 400, "invalid_request")
    assert "login_nonce" in response.json_body["error_description"]
    assert table_items(dynamodb) == [] and wechat.calls == 0


def test_a_null_login_nonce_is_no_nonce(client, wechat):
    assert post(client, "/auth/login", {"code": "bob.1", "login_nonce": None}).status_code == 200


@pytest.mark.parametrize(
    ("raw", "headers"),
    [
        ("{not json", {}),
        ("[]", {}),
        ('"code"', {}),
        ("{}", {}),
        ('{"code": null}', {}),
        ('{"code": 12345}', {}),
        ('{"code": ["a"]}', {}),
        ('{"code": {"a": 1}}', {}),
        ('{"code": true}', {}),
        ('{"code": ""}', {}),
        (json.dumps({"code": "x" * 129}), {}),
        (json.dumps({"code": "a b"}), {}),
        (json.dumps({"code": "alice.1"}), {"content-type": "text/plain"}),
        ("code=alice.1", {"content-type": "application/x-www-form-urlencoded"}),
        (json.dumps({"code": "alice.1"}), {"content-type": ""}),
        (json.dumps({"code": "a" * (1 << 20)}), {}),
        ("", {}),
        (b"\xff\xfe{}", {}),
    ],
)
def test_bad_login_input_is_invalid_request_and_changes_nothing(
    client, dynamodb, wechat, raw, headers
):
    before = table_items(dynamodb)
    assert_error(post(client, "/auth/login", raw=raw, headers=headers), 400, "invalid_request")
    assert table_items(dynamodb) == before
    assert wechat.calls == 0


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("err-40029", 400, "invalid_grant"),
        ("err-40163", 400, "invalid_grant"),
        ("err-41008", 400, "invalid_grant"),
        ("err-40226", 403, "access_denied"),
        ("err-45011", 429, "slow_down"),
        ("err--1", 503, "temporarily_unavailable"),
        ("err-40125", 500, "server_error"),
        ("err-40013", 500, "server_error"),
    ],
)
def test_wechat_errors_map_to_the_contract(client, dynamodb, code, status, error):
    before = table_items(dynamodb)
    response = post(client, "/auth/login", {"code": code})
    assert_error(response, status, error)
    # No session and no user; the breaker's item may count the call, and a code WeChat
    # refused keeps its claim, marked refused (chalicelib/code_claims.py): nothing else.
    after = [item for item in table_items(dynamodb) if not item["pk"]["S"].startswith("BREAKER#")]
    claims = [item for item in after if item not in before]
    assert all(item["pk"]["S"].startswith("LOGIN#") and "refused" in item for item in claims)
    assert len(claims) == (1 if status in (400, 403, 429) else 0)
    assert [item for item in after if item in before] == before
    if status in (429, 503):
        assert int(response.headers["Retry-After"]) > 0
    if status == 429:
        assert response.headers["Retry-After"] == "60"
    assert TEST_SECRET not in response.body.decode()


def test_dynamodb_throttling_is_503_with_retry_after(client, services, dynamodb):
    def throttled(*args, **kwargs):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
            "PutItem",
        )

    throttling = type("Throttled", (), {"__getattr__": lambda self, name: throttled})()
    services.store.table._client = throttling
    response = post(client, "/auth/login", {"code": "alice.1"})
    assert_error(response, 503, "temporarily_unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert table_items(dynamodb) == []


def test_unexpected_failure_is_a_bare_500(client, services, log_lines):
    def explode(code, now, *_, **__):  # as LoginService.login: (code, now, appid, device=)
        raise RuntimeError(f"boom {TEST_SECRET}")

    services.login.login = explode
    response = post(client, "/auth/login", {"code": "alice.1"})
    assert_error(response, 500, "server_error")
    assert TEST_SECRET not in response.body.decode()
    assert not [line for line in log_lines if TEST_SECRET in line]
    assert any('"unhandled_exception"' in line and "RuntimeError" in line for line in log_lines)


# -- refresh -------------------------------------------------------------------------------------


def test_refresh_rotates_and_grace_replays(client, clock):
    tokens = login(client)
    first = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    body = first.json_body
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
    }
    assert body["refresh_token"] != tokens["refresh_token"]
    clock.advance(29)
    again = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 200
    assert again.json_body["refresh_token"] == body["refresh_token"]


def test_reuse_after_grace_kills_the_session(client, clock):
    tokens = login(client)
    current = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]}).json_body
    clock.advance(30)
    reuse = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_error(reuse, 400, "invalid_grant")
    assert_error(
        post(client, "/auth/refresh", {"refresh_token": current["refresh_token"]}),
        400,
        "invalid_grant",
    )
    verdict = post(client, "/auth/verify", {"token": current["access_token"]}).json_body
    assert verdict == {"valid": False, "reason": "revoked"}
    assert_error(
        client.http.get("/me", headers=bearer(current["access_token"])), 401, "invalid_token"
    )


@pytest.mark.parametrize(
    "raw",
    [
        "{}",
        '{"refresh_token": 1}',
        '{"refresh_token": null}',
        json.dumps({"refresh_token": "r" * 600}),
        "{oops",
    ],
)
def test_bad_refresh_input(client, dynamodb, raw):
    login(client)
    before = table_items(dynamodb)
    assert_error(post(client, "/auth/refresh", raw=raw), 400, "invalid_request")
    assert table_items(dynamodb) == before


def test_unknown_or_access_token_as_refresh_token_is_invalid_grant(client, dynamodb):
    tokens = login(client)
    before = table_items(dynamodb)
    body, mac = tokens["refresh_token"].rsplit(".", 1)
    altered = body[:-2] + ("zz" if body[-2:] != "zz" else "yy") + "." + mac  # another secret
    for token in ("garbage", tokens["access_token"][:500], altered):
        assert_error(post(client, "/auth/refresh", {"refresh_token": token}), 400, "invalid_grant")
    assert table_items(dynamodb) == before


def test_idle_and_absolute_expiry_over_http(client, clock):
    tokens = login(client)
    clock.advance(2_592_000)
    assert_error(
        post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]}),
        400,
        "invalid_grant",
    )


# -- verify --------------------------------------------------------------------------------------


def test_verify_valid_in_body_and_in_every_authorization_form(client, clock):
    tokens = login(client)
    token = tokens["access_token"]
    basic = base64.b64encode(f"{token}:".encode()).decode()
    expected = post(client, "/auth/verify", {"token": token}).json_body
    assert expected["valid"] is True and expected["expires_in"] == 1800
    assert expected["sub"] == tokens["user"]["id"] and expected["sid"]
    assert expected["exp"] == START + 1801
    for header in (f"Bearer {token}", token, f"Basic {basic}"):
        response = client.http.post("/auth/verify", headers={"authorization": header})
        assert response.json_body == expected


def test_verify_expired(client, clock):
    token = login(client)["access_token"]
    clock.advance(1800.999)  # AUTH_ACCESS_TTL after the latest possible moment of issue
    assert post(client, "/auth/verify", {"token": token}).json_body["valid"] is True
    clock.advance(0.001)
    assert post(client, "/auth/verify", {"token": token}).json_body == {
        "valid": False,
        "reason": "expired",
    }


def _forge(claims, key):
    return jwt.encode(
        claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": "at+jwt"}
    )


def test_verify_invalid_tokens(client, services):
    tokens = login(client)
    token = tokens["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    header = jwt.get_unverified_header(token)
    other = KeySet.new(START).active
    impostor = type(other)(kid=header["kid"], private_key=other.private_key, created_at=START)
    public_pem = services.keys.get().active.public_key.public_bytes(
        encoding=__import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["x"]
        ).Encoding.PEM,
        format=__import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["x"]
        ).PublicFormat.SubjectPublicKeyInfo,
    )
    import hashlib
    import hmac as hmac_mod

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    hs_header = b64(json.dumps({"alg": "HS256", "kid": header["kid"], "typ": "at+jwt"}).encode())
    hs_payload = b64(json.dumps(claims).encode())
    hs_sig = b64(
        hmac_mod.new(public_pem, f"{hs_header}.{hs_payload}".encode(), hashlib.sha256).digest()
    )
    none_token = (
        b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}).encode())
        + "."
        + hs_payload
        + "."
    )
    bad = [
        "garbage",
        token[: len(token) // 2],
        token[:-4] + "AAAA",
        _forge(claims, impostor),
        _forge(claims, other),
        f"{hs_header}.{hs_payload}.{hs_sig}",
        none_token,
        tokens["refresh_token"],
        _forge({**claims, "iss": "https://evil.test"}, services.keys.get().active),
        _forge({**claims, "aud": "someone-else"}, services.keys.get().active),
    ]
    for candidate in bad:
        verdict = post(client, "/auth/verify", {"token": candidate}).json_body
        assert verdict == {"valid": False, "reason": "invalid"}, candidate
        assert_error(client.http.get("/me", headers=bearer(candidate)), 401, "invalid_token")


@pytest.mark.parametrize(
    ("raw", "headers"),
    [
        ("", {}),
        ('{"token": 5}', {}),
        ("{nope", {}),
        ('{"token": "x"}', {"content-type": "text/plain"}),
    ],
)
def test_verify_bad_input(client, raw, headers):
    assert_error(post(client, "/auth/verify", raw=raw, headers=headers), 400, "invalid_request")


# -- logout and /me ------------------------------------------------------------------------------


def test_me(client):
    tokens = login(client, "union-frank.1")
    response = client.http.get("/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    body = response.json_body
    assert body["id"] == tokens["user"]["id"]
    assert body["openid"] == "openid-union-frank" and body["unionid"] == "unionid-union-frank"
    assert "session_key" not in json.dumps(body)


def test_me_without_token_is_401_with_www_authenticate(client):
    response = client.http.get("/me")
    assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    for header in (
        "Bearer",
        "Bearer a b",
        "Digest abc",
        "Basic !!!",
        "Basic " + base64.b64encode(b"t:pw").decode(),
    ):
        assert_error(
            client.http.get("/me", headers={"authorization": header}), 401, "invalid_token"
        )


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/me"), ("POST", "/auth/verify"), ("POST", "/auth/logout"), ("GET", "/example/hello")],
)
@pytest.mark.parametrize(
    "authorization", ["Basic é漢", "Basic \u00ff", "Bearer é漢", "é漢", "Basic " + "é" * 5000]
)
def test_non_ascii_authorization_is_invalid_token_not_500(client, method, path, authorization):
    """Issue 11.1: base64.b64decode raised a bare ValueError for non-ASCII text, a 500."""
    response = client.http.request(
        method, path, headers={**JSON, "authorization": authorization}, body=b""
    )
    assert_error(response, 401, "invalid_token")
    assert "é" not in response.body.decode()


def test_me_with_expired_token(client, clock):
    token = login(client)["access_token"]
    clock.advance(1801)
    assert_error(client.http.get("/me", headers=bearer(token)), 401, "invalid_token")


def test_logout_ends_the_session(client):
    tokens = login(client)
    other = login(client, "alice.2")
    response = client.http.post("/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status_code == 204 and response.body == b""
    assert post(client, "/auth/verify", {"token": tokens["access_token"]}).json_body == {
        "valid": False,
        "reason": "revoked",
    }
    assert_error(
        post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]}),
        400,
        "invalid_grant",
    )
    assert_error(
        client.http.get("/me", headers=bearer(tokens["access_token"])), 401, "invalid_token"
    )
    # the user's other session lives on
    assert client.http.get("/me", headers=bearer(other["access_token"])).status_code == 200


def test_logout_all(client):
    first = login(client)
    second = login(client, "alice.2")
    stranger = login(client, "zed.1")
    response = post(client, "/auth/logout", {"all": True}, headers=bearer(first["access_token"]))
    assert response.status_code == 204
    for tokens in (first, second):
        assert (
            post(client, "/auth/verify", {"token": tokens["access_token"]}).json_body["reason"]
            == "revoked"
        )
    assert client.http.get("/me", headers=bearer(stranger["access_token"])).status_code == 200


def test_logout_bad_input_changes_nothing(client, dynamodb):
    tokens = login(client)
    before = table_items(dynamodb)
    assert_error(client.http.post("/auth/logout"), 401, "invalid_token")
    assert_error(
        post(client, "/auth/logout", raw='{"all": "yes"}', headers=bearer(tokens["access_token"])),
        400,
        "invalid_request",
    )
    assert_error(
        post(client, "/auth/logout", raw="{bad", headers=bearer(tokens["access_token"])),
        400,
        "invalid_request",
    )
    assert table_items(dynamodb) == before


# -- discovery -----------------------------------------------------------------------------------


def test_jwks_lists_the_signing_key(client, services):
    response = client.http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json_body["keys"]
    assert [k["kid"] for k in keys] == [services.keys.get().active_kid]
    assert all(set(k) == {"kty", "kid", "use", "alg", "n", "e"} for k in keys)
    token = login(client)["access_token"]
    public = jwt.PyJWK(keys[0]).key
    jwt.decode(
        token,
        public,
        algorithms=["RS256"],
        audience="wxauth-test",
        options={"verify_exp": False, "verify_iat": False},
    )


def test_openid_configuration(client):
    body = client.http.get("/.well-known/openid-configuration").json_body
    assert body["issuer"] == "https://auth.test"
    assert body["jwks_uri"] == "https://auth.test/.well-known/jwks.json"
    assert body["token_endpoint"] == "https://auth.test/oauth/token"
    assert body["revocation_endpoint"] == "https://auth.test/oauth/revoke"


def test_the_garbage_collector_is_paused_only_while_the_graph_is_built(monkeypatch):
    """services() pauses the cyclic GC around runtime.build (cold start) and restores it."""
    import gc

    import app

    seen = []

    def build(settings):
        seen.append(gc.isenabled())
        return "graph"

    assert gc.isenabled()  # importing app left it on
    monkeypatch.setattr(app, "_services", None)
    monkeypatch.setattr(app.runtime, "build", build)
    frozen = gc.get_freeze_count()
    assert app.services() == "graph"
    assert seen == [False] and gc.isenabled()
    assert gc.get_freeze_count() > frozen  # what the build made is frozen, not collected

    def failing_build(settings):
        raise RuntimeError("no table")

    monkeypatch.setattr(app, "_services", None)
    monkeypatch.setattr(app.runtime, "build", failing_build)
    with pytest.raises(RuntimeError):
        app.services()
    assert gc.isenabled()


# -- the login's source address behind CloudFront (issue #22, item 4) ------------------------------

ORIGIN_SECRET = "origin-secret-for-tests-0123456789abcdef"  # noqa: S105 - a test value
EDGE_IP = "130.176.1.1"  # what API Gateway sees behind CloudFront: the edge


@pytest.fixture
def behind_cloudfront(settings, dynamodb, clock, wechat, monkeypatch):
    """The app with AUTH_LIMIT_LOGIN_PER_IP=2/60 and the origin secret set."""
    from dataclasses import replace

    import app as app_module
    from chalicelib import runtime
    from chalicelib.settings import Limit

    svc = runtime.build(
        replace(
            settings,
            limit_login_per_ip=Limit(2, 60),
            origin_secret_header="x-origin-verify",
            origin_secret=ORIGIN_SECRET,
        ),
        dynamodb=dynamodb,
        clock=clock,
        sleep=lambda _: None,
    )
    monkeypatch.setattr(app_module, "_services", svc)
    return svc


def cloudfront_login(code: str, *, viewer: str, secret: str | None = ORIGIN_SECRET) -> dict:
    """A login as CloudFront forwards it to API Gateway (payload 1.0): the edge's source IP,
    the viewer's address in CloudFront-Viewer-Address, the origin secret if CloudFront sent it."""
    import app as app_module
    from tests.events import http_api_v1_event

    headers = {"content-type": "application/json", "cloudfront-viewer-address": viewer}
    if secret is not None:
        headers["x-origin-verify"] = secret
    event = http_api_v1_event(
        "POST", "/auth/login", headers=headers, body=json.dumps({"code": code})
    )
    event["requestContext"]["identity"]["sourceIp"] = EDGE_IP
    return app_module.app(event, None)


def test_behind_cloudfront_each_viewer_has_its_own_budget(behind_cloudfront):
    for n in range(2):
        for viewer in ("198.51.100.7:5000", "203.0.113.9:6000"):
            answer = cloudfront_login(f"v{viewer[:3]}-{n}.1", viewer=viewer)
            assert answer["statusCode"] == 200, answer["body"]
    refused = cloudfront_login("v198-9.1", viewer="198.51.100.7:5001")
    assert refused["statusCode"] == 429
    # the session records the viewer, not the edge
    body = json.loads(cloudfront_login("v192-0.1", viewer="192.0.2.5:1")["body"])
    session = behind_cloudfront.store.sessions.get(
        body["user"]["id"], body["refresh_token"].split(".")[1]
    )
    assert session.source_ip == "192.0.2.5"


def test_a_spoofed_viewer_address_without_the_secret_is_the_edges(behind_cloudfront):
    """Straight to the API (or a guessed secret): CloudFront-Viewer-Address is the client's
    own text, so the request counts as its source IP, however it varies the header."""
    for n, secret in enumerate([None, "guess", ORIGIN_SECRET[:-1]]):
        answer = cloudfront_login(f"spoof-{n}.1", viewer=f"198.51.100.{n}:1", secret=secret)
        if n < 2:
            assert answer["statusCode"] == 200, answer["body"]
        else:
            assert answer["statusCode"] == 429  # the edge's address: its budget is used
    body_ok = cloudfront_login("spoof-ok.1", viewer="198.51.100.50:1")
    assert body_ok["statusCode"] == 200  # with the secret, the viewer's own budget
