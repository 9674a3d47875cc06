"""Every route, and every path and method outside them, with arbitrary Authorization,
Content-Type and Accept headers (hypothesis), through chalice.test.Client: never a 5xx, every
error in the contract's shape with `Cache-Control: no-store`, no credentials quoted back, and
nothing written to the table by a request that failed."""

from __future__ import annotations

import json

import pytest
from chalice.config import Config
from chalice.test import Client
from hypothesis import given
from hypothesis import strategies as st

import app
from devserver import chalice_local
from tests.fuzz import AUTHORIZATION, CONTENT_TYPE, FUZZ_ROUTES, TOKEN_LIKE

ROUTES = sorted((path, method) for path, entries in app.app.routes.items() for method in entries)

JSON_BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=100),
    st.builds(
        lambda name, value: json.dumps({name: value}).encode(),
        st.sampled_from(["code", "refresh_token", "token", "all"]),
        TOKEN_LIKE | st.booleans() | st.none(),
    ),
)
FORM_BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=100),
    st.builds(
        lambda grant, value: f"grant_type={grant}&refresh_token={value}&token={value}".encode(),
        st.sampled_from(["refresh_token", "client_credentials", "password", ""]),
        st.text(alphabet="abc.-_%+=&", max_size=30),
    ),
)
HEADERS = st.fixed_dictionaries(
    {},
    optional={"authorization": AUTHORIZATION, "content-type": CONTENT_TYPE, "accept": CONTENT_TYPE},
)


def route_headers(right_type: str) -> st.SearchStrategy[dict[str, str]]:
    """Any headers; half the time the route's own media type, so that the request gets past
    its body to the Authorization parser."""
    return HEADERS | st.fixed_dictionaries(
        {"authorization": AUTHORIZATION, "content-type": st.just(right_type)},
        optional={"accept": CONTENT_TYPE},
    )


def _assert_answer_is_ours(response, headers: dict[str, str]) -> None:
    assert response.status_code < 500, response.body
    if response.status_code >= 400:
        body = json.loads(response.body)
        assert set(body) == {"error", "error_description"}, body
        assert isinstance(body["error"], str) and isinstance(body["error_description"], str)
        assert response.headers["Cache-Control"] == "no-store"
    credentials = headers.get("authorization", "").strip().partition(" ")[2].strip()
    if len(credentials) >= 8:
        assert credentials.encode("utf-8", "surrogatepass") not in response.body


@pytest.fixture
def local_client(services, monkeypatch):
    """chalice.test.Client through the devserver's gateway, which passes every path and method
    to the app (chalice.test's own gateway answers unknown paths itself)."""
    monkeypatch.setattr(app, "_services", services)
    with Client(app.app) as test_client:
        test_client.http._local_gateway = chalice_local.LocalGateway(app.app, Config())
        yield test_client


@pytest.mark.parametrize(("path", "method"), ROUTES, ids=[f"{m} {p}" for p, m in ROUTES])
def test_every_route_answers_any_headers_in_the_contract_shape(client, log_lines, path, method):
    form = path.startswith("/oauth/")
    bodies = FORM_BODIES if form else JSON_BODIES
    right_type = "application/x-www-form-urlencoded" if form else "application/json"

    @FUZZ_ROUTES
    @given(headers=route_headers(right_type), body=bodies)
    def check(headers: dict[str, str], body: bytes) -> None:
        response = client.http.request(method, path, headers=headers, body=body)
        _assert_answer_is_ours(response, headers)

    check()
    assert not [line for line in log_lines if '"status":5' in line or "unhandled" in line]


@FUZZ_ROUTES
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "FOO"]),
    path=st.sampled_from([p for p, _ in ROUTES] + ["/", "/nope", "/auth", "/me/x"])
    | st.text(alphabet="/abcdefghijklmnopqrstuvwxyz.-_%?=&{}$", max_size=30).map(lambda p: "/" + p),
    headers=HEADERS,
)
def test_any_path_and_method_answers_in_the_contract_shape(local_client, method, path, headers):
    response = local_client.http.request(method, path, headers=headers, body=b"")

    _assert_answer_is_ours(response, headers)
    route = path.split("?", 1)[0]
    if route != "/" and route.endswith("/"):
        route = route[:-1]  # as API Gateway and chalice local do
    methods = app.app.routes.get(route)  # `.get`: the route table is a defaultdict
    if not methods:
        assert response.status_code == 404
        assert json.loads(response.body)["error"] == "not_found"
    elif method not in methods:
        assert response.status_code == 405
        assert response.headers["Allow"] == ", ".join(sorted(methods))


def test_every_route_is_fuzzed():
    assert len(ROUTES) >= 10 and ("/auth/login", "POST") in ROUTES and ("/me", "GET") in ROUTES
