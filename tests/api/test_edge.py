"""What reaches no view: a path that is no route (404 `not_found`) and a method a route lacks
(405 `method_not_allowed` with `Allow`), in the contract's error shape, through Lambda events
(API Gateway REST, and an HTTP API's payload 1.0 from its `$default` route), chalice.test.Client
and the devserver's gateway."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalice.config import Config
from chalice.test import Client

import app
from devserver import chalice_local
from tests.events import http_api_v1_event
from tests.http import assert_error

SECRET_HEADER = "Bearer eyJTHIS-MUST-NOT-BE-ECHOED.eyJzdWIiOiJ1In0.c2ln"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
ROUTES = {path: sorted(entries) for path, entries in app.app.routes.items()}


def event(method: str, resource: str, path: str, headers: dict[str, str] | None = None) -> dict:
    """A payload-1.0 event as API Gateway sends it (HTTP API: `resource` may be `$default`)."""
    return http_api_v1_event(method, path, headers=headers, route_path=resource)


def invoke(lambda_event: dict) -> tuple[int, dict[str, Any], dict[str, Any]]:
    answer = app.app(lambda_event, None)
    headers = {**answer["headers"], **answer.get("multiValueHeaders", {})}
    return answer["statusCode"], headers, json.loads(answer["body"]) if answer["body"] else {}


def assert_error_dict(status, headers, body, expected_status, code):
    assert status == expected_status, body
    assert set(body) == {"error", "error_description"} and body["error"] == code
    assert body["error_description"]
    assert headers["Cache-Control"] == "no-store"


@pytest.fixture
def routes_unchanged():
    """Chalice's route table is a defaultdict: a lookup of a stranger must not add it."""
    before = {path: dict(entries) for path, entries in app.app.routes.items()}
    yield
    assert {path: dict(entries) for path, entries in app.app.routes.items()} == before


@pytest.fixture
def local_client(services, monkeypatch):
    """chalice.test.Client through the devserver's gateway (`chalice local`'s, in-process)."""
    monkeypatch.setattr(app, "_services", services)
    with Client(app.app) as test_client:
        test_client.http._local_gateway = chalice_local.LocalGateway(app.app, Config())
        yield test_client


def test_every_route_is_covered():
    assert "/auth/login" in ROUTES and ROUTES["/auth/login"] == ["POST"]
    assert ROUTES["/me"] == ["GET", "PATCH", "POST"]  # the profile (issue 25, item 4)


# -- Lambda events ----------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["$default", "/nope", "/auth", "/me/extra", ""])
@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS"])
def test_a_path_that_is_no_route_is_404(routes_unchanged, resource, method):
    path = "/nope" if resource in ("$default", "") else resource
    status, headers, body = invoke(event(method, resource, path, {"authorization": SECRET_HEADER}))

    assert_error_dict(status, headers, body, 404, "not_found")
    assert "Allow" not in headers
    assert "THIS-MUST-NOT-BE-ECHOED" not in json.dumps([headers, body])


@pytest.mark.parametrize(("path", "allowed"), sorted(ROUTES.items()))
def test_another_method_of_a_route_is_405_with_allow(routes_unchanged, path, allowed):
    for method in [m for m in METHODS if m not in allowed]:
        status, headers, body = invoke(event(method, path, path, {"authorization": SECRET_HEADER}))

        assert_error_dict(status, headers, body, 405, "method_not_allowed")
        assert headers["Allow"] == ", ".join(allowed)
        assert "THIS-MUST-NOT-BE-ECHOED" not in json.dumps([headers, body])


def test_http_api_default_route_with_a_known_path_and_another_method_is_405(routes_unchanged):
    """An HTTP API sends `GET /auth/login` (no such route there) to `$default`."""
    status, headers, body = invoke(event("GET", "$default", "/auth/login"))

    assert_error_dict(status, headers, body, 405, "method_not_allowed")
    assert headers["Allow"] == "POST"


def test_http_api_default_route_with_a_route_of_a_parameter_and_another_method_is_405(
    routes_unchanged,
):
    status, headers, body = invoke(event("GET", "$default", "/auth/sessions/abc"))

    assert_error_dict(status, headers, body, 405, "method_not_allowed")
    assert headers["Allow"] == "DELETE"


# Issue 22, item 5: API Gateway throttles by route, and `$default` has the loose default
# throttle; a view reached through it by its path would run at `$default`'s rate.
BYPASSES = [
    pytest.param("POST", "/auth/login/", id="trailing-slash"),
    pytest.param("POST", "/$default/auth/login", id="default-stage-prefix"),
    pytest.param("POST", "/prod/auth/login", id="stage-prefix"),
    pytest.param("POST", "//auth/login", id="double-slash"),
    pytest.param("POST", "/auth/refresh/", id="refresh-trailing-slash"),
    pytest.param("POST", "/oauth/token/", id="token-trailing-slash"),
    pytest.param("GET", "/.well-known/jwks.json/", id="jwks-trailing-slash"),
    pytest.param("DELETE", "/auth/sessions/", id="empty-parameter"),
    pytest.param("POST", "/auth/login", id="the-route-itself"),  # a gateway that lacks it
]


