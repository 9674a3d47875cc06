"""Login with a WeChat code: exchange it once, find or create the user, start a session.

The code is of one of the deployment's apps (`appid`, optional while exactly one app is
enabled: chalicelib/identity/apps.py), exchanged as that app's kind says; the user is found
through the identity graph (chalicelib/identity/graph.py): (appid, openid) -> user, linked by
unionid. The app's `client_id` and `aud` go on the session and its tokens.

A code is claimed in the table before WeChat is called (a guarded PutItem keyed by its hash).
The claimant exchanges it and stores the token response sealed under a key derived from the
code. Any other request with the same code (double tap, retry on a bad network, within
`replay_ttl` seconds) waits for that result and answers the same tokens, without calling WeChat,
as long as the session still holds that refresh token. `session_key` is never stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib import refresh_tokens
from chalicelib.devices import DeviceInfo
from chalicelib.errors import AppDisabled, GrantError, RequestError, StoreUnavailable
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import Events
from chalicelib.identity.apps import App, AppRegistry, Exchanged
from chalicelib.identity.graph import IdentityGraph, Resolved
from chalicelib.logs import Metrics
from chalicelib.sessions import IssuedTokens, SessionManager
from chalicelib.store import ConditionFailed, DynamoStore
from chalicelib.wechat.breaker import GuardedWeChat
from chalicelib.wechat.client import WeChatClient

MAX_CODE_LENGTH = 128
_CODE_RE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces


class LoginPending(StoreUnavailable):
    """Another request is still exchanging this code; retry shortly."""

    retry_after = 1


@dataclass(frozen=True)
class LoginResult:
    tokens: IssuedTokens
    is_new: bool

    def response(self, now: int) -> dict[str, object]:
        return {
            **self.tokens.response(now),
            "user": {"id": self.tokens.user_id, "is_new": self.is_new},
        }


def user_id_for(appid: str, openid: str) -> str:
    """The stable user id of (appid, openid): 22 base64url characters of a SHA-256."""
    digest = hashlib.sha256(f"wxauth-user\x00{appid}\x00{openid}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def validate_code(code: str) -> str:
    if len(code) > MAX_CODE_LENGTH or not _CODE_RE.fullmatch(code):
        raise RequestError(f"code must be 1 to {MAX_CODE_LENGTH} printable ASCII characters")
    return code


class LoginService:
    def __init__(
        self,
        store: DynamoStore,
        wechat: WeChatClient,
        sessions: SessionManager,
        *,
        appid: str,
        replay_ttl: int = 300,
        lease: int = 20,
        poll_interval: float = 0.05,
        max_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        events: Events = EVENTS_OFF,
        apps: AppRegistry | None = None,
        graph: IdentityGraph | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`wechat` is the primary app's (`appid`'s) client; `apps` the registry (default: the
        primary app alone, plus any `APP` items), `graph` the identity graph."""
        self._events = events  # UserCreated after the user is resolved, UserLoggedIn at the end
        self._apps = apps or AppRegistry(
            store, App(appid=appid, client_id=appid, primary=True), max_age=60
        )
        self._graph = graph or IdentityGraph(store, user_id_for=user_id_for, metrics=metrics)
        self._store = store
        self._wechat = wechat
        self._sessions = sessions
        self._appid = appid
        self._replay_ttl = replay_ttl
        self._lease = lease
        self._poll_interval = poll_interval
        self._max_polls = max(1, int(max_wait / poll_interval))
        self._sleep = sleep

    def login(
        self,
        code: str,
        now: int,
        appid: str | None = None,
        *,
        device: DeviceInfo | None = None,
    ) -> LoginResult:
        """Log in with a code of app `appid` (None: the one enabled app). `device`: recorded
        on a new session (a replayed code's session keeps its own). UserBanned for a banned
        user: no session is created."""
        validate_code(code)
        app = self._apps.resolve(appid)
        wechat = self._client_of(app)
        if isinstance(wechat, GuardedWeChat):  # the app's breaker, before the code is claimed
            wechat.check(now)
        code_hash = hashlib.sha256(f"{app.appid}\x00{code}".encode()).hexdigest()
        for _ in range(self._max_polls):
            claimed = self._store.claim_login(
                code_hash, now=now, lease_until=now + self._lease, expires_at=now + self._replay_ttl
            )
            if claimed:
                return self._exchange(app, code, code_hash, now, device)
            record = self._store.get_login(code_hash)
            if record is not None and record.done:
                assert record.sealed_response is not None
                return self._replay(code, code_hash, record.sealed_response, now)
            if record is None:
                continue  # the claimant failed and released the code: claim it ourselves
            self._sleep(self._poll_interval)
        raise LoginPending("this code is still being exchanged by another request")

    def _exchange(
        self, app: App, code: str, code_hash: str, now: int, device: DeviceInfo | None = None
    ) -> LoginResult:
        """A returning user: three DynamoDB requests (the claim, the identity's UpdateItem, one
        transaction) and WeChat once. A first login or a unionid back-fill costs a few more
        (IdentityGraph.resolve). A banned user: refused by the transaction's check."""
        try:
            wx = app.exchange.exchange(self._client_of(app), code)
            resolved = self.upsert_user(app, wx, now)
            user_id = resolved.user_id
            session, tokens = self._sessions.prepare(
                user_id,
                client_id=app.client_id or app.appid,
                now=now,
                device=device,
                audience=app.audience,
                custom_claims=resolved.custom_claims,  # chalicelib/claims.py
            )
            if resolved.is_new:  # created, whatever happens next: the next login is not new
                self._events.user_created(user_id, appid=app.appid, now=now)
            result = LoginResult(tokens=tokens, is_new=resolved.is_new)
            sealed = refresh_tokens.seal(
                code,
                json.dumps(_to_json(result)).encode("utf-8"),
                context=code_hash.encode("ascii"),
            )
            self._store.finish_login(
                code_hash,
                session,
                sealed_response=sealed,
                unionid=wx.unionid,
                now=now,
                extra_items=[
                    self._apps.condition(app),
                    self._graph.listing_item(resolved.identity, now=now),
                ],
            )
        except ConditionFailed as e:
            self._store.release_login(code_hash)
            if not self._apps.is_enabled_now(app.appid):
                raise AppDisabled(f"app {app.appid} is disabled") from e
            raise StoreUnavailable("the login could not be recorded; try again") from e
        except BaseException:
            self._store.release_login(code_hash)
            raise
        self._events.user_logged_in(
            user_id,
            tokens.session_id,
            client_id=session.client_id,
            appid=app.appid,
            is_new=result.is_new,
            now=now,
        )
        return result

    def _client_of(self, app: App) -> WeChatClient:
        """The app's WeChat client: the primary's given, the others' from the registry (in
        the service, GuardedWeChat: behind the app's breaker and the per-openid limit)."""
        return self._wechat if app.primary else self._apps.wechat(app)

    def upsert_user(self, app: App, wx: Exchanged, now: int) -> Resolved:
        """The user of this exchange, found or created through the identity graph
        (`IdentityGraph.resolve`, which replaced `DynamoStore.upsert_user` here)."""
        return self._graph.resolve(app, wx, now)

    def _replay(self, code: str, code_hash: str, sealed: bytes, now: int) -> LoginResult:
        """The first exchange's session with a newly minted access token (the first one may
        have expired: a short AUTH_ACCESS_TTL, a replay late in the code's five minutes)."""
        opened = json.loads(refresh_tokens.unseal(code, sealed, context=code_hash.encode("ascii")))
        tokens = self._sessions.resume(opened["refresh_token"], now)
        if tokens is None:
            raise GrantError("code already used, and its session has moved on or ended")
        return LoginResult(tokens=tokens, is_new=bool(opened["is_new"]))


def _to_json(result: LoginResult) -> dict[str, object]:
    """What a replay needs: the refresh token (which names the session) and `is_new`."""
    return {"refresh_token": result.tokens.refresh_token, "is_new": result.is_new}
