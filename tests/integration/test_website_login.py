"""Website QR login and wxauth as an OAuth provider over real HTTP (issue 24, item 2).

A relying party (Authlib's OAuth2Session, unchanged) starts the flow at `/oauth/authorize`, the
browser (requests, following nothing by itself) goes to the fake WeChat's `qrconnect`, which
"scans" for the user named in `X-Fake-WeChat-User`, comes back to `/oauth/wechat/callback` and
is sent on to the relying party with a code, which Authlib exchanges with its PKCE verifier.
The website app and the OAuth clients are registered with `wxauth-admin`, as an operator does.

The stack: `chalice local` (a child process) on moto's DynamoDB server and the fake WeChat.
An expired state or code is made by moving its item's expiry into the past in the table (the
server's clock cannot be injected; nothing sleeps).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from moto.server import ThreadedMotoServer

from chalicelib.signing_keys import KeySet, replace_file
from chalicelib.store import create_table
from devserver.__main__ import chalice_local_command, free_port
from devserver.fake_wechat import FakeWeChat
from tests.integration.dynamodb_local import dynamodb_client
from tests.integration.website_flow import (
    REPO_ROOT,
    TABLE,
    Browser,
    Flow,
    Stack,
    back,
    query_of,
    scan,
    stop,
)

pytestmark = pytest.mark.integration

APPID, APP_SECRET = "wx-web-it-mini", "web-it-mini-secret"
WEB_APPID, WEB_SECRET = "wx-web-it-site", "web-it-site-secret"
RP_URI = "https://shop.example/signed-in"
SPA_URI = "http://127.0.0.1:3000/callback"
START_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("website-login")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    wechat = FakeWeChat(APPID, APP_SECRET, apps={WEB_APPID: WEB_SECRET})
    wechat.start()
    process = None
    try:
        host, moto_port = moto.get_host_and_port()
        endpoint = f"http://{host}:{moto_port}"
        port = free_port()
        keys_file = tmp / "signing-keys.json"
        replace_file(str(keys_file), KeySet.new(int(time.time())))
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AUTH_", "WECHAT_"))
        }
        env.update(
            {
                "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AUTH_TABLE_NAME": TABLE,
                "AUTH_ISSUER": f"http://127.0.0.1:{port}",
                "AUTH_SIGNING_KEYS_FILE": str(keys_file),
                "WECHAT_API_BASE": wechat.url,
                "WECHAT_OPEN_BASE": wechat.url,
                "WECHAT_APPID": APPID,
                "WECHAT_SECRET": APP_SECRET,
            }
        )
        create_table(dynamodb_client(endpoint), TABLE)
        stack = Stack(f"http://127.0.0.1:{port}", env, tmp / "chalice-local.log", endpoint)
        # the operator's steps: the website app, a confidential and a public relying party
        stack.admin("app", "add", "--appid", WEB_APPID, "--kind", "website", "--secret", WEB_SECRET)
        created = stack.admin(
            "client", "create", "--client-id", "shop-web", "--redirect-uri", RP_URI
        )
        stack.rp_secret = created["client_secret"]
        stack.admin(
            "client", "create", "--client-id", "shop-spa", "--redirect-uri", SPA_URI, "--public"
        )
        with stack.log.open("wb") as out:
            process = subprocess.Popen(
                chalice_local_command(port),
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        stack.process = process
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"chalice local exited with {process.returncode}:\n{stack.output()}")
            try:
                stack.discovery()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"chalice local did not serve in time:\n{stack.output()}")
                time.sleep(0.2)
        yield stack
    finally:
        if process is not None:
            stop(process)
        wechat.stop()
        moto.stop()


def relying_party(stack: Stack, public: bool = False) -> OAuth2Session:
    if public:
        return OAuth2Session(
            client_id="shop-spa",
            redirect_uri=SPA_URI,
            code_challenge_method="S256",
            token_endpoint_auth_method="none",
        )
    return OAuth2Session(
        client_id="shop-web",
        client_secret=stack.rp_secret,
        redirect_uri=RP_URI,
        code_challenge_method="S256",
    )


def start(stack: Stack, rp: OAuth2Session) -> Flow:
    endpoints = stack.discovery()
    verifier = generate_token(48)
    url, state = rp.create_authorization_url(
        endpoints["authorization_endpoint"], code_verifier=verifier
    )
    browser = Browser()
    response = browser.get(url)
    assert response.status_code == 302, response.text
    assert browser.cookies, "the sign-in's cookie"
    return Flow(browser, verifier, state, response.headers["Location"])


def sign_in(stack: Stack, rp: OAuth2Session, user: str) -> Flow:
    return back(scan(start(stack, rp), user))


def exchange(stack: Stack, rp: OAuth2Session, flow: Flow) -> dict:
    return rp.fetch_token(
        stack.discovery()["token_endpoint"],
        authorization_response=flow.to_rp,
        code_verifier=flow.verifier,
    )


def me(stack: Stack, access_token: str) -> requests.Response:
    return requests.get(
        f"{stack.url}/me", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    )


def test_discovery_names_the_authorization_endpoint(stack: Stack) -> None:
    body = stack.discovery()
    assert body["authorization_endpoint"] == f"{stack.url}/oauth/authorize"
    assert body["response_types_supported"] == ["code"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in body["grant_types_supported"]


def test_a_relying_party_signs_a_user_in_end_to_end(stack: Stack) -> None:
    rp = relying_party(stack)
    flow = start(stack, rp)
    wechat = urlsplit(flow.to_wechat)
    assert wechat.path == "/connect/qrconnect"
    sent = query_of(flow.to_wechat)
    assert sent["appid"] == WEB_APPID and sent["scope"] == "snsapi_login"
    assert sent["redirect_uri"] == f"{stack.url}/oauth/wechat/callback"
    assert sent["state"] != flow.state  # wxauth's own, bound to this browser

    back(scan(flow, "alice"))
    assert flow.browser.cookies == {}  # cleared
    answer = query_of(flow.to_rp)
    assert flow.to_rp.startswith(RP_URI + "?")
    assert answer["state"] == flow.state and answer["iss"] == stack.url

    tokens = exchange(stack, rp, flow)
    assert {"access_token", "refresh_token", "expires_in"} <= set(tokens)
    assert tokens["user"]["is_new"] is True
    profile = me(stack, tokens["access_token"])
    assert profile.status_code == 200 and profile.json()["id"] == tokens["user"]["id"]

    # the relying party refreshes as any OAuth client does
    refreshed = rp.refresh_token(
        stack.discovery()["token_endpoint"], refresh_token=tokens["refresh_token"]
    )
    assert refreshed["refresh_token"] != tokens["refresh_token"]


def test_a_public_client_signs_in_with_pkce_alone(stack: Stack) -> None:
    rp = relying_party(stack, public=True)
    tokens = exchange(stack, rp, sign_in(stack, rp, "alice"))
    assert me(stack, tokens["access_token"]).status_code == 200


def test_the_mini_program_and_the_website_are_one_user_by_unionid(stack: Stack) -> None:
    mini = requests.post(f"{stack.url}/auth/login", json={"code": "union-bob.1"}, timeout=30)
    assert mini.status_code == 200, mini.text
    rp = relying_party(stack)
    web = exchange(stack, rp, sign_in(stack, rp, "union-bob"))
    assert web["user"] == {"id": mini.json()["user"]["id"], "is_new": False}


def test_a_replayed_code_is_refused_and_revokes_its_tokens(stack: Stack) -> None:
    rp = relying_party(stack)
    flow = sign_in(stack, rp, "alice")
    tokens = exchange(stack, rp, flow)
    with pytest.raises(OAuthError) as replay:
        exchange(stack, relying_party(stack), flow)
    assert replay.value.error == "invalid_grant"
    assert me(stack, tokens["access_token"]).status_code == 401  # its session ended


def test_an_expired_code_is_refused(stack: Stack) -> None:
    rp = relying_party(stack)
    flow = sign_in(stack, rp, "alice")
    stack.age(query_of(flow.to_rp)["code"].partition(".")[0], "code_expires_at")
    with pytest.raises(OAuthError) as expired:
        exchange(stack, rp, flow)
    assert expired.value.error == "invalid_grant"


@pytest.mark.parametrize("wrong", ["code_verifier", "redirect_uri", "client"])
def test_a_wrong_verifier_redirect_uri_or_client_is_refused(stack: Stack, wrong: str) -> None:
    rp = relying_party(stack)
    flow = sign_in(stack, rp, "alice")
    code = query_of(flow.to_rp)["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": RP_URI,
        "code_verifier": flow.verifier,
    }
    auth: tuple[str, str] | None = ("shop-web", stack.rp_secret)
    if wrong == "code_verifier":
        form["code_verifier"] = generate_token(48)
    elif wrong == "redirect_uri":
        form["redirect_uri"] = SPA_URI
    else:
        form["client_id"], auth = "shop-spa", None
    token_endpoint = stack.discovery()["token_endpoint"]
    refused = requests.post(token_endpoint, data=form, auth=auth, timeout=30)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"
    assert code not in refused.text and flow.verifier not in refused.text
    # the code is still good for its own client, verifier and redirect URI
    assert exchange(stack, rp, flow)["access_token"]


def test_a_state_without_its_browser_cookie_is_refused(stack: Stack) -> None:
    rp = relying_party(stack)
    flow = scan(start(stack, rp), "alice")
    stranger = Browser().get(flow.to_callback)  # the state, but not the cookie
    assert stranger.status_code == 400
    assert stranger.json()["error"] == "invalid_request"
    forged = Browser({k: generate_token(43) for k in flow.browser.cookies}).get(flow.to_callback)
    assert forged.status_code == 400
    # its own browser still may, once
    back(flow)
    again = Browser(dict(flow.browser.cookies)).get(flow.to_callback)
    assert again.status_code == 400 and again.json()["error"] == "invalid_request"


def test_an_expired_state_is_refused(stack: Stack) -> None:
    flow = scan(start(stack, relying_party(stack)), "alice")
    stack.age(query_of(flow.to_callback)["state"].partition(".")[0], "expires_at")
    refused = flow.browser.get(flow.to_callback)
    assert refused.status_code == 400 and "expired" in refused.json()["error_description"]
