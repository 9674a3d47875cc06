"""The app registry and kinds, and the WeChat client's `sns/oauth2/access_token`."""

from __future__ import annotations

import json

import pytest
import responses

from chalicelib.errors import (
    AppDisabled,
    ConfigurationError,
    RequestError,
    UnknownApp,
    WeChatCodeRejected,
    WeChatConfigError,
    WeChatUnavailable,
)
from chalicelib.identity.apps import KINDS, MINI_PROGRAM, App, AppRegistry, Exchanged
from chalicelib.store import Store
from chalicelib.wechat.client import WeChatClient
from tests.conftest import START, TABLE, TEST_APPID, WECHAT_BASE, FakeClock

OAUTH2 = f"{WECHAT_BASE}/sns/oauth2/access_token"


@pytest.fixture
def registry(dynamodb, clock) -> AppRegistry:
    return AppRegistry(
        Store(dynamodb, TABLE).apps,
        App(TEST_APPID, client_id=TEST_APPID, primary=True),
        clock=clock,
        max_age=60,
    )


def test_one_app_needs_no_appid(registry):
    assert registry.resolve(None).appid == TEST_APPID
    assert registry.resolve(TEST_APPID).primary


def test_several_apps_need_an_appid(registry):
    registry.add(App("wx-b", "official-account", secret="s"), now=START)
    with pytest.raises(RequestError, match="appid is required"):
        registry.resolve(None)
    assert registry.resolve("wx-b").kind == "official-account"
    registry.set_enabled(TEST_APPID, False, now=START)
    assert registry.resolve(None).appid == "wx-b"  # exactly one enabled again


def test_unknown_and_disabled_apps(registry):
    with pytest.raises(UnknownApp):
        registry.resolve("wx-nobody")
    registry.add(App("wx-b", secret="s"), now=START)
    registry.set_enabled("wx-b", False, now=START)
    with pytest.raises(AppDisabled):
        registry.resolve("wx-b")
    assert registry.set_enabled("wx-nobody", True, now=START) is False


def test_an_app_is_added_once_and_never_as_the_primary(registry):
    registry.add(App("wx-b", secret="s"), now=START)
    with pytest.raises(RequestError, match="already exists"):
        registry.add(App("wx-b", secret="t"), now=START)
    with pytest.raises(RequestError, match="primary"):
        registry.add(App(TEST_APPID, secret="t"), now=START)
    with pytest.raises(RequestError, match="kind"):
        registry.add(App("wx-c", kind="pager", secret="t"), now=START)


def test_the_registry_is_cached(dynamodb, registry, clock: FakeClock, dynamodb_requests):
    registry.apps()
    registry.apps()
    assert dynamodb_requests == ["Query"]
    clock.advance(60)
    registry.apps()
    assert dynamodb_requests == ["Query", "Query"]


def test_kinds_are_registered_not_branched():
    assert set(KINDS) == {"mini-program", "official-account", "mobile-app", "website"}

    class Fake:
        def code2session(self, code):
            return type("S", (), {"openid": "o1", "unionid": None, "session_key": "k"})()

        def oauth2_access_token(self, code):
            return type("A", (), {"openid": "o2", "unionid": "u2"})()

    # a mini-program's session_key goes on to the login, which seals it (issue 25, item 5)
    exchanged = KINDS[MINI_PROGRAM].exchange(Fake(), "c")
    assert exchanged == Exchanged("o1", None, session_key="k") and "'k'" not in repr(exchanged)
    assert KINDS["official-account"].exchange(Fake(), "c") == Exchanged("o2", "u2")
    assert KINDS["mobile-app"].exchange(Fake(), "c") == Exchanged("o2", "u2")
    assert KINDS["website"].exchange(Fake(), "c") == Exchanged("o2", "u2")


def test_a_website_sends_the_browser_to_qrconnect():
    """WeChat's docs (网站应用微信登录): qrconnect?appid&redirect_uri (URL-encoded)
    &response_type=code&scope=snsapi_login&state#wechat_redirect."""
    url = KINDS["website"].authorization_url(
        "https://open.weixin.qq.com/", "wx-web", "https://auth.test/oauth/wechat/callback", "s.1"
    )
    assert url == (
        "https://open.weixin.qq.com/connect/qrconnect?appid=wx-web"
        "&redirect_uri=https%3A%2F%2Fauth.test%2Foauth%2Fwechat%2Fcallback"
        "&response_type=code&scope=snsapi_login&state=s.1#wechat_redirect"
    )
    assert not KINDS["website"].replays_without_nonce  # its code travels in a URL
    assert not hasattr(KINDS["mini-program"], "authorization_url")


def test_a_website_app_does_not_make_the_appid_required(registry):
    """A mini-program that sends no appid keeps logging in once a website app is added."""
    registry.add(App("wx-web", "website", secret="s"), now=START)
    assert registry.resolve(None).appid == TEST_APPID
    assert registry.resolve("wx-web").kind == "website"  # its code, posted with its appid


