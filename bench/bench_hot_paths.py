"""Hot paths against baselines measured in the same run (the machines are noisy: read ratios).

    .venv/bin/python bench/bench_hot_paths.py [--rounds N]

- verify: AccessTokens.check (header checks, kid lookup, pyjwt with pinned RS256, our claim
  checks) against a bare `jwt.decode` of the same token with the same key.
- refresh: SessionManager.refresh (seal, one conditional UpdateItem returning the item, mint)
  against the bare DynamoDB call it needs (one UpdateItem) plus one RS256 signature, on moto
  in both cases.
- grace replay: a refresh with the just-rotated token (a refused UpdateItem handing back the
  item, hash compare, unseal, mint) against the same baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for name in list(os.environ):
    if name.startswith("AWS_ENDPOINT_URL"):
        del os.environ[name]
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's fake credentials
    AWS_DEFAULT_REGION="us-east-1",
)

import boto3  # noqa: E402
import jwt  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib import runtime, store  # noqa: E402
from chalicelib.settings import Settings  # noqa: E402


def best_of(fn: Callable[[], object], rounds: int, per_round: int) -> float:
    """Median seconds per call over `rounds` rounds of `per_round` calls."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(per_round):
            fn()
        samples.append((time.perf_counter() - started) / per_round)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        client = boto3.client("dynamodb")
        store.create_table(client, "bench")
        settings = Settings(table_name="bench", signing_keys_file=f"{tmp}/keys.json")
        now = int(time.time())
        svc = runtime.build(settings, dynamodb=client, clock=lambda: now)
        key = svc.keys.get().active

        token, _ = svc.access_tokens.mint(subject="u", client_id="c", session_id="s", now=now)

        def bare_decode() -> object:
            return jwt.decode(
                token, key.public_key, algorithms=["RS256"], audience=settings.audience
            )

        def our_check() -> object:
            return svc.access_tokens.check(token, now)

        issued = svc.sessions.start("A" * 22, client_id="c", now=now)
        state = {"token": issued.refresh_token}

        def our_refresh() -> object:
            state["token"] = svc.sessions.refresh(state["token"], now).refresh_token
            return state

        replayed = svc.sessions.start("C" * 22, client_id="c", now=now)
        rotated_from = replayed.refresh_token
        svc.sessions.refresh(rotated_from, now)  # now within grace: every call replays

        def our_grace_replay() -> object:
            return svc.sessions.refresh(rotated_from, now)

        other = svc.sessions.start("B" * 22, client_id="c", now=now)
        dynamo_key = {"pk": {"S": "USER#" + "B" * 22}, "sk": {"S": "SESSION#" + other.session_id}}

        def bare_dynamo_and_sign() -> object:
            client.update_item(
                TableName="bench",
                Key=dynamo_key,
                UpdateExpression="SET #r = :r",
                ExpressionAttributeNames={"#r": "rotated_at"},
                ExpressionAttributeValues={":r": {"N": str(now)}},
            )
            return jwt.encode({"sub": "u"}, key.private_key, algorithm="RS256")

        rows = [
            ("verify vs bare jwt.decode", our_check, bare_decode, 200),
            ("refresh vs UpdateItem+sign", our_refresh, bare_dynamo_and_sign, 30),
            ("grace replay vs UpdateItem+sign", our_grace_replay, bare_dynamo_and_sign, 30),
        ]
        print(f"{'path':45} {'ours':>10} {'baseline':>10} {'ratio':>7}")
        for label, ours, baseline, per_round in rows:
            ours(), baseline()  # warm up
            base_t = best_of(baseline, args.rounds, per_round)
            ours_t = best_of(ours, args.rounds, per_round)
            print(f"{label:45} {ours_t * 1e3:8.3f}ms {base_t * 1e3:8.3f}ms {ours_t / base_t:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
