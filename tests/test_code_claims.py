"""Code claims (chalicelib/code_claims.py): waiting with back-off, and a refused code answered
from its claim; with threads, on moto and on DynamoDB Local."""

from __future__ import annotations

import threading
import time

import pytest

from chalicelib.code_claims import CodeClaims
from chalicelib.errors import LoginPending, WeChatCodeRejected
from chalicelib.store import Store
from tests.store.records import CODE, NOW, Backend, backend  # noqa: F401 - fixture


def test_a_rejected_code_with_ten_waiters_makes_one_exchange(backend: Backend) -> None:  # noqa: F811
    """The claimant's exchange is slow and WeChat rejects the code: ten requests with the same
    code wait (real sleeps, backing off) and answer the rejection from the claim."""
    claims = CodeClaims(Store(backend.client, backend.table).logins)
    entered, release = threading.Event(), threading.Event()
    exchanges: list[int] = []
    outcomes: list[BaseException | None] = []

    def exchange() -> str:
        exchanges.append(1)
        entered.set()
        release.wait(5)
        error = WeChatCodeRejected("WeChat rejected the code (errcode 40029)")
        claims.settle(CODE, error, NOW)
        raise error

    def attempt() -> None:
        try:
            claims.run(
                CODE,
                NOW,
                exchange=exchange,
                replay=lambda record: "replayed",
                pending=LoginPending("pending"),
            )
            outcomes.append(None)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            outcomes.append(e)

    threads = [threading.Thread(target=attempt)]
    threads[0].start()
    assert entered.wait(5)
    threads += [threading.Thread(target=attempt) for _ in range(10)]
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(exchanges) == 1
    assert len(outcomes) == 11
    assert all(isinstance(e, WeChatCodeRejected) for e in outcomes), outcomes


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_waiting_backs_off_and_gives_up_after_three_seconds(backend: Backend) -> None:  # noqa: F811
    slept: list[float] = []
    claims = CodeClaims(Store(backend.client, backend.table).logins, sleep=slept.append)
    claims.logins.claim(CODE, now=NOW, lease_until=NOW + 20, expires_at=NOW + 300)
    with pytest.raises(LoginPending):
        claims.run(CODE, NOW, exchange=lambda: "x", replay=lambda r: "r", pending=LoginPending("p"))
    assert slept == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 0.45])


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_a_released_claim_is_taken_by_a_waiter(backend: Backend) -> None:  # noqa: F811
    claims = CodeClaims(Store(backend.client, backend.table).logins)
    claims.logins.claim(CODE, now=NOW, lease_until=NOW + 20, expires_at=NOW + 300)
    claims._sleep = lambda _: claims.logins.release(CODE)  # the claimant failed meanwhile
    pending = LoginPending("p")
    assert claims.run(CODE, NOW, exchange=lambda: "mine", replay=str, pending=pending) == "mine"
