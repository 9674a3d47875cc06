"""The authorization endpoint (`GET /oauth/authorize`) and WeChat's way back to it
(`GET /oauth/wechat/callback`): a browser's trip to WeChat, ending in an authorization code.

`authorize` checks the client and its redirect URI first: a request naming no client of ours,
or a redirect URI the client did not register (character for character), is answered to the
browser and never redirected (RFC 6749 §4.1.2.1). Every other refusal goes back to the
relying party's redirect URI as `error` (the edge names it). A good request starts a sign-in
(one PutItem) and sends the browser to WeChat's `qrconnect` page of the deployment's website
app, with a state of wxauth's own, `<sign-in id>.<256 random bits>`, and sets a cookie only
this browser holds (`__Host-wxauth-authz-<sign-in id>`: 256 random bits, HttpOnly, Secure,
SameSite=Lax, for the sign-in's lifetime). The item keeps the SHA-256 of both.

`callback` takes the sign-in with one guarded UpdateItem that passes only with the state and
its browser's cookie, once, before the sign-in expires (PENDING_TTL: WeChat's codes live 10
minutes): a state replayed, expired, unknown, or brought by another browser is refused there,
to the browser, and WeChat is not called. Then WeChat's code is exchanged by the website app's
kind, the user found or created through the identity graph (the same unionid is the same user
as in the mini-program), and the authorization code stored (one UpdateItem): the browser goes
on to the relying party with `code` and its `state`. A returning user's callback is three
DynamoDB requests and one WeChat call. A failure after the state was taken (the user refused,
WeChat refused the code, WeChat or DynamoDB unavailable) goes to the relying party as an
error: the relying party starts again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.errors import (
    AccessDenied,
    InvalidScope,
    RequestError,
    StoreUnavailable,
    UnauthorizedClient,
    UnsupportedResponseType,
    WxAuthError,
)
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import Events
from chalicelib.identity.apps import AppRegistry, kind_of
from chalicelib.identity.graph import IdentityGraph
from chalicelib.store.authorizations import Authorization, Authorizations, IssuedCode
from chalicelib.weblogin import params
from chalicelib.weblogin.params import BROWSER, CODE, STATE
from chalicelib.wechat_codes import validate_code

if TYPE_CHECKING:
    from chalicelib.clients import ClientStore

CALLBACK_PATH = "/oauth/wechat/callback"
PENDING_TTL = 600  # seconds from the authorization request to WeChat's way back
REPLAY_WINDOW = 600  # a redeemed code's item is kept this long after its expiry (a replay)
MAX_PARAMETER = 512
MAX_CLIENT_ID = 64


@dataclass(frozen=True)
class ToWeChat:
    """The authorization request is good: send the browser to WeChat, with this cookie."""

    location: str
    cookie_name: str
    cookie_value: str
    max_age: int


@dataclass(frozen=True)
class ToRelyingParty:
    """Send the browser back to the relying party: with `code`, or with `error` (RFC 6749
    §4.1.2.1, named by the edge), and its `state`."""

    redirect_uri: str
    state: str | None
    code: str | None = None
    error: WxAuthError | None = None


def single(query: Mapping[str, list[str]]) -> tuple[dict[str, str], set[str]]:
    """The query's parameters, and the names sent more than once (RFC 6749 §3.1: never
    allowed). A parameter sent without a value counts as omitted (§3.1)."""
    values = {name: found[0] for name, found in query.items() if found and found[0] != ""}
    return values, {name for name, found in query.items() if len(found) > 1}


def _bounded(values: dict[str, str], name: str, max_length: int = MAX_PARAMETER) -> str | None:
    value = values.get(name)
    if value is not None and len(value) > max_length:
        raise RequestError(f"{name} is longer than {max_length} characters")
    return value


class WebLogin:
    def __init__(
        self,
        authorizations: Authorizations,
        clients: ClientStore,
        apps: AppRegistry,
        graph: IdentityGraph,
        *,
        issuer: str,
        open_base: str,
        code_ttl: int,
        events: Events = EVENTS_OFF,
        rand: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._store = authorizations
        self._clients = clients
        self._apps = apps
        self._graph = graph
        self._callback_url = issuer.rstrip("/") + CALLBACK_PATH
        self._open_base = open_base
        self._code_ttl = code_ttl
        self._events = events
        self._rand = rand

    # -- GET /oauth/authorize -------------------------------------------------------------

    def authorize(self, query: Mapping[str, list[str]], now: int) -> ToWeChat | ToRelyingParty:
        """Start a sign-in (see the module doc). Raises, for the browser, what cannot go to the
        relying party: a missing or unknown client, a redirect URI not registered."""
        values, repeated = single(query)
        if repeated & {"client_id", "redirect_uri"}:
            raise RequestError("client_id and redirect_uri may be sent once each")
        client_id = _bounded(values, "client_id", MAX_CLIENT_ID)
        if client_id is None:
            raise RequestError("client_id is required")
        client = self._clients.get(client_id)
        if client is None or not client.enabled:
            raise RequestError("client_id names no enabled client of this deployment")
        if not client.redirect_uris:
            raise UnauthorizedClient("this client has no redirect URI: it may not sign users in")
        given = _bounded(values, "redirect_uri")
        if given is None and len(client.redirect_uris) != 1:
            raise RequestError("redirect_uri is required: the client registered several")
        redirect_uri = client.redirect_uris[0] if given is None else given
        if redirect_uri not in client.redirect_uris:
            raise RequestError("redirect_uri is not one the client registered (exact match)")
        state, bad_state = values.get("state"), None
        try:
            params.check_state(state)
        except RequestError as e:
            bad_state = e
        if bad_state is not None or "state" in repeated:
            state = None  # not handed back: it could not be trusted to be the client's
        try:
            if bad_state is not None:
                raise bad_state
            if repeated:
                raise RequestError(f"{sorted(repeated)[0]} may be sent once")
            response_type = values.get("response_type")
            if response_type is None:
                raise RequestError("response_type is required (code)")
            if response_type != "code":
                raise UnsupportedResponseType("response_type must be code")
            challenge = params.check_challenge(
                _bounded(values, "code_challenge"), _bounded(values, "code_challenge_method")
            )
            if values.get("scope", "").strip():
                raise InvalidScope("sessions carry no scope: send none")
            app = self._apps.browser_app()
            authz_id = params.new_id(self._rand)
            wx_state, cookie = params.new_value(authz_id, self._rand), params.new_secret(self._rand)
            started = self._store.start(
                Authorization(
                    authz_id=authz_id,
                    client_id=client.client_id,
                    redirect_uri=redirect_uri,
                    redirect_uri_given=given is not None,
                    code_challenge=challenge,
                    appid=app.appid,
                    created_at=now,
                    expires_at=now + PENDING_TTL,
                    state=state,
                ),
                state_hash=params.digest(STATE, wx_state),
                browser_hash=params.digest(BROWSER, cookie),
            )
            if not started:  # 128 random bits met an id in use: not a state to explain
                raise StoreUnavailable("the sign-in could not be started; try again")
        except WxAuthError as refused:
            return ToRelyingParty(redirect_uri, state, error=refused)
        authorization_url = kind_of(app).authorization_url  # a website's (browser_app)
        location = authorization_url(self._open_base, app.appid, self._callback_url, wx_state)
        return ToWeChat(location, params.cookie_name(authz_id), cookie, PENDING_TTL)

    # -- GET /oauth/wechat/callback -------------------------------------------------------

    def cookie_name(self, query: Mapping[str, list[str]]) -> str | None:
        """The cookie of the sign-in the callback's state names (None: it names none)."""
        values, _ = single(query)
        authz_id = params.authz_id_of(values.get("state", ""))
        return params.cookie_name(authz_id) if authz_id else None

    def callback(
        self,
        query: Mapping[str, list[str]],
        cookie: str | None,
        now: int,
        *,
        user_agent: str | None = None,
        source_ip: str | None = None,
    ) -> ToRelyingParty:
        """Finish the sign-in the state names, for the browser holding its `cookie` (see the
        module doc). Raises, for the browser, a state that is not a live sign-in of this
        browser's; anything later goes to the relying party."""
        values, repeated = single(query)
        if "state" in repeated:
            raise RequestError("state may be sent once")
        state = _bounded(values, "state")
        authz_id = params.authz_id_of(state or "")
        if state is None or authz_id is None:
            raise RequestError("state names no sign-in: start again at the website")
        taken, old = self._store.take(
            authz_id,
            state_hash=params.digest(STATE, state),
            browser_hash=params.digest(BROWSER, cookie or ""),
            now=now,
        )
        if taken is None:
            raise RequestError(_why_not(old, now))
        back = ToRelyingParty(taken.redirect_uri, taken.state)
        try:
            if repeated:
                raise RequestError(f"{sorted(repeated)[0]} may be sent once")
            wechat_code = values.get("code")
            if wechat_code is None:  # WeChat's way back when the user refused
                raise AccessDenied("the user did not allow the sign-in at WeChat")
            validate_code(wechat_code)
            app = self._apps.resolve(taken.appid)
            wx = kind_of(app).exchange(self._apps.wechat(app), wechat_code)
            resolved = self._graph.resolve(app, wx, now)
            if resolved.is_new:
                self._events.user_created(resolved.user_id, appid=app.appid, now=now)
            code = params.new_value(authz_id, self._rand)
            expires = now + self._code_ttl
            issued = IssuedCode(
                code_hash=params.digest(CODE, code),
                code_expires_at=expires,
                keep_until=expires + REPLAY_WINDOW,
                user_id=resolved.user_id,
                is_new=resolved.is_new,
                identity=resolved.identity,
                custom_claims=resolved.custom_claims,
                profile_claims=resolved.profile_claims,
                user_agent=user_agent,
                source_ip=source_ip,
            )
            if not self._store.issue_code(authz_id, issued):
                raise StoreUnavailable("the sign-in could not be recorded; start again")
        except WxAuthError as refused:
            return ToRelyingParty(back.redirect_uri, back.state, error=refused)
        return ToRelyingParty(back.redirect_uri, back.state, code=code)


def _why_not(old: Authorization | None, now: int) -> str:
    """Why the callback's state did not take its sign-in (for the browser's page)."""
    if old is None:
        return "state names no sign-in (or it has expired): start again at the website"
    if old.consumed_at is not None:
        return "this sign-in was finished already: start again at the website"
    if now >= old.expires_at:
        return "this sign-in has expired: start again at the website"
    return (
        "this sign-in must be finished in the browser that started it (its cookie is missing):"
        " start again at the website"
    )
