"""bench/cost.py's terms counted for issue 23 (data transfer out, Lambda INIT, EventBridge, the
pre-token hook) and its China column (docs/operators.md, "What it costs"): every term has a
China price or says it was not found; a total is never made of guesses."""

from __future__ import annotations

import sys

import pytest

from tests.infra.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import cost  # noqa: E402

OPS = {
    "login": cost.PerRequest(duration=0.2324, wru=6, rru=0, log_bytes=1041),
    "refresh": cost.PerRequest(duration=0.0085, wru=1, rru=0, log_bytes=1043),
    "verify": cost.PerRequest(duration=0.0079, wru=0, rru=1, log_bytes=1042),
}


def by_name(terms: list) -> dict[str, float]:
    return {t.name: t.dollars for t in terms}


def test_data_transfer_out_and_init_are_counted_in_every_month() -> None:
    terms, totals = cost.monthly(1_000_000, "a", OPS, routes=15)
    names = by_name(terms)
    dto = 1e6 * 1_250 + 60e6 * 1_200
    assert totals["dto_bytes"] == dto
    assert names["data transfer out (the answers)"] == pytest.approx(dto / 1024**3 * 0.09)
    init_gb_s = 61e6 * 0.001 * 1.0 * 0.5
    assert totals["init_gb_s"] == pytest.approx(init_gb_s)
    assert names["Lambda INIT (cold starts, billed since August 2025)"] == pytest.approx(
        init_gb_s * cost.LAMBDA_ARM64_GB_S
    )
    # (b) sends the 300 verified calls' answers too.
    _, totals_b = cost.monthly(1_000_000, "b", OPS, routes=15)
    assert totals_b["dto_bytes"] == dto + 300e6 * 360
    assert cost.total(terms) == pytest.approx(sum(names.values()))


def test_optional_terms_price_events_and_the_hook() -> None:
    names = by_name(cost.optional_terms(1_000_000, "a"))
    assert names["EventBridge (EventBusName): auth events"] == pytest.approx(1.00)
    assert names["pre-token hook (TokenHookArn): its invocations"] == pytest.approx(61 * 0.2)
    assert names["pre-token hook: its duration"] == pytest.approx(
        61e6 * 0.020 * 0.125 * cost.LAMBDA_ARM64_GB_S
    )
    assert names["pre-token hook: wxauth waiting for it"] == pytest.approx(
        61e6 * 0.025 * 0.5 * cost.LAMBDA_ARM64_GB_S
    )
    platform = len(cost.LAMBDA_PLATFORM_LINES.encode())
    assert names["pre-token hook: its log lines"] == pytest.approx(61e6 * platform / 1024**3 * 0.5)


def test_every_term_has_a_china_price_or_says_it_was_not_found() -> None:
    terms, totals = cost.monthly(1_000_000, "a", OPS, routes=15)
    assert {t.name for t in terms} == set(cost.CN_PRICES) == set(cost.quantities(totals, 15))
    for name, price in cost.CN_PRICES.items():
        if price is not None:
            value, source = price
            assert value > 0, name
            assert source.startswith(("https://www.amazonaws.cn/", "https://amazonaws.cn/")), name


def test_the_china_table_multiplies_found_prices_and_never_totals_guesses() -> None:
    table = cost.china_table(1_000_000, "a", OPS, routes=15)
    lines = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()}
    assert "66.00 M WRU" in lines["DynamoDB writes"]
    assert "¥736" in lines["DynamoDB writes"]  # 66 M × ¥11.1538
    assert "¥12.44" in lines["alarms"]  # 20 × ¥0.622
    assert "¥180" in lines["per-route API metrics (DetailedRouteMetrics)"]  # 90 × ¥2
    assert "not found" in lines["HTTP API requests"]
    missing = sum(price is None for price in cost.CN_PRICES.values())
    assert f"{missing} prices not found" in lines["**total**"]
    assert "not computable" in lines["**total**"]
    found = 66 * 11.1538 + 20 * 0.622 + 5 * 2.0 + 90 * 2.0
    assert f"¥{found:,.0f})" in lines["**total**"]
