"""Wiring of websites' sign-ins: the part of the service graph (chalicelib/runtime.py's
`Services`, which inherits it) that serves `GET /oauth/authorize`, its callback and the
`authorization_code` grant, each built at its first use. Kept here so that runtime.py stays
one screen of concerns (docs/contributors.md, Layout)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.clients import ClientStore
    from chalicelib.events import Events
    from chalicelib.identity.apps import AppRegistry
    from chalicelib.identity.graph import IdentityGraph
    from chalicelib.sessions import SessionManager
    from chalicelib.settings import Settings
    from chalicelib.store import Store
    from chalicelib.weblogin.authorize import WebLogin
    from chalicelib.weblogin.grant import AuthorizationCodeGrant


class WebLoginServices:
    """What `Services` has that these are built from (its fields and properties)."""

    settings: Settings
    store: Store
    sessions: SessionManager
    apps: AppRegistry | None
    events: Events
    clients: ClientStore
    graph: IdentityGraph

    @cached_property
    def web_login(self) -> WebLogin:
        """The authorization endpoint and WeChat's callback (chalicelib/weblogin/authorize.py)."""
        from chalicelib.weblogin.authorize import WebLogin

        assert self.apps is not None
        return WebLogin(
            self.store.authorizations,
            self.clients,
            self.apps,
            self.graph,
            issuer=self.settings.issuer,
            open_base=self.settings.wechat_open_base,
            code_ttl=self.settings.authorization_code_ttl,
            events=self.events,
        )

    @cached_property
    def code_grant(self) -> AuthorizationCodeGrant:
        """`/oauth/token`'s `authorization_code` grant (chalicelib/weblogin/grant.py),
        registered by `Services.oauth`."""
        from chalicelib.weblogin.grant import AuthorizationCodeGrant

        assert self.apps is not None
        return AuthorizationCodeGrant(
            self.store.authorizations, self.clients, self.sessions, self.apps, events=self.events
        )