@pytest.mark.parametrize(("method", "path"), BYPASSES)
@pytest.mark.parametrize("resource", ["$default", "/{proxy+}"])
def test_the_default_route_never_reaches_a_view(
    client, services, wechat, routes_unchanged, log_lines, resource, method, path
):
    lambda_event = event(method, resource, path, {"content-type": "application/json"})
    lambda_event["requestContext"]["stage"] = "prod"  # a stage prefix is never stripped
    lambda_event["body"] = json.dumps({"code": "alice", "refresh_token": "x"})

    status, headers, body = invoke(lambda_event)

    assert_error_dict(status, headers, body, 404, "not_found")
    assert "Allow" not in headers
    assert wechat.calls == 0  # the login view did not run
    (logged,) = [json.loads(line) for line in log_lines if '"event":"request"' in line]
    assert (logged["route"], logged["status"]) == (None, 404)


def test_unrouted_answers_write_the_request_log_line(log_lines):
    unrouted = event("GET", "$default", "/nope", {"authorization": SECRET_HEADER})
    invoke(unrouted)
    invoke(event("GET", "/auth/login", "/auth/login", {"authorization": SECRET_HEADER}))

    requests = [json.loads(line) for line in log_lines if '"event":"request"' in line]
    assert [(r["status"], r["error"], r["route"], r["method"]) for r in requests] == [
        (404, "not_found", None, "GET"),
        (405, "method_not_allowed", "/auth/login", "GET"),
    ]
    assert requests[0]["request_id"] == unrouted["requestContext"]["requestId"]
    assert not [line for line in log_lines if "THIS-MUST-NOT-BE-ECHOED" in line or "nope" in line]


def test_events_that_are_not_api_gateway_requests_go_to_chalice():
    """No requestContext.resourcePath: Chalice's own answer for an unknown request (500)."""
    answer = app.app({"requestContext": {}}, None)

    assert answer["statusCode"] == 500


# -- chalice.test.Client, and the devserver's gateway -----------------------------------------


def test_wrong_method_through_the_test_client_is_our_405(client):
    response = client.http.get("/auth/login", headers={"authorization": SECRET_HEADER})

    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"
    assert b"MethodNotAllowedError" not in response.body


@pytest.mark.parametrize(
    "path", ["/nope", "/", "/auth", "/me/x/y", "/auth/login/extra?x=1", "/%00"]
)
def test_unknown_path_through_the_devserver_gateway_is_404(local_client, routes_unchanged, path):
    for headers in ({}, {"authorization": SECRET_HEADER}, {"authorization": "Basic é漢"}):
        response = local_client.http.get(path, headers=headers)

        assert_error(response, 404, "not_found")
        assert b"THIS-MUST-NOT-BE-ECHOED" not in response.body
        assert b"Missing Authentication Token" not in response.body


@pytest.mark.parametrize("method", ["OPTIONS", "HEAD", "PUT", "DELETE"])
def test_options_and_head_through_the_devserver_gateway_are_405(local_client, method):
    response = local_client.http.request(method, "/me")

    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "GET, PATCH, POST"


def test_routes_still_work_through_the_devserver_gateway(local_client):
    assert local_client.http.get("/.well-known/jwks.json").status_code == 200
    assert_error(local_client.http.get("/me"), 401, "invalid_token")
    assert local_client.http.request("DELETE", "/auth/sessions/abc").status_code == 401


@pytest.mark.parametrize(
    ("method", "path"), [p for p in BYPASSES if p.id not in ("the-route-itself",)]
)
def test_the_devserver_gateway_matches_routes_as_an_http_api(
    local_client, wechat, routes_unchanged, method, path
):
    """No trailing slash dropped, no stage stripped: `$default`, and so 404 (issue 22.5)."""
    response = local_client.http.request(
        method, path, body=b'{"code": "alice"}', headers={"content-type": "application/json"}
    )

    assert_error(response, 404, "not_found")
    assert wechat.calls == 0


def test_the_devserver_gateway_sends_another_method_to_the_default_route(local_client):
    """An HTTP API's route is a method and a path: `GET /auth/login` is `$default`'s."""
    gateway = local_client.http._local_gateway
    seen = []
    real = gateway._app_object

    def spy(lambda_event, context):
        seen.append(lambda_event["requestContext"]["resourcePath"])
        return real(lambda_event, context)

    gateway._app_object = type("Spy", (), {"routes": real.routes, "__call__": staticmethod(spy)})()
    response = local_client.http.get("/auth/login")

    assert seen == ["$default"]
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"
