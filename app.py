"""wxauth's HTTP edge: thin routes, and the one table from domain errors to HTTP answers."""

# ruff: noqa: E402 - the garbage collector is paused before the imports (see below)
from __future__ import annotations

import gc

# A cold start allocates a great deal (modules, botocore's models) and frees little, and the
# cyclic garbage collector's passes over that growing heap cost it about 15% (bench/RESULTS.md).
# It is paused while these imports run and while services() builds the graph; what they made
# then lives as long as the process, so it is frozen (gc.freeze: never looked at again) instead
# of being traversed by the first collection after the pause.
_gc_was_enabled = gc.isenabled()
gc.disable()

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalice import Chalice, Response
from chalice.app import Request

from chalicelib import logs, runtime
from chalicelib.errors import (
    AppDisabled,
    ClientAuthError,
    ConfigurationError,
    GrantError,
    InsufficientScope,
    InvalidScope,
    PhoneInUse,
    RateLimited,
    RequestError,
    SessionNotFound,
    StoreUnavailable,
    TokenError,
    UnsupportedGrantType,
    UserBanned,
    WeChatRateLimited,
    WeChatTokenInvalid,
    WeChatUnavailable,
    WeChatUserBlocked,
    WxAuthError,
)
from chalicelib.http_input import (
    access_token_from_header,
    basic_credentials,
    bool_field,
    form_body,
    json_body,
    string_field,
)
from chalicelib.settings import Settings
from chalicelib.signing_keys import JWKS_MAX_AGE
from chalicelib.tokens.access import MAX_TOKEN_LENGTH as MAX_ACCESS_TOKEN_LENGTH
from chalicelib.tokens.access import AccessClaims, seconds_left
from chalicelib.tokens.claims import NAMESPACE as CUSTOM_CLAIMS_NAMESPACE
from chalicelib.tokens.claims import TokenHookUnavailable
from chalicelib.tokens.refresh import MAX_TOKEN_LENGTH as MAX_REFRESH_TOKEN_LENGTH

if TYPE_CHECKING:
    from chalicelib.devices import DeviceInfo

gc.freeze()  # what the imports made lives as long as the process: no collection looks at it
if _gc_was_enabled:
    gc.enable()

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# The answers for requests that reach no view: a path that is no route, a method a route lacks.
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"


class WxAuth(Chalice):
    """Chalice, except that what reaches no view is answered in the contract's shape too.

    Chalice's own dispatch answers a method a route lacks with 405 `{"Code":
    "MethodNotAllowedError"}`, and a `resourcePath` that is no route (an HTTP API's `$default`
    route sends every unmatched request) with 405 and an empty `Allow`, adding that path to its
    route table as it looks it up (`routes` is a defaultdict). Here: 404 `not_found` for a path
    that is no route, 405 `method_not_allowed` with `Allow` for another method of a route (HEAD
    and OPTIONS included: no CORS, no implicit HEAD), each with `Cache-Control: no-store` and
    the request log line, never echoing the request.
    """

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        request_context = event.get("requestContext") if isinstance(event, dict) else None
        if not isinstance(request_context, dict) or "resourcePath" not in request_context:
            return super().__call__(event, context)  # not an API Gateway request
        started = time.perf_counter()
        method = request_context.get("httpMethod") or event.get("httpMethod") or ""
        resource = request_context["resourcePath"]
        methods = self._methods_of(resource)
        if methods is None:  # e.g. `$default`: the path says which route, if any, was meant
            resource, methods = self._route_of_path(event, request_context)
        if methods is None:
            return self._unrouted(started, request_context, method, None, 404, NOT_FOUND)
        if method not in methods:
            return self._unrouted(
                started, request_context, method, resource, 405, METHOD_NOT_ALLOWED
            )
        if resource != request_context["resourcePath"]:
            event = {**event, "requestContext": {**request_context, "resourcePath": resource}}
        return super().__call__(event, context)

    def _methods_of(self, resource: object) -> list[str] | None:
        entries = self.routes.get(resource) if isinstance(resource, str) else None
        return sorted(entries) if entries else None  # `.get`: no entry is added for a stranger

    def _route_of_path(
        self, event: dict[str, Any], request_context: dict[str, Any]
    ) -> tuple[str | None, list[str] | None]:
        candidates = [event.get("path"), request_context.get("path")]
        stage = request_context.get("stage")
        for path in list(candidates):
            if isinstance(path, str) and isinstance(stage, str) and path.startswith(f"/{stage}/"):
                candidates.append(path[len(stage) + 1 :])
        for path in candidates:
            if not isinstance(path, str):
                continue
            path = path.split("?", 1)[0]
            if path != "/" and path.endswith("/"):
                path = path[:-1]
            methods = self._methods_of(path)
            if methods is not None:
                return path, methods
        return None, None

    def _unrouted(
        self,
        started: float,
        request_context: dict[str, Any],
        method: object,
        resource: str | None,
        status: int,
        code: str,
    ) -> dict[str, Any]:
        headers = dict(NO_STORE)
        if resource is None:
            description = "no route has this path; see docs/miniprogram.md, Routes"
        else:
            methods = self._methods_of(resource) or []
            headers["Allow"] = ", ".join(methods)
            description = "this route does not answer this method; see Allow"
        response = Response(
            body={"error": code, "error_description": description},
            status_code=status,
            headers=headers,
        )
        logs.log_request(
            method=str(method)[:16],
            route=resource,
            status=status,
            error=code,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            request_id=request_context.get("requestId") or uuid.uuid4().hex,
            user_id=None,
        )
        return response.to_dict(self.api.binary_types)


