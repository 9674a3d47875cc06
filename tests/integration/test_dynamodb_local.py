"""The DynamoDB Local fixture serves a real DynamoDB API: tables, conditions, TTL."""

from __future__ import annotations

import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.integration.dynamodb_local import dynamodb_client

pytestmark = pytest.mark.integration


def _create_table(client, name: str) -> None:
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )


def test_create_table_and_conditional_put(dynamodb_local_endpoint: str) -> None:
    client = dynamodb_client(dynamodb_local_endpoint)
    name = f"test-{uuid.uuid4().hex[:8]}"
    _create_table(client, name)

    table = client.describe_table(TableName=name)["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {
        "pk": "HASH",
        "sk": "RANGE",
    }
    assert name in client.list_tables()["TableNames"]

    item = {"pk": {"S": "USER#1"}, "sk": {"S": "PROFILE"}, "n": {"N": "1"}}
    put = {
        "TableName": name,
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    client.put_item(Item=item, **put)
    with pytest.raises(ClientError) as excinfo:
        client.put_item(Item={**item, "n": {"N": "2"}}, **put)
    assert excinfo.value.response["Error"]["Code"] == "ConditionalCheckFailedException"

    stored = client.get_item(
        TableName=name, Key={"pk": item["pk"], "sk": item["sk"]}, ConsistentRead=True
    )["Item"]
    assert stored["n"] == {"N": "1"}  # the failed put changed nothing


def test_time_to_live(dynamodb_local_endpoint: str) -> None:
    client = dynamodb_client(dynamodb_local_endpoint)
    name = f"test-{uuid.uuid4().hex[:8]}"
    _create_table(client, name)

    before = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert before["TimeToLiveStatus"] == "DISABLED"

    spec = client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )["TimeToLiveSpecification"]
    assert spec == {"Enabled": True, "AttributeName": "expires_at"}

    after = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert after == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    # Items with the TTL attribute are stored and readable (deletion is lazy, in AWS too).
    client.put_item(
        TableName=name,
        Item={
            "pk": {"S": "SESSION#1"},
            "sk": {"S": "S"},
            "expires_at": {"N": str(int(time.time()) + 60)},
        },
    )
    assert "Item" in client.get_item(
        TableName=name, Key={"pk": {"S": "SESSION#1"}, "sk": {"S": "S"}}
    )
