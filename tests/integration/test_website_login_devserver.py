"""Website login through `make run`'s devserver (issue 24, item 2): WECHAT_OPEN_BASE is filled
with its fake WeChat, so a website app registered as docs/backend.md says signs in locally."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from tests.integration.local_server import local_server
from tests.integration.website_flow import Browser, Flow, Stack, back, scan

pytestmark = pytest.mark.integration

SPA_URI = "http://127.0.0.1:3000/callback"


def test_make_run_sends_the_browser_to_its_fake_wechat(tmp_path: Path) -> None:
    """`make run` (python -m devserver) fills WECHAT_OPEN_BASE with its fake WeChat, so a
    website app registered as docs/backend.md says signs in locally, end to end."""
    with local_server(tmp_path, env={"FAKE_WECHAT_APPS": "wx-web=secret"}) as server:
        deadline = time.monotonic() + 30
        while "ready (Ctrl-C" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = server.output()
        dynamodb = re.search(r"DynamoDB: (http://127\.0\.0\.1:\d+)", log)
        fake = re.search(r"WeChat: +(http://127\.0\.0\.1:\d+)", log)
        assert dynamodb and fake, log
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AUTH_", "WECHAT_"))
        }
        env.update(
            AWS_ENDPOINT_URL_DYNAMODB=dynamodb[1],
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AUTH_TABLE_NAME="wxauth",
            AUTH_SIGNING_KEYS_FILE=str(server.keys_file),
        )
        admin = Stack(server.url, env, server.log, dynamodb[1]).admin
        admin("app", "add", "--appid", "wx-web", "--kind", "website", "--secret", "secret")
        admin("client", "create", "--client-id", "local-spa", "--redirect-uri", SPA_URI, "--public")

        rp = OAuth2Session(
            client_id="local-spa",
            redirect_uri=SPA_URI,
            code_challenge_method="S256",
            token_endpoint_auth_method="none",
        )
        verifier = generate_token(48)
        url, _ = rp.create_authorization_url(
            f"{server.url}/oauth/authorize", code_verifier=verifier
        )
        browser = Browser()
        started = browser.get(url)
        assert started.status_code == 302, started.text
        assert started.headers["Location"].startswith(f"{fake[1]}/connect/qrconnect?")
        flow = back(scan(Flow(browser, verifier, "", started.headers["Location"]), "dev"))
        tokens = rp.fetch_token(
            f"{server.url}/oauth/token", authorization_response=flow.to_rp, code_verifier=verifier
        )
        assert tokens["user"]["is_new"] is True
