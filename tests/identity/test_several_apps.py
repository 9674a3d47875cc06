"""Several apps, one user (issue #14): the registry, the identity graph, per-app tokens, the
pending link and the admin merge, through the HTTP surface and the services."""

from __future__ import annotations

import json

import jwt
import pytest

from chalicelib import admin
from chalicelib.errors import AdminError, AppDisabled, RequestError, UnknownApp
from chalicelib.login import user_id_for
from devserver.fake_wechat import openid_for, unionid_for
from tests.conftest import START, TEST_APPID, table_items
from tests.http import assert_error, bearer, post
from tests.identity import fixtures as identity_fixtures
from tests.identity.fixtures import APP_B, APP_MOBILE, APP_OA

fake = identity_fixtures.fake
fake_wechat = identity_fixtures.fake_wechat
services = identity_fixtures.services


def log_in(client, code, appid=None, status=200):
    body = {"code": code} if appid is None else {"code": code, "appid": appid}
    response = post(client, "/auth/login", body)
    assert response.status_code == status, response.json_body
    return response.json_body


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


def me(client, token):
    response = client.http.get("/me", headers=bearer(token))
    assert response.status_code == 200, response.json_body
    return response.json_body


def run_admin(services, *argv):
    args = admin.parser().parse_args(list(argv))
    return admin.TABLE_GROUPS[args.group].run(args, services, services.now())


# -- two and three apps -------------------------------------------------------------------------


def test_two_mini_programs_with_one_unionid_are_one_user(client, services):
    a = log_in(client, "union-bob.1", TEST_APPID)
    b = log_in(client, "union-bob.2", APP_B)
    assert a["user"] == {"id": a["user"]["id"], "is_new": True}
    assert b["user"] == {"id": a["user"]["id"], "is_new": False}
    # each app's tokens: its client_id, its aud (app B has its own; the primary keeps AUTH_AUDIENCE)
    ca, cb = claims_of(a["access_token"]), claims_of(b["access_token"])
    assert (ca["client_id"], ca["aud"]) == (TEST_APPID, "wxauth-test")
    assert (cb["client_id"], cb["aud"]) == ("shop-b", "aud-b")
    # both verify, and /me lists both identities, without secrets
    for token in (a["access_token"], b["access_token"]):
        assert post(client, "/auth/verify", {"token": token}).json_body["valid"] is True
    body = me(client, b["access_token"])
    assert body["id"] == a["user"]["id"]
    assert (body["appid"], body["openid"]) == (TEST_APPID, openid_for(TEST_APPID, "union-bob"))
    assert body["unionid"] == unionid_for("union-bob")
    assert sorted(body["identities"], key=lambda i: i["appid"]) == sorted(
        [
            {
                "appid": TEST_APPID,
                "kind": "mini-program",
                "openid": openid_for(TEST_APPID, "union-bob"),
            },
            {"appid": APP_B, "kind": "mini-program", "openid": openid_for(APP_B, "union-bob")},
        ],
        key=lambda i: i["appid"],
    )
    # a refresh keeps the app's client_id and aud
    refreshed = post(client, "/auth/refresh", {"refresh_token": b["refresh_token"]}).json_body
    again = claims_of(refreshed["access_token"])
    assert (again["client_id"], again["aud"]) == ("shop-b", "aud-b")


def test_three_apps_of_three_kinds_are_one_user(client, services, fake_wechat):
    mini = log_in(client, "union-carol.1", TEST_APPID)
    web = log_in(client, "union-carol.2", APP_OA)  # an official account's OAuth code
    mobile = log_in(client, "union-carol.3", APP_MOBILE)
    assert {mini["user"]["id"], web["user"]["id"], mobile["user"]["id"]} == {mini["user"]["id"]}
    kinds = {i["appid"]: i["kind"] for i in me(client, web["access_token"])["identities"]}
    assert kinds == {
        TEST_APPID: "mini-program",
        APP_OA: "official-account",
        APP_MOBILE: "mobile-app",
    }
    assert fake_wechat.calls == 3


