"""The identity graph's requests on every store backend (moto, and DynamoDB Local: its
expression and transaction checks are the real service's)."""

from __future__ import annotations

from dataclasses import replace

import jwt
import pytest

from chalicelib import runtime
from chalicelib.errors import MergedAway, MergeRefused
from chalicelib.identity.graph import Identity
from chalicelib.tokens import claims
from devserver.fake_wechat import openid_for, unionid_for
from tests.conftest import START, TEST_APPID
from tests.identity import fixtures as identity_fixtures
from tests.identity.fixtures import APP_B
from tests.store import records

backend = records.backend  # the moto / DynamoDB Local fixture
fake = identity_fixtures.fake
fake_wechat = identity_fixtures.fake_wechat


@pytest.fixture
def graph_services(backend, settings, clock, fake_wechat) -> runtime.Services:
    built = runtime.build(
        replace(settings, table_name=backend.table),
        dynamodb=backend.client,
        clock=clock,
        sleep=lambda _: None,
    )
    identity_fixtures.register_apps(built)
    return built


def test_create_returns_the_winner_of_a_race(graph_services):
    identities = graph_services.store.identities
    first = identities.create(Identity(APP_B, "o-1", "user-first", created_at=START))
    second = identities.create(Identity(APP_B, "o-1", "user-second", created_at=START + 1))
    assert first.user_id == second.user_id == "user-first"


def test_the_unionid_owner_is_claimed_once(graph_services):
    graph = graph_services.graph
    assert graph.owner_of("u-1", candidate="user-a", now=START) == "user-a"
    assert graph.owner_of("u-1", candidate="user-b", now=START) == "user-a"


def test_login_pending_and_merge(graph_services, fake):
    fake._unbound.add(APP_B)
    login = graph_services.login
    x = login.login("union-ned.1", START, TEST_APPID)
    y = login.login("union-ned.2", START + 1, APP_B)
    fake.bind(APP_B)
    login.login("union-ned.3", START + 2, APP_B)
    [pending] = graph_services.graph.pending()
    assert pending.unionid == unionid_for("union-ned")
    graph = graph_services.graph
    result = graph.merge(x.tokens.user_id, y.tokens.user_id, now=START + 3, merged_by="test")
    assert result["pending_resolved"] == 1
    assert login.login("union-ned.4", START + 4, APP_B).tokens.user_id == x.tokens.user_id
    with pytest.raises(MergeRefused):  # the other way round: X is not merged away
        graph.merge(y.tokens.user_id, x.tokens.user_id, now=START + 5, merged_by="test")
    # the same merge again moves what Y still has: nothing
    again = graph.merge(x.tokens.user_id, y.tokens.user_id, now=START + 5, merged_by="test")
    assert again["identities"] == [] and again["forced"] is False


# -- pending links, keyed per unionid (issue 21) -------------------------------------------------


def conflict(services, fake, name: str):
    """X logs in with the primary app (X owns the unionid), Y with app B unbound; B is bound,
    and Y's next login carries X's unionid: a pending link (Y's identity, X's unionid)."""
    fake._unbound.add(APP_B)
    login = services.login
    x = login.login(f"{name}.1", START, TEST_APPID)
    y = login.login(f"{name}.2", START + 1, APP_B)
    fake.bind(APP_B)
    login.login(f"{name}.3", START + 2, APP_B)
    return x.tokens.user_id, y.tokens.user_id


def raw_items(backend) -> dict[tuple[str, str], dict]:
    return {(i["pk"]["S"], i["sk"]["S"]): i for i in backend.items()}


def test_a_pending_link_lives_in_its_unionids_partition(graph_services, fake, backend):
    x, y = conflict(graph_services, fake, "union-pia")
    unionid = unionid_for("union-pia")
    items = raw_items(backend)
    link = items[(f"UNIONID#{unionid}", f"PENDING#{y}")]
    assert (link["owner"]["S"], link["user_id"]["S"], link["appid"]["S"]) == (x, y, APP_B)
    assert not [key for key in items if key[0] == "PENDING"]  # no shared partition any more
    graph = graph_services.graph
    for user_id in (x, y, None):
        [pending] = graph.pending(user_id=user_id)
        assert (pending.unionid, pending.owner, pending.user_id) == (unionid, x, y)
    assert graph.pending(user_id="nobody" + "n" * 16) == []
    result = graph.merge(x, y, now=START + 3, merged_by="test")
    assert result["pending_resolved"] == 1
    resolved = raw_items(backend)[(f"UNIONID#{unionid}", f"PENDING#{y}")]
    assert resolved["resolution"]["S"] == "merged" and resolved["merged_into"]["S"] == x
    assert graph.pending() == [] and graph.pending(user_id=x) == []
    assert len(graph.pending(include_resolved=True)) == 1