app = WxAuth(app_name="wxauth")
logs.configure()

_services: runtime.Services | None = None
_services_lock = threading.Lock()


def services() -> runtime.Services:
    """The service graph, built once per Lambda container (after the environment is set), and
    once only when `chalice local` serves the first requests on several threads at once."""
    global _services
    if _services is not None:
        return _services
    with _services_lock:
        if _services is None:
            was_enabled = gc.isenabled()
            gc.disable()  # as during the imports: this makes botocore's clients
            try:
                _services = runtime.build(Settings.from_env())
            finally:
                gc.freeze()
                if was_enabled:
                    gc.enable()
    return _services


# Domain error -> (HTTP status, RFC 6749 error code). First match wins.
ERROR_TABLE: list[tuple[type[WxAuthError], int, str]] = [
    (RequestError, 400, "invalid_request"),
    (GrantError, 400, "invalid_grant"),
    (TokenError, 401, "invalid_token"),
    (ClientAuthError, 401, "invalid_client"),
    (UnsupportedGrantType, 400, "unsupported_grant_type"),
    (InvalidScope, 400, "invalid_scope"),
    (InsufficientScope, 403, "insufficient_scope"),
    (AppDisabled, 400, "unauthorized_client"),  # RFC 6749 §5.2: this app may not log in
    (WeChatUserBlocked, 403, "access_denied"),
    (UserBanned, 403, "access_denied"),
    (SessionNotFound, 404, NOT_FOUND),
    (PhoneInUse, 409, "phone_in_use"),
    (WeChatRateLimited, 429, "slow_down"),
    (RateLimited, 429, "slow_down"),  # AUTH_LIMIT_* (chalicelib/limits.py)
    (WeChatUnavailable, 503, "temporarily_unavailable"),
    (WeChatTokenInvalid, 503, "temporarily_unavailable"),  # refused again after one refresh
    (StoreUnavailable, 503, "temporarily_unavailable"),
    (TokenHookUnavailable, 503, "temporarily_unavailable"),  # AUTH_TOKEN_HOOK_ON_ERROR=refuse
    (ConfigurationError, 500, "server_error"),
]


@dataclass
class Call:
    """What a view needs of one request; `user_id` is filled in for the request log."""

    request: Request
    services: runtime.Services
    now: int
    user_id: str | None = None

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def json(self, *, required: bool = True) -> dict[str, Any]:
        return json_body(self.request.raw_body, self.header("content-type"), required=required)

    def form(self) -> dict[str, str]:
        return form_body(self.request.raw_body, self.header("content-type"))