def test_an_app_without_its_own_audience_gets_its_client_id_as_aud(client, services):
    """Tokens of one app are not another's by default (issue #22, item 11): an app registered
    without `audience` mints `aud` = its client_id; verify and the protected routes accept it,
    and its refreshes keep it."""
    web = log_in(client, "frank.1", APP_OA)  # registered without audience; client_id = appid
    assert (claims_of(web["access_token"])["aud"], claims_of(web["access_token"])["client_id"]) == (
        APP_OA,
        APP_OA,
    )
    assert post(client, "/auth/verify", {"token": web["access_token"]}).json_body["valid"] is True
    assert me(client, web["access_token"])["id"] == web["user"]["id"]
    refreshed = post(client, "/auth/refresh", {"refresh_token": web["refresh_token"]}).json_body
    assert claims_of(refreshed["access_token"])["aud"] == APP_OA
    # the primary app keeps AUTH_AUDIENCE
    mini = log_in(client, "frank.2", TEST_APPID)
    assert claims_of(mini["access_token"])["aud"] == "wxauth-test"


def test_a_session_stored_without_an_audience_keeps_the_deployments(client, services):
    """A session of such an app from before keeps what it stored: AUTH_AUDIENCE."""
    tokens = services.sessions.start(
        "G" * 22, client_id=APP_OA, now=START, audience=None
    )  # as a login of an earlier release stored it
    refreshed = post(client, "/auth/refresh", {"refresh_token": tokens.refresh_token}).json_body
    assert claims_of(refreshed["access_token"])["aud"] == "wxauth-test"
    assert claims_of(refreshed["access_token"])["client_id"] == APP_OA


def test_without_a_unionid_two_apps_are_two_users(client):
    a = log_in(client, "dave.1", TEST_APPID)
    b = log_in(client, "dave.2", APP_B)
    assert a["user"]["id"] != b["user"]["id"]
    assert b["user"]["is_new"] is True


def test_logout_all_ends_the_sessions_of_every_app(client):
    a = log_in(client, "union-erin.1", TEST_APPID)
    b = log_in(client, "union-erin.2", APP_OA)
    response = post(client, "/auth/logout", {"all": True}, headers=bearer(a["access_token"]))
    assert response.status_code == 204
    for tokens in (a, b):
        verdict = post(client, "/auth/verify", {"token": tokens["access_token"]}).json_body
        assert verdict == {"valid": False, "reason": "revoked"}
        refused = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert_error(refused, 400, "invalid_grant")


@pytest.mark.parametrize("appid", [APP_OA, APP_MOBILE])
def test_an_oauth_code_is_never_replayed_without_its_first_callers_nonce(
    client, fake, dynamodb, clock, appid
):
    """Issue 22, item 1: an official account's code arrives in a redirect URL (Referer,
    analytics, a shared link): whoever posts it again gets nothing, even a second later."""
    first = log_in(client, "dave.1", appid)
    items = table_items(dynamodb)
    clock.advance(1)
    response = post(client, "/auth/login", {"code": "dave.1", "appid": appid})
    assert_error(response, 400, "invalid_grant")
    assert first["refresh_token"] not in response.body.decode()
    assert table_items(dynamodb) == items
    # with a nonce, the first caller's retry is answered the same session
    nonce = "n" * 43
    body = {"code": "dave.2", "appid": appid, "login_nonce": nonce}
    first = post(client, "/auth/login", body).json_body
    clock.advance(200)
    again = post(client, "/auth/login", body).json_body
    assert again["refresh_token"] == first["refresh_token"]
    response = post(client, "/auth/login", {**body, "login_nonce": "m" * 43})
    assert_error(response, 400, "invalid_grant")


