"""First logins from two apps with one unionid, at the same moment, on the real engine
(DynamoDB Local: moto's conditional writes are not atomic across threads): exactly one user."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import runtime
from chalicelib.store import create_table
from tests.conftest import START, TEST_APPID
from tests.identity import fixtures as identity_fixtures
from tests.identity.fixtures import APP_B, APP_OA
from tests.integration.dynamodb_local import dynamodb_client

pytestmark = pytest.mark.integration

fake = identity_fixtures.fake
fake_wechat = identity_fixtures.fake_wechat


@pytest.fixture
def local_services(settings, dynamodb_local_endpoint, clock, fake_wechat):
    from dataclasses import replace

    client = dynamodb_client(dynamodb_local_endpoint)
    table = f"wxauth-identity-{uuid.uuid4().hex[:12]}"
    create_table(client, table)
    built = runtime.build(
        replace(settings, table_name=table), dynamodb=client, clock=clock, sleep=lambda _: None
    )
    identity_fixtures.register_apps(built)
    try:
        yield built
    finally:
        client.delete_table(TableName=table)


@pytest.mark.parametrize("apps", [(TEST_APPID, APP_B), (APP_B, TEST_APPID), (APP_OA, APP_B)])
def test_concurrent_first_logins_across_apps_make_one_user(local_services, apps):
    users = [f"union-race{i}" for i in range(6)]
    barrier = threading.Barrier(2)

    def log_in(user: str, n: int):
        barrier.wait(10)
        return local_services.login.login(f"{user}.{n}", START, apps[n])

    with ThreadPoolExecutor(2) as pool:
        for user in users:
            first, second = pool.submit(log_in, user, 0), pool.submit(log_in, user, 1)
            a, b = first.result(30), second.result(30)
            assert a.tokens.user_id == b.tokens.user_id, user
            assert sorted([a.is_new, b.is_new]) == [False, True], user
    store = local_services.store
    profiles = [
        item
        for item in store.client.scan(TableName=store.table_name, ConsistentRead=True)["Items"]
        if item["sk"]["S"] == "PROFILE"
    ]
    assert len(profiles) == len(users)
