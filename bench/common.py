"""Small pure helpers shared by the benchmarks: statistics, ratios, markdown, RESULTS.md sections.

Nothing here starts a server or imports the app; `tests/bench/test_common.py` tests it.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


def median(values: Iterable[float]) -> float:
    data = list(values)
    if not data:
        raise ValueError("median of no values")
    return float(statistics.median(data))


def percentile(values: Iterable[float], p: float) -> float:
    """The `p`-th percentile (0..100), linear between the closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError("p must be within 0..100")
    rank = (len(data) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return float(data[low] + (data[high] - data[low]) * (rank - low))


def ratio(subject: float, baseline: float) -> float:
    return subject / baseline if baseline > 0 else math.inf


def fmt_ratio(value: float) -> str:
    return "n/a" if math.isinf(value) or math.isnan(value) else f"{value:.2f}x"


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms * 1000:.0f} µs"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are str()-ed and `|` escaped."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, table has {len(headers)} columns")
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    return "\n".join(lines)


def per_call_seconds(fn: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def interleaved(
    subjects: dict[str, tuple[Callable[[], object], int]], *, rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of each subject (a function and its calls per round) in each round.
    The subjects take turns within a round, in an order that rotates every round, so that a
    noisy neighbour hits them all alike; compare them round by round (`round_ratios`)."""
    names = list(subjects)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fn, calls = subjects[name]
            samples[name].append(per_call_seconds(fn, calls))
    return samples


def round_ratios(subject: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Per-round ratios (rounds measured side by side); their median is the figure to quote."""
    if len(subject) != len(baseline):
        raise ValueError("subject and baseline need the same number of rounds")
    return [ratio(s, b) for s, b in zip(subject, baseline, strict=True)]


_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def parse_importtime(stderr: str) -> list[tuple[str, int, int, int]]:
    """`python -X importtime` lines as (module, self µs, cumulative µs, depth)."""
    rows = []
    for line in stderr.splitlines():
        m = _IMPORTTIME.match(line)
        if m:
            depth = max(0, (len(m.group(3)) - 1) // 2)
            rows.append((m.group(4), int(m.group(1)), int(m.group(2)), depth))
    return rows


def zip_top_level(name: str) -> str:
    """The top-level package a zip entry belongs to (`*.dist-info` folded into one group)."""
    head = name.split("/", 1)[0]
    if "/" not in name:
        return head
    if head.endswith(".dist-info"):
        return "*.dist-info"
    return head + "/"


def replace_section(document: str, label: str, body: str) -> str:
    """Put `body` between the `<!-- bench:LABEL:start/end -->` markers of `document`, replacing
    what was there; a missing section is appended at the end."""
    start, end = f"<!-- bench:{label}:start -->", f"<!-- bench:{label}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    i, j = document.find(start), document.find(end)
    if i != -1 and j > i:
        return document[:i] + block + document[j + len(end) :]
    if not document or document.endswith("\n\n"):
        sep = ""
    else:
        sep = "\n" if document.endswith("\n") else "\n\n"
    return f"{document}{sep}{block}\n"


@dataclass
class Summary:
    """One line of the runner's summary: a figure and its target."""

    part: str
    figure: str
    target: str
    ok: bool | None  # None: no target


@dataclass
class Section:
    title: str
    body: str
    summary: list[Summary] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # raw numbers for later parts (cost)
