"""The abuse limiter against moto and DynamoDB Local, with an injected `now` (never a sleep)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from chalicelib.errors import ConfigurationError, RateLimited
from chalicelib.limits import (
    LOGIN_PER_IP,
    LOGIN_PER_OPENID,
    REFRESH_PER_SESSION,
    TTL_SLACK,
    Limit,
    RateLimiter,
    ip_key,
    parse_limit,
    source_ip,
)
from chalicelib.logs import Metrics
from chalicelib.store import Store
from chalicelib.store.schema import limit_pk
from tests.conftest import BACKENDS, backend_table

NOW = 1_800_000_000  # a multiple of 60: NOW starts a 60 s window
IP = "203.0.113.7"


@pytest.fixture(params=BACKENDS)
def table(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    with backend_table(request, "limits") as created:
        yield created


@pytest.fixture
def sent(table: tuple[Any, str]) -> list[str]:
    """The operations sent to the table, in order."""
    calls: list[str] = []
    table[0].meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.append(model.name)
    )
    return calls


def limiter(table: tuple[Any, str], **limits: Limit | None) -> RateLimiter:
    return RateLimiter(Store(*table).guards, limits, metrics=Metrics("test"))


def items(table: tuple[Any, str]) -> list[dict[str, Any]]:
    client, name = table
    return client.scan(TableName=name, ConsistentRead=True)["Items"]


# -- settings syntax ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("20/60", Limit(20, 60)), (" 5 / 1 ", Limit(5, 1)), ("1/86400", Limit(1, 86400))],
)
def test_a_limit_is_count_slash_seconds(raw: str, expected: Limit) -> None:
    assert parse_limit("AUTH_LIMIT_LOGIN_PER_IP", raw) == expected


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_unset_is_no_limit(raw: str | None) -> None:
    assert parse_limit("AUTH_LIMIT_LOGIN_PER_IP", raw) is None


@pytest.mark.parametrize(
    "raw", ["20", "20/", "/60", "0/60", "20/0", "20/86401", "-1/60", "2.5/60", "20/60s", "a/b"]
)
def test_bad_limits_are_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="AUTH_LIMIT_LOGIN_PER_IP"):
        parse_limit("AUTH_LIMIT_LOGIN_PER_IP", raw)


# -- the source address ---------------------------------------------------------------------------


def test_source_ip_comes_from_the_request_context_only() -> None:
    assert source_ip({"identity": {"sourceIp": IP}}) == IP  # payload 1.0
    assert source_ip({"http": {"sourceIp": IP}}) == IP  # payload 2.0
    assert source_ip({"identity": {}}) is None
    assert source_ip(None) is None


def test_an_ipv6_client_is_counted_by_its_slash_64() -> None:
    assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("::ffff:203.0.113.7") == IP == ip_key(IP)


# -- counting -------------------------------------------------------------------------------------


def test_the_count_plus_first_request_of_a_window_is_refused(table: tuple[Any, str]) -> None:
    limits = limiter(table, **{LOGIN_PER_IP: Limit(3, 60)})
    for second in range(3):
        limits.check(LOGIN_PER_IP, IP, NOW + second)
    with pytest.raises(RateLimited) as refused:
        limits.check(LOGIN_PER_IP, IP, NOW + 20)
    assert refused.value.retry_after == 40  # seconds to the window's end
    assert IP not in str(refused.value)


def test_a_refused_request_is_not_counted(table: tuple[Any, str]) -> None:
    limits = limiter(table, **{LOGIN_PER_IP: Limit(1, 60)})
    limits.check(LOGIN_PER_IP, IP, NOW)
    for _ in range(3):
        with pytest.raises(RateLimited):
            limits.check(LOGIN_PER_IP, IP, NOW + 1)
    [item] = items(table)
    assert item["count"] == {"N": "1"}


def test_the_next_window_starts_from_zero(table: tuple[Any, str]) -> None:
    limits = limiter(table, **{LOGIN_PER_IP: Limit(2, 60)})
    limits.check(LOGIN_PER_IP, IP, NOW + 58)
    limits.check(LOGIN_PER_IP, IP, NOW + 59)
    with pytest.raises(RateLimited) as refused:
        limits.check(LOGIN_PER_IP, IP, NOW + 59)
    assert refused.value.retry_after == 1
    limits.check(LOGIN_PER_IP, IP, NOW + 60)  # a new window
    limits.check(LOGIN_PER_IP, IP, NOW + 119)
    with pytest.raises(RateLimited) as again:
        limits.check(LOGIN_PER_IP, IP, NOW + 119)
    assert again.value.retry_after == 1


def test_keys_and_limits_are_counted_apart(table: tuple[Any, str]) -> None:
    limits = limiter(table, **{LOGIN_PER_IP: Limit(1, 60), LOGIN_PER_OPENID: Limit(1, 60)})
    limits.check(LOGIN_PER_IP, IP, NOW)
    limits.check(LOGIN_PER_IP, "198.51.100.1", NOW)
    limits.check(LOGIN_PER_OPENID, IP, NOW)  # the same key under another limit
    with pytest.raises(RateLimited):
        limits.check(LOGIN_PER_IP, IP, NOW)


def test_a_counter_item_holds_a_hash_of_the_key_and_expires(table: tuple[Any, str]) -> None:
    limits = limiter(table, **{LOGIN_PER_IP: Limit(5, 60)})
    limits.check(LOGIN_PER_IP, IP, NOW + 7)
    [item] = items(table)
    assert item["pk"] == {"S": limit_pk(LOGIN_PER_IP, IP)}
    assert item["sk"] == {"S": str(NOW)}
    assert int(item["expires_at"]["N"]) == NOW + 60 + TTL_SLACK
    assert IP not in repr(item)


def test_one_update_item_per_check_and_none_for_an_unset_limit(
    table: tuple[Any, str], sent: list[str]
) -> None:
    limits = limiter(table, **{LOGIN_PER_IP: Limit(5, 60), REFRESH_PER_SESSION: None})
    limits.check(LOGIN_PER_IP, IP, NOW)
    assert sent == ["UpdateItem"]
    sent.clear()
    limits.check(REFRESH_PER_SESSION, "user/sid", NOW)
    limits.check(LOGIN_PER_OPENID, "openid", NOW)
    limits.check(LOGIN_PER_IP, None, NOW)  # no address: nothing to count
    assert sent == []
    assert not limits.configured(REFRESH_PER_SESSION)
    assert limits.configured(LOGIN_PER_IP)


def test_a_busy_key_costs_its_counter_one_refused_write_per_container_per_window(
    table: tuple[Any, str], sent: list[str]
) -> None:
    """A carrier NAT's address, over its limit: refused without a request until the window
    ends (the counter cannot go down), so its item's writes stay bounded (issue #21)."""
    limits = limiter(table, **{LOGIN_PER_IP: Limit(2, 60)})
    other_container = limiter(table, **{LOGIN_PER_IP: Limit(2, 60)})
    limits.check(LOGIN_PER_IP, IP, NOW)
    limits.check(LOGIN_PER_IP, IP, NOW + 1)
    for second in range(2, 50):
        with pytest.raises(RateLimited) as refused:
            limits.check(LOGIN_PER_IP, IP, NOW + second)
    assert refused.value.retry_after == 60 - 49
    assert sent == ["UpdateItem"] * 3  # two counted, one refused, then none
    with pytest.raises(RateLimited):
        other_container.check(LOGIN_PER_IP, IP, NOW + 50)  # it learns the same way
    limits.check(LOGIN_PER_IP, "198.51.100.1", NOW + 51)  # another key is counted as before
    assert sent == ["UpdateItem"] * 5
    limits.check(LOGIN_PER_IP, IP, NOW + 60)  # the next window: counted again
    assert sent == ["UpdateItem"] * 6
    [counted] = [
        i
        for i in items(table)
        if i["sk"]["S"] == str(NOW) and i["pk"]["S"] == limit_pk(LOGIN_PER_IP, IP)
    ]
    assert counted["count"] == {"N": "2"}


