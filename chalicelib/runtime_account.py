"""Wiring of the signed-in user's own services, a mixin of `runtime.Services` (kept apart so
that each file stays one screenful of concerns): the app of a session with its WeChat client and
broker, `/me` and its profile (issue 25, item 4), encrypted open data (issue 25, item 5).
Each is built at its first use, as the other services are."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.account import Account
    from chalicelib.identity.apps import AppRegistry
    from chalicelib.identity.graph import IdentityGraph
    from chalicelib.logs import Metrics
    from chalicelib.open_data import OpenData
    from chalicelib.phone import AppPhones
    from chalicelib.profile import Profiles
    from chalicelib.settings import Settings
    from chalicelib.store import Store
    from chalicelib.wechat.broker import AccessTokenBroker
    from chalicelib.wechat.client import WeChatClient


class AccountServices:
    """What `runtime.Services` gets from here; it gives these attributes in return."""

    settings: Settings
    store: Store
    apps: AppRegistry | None
    metrics: Metrics | None
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    wechat: WeChatClient  # the primary app's (Services' own cached properties)
    broker: AccessTokenBroker
    graph: IdentityGraph

    @cached_property
    def session_apps(self) -> AppPhones:
        """The app of a session (by its `client_id`), with its WeChat client and a broker of its
        own server access_token: phone codes, the profile's text check, decrypt's checksession."""
        from chalicelib.phone import AppPhones, PhoneApp

        assert self.apps is not None
        primary = PhoneApp(self.settings.wechat_appid, self.wechat, self.broker)
        return AppPhones(self.apps, primary, self.store.wechat, clock=self.clock, sleep=self.sleep)

    @cached_property
    def account(self) -> Account:
        """The signed-in user's own account (`/me`, `PATCH /me`)."""
        from chalicelib.account import Account

        return Account(self.store.users, self.graph, self.profiles)

    @cached_property
    def profiles(self) -> Profiles:
        """The user's nickname and avatar (chalicelib/profile.py)."""
        from chalicelib.profile import Profiles, TextCheck

        settings = self.settings
        check = None  # AUTH_PROFILE_SECURITY_CHECK
        if settings.profile_security_check:
            assert self.apps is not None
            check = TextCheck(self.session_apps, self.apps, self.metrics)
        return Profiles(
            self.store.users,
            self.store.identities,
            self.store.sessions,
            avatar_hosts=settings.avatar_url_hosts,
            check=check,
        )

    @cached_property
    def open_data(self) -> OpenData:
        """POST /auth/decrypt (chalicelib/open_data.py)."""
        from chalicelib.open_data import OpenData

        assert self.apps is not None
        max_age = self.settings.decrypt_max_age
        return OpenData(self.apps, self.session_apps, self.store.identities, max_age=max_age)
