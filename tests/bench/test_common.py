"""The benchmarks' pure helpers (bench/common.py): statistics, markdown, RESULTS.md sections.

No servers and no timing assertions: the benchmarks themselves run with `make bench`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import common  # noqa: E402


def test_median_and_percentile() -> None:
    assert common.median([3, 1, 2]) == 2
    assert common.median([4, 1, 2, 3]) == 2.5
    data = list(range(1, 101))  # 1..100
    assert common.percentile(data, 0) == 1
    assert common.percentile(data, 100) == 100
    assert common.percentile(data, 50) == 50.5
    assert common.percentile(data, 99) == pytest.approx(99.01)
    assert common.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        common.percentile([], 50)
    with pytest.raises(ValueError):
        common.percentile([1], 101)


def test_ratios() -> None:
    assert common.round_ratios([2, 6], [1, 3]) == [2, 2]
    assert common.fmt_ratio(common.ratio(3, 2)) == "1.50x"
    assert common.fmt_ratio(common.ratio(1, 0)) == "n/a"
    with pytest.raises(ValueError):
        common.round_ratios([1], [1, 2])


def test_interleaved_rotates_order_and_counts_calls() -> None:
    order: list[str] = []
    samples = common.interleaved(
        {"a": (lambda: order.append("a"), 2), "b": (lambda: order.append("b"), 1)}, rounds=2
    )
    assert order == ["a", "a", "b", "b", "a", "a"]
    assert [len(v) for v in samples.values()] == [2, 2]


def test_fmt_ms() -> None:
    assert common.fmt_ms(0.000123) == "123 µs"
    assert common.fmt_ms(0.01234) == "12.34 ms"
    assert common.fmt_ms(0.5) == "500 ms"


def test_markdown_table_escapes_and_checks_width() -> None:
    table = common.markdown_table(["a", "b"], [("x|y", 1)])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]
    with pytest.raises(ValueError):
        common.markdown_table(["a"], [(1, 2)])


def test_parse_importtime() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |     _io\n"
        "import time:       300 |        900 |   botocore.compat\n"
        "import time:      1500 |       2400 | app\n"
        "something else\n"
    )
    assert common.parse_importtime(stderr) == [
        ("_io", 120, 120, 2),
        ("botocore.compat", 300, 900, 1),
        ("app", 1500, 2400, 0),
    ]


def test_zip_top_level() -> None:
    assert common.zip_top_level("botocore/data/s3/x.json") == "botocore/"
    assert common.zip_top_level("boto3-1.0.dist-info/RECORD") == "*.dist-info"
    assert common.zip_top_level("app.py") == "app.py"


def test_replace_section_appends_then_replaces() -> None:
    doc = "# Results\n"
    once = common.replace_section(doc, "before", "old figures")
    assert once == (
        "# Results\n\n<!-- bench:before:start -->\nold figures\n<!-- bench:before:end -->\n"
    )
    twice = common.replace_section(once + "tail\n", "before", "new figures\n")
    assert "old figures" not in twice
    assert twice.count("<!-- bench:before:start -->") == 1
    assert "new figures" in twice and twice.endswith("tail\n")
    both = common.replace_section(twice, "after", "after figures")
    assert both.index("before:end") < both.index("after:start")


# -- bench/cost.py: the cost per monthly active user ---------------------------------------------

import cost  # noqa: E402


def test_tiered_prices_each_band_at_its_own_price() -> None:
    assert cost.tiered(61e6, cost.HTTP_API_TIERS, 1e6) == pytest.approx(61.0)
    assert cost.tiered(361e6, cost.HTTP_API_TIERS, 1e6) == pytest.approx(300 + 61 * 0.9)
    assert cost.cognito(10_000, cost.COGNITO_LITE_TIERS) == 0
    lite_1m = 90_000 * 0.0055 + 900_000 * 0.0046
    assert cost.cognito(1_000_000, cost.COGNITO_LITE_TIERS) == pytest.approx(lite_1m)
    assert cost.cognito(10_000_000, cost.COGNITO_LITE_TIERS) == pytest.approx(
        lite_1m + 9_000_000 * 0.00325
    )
    assert cost.cognito(1_000_000, cost.COGNITO_ESSENTIALS_TIERS) == pytest.approx(990_000 * 0.015)


def test_monthly_terms_add_up_and_variant_a_leaves_out_the_verified_calls() -> None:
    ops = {
        "login": cost.PerRequest(duration=0.3, wru=6, rru=0, log_bytes=1000),
        "refresh": cost.PerRequest(duration=0.01, wru=1, rru=0, log_bytes=1000),
        "verify": cost.PerRequest(duration=0.01, wru=0, rru=1, log_bytes=1000),
    }
    terms_a, totals_a = cost.monthly(1_000_000, "a", ops, routes=11)
    terms_b, totals_b = cost.monthly(1_000_000, "b", ops, routes=11)
    assert totals_a["requests"] == 61e6 and totals_b["requests"] == 361e6
    assert totals_a["wru"] == 66e6 and totals_a["rru"] == 0 and totals_b["rru"] == 300e6
    assert totals_a["gb_s"] == pytest.approx((1e6 * 0.3 + 60e6 * 0.01) * 0.5)
    by_name = {t.name: t.dollars for t in terms_a}
    assert by_name["HTTP API requests"] == pytest.approx(61.0)
    assert by_name["Lambda requests"] == pytest.approx(61 * 0.2)
    assert by_name["DynamoDB writes"] == pytest.approx(66 * 0.625)
    assert by_name["per-route API metrics (DetailedRouteMetrics)"] == pytest.approx(11 * 6 * 0.3)
    assert by_name["CloudWatch Logs ingestion"] == pytest.approx(61e9 / 1024**3 * 0.5)
    assert cost.total(terms_a) == pytest.approx(sum(by_name.values()))
    assert cost.total(terms_b) > cost.total(terms_a)
    table = cost.terms_table(1_000_000, "a", ops, routes=11)
    assert "61.00 M × $1.00/M" in table and "**total**" in table


def test_access_log_line_fills_every_variable_of_the_stage_format() -> None:
    resources = Path(__file__).resolve().parents[2] / "infra" / "resources.yaml"
    line = cost.access_log_line(resources)
    assert "$context" not in line and line.endswith("}\n")
    assert '"routeKey":"POST /auth/refresh"' in line