def test_the_limiter_fails_open_when_dynamodb_does(log_lines: list[str]) -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        limits = RateLimiter(
            Store(client, "any").guards, {LOGIN_PER_IP: Limit(1, 60)}, metrics=Metrics("test")
        )
        with Stubber(client) as stub:
            stub.add_client_error("update_item", "ThrottlingException")
            stub.add_client_error("update_item", "ProvisionedThroughputExceededException")
            limits.check(LOGIN_PER_IP, IP, NOW)
            limits.check(LOGIN_PER_IP, IP, NOW)
            stub.assert_no_pending_responses()
    assert sum('"RateLimitCheckFailed"' in line for line in log_lines) == 2
    assert not any(IP in line for line in log_lines)


def test_the_settings_read_each_limit_and_refuse_bad_ones() -> None:
    from chalicelib.settings import Settings

    settings = Settings.from_env(
        {
            "AUTH_LIMIT_LOGIN_PER_IP": "30/60",
            "AUTH_LIMIT_LOGIN_PER_OPENID": "10/300",
            "AUTH_LIMIT_REFRESH_PER_SESSION": "6/60",
        }
    )
    assert settings.limits() == {
        LOGIN_PER_IP: Limit(30, 60),
        LOGIN_PER_OPENID: Limit(10, 300),
        REFRESH_PER_SESSION: Limit(6, 60),
    }
    assert set(Settings.from_env({}).limits().values()) == {None}
    with pytest.raises(ConfigurationError, match="AUTH_LIMIT_REFRESH_PER_SESSION"):
        Settings.from_env({"AUTH_LIMIT_REFRESH_PER_SESSION": "six"})
