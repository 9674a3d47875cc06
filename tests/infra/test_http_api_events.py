"""The app behind the HTTP API: payload format 1.0 events, shaped as API Gateway sends them for
the template's routes, through Chalice's own handler (`app.app(event, context)`).

In a 1.0 event from an HTTP API, `requestContext.resourcePath` is the matched route's path
(`/auth/login`; `/{proxy+}` for a greedy route) and `"$default"` for the `$default` route, with
the request's real path in `path`; Chalice dispatches on `resourcePath` alone. (Events as
captured from API Gateway, e.g. in spring-cloud-function's and Mangum's tests, and the API
Gateway developer guide, "Create AWS Lambda proxy integrations for HTTP APIs".)
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from chalice import Chalice

from tests.events import http_api_v1_event
from tests.infra.test_template import STRICT_ROUTES, Template, _routes

API_ID = "abc123"


def v1_event(
    method: str,
    path: str,
    *,
    route_key: str,
    body: dict[str, Any] | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A payload format 1.0 event of an HTTP API's $default stage for the route `route_key`."""
    return http_api_v1_event(
        method,
        path,
        headers={"content-type": "application/json"},
        body=json.dumps(body) if body is not None else None,
        api_id=API_ID,
        route_path="$default" if route_key == "$default" else route_key.split(" ", 1)[1],
        path_parameters=path_parameters,
    )


@pytest.fixture
def handler(services, monkeypatch: pytest.MonkeyPatch):
    """The real app wired to moto, the stub WeChat and the clock (as tests/conftest `client`)."""
    import app

    monkeypatch.setattr(app, "_services", services)
    return lambda event: app.app(event, None)


def request_routes(log_lines: list[str]) -> list[str]:
    lines = [json.loads(line) for line in log_lines if line.startswith("{")]
    return [line["route"] for line in lines if line.get("event") == "request"]


def test_every_route_of_the_template_reaches_its_view(
    template: Template, handler, log_lines: list[str]
) -> None:
    for route_key in sorted(set(_routes(template)) - {"$default"}):
        method, path = route_key.split(" ", 1)
        log_lines.clear()
        # A route with `{name}` segments comes with its pathParameters, as API Gateway sends.
        params = dict.fromkeys(re.findall(r"\{(\w+)\}", path), "x") or None
        response = handler(
            v1_event(method, path, route_key=route_key, body={}, path_parameters=params)
        )
        # The view ran (its request log line names the route) and answered: a result or the
        # contract's JSON error, not Chalice's routing errors.
        assert request_routes(log_lines) == [path], route_key
        assert response["statusCode"] not in (404, 405), (route_key, response)
        if response["body"]:
            body = json.loads(response["body"])
            assert "Code" not in body, (route_key, body)  # Chalice's own error shape
            if response["statusCode"] >= 400:
                assert set(body) == {"error", "error_description"}, (route_key, body)


def test_a_v1_event_serves_verify_and_discovery(handler) -> None:
    response = handler(
        v1_event("POST", "/auth/verify", route_key="POST /auth/verify", body={"token": "x"})
    )
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"valid": False, "reason": "invalid"}
    response = handler(
        v1_event("GET", "/.well-known/jwks.json", route_key="GET /.well-known/jwks.json")
    )
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["keys"]


# A stock Chalice app, to show what Chalice itself does with resourcePaths it has no route for.
plain = Chalice(app_name="plain")


@plain.route("/hello")
def hello() -> dict[str, str]:
    return {"hello": "world"}


def test_chalice_answers_a_proxy_route_405_since_it_dispatches_on_resource_path() -> None:
    """Why every app route has its own route: behind `ANY /{proxy+}`, every request reaches
    Chalice as resourcePath "/{proxy+}", a path with no view and so no method: 405."""
    assert plain(v1_event("GET", "/hello", route_key="GET /hello"), None)["statusCode"] == 200
    event = v1_event("GET", "/hello", route_key="ANY /{proxy+}", path_parameters={"proxy": "hello"})
    assert event["requestContext"]["resourcePath"] == "/{proxy+}"
    response = plain(event, None)
    assert response["statusCode"] == 405
    assert json.loads(response["body"])["Code"] == "MethodNotAllowedError"
    # The $default route fares the same: resourcePath "$default".
    assert plain(v1_event("GET", "/hello", route_key="$default"), None)["statusCode"] == 405


