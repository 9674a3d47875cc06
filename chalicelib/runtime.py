"""Wiring: builds the service graph once per process from Settings and real clients.

Tests build the same graph with fakes (a moto client, a fixed clock, a stub HTTP session).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from chalicelib import aws
from chalicelib.app_clients import AppClients, guarded_login_client
from chalicelib.budgets import DYNAMODB, SECRETS_MANAGER, hook_budget
from chalicelib.device.wiring import DEVICE_CODE_GRANT, DeviceLoginServices
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import PUBLISH as EVENTS_PUBLISH
from chalicelib.events import Events
from chalicelib.identity.apps import App, AppRegistry
from chalicelib.limits import REFRESH_PER_SESSION, ClientAddress, RateLimiter
from chalicelib.logs import Metrics
from chalicelib.runtime_account import AccountServices
from chalicelib.secrets_manager import CachedSecret, fetch_secret
from chalicelib.session_cap import SessionCap
from chalicelib.sessions import SessionManager
from chalicelib.settings import Settings
from chalicelib.signing_keys import KeySet, KeySetProvider, file_version, load_or_create_file
from chalicelib.store import Store
from chalicelib.tokens import claims
from chalicelib.tokens.access import AccessTokens
from chalicelib.weblogin.wiring import WebLoginServices

if TYPE_CHECKING:
    import requests

    from chalicelib.clients import ClientStore
    from chalicelib.code_claims import CodeClaims
    from chalicelib.identity.graph import IdentityGraph
    from chalicelib.login import LoginService
    from chalicelib.oauth import OAuthService
    from chalicelib.phone import PhoneBinding
    from chalicelib.phone_login import PhoneLogin
    from chalicelib.wechat.breaker import Breaker, GuardedWeChat
    from chalicelib.wechat.broker import AccessTokenBroker
    from chalicelib.wechat.client import WeChatClient
    from chalicelib.wechat.component import ComponentPlatform
    from chalicelib.wechat.push import AuthorizationEvents

# Bounded (chalicelib/budgets.py): a DynamoDB call answers or fails within DYNAMODB.worst_case
# seconds, a Secrets Manager call within SECRETS_MANAGER.worst_case.
DYNAMODB_CONFIG = DYNAMODB.config()
SECRETS_MANAGER_CONFIG = SECRETS_MANAGER.config()
EVENTS_CONFIG = EVENTS_PUBLISH.config()  # one attempt: an event never delays a request long


@dataclass
class Services(WebLoginServices, AccountServices, DeviceLoginServices):
    """The service graph (websites' sign-ins: chalicelib/weblogin/wiring.py; the signed-in
    user's own services: chalicelib/runtime_account.py; device logins: device/wiring.py).
    Login and the OAuth services are built at their first use, so that a container whose first
    request verifies or refreshes imports neither the WeChat client nor the client store (a
    cold start's cost, bench/RESULTS.md)."""

    settings: Settings
    store: Store
    keys: KeySetProvider
    access_tokens: AccessTokens
    sessions: SessionManager
    clock: Callable[[], float]
    wechat_secret: Callable[[], str] = field(repr=False)
    http: requests.Session | None = None
    sleep: Callable[[float], None] = time.sleep
    metrics: Metrics | None = None
    limiter: RateLimiter | None = None
    apps: AppRegistry | None = None  # built by `build`: the primary app and the APP items
    events: Events = EVENTS_OFF  # chalicelib/events.py; api/edge.handle flushes it after each view
    client_address: ClientAddress = field(default_factory=ClientAddress)  # behind CloudFront too
    # the tombstones' HMAC key (issue 25): AUTH_TOMBSTONE_KEY_ARN's value, or the setting
    tombstone_key: Callable[[], str] = field(default=lambda: "", repr=False)
    platform: Callable[[], ComponentPlatform | None] = lambda: None  # issue 24, item 4

    def now(self) -> int:
        return int(self.clock())

    @cached_property
    def wechat(self) -> WeChatClient:
        from chalicelib.wechat.client import WeChatClient

        return WeChatClient(
            base_url=self.settings.wechat_api_base,
            appid=self.settings.wechat_appid,
            secret=self.wechat_secret,
            http=self.http,
            sleep=self.sleep,
        )

    @cached_property
    def login(self) -> LoginService:
        from chalicelib.login import LoginService

        assert self.apps is not None
        return LoginService(
            self.code_claims,
            self.login_wechat,
            self.sessions,
            apps=self.apps,
            graph=self.graph,
            events=self.events,
            replay_without_nonce=self.settings.login_replay_without_nonce,  # issue 22, item 1
            phone=lambda: self.phone_login,  # issue 24, item 1: made at the first phone login
        )

    @cached_property
    def code_claims(self) -> CodeClaims:
        """WeChat codes (login and phone) claimed once and replayed for AUTH_LOGIN_REPLAY_TTL."""
        from chalicelib.code_claims import CodeClaims

        return CodeClaims(
            self.store.logins, replay_ttl=self.settings.login_replay_ttl, sleep=self.sleep
        )

    def before_login(self, source_ip: str | None, now: int) -> None:
        """What a login meets first: the per-IP limit (one UpdateItem, if configured; an IPv6
        address's /48 one more). The app's WeChat breaker comes next, once the login knows its
        app (LoginService.login)."""
        if self.limiter is not None:
            self.limiter.check_address(source_ip, now)

    @cached_property
    def breaker(self) -> Breaker:
        """The circuit breaker on jscode2session (chalicelib/wechat/breaker.py)."""
        from chalicelib.wechat.breaker import Breaker, BreakerPolicy

        policy, appid = BreakerPolicy.of(self.settings), self.settings.wechat_appid
        return Breaker(self.store.guards, appid=appid, metrics=self.metrics, policy=policy)

    @cached_property
    def login_wechat(self) -> GuardedWeChat:
        """The WeChat client of logins: through the breaker, then the per-openid limit."""
        return guarded_login_client(
            self.wechat, self.breaker, self.settings.wechat_appid, self.limiter, self.clock
        )

    @cached_property
    def graph(self) -> IdentityGraph:
        """The identity graph: (appid, openid) identities, unionid links, merges."""
        from chalicelib.identity.graph import IdentityGraph
        from chalicelib.login import user_id_for

        return IdentityGraph(
            self.store.identities,
            self.store.users,
            self.store.merges,
            user_id_for=user_id_for,
            metrics=self.metrics,
            erased=self.tombstones.count,  # issue 25: an erased user's next login is new
        )

    @cached_property
    def broker(self) -> AccessTokenBroker:
        """The app's WeChat server access_token, shared by every container (the broker)."""
        from chalicelib.wechat.broker import AccessTokenBroker

        return AccessTokenBroker(
            self.store.wechat,
            self.wechat,
            appid=self.settings.wechat_appid,
            clock=self.clock,
            sleep=self.sleep,
            metrics=self.metrics or Metrics(),
            secret=self.wechat_secret,
        )

    @cached_property
    def phone(self) -> PhoneBinding:
        from chalicelib.phone import PhoneBinding

        return PhoneBinding(
            self.code_claims,
            self.store.phones,
            self.store.users,
            self.wechat,
            self.broker,
            appid=self.settings.wechat_appid,
            conflict=self.settings.phone_conflict,
            events=self.events,
            apps=self.session_apps,  # each app's phone codes with its own token (issue 22, item 10)
            identities=self.store.identities,
        )

    @cached_property
    def phone_login(self) -> PhoneLogin:
        """A login's phone step (issue 24, item 1: AUTH_PHONE_LOGIN, AUTH_PHONE_CONFLICT)."""
        from chalicelib.login import user_id_for
        from chalicelib.phone_login import PhoneLogin

        store, settings = self.store, self.settings
        return PhoneLogin(
            *(self.phone, self.session_apps, self.graph, store.phones, store.users),
            user_id_for=user_id_for,
            policy=settings.phone_login,
            conflict=settings.phone_conflict,
            events=self.events,
            metrics=self.metrics,
        )

    @cached_property
    def component_events(self) -> AuthorizationEvents | None:
        """The third-party platform's pushes (issue 24, item 4); None without a platform."""
        from chalicelib.wechat.push import AuthorizationEvents

        platform = self.platform()
        return None if platform is None else AuthorizationEvents(platform, metrics=self.metrics)

    @cached_property
    def clients(self) -> ClientStore:
        from chalicelib.clients import ClientStore

        return ClientStore(
            self.store.clients, clock=self.clock, cache_ttl=self.settings.clients_cache_ttl
        )

    @cached_property
    def oauth(self) -> OAuthService:
        from chalicelib.oauth import OAuthService

        service = OAuthService(
            sessions=self.sessions,
            clients=self.clients,
            access_tokens=self.access_tokens,
            public_client_id=self.settings.wechat_appid,
        )
        service.register_grant(DEVICE_CODE_GRANT, lambda *a: self.device.grant.token(*a))
        service.register_grant("authorization_code", lambda *a: self.code_grant(*a))  # issue 24
        return service


def build(
    settings: Settings,
    *,
    dynamodb: Any = None,
    secretsmanager: Any = None,
    awslambda: Any = None,
    http: requests.Session | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    metrics: Metrics | None = None,
    events_client: Any = None,
) -> Services:
    """`events_client`: an EventBridge client for AUTH_EVENT_BUS (default: made at the first
    publish, never without a bus)."""
    session: Any = None

    def client(service: str, config: Config | None = None) -> Any:
        nonlocal session
        if session is None:
            session = aws.session()  # not boto3: see chalicelib/aws.py
        return aws.client(service, config, aws=session)

    if dynamodb is None:
        dynamodb = client("dynamodb", DYNAMODB_CONFIG)
    store = Store(dynamodb, settings.table_name)

    def lambda_client(make: Callable[..., Any] = client) -> Any:
        """The pre-token hook's client, made at its first call (`client` is rebound below)."""
        if awslambda is not None:
            return awslambda
        return make("lambda", hook_budget(settings.token_hook_timeout_ms).config())

    def secrets_client() -> Any:
        nonlocal secretsmanager
        if secretsmanager is None:
            secretsmanager = client("secretsmanager", SECRETS_MANAGER_CONFIG)
        return secretsmanager

    if settings.signing_keys_arn:
        client, arn = secrets_client(), settings.signing_keys_arn
        # KeySetProvider does the caching (and the reload on an unknown kid).
        keys = KeySetProvider(lambda: KeySet.from_json(fetch_secret(client, arn)), clock=clock)
    else:
        path = settings.signing_keys_file
        keys = KeySetProvider(
            lambda: load_or_create_file(path, int(clock())),
            clock=clock,
            version=lambda: file_version(path),  # a rotated file is used at once
        )

    if settings.wechat_secret_arn:
        wechat_secret: Callable[[], str] = CachedSecret(
            secrets_client(), settings.wechat_secret_arn, clock=clock
        )
    else:
        value = settings.wechat_secret or ""
        wechat_secret = lambda: value  # noqa: E731
    tombstone_key: Callable[[], str] = (  # issue 25: fetched at its first use
        CachedSecret(secrets_client(), settings.tombstone_key_arn, clock=clock)
        if settings.tombstone_key_arn
        else lambda: settings.tombstone_key or ""
    )

    limiter = RateLimiter(store.guards, settings.limits(), metrics=metrics)
    app_clients = AppClients(  # each app's login client; the third-party platform (issue 24)
        settings, store, secrets_client, limiter=limiter, clock=clock, sleep=sleep, metrics=metrics
    )
    apps = AppRegistry(
        store.apps,
        App(appid=settings.wechat_appid, client_id=settings.wechat_appid, primary=True),
        clock=clock,
        max_age=settings.apps_cache_ttl,
        make_client=app_clients,
    )

    def make_events_client() -> Any:  # `client` may name the Secrets Manager client by now
        nonlocal session
        if events_client is not None:
            return events_client
        if session is None:
            session = aws.session()
        return aws.client("events", EVENTS_CONFIG, aws=session)

    events = Events(
        bus=settings.event_bus,
        client=make_events_client if settings.event_bus else None,
        log=settings.event_log,
        issuer=settings.issuer,
        appid=settings.wechat_appid,
        metrics=metrics,
    )
    access_tokens = AccessTokens(
        keys,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl=settings.access_ttl,
        other_audiences=apps.audiences,
    )
    cap = None
    if settings.max_sessions_per_user is not None:  # AUTH_MAX_SESSIONS_PER_USER (issue 21)
        cap = SessionCap(
            store.sessions,
            max_sessions=settings.max_sessions_per_user,
            per_app=settings.max_sessions_scope == "app",
            events=events,
            metrics=metrics,
        )
    phone_claims = None  # AUTH_PHONE_CLAIM: `phone_number` on access tokens
    if settings.phone_claim:
        from chalicelib.account import phone_claims as user_phone

        phone_claims = user_phone(store.users)
    sessions = SessionManager(
        store.sessions,
        access_tokens,
        idle_ttl=settings.refresh_idle_ttl,
        absolute_ttl=settings.refresh_absolute_ttl,
        grace=settings.refresh_grace,
        metrics=metrics,
        extra_claims=phone_claims,
        refresh_limit=limiter.hook(REFRESH_PER_SESSION),  # its key: chalicelib/sessions.py
        events=events,
        custom_claims=claims.build(settings, lambda_client, metrics),
        cap=cap,
        profile_claim=settings.profile_claim,  # AUTH_PROFILE_CLAIM (issue 25, item 4)
    )
    client_address = ClientAddress.of_settings(
        settings, secrets_client, clock=clock, metrics=metrics
    )  # AUTH_ORIGIN_SECRET_*: the viewer's address behind CloudFront (chalicelib/limits.py)
    return Services(
        client_address=client_address,
        settings=settings,
        store=store,
        keys=keys,
        access_tokens=access_tokens,
        sessions=sessions,
        clock=clock,
        wechat_secret=wechat_secret,
        http=http,
        sleep=sleep,
        metrics=metrics,
        limiter=limiter,
        apps=apps,
        events=events,
        tombstone_key=tombstone_key,
        platform=app_clients.platform,
    )
