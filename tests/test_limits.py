"""The abuse limiter against moto and DynamoDB Local, with an injected `now` (never a sleep)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from chalicelib import limits as limits_module
from chalicelib.errors import ConfigurationError, RateLimited, StoreUnavailable
from chalicelib.limits import (
    DECRYPT_CHECK_PER_SESSION,
    DEVICE_LOOKUP_PER_USER,
    DEVICE_PER_IP,
    LOGIN_PER_IP,
    LOGIN_PER_IPV6_48,
    LOGIN_PER_OPENID,
    REFRESH_PER_SESSION,
    TTL_SLACK,
    ClientAddress,
    Limit,
    RateLimiter,
    ip_key,
    ipv6_48_key,
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
        LOGIN_PER_IPV6_48: Limit(480, 60),  # 16 x the per-IP limit, unless set
        LOGIN_PER_OPENID: Limit(10, 300),
        REFRESH_PER_SESSION: Limit(6, 60),
        DEVICE_PER_IP: Limit(20, 60),  # issue 24, item 3: the device limits are on unless "off"
        DEVICE_LOOKUP_PER_USER: Limit(30, 600),
        DECRYPT_CHECK_PER_SESSION: Limit(10, 600),  # issue 25, item 5: on unless "off"
    }
    off = {
        "AUTH_LIMIT_DEVICE_PER_IP": "off",
        "AUTH_LIMIT_DEVICE_LOOKUP_PER_USER": "OFF",
        "AUTH_LIMIT_DECRYPT_CHECK_PER_SESSION": "off",
    }
    assert set(Settings.from_env(off).limits().values()) == {None}
    with pytest.raises(ConfigurationError, match="AUTH_LIMIT_REFRESH_PER_SESSION"):
        Settings.from_env({"AUTH_LIMIT_REFRESH_PER_SESSION": "six"})


# -- under attack (issue #22, item 4) --------------------------------------------------------------


def test_a_refused_key_writes_nothing_more_until_its_window_ends(
    table: tuple[Any, str], sent: list[str]
) -> None:
    """Once this container refused a key, the rest of its window is refused here, without a
    write: an attacker's flood no longer reaches its counter item."""
    limits = limiter(table, **{LOGIN_PER_IP: Limit(2, 60)})
    limits.check(LOGIN_PER_IP, IP, NOW)
    limits.check(LOGIN_PER_IP, IP, NOW + 1)
    with pytest.raises(RateLimited):
        limits.check(LOGIN_PER_IP, IP, NOW + 2)
    sent.clear()
    for second in range(3, 60):
        with pytest.raises(RateLimited) as refused:
            limits.check(LOGIN_PER_IP, IP, NOW + second)
        assert refused.value.retry_after == 60 - second
    assert sent == []  # 57 refusals, no request
    limits.check(LOGIN_PER_IP, "198.51.100.1", NOW + 3)  # another key counts as before
    assert sent == ["UpdateItem"]
    sent.clear()
    limits.check(LOGIN_PER_IP, IP, NOW + 60)  # the next window: counted again
    assert sent == ["UpdateItem"]
    [item] = [
        i
        for i in items(table)
        if (i["pk"]["S"], i["sk"]["S"]) == (limit_pk(LOGIN_PER_IP, IP), str(NOW))
    ]
    assert item["count"] == {"N": "2"}


def test_the_deny_set_is_bounded(table: tuple[Any, str], monkeypatch) -> None:
    monkeypatch.setattr(limits_module, "MAX_DENIED", 3)
    limits = limiter(table, **{LOGIN_PER_IP: Limit(1, 60)})
    for n in range(10):
        key = f"198.51.100.{n}"
        limits.check(LOGIN_PER_IP, key, NOW)
        with pytest.raises(RateLimited):
            limits.check(LOGIN_PER_IP, key, NOW)
    assert len(limits._denied) == 3  # the oldest were forgotten: their next check writes again
    with pytest.raises(RateLimited):
        limits.check(LOGIN_PER_IP, "198.51.100.0", NOW)  # the counter still refuses it


def stubbed_limiter(client: Any, **limits: Limit) -> RateLimiter:
    return RateLimiter(Store(client, "any").guards, limits, metrics=Metrics("test"))


