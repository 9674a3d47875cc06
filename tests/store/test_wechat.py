"""A third-party platform's verify ticket (issue 24, item 4), on moto and DynamoDB Local. The
brokered access-token items are tested with the broker (tests/wechat/test_broker.py)."""

from __future__ import annotations

from chalicelib.store import Store
from tests.store.records import NOW, Backend

PLATFORM = "wx-component-platform"


def test_the_latest_ticket_is_kept_an_older_one_is_not(store: Store, backend: Backend) -> None:
    tickets = store.wechat
    assert tickets.ticket(PLATFORM) is None

    assert tickets.put_ticket(
        PLATFORM, sealed=b"\x00first", create_time=NOW, now=NOW + 1, expires_at=NOW + 90000
    )
    assert tickets.put_ticket(
        PLATFORM, sealed=b"\x00second", create_time=NOW + 600, now=NOW + 601, expires_at=NOW + 1
    )
    # a push replayed, or delivered late: not kept
    assert not tickets.put_ticket(
        PLATFORM, sealed=b"\x00first", create_time=NOW, now=NOW + 700, expires_at=NOW + 90000
    )

    assert tickets.ticket(PLATFORM) == (b"\x00second", NOW + 600)
    item = backend.item(f"WXTOKEN#{PLATFORM}", "TICKET")
    assert item is not None and item["received_at"] == {"N": str(NOW + 601)}
    assert tickets.get(PLATFORM) is None  # the brokered token's item is another one