def test_each_apps_users_bind_a_phone_from_their_own_apps_button(client, fake, dynamodb):
    """Issue 22, item 10, against the fake WeChat: app B's session, app B's phone code, app B's
    server token (its own broker item) and openid; the primary app's likewise."""
    b = log_in(client, "frank.1", APP_B)
    response = post(
        client,
        "/auth/phone",
        {"code": f"phone.frank.13900139000.@{APP_B}"},
        headers=bearer(b["access_token"]),
    )
    assert response.status_code == 200, response.json_body
    a = log_in(client, "grace.1", TEST_APPID)
    code = {"code": "phone.grace.13700137000"}
    response = post(client, "/auth/phone", code, headers=bearer(a["access_token"]))
    assert response.status_code == 200, response.json_body
    brokered = sorted(i["pk"]["S"] for i in table_items(dynamodb) if i["sk"]["S"] == "TOKEN")
    assert brokered == sorted([f"WXTOKEN#{TEST_APPID}", f"WXTOKEN#{APP_B}"])
    # a code of app B in the primary app's session: WeChat refuses it (40029), nothing bound
    response = post(
        client,
        "/auth/phone",
        {"code": f"phone.grace.13600136000.@{APP_B}"},
        headers=bearer(a["access_token"]),
    )
    assert_error(response, 400, "invalid_grant")


# -- which app ----------------------------------------------------------------------------------


def test_appid_is_required_when_several_apps_are_enabled(client, dynamodb):
    before = table_items(dynamodb)
    response = post(client, "/auth/login", {"code": "alice.1"})
    assert_error(response, 400, "invalid_request")
    assert "appid is required" in response.json_body["error_description"]
    assert table_items(dynamodb) == before


@pytest.mark.parametrize("appid", ["wx-nobody", "has space", "x" * 65, 7])
def test_an_unknown_or_malformed_appid_is_invalid_request(client, fake_wechat, appid):
    response = post(client, "/auth/login", {"code": "alice.1", "appid": appid})
    assert_error(response, 400, "invalid_request")
    assert fake_wechat.calls == 0


def test_a_disabled_app_refuses_logins_clearly(client, services, fake_wechat, dynamodb):
    returning = log_in(client, "union-fay.1", APP_B)
    run_admin(services, "app", "disable", APP_B)
    response = post(client, "/auth/login", {"code": "union-fay.2", "appid": APP_B})
    assert_error(response, 400, "unauthorized_client")
    assert response.json_body["error_description"] == f"app {APP_B} is disabled"
    assert fake_wechat.calls == 1  # refused before WeChat: this container knew at once
    # sessions already issued live on (disabling stops new logins only)
    verdict = post(client, "/auth/verify", {"token": returning["access_token"]}).json_body
    assert verdict["valid"] is True
    run_admin(services, "app", "enable", APP_B)
    log_in(client, "union-fay.3", APP_B)


@pytest.fixture
def containers(settings, dynamodb, clock, fake_wechat):
    """Two containers (two service graphs) on one table, warm (each has read the apps), and an
    operator's `wxauth-admin` whose wait advances the shared clock."""
    from chalicelib import runtime

    def container(sleep=lambda _: None):
        return runtime.build(settings, dynamodb=dynamodb, clock=clock, sleep=sleep)

    one, two = container(), container()
    identity_fixtures.register_apps(one)
    for built in (one, two):
        built.apps.apps(fresh=True)
    return one, two, container(sleep=clock.advance)


@pytest.mark.parametrize("appid", [APP_B, TEST_APPID])
def test_disable_is_in_force_in_every_container_when_it_returns(containers, fake_wechat, appid):
    one, two, operator = containers
    one.login.login("union-gus.1", one.now(), appid)
    two.login.login("union-gus.2", two.now(), appid)  # both caches say enabled
    calls = fake_wechat.calls

    result = run_admin(operator, "app", "disable", appid)

    assert result == {"appid": appid, "enabled": False, "in_force_at": result["in_force_at"]}
    assert result["in_force_at"] <= operator.now()  # it waited until then
    for n, container in enumerate((one, two)):
        with pytest.raises(AppDisabled):
            container.login.login(f"union-gus.{3 + n}", container.now(), appid)
    assert fake_wechat.calls == calls  # refused before WeChat, in both containers

    run_admin(operator, "app", "enable", appid)
    two.login.login("union-gus.5", two.now(), appid)