def test_the_browser_app_is_the_one_enabled_website(registry):
    with pytest.raises(ConfigurationError, match="kind website"):
        registry.browser_app()  # none yet: the primary app is a mini-program
    registry.add(App("wx-web", "website", secret="s"), now=START)
    assert registry.browser_app().appid == "wx-web"
    registry.add(App("wx-web-2", "website", secret="s"), now=START)
    with pytest.raises(ConfigurationError, match="2 now"):
        registry.browser_app()
    registry.set_enabled("wx-web", False, now=START)
    assert registry.browser_app().appid == "wx-web-2"
    registry.set_enabled("wx-web-2", False, now=START)
    with pytest.raises(AppDisabled):
        registry.browser_app()


@pytest.fixture
def client() -> WeChatClient:
    return WeChatClient(
        base_url=WECHAT_BASE, appid="wx-oa", secret=lambda: "OA-SECRET", sleep=lambda _: None
    )


@responses.activate
def test_oauth2_access_token(client, log_lines):
    responses.get(
        OAUTH2,
        body=json.dumps(
            {"access_token": "AT", "expires_in": 7200, "openid": "o", "unionid": "u", "scope": "x"}
        ),
        content_type="text/plain",
    )
    access = client.oauth2_access_token("CODE-1")
    assert (access.openid, access.unionid, access.scope) == ("o", "u", "x")
    assert "AT" not in repr(access)
    sent = responses.calls[0].request.url
    assert (
        "appid=wx-oa" in sent and "code=CODE-1" in sent and "grant_type=authorization_code" in sent
    )


@responses.activate
@pytest.mark.parametrize(
    ("errcode", "error"),
    [(40029, WeChatCodeRejected), (40163, WeChatCodeRejected), (40125, WeChatConfigError)],
)
def test_oauth2_errors(client, log_lines, errcode, error):
    responses.get(OAUTH2, json={"errcode": errcode, "errmsg": "x"})
    with pytest.raises(error):
        client.oauth2_access_token("CODE-2")
    assert not [line for line in log_lines if "OA-SECRET" in line or "CODE-2" in line]


@responses.activate
def test_oauth2_busy_is_retried_once(client):
    responses.get(OAUTH2, json={"errcode": -1, "errmsg": "busy"})
    with pytest.raises(WeChatUnavailable):
        client.oauth2_access_token("CODE-3")
    assert len(responses.calls) == 2


def test_an_unknown_appid_is_looked_up_alone_at_most_every_five_seconds(
    dynamodb, registry, clock: FakeClock, dynamodb_requests
):
    requests: list[dict] = []
    dynamodb.meta.events.register(
        "before-parameter-build.dynamodb.GetItem", lambda params, **_: requests.append(params)
    )
    registry.apps()
    other = AppRegistry(registry._store, registry.primary, clock=clock)  # another container
    other.add(App("wx-new", secret="s"), now=START)
    dynamodb_requests.clear()
    with pytest.raises(UnknownApp):
        registry.resolve("wx-new")  # loaded just now: not again (a flood of bogus appids)
    assert dynamodb_requests == []
    clock.advance(5)
    assert registry.resolve("wx-new").appid == "wx-new"
    assert registry.resolve("wx-new").appid == "wx-new"  # and now cached
    with pytest.raises(UnknownApp):
        registry.resolve("wx-bogus")  # looked up a moment ago: not again
    # one GetItem of that one item, eventually consistent (half a read unit): the `APP`
    # partition is read by every container, so bogus appids must not multiply its load
    assert dynamodb_requests == ["GetItem"]
    assert requests[0]["ConsistentRead"] is False
    assert requests[0]["Key"] == {"pk": {"S": "APP"}, "sk": {"S": "APP#wx-new"}}
    clock.advance(5)
    with pytest.raises(UnknownApp):
        registry.resolve("wx-bogus")
    assert dynamodb_requests == ["GetItem", "GetItem"]


def test_a_disabled_app_is_refused_by_the_cache_within_its_ttl(registry, clock: FakeClock):
    registry.add(App("wx-b", secret="s"), now=START)
    registry.resolve("wx-b")
    other = AppRegistry(registry._store, registry.primary, clock=clock)  # another container
    assert other.set_enabled("wx-b", False, now=START)
    assert registry.in_force_after() == 60 + 30  # the cache's age, and a login under way
    registry.resolve("wx-b")  # this container's cache is 0 s old
    clock.advance(59)
    registry.resolve("wx-b")
    clock.advance(1)
    with pytest.raises(AppDisabled):
        registry.resolve("wx-b")


def test_the_apps_cache_setting():
    from chalicelib.errors import ConfigurationError
    from chalicelib.settings import Settings

    assert Settings.from_env({}).apps_cache_ttl == 60
    assert Settings.from_env({"AUTH_APPS_CACHE_TTL": "0"}).apps_cache_ttl == 0
    for bad in ("-1", "soon"):
        with pytest.raises(ConfigurationError, match="AUTH_APPS_CACHE_TTL"):
            Settings.from_env({"AUTH_APPS_CACHE_TTL": bad})
