"""The mini-program code a device shows (`GET /oauth/device?user_code=...`): WeChat's
`wxa/getwxacodeunlimit` with the user code as `scene` (chalicelib/wechat/wxacode.py), through
the app's access-token broker, made once per user code.

- A container keeps the codes it served (at most CACHE_SIZE, each until its login expires): a
  device's page asking again costs no request.
- Else the image's item (`DEVICE#...`, `WXACODE`): one GetItem.
- Else the login is read (one GetItem: an unknown or expired code is 404, and WeChat is never
  called for it), and the image is fetched under a lease (a guarded PutItem: one request at a
  time calls WeChat for a code, as the broker's lease does for its token), then kept in the
  item (one UpdateItem) until the login expires. A request that finds another holding the lease
  reads the item again, WAIT_POLLS times, then answers 503 with Retry-After: 1. A failed call
  gives the lease back.

WeChat's code is the primary app's mini-program's (WECHAT_APPID), opening AUTH_DEVICE_PAGE of
its AUTH_DEVICE_ENV_VERSION; its page reads the user code from `scene`. What WeChat answered is
served as it is, PNG (as the fake WeChat answers) or JPEG, by its bytes' signature.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.device.codes import display, normalize_user_code
from chalicelib.errors import DeviceImagePending, DeviceLoginNotFound
from chalicelib.store.devices import DeviceLogins

if TYPE_CHECKING:
    from chalicelib.wechat.broker import AccessTokenBroker
    from chalicelib.wechat.wxacode import WxaCode, WxaCodes

CACHE_SIZE = 64
LEASE_SECONDS = 30  # the broker's token fetch and WeChat's call, each with one retry
WAIT_POLLS = (0.1, 0.2, 0.4, 0.8, 1.0)  # seconds between a waiting request's reads: 2.5 s
MAX_STORED_BYTES = 350_000  # DynamoDB items hold 400 KB; a larger code is served, not kept


class DeviceImages:
    """User codes' mini-program codes, made once each (see the module doc)."""

    def __init__(
        self,
        logins: DeviceLogins,
        *,
        broker: AccessTokenBroker,
        codes: WxaCodes,
        page: str | None,
        env_version: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._logins = logins
        self._broker = broker
        self._codes = codes
        self._page = page
        self._env_version = env_version
        self._sleep = sleep
        self._cache: OrderedDict[str, tuple[WxaCode, int]] = OrderedDict()
        self._lock = threading.Lock()

    def image(self, raw_code: object, now: int) -> tuple[WxaCode, int]:
        """The mini-program code of a user code, and when it stops being valid (the login's
        expiry); DeviceLoginNotFound for a code no login holds now."""
        user_code = normalize_user_code(raw_code)
        cached = self._cached(user_code, now)
        if cached is not None:
            return cached
        kept = self._logins.image(user_code)
        if kept is not None and kept.image is not None and now < kept.expires_at:
            return self._put(user_code, _code(kept.image, kept.content_type), kept.expires_at)
        login = self._logins.get(user_code)
        if login is None or login.expired(now):
            raise DeviceLoginNotFound("no device login has this user code now")
        until = login.code_expires_at
        lease_until = now + LEASE_SECONDS
        if not self._logins.lease_image(
            user_code, now=now, lease_until=lease_until, expires_at=until
        ):
            return self._wait(user_code, now)
        try:
            made = self._broker.call(
                lambda token: self._codes.unlimited(
                    token, scene=display(user_code), page=self._page, env_version=self._env_version
                )
            )
        except BaseException:
            self._logins.release_image(user_code, lease_until=lease_until)
            raise
        if len(made.image) <= MAX_STORED_BYTES:
            self._logins.store_image(
                user_code, image=made.image, content_type=made.content_type, lease_until=lease_until
            )
        return self._put(user_code, made, until)

    def _wait(self, user_code: str, now: int) -> tuple[WxaCode, int]:
        for delay in WAIT_POLLS:
            self._sleep(delay)
            kept = self._logins.image(user_code)
            if kept is not None and kept.image is not None:
                return self._put(user_code, _code(kept.image, kept.content_type), kept.expires_at)
        raise DeviceImagePending("the mini-program code is being made; retry in a second")

    def _cached(self, user_code: str, now: int) -> tuple[WxaCode, int] | None:
        with self._lock:
            entry = self._cache.get(user_code)
            if entry is None:
                return None
            if now >= entry[1]:
                del self._cache[user_code]
                return None
            return entry

    def _put(self, user_code: str, code: WxaCode, until: int) -> tuple[WxaCode, int]:
        with self._lock:
            self._cache[user_code] = (code, until)
            self._cache.move_to_end(user_code)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return code, until


def _code(image: bytes, content_type: str | None) -> WxaCode:
    from chalicelib.wechat.wxacode import WxaCode, image_type

    return WxaCode(image, content_type or image_type(image) or "image/png")
