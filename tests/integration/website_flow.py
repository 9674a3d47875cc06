"""Helpers of tests/integration/test_website_login*.py: the stack's handle (the admin command
line, aging a sign-in in the table), a browser that keeps wxauth's Secure cookies over http, and
the fake WeChat's "scan" (issue 24, item 2)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from tests.integration.dynamodb_local import dynamodb_client

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLE = "wxauth-website-it"


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    log: Path
    endpoint: str
    rp_secret: str = ""
    table: str = TABLE
    process: subprocess.Popen[bytes] | None = None

    def discovery(self) -> dict:
        response = requests.get(f"{self.url}/.well-known/openid-configuration", timeout=10)
        response.raise_for_status()
        return response.json()

    def admin(self, *argv: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-m", "chalicelib.admin", *argv],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def age(self, authz_id: str, *attributes: str) -> None:
        """Move the sign-in's expiries into the past (an expired state or code)."""
        past = str(int(time.time()) - 1)
        dynamodb_client(self.endpoint).update_item(
            TableName=self.table,
            Key={"pk": {"S": f"AUTHZ#{authz_id}"}, "sk": {"S": "AUTHZ"}},
            UpdateExpression="SET " + ", ".join(f"#a{i} = :t" for i in range(len(attributes))),
            ExpressionAttributeNames={f"#a{i}": a for i, a in enumerate(attributes)},
            ExpressionAttributeValues={":t": {"N": past}},
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Browser:
    """Goes where each answer's Location says, one step at a time, keeping wxauth's cookies
    (by hand: they are Secure, and requests keeps Secure cookies for https only)."""

    cookies: dict[str, str] = field(default_factory=dict)

    def get(self, url: str, **headers: str) -> requests.Response:
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = requests.get(url, headers=headers, allow_redirects=False, timeout=30)
        if "Set-Cookie" in response.headers:
            jar = SimpleCookie()
            jar.load(response.headers["Set-Cookie"])
            for name, morsel in jar.items():
                assert morsel["httponly"] and morsel["secure"] and morsel["samesite"] == "Lax"
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Flow:
    browser: Browser
    verifier: str
    state: str
    to_wechat: str
    to_callback: str = ""
    to_rp: str = ""


def scan(flow: Flow, user: str) -> Flow:
    """The fake WeChat's qrconnect page, scanned by `user`."""
    assert flow.to_wechat.endswith("#wechat_redirect")
    scanned = requests.get(
        flow.to_wechat, headers={"X-Fake-WeChat-User": user}, allow_redirects=False, timeout=10
    )
    assert scanned.status_code == 302, scanned.text
    flow.to_callback = scanned.headers["Location"]
    return flow


def back(flow: Flow) -> Flow:
    response = flow.browser.get(flow.to_callback)
    assert response.status_code == 302, response.text
    flow.to_rp = response.headers["Location"]
    return flow