def error_response(error: WxAuthError) -> tuple[Response, str]:
    status, code = next(
        ((status, code) for kind, status, code in ERROR_TABLE if isinstance(error, kind)),
        (500, "server_error"),
    )
    description = str(error) if status < 500 else "the service is misconfigured; see its logs"
    headers = dict(NO_STORE)
    if code in ("invalid_token", "insufficient_scope"):
        headers["WWW-Authenticate"] = f'Bearer realm="wxauth", error="{code}"'
    elif code == "invalid_client":
        # RFC 7235 §3.1: every 401 carries a challenge; RFC 6749 §5.2: Basic's, when used.
        headers["WWW-Authenticate"] = 'Basic realm="wxauth"'
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = {"error": code, "error_description": description}
    return Response(body=body, status_code=status, headers=headers), code


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"


def handle(view: Callable[[Call], Response | dict[str, Any]], route: str) -> Response:
    """Run a view: map domain errors, hide everything else, write one request log line."""
    started = time.perf_counter()
    request = app.current_request
    request_id = (request.context or {}).get("requestId") or uuid.uuid4().hex
    call: Call | None = None
    error: str | None = None
    try:
        svc = services()
        call = Call(request=request, services=svc, now=svc.now())
        result = view(call)
        response = result if isinstance(result, Response) else Response(body=result)
    except WxAuthError as e:
        response, error = error_response(e)
        if isinstance(e, ConfigurationError):
            logs.log_event(
                "configuration_error", level=logging.ERROR, detail=str(e), request_id=request_id
            )
    except Exception as e:
        # Only the type and place: messages of foreign exceptions may quote secrets.
        logs.log_event(
            "unhandled_exception",
            level=logging.ERROR,
            error_type=type(e).__name__,
            where=_where(e),
            request_id=request_id,
        )
        error = "server_error"
        response = Response(
            body={"error": error, "error_description": "internal error"},
            status_code=500,
            headers=dict(NO_STORE),
        )
    if call is not None:
        call.services.events.flush()  # what the view wrote, announced; never raises or waits long
    for name, value in NO_STORE.items():
        response.headers.setdefault(name, value)
    logs.log_request(
        method=request.method,
        route=route,
        status=response.status_code,
        error=error,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        request_id=request_id,
        user_id=call.user_id if call else None,
    )
    return response


def endpoint(
    path: str, methods: list[str]
) -> Callable[[Callable[[Call], Any]], Callable[[Call], Any]]:
    """Register a view taking a `Call`; every content type reaches it (the view checks)."""

    def register(view: Callable[[Call], Any]) -> Callable[[Call], Any]:
        def route_handler(**_uri_params: str) -> Response:  # the view reads request.uri_params
            return handle(view, path)

        route_handler.__name__ = view.__name__
        app.route(path, methods=methods, content_types=["*/*"])(route_handler)
        return view

    return register


def authenticate(call: Call, *, users_only: bool = False) -> AccessClaims:
    """The one check behind every protected route: a valid access token of a live session.

    `users_only`: a route that acts on the user's own account (`/me`, logout) refuses a
    client-credentials token, which names no user (its `sub` is `client:<client_id>`).
    """
    token = access_token_from_header(call.header("authorization"))
    if token is None:
        raise TokenError("an access token is required in Authorization")
    claims = call.services.access_tokens.check(token, call.now)
    call.services.sessions.require_live(claims, call.now)
    call.user_id = claims.subject
    if users_only and claims.user_id is None:
        raise InsufficientScope("this route needs a user's access token, not a client's")
    return claims


def protected(
    path: str,
    methods: list[str] | None = None,
    *,
    scope: str | None = None,
    users_only: bool = False,
) -> Callable[[Callable[[Call, AccessClaims], Any]], Callable[[Call, AccessClaims], Any]]:
    """Register a view that runs only for a valid access token of a live session, checked as
    `/auth/verify` checks it (signature, typ, iss, aud, exp, session neither revoked nor ended),
    and holding `scope` if one is given; with `users_only`, only a user's token (from a login),
    never a client's. The view gets the Call and the verified claims (`claims.user_id` is None
    for a client's token):

        @protected("/example/hello")
        def hello(call: Call, claims: AccessClaims) -> dict: ...
    """

    def register(
        view: Callable[[Call, AccessClaims], Any],
    ) -> Callable[[Call, AccessClaims], Any]:
        def checked(call: Call) -> Any:
            claims = authenticate(call, users_only=users_only)
            if scope is not None and scope not in (claims.scope or "").split(" "):
                raise InsufficientScope(f"this route requires the scope {scope}")
            return view(call, claims)

        checked.__name__ = view.__name__
        endpoint(path, methods or ["GET"])(checked)
        return view

    return register