def test_disable_no_wait_says_when_it_is_in_force(containers, fake_wechat, clock):
    one, two, operator = containers
    two.login.login("union-hal.1", two.now(), APP_B)
    result = run_admin(operator, "app", "disable", APP_B, "--no-wait")
    in_force = two.apps.in_force_after()
    assert result["in_force_at"] == operator.now() + in_force  # it did not wait
    # the other container's cache may still say enabled until then (its login was under way,
    # or it read the apps just before), never after
    two.login.login("union-hal.2", two.now(), APP_B)
    clock.advance(two.settings.apps_cache_ttl)
    with pytest.raises(AppDisabled):
        two.login.login("union-hal.3", two.now(), APP_B)


def test_no_login_transaction_touches_an_item_of_the_app(services, fake_wechat, dynamodb):
    """Every item a login's transaction writes or checks is its user's or its code's own: no
    two users' logins share one (issue #21; tests/integration/test_login_hot_keys.py)."""
    seen: list[list[str]] = []
    event = "before-parameter-build.dynamodb.TransactWriteItems"

    def record(params, **_):
        actions = [action for item in params["TransactItems"] for action in item.values()]
        keys = [action.get("Key") or action["Item"] for action in actions]
        seen.append([f"{key['pk']['S']}|{key['sk']['S']}" for key in keys])

    dynamodb.meta.events.register(event, record)
    try:
        for appid in (APP_B, TEST_APPID):
            run_admin(services, "app", "disable", appid)
            run_admin(services, "app", "enable", appid)  # the APP items exist
            for user in ("union-ida", "jon"):
                services.login.login(f"{user}-{appid}.1", START, appid)
    finally:
        dynamodb.meta.events.unregister(event, record)
    assert len(seen) == 4
    keys = [key for transaction in seen for key in transaction]
    assert len(keys) == len(set(keys))
    assert not [key for key in keys if key.startswith("APP|")]


def test_the_primary_app_can_be_disabled_too(services):
    run_admin(services, "app", "disable", TEST_APPID)
    with pytest.raises(AppDisabled):
        services.login.login("alice.1", START, TEST_APPID)
    with pytest.raises(RequestError):  # appid omitted: three apps are enabled still
        services.login.login("alice.1", START)


def test_a_wrong_app_secret_is_a_server_error_not_the_users(services, fake, client, log_lines):
    from chalicelib.identity.apps import App

    services.apps.add(App("wx-misconfigured", secret="not-the-secret"), now=START)
    fake._secrets["wx-misconfigured"] = "the-real-secret"
    response = post(client, "/auth/login", {"code": "alice.1", "appid": "wx-misconfigured"})
    assert_error(response, 500, "server_error")
    assert not [line for line in log_lines if "not-the-secret" in line or "alice.1" in line]


def test_unknown_app_is_a_request_error(services):
    with pytest.raises(UnknownApp):
        services.login.login("alice.1", START, "wx-nobody")


# -- unionid back-fill, pending links, merge ----------------------------------------------------


def test_a_unionid_that_appears_later_is_back_filled_and_linked(services, fake):
    fake._unbound.add(APP_B)  # app B is not bound to the open platform yet
    login = services.login
    before = login.login("union-hal.1", START, APP_B)
    identity = services.graph.get(APP_B, openid_for(APP_B, "union-hal"))
    assert identity.unionid is None
    fake.bind(APP_B)
    after = login.login("union-hal.2", START + 10, APP_B)
    assert after.tokens.user_id == before.tokens.user_id and after.is_new is False
    assert services.graph.get(APP_B, openid_for(APP_B, "union-hal")).unionid == unionid_for(
        "union-hal"
    )
    assert services.store.users.get(before.tokens.user_id).unionid == unionid_for("union-hal")
    # and the first login from another app joins that user
    other = login.login("union-hal.3", START + 20, TEST_APPID)
    assert other.tokens.user_id == before.tokens.user_id and other.is_new is False
    assert services.graph.pending() == []


def conflicting_users(services, fake):
    """X logs in with app A (bound: X owns the unionid); Y with app B, unbound; B is bound,
    and Y's next login carries the unionid X owns."""
    fake._unbound.add(APP_B)
    login = services.login
    x = login.login("union-ivy.1", START, TEST_APPID)
    y = login.login("union-ivy.2", START + 1, APP_B)
    assert x.tokens.user_id != y.tokens.user_id
    fake.bind(APP_B)
    y_again = login.login("union-ivy.3", START + 2, APP_B)
    return x, y, y_again


