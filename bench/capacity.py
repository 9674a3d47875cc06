"""capacity: the capacity model as code (issue #21). Which partition keys each operation reads
and writes, with their capacity units, measured through the Lambda handler on DynamoDB Local
(bench/capacity_recorder.py), then multiplied by a traffic profile: the load on the hottest key
of each key pattern, the table's read and write units per second, Lambda concurrency per
function and API Gateway requests per second. It fails if a pattern's hottest key takes more
than LIMIT (30%) of what one partition serves, or if one key is named by so many transactions a
second that they would cancel each other.

    make bench BENCH_ARGS="--only capacity"
    .venv/bin/python bench/run.py --only capacity [--logins 20000] [--apps 3] [--refreshes 20000]
        [--verifies 50000] [--phone-binds 500] [--wechat-ms 150] [--dynamodb-ms 10] ...

Everything here but `run` is arithmetic on measurements (tests/bench/test_capacity.py):

- **Units** (DynamoDB's documented rules): a read is 1 unit per 4 KB strongly consistent, 0.5
  eventually consistent; a write 1 unit per 1 KB (of the larger of the item before and after);
  a transaction's items count twice (prepare and commit). A `ConditionCheck` in a transaction:
  AWS documents no rule of its own (the transactions guide says only that every item is read or
  written twice); it is counted here as a transactional write of the checked item, 2 units per
  KB, the conservative reading (a public conformance suite measured 2 write units for a small
  item). A failed conditional write is charged like a write. A Query is charged for the sum of
  the items it returns, rounded up once.
- **Keys**: a partition key's pattern is its prefix (`USER#*`, `LOGIN#*`, `APP`, `BREAKER#*`,
  ...; `LIMIT#<name>#*` keeps the limit's name). Each pattern has a scope, the traffic that
  meets on one key: `user` (one user's or one code's: the per-user rates below), `app` (every
  request of one app), `shared` (every request of every app), `ip` (one source address: the
  per-IP limit's counter), and patterns not listed count as `shared`.
- **Per request, per container, per cold start**: an access in every request of an operation
  takes the operation's rate (on a `user` key: one user's rate; on an `app` key: one app's
  share). An access a container repeats every P seconds (a cache's age: the app registry, the
  breaker, the WeChat token) takes containers / P, where containers is the function's
  concurrency; an access of a container's first request takes Lambda's scaling rate, 1,000 new
  execution environments per 10 s per function (documented), 100 a second.
- **Durations** (concurrency = rate x duration): the operation's CPU time measured through the
  handler here, scaled to the function's share of a vCPU (Lambda gives one vCPU at 1,769 MB,
  documented; the function has 512 MB), plus an estimate per DynamoDB request (`--dynamodb-ms`,
  10: DynamoDB documents single-digit milliseconds) and per WeChat call (`--wechat-ms`, 150:
  WeChat documents none; from a region outside China expect more).
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
PARTITION_RCU = 3000  # what one partition serves a second (DynamoDB's documented limits)
PARTITION_WCU = 1000
LIMIT = 0.30  # of a partition's limit, on the hottest key of any pattern
# A transaction that names an item another ongoing transaction names is cancelled
# (TransactionConflict). A transaction lasts tens of milliseconds: a key named by more than
# this many transactions a second would see a few percent of them cancelled.
MAX_TRANSACTIONS_PER_KEY = 0.2
TRANSACTION_SECONDS = 0.025  # the estimate behind it (2 x 0.2 x 0.025 = 1% cancelled)
SCALING_RATE = 100.0  # new execution environments a second, per function (1,000 per 10 s)
VCPU_MB = 1769  # Lambda: one vCPU's worth at 1,769 MB

SCOPES = {
    "USER#*": "user",  # a user's profile, sessions and listed identities
    "IDENTITY#*": "user",
    "UNIONID#*": "user",
    "LOGIN#*": "user",  # one code's claim
    "PHONE#*": "user",  # one number's owner
    "LIMIT#login_openid#*": "user",
    "LIMIT#refresh_session#*": "user",
    "LIMIT#login_ip#*": "ip",
    "BREAKER#*": "app",
    "WXTOKEN#*": "app",
    "APP": "shared",  # the registry: every app's item in one partition
    "PENDING": "shared",
    "CLIENT": "shared",
}


# -- units ---------------------------------------------------------------------------------------


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
    return 1 + math.ceil(len(digits) / 2)


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one attribute value, by DynamoDB's item-size rules ("Item sizes and
    formats"): strings as UTF-8, binary as bytes, numbers about one byte per two significant
    digits plus one, booleans and null one byte, lists and maps 3 bytes plus their elements
    (one more byte each), sets the sum of their elements."""
    (kind, data), *_ = value.items()
    if kind == "S":
        return len(data.encode("utf-8"))
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(x.encode("utf-8")) for x in data)
    if kind == "NS":
        return sum(_number_size(x) for x in data)
    if kind == "BS":
        return sum(len(x) for x in data)
    if kind == "L":
        return 3 + sum(1 + value_size(x) for x in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + value_size(v) for k, v in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    """Bytes of an item: each attribute's name (UTF-8) and value."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(v) for name, v in item.items())


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> float:
    """Read units of reading `size` bytes (at least one unit: an item that is not there too)."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    if transactional:
        return 2.0 * units
    return float(units) if consistent else units / 2


def write_units(size: int, *, transactional: bool = False) -> float:
    """Write units of writing (or checking, in a transaction) an item of `size` bytes."""
    units = max(1, math.ceil(size / WRITE_UNIT_BYTES))
    return float(2 * units if transactional else units)


def pattern_of(pk: str) -> str:
    """`USER#abc` -> `USER#*`; `LIMIT#login_ip#ab12` -> `LIMIT#login_ip#*`; `APP` -> `APP`."""
    head, sep, rest = pk.partition("#")
    if not sep:
        return head
    if head == "LIMIT":
        return f"LIMIT#{rest.partition('#')[0]}#*"
    return f"{head}#*"


def scope_of(pattern: str) -> str:
    return SCOPES.get(pattern, "shared")


# -- measurements ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """One read, write or check of one partition key by one request, with its units."""

    pk: str
    kind: str  # "read" or "write" (a transaction's ConditionCheck is a "write", see above)
    units: float
    transactional: bool = False
    operation: str = ""  # the DynamoDB operation (GetItem, TransactWriteItems, ...)
    consistent: bool = True

    @property
    def pattern(self) -> str:
        return pattern_of(self.pk)

    def signature(self) -> tuple[str, str, str, bool, bool]:
        """What an access is, whatever user or code it is for: to compare two requests."""
        return (self.pattern, self.kind, self.operation, self.transactional, self.consistent)


@dataclass(frozen=True)
class Periodic:
    """An access a container repeats every `period` seconds (a cache's age), whatever its
    traffic; `period` 0: at its first request only (a cold start)."""

    access: Access
    period: float


@dataclass
class Measured:
    """One operation as measured through the handler: a steady request's accesses, a
    container's periodic and cold-start ones, its DynamoDB requests, WeChat calls and CPU."""

    name: str
    function: str
    per_request: list[Access]
    periodic: list[Periodic] = field(default_factory=list)
    requests: int = 0
    wechat_calls: int = 0
    cpu_seconds: float = 0.0
    local_units: float | None = None  # what DynamoDB Local reported for the steady request


@dataclass(frozen=True)
class Profile:
    """The traffic (requests a second), the per-user assumptions, and the estimates."""

    logins: float = 20_000
    apps: int = 3
    refreshes: float = 20_000
    verifies: float = 50_000
    phone_binds: float = 500
    # One user's (or one code's) requests a second: a user logs in at most once a minute,
    # refreshes at most once a minute (every access token lives 30 minutes), binds a phone at
    # most once a minute, and its backend verifies its token at most 10 times a second.
    user_rates: Mapping[str, float] = field(
        default_factory=lambda: {
            "login": 1 / 60,
            "refresh": 1 / 60,
            "verify": 10.0,
            "phone": 1 / 60,
        }
    )
    nat_logins: float = 1000.0  # logins a second behind the busiest address (a carrier NAT)
    ip_limit: tuple[int, int] | None = None  # AUTH_LIMIT_LOGIN_PER_IP as (count, seconds)
    wechat_ms: float = 150.0
    dynamodb_ms: float = 10.0
    memory_mb: int = 512

    def rate(self, operation: str) -> float:
        return {
            "login": self.logins,
            "refresh": self.refreshes,
            "verify": self.verifies,
            "phone": self.phone_binds,
        }[operation]

    def app_rate(self, operation: str) -> float:
        """The share of one app: logins spread over the apps; the rest taken as one app's
        (phone bindings are the primary app's; refresh and verify touch no app key)."""
        rate = self.rate(operation)
        return rate / self.apps if operation == "login" else rate


# -- the model -------------------------------------------------------------------------------------


@dataclass
class KeyLoad:
    pattern: str
    scope: str
    rcu: float = 0.0  # on the hottest key of the pattern, a second
    wcu: float = 0.0
    transactions: float = 0.0  # transactions a second naming the hottest key
    sources: dict[str, float] = field(default_factory=dict)  # what puts load on it: rate/s

    @property
    def rcu_share(self) -> float:
        return self.rcu / PARTITION_RCU

    @property
    def wcu_share(self) -> float:
        return self.wcu / PARTITION_WCU

    @property
    def ok(self) -> bool:
        return (
            self.rcu_share <= LIMIT
            and self.wcu_share <= LIMIT
            and self.transactions <= MAX_TRANSACTIONS_PER_KEY
        )


@dataclass
class Report:
    profile: Profile
    measured: list[Measured]
    keys: list[KeyLoad]
    durations: dict[str, float]  # seconds per operation
    concurrency: dict[str, float]  # per function
    table_rru: float
    table_wru: float
    api_rps: float

    @property
    def ok(self) -> bool:
        return all(key.ok for key in self.keys)


def duration(m: Measured, profile: Profile) -> float:
    """Seconds one request holds its Lambda: CPU scaled to the function's vCPU share, and the
    estimates per DynamoDB request and WeChat call."""
    cpu = m.cpu_seconds * max(1.0, VCPU_MB / profile.memory_mb)
    return cpu + m.requests * profile.dynamodb_ms / 1000 + m.wechat_calls * profile.wechat_ms / 1000


def _by_key(accesses: Iterable[Access]) -> dict[str, list[Access]]:
    grouped: dict[str, list[Access]] = defaultdict(list)
    for access in accesses:
        grouped[access.pk].append(access)
    return grouped


def _hottest_per_request(accesses: Sequence[Access]) -> dict[str, tuple[float, float, int]]:
    """Per pattern: the (read units, write units, transactions) one request puts on the one key
    of the pattern it touches most (a user's login touches its partition several times)."""
    best: dict[str, tuple[float, float, int]] = {}
    for pk, on_key in _by_key(accesses).items():
        reads = sum(a.units for a in on_key if a.kind == "read")
        writes = sum(a.units for a in on_key if a.kind == "write")
        transactions = 1 if any(a.transactional for a in on_key) else 0
        pattern = pattern_of(pk)
        if pattern not in best or reads + writes > sum(best[pattern][:2]):
            best[pattern] = (reads, writes, transactions)
    return best


def ip_rate(profile: Profile, containers: float) -> float:
    """Requests a second on the busiest address's counter: its logins, bounded by the limit's
    count and one refused write per container per window (chalicelib/limits.py)."""
    if profile.ip_limit is None:
        return profile.nat_logins
    count, seconds = profile.ip_limit
    return min(profile.nat_logins, (count + containers) / seconds)


def model(measured: Sequence[Measured], profile: Profile) -> Report:
    """The loads of `profile` from the measured operations (see the module doc)."""
    durations = {m.name: duration(m, profile) for m in measured}
    concurrency: dict[str, float] = defaultdict(float)
    for m in measured:
        concurrency[m.function] += profile.rate(m.name) * durations[m.name]
    keys: dict[str, KeyLoad] = {}

    def load(pattern: str) -> KeyLoad:
        if pattern not in keys:
            keys[pattern] = KeyLoad(pattern, scope_of(pattern))
        return keys[pattern]

    table_rru = table_wru = 0.0
    for m in measured:
        rate = profile.rate(m.name)
        for access in m.per_request:
            if access.kind == "read":
                table_rru += rate * access.units
            else:
                table_wru += rate * access.units
        for pattern, (reads, writes, transactional) in _hottest_per_request(m.per_request).items():
            key = load(pattern)
            scope = key.scope
            if scope == "user":
                on_key = profile.user_rates.get(m.name, rate)
            elif scope == "app":
                on_key = profile.app_rate(m.name)
            elif scope == "ip":
                on_key = ip_rate(profile, concurrency[m.function])
            else:
                on_key = rate
            key.rcu += on_key * reads
            key.wcu += on_key * writes
            key.transactions += on_key * transactional
            key.sources[m.name] = key.sources.get(m.name, 0.0) + on_key
    seen: set[tuple[str, tuple[str, str, str, bool, bool], float]] = set()
    for m in measured:
        containers = concurrency[m.function]
        for periodic in m.periodic:
            mark = (m.function, periodic.access.signature(), periodic.period)
            if mark in seen:  # the same cache, met by two operations of one function
                continue
            seen.add(mark)
            access = periodic.access
            per_second = SCALING_RATE if periodic.period == 0 else containers / periodic.period
            key = load(access.pattern)
            units = per_second * access.units
            copies = profile.apps if key.scope == "app" else 1
            if access.kind == "read":
                key.rcu += units
                table_rru += units * copies
            else:
                key.wcu += units
                table_wru += units * copies
            when = "each cold start" if periodic.period == 0 else f"every {periodic.period:g} s"
            label = f"{m.function} containers, {access.kind} {when}"
            key.sources[label] = key.sources.get(label, 0.0) + per_second
    api_rps = sum(profile.rate(m.name) for m in measured)
    return Report(
        profile=profile,
        measured=list(measured),
        keys=sorted(keys.values(), key=lambda k: -max(k.rcu_share, k.wcu_share)),
        durations=durations,
        concurrency=dict(concurrency),
        table_rru=table_rru,
        table_wru=table_wru,
        api_rps=api_rps,
    )


# -- the tables ------------------------------------------------------------------------------------


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(report: Report) -> str:
    p = report.profile
    operations = _table(
        [
            "operation",
            "function",
            "DynamoDB requests",
            "RCU",
            "WCU",
            "DynamoDB Local's figure",
            "WeChat calls",
            "CPU here",
            "duration on Lambda (est.)",
        ],
        [
            (
                m.name,
                m.function,
                m.requests,
                f"{sum(a.units for a in m.per_request if a.kind == 'read'):g}",
                f"{sum(a.units for a in m.per_request if a.kind == 'write'):g}",
                "" if m.local_units is None else f"{m.local_units:g}",
                m.wechat_calls,
                f"{1000 * m.cpu_seconds:.1f} ms",
                f"{1000 * report.durations[m.name]:.0f} ms",
            )
            for m in report.measured
        ],
    )
    keys = _table(
        [
            "key pattern",
            "scope",
            "hottest key: RCU/s",
            "of 3,000",
            "WCU/s",
            "of 1,000",
            "transactions/s",
            "",
            "from",
        ],
        [
            (
                f"`{k.pattern}`",
                k.scope,
                f"{k.rcu:,.1f}",
                _pct(k.rcu_share),
                f"{k.wcu:,.1f}",
                _pct(k.wcu_share),
                f"{k.transactions:,.3g}",
                "ok" if k.ok else "**over**",
                "; ".join(f"{source}: {rate:,.4g}/s" for source, rate in k.sources.items()),
            )
            for k in report.keys
        ],
    )
    total_concurrency = sum(report.concurrency.values())
    quotas = _table(
        ["what", "needed at this profile", "default quota", "raise it?"],
        [
            (
                "API Gateway requests/s (account, region)",
                f"{report.api_rps:,.0f}",
                "10,000 (burst 5,000)",
                "yes" if report.api_rps > 10_000 else "no",
            ),
            *(
                (
                    f"Lambda concurrency, {function} function",
                    f"{c:,.0f}",
                    "",
                    "",
                )
                for function, c in sorted(report.concurrency.items())
            ),
            (
                "Lambda concurrency (account, region; +100 Lambda keeps unreserved)",
                f"{total_concurrency + 100:,.0f}",
                "1,000",
                "yes" if total_concurrency + 100 > 1000 else "no",
            ),
            (
                "DynamoDB table read units/s (on-demand)",
                f"{report.table_rru:,.0f}",
                "40,000 per table; a new table serves 12,000 at once",
                "yes" if report.table_rru > 12_000 else "no",
            ),
            (
                "DynamoDB table write units/s (on-demand)",
                f"{report.table_wru:,.0f}",
                "40,000 per table; a new table serves 4,000 at once",
                "yes" if report.table_wru > 4_000 else "no",
            ),
        ],
    )
    over = [k.pattern for k in report.keys if not k.ok]
    verdict = (
        f"**Over the limit: {', '.join(over)}.**"
        if over
        else f"Every key pattern's hottest key stays within {100 * LIMIT:.0f}% of a partition."
    )
    profile = (
        f"Profile: {p.logins:,.0f} logins/s over {p.apps} apps, {p.refreshes:,.0f} refreshes/s,"
        f" {p.verifies:,.0f} verifies/s, {p.phone_binds:,.0f} phone bindings/s. One user:"
        + ", ".join(f" {op} {r:.3g}/s" for op, r in p.user_rates.items())
        + f". WeChat {p.wechat_ms:g} ms a call and DynamoDB {p.dynamodb_ms:g} ms a request"
        f" (estimates); {p.memory_mb} MB functions."
        + (
            f" AUTH_LIMIT_LOGIN_PER_IP {p.ip_limit[0]}/{p.ip_limit[1]}, busiest address"
            f" {p.nat_logins:,.0f} logins/s."
            if p.ip_limit
            else ""
        )
    )
    return "\n\n".join(
        [
            profile,
            "Per operation (measured through the handler on DynamoDB Local):\n\n" + operations,
            f"Hottest key per pattern (limit {100 * LIMIT:.0f}% of 3,000 RCU / 1,000 WCU per"
            f" partition; at most {MAX_TRANSACTIONS_PER_KEY:g} transactions/s naming one key):"
            "\n\n" + keys,
            "Quotas:\n\n" + quotas,
            verdict,
        ]
    )


# -- the command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Profile()
    group = parser.add_argument_group("capacity profile (the `capacity` part)")
    group.add_argument("--logins", type=float, default=d.logins, help="logins a second")
    group.add_argument("--apps", type=int, default=d.apps, help="apps the logins spread over")
    group.add_argument("--refreshes", type=float, default=d.refreshes)
    group.add_argument("--verifies", type=float, default=d.verifies)
    group.add_argument("--phone-binds", type=float, default=d.phone_binds)
    group.add_argument("--wechat-ms", type=float, default=d.wechat_ms, help="per WeChat call")
    group.add_argument("--dynamodb-ms", type=float, default=d.dynamodb_ms, help="per request")
    group.add_argument(
        "--user-login-interval",
        type=float,
        default=60,
        help="seconds between one user's logins (and refreshes, phone bindings) at most",
    )
    group.add_argument(
        "--user-verifies", type=float, default=10, help="verifies a second of one user at most"
    )
    group.add_argument(
        "--ip-limit",
        metavar="COUNT/SECONDS",
        help="measure with AUTH_LIMIT_LOGIN_PER_IP set (default: unset, as deployed)",
    )
    group.add_argument(
        "--nat-logins", type=float, default=d.nat_logins, help="logins/s behind one address"
    )


def profile_from(args: argparse.Namespace) -> Profile:
    interval = args.user_login_interval
    ip_limit = None
    if args.ip_limit:
        count, _, seconds = args.ip_limit.partition("/")
        ip_limit = (int(count), int(seconds))
    return Profile(
        logins=args.logins,
        apps=args.apps,
        refreshes=args.refreshes,
        verifies=args.verifies,
        phone_binds=args.phone_binds,
        user_rates={
            "login": 1 / interval,
            "refresh": 1 / interval,
            "verify": args.user_verifies,
            "phone": 1 / interval,
        },
        nat_logins=args.nat_logins,
        ip_limit=ip_limit,
        wechat_ms=args.wechat_ms,
        dynamodb_ms=args.dynamodb_ms,
    )


def run(env: Any, args: argparse.Namespace) -> Any:
    """The bench part: measure (DynamoDB Local, the fake WeChat), model, render."""
    from capacity_recorder import measure_all
    from common import Section, Summary

    profile = profile_from(args)
    measured, memory_mb = measure_all(env, quick=args.quick, ip_limit=args.ip_limit)
    profile = Profile(**{**profile.__dict__, "memory_mb": memory_mb})
    report = model(measured, profile)
    hottest = max(report.keys, key=lambda k: max(k.rcu_share, k.wcu_share))
    return Section(
        "capacity",
        render(report),
        [
            Summary(
                "capacity: hottest key",
                f"`{hottest.pattern}` {_pct(max(hottest.rcu_share, hottest.wcu_share))}",
                f"<= {100 * LIMIT:.0f}% of a partition",
                report.ok,
            )
        ],
        {"capacity_ok": report.ok},
    )
