"""The HTTP edge: the app class, one request's handling, the one table from errors to answers.

Only this package knows HTTP. A view takes a `Call` (the request, the service graph, `now` read
once) and returns a dict or a Response; a domain error it raises becomes the contract's error
body through ERROR_TABLE; anything else becomes a bare 500 whose log line names only the
exception's type and place. Every answer carries `Cache-Control: no-store` unless the view set
its own, and one request log line is written.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Chalice, Response
from chalice.app import Request

from chalicelib import logs
from chalicelib.errors import (
    AccessDenied,
    AppDisabled,
    ClientAuthError,
    ConditionFailed,
    ConfigurationError,
    DeviceCodeExpired,
    DeviceGrantPending,
    DeviceLoginDenied,
    DeviceLoginNotFound,
    DeviceSlowDown,
    GrantError,
    InsufficientScope,
    InvalidScope,
    MergedAway,
    PhoneInUse,
    RateLimited,
    RequestError,
    RiskyContent,
    SessionKeyExpired,
    SessionNotFound,
    StoreUnavailable,
    TokenError,
    TokenHookUnavailable,
    UnauthorizedClient,
    UnknownUser,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UserBanned,
    WeChatRateLimited,
    WeChatTokenInvalid,
    WeChatUnavailable,
    WeChatUserBlocked,
    WxAuthError,
)
from chalicelib.http_input import access_token_from_header, form_body, json_body

if TYPE_CHECKING:
    from chalicelib.runtime import Services
    from chalicelib.store.sessions import SessionRecord
    from chalicelib.tokens.access import AccessClaims

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# The answers for requests that reach no view: a path that is no route, a method a route lacks.
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"

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
    # RFC 8628 §3.5, a device's poll (chalicelib/device/): each its own code, all 400
    (DeviceGrantPending, 400, "authorization_pending"),
    (DeviceSlowDown, 400, "slow_down"),
    (DeviceLoginDenied, 400, "access_denied"),
    (DeviceCodeExpired, 400, "expired_token"),
    (DeviceLoginNotFound, 404, NOT_FOUND),  # no device login has this user code
    (UnauthorizedClient, 400, "unauthorized_client"),  # issue 24: a client of another grant
    (UnsupportedResponseType, 400, "unsupported_response_type"),  # GET /oauth/authorize
    (WeChatUserBlocked, 403, "access_denied"),
    (AccessDenied, 403, "access_denied"),  # a web sign-in the user refused (issue 24)
    (UserBanned, 403, "access_denied"),
    (MergedAway, 403, "access_denied"),  # an identity a merge left behind (docs/operators.md)
    (SessionNotFound, 404, NOT_FOUND),
    (UnknownUser, 404, NOT_FOUND),  # GET /users/{user_id}/identities
    (PhoneInUse, 409, "phone_in_use"),
    (RiskyContent, 400, "risky_content"),  # PATCH /me: msg_sec_check said risky (issue 25)
    (SessionKeyExpired, 400, "session_key_expired"),  # POST /auth/decrypt: log in again
    (WeChatRateLimited, 429, "slow_down"),
    (RateLimited, 429, "slow_down"),  # AUTH_LIMIT_* (chalicelib/limits.py)
    (WeChatUnavailable, 503, "temporarily_unavailable"),
    (WeChatTokenInvalid, 503, "temporarily_unavailable"),  # refused again after one refresh
    (StoreUnavailable, 503, "temporarily_unavailable"),
    (TokenHookUnavailable, 503, "temporarily_unavailable"),  # AUTH_TOKEN_HOOK_ON_ERROR=refuse
    (ConfigurationError, 500, "server_error"),
]


class WxAuth(Chalice):
    """Chalice, except that what reaches no view is answered in the contract's shape too, and
    the app knows its service graph (`services()`, built once per container by app.py).

    Chalice's own dispatch answers a method a route lacks with 405 `{"Code":
    "MethodNotAllowedError"}`, and a `resourcePath` that is no route (an HTTP API's `$default`
    route sends every unmatched request) with 405 and an empty `Allow`, adding that path to its
    route table as it looks it up (`routes` is a defaultdict). Here: 404 `not_found` for a path
    that is no route, 405 `method_not_allowed` with `Allow` for another method of a route (HEAD
    and OPTIONS included: no CORS, no implicit HEAD), each with `Cache-Control: no-store` and
    the request log line, never echoing the request.

    Only the gateway dispatches (issue 22, item 5). A `resourcePath` that is no route of the
    app (`$default`, a catch-all's `/{proxy+}`) never reaches a view, whatever its path says:
    API Gateway throttles by route, and `$default` has the loose default throttle, so
    `POST /auth/login/` or `/{stage}/auth/login` dispatched by path would run the login at 50
    requests a second instead of 5. Such a request is answered here: 405 with `Allow` if its
    path is exactly a route's (as API Gateway matches: no trailing slash, no stage prefix, a
    `{name}` segment not empty) and the method is another, else 404.
    """

    def __init__(self, app_name: str, *, services: Callable[[], Services]) -> None:
        super().__init__(app_name=app_name)
        self.services = services

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        request_context = event.get("requestContext") if isinstance(event, dict) else None
        if not isinstance(request_context, dict) or "resourcePath" not in request_context:
            return super().__call__(event, context)  # not an API Gateway request
        started = time.perf_counter()
        method = request_context.get("httpMethod") or event.get("httpMethod") or ""
        resource = request_context["resourcePath"]
        methods = self._methods_of(resource)
        if methods is None:  # `$default` or a catch-all: answered, never dispatched (above)
            resource = self._route_of_path(event.get("path") or request_context.get("path"))
            methods = self._methods_of(resource)
            if methods is None or method in methods:  # in methods: the gateway lacks the route
                return self._unrouted(started, request_context, method, None, 404, NOT_FOUND)
        if method not in methods:
            return self._unrouted(
                started, request_context, method, resource, 405, METHOD_NOT_ALLOWED
            )
        return super().__call__(event, context)

    def _methods_of(self, resource: object) -> list[str] | None:
        entries = self.routes.get(resource) if isinstance(resource, str) else None
        return sorted(entries) if entries else None  # `.get`: no entry is added for a stranger

    def _route_of_path(self, path: object) -> str | None:
        """The route whose path `path` is, matched as API Gateway matches a route: segment by
        segment, a `{name}` segment taking one non-empty segment; None if there is none."""
        if not isinstance(path, str):
            return None
        path = path.split("?", 1)[0]
        if self._methods_of(path) is not None:
            return path
        parts = path.split("/")
        for route in self.routes:
            template = route.split("/")
            if len(template) == len(parts) and all(
                part == expected or (expected.startswith("{") and expected.endswith("}") and part)
                for part, expected in zip(parts, template, strict=True)
            ):
                return route
        return None

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


@dataclass
class Call:
    """What a view needs of one request; `user_id` is filled in for the request log."""

    request: Request
    services: Services
    now: int
    user_id: str | None = None
    session: SessionRecord | None = None  # the access token's, as `authenticate` read it

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
    if isinstance(error, GrantError) and error.reason:  # e.g. session_evicted (issue 21)
        body["reason"] = error.reason
    return Response(body=body, status_code=status, headers=headers), code


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"


def _internal_error(error: BaseException, request_id: str) -> Response:
    """A bare 500; the log line has only the type and place: messages of foreign exceptions
    may quote secrets."""
    logs.log_event(
        "unhandled_exception",
        level=logging.ERROR,
        error_type=type(error).__name__,
        where=_where(error),
        request_id=request_id,
    )
    return Response(
        body={"error": "server_error", "error_description": "internal error"},
        status_code=500,
        headers=dict(NO_STORE),
    )


def handle(app: WxAuth, view: Callable[[Call], Response | dict[str, Any]], route: str) -> Response:
    """Run a view: map domain errors, hide everything else, write one request log line."""
    started = time.perf_counter()
    request = app.current_request
    request_id = (request.context or {}).get("requestId") or uuid.uuid4().hex
    call: Call | None = None
    error: str | None = None
    try:
        svc = app.services()
        call = Call(request=request, services=svc, now=svc.now())
        result = view(call)
        response = result if isinstance(result, Response) else Response(body=result)
    except ConditionFailed as e:  # a lost race no service handled: a bug, not an answer
        error, response = "server_error", _internal_error(e, request_id)
    except WxAuthError as e:
        response, error = error_response(e)
        if isinstance(e, ConfigurationError):
            logs.log_event(
                "configuration_error", level=logging.ERROR, detail=str(e), request_id=request_id
            )
    except Exception as e:
        error, response = "server_error", _internal_error(e, request_id)
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


def authenticate(call: Call, *, users_only: bool = False) -> AccessClaims:
    """The one check behind every protected route: a valid access token of a live session.

    `users_only`: a route that acts on the user's own account (`/me`, logout) refuses a
    client-credentials token, which names no user (its `sub` is `client:<client_id>`).
    """
    token = access_token_from_header(call.header("authorization"))
    if token is None:
        raise TokenError("an access token is required in Authorization")
    claims = call.services.access_tokens.check(token, call.now)
    call.session = call.services.sessions.require_live(claims, call.now)
    call.user_id = claims.subject
    if users_only and claims.user_id is None:
        raise InsufficientScope("this route needs a user's access token, not a client's")
    return claims


View = Callable[[Call], Any]
ProtectedView = Callable[[Call, "AccessClaims"], Any]


class Routes:
    """Views registered on a Blueprint (or on the app itself, for a route added to a running
    app): `endpoint` for a view taking a `Call`, `protected` for one that also gets verified
    access-token claims."""

    def __init__(self, target: Blueprint | WxAuth) -> None:
        self.target = target

    @property
    def app(self) -> WxAuth:
        target = self.target
        app = target if isinstance(target, WxAuth) else target.current_app
        assert isinstance(app, WxAuth)
        return app

    def endpoint(self, path: str, methods: list[str]) -> Callable[[View], View]:
        """Register a view taking a `Call`; every content type reaches it (the view checks)."""

        def register(view: View) -> View:
            def route_handler(**_uri_params: str) -> Response:  # the view reads uri_params
                return handle(self.app, view, path)

            route_handler.__name__ = view.__name__
            self.target.route(path, methods=methods, content_types=["*/*"])(route_handler)
            return view

        return register

    def protected(
        self,
        path: str,
        methods: list[str] | None = None,
        *,
        scope: str | None = None,
        users_only: bool = False,
    ) -> Callable[[ProtectedView], ProtectedView]:
        """Register a view that runs only for a valid access token of a live session, checked
        as `/auth/verify` checks it (signature, typ, iss, aud, exp, session neither revoked nor
        ended), and holding `scope` if one is given; with `users_only`, only a user's token
        (from a login), never a client's. The view gets the Call and the verified claims
        (`claims.user_id` is None for a client's token):

            @routes.protected("/example/hello")
            def hello(call: Call, claims: AccessClaims) -> dict: ...
        """

        def register(view: ProtectedView) -> ProtectedView:
            def checked(call: Call) -> Any:
                claims = authenticate(call, users_only=users_only)
                if scope is not None and scope not in (claims.scope or "").split(" "):
                    raise InsufficientScope(f"this route requires the scope {scope}")
                return view(call, claims)

            checked.__name__ = view.__name__
            self.endpoint(path, methods or ["GET"])(checked)
            return view

        return register


def token_response(body: dict[str, Any]) -> Response:
    """A token response (RFC 6749 §5.1): 200, never cached."""
    return Response(body=body, status_code=200, headers=dict(NO_STORE))


def no_content() -> Response:
    return Response(body="", status_code=204, headers=dict(NO_STORE))