def test_a_link_that_would_join_two_users_is_pending_not_merged(services, fake, log_lines):
    x, y, y_again = conflicting_users(services, fake)
    assert y_again.tokens.user_id == y.tokens.user_id  # Y stays Y
    [pending] = services.graph.pending()
    assert (pending.unionid, pending.owner, pending.user_id, pending.appid) == (
        unionid_for("union-ivy"),
        x.tokens.user_id,
        y.tokens.user_id,
        APP_B,
    )
    metrics = [json.loads(line) for line in log_lines if "IdentityLinkPending" in line]
    assert len(metrics) == 1 and metrics[0]["IdentityLinkPending"] == 1
    [logged] = [json.loads(line) for line in log_lines if "identity_link_pending" in line]
    assert logged == {
        "event": "identity_link_pending",
        "owner": x.tokens.user_id,
        "user_id": y.tokens.user_id,
    }
    assert services.store.users.get(y.tokens.user_id).unionid is None  # not linked on the profile
    # a later login of Y records nothing more
    services.login.login("union-ivy.4", START + 3, APP_B)
    assert len(services.graph.pending()) == 1
    assert [p["user_id"] for p in run_admin(services, "user", "pending")] == [y.tokens.user_id]
    # a user's own: as the unionid's owner (X) or as the other user (Y); nobody else's
    for user_id in (x.tokens.user_id, y.tokens.user_id):
        listed = run_admin(services, "user", "pending", user_id)
        assert [(p["owner"], p["user_id"]) for p in listed] == [
            (x.tokens.user_id, y.tokens.user_id)
        ]
    assert run_admin(services, "user", "pending", "N" * 22) == []


def test_admin_merge_moves_the_identities_and_ends_the_absorbed_sessions(services, fake):
    x, y, y_again = conflicting_users(services, fake)
    result = run_admin(
        services, "user", "merge", "--into", x.tokens.user_id, "--from", y.tokens.user_id
    )
    assert result["sessions_revoked"] == 2 and result["pending_resolved"] == 1
    assert services.graph.pending() == []
    # Y's sessions are over
    from chalicelib.errors import GrantError

    with pytest.raises(GrantError):
        services.sessions.refresh(y_again.tokens.refresh_token, START + 10)
    # app B's identity is X's now; X's sessions live on
    again = services.login.login("union-ivy.9", START + 20, APP_B)
    assert again.tokens.user_id == x.tokens.user_id and again.is_new is False
    services.sessions.refresh(x.tokens.refresh_token, START + 20)
    listed = services.graph.identities_of(services.store.users.get(x.tokens.user_id))
    assert {i.appid for i in listed} == {TEST_APPID, APP_B}
    # recorded on both profiles
    items = {(i["pk"]["S"], i["sk"]["S"]): i for i in table_items(services.store.client)}
    absorbed = items[(f"USER#{y.tokens.user_id}", "PROFILE")]
    kept = items[(f"USER#{x.tokens.user_id}", "PROFILE")]
    assert absorbed["merged_into"]["S"] == x.tokens.user_id
    assert kept["merged_from"]["SS"] == [y.tokens.user_id]
    # merging the other way round is refused, with nothing written
    before = table_items(services.store.client)
    with pytest.raises(AdminError):
        run_admin(services, "user", "merge", "--into", y.tokens.user_id, "--from", x.tokens.user_id)
    assert table_items(services.store.client) == before
    # the same merge again moves what is left: nothing
    again = run_admin(
        services, "user", "merge", "--into", x.tokens.user_id, "--from", y.tokens.user_id
    )
    assert again["identities"] == [] and again["sessions_revoked"] == 0


# -- concurrency (deterministic interleavings on moto; threads: tests/integration) --------------


