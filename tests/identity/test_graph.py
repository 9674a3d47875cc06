"""The identity graph's requests on every store backend (moto, and DynamoDB Local: its
expression and transaction checks are the real service's)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib import runtime
from chalicelib.errors import MergeRefused
from chalicelib.identity.graph import Identity
from devserver.fake_wechat import unionid_for
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
    result = graph_services.graph.merge(x.tokens.user_id, y.tokens.user_id, now=START + 3)
    assert result["pending_resolved"] == 1
    assert login.login("union-ned.4", START + 4, APP_B).tokens.user_id == x.tokens.user_id
    with pytest.raises(MergeRefused):
        graph_services.graph.merge(x.tokens.user_id, y.tokens.user_id, now=START + 5)


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
    result = graph.merge(x, y, now=START + 3)
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
    assert graph.merge(x, y, now=START + 3)["pending_resolved"] == 1
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
    assert graph_services.graph.merge(x, y, now=START + 3)["pending_resolved"] == 1
    assert sum(read) <= 12, read
    assert len(graph_services.graph.pending()) == 50  # the others are untouched