def test_the_limiter_fails_closed_when_its_counter_cannot_be_written(
    log_lines: list[str],
) -> None:
    """A throttled counter item (a flood of one key) or a failing DynamoDB: the request is
    refused (503), not let through; the key is then refused here for Retry-After seconds
    without a write."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        limits = stubbed_limiter(client, **{LOGIN_PER_IP: Limit(1, 60)})
        with Stubber(client) as stub:
            stub.add_client_error("update_item", "ThrottlingException")
            with pytest.raises(StoreUnavailable) as refused:
                limits.check(LOGIN_PER_IP, IP, NOW)
            with pytest.raises(StoreUnavailable):  # within Retry-After: no request
                limits.check(LOGIN_PER_IP, IP, NOW + refused.value.retry_after - 1)
            stub.add_client_error("update_item", "ProvisionedThroughputExceededException")
            with pytest.raises(StoreUnavailable):  # another key still tries, and is refused
                limits.check(LOGIN_PER_IP, "198.51.100.9", NOW)
            stub.add_response(
                "update_item",
                {"Attributes": {"count": {"N": "1"}}},
            )
            limits.check(LOGIN_PER_IP, IP, NOW + refused.value.retry_after)  # after: it tries
            stub.assert_no_pending_responses()
    assert sum('"RateLimitCheckFailed"' in line for line in log_lines) == 2
    assert not any(IP in line for line in log_lines)


# -- IPv6: a /48 tier beside the /64 ---------------------------------------------------------------


def test_ipv6_48_key() -> None:
    assert ipv6_48_key("2001:db8:1:2::1") == ipv6_48_key("2001:db8:1:ffff::9") == "2001:db8:1::/48"
    assert ipv6_48_key("2001:db8:2::1") != ipv6_48_key("2001:db8:1::1")
    assert ipv6_48_key(IP) is None and ipv6_48_key("::ffff:203.0.113.7") is None
    assert ipv6_48_key("not-an-address") is None


def test_a_48_rotating_its_64s_is_refused_by_the_48_tier(
    table: tuple[Any, str], sent: list[str]
) -> None:
    limits = limiter(table, **{LOGIN_PER_IP: Limit(2, 60), LOGIN_PER_IPV6_48: Limit(5, 60)})
    for n in range(5):  # five /64s of one /48, once each
        limits.check_address(f"2001:db8:1:{n:x}::1", NOW)
    assert sent == ["UpdateItem", "UpdateItem"] * 5  # the /64 and the /48
    with pytest.raises(RateLimited) as refused:
        limits.check_address("2001:db8:1:99::1", NOW + 1)  # a fresh /64, the /48 is used up
    assert "AUTH_LIMIT_LOGIN_PER_IPV6_48" in str(refused.value)
    limits.check_address("2001:db8:2::1", NOW + 1)  # another /48
    sent.clear()
    limits.check_address(IP, NOW + 1)  # IPv4: its address only
    assert sent == ["UpdateItem"]


def test_the_48_tier_defaults_to_16_times_the_per_ip_limit() -> None:
    from chalicelib.settings import Settings

    derived = Settings.from_env({"AUTH_LIMIT_LOGIN_PER_IP": "20/60"}).limits()
    assert derived[LOGIN_PER_IPV6_48] == Limit(320, 60)
    given = Settings.from_env(
        {"AUTH_LIMIT_LOGIN_PER_IP": "20/60", "AUTH_LIMIT_LOGIN_PER_IPV6_48": "100/300"}
    ).limits()
    assert given[LOGIN_PER_IPV6_48] == Limit(100, 300)
    assert Settings.from_env({}).limits()[LOGIN_PER_IPV6_48] is None
    with pytest.raises(ConfigurationError, match="AUTH_LIMIT_LOGIN_PER_IPV6_48"):
        Settings.from_env({"AUTH_LIMIT_LOGIN_PER_IPV6_48": "lots"})


# -- the client's address behind CloudFront --------------------------------------------------------

SECRET = "origin-secret-0123456789abcdef0123"  # noqa: S105 - a test value
EDGE = "130.176.1.1"  # a CloudFront edge's address: API Gateway's sourceIp behind CloudFront
CONTEXT = {"identity": {"sourceIp": EDGE}}


def behind_cloudfront(metrics: Metrics | None = None) -> ClientAddress:
    return ClientAddress("X-Origin-Verify", lambda: SECRET, metrics=metrics)


@pytest.mark.parametrize(
    ("viewer", "expected"),
    [
        ("198.51.100.7:46532", "198.51.100.7"),
        ("2001:db8::1:46532", "2001:db8::1"),  # CloudFront's unbracketed IPv6 with its port
        ("[2001:db8::2]:443", "2001:db8::2"),
        (" 198.51.100.8:1 ", "198.51.100.8"),
    ],
)
def test_the_viewer_address_is_taken_when_the_origin_secret_matches(viewer, expected) -> None:
    headers = {"x-origin-verify": SECRET, "cloudfront-viewer-address": viewer}
    assert behind_cloudfront().of(CONTEXT, headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"cloudfront-viewer-address": "198.51.100.7:1"},  # no secret: anyone can send it
        {"x-origin-verify": "guess", "cloudfront-viewer-address": "198.51.100.7:1"},
        {"x-origin-verify": SECRET[:-1], "cloudfront-viewer-address": "198.51.100.7:1"},
        {"x-origin-verify": SECRET + "x", "cloudfront-viewer-address": "198.51.100.7:1"},
        {"x-forwarded-for": "198.51.100.7"},
    ],
)
def test_without_the_origin_secret_the_viewer_address_is_ignored(headers) -> None:
    assert behind_cloudfront().of(CONTEXT, headers) == EDGE
    assert ClientAddress().of(CONTEXT, headers) == EDGE  # not configured: never a header


@pytest.mark.parametrize("viewer", [None, "", "not-an-address:1", "198.51.100.7", "999.1.1.1:2"])
def test_a_matching_secret_without_a_usable_viewer_address_counts_the_edge(
    viewer, log_lines
) -> None:
    headers = {"x-origin-verify": SECRET}
    if viewer is not None:
        headers["cloudfront-viewer-address"] = viewer
    assert behind_cloudfront(Metrics("test")).of(CONTEXT, headers) == EDGE
    assert sum('"ViewerAddressMissing"' in line for line in log_lines) == 1
    assert not any(SECRET in line for line in log_lines)


def test_the_origin_secret_settings() -> None:
    from chalicelib.settings import Settings

    settings = Settings.from_env(
        {"AUTH_ORIGIN_SECRET_HEADER": "X-Origin-Verify", "AUTH_ORIGIN_SECRET": SECRET}
    )
    assert (settings.origin_secret_header, settings.origin_secret) == ("x-origin-verify", SECRET)
    assert SECRET not in repr(settings)
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wxauth-origin-AbCdEf"
    from_arn = Settings.from_env(
        {"AUTH_ORIGIN_SECRET_HEADER": "x-origin-verify", "AUTH_ORIGIN_SECRET_ARN": arn}
    )
    assert (from_arn.origin_secret, from_arn.origin_secret_arn) == (None, arn)
    assert Settings.from_env({}).origin_secret_header is None
    for env, message in (
        ({"AUTH_ORIGIN_SECRET_HEADER": "x-origin-verify"}, "AUTH_ORIGIN_SECRET"),
        ({"AUTH_ORIGIN_SECRET": SECRET}, "AUTH_ORIGIN_SECRET_HEADER"),
        ({"AUTH_ORIGIN_SECRET_HEADER": "x origin", "AUTH_ORIGIN_SECRET": SECRET}, "header name"),
        (
            {
                "AUTH_ORIGIN_SECRET_HEADER": "CloudFront-Viewer-Address",
                "AUTH_ORIGIN_SECRET": SECRET,
            },
            "header name",
        ),
        ({"AUTH_ORIGIN_SECRET_HEADER": "x-origin-verify", "AUTH_ORIGIN_SECRET": "short"}, "32"),
    ):
        with pytest.raises(ConfigurationError, match=message) as refused:
            Settings.from_env(env)
        assert SECRET not in str(refused.value)