@pytest.mark.parametrize("order", [(TEST_APPID, APP_B), (APP_B, TEST_APPID)])
def test_first_logins_of_two_apps_racing_on_the_unionid_make_one_user(services, order):
    """The second app's login read the unionid's partition before the first claimed it:
    its guarded Put of OWNER loses, and it joins the winner's user."""
    identities = services.store.identities
    real_read = identities.unionid
    stale: list[list] = []
    first, second = order

    def read_before_the_other_claimed(unionid):
        if not stale:
            stale.append([])
            services.login.login("union-jo.1", START, first)  # the other request, meanwhile
            return None, []  # what the read saw: no owner, no link
        return real_read(unionid)

    identities.unionid = read_before_the_other_claimed  # type: ignore[method-assign]
    try:
        late = services.login.login("union-jo.2", START, second)
    finally:
        identities.unionid = real_read  # type: ignore[method-assign]
    winner = user_id_for(first, openid_for(first, "union-jo"))
    assert late.tokens.user_id == winner
    profiles = [i for i in table_items(services.store.client) if i["sk"]["S"] == "PROFILE"]
    assert [p["user_id"]["S"] for p in profiles] == [winner]


# -- request budget -----------------------------------------------------------------------------


def test_a_returning_user_of_a_second_app_is_three_requests(services, dynamodb_requests):
    services.login.login("union-kim.1", START, TEST_APPID)
    services.login.login("union-kim.2", START, APP_B)
    dynamodb_requests.clear()
    # within CACHE_SECONDS: app B's breaker read (amortized, tests/wechat/test_breaker.py) is
    # not due
    services.login.login("union-kim.3", START + 1, APP_B)
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems"]


def test_me_reads_the_session_the_profile_and_the_identities(client, dynamodb_requests):
    tokens = log_in(client, "union-lee.1", APP_B)
    dynamodb_requests.clear()
    me(client, tokens["access_token"])
    assert dynamodb_requests == ["GetItem", "GetItem", "Query"]


def test_the_app_list_never_shows_a_secret(services):
    listed = json.dumps(run_admin(services, "app", "list"))
    for secret in ("secret-of-app-b", "secret-of-official", "test-app-secret"):
        assert secret not in listed
    assert {a["appid"] for a in json.loads(listed)} == {TEST_APPID, APP_B, APP_OA, APP_MOBILE}


