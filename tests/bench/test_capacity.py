"""The capacity model's arithmetic (bench/capacity.py): item sizes and units by DynamoDB's rules,
key patterns and scopes, and the loads of a traffic profile. No server: `make bench` measures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import capacity  # noqa: E402
from capacity import Access, Measured, Periodic, Profile  # noqa: E402

# -- sizes and units -------------------------------------------------------------------------------


def test_item_sizes_follow_dynamodbs_rules() -> None:
    assert capacity.item_size(None) == 0
    assert capacity.item_size({"pk": {"S": "USER#ab"}}) == 2 + 7
    assert capacity.item_size({"n": {"S": "é"}}) == 1 + 2  # UTF-8 bytes
    assert capacity.item_size({"b": {"B": b"\x00" * 32}}) == 1 + 32
    assert capacity.item_size({"ok": {"BOOL": True}}) == 2 + 1
    # numbers: one byte per two significant digits, plus one; zeros at either end do not count
    assert capacity.item_size({"x": {"N": "1800000000"}}) == 1 + 1 + 1
    assert capacity.item_size({"x": {"N": "123"}}) == 1 + 1 + 2
    assert capacity.item_size({"x": {"N": "-12.5"}}) == 1 + 1 + 2
    assert capacity.item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + 1 + 1 + 1
    assert capacity.item_size({"l": {"L": [{"S": "ab"}, {"N": "7"}]}}) == 1 + 3 + 3 + 3
    assert capacity.item_size({"s": {"SS": ["a", "bc"]}}) == 1 + 3


@pytest.mark.parametrize(
    ("size", "consistent", "transactional", "units"),
    [
        (0, True, False, 1.0),  # an item that is not there costs the minimum
        (100, True, False, 1.0),
        (100, False, False, 0.5),
        (4096, True, False, 1.0),
        (4097, True, False, 2.0),
        (4097, False, False, 1.0),
        (9000, False, False, 1.5),
        (100, True, True, 2.0),
        (8000, False, True, 4.0),  # a transactional read is never half
    ],
)
def test_read_units(size: int, consistent: bool, transactional: bool, units: float) -> None:
    assert capacity.read_units(size, consistent=consistent, transactional=transactional) == units


@pytest.mark.parametrize(
    ("size", "transactional", "units"),
    [(0, False, 1.0), (1024, False, 1.0), (1025, False, 2.0), (500, True, 2.0), (2500, True, 6.0)],
)
def test_write_units(size: int, transactional: bool, units: float) -> None:
    assert capacity.write_units(size, transactional=transactional) == units


def test_patterns_and_scopes() -> None:
    assert capacity.pattern_of("USER#abc") == "USER#*"
    assert capacity.pattern_of("IDENTITY#wx1#openid") == "IDENTITY#*"
    assert capacity.pattern_of("LIMIT#login_ip#ab12") == "LIMIT#login_ip#*"
    assert capacity.pattern_of("APP") == "APP"
    assert capacity.scope_of("USER#*") == "user"
    assert capacity.scope_of("BREAKER#*") == "app"
    assert capacity.scope_of("LIMIT#login_ip#*") == "ip"
    assert capacity.scope_of("APP") == "shared"
    assert capacity.scope_of("SOMETHING#*") == "shared"  # unknown: counted as every request's


# -- the model -------------------------------------------------------------------------------------


def op(name: str, function: str, accesses: list[Access], **kwargs) -> Measured:
    return Measured(name, function, accesses, **kwargs)


def write(pk: str, units: float = 1.0, transactional: bool = False) -> Access:
    return Access(
        pk, "write", units, transactional, "TransactWriteItems" if transactional else "PutItem"
    )


def read(pk: str, units: float = 1.0, consistent: bool = True) -> Access:
    return Access(pk, "read", units, False, "GetItem", consistent)


PROFILE = Profile(logins=20_000, apps=3, refreshes=20_000, verifies=50_000, phone_binds=500)


def key(report: capacity.Report, pattern: str) -> capacity.KeyLoad:
    return next(k for k in report.keys if k.pattern == pattern)


def test_a_key_every_login_of_the_apps_shares_fails_the_model() -> None:
    """The login transaction of before issue #21: a ConditionCheck of the `APP` item."""
    login = op("login", "login", [write("USER#u1", 2, True), write("APP", 2, True)])
    report = capacity.model([login], PROFILE)
    app = key(report, "APP")
    assert app.scope == "shared"
    assert app.wcu == 20_000 * 2  # every login of every app: one partition
    assert app.wcu_share == 40.0
    assert app.transactions == 20_000
    assert not app.ok and not report.ok
    assert "**Over the limit: APP.**" in capacity.render(report)


