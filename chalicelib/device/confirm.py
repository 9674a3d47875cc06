"""The mini-program's side of a device login: a signed-in user who scanned its code (the page
reads the user code from `scene`) sees who asks and confirms or denies it, once.

- `GET /auth/device/{user_code}`: the login as the user may see it (`login_json`): the client,
  the device's network (its IP masked as `GET /auth/sessions` masks it: /24, /48) and
  User-Agent, when it was asked, the seconds left, and its `status` (`pending`, `confirmed`,
  `denied`, `expired`). One GetItem.
- `POST /auth/device/confirm`, `POST /auth/device/deny` (`{"user_code": ...}`): one guarded
  UpdateItem from `pending` to `confirmed` (with the user's id: the device's session will be
  this user's) or `denied`; the event DeviceLoginConfirmed or DeviceLoginDenied after it. A
  login already decided, or expired, is refused (400 `invalid_grant`, `reason`
  `device_login_decided` or `device_login_expired`); an unknown code is 404 `not_found`.

Each of the three first counts one request of the user against AUTH_LIMIT_DEVICE_LOOKUP_PER_USER
(one UpdateItem; RFC 8628 §5.1: user codes are short, so guessing them is rate-limited).
"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.device.codes import display, normalize_user_code
from chalicelib.devices import masked_ip
from chalicelib.errors import DeviceLoginClosed, DeviceLoginNotFound, DeviceLoginRefused
from chalicelib.events import Events
from chalicelib.store.devices import CONFIRMED, DENIED, ISSUED, DeviceLoginRecord, DeviceLogins
from chalicelib.tokens.access import seconds_left

EXPIRED = "expired"


def login_status(login: DeviceLoginRecord, now: int) -> str:
    """What the user is told: `confirmed` once the device has its tokens too, `expired` for a
    login nobody decided (or whose device never came for its tokens) in its five minutes."""
    if login.status == ISSUED:
        return CONFIRMED
    if login.status != DENIED and login.expired(now):
        return EXPIRED
    return login.status


def login_json(user_code: str, login: DeviceLoginRecord, now: int) -> dict[str, object]:
    """A device login as its user may see it: never a hash, a code of the device's, or an id."""
    return {
        "user_code": display(user_code),
        "client_id": login.client_id,
        "status": login_status(login, now),
        "created_at": login.created_at,
        "expires_in": seconds_left(login.code_expires_at, now),
        "source_ip": masked_ip(login.source_ip),
        "user_agent": login.user_agent,
    }


class DeviceConfirmations:
    """What a signed-in user may do with a device login's user code (see the module doc)."""

    def __init__(
        self,
        logins: DeviceLogins,
        *,
        events: Events,
        limit: Callable[[str, int], None] | None = None,
    ) -> None:
        """`limit(user_id, now)`: AUTH_LIMIT_DEVICE_LOOKUP_PER_USER (None: no limit)."""
        self._logins = logins
        self._events = events
        self._limit = limit

    def show(self, raw_code: object, user_id: str, now: int) -> dict[str, object]:
        user_code = normalize_user_code(raw_code)
        if self._limit is not None:
            self._limit(user_id, now)
        login = self._logins.get(user_code)
        if login is None:
            raise DeviceLoginNotFound("no device login has this user code")
        return login_json(user_code, login, now)

    def confirm(self, raw_code: object, user_id: str, now: int) -> dict[str, object]:
        return self._decide(raw_code, user_id, now, CONFIRMED)

    def deny(self, raw_code: object, user_id: str, now: int) -> dict[str, object]:
        return self._decide(raw_code, user_id, now, DENIED)

    def _decide(self, raw_code: object, user_id: str, now: int, status: str) -> dict[str, object]:
        user_code = normalize_user_code(raw_code)
        if self._limit is not None:
            self._limit(user_id, now)
        try:
            login = self._logins.decide(user_code, status=status, user_id=user_id, now=now)
        except DeviceLoginRefused as refused:
            if refused.login is None:
                raise DeviceLoginNotFound("no device login has this user code") from refused
            if refused.login.status in (CONFIRMED, DENIED, ISSUED):
                raise DeviceLoginClosed(
                    "this device login was already confirmed or denied",
                    reason="device_login_decided",
                ) from refused
            raise DeviceLoginClosed(
                "this device login expired: start a new one on the device",
                reason="device_login_expired",
            ) from refused
        emit = (
            self._events.device_login_confirmed
            if status == CONFIRMED
            else self._events.device_login_denied
        )
        emit(user_id, client_id=login.client_id, device_login_id=login.device_login_id, now=now)
        return login_json(user_code, login, now)
