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
