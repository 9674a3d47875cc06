"""refresh: one `/auth/refresh` through the Lambda handler on DynamoDB Local, against one bare
UpdateItem of an item of the same size on the same client (the floor; target <= 1.5x), and
what each operation costs in DynamoDB requests, capacity units and WeChat calls, read from
botocore's responses (`ReturnConsumedCapacity=TOTAL`, added by an event hook).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import harness as h
from common import (
    Section,
    Summary,
    fmt_ms,
    fmt_ratio,
    interleaved,
    markdown_table,
    median,
    round_ratios,
    verdict,
)

TARGET_RATIO = 1.5
MAX_LOGIN_REQUESTS = 3


def _same_size_update(client: Any, table: str, key: dict[str, Any], item: dict[str, Any]) -> Any:
    """An UpdateItem rewriting one attribute of a copy of `item` (under another partition key of
    the same length) with a value of the same size: the same item size as the subject's."""
    key_names = tuple(key)
    hash_key = key_names[0]
    original = item[hash_key]["S"]
    copy_item = dict(item)
    copy_item[hash_key] = {"S": ("BENCH#" + original)[: len(original)]}
    client.put_item(TableName=table, Item=copy_item)
    key = {name: copy_item[name] for name in key_names}
    name, value = next(
        (n, v)
        for n, v in sorted(item.items(), key=lambda kv: -len(str(kv[1])))
        if n not in key_names and ("B" in v or "S" in v)
    )
    values = (
        [{"B": os.urandom(len(value["B"]))} for _ in range(2)]
        if "B" in value
        else [
            {"S": uuid.uuid4().hex[: len(value["S"])].ljust(len(value["S"]), "x")} for _ in range(2)
        ]
    )
    state = {"i": 0}

    def update(**extra: Any) -> Any:
        state["i"] ^= 1
        return client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #a = :v",
            ExpressionAttributeNames={"#a": name},
            ExpressionAttributeValues={":v": values[state["i"]]},
            **extra,
        )

    return update


