"""Account deletion and the data export (issue 25, items 1 and 2) over real HTTP against the
local server (`python -m devserver`, its fake WeChat) on DynamoDB Local: asked for with a fresh
code, a restricted login meanwhile, the export compared with a scan, a cancel, asked again, then
`wxauth-admin user delete --now` (a process of its own) erases everything, and the next login of
the same WeChat user is a new user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import requests

from chalicelib.store import create_table
from devserver.fake_wechat import openid_for, unionid_for
from tests.integration.dynamodb_local import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    dynamodb_client,
)
from tests.integration.local_server import REPO_ROOT, LocalServer, local_server

pytestmark = pytest.mark.integration

APPID = "wx-local-appid"  # the devserver's default app


@pytest.fixture(scope="module")
def env(dynamodb_local_endpoint: str) -> Iterator[dict[str, str]]:
    table = f"wxauth-deletion-{uuid.uuid4().hex[:12]}"
    client = dynamodb_client(dynamodb_local_endpoint)
    create_table(client, table)
    try:
        yield {
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local_endpoint,
            # DynamoDB Local keeps a database per access key and region: dynamodb_client's
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AUTH_TABLE_NAME": table,
        }
    finally:
        client.delete_table(TableName=table)


@pytest.fixture(scope="module")
def server(env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with local_server(tmp_path_factory.mktemp("deletion"), env=env) as running:
        yield running


def scan(env: dict[str, str]) -> list[dict]:
    client = dynamodb_client(env["AWS_ENDPOINT_URL_DYNAMODB"])
    items: list[dict] = []
    for page in client.get_paginator("scan").paginate(
        TableName=env["AUTH_TABLE_NAME"], ConsistentRead=True
    ):
        items += page["Items"]
    return items


def naming(items: list[dict], *needles: str) -> list[dict]:
    return [i for i in items if any(n in json.dumps(i, default=str) for n in needles)]


def call(server: LocalServer, method: str, path: str, token: str | None = None, body=None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{server.url}{path}", json=body, headers=headers, timeout=30)


def login(server: LocalServer, code: str) -> dict:
    answer = call(server, "POST", "/auth/login", body={"code": code})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_deletion_and_export_end_to_end(server: LocalServer, env: dict[str, str]) -> None:
    user = f"union-del{uuid.uuid4().hex[:6]}"
    first = login(server, f"{user}.1")
    user_id = first["user"]["id"]
    assert first["user"]["is_new"] is True

    refused = call(server, "POST", "/me/deletion", first["access_token"], {"code": "mallory.1"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    asked = call(server, "POST", "/me/deletion", first["access_token"], {"code": f"{user}.2"})
    assert asked.status_code == 202, asked.text
    assert call(server, "GET", "/me", first["access_token"]).status_code == 401  # ended

    pending = login(server, f"{user}.3")
    assert pending["user"]["deletion"] == asked.json()["deletion"]
    denied = call(server, "GET", "/auth/sessions", pending["access_token"])
    assert denied.status_code == 403 and denied.json()["reason"] == "deletion_pending"
    exported = call(server, "GET", "/me/export", pending["access_token"])
    assert exported.status_code == 200, exported.text
    body = exported.json()
    held = naming(scan(env), user_id)
    sessions = {
        i["sk"]["S"].removeprefix("SESSION#") for i in held if i["sk"]["S"].startswith("SESSION#")
    }
    assert {s["id"] for s in body["sessions"]} == sessions and len(sessions) == 2
    assert [i["openid"] for i in body["identities"]] == [openid_for(APPID, user)]
    assert body["deletion"]["requested_by"] == "user"
    for token in (first["refresh_token"], pending["refresh_token"], pending["access_token"]):
        assert token not in exported.text

    assert call(server, "DELETE", "/me/deletion", pending["access_token"]).status_code == 204
    refreshed = call(
        server, "POST", "/auth/refresh", body={"refresh_token": pending["refresh_token"]}
    )
    assert refreshed.status_code == 200
    ordinary = refreshed.json()["access_token"]
    assert call(server, "GET", "/auth/sessions", ordinary).status_code == 200  # restored

    again = call(server, "POST", "/me/deletion", ordinary, {"code": f"{user}.4"})
    assert again.status_code == 202
    done = subprocess.run(  # noqa: S603 - the project's own command line
        [sys.executable, "-m", "chalicelib.admin", "user", "delete", user_id, "--now"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["erased"] is True

    needles = (user_id, openid_for(APPID, user), unionid_for(user))
    assert naming(scan(env), *needles) == []
    assert [i for i in scan(env) if i["pk"]["S"].startswith("TOMBSTONE#")]
    new = login(server, f"{user}.5")
    assert new["user"]["is_new"] is True and new["user"]["id"] != user_id
