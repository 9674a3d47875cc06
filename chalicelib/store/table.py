"""The table: one botocore client, one translation of its errors, one pager, transactions.

Every request of every repository goes through `Table.request`, which turns DynamoDB's answers
into the project's errors, as Powertools' idempotency layer does:
- a failed condition (`ConditionalCheckFailedException`, or a transaction cancelled by one)
  becomes ConditionFailed, carrying the item as it was where the write asked for it
  (`ReturnValuesOnConditionCheckFailure`), and a transaction's cancellation codes and items;
- throttling, an overloaded or failing service, a transaction conflict, and transport errors
  (after botocore's own bounded retries, chalicelib/budgets.py) become StoreUnavailable
  (503 temporarily_unavailable with Retry-After);
- any other ClientError is re-raised: a bug or a misconfiguration, not a state to handle.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from chalicelib.errors import ConditionFailed, StoreUnavailable
from chalicelib.store.schema import EXPIRES_AT, PK, SK, Item, n, s

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

# DynamoDB answers these when it is overloaded or failing; after botocore's own bounded
# retries they become StoreUnavailable (503 temporarily_unavailable with Retry-After).
_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)
# Why a TransactWriteItems was cancelled, per item (`CancellationReasons`).
_RETRYABLE_CANCELLATIONS = frozenset(
    {
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "TransactionConflict",
        "RequestLimitExceeded",
    }
)
_TRANSPORT_ERRORS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
)


class Table:
    """One DynamoDB table: requests on it, with its errors translated (see the module doc)."""

    def __init__(self, client: DynamoDBClient, name: str) -> None:
        self._client = client
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def client(self) -> DynamoDBClient:
        """The botocore DynamoDB client (benchmarks hook its events to count requests)."""
        return self._client

    def close_connections(self) -> None:
        """Close the client's pooled connections (botocore's public `close`); the client opens
        new ones at its next request (after a SnapStart restore, the old ones are dead)."""
        close = getattr(self._client, "close", None)
        if close is not None:
            close()

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One request on this table: ConditionFailed, StoreUnavailable, or the ClientError."""
        return self.request(operation, TableName=self._name, **kwargs)

    def request(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One request of the client, named by its botocore method; errors as in the module doc."""
        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed(operation, e.response.get("Item")) from e
            if code == "TransactionCanceledException":
                cancelled = e.response.get("CancellationReasons", [])
                reasons = {r.get("Code") for r in cancelled}
                if "ConditionalCheckFailed" in reasons:
                    codes = [r.get("Code") for r in cancelled]
                    items = [r.get("Item") for r in cancelled]
                    raise ConditionFailed(operation, reasons=codes, items=items) from e
                if reasons & _RETRYABLE_CANCELLATIONS:
                    raise StoreUnavailable(f"DynamoDB {operation} cancelled") from e
                raise
            if code in _UNAVAILABLE_CODES or code == "TransactionConflictException":
                raise StoreUnavailable(f"DynamoDB {operation} failed: {code}") from e
            raise
        except _TRANSPORT_ERRORS as e:
            raise StoreUnavailable(f"DynamoDB {operation} failed: {type(e).__name__}") from e
        except BotoCoreError as e:
            if "retries" in type(e).__name__.lower():
                raise StoreUnavailable(f"DynamoDB {operation} failed") from e
            raise

    def get(self, key: Item, *, consistent: bool = True) -> Item | None:
        """One item by its key, strongly consistent unless `consistent` is False (half the
        read units; the caller says why a stale answer is harmless); None if there is none."""
        return self.call("get_item", Key=key, ConsistentRead=consistent).get("Item")

    def query(self, pk: str, sk_prefix: str = "") -> Iterator[Item]:
        """Every item of partition `pk` whose sk starts with `sk_prefix` (all of them for ""),
        strongly consistent, a request per 1 MB page."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {":pk": s(pk), ":prefix": s(sk_prefix)},
            "ConsistentRead": True,
        }
        if not sk_prefix:  # the whole partition
            kwargs["KeyConditionExpression"] = "#pk = :pk"
            kwargs["ExpressionAttributeNames"] = {"#pk": PK}
            kwargs["ExpressionAttributeValues"] = {":pk": s(pk)}
        while True:
            response = self.call("query", **kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def query_page(
        self, pk: str, sk_prefix: str, *, limit: int, after_sk: str | None = None
    ) -> tuple[list[Item], str | None]:
        """At most `limit` items of partition `pk` whose sk starts with `sk_prefix`, in sk order,
        starting after the sk `after_sk` (None: from the first), strongly consistent: one Query.
        Also the sk where it stopped, to start the next page after; None if it reached the end."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {":pk": s(pk), ":prefix": s(sk_prefix)},
            "ConsistentRead": True,
            "Limit": limit,
        }
        if after_sk is not None:
            kwargs["ExclusiveStartKey"] = {PK: s(pk), SK: s(after_sk)}
        response = self.call("query", **kwargs)
        last = response.get("LastEvaluatedKey")
        return response.get("Items", []), (last[SK]["S"] if last else None)

    def query_between(self, pk: str, low: str, high: str) -> Iterator[Item]:
        """Every item of partition `pk` whose sk lies between `low` and `high` (both included),
        in sk order, strongly consistent, a request per 1 MB page."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {":pk": s(pk), ":low": s(low), ":high": s(high)},
            "ConsistentRead": True,
        }
        while True:
            response = self.call("query", **kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def delete(self, key: Item, *, owner: tuple[str, str] | None = None) -> bool:
        """Delete one item (DeleteItem); with `owner` (an attribute's name and value), only if
        the item is missing or has that value there. True unless the owner differed."""
        kwargs: dict[str, Any] = {}
        if owner is not None:
            kwargs = {
                "ConditionExpression": "attribute_not_exists(#pk) OR #owner = :owner",
                "ExpressionAttributeNames": {"#pk": PK, "#owner": owner[0]},
                "ExpressionAttributeValues": {":owner": s(owner[1])},
            }
        try:
            self.call("delete_item", Key=key, **kwargs)
        except ConditionFailed:
            return False
        return True

    def scan(self, **kwargs: Any) -> Iterator[Item]:
        """Every item of the table that `kwargs` (a FilterExpression and its names and values)
        lets through, a request per 1 MB read; eventually consistent. For an operator's
        command, never a request's path: it reads the whole table."""
        while True:
            response = self.call("scan", **kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def put_new(self, item: Item) -> bool:
        """Put `item` unless an item with its key exists (`attribute_not_exists(#pk)`): True if
        it was written."""
        try:
            self._put_new(item)
        except ConditionFailed:
            return False
        return True

    def put_new_or_get(self, item: Item) -> Item | None:
        """`put_new`, but a lost race hands back the item in the way: None if `item` was
        written, else the item with its key (from the failed write's answer,
        `ReturnValuesOnConditionCheckFailure`; or, where the answer carries none, a consistent
        read; ConditionFailed if that finds nothing either)."""
        try:
            self._put_new(item, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ConditionFailed as e:
            old = e.item or self.get({PK: item[PK], SK: item[SK]})
            if old is None:
                raise
            return old
        return None

    def take_lease(self, item: Item, *, result: str, now: int) -> bool:
        """Put `item` (with its `lease_until` and EXPIRES_AT) unless the item in its place is
        still live: not expired, and holding its `result` attribute or a lease not yet over.
        True if it was written: the caller holds the lease until `lease_until`. A login code's
        claim and a device login's image take theirs so."""
        try:
            self.call(
                "put_item",
                Item=item,
                ConditionExpression=(
                    "attribute_not_exists(#pk) OR #exp <= :now"
                    " OR (attribute_not_exists(#result) AND #lease <= :now)"
                ),
                ExpressionAttributeNames={
                    "#pk": PK,
                    "#exp": EXPIRES_AT,
                    "#result": result,
                    "#lease": "lease_until",
                },
                ExpressionAttributeValues={":now": n(now)},
            )
        except ConditionFailed:
            return False
        return True

    def _put_new(self, item: Item, **extra: Any) -> None:
        self.call(
            "put_item",
            Item=item,
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": PK},
            **extra,
        )

    def transact(self, items: list[Item]) -> None:
        """TransactWriteItems: all of `items` (each naming this table) or none."""
        self.request("transact_write_items", TransactItems=items)


def create_table(client: DynamoDBClient, table_name: str) -> bool:
    """Create the table (on-demand, TTL on `expires_at`) unless it exists; True if created."""
    try:
        client.create_table(
            TableName=table_name,
            AttributeDefinitions=[
                {"AttributeName": PK, "AttributeType": "S"},
                {"AttributeName": SK, "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": PK, "KeyType": "HASH"},
                {"AttributeName": SK, "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as e:
        if e.response["Error"]["Code"] == "ResourceInUseException":
            return False
        raise
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRES_AT},
    )
    return True