def token_response(body: dict[str, Any]) -> Response:
    return Response(body=body, status_code=200, headers=dict(NO_STORE))


# -- routes ------------------------------------------------------------------------------------


@endpoint("/auth/login", ["POST"])
def login(call: Call) -> Response:
    from chalicelib.identity.apps import MAX_APPID_LENGTH
    from chalicelib.limits import source_ip
    from chalicelib.login import MAX_CODE_LENGTH  # at the first login: see runtime.Services

    call.services.before_login(source_ip(call.request.context), call.now)
    body = call.json()
    code = string_field(body, "code", max_length=MAX_CODE_LENGTH)
    appid = None  # omitted (or null): the deployment's one enabled app
    if body.get("appid") is not None:
        appid = string_field(body, "appid", max_length=MAX_APPID_LENGTH)
    device = login_device(call, body)
    result = call.services.login.login(code, call.now, appid, device=device)
    call.user_id = result.tokens.user_id
    return token_response(result.response(call.now))


@endpoint("/auth/refresh", ["POST"])
def refresh(call: Call) -> Response:
    token = string_field(call.json(), "refresh_token", max_length=MAX_REFRESH_TOKEN_LENGTH)
    issued = call.services.sessions.refresh(token, call.now)
    call.user_id = issued.user_id
    return token_response(issued.response(call.now))


@endpoint("/auth/verify", ["POST"])
def verify(call: Call) -> dict[str, Any]:
    body = call.json(required=False)
    if "token" in body:
        token = string_field(body, "token", max_length=MAX_ACCESS_TOKEN_LENGTH)
    else:
        token = access_token_from_header(call.header("authorization"))
    if token is None:
        raise RequestError('send the access token as {"token": ...} or in Authorization')
    svc = call.services
    try:
        claims = svc.access_tokens.check(token, call.now)
        svc.sessions.require_live(claims, call.now)
    except TokenError as e:
        return {"valid": False, "reason": e.reason}
    call.user_id = claims.subject
    return {
        "valid": True,
        "sub": claims.subject,
        "sid": claims.session_id,
        "exp": claims.expires_at,
        "expires_in": seconds_left(claims.expires_at, call.now),
    }


@endpoint("/auth/logout", ["POST"])
def logout(call: Call) -> Response:
    claims = authenticate(call, users_only=True)
    assert claims.user_id is not None and claims.session_id is not None
    body = call.json(required=False)
    everywhere = bool_field(body, "all", default=False)
    others = bool_field(body, "others", default=False)
    if everywhere and others:
        raise RequestError('send {"all": true} or {"others": true}, not both')
    sessions = call.services.sessions
    if others:
        sessions.revoke_others(claims.user_id, claims.session_id, now=call.now)
    elif everywhere:
        sessions.revoke_all(claims.user_id, now=call.now)
    else:
        sessions.revoke(claims.user_id, claims.session_id, now=call.now)
    return Response(body="", status_code=204, headers=dict(NO_STORE))


def login_device(call: Call, body: dict[str, Any]) -> DeviceInfo:
    """The login's optional `device`, its User-Agent and API Gateway's source IP."""
    from chalicelib.devices import device_info
    from chalicelib.limits import source_ip

    return device_info(
        body, user_agent=call.header("user-agent"), source_ip=source_ip(call.request.context)
    )


@protected("/auth/sessions", ["GET"], users_only=True)
def list_sessions(call: Call, claims: AccessClaims) -> Response:
    """The caller's live sessions, this one marked `current`: a GetItem and one Query."""
    from chalicelib.devices import session_json

    assert claims.user_id is not None
    sessions = call.services.sessions.live_sessions(claims.user_id, call.now)
    body = {"sessions": [session_json(s, current_session_id=claims.session_id) for s in sessions]}
    return Response(body=body, status_code=200, headers=dict(NO_STORE))


@protected("/auth/sessions/{sid}", ["DELETE"], users_only=True)
def end_session(call: Call, claims: AccessClaims) -> Response:
    """End one of the caller's own live sessions (this one too): a GetItem and an UpdateItem."""
    assert claims.user_id is not None
    session_id = (call.request.uri_params or {}).get("sid", "")
    call.services.sessions.end(claims.user_id, session_id, now=call.now)
    return Response(body="", status_code=204, headers=dict(NO_STORE))


