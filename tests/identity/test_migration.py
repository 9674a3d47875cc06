"""Single-app data written by the code of before issue #14 (tests/legacy/login_v1.py, a frozen
copy) keeps working with the identity graph, without a rewrite: same user id, same profile,
its sessions still refresh, and a second app joins it through the unionid."""

from __future__ import annotations

import pytest

from chalicelib.login import user_id_for
from devserver.fake_wechat import openid_for, unionid_for
from tests.conftest import START, TEST_APPID, table_items
from tests.identity import fixtures as identity_fixtures
from tests.identity.fixtures import APP_B
from tests.legacy.login_v1 import LoginService as LegacyLoginService

fake = identity_fixtures.fake
fake_wechat = identity_fixtures.fake_wechat
services = identity_fixtures.services


@pytest.fixture
def legacy(services):
    """Today's login, on the same table, WeChat and sessions."""
    return LegacyLoginService(
        services.store, services.wechat, services.sessions, appid=TEST_APPID, sleep=lambda _: None
    )


@pytest.mark.parametrize("user", ["alice", "union-bob"])
def test_a_legacy_user_logs_in_as_the_same_user(services, legacy, user):
    old = legacy.login(f"{user}.1", START)
    assert old.is_new is True
    profile = services.store.users.get(old.tokens.user_id)
    assert not [
        i for i in table_items(services.store.client) if i["pk"]["S"].startswith("IDENTITY#")
    ]

    new = services.login.login(f"{user}.2", START + 100, TEST_APPID)
    assert (
        new.tokens.user_id
        == old.tokens.user_id
        == user_id_for(TEST_APPID, openid_for(TEST_APPID, user))
    )
    assert new.is_new is False
    assert services.store.users.get(old.tokens.user_id) == profile  # created_at, unionid kept
    # the legacy session still refreshes, and keeps its client_id and the default aud
    refreshed = services.sessions.refresh(old.tokens.refresh_token, START + 200)
    claims = services.access_tokens.check(refreshed.access_token, START + 200)
    assert (claims.subject, claims.client_id) == (old.tokens.user_id, TEST_APPID)
    # and the identity is listed now
    [identity] = services.graph.identities_of(profile)
    assert (identity.appid, identity.openid) == (TEST_APPID, openid_for(TEST_APPID, user))


def test_me_of_a_legacy_user_who_has_not_logged_in_since(client, legacy):
    old = legacy.login("union-cy.1", START)
    body = client.http.get(
        "/me", headers={"authorization": f"Bearer {old.tokens.access_token}"}
    ).json_body
    assert body["id"] == old.tokens.user_id
    assert body["identities"] == [
        {"appid": TEST_APPID, "kind": "mini-program", "openid": openid_for(TEST_APPID, "union-cy")}
    ]


def test_a_second_app_joins_a_legacy_user_through_its_unionid(services, legacy):
    """The legacy user has no OWNER item, only the old `UNIONID#`/`USER#` link: the first login
    of another app finds it there, before the legacy user logged in again."""
    old = legacy.login("union-dee.1", START)
    joined = services.login.login("union-dee.2", START + 10, APP_B)
    assert joined.tokens.user_id == old.tokens.user_id and joined.is_new is False
    assert services.store.users.get(old.tokens.user_id).unionid == unionid_for("union-dee")
    again = services.login.login("union-dee.3", START + 20, TEST_APPID)
    assert again.tokens.user_id == old.tokens.user_id


def test_a_legacy_user_whose_unionid_another_user_got_first_is_pending(services, legacy, fake):
    """The legacy user had no unionid (app not bound then); app B's user got the unionid first;
    the legacy user's next login carries it: two existing users, so a pending link."""
    fake._unbound.add(TEST_APPID)
    old = legacy.login("union-eve.1", START)
    other = services.login.login("union-eve.2", START + 10, APP_B)
    assert other.tokens.user_id != old.tokens.user_id
    fake.bind(TEST_APPID)
    again = services.login.login("union-eve.3", START + 20, TEST_APPID)
    assert again.tokens.user_id == old.tokens.user_id  # not merged silently
    [pending] = services.graph.pending()
    assert (pending.owner, pending.user_id) == (other.tokens.user_id, old.tokens.user_id)
