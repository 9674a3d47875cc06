"""chalicelib/openapi.json: a valid OpenAPI 3.1 description of exactly the app's routes, served
at GET /openapi.json, and real answers of the app (through chalice.test.Client) that match it.

tests/integration/test_schemathesis.py fuzzes the local server against the same description.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from chalicelib import openapi
from tests.api.test_edge import local_client  # noqa: F401 - the devserver's gateway
from tests.api.test_internal import SCOPE, client_token, stable  # noqa: F401
from tests.api.test_internal import wechat as wechat  # noqa: F401 - its fixture
from tests.conftest import START
from tests.http import JSON, basic, bearer, login, post

SPEC = openapi.document()
SPEC_URI = "urn:wxauth:openapi"
REGISTRY = Registry().with_resource(SPEC_URI, Resource.from_contents(SPEC, DRAFT202012))
FORM = {"content-type": "application/x-www-form-urlencoded"}


def app_operations() -> set[str]:
    """`"METHOD /path"` of every route the Chalice app registers (its own route table)."""
    import app

    return {f"{method} {path}" for path, methods in app.app.routes.items() for method in methods}


# -- the description itself ---------------------------------------------------------------------


def test_the_description_is_valid_openapi_3_1() -> None:
    assert SPEC["openapi"].startswith("3.1.")
    errors = [e.message for e in OpenAPIV31SpecValidator(SPEC).iter_errors()]
    assert not errors, errors[:5]


def test_every_route_of_the_app_is_described_and_nothing_else() -> None:
    described, routed = openapi.operations(SPEC), app_operations()
    missing, extra = sorted(routed - described), sorted(described - routed)
    assert not missing and not extra, (
        f"chalicelib/openapi.json and app.py disagree.\n"
        f"  Routes of app.py that the description lacks (add them under `paths`): {missing}\n"
        f"  Operations described that app.py has no route for (remove them): {extra}"
    )


def operation_items() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in SPEC["paths"].items()
        for method, operation in item.items()
        if method in openapi.HTTP_METHODS
    ]


def resolve(node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A `$ref`'d object and its JSON pointer in the description (None if inline)."""
    ref = node.get("$ref")
    if ref is None:
        return node, None
    target: Any = SPEC
    for part in ref.removeprefix("#/").split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target, ref.removeprefix("#")


@pytest.mark.parametrize(("name", "operation"), operation_items(), ids=lambda v: str(v)[:40])
def test_every_operation_has_an_id_security_and_error_answers(
    name: str, operation: dict[str, Any]
) -> None:
    assert operation.get("operationId"), f"{name}: give it an operationId (links use them)"
    assert "security" in operation, f"{name}: say which credentials it takes ([] for none)"
    responses = operation["responses"]
    assert "500" in responses, f"{name}: every route can answer 500 server_error"
    for status, response in responses.items():
        response, _ = resolve(response)
        assert response["headers"]["Cache-Control"], f"{name} {status}: Cache-Control"
        if int(status) >= 400:
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, f"{name} {status}"
        if status in ("429", "503"):
            assert "Retry-After" in response["headers"], f"{name} {status}: Retry-After"
        if status == "401":
            assert "WWW-Authenticate" in response["headers"], f"{name} 401: WWW-Authenticate"


def test_operation_ids_are_unique() -> None:
    ids = [operation["operationId"] for _, operation in operation_items()]
    assert len(ids) == len(set(ids))


# -- GET /openapi.json --------------------------------------------------------------------------


def test_the_description_is_served_with_the_issuer_as_its_server(client, dynamodb_requests) -> None:
    response = client.http.get("/openapi.json")

    assert response.status_code == 200
    assert header(response, "content-type") in (None, "application/json")  # see conforms
    assert response.headers["Cache-Control"] == "public, max-age=300"
    body = response.json_body
    assert body["servers"] == [{"url": "https://auth.test"}]
    assert {**body, "servers": SPEC["servers"]} == SPEC
    assert dynamodb_requests == []


def test_the_file_read_is_the_one_in_the_package() -> None:
    assert openapi.SPEC_FILE.name == "openapi.json"
    assert openapi.SPEC_FILE.parent.name == "chalicelib"  # infra/build.py ships chalicelib/
    assert json.loads(openapi.SPEC_FILE.read_text()) == SPEC


# -- real answers match the description ---------------------------------------------------------


def header(response, name: str) -> str | None:
    return next((v for k, v in response.headers.items() if k.lower() == name.lower()), None)


