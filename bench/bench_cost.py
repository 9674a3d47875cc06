"""cost per monthly active user, from this run's measurements (bench/cost.py does the sums):
the per-request durations of the verify and refresh parts, the request units and log bytes of
the refresh part's requests-and-capacity table, the app's routes; the rest is stated.
"""

from __future__ import annotations

from typing import Any

import cost
import harness as h
from common import Section, Summary, fmt_ms, markdown_table

TARGET_PER_MAU = 0.0002  # variant (a) at 1 M MAU
LOGIN_ROW = "login, returning user"  # the monthly login of an existing user


def _routes(app: Any) -> int:
    """The HTTP API's routes: one per app route and method, plus `$default`."""
    return sum(len(entry) for entry in app.app.routes.values()) + 1


def billed_wru(row: dict[str, float]) -> float:
    """Write units as DynamoDB bills them: DynamoDB Local's count, but a transaction's as the
    documented two units per item of up to 1 KB (the login's two items, the session and the
    code's sealed answer, are under 1 KB each; DynamoDB Local reports fewer units for it)."""
    return row["wcu"] - row["transaction_units"] + 2 * row["transaction_items"]


def operations(figures: dict[str, Any]) -> tuple[dict[str, cost.PerRequest], list[tuple]]:
    """The three operations' inputs, and a table row per input saying where it comes from."""
    ops_measured = figures["operations"]
    platform = len(cost.LAMBDA_PLATFORM_LINES.encode())
    access = len(cost.access_log_line(h.REPO_ROOT / "infra" / "resources.yaml").encode())
    login, refresh, verify = (ops_measured[k] for k in (LOGIN_ROW, "refresh", "verify"))
    durations = {
        "login": login["time"] + cost.WECHAT_ROUND_TRIP,
        "refresh": figures["refresh_time"],
        "verify": figures["verify_time"],
    }
    ops = {
        name: cost.PerRequest(
            duration=durations[name],
            wru=billed_wru(row),
            rru=row["rcu"],
            log_bytes=int(row["log_bytes"]) + platform + access,
        )
        for name, row in (("login", login), ("refresh", refresh), ("verify", verify))
    }
    rows = [
        (
            "login",
            f"{fmt_ms(login['time'])} measured (one call, in-process fake WeChat) + "
            f"{fmt_ms(cost.WECHAT_ROUND_TRIP)} assumed for WeChat",
            f"{billed_wru(login):g} / {login['rcu']:g} (DynamoDB Local reports "
            f"{login['wcu']:g} WCU: {login['transaction_units']:g} for a transaction of "
            f"{login['transaction_items']:g} items, billed 2 each)",
            f"{int(login['log_bytes'])} ({int(login['log_lines'])} lines)",
        ),
        (
            "refresh",
            f"{fmt_ms(figures['refresh_time'])} measured (median, refresh part)",
            f"{refresh['wcu']:g} / {refresh['rcu']:g}",
            f"{int(refresh['log_bytes'])} ({int(refresh['log_lines'])} lines)",
        ),
        (
            "verify",
            f"{fmt_ms(figures['verify_time'])} measured (median, verify (b))",
            f"{verify['wcu']:g} / {verify['rcu']:g}",
            f"{int(verify['log_bytes'])} ({int(verify['log_lines'])} lines)",
        ),
    ]
    return ops, rows


def run(sections: list[Section]) -> Section:
    figures: dict[str, Any] = {}
    for section in sections:
        figures.update(section.figures)
    missing = {"operations", "refresh_time", "verify_time"} - set(figures)
    if missing:
        raise RuntimeError("cost needs the verify and refresh parts in the same run")
    app = h.import_app()
    routes = _routes(app)
    ops, rows = operations(figures)
    platform = len(cost.LAMBDA_PLATFORM_LINES.encode())
    access = len(cost.access_log_line(h.REPO_ROOT / "infra" / "resources.yaml").encode())
    per_mau = cost.total(cost.monthly(1_000_000, "a", ops, routes)[0]) / 1_000_000
    body = (
        "Usage per MAU per month: 1 login, 60 refreshes, 300 verified calls; (a) "
        f"{cost.VARIANTS['a']}, (b) {cost.VARIANTS['b']}. us-east-1 list prices, free tiers "
        "ignored (but Cognito's, part of its published price). Durations are this machine's "
        "(x86_64, DynamoDB Local, a whole core); Lambda's arm64 at 512 MB (about a third of a "
        "vCPU) against DynamoDB will differ.\n\n"
        + markdown_table(
            ["operation", "Lambda duration", "WRU / RRU", "app log bytes"],
            rows,
        )
        + f"\n\nEvery request also logs Lambda's START/END/REPORT lines ({platform} bytes, their "
        f"format) and one access log line ({access} bytes: the stage's Format with typical "
        f"values). The API has {routes} routes (app routes and methods, plus `$default`).\n\n"
        + cost.summary_table(ops, routes)
        + "\n\nAt 1 M MAU, (a):\n\n"
        + cost.terms_table(1_000_000, "a", ops, routes)
        + "\n\nAt 1 M MAU, (b):\n\n"
        + cost.terms_table(1_000_000, "b", ops, routes)
        + "\n\nOptional, at 1 M MAU, (a) (auth events with EventBusName, the pre-token hook "
        "with TokenHookArn):\n\n"
        + markdown_table(
            ["term", "arithmetic", "month"],
            [
                (t.name, t.arithmetic, cost.money(t.dollars))
                for t in cost.optional_terms(1_000_000, "a")
            ],
        )  # fmt: skip
        + f"\n\nAWS China (cn-north-1, cn-northwest-1), prices looked up {cost.CN_LOOKED_UP}, "
        "at 1 M MAU, (a):\n\n" + cost.china_table(1_000_000, "a", ops, routes)
    )
    return Section(
        "cost per MAU",
        body,
        [
            Summary(
                "cost per MAU at 1 M MAU, (a)",
                cost.money(per_mau),
                f"<= ${TARGET_PER_MAU}",
                per_mau <= TARGET_PER_MAU,
            )
        ],
    )
