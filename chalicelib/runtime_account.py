"""Wiring of the signed-in user's own account: `/me`, what backends may look up of a user, the
account's deletion and erasure, and the copy of its data (issue 25). A part of
`runtime.Services` (its base class), built at first use like the rest of it.
"""

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
    from chalicelib.logs import Metrics
    from chalicelib.sessions import SessionManager
    from chalicelib.settings import Settings
    from chalicelib.store import Store
    from chalicelib.wechat.breaker import GuardedWeChat


class AccountServices:
    """The account's services over the graph's store, sessions and apps (runtime.Services)."""

    if TYPE_CHECKING:  # Services' fields and properties
        settings: Settings
        store: Store
        sessions: SessionManager
        apps: AppRegistry | None
        events: Events
        metrics: Metrics | None
        tombstone_key: Callable[[], str]
        graph: IdentityGraph
        login_wechat: GuardedWeChat

    @cached_property
    def account(self) -> Account:
        """The signed-in user's own account (`/me`)."""
        from chalicelib.account import Account

        return Account(self.store.users, self.graph)

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
