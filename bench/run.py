"""Where the time and money go: every benchmark, as markdown, against same-run baselines.

    make bench                              # = .venv/bin/python bench/run.py
    .venv/bin/python bench/run.py [--only verify,refresh,cold,size,http,cost,capacity]
                                  [--quick] [--profile] [--zip PATH] [--compare-tree DIR]
                                  [--write [LABEL]] [capacity's profile: --logins N ...]

Parts (see docs/contributors.md "Performance"): verify, refresh (with DynamoDB requests and
capacity per operation), cold (cold start), size (deployment zip), http (throughput under
concurrency), cost (per monthly active user, from verify's and refresh's figures: needs both),
capacity (the capacity model: partition keys and units per operation against a traffic
profile, bench/capacity.py; it fails the run if a key pattern's hottest key is over 30% of a
partition).
`--write before` / `--write after` puts the markdown into that section of bench/RESULTS.md.
Starts DynamoDB Local (and, for `http`, the local server) and stops them however it ends.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
from common import Section, Summary, markdown_table, replace_section, verdict  # noqa: E402

PARTS = ("verify", "refresh", "cold", "size", "http", "cost", "capacity")
RESULTS = h.REPO_ROOT / "bench" / "RESULTS.md"


def _out(*command: str) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    except OSError:
        return "unknown"
    return (result.stdout or result.stderr).strip()


def machine() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = _out("git", "-C", str(h.REPO_ROOT), "rev-parse", "--short", "HEAD")
    dirty = _out("git", "-C", str(h.REPO_ROOT), "status", "--porcelain", "--untracked-files=no")
    branch = _out("git", "-C", str(h.REPO_ROOT), "rev-parse", "--abbrev-ref", "HEAD")
    java = _out("java", "-version").splitlines()
    return markdown_table(
        ["", ""],
        [
            ("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
            ("git", f"`{commit}` on `{branch}`" + (" (uncommitted changes)" if dirty else "")),
            ("command", f"`{shlex.join(['bench/run.py', *sys.argv[1:]])}`"),
            ("nproc", _out("nproc")),
            ("CPU", cpu),
            ("python", platform.python_version()),
            ("java", java[0] if java else "unknown"),
            ("OS", platform.platform()),
        ],
    )


def render(title: str, sections: list[Section], seconds: float) -> str:
    summary: list[Summary] = [s for section in sections for s in section.summary]
    parts = [
        f"## {title}",
        machine(),
        "### Summary\n\n"
        + markdown_table(
            ["figure", "value", "target", ""],
            [(s.part, s.figure, s.target, "" if s.ok is None else verdict(s.ok)) for s in summary],
        ),
    ]
    parts += [f"### {section.title}\n\n{section.body}" for section in sections]
    parts.append(f"_Run took {seconds:.0f} s._")
    return "\n\n".join(parts) + "\n"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}"
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter loads")
    parser.add_argument(
        "--profile", action="store_true", help="add cProfile tables for verify and refresh"
    )
    parser.add_argument(
        "--zip", type=Path, help="measure this deployment.zip instead of building one"
    )
    parser.add_argument(
        "--compare-tree",
        type=Path,
        metavar="DIR",
        help="cold: also time the app of this source tree (e.g. an earlier commit's), alternating",
    )
    parser.add_argument(
        "--write",
        nargs="?",
        const="latest",
        metavar="LABEL",
        help="also write the markdown into section LABEL of bench/RESULTS.md (default: latest)",
    )
    import capacity

    capacity.add_arguments(parser)
    args = parser.parse_args(argv)
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(only) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    signal.signal(signal.SIGTERM, _raise_interrupt)

    started = time.perf_counter()
    sections: list[Section] = []
    failed = False
    env = None
    with tempfile.TemporaryDirectory(prefix="wxauth-bench-") as tmp:
        try:
            if set(only) - {"size", "cost"}:
                print("bench: starting DynamoDB Local and the fake WeChat", file=sys.stderr)
                env = h.Env(Path(tmp)).start()
            for part in [p for p in PARTS if p in only]:
                print(f"bench: {part}", file=sys.stderr, flush=True)
                try:
                    sections.append(run_part(part, env, args, sections))
                    if sections[-1].figures.get("capacity_ok") is False:
                        failed = True  # a key pattern over its limit fails the run
                except KeyboardInterrupt:
                    raise
                except Exception as e:
                    failed = True
                    detail = "".join(traceback.format_exception(e))
                    print(detail, file=sys.stderr)
                    sections.append(
                        Section(
                            part,
                            f"**failed**: `{type(e).__name__}: {str(e)[:2000]}`",
                            [Summary(part, "failed", "", False)],
                        )
                    )
        except KeyboardInterrupt:
            print("bench: interrupted; stopping everything", file=sys.stderr)
            return 130
        finally:
            if env is not None:
                env.close()
    title = f"Benchmark results ({args.write})" if args.write else "Benchmark results"
    text = render(title, sections, time.perf_counter() - started)
    print(text)
    if args.write:
        document = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        RESULTS.write_text(replace_section(document, args.write, text))
        print(f"bench: wrote section {args.write!r} of {RESULTS}", file=sys.stderr)
    return 1 if failed else 0


def run_part(
    part: str, env: h.Env | None, args: argparse.Namespace, done: list[Section]
) -> Section:
    if part == "verify":
        import bench_verify

        return bench_verify.run(env, quick=args.quick, profile=args.profile)
    if part == "refresh":
        import bench_refresh

        return bench_refresh.run(env, quick=args.quick, profile=args.profile)
    if part == "cold":
        import bench_cold_start

        return bench_cold_start.run(env, quick=args.quick, compare=args.compare_tree)
    if part == "size":
        import bench_package

        return bench_package.run(zip_path=args.zip)
    if part == "cost":
        import bench_cost

        return bench_cost.run(done)
    if part == "capacity":
        import capacity

        return capacity.run(env, args)
    import bench_throughput

    return bench_throughput.run(env, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