def as_legacy(backend, unionid: str, user_id: str) -> None:
    """Move a pending link to where earlier releases kept it: `PENDING`/`LINK#<u>#<user>`."""
    key = {"pk": {"S": f"UNIONID#{unionid}"}, "sk": {"S": f"PENDING#{user_id}"}}
    item = backend.client.get_item(TableName=backend.table, Key=key, ConsistentRead=True)["Item"]
    backend.client.delete_item(TableName=backend.table, Key=key)
    item.update(pk={"S": "PENDING"}, sk={"S": f"LINK#{unionid}#{user_id}"})
    backend.client.put_item(TableName=backend.table, Item=item)


def test_pending_links_of_earlier_releases_are_still_listed_and_resolved(
    graph_services, fake, backend
):
    x, y = conflict(graph_services, fake, "union-quin")
    unionid = unionid_for("union-quin")
    as_legacy(backend, unionid, y)
    graph = graph_services.graph
    for user_id in (x, y, None):
        [pending] = graph.pending(user_id=user_id)
        assert (pending.unionid, pending.owner, pending.user_id) == (unionid, x, y)
    assert graph.merge(x, y, now=START + 3, merged_by="test")["pending_resolved"] == 1
    legacy = raw_items(backend)[("PENDING", f"LINK#{unionid}#{y}")]
    assert legacy["resolution"]["S"] == "merged" and legacy["merged_into"]["S"] == x
    assert graph.pending() == []


def test_a_merge_reads_only_its_own_users_pending_links(graph_services, fake, backend):
    """Fifty other users' pending links (legacy and new): a merge used to read them all (one
    shared partition), now only those of its two users' unionids."""
    from tests.conftest import items_read_by_queries

    identities = graph_services.store.identities
    from chalicelib.store.identities import PendingLink

    for i in range(25):
        identities.add_pending(PendingLink(f"u-{i}", f"own-{i}", f"usr-{i}", APP_B, "o", START))
    for i in range(25, 50):
        identities.add_pending(PendingLink(f"u-{i}", f"own-{i}", f"usr-{i}", APP_B, "o", START))
        as_legacy(backend, f"u-{i}", f"usr-{i}")
    x, y = conflict(graph_services, fake, "union-rex")
    read = items_read_by_queries(backend.client)
    merged = graph_services.graph.merge(x, y, now=START + 3, merged_by="test")
    assert merged["pending_resolved"] == 1
    assert sum(read) <= 12, read
    assert len(graph_services.graph.pending()) == 50  # the others are untouched


# -- custom claims through identities (issue #22, item 2) ----------------------------------------


def ext_of(result) -> dict | None:
    """The `ext` claim of a login's access token (None: it has none)."""
    return jwt.decode(result.tokens.access_token, options={"verify_signature": False}).get("ext")


def test_a_second_apps_identity_carries_the_users_claims(graph_services):
    """The first login through app B makes B's identity for an existing user: that identity
    and every later login through it carry the user's claims (roles must not vanish)."""
    login = graph_services.login
    first = login.login("union-pat.1", START, TEST_APPID)
    user_id = first.tokens.user_id
    claims.set_claims(graph_services.store, user_id, {"roles": ["editor"]}, now=START)
    joined = login.login("union-pat.2", START + 1, APP_B)
    assert (joined.tokens.user_id, joined.is_new) == (user_id, False)
    assert ext_of(joined) == {"roles": ["editor"]}
    again = login.login("union-pat.3", START + 2, APP_B)  # returning through app B
    assert ext_of(again) == {"roles": ["editor"]}
    stored = graph_services.graph.get(APP_B, openid_for(APP_B, "union-pat"))
    assert stored.custom_claims == '{"roles":["editor"]}'


