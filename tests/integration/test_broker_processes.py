"""The access-token broker across separate "containers": 8 processes, one DynamoDB Local, one
fake WeChat served over loopback HTTP by this process.

Each process (spawned: nothing is inherited but the arguments) builds its own service graph
with `runtime.build`, as a Lambda container does, and runs its share of 50 requests on threads;
all 50 start together at one cross-process barrier. The counts are the fake's, over HTTP.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import uuid
from typing import Any

import pytest
import requests

from chalicelib.store import create_table
from devserver.fake_wechat import API_DOMAIN_IP_PATH, STABLE_TOKEN_PATH, FakeWeChat
from tests.integration.dynamodb_local import dynamodb_client

pytestmark = pytest.mark.integration

APPID = "wx-broker-processes"
SECRET = "broker-processes-secret-0123456789"
PROCESSES = 8
REQUESTS = 50
TIMEOUT = 120.0


def container(
    index: int,
    endpoint: str,
    table: str,
    wechat_url: str,
    keys_file: str,
    barrier: Any,
    invalidated: Any,
    second_barrier: Any,
    results: Any,
) -> None:
    """One container: its own service graph, its share of the requests on threads."""
    from chalicelib import runtime
    from chalicelib.settings import Settings
    from chalicelib.wechat.client import check_token_errcode

    settings = Settings(
        wechat_appid=APPID,
        wechat_secret=SECRET,
        wechat_api_base=wechat_url,
        table_name=table,
        signing_keys_file=keys_file,
    )
    services = runtime.build(settings, dynamodb=dynamodb_client(endpoint))
    threads = len(range(index, REQUESTS, PROCESSES))

    def downstream(token: str) -> str:
        response = requests.get(
            f"{wechat_url}{API_DOMAIN_IP_PATH}", params={"access_token": token}, timeout=30
        )
        check_token_errcode(response.json())
        return token

    def first(_: int) -> None:
        barrier.wait(TIMEOUT)
        try:
            results.put(("token", index, services.broker.token()))
        except Exception as e:  # noqa: BLE001 - reported to the test
            results.put(("error", index, type(e).__name__))

    def after_invalidation(_: int) -> None:
        second_barrier.wait(TIMEOUT)
        try:
            results.put(("call", index, services.broker.call(downstream)))
        except Exception as e:  # noqa: BLE001
            results.put(("error", index, type(e).__name__))

    for phase in (first, after_invalidation):
        if phase is after_invalidation:
            invalidated.wait(TIMEOUT)
        workers = [threading.Thread(target=phase, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(TIMEOUT)


def collect(results: Any, count: int) -> list[tuple[str, int, str]]:
    out = []
    for _ in range(count):
        try:
            out.append(results.get(timeout=TIMEOUT))
        except queue.Empty:
            break
    return out


def test_fifty_cold_requests_in_eight_containers_make_one_stable_token_call(
    dynamodb_local_endpoint: str, tmp_path, key_set_json: str
) -> None:
    table = f"wxauth-broker-{uuid.uuid4().hex[:12]}"
    client = dynamodb_client(dynamodb_local_endpoint)
    create_table(client, table)
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(key_set_json)
    context = multiprocessing.get_context("spawn")
    barrier, second_barrier = context.Barrier(REQUESTS), context.Barrier(REQUESTS)
    invalidated = context.Event()
    results = context.Queue()
    with FakeWeChat(APPID, SECRET) as fake:
        processes = [
            context.Process(
                target=container,
                args=(
                    i,
                    dynamodb_local_endpoint,
                    table,
                    fake.url,
                    str(keys_file),
                    barrier,
                    invalidated,
                    second_barrier,
                    results,
                ),
            )
            for i in range(PROCESSES)
        ]
        try:
            for process in processes:
                process.start()

            cold = collect(results, REQUESTS)
            assert [r for r in cold if r[0] == "error"] == []
            assert len(cold) == REQUESTS
            assert {r[1] for r in cold} == set(range(PROCESSES))  # every container answered
            assert len({r[2] for r in cold}) == 1  # all the same token
            assert fake.calls_to(STABLE_TOKEN_PATH) == 1

            # WeChat now rejects the cached token (40001) for all 50 requests at once.
            fake.tokens.invalidate()
            invalidated.set()
            refused = collect(results, REQUESTS)
            assert [r for r in refused if r[0] == "error"] == []
            assert len(refused) == REQUESTS
            assert len({r[2] for r in refused}) == 1 and refused[0][2] != cold[0][2]
            assert fake.tokens.forced == 1  # one forced refresh, however many were refused
            assert fake.calls_to(STABLE_TOKEN_PATH) == 2
            # each request: at most one refused call and one retried call; never a loop
            assert REQUESTS < fake.calls_to(API_DOMAIN_IP_PATH) <= 2 * REQUESTS
        finally:
            invalidated.set()  # a failed assertion must not leave the containers waiting
            for process in processes:
                process.join(TIMEOUT)
                if process.is_alive():
                    process.kill()
                    process.join()
            client.delete_table(TableName=table)
    assert all(process.exitcode == 0 for process in processes)
