"""cold start: a fresh interpreter imports `app` and serves its first request (a `/auth/verify`
HTTP API event against DynamoDB Local, key set file prepared beforehand), against a fresh
interpreter importing boto3 alone (the floor; target <= 1.4x on Python 3.13). Both are timed
inside the child (from its first line to the end) and as the whole process seen from outside;
the runs alternate; medians.
Also: the slowest imports of `import app` by cumulative time (`python -X importtime`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import harness as h
from common import (
    Section,
    Summary,
    fmt_ms,
    fmt_ratio,
    markdown_table,
    median,
    parse_importtime,
    round_ratios,
    verdict,
)

TARGET_RATIO = 1.4
MARKER = "BENCH_RESULT "

APP_CHILD = f"""
import time
_t0 = time.perf_counter()
import contextlib, json, os, sys
with contextlib.redirect_stdout(sys.stderr):
    import app
    _t1 = time.perf_counter()
    _r = app.app(json.loads(os.environ["BENCH_EVENT"]), None)
_t2 = time.perf_counter()
print({MARKER!r} + json.dumps({{"import": _t1 - _t0, "total": _t2 - _t0,
      "status": _r["statusCode"], "body": _r.get("body"), "app": app.__file__}}))
"""

BOTO3_CHILD = f"""
import time
_t0 = time.perf_counter()
import boto3
_t1 = time.perf_counter()
import json
print({MARKER!r} + json.dumps({{"import": _t1 - _t0, "total": _t1 - _t0}}))
"""


def _python(
    *args: str, env: dict[str, str], cwd: Path = h.REPO_ROOT
) -> subprocess.CompletedProcess[str]:
    """This interpreter in a fresh process, in the repository (or `cwd`: `import app` imports
    that tree's app.py and chalicelib), with fixed arguments."""
    return subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _child(code: str, env: dict[str, str], cwd: Path = h.REPO_ROOT) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    result = _python("-c", code, env=env, cwd=cwd)
    wall = time.perf_counter() - started
    line = next((x for x in result.stdout.splitlines() if x.startswith(MARKER)), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"child failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(line.removeprefix(MARKER)), wall


def importtime(env: dict[str, str], top: int = 15) -> str:
    result = _python("-X", "importtime", "-c", "import app", env=env)
    rows = parse_importtime(result.stderr)
    if result.returncode != 0 or not rows:
        raise RuntimeError(f"python -X importtime -c 'import app' failed:\n{result.stderr[-3000:]}")
    rows.sort(key=lambda r: r[2], reverse=True)
    return markdown_table(
        ["module", "cumulative", "self", "depth"],
        [
            (f"`{m}`", fmt_ms(cum / 1e6), fmt_ms(own / 1e6), depth)
            for m, own, cum, depth in rows[:top]
        ],
    )


def run(
    env: h.Env, *, quick: bool = False, profile: bool = False, compare: Path | None = None
) -> Section:
    """`compare`: another source tree of the app (e.g. `git archive` of an earlier commit),
    timed in the same alternation as a third subject, to measure a change in one run."""
    app = h.import_app()
    with h.installed(app, h.new_services(app)):
        tokens = h.expect(app, h.login_event(f"cold-{uuid.uuid4().hex[:8]}.1"))
    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    child_env["BENCH_EVENT"] = json.dumps(h.verify_event(tokens["access_token"]))
    child_env["PYTHONDONTWRITEBYTECODE"] = "0"

    # compile .pyc files
    _child(APP_CHILD, child_env), _child(BOTO3_CHILD, child_env)
    if compare is not None:
        compare = compare.resolve()
        first = _child(APP_CHILD, child_env, compare)[0]["app"]
        if Path(first).resolve() != compare / "app.py":
            raise RuntimeError(f"--compare-tree: the child imported {first}, not {compare}")
    runs = 3 if quick else 10
    app_runs: list[tuple[dict[str, Any], float]] = []
    boto_runs: list[tuple[dict[str, Any], float]] = []
    other_runs: list[tuple[dict[str, Any], float]] = []
    subjects = [(APP_CHILD, app_runs, h.REPO_ROOT), (BOTO3_CHILD, boto_runs, h.REPO_ROOT)]
    if compare is not None:
        subjects.append((APP_CHILD, other_runs, compare))
    for i in range(runs):
        order = subjects[i % len(subjects) :] + subjects[: i % len(subjects)]
        for code, into, cwd in order:
            into.append(_child(code, child_env, cwd))
    for result, _ in app_runs + other_runs:
        body = json.loads(result["body"] or "{}")
        if result["status"] != 200 or body.get("valid") is not True:
            raise RuntimeError(f"the first request answered {result['status']} {body}")

    inside = median(
        round_ratios([r["total"] for r, _ in app_runs], [r["total"] for r, _ in boto_runs])
    )
    outside = median(round_ratios([w for _, w in app_runs], [w for _, w in boto_runs]))
    m = {
        "app_import": median(r["import"] for r, _ in app_runs),
        "app_total": median(r["total"] for r, _ in app_runs),
        "app_wall": median(w for _, w in app_runs),
        "boto": median(r["total"] for r, _ in boto_runs),
        "boto_wall": median(w for _, w in boto_runs),
    }
    body = (
        f"{runs} fresh interpreters each, alternating (the order rotates each run); medians. "
        "The child's first request is `POST /auth/verify` (an HTTP API payload 1.0 event) "
        "through `app.app(event, context)` with a valid token of a live "
        "session on DynamoDB Local (so it builds the services, loads the key set file and makes "
        "its first DynamoDB call). `.pyc` files were compiled by a discarded first run.\n\n"
        + markdown_table(
            ["subject", "time", "baseline", "baseline time", "ratio", "target"],
            [
                (
                    "`import app` + first request (inside the child)",
                    fmt_ms(m["app_total"]),
                    "`import boto3` (inside the child)",
                    fmt_ms(m["boto"]),
                    fmt_ratio(inside),
                    f"<= {TARGET_RATIO:g}x: {verdict(inside <= TARGET_RATIO)}",
                ),
                (
                    "of which `import app`",
                    fmt_ms(m["app_import"]),
                    "",
                    "",
                    fmt_ratio(m["app_import"] / m["boto"]),
                    "",
                ),
                *(
                    [
                        (
                            f"the same, tree `{compare}`",
                            fmt_ms(median(r["total"] for r, _ in other_runs)),
                            "`import boto3` (inside the child)",
                            fmt_ms(m["boto"]),
                            fmt_ratio(
                                median(
                                    round_ratios(
                                        [r["total"] for r, _ in other_runs],
                                        [r["total"] for r, _ in boto_runs],
                                    )
                                )
                            ),
                            "",
                        ),
                        (
                            "this tree / that tree (import + first request)",
                            "",
                            "",
                            "",
                            fmt_ratio(
                                median(
                                    round_ratios(
                                        [r["total"] for r, _ in app_runs],
                                        [r["total"] for r, _ in other_runs],
                                    )
                                )
                            ),
                            "",
                        ),
                    ]
                    if compare is not None
                    else []
                ),
                (
                    "whole process (interpreter start to exit)",
                    fmt_ms(m["app_wall"]),
                    "whole process, `import boto3`",
                    fmt_ms(m["boto_wall"]),
                    fmt_ratio(outside),
                    "",
                ),
            ],
        )
        + "\n\nSlowest imports of `python -X importtime -c 'import app'`, by cumulative time "
        "(depth 0 is imported by `app` or the interpreter directly):\n\n" + importtime(child_env)
    )
    return Section(
        "cold start",
        body,
        [
            Summary(
                "cold start vs import boto3",
                fmt_ratio(inside),
                f"<= {TARGET_RATIO:g}x",
                inside <= TARGET_RATIO,
            )
        ],
    )
