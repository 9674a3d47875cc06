"""Fixtures for the multi-app tests: the fake WeChat (several apps) behind `responses`, and a
service graph with three registered apps besides the primary one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from chalicelib import runtime
from chalicelib.identity.apps import MINI_PROGRAM, MOBILE_APP, OFFICIAL_ACCOUNT, App
from devserver.fake_wechat import FakeWeChat
from tests.conftest import START, TEST_APPID, TEST_SECRET, WECHAT_BASE

APP_B = "wx-app-b"  # a second mini-program, its own client_id and aud
APP_OA = "wx-official"  # an official account's web pages (sns/oauth2/access_token)
APP_MOBILE = "wx-mobile"  # a mobile app (open-platform appid)
SECRETS = {
    APP_B: "secret-of-app-b-0123456789",
    APP_OA: "secret-of-official-0123456789",
    APP_MOBILE: "secret-of-mobile-0123456789",
}


@pytest.fixture
def fake() -> FakeWeChat:
    return FakeWeChat(TEST_APPID, TEST_SECRET, apps=dict(SECRETS))


@pytest.fixture
def fake_wechat(fake: FakeWeChat) -> Iterator[FakeWeChat]:
    """The fake WeChat's own logic (per-app secrets, openids, unionids) served to `requests`."""

    def route(handler):
        def callback(request):
            query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
            return 200, {"Content-Type": "text/plain"}, json.dumps(handler(query))

        return callback

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(
            responses.GET, f"{WECHAT_BASE}/sns/jscode2session", callback=route(fake.jscode2session)
        )
        mock.add_callback(
            responses.GET,
            f"{WECHAT_BASE}/sns/oauth2/access_token",
            callback=route(fake.oauth2_access_token),
        )

        def stable_token(request):
            return (
                200,
                {"Content-Type": "application/json"},
                json.dumps(fake.stable_token(request.body)),
            )

        def phone(request):
            token = parse_qs(urlsplit(request.url).query).get("access_token", [""])[0]
            answer = fake.getuserphonenumber(token, json.loads(request.body))
            return 200, {"Content-Type": "text/plain"}, json.dumps(answer)

        mock.add_callback(
            responses.POST, f"{WECHAT_BASE}/cgi-bin/stable_token", callback=stable_token
        )
        mock.add_callback(
            responses.POST, f"{WECHAT_BASE}/wxa/business/getuserphonenumber", callback=phone
        )
        yield fake


def register_apps(services: runtime.Services) -> None:
    apps = services.apps
    assert apps is not None
    apps.add(
        App(APP_B, MINI_PROGRAM, client_id="shop-b", audience="aud-b", secret=SECRETS[APP_B]),
        now=START,
    )
    apps.add(App(APP_OA, OFFICIAL_ACCOUNT, secret=SECRETS[APP_OA]), now=START)
    apps.add(App(APP_MOBILE, MOBILE_APP, secret=SECRETS[APP_MOBILE]), now=START)


@pytest.fixture
def services(settings, dynamodb, clock, fake_wechat) -> runtime.Services:
    """Overrides conftest's: four apps, WeChat answered by the fake."""
    built = runtime.build(settings, dynamodb=dynamodb, clock=clock, sleep=lambda _: None)
    register_apps(built)
    return built
