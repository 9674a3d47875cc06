"""Requests through chalice.test.Client, and the checks every answer of the contract meets."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def post(client, path, body=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(body) if body is not None else "")
    return client.http.post(path, headers={**JSON, **(headers or {})}, body=data)


def login(client, code="alice.1"):
    response = post(client, "/auth/login", {"code": code})
    assert response.status_code == 200, response.json_body
    return response.json_body


def bearer(token):
    return {"authorization": f"Bearer {token}"}


def assert_error(response, status, code):
    assert response.status_code == status, response.body
    body = response.json_body
    assert body["error"] == code
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert set(body) == {"error", "error_description"}
    assert "Traceback" not in response.body.decode()
    assert response.headers["Cache-Control"] == "no-store"


def form_post(client, path, params=None, headers=None, raw=None):
    body = raw if raw is not None else urlencode(params or {})
    return client.http.post(path, headers={**FORM, **(headers or {})}, body=body)


def token(client, params, headers=None):
    return form_post(client, "/oauth/token", params, headers)


def revoke(client, params, headers=None):
    return form_post(client, "/oauth/revoke", params, headers)


def basic(client_id, secret):
    return {"authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def verdict(client, access_token):
    return post(client, "/auth/verify", {"token": access_token}).json_body
