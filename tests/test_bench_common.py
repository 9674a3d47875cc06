"""The benchmarks' pure helpers (bench/common.py): statistics, markdown, RESULTS.md sections.

No servers and no timing assertions: the benchmarks themselves run with `make bench`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

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
