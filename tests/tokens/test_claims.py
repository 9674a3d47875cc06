"""Custom claims: validation, storage on users and sessions, the `ext` claim, the pre-token hook."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import jwt
import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from chalicelib import runtime
from chalicelib.budgets import hook_budget
from chalicelib.errors import ConfigurationError
from chalicelib.identity.apps import App
from chalicelib.settings import Settings
from chalicelib.tokens import claims
from chalicelib.tokens.claims import MAX_BYTES, NAMESPACE, InvalidClaims, NoSuchUser
from tests.conftest import START, STUB_SESSION_KEY_MARK, TEST_APPID, TEST_SECRET, table_items
from tests.http import assert_error, bearer, login, post

HOOK_ARN = "arn:aws:lambda:us-east-1:123456789012:function:wxauth-claims"


def ext(token: str) -> object:
    """The custom claims of an access token (None if it has none)."""
    return jwt.decode(token, options={"verify_signature": False}).get(NAMESPACE)


def top_level(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


# -- validation ------------------------------------------------------------------------------------


def test_valid_claims_are_kept_as_given():
    given = {
        "roles": ["editor", "viewer"],
        "tier": "gold",
        "shop:id": 42,
        "ratio": 0.5,
        "beta": True,
        "note": None,
        "org": {"id": "o-1", "teams": ["a", "b"]},
        "名字".encode().hex(): "张三",  # non-ASCII values are fine; names are ASCII
    }
    assert claims.validate(given) == given
    assert claims.parse(json.dumps(given)) == given


@pytest.mark.parametrize(
    "name", ["sub", "SUB", "iss", "aud", "exp", "nbf", "iat", "jti", "sid", "client_id", "scope",
             "typ", "auth_time", "azp", "phone_number", "ext", "Ext", "openid", "unionid"],
)  # fmt: skip
def test_registered_and_wxauth_claim_names_are_refused(name):
    with pytest.raises(InvalidClaims, match="registered or wxauth claim"):
        claims.validate({name: "x"})


@pytest.mark.parametrize(
    "value",
    [
        [],
        "roles",
        None,
        {"": 1},
        {"has space": 1},
        {"a" * 65: 1},
        {"tab\t": 1},
        {"é": 1},
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": {1, 2}},
        {"x": b"bytes"},
        {"x": {"y": {"z": {"w": 1}}}},  # containers nest two deep at most
        {"x": [[["deep"]]]},
        {"x": "a" * MAX_BYTES},
        {"x": "\ud800"},  # a lone surrogate: not Unicode text
    ],
)
def test_bad_claims_are_refused_with_a_clear_error(value):
    with pytest.raises(InvalidClaims) as caught:
        claims.validate(value)
    assert "claims" in str(caught.value)


def test_size_bound_is_exact():
    def of_size(n: int) -> dict:
        base = len(claims.dumps({"x": ""}).encode())
        return {"x": "a" * (n - base)}

    assert len(claims.dumps(of_size(MAX_BYTES)).encode()) == MAX_BYTES
    claims.validate(of_size(MAX_BYTES))
    with pytest.raises(InvalidClaims, match=f"at most {MAX_BYTES} bytes"):
        claims.validate(of_size(MAX_BYTES + 1))


def test_error_messages_never_quote_values():
    secret_looking = "s3cr3t-value-0123456789"
    with pytest.raises(InvalidClaims) as caught:
        claims.validate({"x": {"y": {"z": {"w": secret_looking}}}})
    assert secret_looking not in str(caught.value)


@pytest.mark.parametrize("text", ["", "{", "[1]", "nan", '{"a": NaN}', "[" * 10_000])
def test_parse_refuses_what_is_not_a_json_object(text):
    with pytest.raises(InvalidClaims):
        claims.parse(text)


# -- storage -----------------------------------------------------------------------------------


def test_set_claims_writes_the_profile_and_every_live_session(client, services, clock):
    first = login(client, "alice.1")
    second = login(client, "alice.2")
    ended = login(client, "alice.3")
    user_id = first["user"]["id"]
    assert post(client, "/auth/logout", headers=bearer(ended["access_token"])).status_code == 204

    result = claims.set_claims(services.store, user_id, {"roles": ["editor"]}, now=START)

    assert result.sessions_updated == 2 and result.claims == {"roles": ["editor"]}
    assert claims.loads(services.store.users.get(user_id).custom_claims) == {"roles": ["editor"]}
    by_id = {s.session_id: s for s in services.store.sessions.of_user(user_id)}
    for body in (first, second):
        sid = top_level(body["access_token"])["sid"]
        assert claims.loads(by_id[sid].custom_claims) == {"roles": ["editor"]}
    assert by_id[top_level(ended["access_token"])["sid"]].custom_claims is None

    cleared = claims.set_claims(services.store, user_id, None, now=START + 1)
    assert cleared.claims == {} and cleared.sessions_updated == 2
    assert services.store.users.get(user_id).custom_claims is None
    assert all(s.custom_claims is None for s in services.store.sessions.of_user(user_id))


def test_set_claims_refuses_bad_claims_and_unknown_users_and_writes_nothing(
    client, services, dynamodb
):
    user_id = login(client)["user"]["id"]
    before = table_items(dynamodb)
    with pytest.raises(InvalidClaims):
        claims.set_claims(services.store, user_id, {"sub": "someone-else"}, now=START)
    with pytest.raises(InvalidClaims):
        claims.set_claims(services.store, user_id, {"x": "a" * MAX_BYTES}, now=START)
    with pytest.raises(NoSuchUser):
        claims.set_claims(services.store, "A" * 22, {"roles": []}, now=START)
    assert table_items(dynamodb) == before


# -- claims in access tokens ---------------------------------------------------------------------


def test_no_claims_no_ext(client):
    body = login(client)
    assert ext(body["access_token"]) is None
    refreshed = post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]}).json_body
    assert ext(refreshed["access_token"]) is None


def test_set_claims_reaches_the_next_refresh_and_later_logins(client, services, clock):
    body = login(client, "alice.1")
    user_id = body["user"]["id"]
    claims.set_claims(services.store, user_id, {"roles": ["editor"], "tier": 2}, now=START)

    assert ext(body["access_token"]) is None  # issued before: keeps its claims until it expires
    clock.advance(5)
    refreshed = post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200
    token = refreshed.json_body["access_token"]
    assert ext(token) == {"roles": ["editor"], "tier": 2}
    # ours are untouched and the token still verifies
    assert top_level(token)["sub"] == user_id and "roles" not in top_level(token)
    verified = post(client, "/auth/verify", {"token": token}).json_body
    assert verified["valid"] is True

    fresh = login(client, "alice.2")  # the login copies the profile's claims into the session
    assert ext(fresh["access_token"]) == {"roles": ["editor"], "tier": 2}
    again = post(client, "/auth/refresh", {"refresh_token": fresh["refresh_token"]}).json_body
    assert ext(again["access_token"]) == {"roles": ["editor"], "tier": 2}


def test_grace_replay_and_login_replay_carry_the_claims(client, services, clock):
    body = login(client, "alice.1")
    claims.set_claims(services.store, body["user"]["id"], {"tier": 1}, now=START)
    first = post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]}).json_body
    replayed = post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]}).json_body
    assert replayed["refresh_token"] == first["refresh_token"]
    assert ext(replayed["access_token"]) == {"tier": 1}

    code_body = login(client, "alice.2")
    assert ext(login(client, "alice.2")["access_token"]) == {"tier": 1}  # same code: replay
    assert ext(code_body["access_token"]) == {"tier": 1}


def test_refresh_is_still_one_dynamodb_request_with_claims(
    client, services, clock, dynamodb_requests
):
    body = login(client, "alice.1")
    claims.set_claims(services.store, body["user"]["id"], {"roles": ["a"]}, now=START)
    dynamodb_requests.clear()
    refreshed = post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert ext(refreshed.json_body["access_token"]) == {"roles": ["a"]}
    assert dynamodb_requests == ["UpdateItem"]

    dynamodb_requests.clear()
    assert ext(login(client, "alice.2")["access_token"]) == {"roles": ["a"]}
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems"]  # as before


def test_discovery_lists_the_namespace(client):
    discovery = client.http.get("/.well-known/openid-configuration").json_body
    assert NAMESPACE in discovery["claims_supported"]


# -- the pre-token hook ----------------------------------------------------------------------------


class LambdaStub:
    """The boto3 Lambda client's `invoke`, answering what the test sets (`answer`), or raising
    `error`; every call's arguments are kept."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.answer: object = {"claims": {"plan": "pro"}}
        self.raw: bytes | None = None
        self.error: Exception | None = None
        self.function_error: str | None = None
        self.status = 200

    def invoke(self, **kwargs) -> dict:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        raw = self.raw if self.raw is not None else json.dumps(self.answer).encode()
        response = {"StatusCode": self.status, "Payload": io.BytesIO(raw)}
        if self.function_error:
            response["FunctionError"] = self.function_error
        return response

    def payloads(self) -> list[dict]:
        return [json.loads(call["Payload"]) for call in self.calls]


