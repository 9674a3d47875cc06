"""Wiring of the device login (issue 24, item 3): the part of the service graph
(chalicelib/runtime.py's `Services`, which inherits it) that serves `/oauth/device*`,
`/auth/device/*` and the device code grant, built at its first use. Kept here so that
runtime.py stays one screen of concerns. Light to import: everything is imported when built."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib.device.codes import GRANT_TYPE as DEVICE_CODE_GRANT

__all__ = ["DEVICE_CODE_GRANT", "DeviceLogin", "DeviceLoginServices", "device_login"]

if TYPE_CHECKING:
    from chalicelib.device.confirm import DeviceConfirmations
    from chalicelib.device.grant import DeviceGrant
    from chalicelib.device.image import DeviceImages


@dataclass(frozen=True)
class DeviceLogin:
    """The device's side (`grant`), the mini-program's (`confirmations`), the image (`images`)."""

    grant: DeviceGrant
    confirmations: DeviceConfirmations
    images: DeviceImages


class DeviceLoginServices:
    """`Services.device`, built at its first use; `Services.oauth` registers
    `device.grant.token` as the device code grant."""

    @cached_property
    def device(self) -> DeviceLogin:
        return device_login(self)


def device_login(services: Any) -> DeviceLogin:
    """Built from a `chalicelib.runtime.Services` (not imported: runtime imports this module):
    its store, sessions, clients, app registry, broker, limiter and events."""
    from chalicelib.device.clients import DeviceClients
    from chalicelib.device.confirm import DeviceConfirmations
    from chalicelib.device.grant import DeviceGrant
    from chalicelib.device.image import DeviceImages
    from chalicelib.limits import DEVICE_LOOKUP_PER_USER, DEVICE_PER_IP, ip_key
    from chalicelib.wechat.wxacode import WxaCodes

    settings, logins, limiter = services.settings, services.store.devices, services.limiter
    grant = DeviceGrant(
        logins,
        clients=DeviceClients(services.apps, services.clients),
        sessions=services.sessions,
        users=services.store.users,
        events=services.events,
        issuer=settings.issuer,
        limit=limiter.hook(DEVICE_PER_IP, ip_key) if limiter is not None else None,
    )
    confirmations = DeviceConfirmations(
        logins,
        events=services.events,
        limit=limiter.hook(DEVICE_LOOKUP_PER_USER) if limiter is not None else None,
    )
    images = DeviceImages(
        logins,
        broker=services.broker,
        codes=WxaCodes(base_url=settings.wechat_api_base, http=services.http, sleep=services.sleep),
        page=settings.device_page,
        env_version=settings.device_env_version,
        sleep=services.sleep,
    )
    return DeviceLogin(grant=grant, confirmations=confirmations, images=images)
