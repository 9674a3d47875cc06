"""Logins of one app from many threads at once, on the real engine (DynamoDB Local): no item
that every login of the app touches, so no transaction cancels another (`TransactionConflict`).

Before issue #21 every login's transaction checked the app's `APP` item, and concurrent
transactions on one item cancel each other (DynamoDB's "Transaction conflict handling": "an
item within a TransactWriteItems request is part of another ongoing TransactWriteItems
request"). DynamoDB Local runs one transaction at a time, so it never answers
TransactionConflict, even for two updates of one item (tried): the test therefore also asserts
what makes a conflict impossible on DynamoDB itself, that no two logins' transactions share an
item.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from chalicelib import runtime
from chalicelib.store import create_table
from tests.conftest import START, TEST_APPID
from tests.integration.dynamodb_local import dynamodb_client

pytestmark = pytest.mark.integration

THREADS = 8
LOGINS_PER_THREAD = 25


class Transactions:
    """Every attempt of every TransactWriteItems, the cancellation reasons of those DynamoDB
    cancelled (botocore's `needs-retry` event: once per attempt, retried or not), and the items
    (pk, sk) each transaction names."""

    def __init__(self, client: Any) -> None:
        self.attempts = 0
        self.reasons: list[str] = []
        self.items: list[list[tuple[str, str]]] = []
        self._lock = threading.Lock()
        client.meta.events.register("needs-retry.dynamodb.TransactWriteItems", self._seen)
        client.meta.events.register(
            "before-parameter-build.dynamodb.TransactWriteItems", self._sent
        )

    def _sent(self, params: dict[str, Any], **_: Any) -> None:
        actions = [action for item in params["TransactItems"] for action in item.values()]
        keys = [action.get("Key") or action["Item"] for action in actions]
        with self._lock:
            self.items.append([(key["pk"]["S"], key["sk"]["S"]) for key in keys])

    def _seen(self, response: Any = None, **_: Any) -> None:
        with self._lock:
            self.attempts += 1
            if response is not None:
                for reason in response[1].get("CancellationReasons", []) or []:
                    if reason.get("Code") not in (None, "None"):
                        self.reasons.append(reason["Code"])


@pytest.fixture
def local_services(settings, dynamodb_local_endpoint, clock, wechat):
    client = dynamodb_client(dynamodb_local_endpoint, max_pool_connections=THREADS * 2)
    table = f"wxauth-hot-{uuid.uuid4().hex[:12]}"
    create_table(client, table)
    built = runtime.build(
        replace(settings, table_name=table), dynamodb=client, clock=clock, sleep=lambda _: None
    )
    try:
        yield built
    finally:
        client.delete_table(TableName=table)


@pytest.mark.parametrize("disabled_before", [False, True], ids=["never-disabled", "re-enabled"])
def test_logins_of_one_app_from_many_threads_never_conflict(
    local_services, wechat, disabled_before
):
    if disabled_before:  # the primary app's `APP` item exists once it was disabled
        assert local_services.apps.set_enabled(TEST_APPID, False, now=START)
        assert local_services.apps.set_enabled(TEST_APPID, True, now=START)
    local_services.login.login(f"warm-{uuid.uuid4().hex[:6]}", START)  # the lazy graph, built
    transactions = Transactions(local_services.store.client)
    barrier = threading.Barrier(THREADS)

    def log_in(thread: int) -> list[str]:
        barrier.wait(30)
        return [
            local_services.login.login(f"hot-{thread}-{n}", START).tokens.user_id
            for n in range(LOGINS_PER_THREAD)
        ]

    with ThreadPoolExecutor(THREADS) as pool:
        users = [u for result in pool.map(log_in, range(THREADS)) for u in result]

    logins = THREADS * LOGINS_PER_THREAD
    assert len(set(users)) == logins  # every login succeeded, its own user
    assert transactions.reasons == []
    assert transactions.attempts == logins  # one transaction each, none retried
    shared = Counter(key for items in transactions.items for key in items)
    assert [key for key, count in shared.items() if count > 1] == []
