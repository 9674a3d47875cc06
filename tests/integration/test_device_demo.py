"""The scan-to-login demo page (`GET /demo/scan-login`, devserver/demo.py) in headless Chromium
against `python -m devserver` (issue 24, item 3): the page starts a device login, shows the
mini-program code (the fake WeChat's PNG) and polls; the test plays the mini-program over HTTP
(a user logs in, looks the login up and confirms it, or denies it) and the page ends signed in
as that user, or refused. Real time: the page polls every 5 s, so each case takes 5 to 10 s."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.chromium import Chromium
from tests.integration.local_server import LocalServer, local_server

pytestmark = pytest.mark.integration

STATE = "document.getElementById('status').dataset.state"
USER_CODE = "document.getElementById('user-code').textContent.includes('-')"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with local_server(Path(tmp_path_factory.mktemp("demo"))) as running:
        yield running


@pytest.fixture
def page(server: LocalServer) -> Iterator[Chromium]:
    browser = Chromium(f"{server.url}/demo/scan-login")
    try:
        yield browser
    finally:
        browser.close()


def login(server: LocalServer, code: str) -> str:
    response = requests.post(f"{server.url}/auth/login", json={"code": code}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def subject(access_token: str) -> str:
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


def decide(server: LocalServer, page: Chromium, access_token: str, decision: str) -> None:
    """The mini-program's side: the code the page shows, looked up, then confirmed or denied."""
    page.wait_for(USER_CODE)
    user_code = page.evaluate("document.getElementById('user-code').textContent")
    # The page shows the mini-program code: the fake WeChat's 232 x 232 PNG, loaded.
    page.wait_for("document.getElementById('code').dataset.loaded === 'true'")
    assert page.evaluate("document.getElementById('code').naturalWidth") == 232
    assert page.evaluate(STATE) == "waiting"
    headers = {"Authorization": f"Bearer {access_token}"}
    shown = requests.get(f"{server.url}/auth/device/{user_code}", headers=headers, timeout=10)
    assert shown.status_code == 200 and shown.json()["status"] == "pending", shown.text
    assert "HeadlessChrome" in shown.json()["user_agent"]
    answer = requests.post(
        f"{server.url}/auth/device/{decision}",
        json={"user_code": user_code},
        headers=headers,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def test_the_demo_page_logs_in_as_the_user_who_confirms_in_the_mini_program(server, page):
    access_token = login(server, "demo-alice.1")
    decide(server, page, access_token, "confirm")
    page.wait_for(f"{STATE} === 'signed_in'", timeout=20)
    assert page.evaluate("document.getElementById('subject').textContent") == subject(access_token)
    assert access_token not in page.evaluate("document.documentElement.outerHTML")


def test_the_demo_page_is_refused_when_the_user_denies(server, page):
    access_token = login(server, "demo-bob.1")
    decide(server, page, access_token, "deny")
    page.wait_for(f"{STATE} === 'access_denied'", timeout=20)
    assert page.evaluate("document.getElementById('subject').textContent") == ""