@pytest.fixture
def stub() -> LambdaStub:
    return LambdaStub()


def hooked(settings, dynamodb, clock, stub, monkeypatch, on_error="issue"):
    import app

    hook_settings = replace(settings, token_hook_arn=HOOK_ARN, token_hook_on_error=on_error)
    svc = runtime.build(
        hook_settings, dynamodb=dynamodb, clock=clock, sleep=lambda _: None, awslambda=stub
    )
    monkeypatch.setattr(app, "_services", svc)
    return svc


@pytest.fixture
def hook_client(settings, dynamodb, clock, wechat, stub, monkeypatch):
    from chalice.test import Client

    import app

    hooked(settings, dynamodb, clock, stub, monkeypatch)
    with Client(app.app) as test_client:
        yield test_client


@pytest.fixture
def refusing_client(settings, dynamodb, clock, wechat, stub, monkeypatch):
    from chalice.test import Client

    import app

    hooked(settings, dynamodb, clock, stub, monkeypatch, on_error="refuse")
    with Client(app.app) as test_client:
        yield test_client


def test_hook_claims_are_added_at_login_and_refresh(hook_client, stub, clock):
    body = login(hook_client, "alice.1")
    assert ext(body["access_token"]) == {"plan": "pro"}
    stub.answer = {"claims": {"plan": "max", "seats": 3}}
    clock.advance(1)
    refreshed = post(hook_client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert ext(refreshed.json_body["access_token"]) == {"plan": "max", "seats": 3}

    assert [call["FunctionName"] for call in stub.calls] == [HOOK_ARN, HOOK_ARN]
    assert {call["InvocationType"] for call in stub.calls} == {"RequestResponse"}
    login_payload, refresh_payload = stub.payloads()
    sid = top_level(body["access_token"])["sid"]
    assert login_payload == {
        "version": 1,
        "trigger": "login",
        "user_id": body["user"]["id"],
        "session_id": sid,
        "client_id": TEST_APPID,
        "audience": "wxauth-test",
        "claims": {},
    }
    assert refresh_payload == {**login_payload, "trigger": "refresh"}


def test_the_hook_gets_the_sessions_audience_not_the_deployments(hook_client, stub, clock):
    """A second app's session mints for its own `aud` (its `audience`, else its client_id):
    the hook is told that one, at login and at refresh (issue #22, item 11)."""
    import app as app_module

    apps = app_module._services.apps
    apps.add(App("wx-app-b", client_id="shop-b", audience="aud-b", secret="s-b"), now=START)
    apps.add(App("wx-app-c", client_id="shop-c", secret="s-c"), now=START)
    for appid, audience in (("wx-app-b", "aud-b"), ("wx-app-c", "shop-c")):
        response = post(hook_client, "/auth/login", {"code": f"bob-{appid}.1", "appid": appid})
        assert response.status_code == 200, response.json_body
        assert top_level(response.json_body["access_token"])["aud"] == audience
        refresh = {"refresh_token": response.json_body["refresh_token"]}
        clock.advance(1)
        assert post(hook_client, "/auth/refresh", refresh).status_code == 200
        assert [p["audience"] for p in stub.payloads()[-2:]] == [audience, audience]


def test_hook_claims_override_stored_ones_and_see_them(hook_client, services, stub, dynamodb):
    body = login(hook_client, "alice.1")
    user_id = body["user"]["id"]
    import app

    claims.set_claims(app._services.store, user_id, {"plan": "free", "roles": ["a"]}, now=START)
    stub.answer = {"claims": {"plan": "pro"}}
    refreshed = post(hook_client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert ext(refreshed.json_body["access_token"]) == {"plan": "pro", "roles": ["a"]}
    assert stub.payloads()[-1]["claims"] == {"plan": "free", "roles": ["a"]}


@pytest.mark.parametrize("answer", [{}, {"claims": None}, {"claims": {}}])
def test_a_hook_answer_without_claims_adds_none(hook_client, stub, answer):
    stub.answer = answer
    assert ext(login(hook_client)["access_token"]) is None


def test_nothing_secret_reaches_the_hook(hook_client, stub, wechat):
    body = login(hook_client, "alice.1")
    refreshed = post(hook_client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    sent = b"".join(call["Payload"] for call in stub.calls).decode()
    assert len(stub.calls) == 2
    for secret in (
        body["refresh_token"],
        body["access_token"],
        refreshed.json_body["refresh_token"],
        refreshed.json_body["access_token"],
        TEST_SECRET,
        STUB_SESSION_KEY_MARK,
        "alice.1",  # the WeChat code
        "openid-alice",
    ):
        assert secret not in sent


FAILURES = {
    "timeout": lambda s: setattr(s, "error", ReadTimeoutError(endpoint_url="https://lambda")),
    "connect": lambda s: setattr(s, "error", ConnectTimeoutError(endpoint_url="https://lambda")),
    "client error": lambda s: setattr(
        s,
        "error",
        ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "Invoke"),
    ),
    "raises": lambda s: setattr(s, "error", RuntimeError("boom")),
    "function error": lambda s: setattr(s, "function_error", "Unhandled"),
    "status": lambda s: setattr(s, "status", 202),
    "not json": lambda s: setattr(s, "raw", b"<html>oops"),
    "too large": lambda s: setattr(s, "raw", b'{"claims": {"x": "' + b"a" * 20_000 + b'"}}'),
    "not an object": lambda s: setattr(s, "answer", ["plan"]),
    "other keys": lambda s: setattr(s, "answer", {"claims": {}, "sub": "admin"}),
    "claims not an object": lambda s: setattr(s, "answer", {"claims": "pro"}),
    "reserved name": lambda s: setattr(s, "answer", {"claims": {"sub": "someone-else"}}),
    "oversize": lambda s: setattr(s, "answer", {"claims": {"x": "a" * MAX_BYTES}}),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_failed_hook_issues_without_its_claims_when_on_error_is_issue(
    hook_client, stub, failure, log_lines, clock
):
    import app

    body = login(hook_client, "alice.1")
    claims.set_claims(app._services.store, body["user"]["id"], {"roles": ["a"]}, now=START)
    FAILURES[failure](stub)
    clock.advance(1)
    response = post(hook_client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert response.status_code == 200
    assert ext(response.json_body["access_token"]) == {"roles": ["a"]}  # stored ones only
    fresh = login(hook_client, "alice.2")
    assert ext(fresh["access_token"]) == {"roles": ["a"]}
    metrics = [json.loads(line) for line in log_lines if '"TokenHookFailed"' in line]
    assert [m["trigger"] for m in metrics] == ["refresh", "login"]
    assert all(m["TokenHookFailed"] == 1 and m["on_error"] == "issue" for m in metrics)
    assert not any("someone-else" in line or "aaaa" in line for line in log_lines)


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_failed_hook_refuses_the_login_and_changes_no_session(
    refusing_client, stub, failure, dynamodb
):
    FAILURES[failure](stub)
    response = post(refusing_client, "/auth/login", {"code": "alice.1"})
    assert_error(response, 503, "temporarily_unavailable")
    assert response.headers["Retry-After"] == "2"
    items = table_items(dynamodb)
    assert not any(item["sk"]["S"].startswith("SESSION#") for item in items)
    assert not any(item["pk"]["S"].startswith("LOGIN#") for item in items)  # claim released


def test_a_refused_refresh_can_be_retried_in_the_grace_window(refusing_client, stub, clock):
    body = login(refusing_client, "alice.1")
    stub.error = ReadTimeoutError(endpoint_url="https://lambda")
    clock.advance(1)
    response = post(refusing_client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert_error(response, 503, "temporarily_unavailable")
    assert response.headers["Retry-After"] == "2"

    stub.error = None  # the hook is back: the retry is answered from the grace window
    clock.advance(2)
    retried = post(refusing_client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert retried.status_code == 200
    assert ext(retried.json_body["access_token"]) == {"plan": "pro"}
    onward = post(
        refusing_client, "/auth/refresh", {"refresh_token": retried.json_body["refresh_token"]}
    )
    assert onward.status_code == 200


def test_the_hook_with_a_real_client_and_no_such_function_takes_the_error_path(
    settings, dynamodb, clock, wechat
):
    """runtime.build's own Lambda client (moto: the function does not exist)."""
    svc = runtime.build(replace(settings, token_hook_arn=HOOK_ARN), dynamodb=dynamodb, clock=clock)
    result = svc.login.login("alice.1", START)
    assert ext(result.tokens.access_token) is None


def test_hook_client_budget_is_strict():
    config = hook_budget(1500).config()
    assert (config.connect_timeout, config.read_timeout) == (1.5, 1.5)
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}  # no retry
    assert hook_budget(1500).worst_case == 3.0


# -- settings --------------------------------------------------------------------------------------


def test_hook_settings_defaults_and_values():
    defaults = Settings.from_env({})
    assert defaults.token_hook_arn is None
    assert defaults.token_hook_timeout_ms == 1000 and defaults.token_hook_on_error == "issue"
    chosen = Settings.from_env(
        {
            "AUTH_TOKEN_HOOK_ARN": HOOK_ARN + ":live",
            "AUTH_TOKEN_HOOK_TIMEOUT_MS": "5000",
            "AUTH_TOKEN_HOOK_ON_ERROR": "Refuse",
        }
    )
    assert chosen.token_hook_arn == HOOK_ARN + ":live"
    assert chosen.token_hook_timeout_ms == 5000 and chosen.token_hook_on_error == "refuse"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTH_TOKEN_HOOK_ARN": "my-function"}, "Lambda function ARN"),
        ({"AUTH_TOKEN_HOOK_ARN": "arn:aws:lambda:us-east-1:1:function:x"}, "Lambda function ARN"),
        ({"AUTH_TOKEN_HOOK_TIMEOUT_MS": "5001"}, "at most 5000"),
        ({"AUTH_TOKEN_HOOK_TIMEOUT_MS": "0"}, "positive"),
        ({"AUTH_TOKEN_HOOK_TIMEOUT_MS": "1.5"}, "integer"),
        ({"AUTH_TOKEN_HOOK_ON_ERROR": "ignore"}, "issue, refuse"),
        (
            {"AUTH_TOKEN_HOOK_ARN": HOOK_ARN, "AUTH_REFRESH_GRACE": "16"},
            "AUTH_REFRESH_GRACE must be 0 or at least 18",
        ),
        (
            {
                "AUTH_TOKEN_HOOK_ARN": HOOK_ARN,
                "AUTH_TOKEN_HOOK_TIMEOUT_MS": "5000",
                "AUTH_REFRESH_GRACE": "25",
            },
            "at least 26",
        ),
    ],
)
def test_bad_hook_settings_are_refused(env, message):
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)


def test_hook_grace_rule_allows_no_grace_and_enough_grace():
    for grace in ("0", "18", "30"):
        Settings.from_env({"AUTH_TOKEN_HOOK_ARN": HOOK_ARN, "AUTH_REFRESH_GRACE": grace})


def test_hook_claims_that_overflow_the_bound_with_the_stored_ones_are_a_failure(
    hook_client, stub, log_lines
):
    import app

    body = login(hook_client, "alice.1")
    claims.set_claims(app._services.store, body["user"]["id"], {"roles": ["a"]}, now=START)
    alone = {"x": "a" * (MAX_BYTES - 20)}
    claims.validate(alone)  # within the bound alone
    stub.answer = {"claims": alone}
    response = post(hook_client, "/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert ext(response.json_body["access_token"]) == {"roles": ["a"]}
    assert any('"TokenHookFailed"' in line for line in log_lines)