def test_oauth_refresh_names_the_app_the_session_belongs_to(client, services):
    from urllib.parse import urlencode

    b = log_in(client, "union-max.1", APP_B)

    def refresh(token, client_id):
        return client.http.post(
            "/oauth/token",
            headers={"content-type": "application/x-www-form-urlencoded"},
            body=urlencode(
                {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
            ),
        )

    assert_error(refresh(b["refresh_token"], APP_OA), 400, "invalid_grant")  # not its app
    ok = refresh(b["refresh_token"], "shop-b")  # app B's client_id
    assert ok.status_code == 200, ok.json_body
    assert claims_of(ok.json_body["access_token"])["client_id"] == "shop-b"


@pytest.mark.parametrize("appid", [APP_B, APP_OA])
def test_every_app_s_logins_count_against_the_per_openid_limit(
    client, settings, dynamodb, clock, fake_wechat, monkeypatch, appid
):
    """A registered app's client is the primary's kind of login client: its jscode2session goes
    through its own breaker, and both exchanges count against AUTH_LIMIT_LOGIN_PER_OPENID."""
    import dataclasses

    from chalicelib import runtime
    from chalicelib.limits import Limit

    limited = dataclasses.replace(settings, limit_login_per_openid=Limit(1, 60))
    built = runtime.build(limited, dynamodb=dynamodb, clock=clock, sleep=lambda _: None)
    monkeypatch.setattr("app._services", built)
    log_in(client, "union-erin.1", appid)
    refused = post(client, "/auth/login", {"code": "union-erin.2", "appid": appid})
    assert_error(refused, 429, "slow_down")
    assert int(refused.headers["Retry-After"]) > 0
    assert type(built.apps.wechat(built.apps.resolve(appid))).__name__ == "GuardedWeChat"


def test_each_app_has_its_own_breaker_shared_by_every_container(
    client, services, settings, dynamodb, clock, fake_wechat
):
    """WeChat failing (-1) on app B's jscode2session opens app B's breaker once the failures
    pass the threshold: app B's next login is refused without calling WeChat, in this container
    and (at its next read, CACHE_SECONDS later) in another one, while the primary app's logins
    go on. App B's 45011 (one user's limit) opens nothing."""
    from chalicelib import runtime
    from chalicelib.errors import WeChatUnavailable
    from chalicelib.wechat.breaker import CACHE_SECONDS

    other = runtime.build(settings, dynamodb=dynamodb, clock=clock, sleep=lambda _: None)
    other.login.login("erin.0", services.now(), APP_B)  # a warm container of app B's
    log_in(client, "erin.1", APP_B)
    clock.advance(CACHE_SECONDS)
    log_in(client, "erin.2", APP_B)  # this container has read app B's breaker: it reports
    other.login.login("erin.3", services.now(), APP_B)
    limited = post(client, "/auth/login", {"code": "err-45011.1", "appid": APP_B})
    assert_error(limited, 429, "slow_down")
    for n in range(20):
        tripped = post(client, "/auth/login", {"code": f"err--1.{n}", "appid": APP_B})
        assert_error(tripped, 503, "temporarily_unavailable")
    clock.advance(CACHE_SECONDS)
    calls = fake_wechat.calls
    refused = post(client, "/auth/login", {"code": "erin.4", "appid": APP_B})  # reports: trips
    assert_error(refused, 503, "temporarily_unavailable")
    assert fake_wechat.calls == calls  # refused before WeChat
    log_in(client, "erin.5", TEST_APPID)  # the primary app's breaker is closed
    clock.advance(CACHE_SECONDS)
    calls = fake_wechat.calls
    with pytest.raises(WeChatUnavailable):
        other.login.login("erin.6", services.now(), APP_B)
    assert fake_wechat.calls == calls


# -- the profile's claims across apps (issue 25, item 4) ----------------------------------------


@pytest.fixture
def profile_client(request, settings, dynamodb, clock, fake_wechat, monkeypatch):
    """The four apps, with the settings a test names (`indirect` parametrization)."""
    import dataclasses

    from chalice.test import Client

    import app
    from chalicelib import runtime

    changed = dataclasses.replace(settings, **request.param)
    built = runtime.build(changed, dynamodb=dynamodb, clock=clock, sleep=lambda _: None)
    identity_fixtures.register_apps(built)
    monkeypatch.setattr(app, "_services", built)
    with Client(app.app) as test_client:
        yield test_client


@pytest.mark.parametrize("profile_client", [{"profile_claim": True}], indirect=True)
def test_a_first_login_in_another_app_carries_the_profile(profile_client, dynamodb_requests):
    claim_client = profile_client
    a = log_in(claim_client, "union-carol.1", TEST_APPID)
    headers = {"content-type": "application/json", **bearer(a["access_token"])}
    body = json.dumps({"nickname": "卡萝"})
    assert claim_client.http.patch("/me", headers=headers, body=body).status_code == 200

    b = log_in(claim_client, "union-carol.2", APP_B)  # a new identity, from the profile
    assert b["user"]["id"] == a["user"]["id"]
    assert claims_of(b["access_token"])["nickname"] == "卡萝"
    dynamodb_requests.clear()
    again = log_in(claim_client, "union-carol.3", APP_B)  # returning: from its identity
    assert claims_of(again["access_token"])["nickname"] == "卡萝"
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems"]


@pytest.mark.parametrize("profile_client", [{"profile_security_check": True}], indirect=True)
def test_with_the_check_on_an_official_accounts_session_sets_no_nickname(profile_client, dynamodb):
    web = log_in(profile_client, "union-dan.1", APP_OA)
    headers = {"content-type": "application/json", **bearer(web["access_token"])}
    before = table_items(dynamodb)
    refused = profile_client.http.patch("/me", headers=headers, body=json.dumps({"nickname": "d"}))
    assert_error(refused, 400, "invalid_request")
    assert "mini-program" in refused.json_body["error_description"]
    assert table_items(dynamodb) == before
    avatar = json.dumps({"avatar_url": "https://wx.qlogo.cn/a.png"})  # no text: nothing to check
    assert profile_client.http.patch("/me", headers=headers, body=avatar).status_code == 200
