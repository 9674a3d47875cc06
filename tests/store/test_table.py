"""The table: its creation, and DynamoDB's failures turned into the project's errors."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from chalicelib.errors import ConditionFailed, StoreUnavailable
from chalicelib.store import Store, create_table, session_sk, user_pk
from chalicelib.store.sessions import new_session
from chalicelib.tokens import refresh as refresh_tokens
from tests.conftest import TABLE, table_items
from tests.integration.dynamodb_local import dynamodb_client
from tests.store.records import CODE, NOW, USER, Backend, a_session


def test_create_table_is_idempotent_and_enables_ttl(backend: Backend) -> None:
    assert create_table(backend.client, backend.table) is False
    ttl = backend.client.describe_time_to_live(TableName=backend.table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


# -- an unavailable DynamoDB ------------------------------------------------------------------


def test_unreachable_dynamodb_is_store_unavailable() -> None:

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = dynamodb_client(endpoint, retries={"max_attempts": 2, "mode": "standard"})
    store = Store(client, "wxauth")
    with pytest.raises(StoreUnavailable):
        store.sessions.get(USER, "sess0")
    with pytest.raises(StoreUnavailable):
        store.logins.claim(CODE, now=NOW, lease_until=NOW + 20, expires_at=NOW + 300)


# -- DynamoDB failing in the middle of a request (chalice.test.Client on moto) ----------------

JSON = {"content-type": "application/json"}


def post(client: Any, path: str, body: dict[str, Any]) -> Any:
    return client.http.post(path, headers=JSON, body=json.dumps(body))


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.body
    assert response.json_body["error"] == "temporarily_unavailable"
    assert response.headers["Retry-After"] == str(StoreUnavailable.retry_after)


def test_throttled_rotation_is_503_and_leaves_the_session_as_it_was(client, dynamodb) -> None:
    tokens = post(client, "/auth/login", {"code": "alice.1"}).json_body
    user_id, session_id = tokens["refresh_token"].split(".")[:2]
    key = {"pk": {"S": user_pk(user_id)}, "sk": {"S": session_sk(session_id)}}
    stored = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    before = table_items(dynamodb)

    assert stored  # the rotation is one conditional write, and it is throttled
    with Stubber(dynamodb) as stubber:
        stubber.add_client_error(
            "update_item",
            service_error_code="ProvisionedThroughputExceededException",
            http_status_code=400,
        )
        response = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        stubber.assert_no_pending_responses()

    assert_unavailable(response)
    assert "refresh_token" not in response.json_body
    assert table_items(dynamodb) == before
    # The presented token is still the current one: the client's retry rotates it.
    retried = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert retried.status_code == 200, retried.body
    item = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    assert bytes(item["previous_hash"]["B"]) == refresh_tokens.parse(tokens["refresh_token"]).hash


def test_throttled_login_transaction_leaves_no_session(client, dynamodb) -> None:
    def throttle(**_: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
            "TransactWriteItems",
        )

    dynamodb.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", throttle)
    try:
        response = post(client, "/auth/login", {"code": "alice.1"})
    finally:
        dynamodb.meta.events.unregister(
            "provide-client-params.dynamodb.TransactWriteItems", throttle
        )

    assert_unavailable(response)
    kinds = [item["sk"]["S"] for item in table_items(dynamodb)]
    # the user and its identity (idempotent); no session, and the claim released
    assert kinds == ["IDENTITY", "PROFILE"]


@pytest.mark.parametrize(
    ("reason", "raised"),
    [
        ("ConditionalCheckFailed", ConditionFailed),
        ("TransactionConflict", StoreUnavailable),
        ("ThrottlingError", StoreUnavailable),
        ("ValidationError", ClientError),  # a bug, not an outage: no 503 that hides it
    ],
)
def test_cancelled_transactions(dynamodb, reason: str, raised: type[Exception]) -> None:
    store = Store(dynamodb, TABLE)
    with Stubber(dynamodb) as stubber:
        stubber.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            http_status_code=400,
            response_meta={},
            modeled_fields={"CancellationReasons": [{"Code": "None"}, {"Code": reason}]},
        )
        with pytest.raises(raised):
            store.table.transact([{"Put": new_session(TABLE, a_session())}])
