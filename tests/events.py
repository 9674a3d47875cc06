"""Lambda events as API Gateway sends them, for the tests and the benchmarks."""

from __future__ import annotations

import time
import uuid
from typing import Any


def http_api_v1_event(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    stage: str = "$default",
    api_id: str = "simapi0001",
    route_path: str | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What an HTTP API sends to a Lambda proxy integration with payloadFormatVersion 1.0 for
    a route `METHOD route_path` (the request's own path by default; `$default` for the
    default route, `/{proxy+}` for a catch-all): header names lowercased, as the HTTP API
    delivers them; `resource` and `requestContext.resourcePath` the route's path, which is
    what Chalice dispatches on."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    lowered.setdefault("host", f"{api_id}.execute-api.us-east-1.amazonaws.com")
    lowered.setdefault("user-agent", "wxauth-deploy-simulation")
    if body is not None:
        lowered["content-length"] = str(len(body.encode()))
    now = time.time()
    resource = route_path or path
    request_id = uuid.uuid4().hex[:16] + "="
    return {
        "version": "1.0",
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": lowered,
        "multiValueHeaders": {k: [v] for k, v in lowered.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": api_id,
            "authorizer": {"claims": None, "scopes": None},
            "domainName": lowered["host"],
            "domainPrefix": api_id,
            "extendedRequestId": request_id,
            "httpMethod": method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": "127.0.0.1",
                "user": None,
                "userAgent": lowered["user-agent"],
                "userArn": None,
            },
            "path": path if stage == "$default" else f"/{stage}{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": resource if resource == "$default" else f"{method} {resource}",
            "resourcePath": resource,
            "stage": stage,
        },
        "pathParameters": path_parameters,
        "stageVariables": None,
        "body": body,
        "isBase64Encoded": False,
    }