def timing(env: h.Env, *, quick: bool, profile: bool) -> tuple[str, float, str | None, float]:
    app = h.import_app()
    real = h.new_services(app)
    with h.installed(app, real):
        tokens = h.expect(app, h.login_event(f"refresh-{uuid.uuid4().hex[:8]}.1"))
    recorder = h.Recorder(real.store.client)
    with h.installed(app, h.new_services(app, dynamodb=recorder)):
        tokens = h.expect(app, h.refresh_event(tokens["refresh_token"]))
    writes = recorder.recordings.get("update_item") or recorder.recordings.get("put_item")
    if not writes:
        raise RuntimeError(f"a refresh wrote nothing: {list(recorder.recordings)}")
    args = writes[-1][0]
    table = args["TableName"]
    item = real.store.client.get_item(TableName=table, Key=args["Key"], ConsistentRead=True)["Item"]
    bare_update = _same_size_update(real.store.client, table, args["Key"], item)
    floor_wcu = bare_update(ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]["CapacityUnits"]
    state = {"token": tokens["refresh_token"]}

    def refresh() -> Any:
        response = app.app(h.refresh_event(state["token"]), h.CONTEXT)
        if response["statusCode"] != 200:
            raise RuntimeError(f"refresh answered {response}")
        state["token"] = json.loads(response["body"])["refresh_token"]
        return response

    # The parts of a refresh, for the breakdown: its UpdateItem alone (another session of the
    # same shape, rotated with fresh hashes each call) and the RS256 signature of its token.
    with h.installed(app, real):
        other = h.expect(app, h.login_event(f"refresh-{uuid.uuid4().hex[:8]}.2"))["refresh_token"]
    user_id, session_id = other.split(".")[:2]
    stored = real.store.sessions.get(user_id, session_id)
    hashes = {"current": stored.current_hash, "generation": stored.generation or 0}
    sealed_size = len(stored.sealed_current or b"") or 133

    def rotation() -> Any:
        new = os.urandom(32)
        now = real.now()
        session = real.store.sessions.rotate(
            user_id,
            session_id,
            presented_hash=hashes["current"],
            new_hash=new,
            new_generation=hashes["generation"] + 1,
            sealed_new=os.urandom(sealed_size),
            key_hash=stored.key_hash or os.urandom(32),
            now=now,
            idle_expires_at=now + real.settings.refresh_idle_ttl,
        )
        hashes["current"] = new
        hashes["generation"] += 1
        return session

    def signature() -> Any:
        return real.access_tokens.mint(
            subject=user_id, session_id=session_id, client_id="bench", now=real.now()
        )

    refresh(), bare_update(), rotation(), signature()
    rounds = 5 if quick else 15
    calls = 5 if quick else 20
    with h.installed(app, real):
        samples = interleaved(
            {
                "refresh": (refresh, calls),
                "update": (bare_update, calls),
                "rotation": (rotation, calls),
                "signature": (signature, calls),
            },
            rounds=rounds,
        )
        profiled = h.profile_top(refresh, calls) if profile else None
    r = median(round_ratios(samples["refresh"], samples["update"]))
    body = (
        f"{rounds} rounds of {calls} calls each, interleaved; the session item is "
        f"{len(json.dumps(item, default=str))} bytes as JSON, the bare UpdateItem rewrites a copy "
        f"of it ({floor_wcu:g} WCU).\n\n"
        + markdown_table(
            ["subject", "time per call", "baseline", "baseline time", "ratio", "target"],
            [
                (
                    "`/auth/refresh` through the handler, DynamoDB Local",
                    fmt_ms(median(samples["refresh"])),
                    "bare UpdateItem, same item size",
                    fmt_ms(median(samples["update"])),
                    fmt_ratio(r),
                    f"<= {TARGET_RATIO:g}x: {verdict(r <= TARGET_RATIO)}",
                ),
                *(
                    (
                        label,
                        fmt_ms(median(samples[name])),
                        "bare UpdateItem",
                        fmt_ms(median(samples["update"])),
                        fmt_ratio(median(round_ratios(samples[name], samples["update"]))),
                        "",
                    )
                    for name, label in (
                        ("rotation", "of which: its conditional UpdateItem alone"),
                        ("signature", "of which: minting its access token (RS256)"),
                    )
                ),
            ],
        )
    )
    prof = h.profile_table(profiled, calls) if profiled else None
    return body, r, prof, median(samples["refresh"])