def conforms(method: str, path: str, response) -> None:
    """The answer's status is described for the operation, and so are its body (by the media
    type's schema) and its required headers (by their schemas)."""
    operation = SPEC["paths"][path][method.lower()]
    status = str(response.status_code)
    where = f"{method} {path} answered {status}"
    assert status in operation["responses"], f"{where}, which the description lacks"
    described, pointer = resolve(operation["responses"][status])
    if pointer is None:
        pointer = f"/paths/{quote(path.replace('~', '~0').replace('/', '~1'), safe='~')}"
        pointer += f"/{method.lower()}/responses/{status}"
    for name, definition in described.get("headers", {}).items():
        definition, _ = resolve(definition)
        value = header(response, name)
        if value is None:
            assert not definition.get("required"), f"{where} without the header {name}"
            continue
        coerced: Any = int(value) if definition["schema"].get("type") == "integer" else value
        errors = list(Draft202012Validator(definition["schema"]).iter_errors(coerced))
        assert not errors, f"{where}: header {name}: {errors[0].message}"
    content = described.get("content")
    if not content:
        assert not response.body, f"{where} with a body the description does not have"
        return
    # Chalice leaves out Content-Type for a JSON body; chalice local and API Gateway add it.
    media_type = (header(response, "content-type") or "application/json").split(";")[0]
    assert media_type in content, f"{where} as {media_type}, not {sorted(content)}"
    body = response.json_body if media_type == "application/json" else response.body.decode()
    escaped = media_type.replace("/", "~1")
    schema = {"$ref": f"{SPEC_URI}#{pointer}/content/{escaped}/schema"}
    errors = list(Draft202012Validator(schema, registry=REGISTRY).iter_errors(body))
    assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"


def test_a_session_round_trip_matches_the_description(client) -> None:
    def checked(method: str, path: str, **kwargs):
        headers = kwargs.pop("headers", {})
        response = getattr(client.http, method.lower())(path, headers=headers, **kwargs)
        conforms(method, path, response)
        return response

    first = checked("POST", "/auth/login", headers=JSON, body=json.dumps({"code": "alice.1"}))
    tokens = first.json_body
    at, rt = tokens["access_token"], tokens["refresh_token"]
    checked("GET", "/me", headers=bearer(at))
    checked("GET", "/example/hello", headers={"authorization": at})
    checked("POST", "/auth/verify", headers=JSON, body=json.dumps({"token": at}))
    checked("POST", "/auth/verify", headers=JSON, body=json.dumps({"token": "not-a-jwt"}))
    rotated = checked(
        "POST", "/auth/refresh", headers=JSON, body=json.dumps({"refresh_token": rt})
    ).json_body
    again = checked(
        "POST",
        "/oauth/token",
        headers=FORM,
        body=f"grant_type=refresh_token&refresh_token={quote(rotated['refresh_token'])}",
    )
    assert again.status_code == 200
    checked("POST", "/auth/logout", headers=bearer(again.json_body["access_token"]))
    assert checked("GET", "/me", headers=bearer(at)).status_code == 401
    checked("POST", "/oauth/revoke", headers=FORM, body=f"token={quote(rt)}")
    checked("GET", "/.well-known/jwks.json")
    checked("GET", "/.well-known/openid-configuration")
    checked("GET", "/openapi.json")


def test_sessions_and_devices_match_the_description(client) -> None:
    """GET /auth/sessions (with and without a device label), DELETE /auth/sessions/{sid}: 204,
    then the described 404."""
    login = {"code": "alice.1", "device": {"name": "Alice's phone", "platform": "ios"}}
    first = client.http.post("/auth/login", headers=JSON, body=json.dumps(login))
    conforms("POST", "/auth/login", first)
    second = client.http.post("/auth/login", headers=JSON, body=json.dumps({"code": "alice.2"}))
    at = first.json_body["access_token"]
    listed = client.http.get("/auth/sessions", headers=bearer(at))
    conforms("GET", "/auth/sessions", listed)
    assert len(listed.json_body["sessions"]) == 2
    other = second.json_body["refresh_token"].split(".")[1]
    for status in (204, 404):
        ended = client.http.delete(f"/auth/sessions/{other}", headers=bearer(at))
        assert ended.status_code == status
        conforms("DELETE", "/auth/sessions/{sid}", ended)
    logout = client.http.post(
        "/auth/logout", headers={**JSON, **bearer(at)}, body=json.dumps({"others": True})
    )
    conforms("POST", "/auth/logout", logout)


def test_session_pages_and_an_evicted_refresh_match_the_description(
    client, services, clock
) -> None:
    """A page with a next_cursor, the last page, a bad cursor (400), and the refresh of a
    session the cap on sessions ended (400 invalid_grant with `reason`)."""
    from chalicelib.session_cap import SessionCap

    first = client.http.post("/auth/login", headers=JSON, body=json.dumps({"code": "alice.1"}))
    clock.advance(1)
    second = client.http.post("/auth/login", headers=JSON, body=json.dumps({"code": "alice.2"}))
    at = second.json_body["access_token"]
    page = client.http.get("/auth/sessions?limit=1", headers=bearer(at))
    conforms("GET", "/auth/sessions", page)
    cursor = page.json_body["next_cursor"]
    assert cursor
    last = client.http.get(f"/auth/sessions?limit=100&cursor={cursor}", headers=bearer(at))
    conforms("GET", "/auth/sessions", last)
    bad = client.http.get("/auth/sessions?cursor=nope", headers=bearer(at))
    assert bad.status_code == 400
    conforms("GET", "/auth/sessions", bad)
    services.sessions._cap = SessionCap(services.store.sessions, max_sessions=1)
    clock.advance(1)
    client.http.post("/auth/login", headers=JSON, body=json.dumps({"code": "alice.3"}))
    for body in (first.json_body, second.json_body):
        refused = client.http.post(
            "/auth/refresh",
            headers=JSON,
            body=json.dumps({"refresh_token": body["refresh_token"]}),
        )
        assert refused.json_body.get("reason") == "session_evicted"
        conforms("POST", "/auth/refresh", refused)


