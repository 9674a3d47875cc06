"""Fixtures of websites' sign-ins: the fake WeChat behind `responses` (the mini-program and a
website app), a service graph with the website app and three OAuth clients registered."""

from __future__ import annotations

import pytest

from chalicelib import runtime
from chalicelib.identity.apps import WEBSITE, App
from devserver.fake_wechat import FakeWeChat
from tests.conftest import START, TEST_APPID, TEST_SECRET
from tests.identity.fixtures import fake_wechat  # noqa: F401 - the fixture, over `fake` below
from tests.weblogin.flow import (
    CONFIDENTIAL,
    FIRST_PARTY,
    PUBLIC,
    RP_URI,
    SPA_URI,
    WEB_APPID,
    WEB_SECRET,
    Clients,
)


@pytest.fixture
def fake() -> FakeWeChat:
    return FakeWeChat(TEST_APPID, TEST_SECRET, apps={WEB_APPID: WEB_SECRET})


@pytest.fixture
def services(settings, dynamodb, clock, fake_wechat) -> runtime.Services:  # noqa: F811
    """Overrides conftest's: WeChat answered by the fake, the website app registered."""
    built = runtime.build(settings, dynamodb=dynamodb, clock=clock, sleep=lambda _: None)
    assert built.apps is not None
    built.apps.add(App(WEB_APPID, WEBSITE, secret=WEB_SECRET), now=START)
    return built


@pytest.fixture
def clients(services: runtime.Services) -> Clients:
    """A confidential relying party, a public one (a single-page app), and the website's own
    first-party page (its client id is the website app's)."""
    _, secret = services.clients.create(
        [], now=START, client_id=CONFIDENTIAL, redirect_uris=[RP_URI]
    )
    services.clients.create([], now=START, client_id=PUBLIC, redirect_uris=[SPA_URI], public=True)
    services.clients.create(
        [], now=START, client_id=FIRST_PARTY, redirect_uris=[SPA_URI], public=True
    )
    assert secret is not None
    return Clients(confidential_secret=secret)