def costs(env: h.Env) -> tuple[str, list[Summary], dict[str, dict[str, float]]]:
    app = h.import_app()
    services = h.new_services(app)
    counter = h.DynamoCounter(services.store.client)
    user = uuid.uuid4().hex[:8]
    rows: list[tuple[Any, ...]] = []
    summary: list[Summary] = []
    state: dict[str, Any] = {}
    measured: dict[str, dict[str, float]] = {}

    def measure(label: str, event: dict[str, Any], status: int = 200, target: Any = None) -> Any:
        counter.reset()
        h.LOG_SINK.reset()
        wechat_before = env.wechat.calls
        started = time.perf_counter()
        got, body = h.invoke(app, event)
        elapsed = time.perf_counter() - started
        wechat = env.wechat.calls - wechat_before
        measured[label] = {
            "wcu": counter.write_units,
            "rcu": counter.read_units,
            "log_lines": h.LOG_SINK.lines,
            "log_bytes": h.LOG_SINK.bytes,
            "time": elapsed,
            "transaction_items": counter.transaction_items(),
            "transaction_units": counter.units_by_operation["TransactWriteItems"],
        }
        ok = None if target is None else target(counter, wechat)
        if got != status:
            ok = False
        rows.append(
            (
                label,
                got,
                counter.requests,
                counter.by_operation(),
                f"{counter.read_units:g}",
                f"{counter.write_units:g}",
                wechat,
                h.LOG_SINK.lines,
                h.LOG_SINK.bytes,
                fmt_ms(elapsed),
                "" if ok is None else verdict(ok),
            )
        )
        if counter.http_attempts != counter.requests:
            rows[-1] = (*rows[-1][:-1], f"{rows[-1][-1]} ({counter.http_attempts} HTTP attempts)")
        return body, ok

    def login_target(c: h.DynamoCounter, wechat: int) -> bool:
        return c.requests <= MAX_LOGIN_REQUESTS and wechat == 1

    def refresh_target(c: h.DynamoCounter, wechat: int) -> bool:
        return c.writes == 1 and c.requests == 1

    with h.installed(app, services):
        try:
            first, ok_new = measure(
                "login, new user", h.login_event(f"bench-{user}.1"), target=login_target
            )
            _, ok_ret = measure(
                "login, returning user", h.login_event(f"bench-{user}.2"), target=login_target
            )
            _, ok_union = measure(
                "login, new user with unionid",
                h.login_event(f"union-{user}.1"),
                target=login_target,
            )
            measure(
                "login, returning user with unionid",
                h.login_event(f"union-{user}.2"),
                target=login_target,
            )
            measure("login replay (same code again)", h.login_event(f"union-{user}.2"))
            state["old"] = first["refresh_token"]
            rotated, ok_refresh = measure(
                "refresh", h.refresh_event(first["refresh_token"]), target=refresh_target
            )
            measure("refresh, grace replay (previous token again)", h.refresh_event(state["old"]))
            measure("verify", h.verify_event(rotated["access_token"]))
            measure("logout", h.logout_event(rotated["access_token"]), status=204)
        finally:
            counter.close()
    login_ok = all(ok for ok in (ok_new, ok_ret, ok_union))
    summary = [
        Summary(
            "login DynamoDB requests + WeChat calls",
            "; ".join(f"{r[0].removeprefix('login, ')}: {r[2]} + {r[6]}" for r in rows[:3]),
            f"<= {MAX_LOGIN_REQUESTS} + 1",
            login_ok,
        ),
        Summary("refresh DynamoDB requests", f"{rows[5][3]}", "exactly 1 write", bool(ok_refresh)),
    ]
    table = markdown_table(
        [
            "operation",
            "status",
            "DynamoDB requests",
            "by operation",
            "RCU",
            "WCU",
            "WeChat calls",
            "log lines",
            "log bytes",
            "time (one call)",
            "target",
        ],
        rows,
    )
    note = (
        "Counted by hooks on the app's botocore client (`after-call`: one per API call, after "
        "botocore's retries; consumed capacity from `ReturnConsumedCapacity=TOTAL`, which the "
        "hook adds to every call) and by the fake WeChat. DynamoDB Local reports capacity like "
        "DynamoDB: 1 RCU per 4 KB strongly consistent read, 1 WCU per 1 KB written. Targets: "
        f"login without replay <= {MAX_LOGIN_REQUESTS} DynamoDB requests + 1 WeChat call; "
        "refresh exactly one DynamoDB request, a write. Log lines and bytes: what the app "
        "wrote to stdout for the request (its JSON request line, and EMF metric lines), which "
        "CloudWatch Logs ingests as they are (Lambda adds its START, END and REPORT lines, not "
        "counted here). Time: that one call through the handler, DynamoDB Local and the "
        "in-process fake WeChat (no real WeChat round trip), a single sample.\n\n"
    )
    return note + table, summary, measured


def run(env: h.Env, *, quick: bool = False, profile: bool = False) -> Section:
    body, r, prof, refresh_time = timing(env, quick=quick, profile=profile)
    cost_table, summary, measured = costs(env)
    text = body + "\n\n### Requests and capacity per operation\n\n" + cost_table
    if prof:
        text += "\n\ncProfile of one refresh, top functions by own time:\n\n" + prof
    return Section(
        "refresh",
        text,
        [
            Summary(
                "refresh vs bare UpdateItem",
                fmt_ratio(r),
                f"<= {TARGET_RATIO:g}x",
                r <= TARGET_RATIO,
            ),
            *summary,
        ],
        {"refresh_time": refresh_time, "operations": measured},
    )