@protected("/me", users_only=True)
def me(call: Call, claims: AccessClaims) -> dict[str, Any]:
    assert claims.user_id is not None
    user = call.services.store.users.get(claims.user_id)
    if user is None:
        raise TokenError("the user of this access token no longer exists")
    from chalicelib.phone import phone_json

    return {
        "id": user.user_id,
        "appid": user.appid,
        "openid": user.openid,
        "unionid": user.unionid,
        "created_at": user.created_at,
        "phone": phone_json(user.phone),
        "identities": [i.public() for i in call.services.graph.identities_of(user)],
    }


@protected("/auth/phone", ["POST"], users_only=True)
def bind_phone(call: Call, claims: AccessClaims) -> Response:
    from chalicelib.login import MAX_CODE_LENGTH
    from chalicelib.phone import phone_json

    assert claims.user_id is not None
    code = string_field(call.json(), "code", max_length=MAX_CODE_LENGTH)
    user = call.services.store.users.get(claims.user_id)
    if user is None:
        raise TokenError("the user of this access token no longer exists")
    phone = call.services.phone.bind(user, code, call.now)
    return Response(body={"phone": phone_json(phone)}, status_code=200, headers=dict(NO_STORE))


@protected("/example/hello")
def example_hello(call: Call, claims: AccessClaims) -> dict[str, Any]:
    """An example of a protected route: one decorator, and the view has the verified claims."""
    return {
        "hello": claims.subject,
        "client_id": claims.client_id,
        "session_id": claims.session_id,
        "scope": claims.scope,
    }


WECHAT_ACCESS_TOKEN_SCOPE = "wechat:access_token"  # noqa: S105 - a scope name


@protected("/wechat/access-token", ["POST"], scope=WECHAT_ACCESS_TOKEN_SCOPE)
def wechat_access_token(call: Call, claims: AccessClaims) -> Response:
    """The app's WeChat server access_token, for other backends (client credentials holding
    `wechat:access_token`), so that none of them calls cgi-bin/token and invalidates ours."""
    brokered = call.services.broker.current()
    return token_response(
        {"access_token": brokered.access_token, "expires_in": brokered.expires_in(call.now)}
    )


@endpoint("/oauth/token", ["POST"])
def oauth_token(call: Call) -> Response:
    form = call.form()
    basic = basic_credentials(call.header("authorization"))
    grant = call.services.oauth.token(form, basic, call.now)
    call.user_id = grant.user_id
    return token_response(grant.body)


@endpoint("/oauth/revoke", ["POST"])
def oauth_revoke(call: Call) -> Response:
    call.user_id = call.services.oauth.revoke(call.form(), call.now)
    return Response(body="", status_code=200, headers={"Content-Type": "text/plain", **NO_STORE})


@endpoint("/.well-known/jwks.json", ["GET"])
def jwks(call: Call) -> Response:
    return Response(
        body=call.services.keys.get().jwks(),
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
    )


@endpoint("/.well-known/openid-configuration", ["GET"])
def openid_configuration(call: Call) -> Response:
    issuer = call.services.settings.issuer.rstrip("/")
    body = {
        "issuer": call.services.settings.issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "grant_types_supported": ["refresh_token", "client_credentials"],
        # none: the mini-program (a public client) refreshes; secrets: client credentials
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": ["none"],
        # No authorization endpoint: logins come from WeChat codes at /auth/login.
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id", "scope"]
        + (["phone_number"] if call.services.settings.phone_claim else [])
        + [CUSTOM_CLAIMS_NAMESPACE],  # custom claims (chalicelib/tokens/claims.py)
    }
    return Response(body=body, headers={"Cache-Control": "public, max-age=300"})


@endpoint("/openapi.json", ["GET"])
def openapi_description(call: Call) -> Response:
    """The OpenAPI 3.1 description (chalicelib/openapi.json), its server the issuer."""
    from chalicelib.openapi import document

    return Response(
        body=document(call.services.settings.issuer),
        headers={"Cache-Control": "public, max-age=300"},
    )
