"""`wxauth-admin user merge`'s guardrails (issue #22, item 3): a reason to merge (a pending link,
a shared unionid, or `--force --reason`), no banned user, who ran it and why (the profile, a
log line, the `UserMerged` event), and no login of a merged-away profile afterwards."""

from __future__ import annotations

import json

import pytest

from chalicelib import admin
from chalicelib.cli import mask, option_strings
from chalicelib.errors import AdminError
from chalicelib.store import UserRecord
from devserver.fake_wechat import openid_for, unionid_for
from tests.conftest import START, TEST_APPID, table_items
from tests.http import assert_error, post
from tests.identity import fixtures as identity_fixtures
from tests.identity.fixtures import APP_B, APP_OA

fake = identity_fixtures.fake
fake_wechat = identity_fixtures.fake_wechat
services = identity_fixtures.services


def run_admin(services, *argv):
    top = admin.parser()
    args = top.parse_args(mask(list(argv), option_strings(top)))  # ids may begin with "-"
    return admin.TABLE_GROUPS[args.group].run(args, services, services.now())


def merge(services, into, source, *extra):
    return run_admin(services, "user", "merge", "--into", into, "--from", source, *extra)


def two_strangers(services):
    """Two users with nothing in common: no unionid, no pending link."""
    a = services.login.login("amy.1", START, TEST_APPID).tokens.user_id
    b = services.login.login("ben.1", START, APP_B).tokens.user_id
    return a, b


def linked_pair(services, fake, name):
    """X owns the unionid (app A); Y's app-B identity carries it later: a pending link."""
    fake._unbound.add(APP_B)
    x = services.login.login(f"union-{name}.1", START, TEST_APPID).tokens.user_id
    y = services.login.login(f"union-{name}.2", START + 1, APP_B).tokens.user_id
    fake.bind(APP_B)
    services.login.login(f"union-{name}.3", START + 2, APP_B)
    return x, y


# -- a reason to merge -----------------------------------------------------------------------------


def test_two_users_without_a_link_are_not_merged(services):
    a, b = two_strangers(services)
    before = table_items(services.store.client)
    with pytest.raises(AdminError, match="no pending link and no shared unionid"):
        merge(services, a, b)
    assert table_items(services.store.client) == before


def test_force_needs_a_reason(services):
    a, b = two_strangers(services)
    before = table_items(services.store.client)
    with pytest.raises(AdminError, match="--reason"):
        merge(services, a, b, "--force")
    assert table_items(services.store.client) == before


@pytest.mark.parametrize("reason", ["", "x" * 201, "line\nbreak"])
def test_a_bad_reason_is_a_bad_argument(services, capsys, reason):
    with pytest.raises(SystemExit) as exit_:
        admin.parser().parse_args(
            ["user", "merge", "--into", "A" * 22, "--from", "B" * 22, "--force", "--reason", reason]
        )
    assert exit_.value.code == 2


def test_force_with_a_reason_merges_and_records_who_and_why(services, log_lines):
    a, b = two_strangers(services)
    result = merge(
        services, a, b, "--force", "--reason", "ticket 42: same person", "--operator", "alice"
    )
    assert (result["into"], result["from"], result["forced"]) == (a, b, True)
    assert result["operator"] == "alice"
    assert result["caller"].startswith("arn:aws:")  # sts get-caller-identity (moto's)
    items = {(i["pk"]["S"], i["sk"]["S"]): i for i in table_items(services.store.client)}
    absorbed = items[(f"USER#{b}", "PROFILE")]
    assert absorbed["merged_into"]["S"] == a
    assert absorbed["merge_reason"]["S"] == "ticket 42: same person"
    assert absorbed["merged_by"]["S"] == f"alice ({result['caller']})"
    [line] = [json.loads(line) for line in log_lines if '"user_merged"' in line]
    assert line["into"] == a and line["from_user_id"] == b and line["forced"] is True
    assert (line["operator"], line["reason"]) == ("alice", "ticket 42: same person")
    assert line["caller"] == result["caller"]
    # a login through B's app is A's now
    assert services.login.login("ben.2", START + 5, APP_B).tokens.user_id == a


def test_a_pending_link_is_reason_enough(services, fake):
    x, y = linked_pair(services, fake, "kay")
    result = merge(services, x, y)
    assert result["forced"] is False and result["pending_resolved"] == 1