def test_a_first_login_of_a_user_without_claims_stores_none(graph_services):
    login = graph_services.login
    login.login("union-quy.1", START, TEST_APPID)
    joined = login.login("union-quy.2", START + 1, APP_B)
    assert ext_of(joined) is None
    assert graph_services.graph.get(APP_B, openid_for(APP_B, "union-quy")).custom_claims is None


def merged_pair(services, fake, name: str):
    """X (app A, owns the unionid) and Y (app B, unbound then bound: a pending link)."""
    fake._unbound.add(APP_B)
    login = services.login
    x = login.login(f"union-{name}.1", START, TEST_APPID)
    y = login.login(f"union-{name}.2", START + 1, APP_B)
    fake.bind(APP_B)
    login.login(f"union-{name}.3", START + 2, APP_B)  # the pending link
    return x.tokens.user_id, y.tokens.user_id


@pytest.mark.parametrize("kept", [{"roles": ["viewer"]}, None])
def test_a_merge_gives_the_moved_identities_the_kept_users_claims(graph_services, fake, kept):
    """B's claims never reach A's sessions through B's identities after `merge --into A`."""
    into, source = merged_pair(graph_services, fake, "rex")
    store = graph_services.store
    claims.set_claims(store, source, {"roles": ["admin"]}, now=START + 3)
    if kept is not None:
        claims.set_claims(store, into, kept, now=START + 3)
    graph_services.graph.merge(into, source, now=START + 4, merged_by="test")
    again = graph_services.login.login("union-rex.4", START + 5, APP_B)
    assert again.tokens.user_id == into
    assert ext_of(again) == kept
    moved = graph_services.graph.get(APP_B, openid_for(APP_B, "union-rex"))
    assert moved.custom_claims == (claims.dumps(kept) if kept else None)


def test_a_merge_that_read_the_kept_users_claims_before_they_changed_is_refused(
    graph_services, fake
):
    """set-claims on the kept user between the merge's read and its transaction: the moved
    identities would carry the old claims, so nothing is merged (run it again)."""
    into, source = merged_pair(graph_services, fake, "sam")
    graph = graph_services.graph
    users = graph_services.store.users
    read = users.get

    def read_then_claims_change(user_id):
        profile = read(user_id)
        if user_id == into:
            claims.set_claims(graph_services.store, into, {"roles": ["new"]}, now=START + 3)
        return profile

    users.get = read_then_claims_change  # type: ignore[method-assign]
    try:
        with pytest.raises(MergeRefused):
            graph.merge(into, source, now=START + 4, merged_by="test")
    finally:
        users.get = read  # type: ignore[method-assign]
    assert users.get(source).merged_into is None
    graph.merge(into, source, now=START + 5, merged_by="test")  # again, with what it reads now
    again = graph_services.login.login("union-sam.4", START + 6, APP_B)
    assert ext_of(again) == {"roles": ["new"]}


# -- a merged-away profile takes no login (issue #22, item 3) -------------------------------------


def test_the_logins_transaction_refuses_a_merged_away_profile(graph_services, fake):
    """An identity of Y that the merge did not move (a crash left it unlisted): its login is
    refused by the transaction's check of Y's profile, no session is made; the identity is
    listed, and the merge run again moves it."""
    into, source = merged_pair(graph_services, fake, "tia")
    orphan = openid_for(APP_B, "tia-orphan")
    graph_services.store.identities.create(Identity(APP_B, orphan, source, created_at=START))
    graph = graph_services.graph
    graph.merge(into, source, now=START + 3, merged_by="test")
    sessions = graph_services.store.sessions
    before = [s.session_id for s in sessions.of_user(source)]
    with pytest.raises(MergedAway) as refused:
        graph_services.login.login("tia-orphan.1", START + 4, APP_B)
    assert (refused.value.user_id, refused.value.merged_into) == (source, into)
    assert [s.session_id for s in sessions.of_user(source)] == before
    again = graph.merge(into, source, now=START + 5, merged_by="test")
    assert [i["openid"] for i in again["identities"]] == [orphan]
    assert graph_services.login.login("tia-orphan.2", START + 6, APP_B).tokens.user_id == into