def test_client_credentials_and_the_wechat_token_match_the_description(
    client,
    services,
    stable,  # noqa: F811 - the fixture
) -> None:
    access = client_token(client, services, [SCOPE])
    conforms("GET", "/example/hello", client.http.get("/example/hello", headers=bearer(access)))
    served = client.http.post("/wechat/access-token", headers=bearer(access))
    assert served.status_code == 200
    conforms("POST", "/wechat/access-token", served)
    response = client.http.post(
        "/oauth/token",
        headers={**FORM, **basic("nobody", "wrong")},
        body="grant_type=client_credentials",
    )
    assert response.status_code == 401
    conforms("POST", "/oauth/token", response)


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("POST", "/auth/login", JSON, "{not json", 400),
        ("POST", "/auth/login", JSON, '{"code": "err-40226"}', 403),
        ("POST", "/auth/login", JSON, '{"code": "err-45011"}', 429),
        ("POST", "/auth/login", JSON, '{"code": "err--1"}', 503),
        ("POST", "/auth/refresh", JSON, '{"refresh_token": "a.b.c"}', 400),
        ("POST", "/auth/verify", {"authorization": "Digest x"}, "", 401),
        ("POST", "/auth/logout", {}, "", 401),
        ("POST", "/auth/phone", {"authorization": "Bearer nope"}, "", 401),
        ("GET", "/me", {"authorization": "Basic !!"}, None, 401),
        ("POST", "/wechat/access-token", {}, "", 401),
        ("POST", "/oauth/token", FORM, "grant_type=password", 400),
        ("POST", "/oauth/token", JSON, "{}", 400),
        ("POST", "/oauth/revoke", FORM, "", 400),
    ],
)
def test_error_answers_match_the_description(client, method, path, headers, body, status) -> None:
    kwargs = {"headers": headers} if body is None else {"headers": headers, "body": body}
    response = getattr(client.http, method.lower())(path, **kwargs)
    assert response.status_code == status, response.body
    conforms(method, path, response)


def test_a_users_token_on_a_clients_route_is_a_described_403(client) -> None:
    at = login(client, "carol.1")["access_token"]
    response = post(client, "/wechat/access-token", headers=bearer(at))
    assert response.status_code == 403
    conforms("POST", "/wechat/access-token", response)


def test_unrouted_answers_match_their_described_components(
    local_client,  # noqa: F811 - the fixture
) -> None:
    for method, path, status, name in [
        ("GET", "/no/such/route", 404, "NotFound"),
        ("GET", "/auth/login", 405, "MethodNotAllowed"),
    ]:
        response = getattr(local_client.http, method.lower())(path)
        assert response.status_code == status
        described = SPEC["components"]["responses"][name]
        schema = {"$ref": f"{SPEC_URI}#/components/schemas/Error"}
        assert not list(
            Draft202012Validator(schema, registry=REGISTRY).iter_errors(response.json_body)
        )
        for required in described["headers"]:
            assert header(response, required) is not None, f"{method} {path}: {required}"


def test_introspection_and_the_identity_lookup_match_the_description(client, services) -> None:
    """POST /oauth/introspect (active, inactive, 400, 401, 403) and GET
    /users/{user_id}/identities (200, 403, 404), as issue 23 added them."""
    _, secret = services.clients.create(["introspect"], now=START, client_id="gateway")
    at = login(client, "dave.1")
    gateway = {**FORM, **basic("gateway", secret)}
    for body in (f"token={quote(at['access_token'])}", "token=garbage", "", "token=x"):
        headers = gateway if body != "token=x" else FORM
        response = client.http.post("/oauth/introspect", headers=headers, body=body)
        conforms("POST", "/oauth/introspect", response)
    assert response.status_code == 401
    _, other = services.clients.create(["orders:read"], now=START, client_id="orders")
    refused = client.http.post(
        "/oauth/introspect", headers={**FORM, **basic("orders", other)}, body="token=x"
    )
    assert refused.status_code == 403
    conforms("POST", "/oauth/introspect", refused)

    path = "/users/{user_id}/identities"
    backend = client_token(client, services, ["users:openid"], client_id="notify")
    for user_id, status in ((at["user"]["id"], 200), ("A" * 22, 404)):
        found = client.http.get(f"/users/{user_id}/identities", headers=bearer(backend))
        assert found.status_code == status
        conforms("GET", path, found)
    own_path = f"/users/{at['user']['id']}/identities"
    own = client.http.get(own_path, headers=bearer(at["access_token"]))
    assert own.status_code == 403
    conforms("GET", path, own)