def test_a_shared_unionid_is_reason_enough(services):
    """Two users carrying one unionid (data from before pending links): no --force needed."""
    x = services.login.login("union-lou.1", START, TEST_APPID).tokens.user_id
    legacy = "L" * 22
    services.store.users.upsert(
        UserRecord(legacy, APP_B, "o-legacy", unionid_for("union-lou"), START)
    )
    result = merge(services, x, legacy)
    assert result["forced"] is False


# -- bans -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("banned", ["into", "from"])
def test_a_banned_user_is_never_merged_even_forced(services, fake, banned):
    x, y = linked_pair(services, fake, f"max-{banned}")
    run_admin(services, "user", "ban", x if banned == "into" else y)
    before = table_items(services.store.client)
    with pytest.raises(AdminError, match="banned"):
        merge(services, x, y, "--force", "--reason", "anyway")
    assert table_items(services.store.client) == before


def test_a_ban_between_the_merges_read_and_its_transaction_refuses_it(services, fake):
    x, y = linked_pair(services, fake, "ned")
    users = services.store.users
    read = users.get

    def read_then_banned(user_id):
        profile = read(user_id)
        if user_id == y:
            users.ban(y, now=START + 3, reason=None)
        return profile

    users.get = read_then_banned  # type: ignore[method-assign]
    try:
        with pytest.raises(AdminError):
            merge(services, x, y)
    finally:
        users.get = read  # type: ignore[method-assign]
    assert users.get(y).merged_into is None


# -- the merged-away profile takes no login ----------------------------------------------


def test_a_login_racing_the_merge_gets_the_kept_users_session(services, fake):
    """The login resolved Y's identity before the merge moved it; its transaction refuses Y
    (merged away), and the identity now points at X: the session is X's."""
    x, y = linked_pair(services, fake, "oda")
    graph = services.graph
    resolve = graph.resolve

    def resolve_then_merged(app, wx, now):
        resolved = resolve(app, wx, now)
        graph.resolve = resolve  # type: ignore[method-assign]
        merge(services, x, y)
        return resolved

    graph.resolve = resolve_then_merged  # type: ignore[method-assign]
    result = services.login.login("union-oda.4", START + 5, APP_B)
    assert result.tokens.user_id == x
    sessions = [s for s in services.store.sessions.of_user(y) if s.is_live(START + 5)]
    assert sessions == []


def test_an_identity_the_merge_did_not_move_is_refused_clearly(client, services, fake, log_lines):
    """An identity item of Y that the merge did not find (made by a login that crashed before
    its transaction, so not listed): its login is refused (403), no session is made for Y; the
    identity is listed, so that the merge run again moves it."""
    x, y = linked_pair(services, fake, "pia")
    orphan = openid_for(APP_B, "pia-orphan")
    from chalicelib.store.identities import Identity

    services.store.identities.create(Identity(APP_B, orphan, y, created_at=START))
    merge(services, x, y)
    before = [s.session_id for s in services.store.sessions.of_user(y)]
    response = post(client, "/auth/login", {"code": "pia-orphan.1", "appid": APP_B})
    assert_error(response, 403, "access_denied")
    assert "merged" in response.json_body["error_description"]
    assert [s.session_id for s in services.store.sessions.of_user(y)] == before
    [line] = [json.loads(line) for line in log_lines if '"login_of_merged_user"' in line]
    assert (line["user_id"], line["merged_into"], line["appid"]) == (y, x, APP_B)
    # the operator runs the merge again: the straggler moves, and its next login is X's
    again = merge(services, x, y)
    assert [i["openid"] for i in again["identities"]] == [orphan]
    assert services.login.login("pia-orphan.2", START + 9, APP_B).tokens.user_id == x


def test_a_first_login_that_read_the_unionid_owner_before_the_merge_joins_the_kept_user(
    services, fake
):
    """A new identity (a third app) whose unionid's owner the login read as X, merged into Y
    meanwhile: the new identity is Y's (the profile the login's write returns says where X
    went), and so is the session."""
    x, y = linked_pair(services, fake, "quin")
    owners = services.store.identities
    read = owners.unionid

    def owner_read_then_merged(unionid):
        found = read(unionid)
        owners.unionid = read  # type: ignore[method-assign]
        merge(services, y, x)  # the pending link's pair, the other way round
        return found

    owners.unionid = owner_read_then_merged  # type: ignore[method-assign]
    try:
        result = services.login.login("union-quin.4", START + 5, APP_OA)
    finally:
        owners.unionid = read  # type: ignore[method-assign]
    assert result.tokens.user_id == y
    assert services.graph.get(APP_OA, openid_for(APP_OA, "union-quin")).user_id == y
