"""verify: `/auth/verify` through the Lambda handler against the bare `jwt.decode` floor.

(a) the stateless part: the handler with its DynamoDB answered in process (a client replaying
    the GetItem recorded from a real verify), against `jwt.decode` of the same token with the
    same public key (from the served JWKS) checking signature, exp, iat, iss and aud.
    Target: at most 3x the bare decode.
(b) the same verify with the session check against DynamoDB Local, against (a) plus one bare
    consistent GetItem of the same item on the same client. Target: ~1x (the check adds one
    GetItem).
"""

from __future__ import annotations

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

TARGET_STATELESS = 3.0
TARGET_SESSION_CHECK = 1.2  # "adds one GetItem", with room for noise


def run(env: h.Env, *, quick: bool = False, profile: bool = False) -> Section:
    import jwt

    app = h.import_app()
    real = h.new_services(app)
    with h.installed(app, real):
        tokens = h.expect(app, h.login_event(f"verify-{uuid.uuid4().hex[:8]}.1"))
        jwks = h.expect(app, h.api_event("GET", "/.well-known/jwks.json"))
    access = tokens["access_token"]
    event = h.verify_event(access)

    # Record what a verify reads, then answer it from memory.
    recorder = h.Recorder(real.store.client)
    with h.installed(app, h.new_services(app, dynamodb=recorder)):
        answer = h.expect(app, event)
    if answer.get("valid") is not True:
        raise RuntimeError(f"verify of a fresh token answered {answer}")
    stateless = h.new_services(app, dynamodb=h.ReplayClient(real.store.client, recorder.recordings))
    gets = recorder.recordings.get("get_item", [])
    reads = {op: len(calls) for op, calls in recorder.recordings.items()}
    if len(gets) != 1:
        raise RuntimeError(f"expected verify to make one get_item, it made {reads}")
    recorded = gets[0][0]
    get_args = {"TableName": recorded["TableName"], "Key": recorded["Key"], "ConsistentRead": True}

    kid = jwt.get_unverified_header(access)["kid"]
    public_key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key
    settings = real.settings

    def bare_decode() -> Any:
        return jwt.decode(
            access,
            public_key,
            algorithms=["RS256"],
            audience=settings.audience,
            issuer=settings.issuer,
        )

    def handler_with(services: Any) -> Any:
        def call() -> Any:
            app._services = services
            response = app.app(event, h.CONTEXT)
            if response["statusCode"] != 200:
                raise RuntimeError(f"verify answered {response}")
            return response

        return call

    verify_stateless = handler_with(stateless)
    verify_dynamo = handler_with(real)

    def bare_get() -> Any:
        return real.store.client.get_item(**get_args)

    for fn in (bare_decode, verify_stateless, verify_dynamo, bare_get):
        fn()  # warm up
    rounds = 5 if quick else 15
    fast, slow = (50, 5) if quick else (200, 20)
    with h.installed(app, real):  # the subjects switch graphs; the app gets its own back
        samples = interleaved(
            {
                "decode": (bare_decode, fast),
                "stateless": (verify_stateless, fast),
                "dynamo": (verify_dynamo, slow),
                "get": (bare_get, slow),
            },
            rounds=rounds,
        )
        profiled = h.profile_top(verify_stateless, fast) if profile else None
    a_ratio = median(round_ratios(samples["stateless"], samples["decode"]))
    floor_b = [a + g for a, g in zip(samples["stateless"], samples["get"], strict=True)]
    b_ratio = median(round_ratios(samples["dynamo"], floor_b))
    t = {name: median(values) for name, values in samples.items()}

    body = (
        f"Token: RS256, {len(access)} characters. {rounds} rounds, subjects interleaved; "
        "times are medians per call, ratios medians of per-round ratios.\n\n"
        + markdown_table(
            ["subject", "time per call", "baseline", "baseline time", "ratio", "target"],
            [
                ("bare `jwt.decode` (floor)", fmt_ms(t["decode"]), "", "", "", ""),
                (
                    "(a) handler, session check answered in process",
                    fmt_ms(t["stateless"]),
                    "bare `jwt.decode`",
                    fmt_ms(t["decode"]),
                    fmt_ratio(a_ratio),
                    f"<= {TARGET_STATELESS:g}x: {verdict(a_ratio <= TARGET_STATELESS)}",
                ),
                ("bare GetItem, ConsistentRead, DynamoDB Local", fmt_ms(t["get"]), "", "", "", ""),
                (
                    "(b) handler, session check on DynamoDB Local",
                    fmt_ms(t["dynamo"]),
                    "(a) + bare GetItem",
                    fmt_ms(t["stateless"] + t["get"]),
                    fmt_ratio(b_ratio),
                    f"<= {TARGET_SESSION_CHECK:g}x: {verdict(b_ratio <= TARGET_SESSION_CHECK)}",
                ),
            ],
        )
        + f"\n\nDynamoDB calls of one verify (recorded): {reads}."
    )
    if profiled:
        body += "\n\ncProfile of (a), top functions by own time:\n\n" + h.profile_table(
            profiled, fast
        )
    return Section(
        "verify",
        body,
        [
            Summary(
                "verify (a) stateless vs bare jwt.decode",
                fmt_ratio(a_ratio),
                f"<= {TARGET_STATELESS:g}x",
                a_ratio <= TARGET_STATELESS,
            ),
            Summary(
                "verify (b) on DynamoDB Local vs (a) + GetItem",
                fmt_ratio(b_ratio),
                f"<= {TARGET_SESSION_CHECK:g}x",
                b_ratio <= TARGET_SESSION_CHECK,
            ),
        ],
        {"verify_time": t["dynamo"], "verify_stateless_time": t["stateless"]},
    )
