"""`python -m devserver.chalice_local local ...`: Chalice's own CLI, with a local server that
behaves like the deployed one where `chalice local` does not.

- **TCP_NODELAY.** `chalice local` answers with two writes (the headers, then the body) on
  keep-alive connections. With Nagle's algorithm on, the body waits for the client to
  acknowledge the headers, and a client delays that acknowledgement by up to 40 ms: every answer
  took 44 ms, even a JWKS lookup (bench/RESULTS.md).
- **A backlog of 128** instead of socketserver's 5: a burst of new connections lost some to
  `ConnectionResetError`. Chalice's server already serves each connection on its own daemon
  thread (ThreadingMixIn); `app.services()` builds the shared graph under a lock.
- **Routes are matched as an HTTP API matches them**: a method and an exact path (a trailing
  slash is another path; Chalice's matcher dropped it, as a REST API does; http.server
  collapsed leading slashes, so `//auth/login` was the login). Anything else
  reaches the app as an HTTP API's `$default` route sends it to the Lambda (`resourcePath`
  `$default`), and `WxAuth` (chalicelib/api/edge.py) answers it 404 `not_found` or 405
  `method_not_allowed` in the contract's shape, never running a view.
  Chalice's LocalGateway answered 403 `{"message": "Missing Authentication Token"}` and, with an
  Authorization header, quoted that header in the body. OPTIONS reaches the app too (no CORS is
  configured: 405 with `Allow`), and so does any other method (http.server answered 501 in HTML).
- **HEAD answers carry no body** (RFC 9110 §9.3.2): Chalice wrote it, and a keep-alive client
  read it as the start of the next answer.

The rest is `chalice` exactly. The changes are installed by `install()`, under `__main__` only.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from chalice import local
from chalice.app import Chalice
from chalice.cli import main
from chalice.config import Config

UNROUTED = "$default"  # the resourcePath of an HTTP API's catch-all route
BACKLOG = 128


class _RouteMatcher(local.RouteMatcher):
    """A path matched as an HTTP API matches it, else UNROUTED.

    Chalice's matcher drops a trailing slash first (a REST API's habit); an HTTP API does not:
    `/auth/login/` is no route there, so it goes to `$default`, and so it does here. A `{name}`
    segment takes one non-empty segment, concrete routes first (Chalice's order)."""

    def match_route(self, url: str) -> local.MatchResult:
        path, _, raw_query = url.partition("?")  # not urlparse: `//auth/login` has no netloc
        query = parse_qs(raw_query, keep_blank_values=True)
        parts = path.split("/")
        for route in self.route_urls:
            template = route.split("/")
            if len(template) != len(parts):
                continue
            captured = {}
            for part, expected in zip(parts, template, strict=True):
                if expected.startswith("{") and expected.endswith("}") and part:
                    captured[expected[1:-1]] = part
                elif part != expected:
                    break
            else:
                return local.MatchResult(route, captured, query)
        return local.MatchResult(UNROUTED, {}, query)


class LocalGateway(local.LocalGateway):
    """Chalice's LocalGateway, handing every request to the app (see the module docstring)."""

    def __init__(self, app_object: Chalice, config: Config) -> None:
        super().__init__(app_object, config)
        self.event_converter = local.LambdaEventConverter(
            _RouteMatcher(list(app_object.routes)), app_object.api.binary_types
        )

    def handle_request(
        self, method: str, path: str, headers: dict[str, Any], body: bytes | None
    ) -> dict[str, Any]:
        context = self._generate_lambda_context()
        event = self._generate_lambda_event(method, path, headers, body)
        request_context = event["requestContext"]
        if method not in self._app_object.routes.get(request_context["resourcePath"], {}):
            # An HTTP API's route is a method and a path: another method is `$default`'s.
            request_context["resourcePath"] = UNROUTED
            event["pathParameters"] = {}
        else:
            event, context = self._authorizer.authorize(path, event, context)
        return self._app_object(event, context)


class RequestHandler(local.ChaliceRequestHandler):
    """Chalice's handler with TCP_NODELAY, this module's gateway, every method, bodiless HEAD."""

    disable_nagle_algorithm = True

    def __init__(
        self, request: Any, client_address: Any, server: Any, app_object: Chalice, config: Config
    ) -> None:
        self.local_gateway = LocalGateway(app_object, config)
        # BaseHTTPRequestHandler's constructor serves the whole connection
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        words = self.requestline.split()
        if parsed and len(words) >= 2 and words[1].startswith("//"):
            self.path = words[1]  # http.server collapses leading slashes; API Gateway does not
        return bool(parsed)

    def __getattr__(self, name: str) -> Any:
        # http.server looks up do_<METHOD>; every method goes to the app, which answers 405
        if name.startswith("do_"):
            return self._generic_handle
        raise AttributeError(name)

    def _send_http_response_with_body(
        self, code: int, headers: dict[str, Any], body: str | bytes
    ) -> None:
        if self.command == "HEAD":
            body = body.encode("utf-8") if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            self._send_headers(headers)
            return
        super()._send_http_response_with_body(code, headers, body)


class HTTPServer(local.ThreadedHTTPServer):
    """Chalice's threaded server (a daemon thread per connection) with a longer backlog."""

    request_queue_size = BACKLOG
    daemon_threads = True


def create_local_server(
    app_obj: Chalice, config: Config, host: str, port: int
) -> local.LocalDevServer:
    """`chalice.local.create_local_server`, with this module's gateway, handler and server."""
    local.CustomLocalChalice.__bases__ = (local.LocalChalice, app_obj.__class__)
    app_obj.__class__ = local.CustomLocalChalice
    return local.LocalDevServer(
        app_obj, config, host, port, handler_cls=RequestHandler, server_cls=HTTPServer
    )


def install() -> None:
    """Make `chalice local` in this process serve with the classes above, and the demo page of
    the device login (`GET /demo/scan-login`, devserver/demo.py: only here, never in AWS)."""

    def with_demo(app_obj: Chalice, config: Config, host: str, port: int) -> local.LocalDevServer:
        from devserver import demo

        app_obj.register_blueprint(demo.routes)
        return create_local_server(app_obj, config, host, port)

    local.create_local_server = with_demo  # the CLI's factory looks it up per call


if __name__ == "__main__":
    install()
    sys.exit(main())
