"""The authorization endpoint and WeChat's callback (chalicelib/weblogin/authorize.py) through
chalice.test.Client: where each sends the browser, the browser-bound state, and every refusal
(issue 24, item 2)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from chalicelib.identity.apps import App
from tests.conftest import table_items
from tests.http import assert_error, login, verdict
from tests.weblogin.flow import (
    CALLBACK,
    CONFIDENTIAL,
    PUBLIC,
    RP_URI,
    WEB_APPID,
    Browser,
    SignIn,
    authorize_url,
    pkce,
    query_of,
    redeem,
    scan,
    sign_in,
)

pytestmark = pytest.mark.usefixtures("clients")


def started(client):
    browser = Browser(client)
    response = browser.get(authorize_url(CONFIDENTIAL, pkce()[1]))
    assert response.status_code == 302, response.body
    return browser, response


def test_authorize_sends_the_browser_to_wechat_with_its_own_cookie(
    client, dynamodb, dynamodb_requests, services
):
    services.apps.apps()  # the registry's cache, as a warm container has it
    del dynamodb_requests[:]
    browser, response = started(client)
    sent_requests = list(dynamodb_requests)

    location = response.headers["Location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://open.weixin.qq.com/connect/qrconnect"
    )
    assert parts.fragment == "wechat_redirect"
    sent = query_of(location)
    assert sent.keys() == {"appid", "redirect_uri", "response_type", "scope", "state"}
    assert sent["appid"] == WEB_APPID and sent["redirect_uri"] == CALLBACK
    assert (sent["response_type"], sent["scope"]) == ("code", "snsapi_login")
    authz_id, _, secret = sent["state"].partition(".")
    assert len(authz_id) == 22 and len(secret) == 43  # 128-bit id, 256 random bits
    assert sent["state"] != "rp-state-1"  # wxauth's own state, not the relying party's
    assert response.headers["Cache-Control"] == "no-store"
    cookie = response.headers["Set-Cookie"]
    name = f"__Host-wxauth-authz-{authz_id}"
    assert cookie.startswith(f"{name}={browser.cookies[name]}; ")
    assert "; Max-Age=600; Path=/; Secure; HttpOnly; SameSite=Lax" in cookie
    # one item, holding hashes only; a client GetItem and its PutItem
    [item] = [i for i in table_items(dynamodb) if i["pk"]["S"].startswith("AUTHZ#")]
    assert item["pk"]["S"] == f"AUTHZ#{authz_id}"
    assert secret not in repr(item) and browser.cookies[name] not in repr(item)
    assert item["state"] == {"S": "rp-state-1"}
    assert sent_requests == ["GetItem", "PutItem"]


def test_the_callback_sends_the_browser_on_with_a_code(client, fake, dynamodb_requests, services):
    flow = sign_in(client, fake, "alice")  # a new user: its identity made
    assert flow.browser.cookies == {}  # cleared by the callback
    assert flow.to_rp.startswith(RP_URI + "&")  # the registered URI kept its own query
    back = query_of(flow.to_rp)
    assert back.keys() == {"from", "code", "state", "iss"}
    assert back["state"] == "rp-state-1" and back["iss"] == "https://auth.test"
    authz_id, _, secret = back["code"].partition(".")
    assert len(authz_id) == 22 and len(secret) == 43

    # a returning user: the take, the identity's UpdateItem, the code's; WeChat once
    calls = fake.calls
    browser, response = started(client)
    del dynamodb_requests[:]
    to_callback = scan(fake, response.headers["Location"], "alice")
    assert browser.get(to_callback).status_code == 302
    assert dynamodb_requests == ["UpdateItem", "UpdateItem", "UpdateItem"]
    assert fake.calls == calls + 1


def test_a_state_without_its_browser_cookie_is_refused(client, fake, dynamodb):
    browser, response = started(client)
    to_callback = scan(fake, response.headers["Location"], "alice")
    before, calls = table_items(dynamodb), fake.calls

    stranger = Browser(client)  # another browser: the state, but not the cookie
    assert_error(stranger.get(to_callback), 400, "invalid_request")
    other = Browser(client, cookies={k: "x" * 43 for k in browser.cookies})  # a forged cookie
    refused = other.get(to_callback)
    assert_error(refused, 400, "invalid_request")
    assert "browser that started it" in refused.json_body["error_description"]
    assert table_items(dynamodb) == before and fake.calls == calls  # WeChat not called

    assert browser.get(to_callback).status_code == 302  # its own browser still may


def test_a_replayed_state_is_refused(client, fake, dynamodb):
    flow = sign_in(client, fake)
    before, calls = table_items(dynamodb), fake.calls
    for cookies in (flow.browser.cookies, {}):
        again = Browser(client, cookies=dict(cookies)).get(flow.to_callback)
        assert_error(again, 400, "invalid_request")
    assert table_items(dynamodb) == before and fake.calls == calls


def test_an_expired_state_is_refused(client, fake, clock, dynamodb):
    browser, response = started(client)
    to_callback = scan(fake, response.headers["Location"], "alice")
    clock.advance(600)  # WeChat's code lives 10 minutes: so does the sign-in
    before = table_items(dynamodb)

    refused = browser.get(to_callback)
    assert_error(refused, 400, "invalid_request")
    assert "expired" in refused.json_body["error_description"]
    assert table_items(dynamodb) == before


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?code=alice.1",
        "?state=nonsense&code=alice.1",
        "?state=" + "A" * 22 + "." + "B" * 43 + "&code=alice.1",  # the form, no sign-in
        "?state=a&state=b",
    ],
)
def test_a_state_that_is_no_sign_in_is_refused_to_the_browser(client, query, dynamodb):
    before = table_items(dynamodb)
    assert_error(Browser(client).get("/oauth/wechat/callback" + query), 400, "invalid_request")
    assert table_items(dynamodb) == before


def test_the_user_refusing_at_wechat_goes_back_as_access_denied(client, fake):
    browser, response = started(client)
    back = browser.get(scan(fake, response.headers["Location"], "deny"))
    assert back.status_code == 302
    answer = query_of(back.headers["Location"])
    assert answer["error"] == "access_denied" and answer["state"] == "rp-state-1"
    assert "code" not in answer and answer["iss"] == "https://auth.test"


@pytest.mark.parametrize(
    ("wechat_code", "error"),
    [
        ("err-40029", "access_denied"),
        ("err-40226", "access_denied"),
        ("err--1", "temporarily_unavailable"),
    ],
)
def test_wechat_refusing_the_code_goes_back_as_an_error(client, fake, wechat_code, error):
    browser, response = started(client)
    state = query_of(response.headers["Location"])["state"]
    back = browser.get(f"{CALLBACK}?code={wechat_code}&state={state}")
    assert back.status_code == 302
    answer = query_of(back.headers["Location"])
    assert answer["error"] == error and answer["state"] == "rp-state-1"
    assert "code" not in answer


def test_the_same_unionid_is_the_same_user_as_the_mini_programs(client, fake, clients):
    mini = login(client, "union-bob.1")  # the mini-program first

    flow = sign_in(client, fake, "union-bob")
    answer = redeem(client, flow, secret=clients.confidential_secret)
    assert answer.status_code == 200, answer.body
    assert answer.json_body["user"] == {"id": mini["user"]["id"], "is_new": False}
    web = verdict(client, answer.json_body["access_token"])
    assert web["valid"] and web["sub"] == mini["user"]["id"]


def test_the_website_first_then_the_mini_program_is_one_user_too(client, fake, clients):
    flow = sign_in(client, fake, "union-carol")
    first = redeem(client, flow, secret=clients.confidential_secret).json_body
    assert first["user"]["is_new"] is True
    assert login(client, "union-carol.1")["user"] == {"id": first["user"]["id"], "is_new": False}


# -- the authorization request's refusals ---------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"client_id": None}, 400, "invalid_request"),
        ({"client_id": "nobody"}, 400, "invalid_request"),
        ({"client_id": "x" * 65}, 400, "invalid_request"),
        ({"redirect_uri": "https://evil.example/cb"}, 400, "invalid_request"),
        ({"redirect_uri": RP_URI + "&x=1"}, 400, "invalid_request"),  # exact match only
        ({"redirect_uri": "https://shop.example/signed-in"}, 400, "invalid_request"),
    ],
)
def test_no_client_or_an_unregistered_redirect_uri_is_answered_never_redirected(
    client, dynamodb, overrides, status, error
):
    before = table_items(dynamodb)
    response = Browser(client).get(authorize_url(CONFIDENTIAL, pkce()[1], **overrides))
    assert_error(response, status, error)
    assert "Location" not in response.headers and "Set-Cookie" not in response.headers
    assert table_items(dynamodb) == before


def test_a_client_without_redirect_uris_may_not_sign_users_in(client, services, dynamodb):
    services.clients.create(["orders:read"], now=0, client_id="backend")
    before = table_items(dynamodb)
    response = Browser(client).get(authorize_url("backend", pkce()[1], redirect_uri=None))
    assert_error(response, 400, "unauthorized_client")
    assert table_items(dynamodb) == before


def test_a_disabled_client_is_refused(client, services):
    services.clients.set_enabled(CONFIDENTIAL, False)
    assert_error(
        Browser(client).get(authorize_url(CONFIDENTIAL, pkce()[1])), 400, "invalid_request"
    )


def test_the_redirect_uri_may_be_omitted_when_the_client_has_one(client, fake, clients):
    browser = Browser(client)
    verifier, challenge = pkce()
    response = browser.get(authorize_url(CONFIDENTIAL, challenge, redirect_uri=None))
    assert response.status_code == 302
    back = browser.get(scan(fake, response.headers["Location"], "alice")).headers["Location"]
    assert back.startswith(RP_URI + "&")
    flow = SignIn(browser, verifier, response.headers["Location"], to_rp=back)
    # then the token request must not name another one (RFC 6749 §4.1.3)
    answer = redeem(client, flow, secret=clients.confidential_secret, redirect_uri=None)
    assert answer.status_code == 200, answer.body


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"code_challenge": None}, "invalid_request"),  # PKCE is required
        ({"code_challenge_method": None}, "invalid_request"),  # the default, plain
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"code_challenge": "=" * 43}, "invalid_request"),
        ({"scope": "openid"}, "invalid_scope"),
    ],
)
def test_other_refusals_go_back_to_the_relying_party(client, dynamodb, overrides, error):
    before = table_items(dynamodb)
    response = Browser(client).get(authorize_url(CONFIDENTIAL, pkce()[1], **overrides))
    assert response.status_code == 302
    assert "Set-Cookie" not in response.headers
    location = response.headers["Location"]
    assert location.startswith(RP_URI + "&")
    answer = query_of(location)
    assert answer["error"] == error and answer["state"] == "rp-state-1"
    assert answer["error_description"] and answer["iss"] == "https://auth.test"
    assert table_items(dynamodb) == before


def test_a_parameter_sent_twice_or_a_bad_state_goes_back_without_trusting_them(client):
    url = authorize_url(CONFIDENTIAL, pkce()[1])
    for query, state in [
        (url + "&response_type=code", "rp-state-1"),
        (url + "&state=another", None),
        (authorize_url(CONFIDENTIAL, pkce()[1], state="tab\there"), None),
        (authorize_url(CONFIDENTIAL, pkce()[1], state="s" * 513), None),
    ]:
        response = Browser(client).get(query)
        assert response.status_code == 302
        answer = query_of(response.headers["Location"])
        assert answer["error"] == "invalid_request"
        assert answer.get("state") == state


def test_no_website_app_or_a_disabled_one_goes_back_as_an_error(client, services, log_lines):
    services.apps.set_enabled(WEB_APPID, False, now=0)
    response = Browser(client).get(authorize_url(PUBLIC, pkce()[1]))
    assert query_of(response.headers["Location"])["error"] == "unauthorized_client"

    services.apps.add(App("wx-web-2", "website", secret="s"), now=0)
    services.apps.add(App("wx-web-3", "website", secret="s"), now=0)
    response = Browser(client).get(authorize_url(PUBLIC, pkce()[1]))
    answer = query_of(response.headers["Location"])
    assert answer["error"] == "server_error"
    assert "kind website" not in answer["error_description"]  # the operator's, in the log
    assert any("kind website" in line and "web_login_failed" in line for line in log_lines)