def test_the_default_route_answers_unknown_paths_and_methods_in_the_contracts_shape(
    handler, log_lines: list[str]
) -> None:
    """What `$default` (or a catch-all) brings: the app answers by the request's path, not
    Chalice's 405 for every resourcePath it has no route for."""
    for event, status, error, allow in (
        (v1_event("GET", "/no/such/path", route_key="$default"), 404, "not_found", None),
        (v1_event("GET", "/auth/login", route_key="$default"), 405, "method_not_allowed", "POST"),
    ):
        log_lines.clear()
        response = handler(event)
        assert response["statusCode"] == status, response
        assert json.loads(response["body"])["error"] == error
        headers = {k.lower(): v for k, v in response["headers"].items()}
        assert headers.get("allow") == allow
        assert headers["cache-control"] == "no-store"
        (logged,) = [json.loads(line) for line in log_lines if '"event":"request"' in line]
        assert (logged["status"], logged["error"]) == (status, error)  # the answer, no view


def test_a_catch_all_route_never_reaches_a_view(handler, log_lines: list[str]) -> None:
    """Behind `ANY /{proxy+}` (or `$default`) the app answers 404 or 405 by the path and never
    runs a view (issue 22, item 5): a view reached so would escape its route's throttle."""
    for route_key in ("ANY /{proxy+}", "$default"):
        for method, path, status in (
            ("GET", "/.well-known/jwks.json", 404),  # a gateway without the route: not served
            ("POST", "/auth/login/", 404),
            ("GET", "/auth/login", 405),
        ):
            log_lines.clear()
            event = v1_event(
                method,
                path,
                route_key=route_key,
                path_parameters={"proxy": path[1:]} if "proxy" in route_key else None,
            )
            response = handler(event)
            assert response["statusCode"] == status, (route_key, path, response)
            assert request_routes(log_lines) == [None if status == 404 else path]


@pytest.mark.parametrize("route_key", sorted(STRICT_ROUTES))
def test_no_path_reaches_a_throttled_view_through_the_default_route(
    template: Template, handler, log_lines: list[str], route_key: str
) -> None:
    """Each route with its own throttle (RouteSettings) is served only through that route: the
    paths API Gateway sends to `$default` instead (and so under the default throttle) are
    answered 404 without running the view."""
    assert route_key in _routes(template)
    method, path = route_key.split(" ", 1)
    for variant in (f"{path}/", f"/$default{path}", f"/prod{path}", f"/{path}", path.upper()):
        log_lines.clear()
        response = handler(v1_event(method, variant, route_key="$default", body={}))
        assert response["statusCode"] == 404, (variant, response)
        assert request_routes(log_lines) == [None]


def test_a_base64_encoded_form_body_is_read(handler, log_lines: list[str]) -> None:
    """An HTTP API may base64-encode a body it does not take for text; Chalice decodes it."""
    event = v1_event("POST", "/oauth/revoke", route_key="POST /oauth/revoke")
    event["headers"]["content-type"] = "application/x-www-form-urlencoded"
    event["multiValueHeaders"]["content-type"] = ["application/x-www-form-urlencoded"]
    event["body"] = base64.b64encode(b"token=not-a-token").decode()
    event["isBase64Encoded"] = True
    response = handler(event)
    assert response["statusCode"] == 200  # RFC 7009: an unknown token is revoked already
    assert request_routes(log_lines) == ["/oauth/revoke"]
    event["body"] = base64.b64encode(b"token=a&token=b").decode()  # read, so refused
    response = handler(event)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"] == "invalid_request"
