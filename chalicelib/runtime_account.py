"""Wiring of the signed-in user's own services, a mixin of `runtime.Services` (kept apart so
that each file stays one screenful of concerns): the app of a session with its WeChat client and
broker, `/me` and its profile (issue 25, item 4), encrypted open data (item 5), what backends
may look up of a user, the account's deletion and erasure, and the copy of its data (item 1,
2). Each is built at its first use, as the other services are."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.account import Account
    from chalicelib.deletion import DeletionService, Tombstones
    from chalicelib.erasure import Erasure
    from chalicelib.events import Events
    from chalicelib.export import Exporter
    from chalicelib.identity.apps import AppRegistry
    from chalicelib.identity.directory import Directory
    from chalicelib.identity.graph import IdentityGraph
    from chalicelib.limits import RateLimiter
    from chalicelib.logs import Metrics
    from chalicelib.open_data import OpenData
    from chalicelib.phone_apps import AppPhones
    from chalicelib.profile import Profiles
    from chalicelib.sessions import SessionManager
    from chalicelib.settings import Settings
    from chalicelib.store import Store
    from chalicelib.wechat.breaker import GuardedWeChat
    from chalicelib.wechat.broker import AccessTokenBroker
    from chalicelib.wechat.client import WeChatClient


class AccountServices:
    """What `runtime.Services` gets from here; it gives these attributes in return."""

    if TYPE_CHECKING:  # Services' fields and properties
        settings: Settings
        store: Store
        sessions: SessionManager
        apps: AppRegistry | None
        events: Events
        metrics: Metrics | None
        limiter: RateLimiter | None
        clock: Callable[[], float]
        sleep: Callable[[float], None]
        tombstone_key: Callable[[], str]
        wechat: WeChatClient  # the primary app's (Services' own cached properties)
        login_wechat: GuardedWeChat
        broker: AccessTokenBroker
        graph: IdentityGraph

    @cached_property
    def session_apps(self) -> AppPhones:
        """The app of a session (by its `client_id`), with its WeChat client and a broker of its
        own server access_token: phone codes, the profile's text check, decrypt's checksession."""
        from chalicelib.phone_apps import AppPhones, PhoneApp

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
        from chalicelib.limits import DECRYPT_CHECK_PER_SESSION

        max_age = self.settings.decrypt_max_age
        limit = self.limiter.hook(DECRYPT_CHECK_PER_SESSION) if self.limiter else None
        return OpenData(
            self.apps, self.session_apps, self.store.identities, max_age=max_age, limit=limit
        )

    @cached_property
    def directory(self) -> Directory:
        """What backends may look up about a user: its openid per app (issue 23)."""
        from chalicelib.identity.directory import Directory

        return Directory(self.store.users, self.graph)

    @cached_property
    def tombstones(self) -> Tombstones:
        """The erased identities' tombstones (AUTH_TOMBSTONE_KEY_ARN's HMAC key)."""
        from chalicelib.deletion import Tombstones

        return Tombstones(self.store.deletions, self.tombstone_key)

    @cached_property
    def deletion(self) -> DeletionService:
        """Asking for the account's deletion and cancelling it (AUTH_DELETION_COOLDOWN)."""
        from chalicelib.deletion import DeletionService

        apps = self.apps
        assert apps is not None
        return DeletionService(
            self.store.users,
            self.store.identities,
            self.store.deletions,
            self.sessions,
            apps=apps,
            client_of=lambda app: self.login_wechat if app.primary else apps.wechat(app),
            cooldown=self.settings.deletion_cooldown,
            events=self.events,
        )

    @cached_property
    def erasure(self) -> Erasure:
        """The erasure of due deletions (the scheduled DeletionHandler, `wxauth-admin`)."""
        from chalicelib.erasure import Erasure

        return Erasure(
            self.store.user_data,
            self.store.deletions,
            self.tombstones,
            events=self.events,
            metrics=self.metrics,
        )

    @cached_property
    def exporter(self) -> Exporter:
        """A copy of the user's data (`GET /me/export`)."""
        from chalicelib.export import Exporter

        return Exporter(self.store.user_data, self.store.deletions)
