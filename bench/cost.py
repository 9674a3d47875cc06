"""cost per monthly active user (MAU): what the stack bills a month for the usage profile of
issue 12 (per MAU: 1 login, 60 refreshes, 300 verified calls), at 10 k, 1 M and 10 M MAU, in
two variants: (a) the consumers' own API Gateway JWT authorizers verify the 300 calls (they
cost wxauth nothing), (b) every call goes through `POST /auth/verify`.

Pure arithmetic (tested in tests/bench/test_common.py): the per-request inputs (durations,
DynamoDB request units, log bytes) come from the bench's other parts in the same run
(`run.py` passes them), the prices are the us-east-1 list prices below, free tiers ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import markdown_table

# -- prices (us-east-1, USD), as published; every one to be checked before a decision ----------
# "Amazon API Gateway pricing" (aws.amazon.com/api-gateway/pricing): HTTP APIs, per million
# requests, first 300 million a month, then above (tiers: (up to this many a month, price)).
HTTP_API_TIERS = ((300e6, 1.00), (math.inf, 0.90))
# "AWS Lambda pricing" (aws.amazon.com/lambda/pricing): arm64, first 7.5 billion GB-s a month.
LAMBDA_REQUEST_PER_M = 0.20
LAMBDA_ARM64_GB_S = 0.0000133334
# "Amazon DynamoDB pricing for on-demand capacity": per million request units (after the
# November 2024 cut); storage and point-in-time recovery per GB-month.
DYNAMODB_WRU_PER_M = 0.625
DYNAMODB_RRU_PER_M = 0.125
DYNAMODB_STORAGE_GB_MONTH = 0.25
DYNAMODB_PITR_GB_MONTH = 0.20
# "Amazon CloudWatch pricing": logs ingested (standard class) and stored (compressed) per GB;
# an alarm per metric it evaluates (standard resolution); a custom metric (first 10,000); a
# dashboard beyond an account's first three.
LOGS_INGEST_GB = 0.50
LOGS_STORE_GB_MONTH = 0.03
ALARM_METRIC_MONTH = 0.10
CUSTOM_METRIC_MONTH = 0.30
DASHBOARD_MONTH = 3.00
# "AWS Secrets Manager pricing": per secret-month, per 10,000 API calls.
SECRET_MONTH = 0.40
SECRETS_PER_10K_CALLS = 0.05
# "Amazon Cognito pricing" (aws.amazon.com/cognito/pricing), user pools, per MAU a month:
# (up to this many MAU, price per MAU in that band).
COGNITO_LITE_TIERS = (
    (10_000, 0.0),
    (100_000, 0.0055),
    (1_000_000, 0.0046),
    (10_000_000, 0.00325),
    (math.inf, 0.0025),
)
COGNITO_ESSENTIALS_TIERS = ((10_000, 0.0), (math.inf, 0.015))

# "Amazon EC2 On-Demand pricing", data transfer out to the internet, first 10 TB a month: what
# an HTTP API's answers are billed at (the first 100 GB a month, across services, are free:
# ignored like the other free tiers).
DTO_GB = 0.09
# "Amazon EventBridge pricing": custom events put on a bus, per million (64 KB each at most).
EVENTS_PER_M = 1.00

GB = 1024**3
MONTH_SECONDS = 730 * 3600
USAGE = {"login": 1, "refresh": 60, "verify": 300}  # per MAU per month
MAUS = (10_000, 1_000_000, 10_000_000)
VARIANTS = {
    "a": "verification by the consumers' JWT authorizers",
    "b": "every call through `POST /auth/verify`",
}

# -- the stack's fixed parts (infra/resources.yaml; docs/operators.md "Alarms", "Dashboard") ---
# Metrics the alarms evaluate: 5xx + Count, Latency, Errors, Duration, ConcurrentExecutions,
# LoginFailures + LoginSuccesses, Throttles, Read + WriteThrottleEvents, RefreshTokenReuse,
# WeChatTokenForceRefresh, WeChatTokenFetchFailed, WeChatBreakerOpened, EventsDropped; and the
# login function's own Errors, Throttles, Duration and ConcurrentExecutions (issue 21).
ALARM_METRICS = 20
# Custom metrics: 4 metric filters (LoginSuccesses, LoginFailures, Refreshes, WeChatErrors)
# and the EMF metric RefreshTokenReuse.
CUSTOM_METRICS = 5
DETAILED_METRICS_PER_ROUTE = 6  # Count, 4xx, 5xx, Latency, IntegrationLatency, DataProcessed
SECRETS = 2  # the WeChat AppSecret and the signing key set
SECRET_MAX_AGE = 300  # s: each container reads both secrets again this often
MEMORY_GB = 0.5  # .chalice/config.json, stage prod: lambda_memory_size 512
# Assumed, not measured: a WeChat code2session round trip from the function's region.
WECHAT_ROUND_TRIP = 0.2
# Assumed: stored per MAU (user item ~0.3 KB, two live sessions ~1.1 KB each), and the
# compression of JSON log lines in CloudWatch storage; logs are kept a year (LogRetentionDays).
STORED_BYTES_PER_MAU = 2_500
LOG_COMPRESSION = 0.15
LOG_RETENTION_MONTHS = 12
# Data transfer out: each answer's bytes, the local server's bodies (login 999, refresh 946,
# verify 111 bytes, measured 3 December 2026) plus 250 bytes assumed for the HTTP API's status
# line and headers.
RESPONSE_BYTES = {"login": 1_250, "refresh": 1_200, "verify": 360}
# Lambda bills the INIT phase of ZIP functions on managed runtimes since 1 August 2025 ("AWS
# Lambda standardizes billing for INIT Phase", AWS Compute Blog). Assumed: 0.1% of invocations
# start a new container (AWS's figure: "typically under 1%"), each INIT 1.0 s (import app and
# the first request take 455 ms on this machine, bench cold start; Lambda's 512 MB has about a
# third of a vCPU).
COLD_START_SHARE = 0.001
INIT_SECONDS = 1.0
# Optional, with their stack parameters only:
# - EventBusName: auth events, one UserLoggedIn per login (a returning user: no UserCreated);
# - TokenHookArn: the pre-token hook, invoked at each token minted (login and refresh), assumed
#   a 128 MB arm64 function answering in 20 ms, which wxauth waits 25 ms for (the round trip),
#   with Lambda's START/END/REPORT lines in its own log.
EVENTS = {"login": 1, "refresh": 0, "verify": 0}
MINTS = {"login": 1, "refresh": 1, "verify": 0}
HOOK_MEMORY_GB = 0.125
HOOK_DURATION = 0.020
HOOK_WAIT = 0.025


@dataclass(frozen=True)
class PerRequest:
    """One operation's measured figures: Lambda duration (s), DynamoDB request units, and the
    bytes CloudWatch Logs ingests for it (the app's lines, Lambda's own, the access log's)."""

    duration: float
    wru: float
    rru: float
    log_bytes: int


@dataclass(frozen=True)
class Term:
    name: str
    arithmetic: str
    dollars: float


def tiered(quantity: float, tiers: Sequence[tuple[float, float]], unit: float = 1.0) -> float:
    """Price of `quantity` under (up-to, price per `unit`) tiers, each band at its own price."""
    total, floor = 0.0, 0.0
    for ceiling, price in tiers:
        band = max(0.0, min(quantity, ceiling) - floor)
        total += band / unit * price
        floor = ceiling
        if quantity <= ceiling:
            break
    return total


def cognito(mau: int, tiers: Sequence[tuple[float, float]]) -> float:
    return tiered(mau, tiers)


def fixed_terms(routes: int, containers: int) -> list[Term]:
    """What the stack costs a month whatever its traffic (but the Secrets Manager calls,
    which grow with the warm containers)."""
    calls = containers * SECRETS * MONTH_SECONDS / SECRET_MAX_AGE
    return [
        Term(
            "alarms",
            f"{ALARM_METRICS} alarm metrics × ${ALARM_METRIC_MONTH:.2f}",
            ALARM_METRICS * ALARM_METRIC_MONTH,
        ),
        Term("dashboard", f"1 × ${DASHBOARD_MONTH:.2f}", DASHBOARD_MONTH),
        Term(
            "custom metrics (metric filters, EMF)",
            f"{CUSTOM_METRICS} × ${CUSTOM_METRIC_MONTH:.2f}",
            CUSTOM_METRICS * CUSTOM_METRIC_MONTH,
        ),
        Term(
            "per-route API metrics (DetailedRouteMetrics)",
            f"{routes} routes × {DETAILED_METRICS_PER_ROUTE} × ${CUSTOM_METRIC_MONTH:.2f}",
            routes * DETAILED_METRICS_PER_ROUTE * CUSTOM_METRIC_MONTH,
        ),
        Term("secrets", f"{SECRETS} × ${SECRET_MONTH:.2f}", SECRETS * SECRET_MONTH),
        Term(
            "Secrets Manager calls",
            f"{containers} containers × {SECRETS} secrets every {SECRET_MAX_AGE} s = "
            f"{calls:,.0f} calls × ${SECRETS_PER_10K_CALLS:.2f}/10k",
            calls / 10_000 * SECRETS_PER_10K_CALLS,
        ),
    ]


def monthly(
    mau: int, variant: str, ops: dict[str, PerRequest], routes: int
) -> tuple[list[Term], dict[str, float]]:
    """The month's terms for `mau` users in `variant`, and the totals they come from."""
    counts = {op: n * mau for op, n in USAGE.items() if variant == "b" or op != "verify"}
    requests = sum(counts.values())
    seconds = sum(counts[op] * ops[op].duration for op in counts)
    gb_s = seconds * MEMORY_GB
    wru = sum(counts[op] * ops[op].wru for op in counts)
    rru = sum(counts[op] * ops[op].rru for op in counts)
    log_bytes = sum(counts[op] * ops[op].log_bytes for op in counts)
    # warm containers: three times the average concurrency (peaks), at least two of each of
    # the two functions (the login function's and the other's, issue 21)
    containers = max(4, math.ceil(3 * seconds / MONTH_SECONDS))
    stored = mau * STORED_BYTES_PER_MAU / GB
    log_stored = log_bytes / GB * LOG_COMPRESSION * LOG_RETENTION_MONTHS
    dto_bytes = sum(counts[op] * RESPONSE_BYTES[op] for op in counts)
    inits = requests * COLD_START_SHARE
    init_gb_s = inits * INIT_SECONDS * MEMORY_GB
    mix = " + ".join(f"{counts[op]:,.0f} {op}" for op in counts)
    terms = [
        Term(
            "HTTP API requests",
            f"{mix} = {requests / 1e6:,.2f} M × "
            + (
                "$1.00/M"
                if requests <= HTTP_API_TIERS[0][0]
                else f"(300 M × $1.00 + {(requests - 300e6) / 1e6:,.0f} M × $0.90)/M"
            ),
            tiered(requests, HTTP_API_TIERS, 1e6),
        ),
        Term(
            "Lambda requests",
            f"{requests / 1e6:,.2f} M × ${LAMBDA_REQUEST_PER_M:.2f}/M",
            requests / 1e6 * LAMBDA_REQUEST_PER_M,
        ),
        Term(
            "Lambda duration (arm64)",
            " + ".join(f"{counts[op]:,.0f} × {ops[op].duration * 1000:.1f} ms" for op in counts)
            + f" = {seconds:,.0f} s × {MEMORY_GB} GB = {gb_s:,.0f} GB-s × ${LAMBDA_ARM64_GB_S}",
            gb_s * LAMBDA_ARM64_GB_S,
        ),
        Term(
            "DynamoDB writes",
            " + ".join(f"{counts[op]:,.0f} × {ops[op].wru:g}" for op in counts)
            + f" = {wru / 1e6:,.2f} M WRU × ${DYNAMODB_WRU_PER_M}/M",
            wru / 1e6 * DYNAMODB_WRU_PER_M,
        ),
        Term(
            "DynamoDB reads",
            " + ".join(f"{counts[op]:,.0f} × {ops[op].rru:g}" for op in counts)
            + f" = {rru / 1e6:,.2f} M RRU × ${DYNAMODB_RRU_PER_M}/M",
            rru / 1e6 * DYNAMODB_RRU_PER_M,
        ),
        Term(
            "DynamoDB storage + PITR",
            f"{mau:,} × {STORED_BYTES_PER_MAU:,} B = {stored:,.2f} GB × "
            f"${DYNAMODB_STORAGE_GB_MONTH + DYNAMODB_PITR_GB_MONTH:.2f}",
            stored * (DYNAMODB_STORAGE_GB_MONTH + DYNAMODB_PITR_GB_MONTH),
        ),
        Term(
            "CloudWatch Logs ingestion",
            " + ".join(f"{counts[op]:,.0f} × {ops[op].log_bytes:,} B" for op in counts)
            + f" = {log_bytes / GB:,.2f} GB × ${LOGS_INGEST_GB:.2f}",
            log_bytes / GB * LOGS_INGEST_GB,
        ),
        Term(
            "CloudWatch Logs storage (a year kept)",
            f"{log_bytes / GB:,.2f} GB × {LOG_COMPRESSION} compressed × "
            f"{LOG_RETENTION_MONTHS} months = {log_stored:,.2f} GB × ${LOGS_STORE_GB_MONTH:.2f}",
            log_stored * LOGS_STORE_GB_MONTH,
        ),
        Term(
            "data transfer out (the answers)",
            " + ".join(f"{counts[op]:,.0f} × {RESPONSE_BYTES[op]:,} B" for op in counts)
            + f" = {dto_bytes / GB:,.2f} GB × ${DTO_GB:.2f}",
            dto_bytes / GB * DTO_GB,
        ),
        Term(
            "Lambda INIT (cold starts, billed since August 2025)",
            f"{requests:,.0f} × {COLD_START_SHARE:.1%} = {inits:,.0f} INITs × {INIT_SECONDS} s × "
            f"{MEMORY_GB} GB = {init_gb_s:,.0f} GB-s × ${LAMBDA_ARM64_GB_S}",
            init_gb_s * LAMBDA_ARM64_GB_S,
        ),
        *fixed_terms(routes, containers),
    ]
    totals = {
        "requests": requests, "gb_s": gb_s, "wru": wru, "rru": rru, "log_bytes": log_bytes,
        "dto_bytes": dto_bytes, "init_gb_s": init_gb_s, "stored_gb": stored,
        "log_stored_gb": log_stored, "containers": containers,
    }  # fmt: skip
    return terms, totals


def optional_terms(mau: int, variant: str) -> list[Term]:
    """What the optional features add a month: auth events on EventBridge (EventBusName) and the
    pre-token hook (TokenHookArn)."""
    counts = {op: n * mau for op, n in USAGE.items() if variant == "b" or op != "verify"}
    events = sum(counts[op] * EVENTS[op] for op in counts)
    mints = sum(counts[op] * MINTS[op] for op in counts)
    hook_gb_s = mints * HOOK_DURATION * HOOK_MEMORY_GB
    wait_gb_s = mints * HOOK_WAIT * MEMORY_GB
    hook_logs = mints * len(LAMBDA_PLATFORM_LINES.encode())
    return [
        Term(
            "EventBridge (EventBusName): auth events",
            f"{events:,.0f} UserLoggedIn × ${EVENTS_PER_M:.2f}/M",
            events / 1e6 * EVENTS_PER_M,
        ),
        Term(
            "pre-token hook (TokenHookArn): its invocations",
            f"{mints / 1e6:,.2f} M tokens minted × ${LAMBDA_REQUEST_PER_M:.2f}/M",
            mints / 1e6 * LAMBDA_REQUEST_PER_M,
        ),
        Term(
            "pre-token hook: its duration",
            f"{mints:,.0f} × {HOOK_DURATION * 1000:.0f} ms × {HOOK_MEMORY_GB} GB = "
            f"{hook_gb_s:,.0f} GB-s × ${LAMBDA_ARM64_GB_S}",
            hook_gb_s * LAMBDA_ARM64_GB_S,
        ),
        Term(
            "pre-token hook: wxauth waiting for it",
            f"{mints:,.0f} × {HOOK_WAIT * 1000:.0f} ms × {MEMORY_GB} GB = "
            f"{wait_gb_s:,.0f} GB-s × ${LAMBDA_ARM64_GB_S}",
            wait_gb_s * LAMBDA_ARM64_GB_S,
        ),
        Term(
            "pre-token hook: its log lines",
            f"{mints:,.0f} × {len(LAMBDA_PLATFORM_LINES.encode())} B = "
            f"{hook_logs / GB:,.2f} GB × ${LOGS_INGEST_GB:.2f}",
            hook_logs / GB * LOGS_INGEST_GB,
        ),
    ]


def total(terms: Sequence[Term]) -> float:
    return sum(t.dollars for t in terms)


def money(dollars: float) -> str:
    if dollars == 0:
        return "$0"
    if dollars >= 100:
        return f"${dollars:,.0f}"
    if dollars >= 1:
        return f"${dollars:,.2f}"
    return f"${dollars:.4f}" if dollars >= 0.001 else f"${dollars:.7f}"


def summary_table(ops: dict[str, PerRequest], routes: int) -> str:
    rows = []
    for mau in MAUS:
        lite = cognito(mau, COGNITO_LITE_TIERS)
        essentials = cognito(mau, COGNITO_ESSENTIALS_TIERS)
        cells: list[str] = [f"{mau:,}"]
        for variant in VARIANTS:
            month = total(monthly(mau, variant, ops, routes)[0])
            cells += [money(month), money(month / mau)]
        month_a = total(monthly(mau, "a", ops, routes)[0])
        cells += [
            f"{money(lite)} ({money(lite / mau)})",
            f"{money(essentials)} ({money(essentials / mau)})",
            f"{lite / month_a:.0f}x" if lite else "free (under 10,000 MAU)",
        ]
        rows.append(cells)
    return markdown_table(
        [
            "MAU",
            "(a) month",
            "(a) per MAU",
            "(b) month",
            "(b) per MAU",
            "Cognito Lite month (per MAU)",
            "Cognito Essentials month (per MAU)",
            "Lite / (a)",
        ],
        rows,
    )


def terms_table(mau: int, variant: str, ops: dict[str, PerRequest], routes: int) -> str:
    terms, _ = monthly(mau, variant, ops, routes)
    month = total(terms)
    return markdown_table(
        ["term", "arithmetic", "month", "per MAU"],
        [(t.name, t.arithmetic, money(t.dollars), money(t.dollars / mau)) for t in terms]
        + [("**total**", "", f"**{money(month)}**", f"**{money(month / mau)}**")],
    )


# -- AWS China (cn-north-1 Beijing, cn-northwest-1 Ningxia), in CNY -----------------------------
# Looked up on CN_LOOKED_UP in the stored copies of AWS China's price pages that this
# project's search tool holds (the copies show no date of their own; the pages seen give one
# price for both regions). None: the price was not found there, and is not guessed.
CN_LOOKED_UP = "3 December 2026"
CN_DYNAMODB = "https://www.amazonaws.cn/en/dynamodb/pricing/"
CN_CLOUDWATCH = "https://amazonaws.cn/cloudwatch/pricing"
CN_PRICES: dict[str, tuple[float, str] | None] = {  # term -> (CNY per unit, source)
    "HTTP API requests": None,
    "Lambda requests": None,
    "Lambda duration (arm64)": None,
    # Write request units, per million: the stored copy is an older version of the page (no
    # table classes yet); the current page's on-demand prices were not in the stored copies.
    "DynamoDB writes": (11.1538, CN_DYNAMODB),
    "DynamoDB reads": None,
    "DynamoDB storage + PITR": None,
    "CloudWatch Logs ingestion": None,
    "CloudWatch Logs storage (a year kept)": None,
    "data transfer out (the answers)": None,
    "Lambda INIT (cold starts, billed since August 2025)": None,
    "alarms": (0.622, CN_CLOUDWATCH),  # per standard-resolution alarm metric a month
    "dashboard": None,
    "custom metrics (metric filters, EMF)": (2.0, CN_CLOUDWATCH),  # first 10,000, per month
    "per-route API metrics (DetailedRouteMetrics)": (2.0, CN_CLOUDWATCH),  # custom metrics
    "secrets": None,
    "Secrets Manager calls": None,
}


def quantities(totals: dict[str, float], routes: int) -> dict[str, tuple[float, str]]:
    """term -> (how much of it a month, in what unit): what a unit price multiplies."""
    calls = totals["containers"] * SECRETS * MONTH_SECONDS / SECRET_MAX_AGE
    return {
        "HTTP API requests": (totals["requests"] / 1e6, "M requests"),
        "Lambda requests": (totals["requests"] / 1e6, "M requests"),
        "Lambda duration (arm64)": (totals["gb_s"], "GB-s"),
        "DynamoDB writes": (totals["wru"] / 1e6, "M WRU"),
        "DynamoDB reads": (totals["rru"] / 1e6, "M RRU"),
        "DynamoDB storage + PITR": (totals["stored_gb"], "GB-month"),
        "CloudWatch Logs ingestion": (totals["log_bytes"] / GB, "GB"),
        "CloudWatch Logs storage (a year kept)": (totals["log_stored_gb"], "GB-month"),
        "data transfer out (the answers)": (totals["dto_bytes"] / GB, "GB"),
        "Lambda INIT (cold starts, billed since August 2025)": (totals["init_gb_s"], "GB-s"),
        "alarms": (ALARM_METRICS, "alarm metrics"),
        "dashboard": (1, "dashboard"),
        "custom metrics (metric filters, EMF)": (CUSTOM_METRICS, "metrics"),
        "per-route API metrics (DetailedRouteMetrics)": (
            routes * DETAILED_METRICS_PER_ROUTE,
            "metrics",
        ),  # fmt: skip
        "secrets": (SECRETS, "secrets"),
        "Secrets Manager calls": (calls / 10_000, "10k calls"),
    }


def yuan(amount: float) -> str:
    return f"¥{amount:,.2f}" if amount < 100 else f"¥{amount:,.0f}"


def china_table(mau: int, variant: str, ops: dict[str, PerRequest], routes: int) -> str:
    """The month's terms side by side: us-east-1 in USD and China in CNY, where the China
    price was found (else says so); the China total only of the terms it could price."""
    terms, totals = monthly(mau, variant, ops, routes)
    amounts = quantities(totals, routes)
    rows, found, missing = [], 0.0, 0
    for term in terms:
        quantity, unit = amounts[term.name]
        price = CN_PRICES[term.name]
        if price is None:
            missing += 1
            cells = ["not found", "-"]
        else:
            found += quantity * price[0]
            cells = [f"¥{price[0]:g} ({price[1]})", yuan(quantity * price[0])]
        rows.append((term.name, f"{quantity:,.2f} {unit}", money(term.dollars), *cells))
    rows.append((
        "**total**", "", f"**{money(total(terms))}**", f"{missing} prices not found",
        f"not computable (the {len(terms) - missing} priced terms: {yuan(found)})",
    ))  # fmt: skip
    return markdown_table(
        ["term", f"quantity ({mau:,} MAU, ({variant}))", "us-east-1",
         f"China price ({CN_LOOKED_UP})", "China month"],
        rows,
    )  # fmt: skip


# -- log bytes the bench does not see ----------------------------------------------------------

# Lambda's own lines per invocation (text format), e.g. for a warm invocation of 12.34 ms:
LAMBDA_PLATFORM_LINES = (
    "START RequestId: 3f2b9c1e-8d4a-4b7e-9f01-23456789abcd Version: 12\n"
    "END RequestId: 3f2b9c1e-8d4a-4b7e-9f01-23456789abcd\n"
    "REPORT RequestId: 3f2b9c1e-8d4a-4b7e-9f01-23456789abcd\tDuration: 12.34 ms\t"
    "Billed Duration: 13 ms\tMemory Size: 512 MB\tMax Memory Used: 96 MB\t\n"
)
# What the access log's variables typically hold (a WeChat mini-program's user agent).
ACCESS_LOG_VALUES = {
    "requestId": "Ab1Cd2Ef3Gh4Ij5=",
    "extendedRequestId": "Ab1Cd2Ef3Gh4Ij5=",
    "identity.sourceIp": "203.0.113.7",
    "identity.userAgent": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800322c) NetType/WIFI "
        "Language/zh_CN"
    ),
    "requestTime": "01/Dec/2026:21:00:00 +0000",
    "httpMethod": "POST",
    "routeKey": "POST /auth/refresh",
    "path": "/auth/refresh",
    "status": "200",
    "protocol": "HTTP/1.1",
    "domainName": "auth.example.com",
    "responseLength": "1375",
    "responseLatency": "27",
    "integrationLatency": "25",
    "integrationStatus": "200",
    "error.message": "-",
    "integrationErrorMessage": "-",
}


def access_log_line(resources_yaml: Path) -> str:
    """The HTTP API's access log line for a typical request: the stage's `Format` from
    infra/resources.yaml with ACCESS_LOG_VALUES substituted."""
    m = re.search(r"AccessLogSettings:.*?Format: '([^']*)'", resources_yaml.read_text(), re.S)
    if not m:
        raise ValueError(f"no access log Format in {resources_yaml}")
    line = re.sub(
        r"\$context\.([A-Za-z.]+[A-Za-z])",
        lambda v: ACCESS_LOG_VALUES.get(v.group(1), "-"),
        m.group(1),
    )
    return line + "\n"