def test_per_user_and_per_app_keys_take_one_users_and_one_apps_rate() -> None:
    login = op(
        "login",
        "login",
        [
            write("LOGIN#c1"),
            write("USER#u1", 2, True),
            write("USER#u1", 2, True),
            read("BREAKER#wx"),
        ],
    )
    report = capacity.model([login], PROFILE)
    user = key(report, "USER#*")
    assert user.wcu == pytest.approx(4 / 60)  # a login a minute, both its writes on its partition
    assert user.transactions == pytest.approx(1 / 60)  # one transaction names the key
    assert key(report, "LOGIN#*").wcu == pytest.approx(1 / 60)
    breaker = key(report, "BREAKER#*")
    assert breaker.rcu == pytest.approx(20_000 / 3)  # one app's logins
    assert breaker.rcu_share > capacity.LIMIT and not report.ok
    assert report.table_wru == pytest.approx(20_000 * 5)
    assert report.table_rru == pytest.approx(20_000)


def test_a_limit_of_thirty_percent_and_of_transactions_per_key() -> None:
    at_limit = Profile(logins=900, apps=1, refreshes=0, verifies=0, phone_binds=0)
    login = op("login", "login", [read("BREAKER#wx")])
    assert capacity.model([login], at_limit).ok  # 900 RCU/s: exactly 30% of 3,000
    over = Profile(logins=901, apps=1, refreshes=0, verifies=0, phone_binds=0)
    assert not capacity.model([login], over).ok
    checked = op("login", "login", [write("BREAKER#wx", 0.0, True)])
    few = Profile(logins=0.2, apps=1, refreshes=0, verifies=0, phone_binds=0)
    assert capacity.model([checked], few).ok
    assert not capacity.model([checked], Profile(logins=0.3, apps=1)).ok


def test_durations_concurrency_and_api_rps() -> None:
    profile = Profile(wechat_ms=150, dynamodb_ms=10, memory_mb=512)
    login = op("login", "login", [], requests=3, wechat_calls=1, cpu_seconds=0.010)
    refresh = op("refresh", "api", [], requests=1, cpu_seconds=0.002)
    verify = op("verify", "api", [], requests=1, cpu_seconds=0.002)
    phone = op("phone", "login", [], requests=6, wechat_calls=1, cpu_seconds=0.010)
    report = capacity.model([login, refresh, verify, phone], profile)
    scale = 1769 / 512  # the function's share of a vCPU
    assert report.durations["login"] == pytest.approx(0.010 * scale + 0.030 + 0.150)
    assert report.durations["refresh"] == pytest.approx(0.002 * scale + 0.010)
    assert report.concurrency["login"] == pytest.approx(
        20_000 * report.durations["login"] + 500 * report.durations["phone"]
    )
    assert report.concurrency["api"] == pytest.approx(
        20_000 * report.durations["refresh"] + 50_000 * report.durations["verify"]
    )
    assert report.api_rps == 90_500
    big = Profile(memory_mb=3538)  # more than a vCPU's worth: CPU time is not scaled down
    assert capacity.duration(login, big) == pytest.approx(0.010 + 0.030 + 0.150)


def test_a_containers_cache_reads_take_containers_over_their_period() -> None:
    profile = Profile(logins=1000, apps=2, refreshes=0, verifies=0, phone_binds=0, wechat_ms=0)
    breaker = Periodic(read("BREAKER#wx", 0.5, consistent=False), 5)
    registry = Periodic(Access("APP", "read", 1.0, False, "Query"), 60)
    cold = Periodic(Access("APP", "read", 1.0, False, "Query"), 0)
    login = op(
        "login", "login", [], requests=3, cpu_seconds=0.0, periodic=[breaker, registry, cold]
    )
    twin = op("phone", "login", [], requests=3, periodic=[breaker])  # the same cache: once
    report = capacity.model([login, twin], profile)
    containers = report.concurrency["login"]
    assert containers == pytest.approx(1000 * 0.030)
    assert key(report, "BREAKER#*").rcu == pytest.approx(containers / 5 * 0.5)
    assert key(report, "APP").rcu == pytest.approx(containers / 60 + capacity.SCALING_RATE)
    # the table: each app's breaker item, and the one registry partition
    assert report.table_rru == pytest.approx(
        2 * containers / 5 * 0.5 + containers / 60 + capacity.SCALING_RATE
    )


def test_the_busiest_address_is_bounded_by_the_limit_and_one_refusal_per_container() -> None:
    login = op("login", "login", [write("LIMIT#login_ip#ab")], requests=1, cpu_seconds=0.0)
    unlimited = capacity.model([login], Profile(nat_logins=1000, wechat_ms=0))
    assert key(unlimited, "LIMIT#login_ip#*").wcu == 1000
    limited = capacity.model([login], Profile(nat_logins=1000, ip_limit=(30, 60), wechat_ms=0))
    containers = limited.concurrency["login"]
    assert key(limited, "LIMIT#login_ip#*").wcu == pytest.approx((30 + containers) / 60)


def test_the_profile_comes_from_the_command_line() -> None:
    parser = argparse.ArgumentParser()
    capacity.add_arguments(parser)
    args = parser.parse_args([])
    assert capacity.profile_from(args) == Profile()
    args = parser.parse_args(
        ["--logins", "5000", "--apps", "2", "--ip-limit", "30/60", "--user-login-interval", "30"]
    )
    profile = capacity.profile_from(args)
    assert (profile.logins, profile.apps, profile.ip_limit) == (5000, 2, (30, 60))
    assert profile.user_rates["login"] == pytest.approx(1 / 30)
