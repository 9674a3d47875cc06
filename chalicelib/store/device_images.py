"""The mini-program code image of a device login (issue 24, item 3): the `WXACODE` item beside
its login's `DEVICE` item (chalicelib/store/devices.py has the table of both), fetched from
WeChat once per user code under a lease and kept until the code expires. A part of
`DeviceLogins` (its base class), kept apart so that each file stays one concern."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from chalicelib.errors import ConditionFailed
from chalicelib.store.schema import (
    DEVICE_IMAGE,
    EXPIRES_AT,
    Item,
    b,
    device_pk,
    get_b,
    get_n,
    get_s,
    key,
    n,
    s,
)
from chalicelib.store.table import Table


@dataclass(frozen=True)
class DeviceImageRecord:
    """The mini-program code of a user code: while `image` is None, `lease_until` is when the
    request fetching it from WeChat is given up."""

    lease_until: int
    expires_at: int
    image: bytes | None = field(default=None, repr=False)
    content_type: str | None = None


def item_to_device_image(item: Item) -> DeviceImageRecord:
    return DeviceImageRecord(
        lease_until=get_n(item, "lease_until") or 0,
        expires_at=int(item[EXPIRES_AT]["N"]),
        image=get_b(item, "image"),
        content_type=get_s(item, "content_type"),
    )


class DeviceImages:
    """The WXACODE items: read, lease, store, release."""

    _table: Table

    def _image_key(self, user_code: str) -> Item:
        return key(device_pk(user_code), DEVICE_IMAGE)

    def image(self, user_code: str) -> DeviceImageRecord | None:
        item = self._table.get(self._image_key(user_code))
        return item_to_device_image(item) if item else None

    def lease_image(self, user_code: str, *, now: int, lease_until: int, expires_at: int) -> bool:
        """Take the right to fetch the code's image from WeChat, until `lease_until`: unless
        another request holds a live lease, or the image is there and has not expired. One
        guarded PutItem; False: someone else fetches it (or has)."""
        item = {
            **self._image_key(user_code),
            "lease_until": n(lease_until),
            EXPIRES_AT: n(expires_at),
        }
        return self._table.take_lease(item, result="image", now=now)

    def store_image(
        self, user_code: str, *, image: bytes, content_type: str, lease_until: int
    ) -> bool:
        """Keep the fetched image, if the lease `lease_until` is still this request's; False
        if it was lost (nothing written). One UpdateItem."""
        try:
            self._table.call(
                "update_item",
                Key=self._image_key(user_code),
                UpdateExpression="SET #image = :image, #type = :type",
                ConditionExpression="#lease = :lease",
                ExpressionAttributeNames={
                    "#image": "image",
                    "#type": "content_type",
                    "#lease": "lease_until",
                },
                ExpressionAttributeValues={
                    ":image": b(image),
                    ":type": s(content_type),
                    ":lease": n(lease_until),
                },
            )
        except ConditionFailed:
            return False
        return True

    def release_image(self, user_code: str, *, lease_until: int) -> None:
        """Give up a lease without an image (WeChat failed): the next request may fetch."""
        with contextlib.suppress(ConditionFailed):
            self._table.call(
                "delete_item",
                Key=self._image_key(user_code),
                ConditionExpression="#lease = :lease AND attribute_not_exists(#image)",
                ExpressionAttributeNames={"#lease": "lease_until", "#image": "image"},
                ExpressionAttributeValues={":lease": n(lease_until)},
            )
