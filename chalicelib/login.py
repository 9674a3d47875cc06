"""Login with a WeChat code: exchange it once, find or create the user, start a session.

The code is of one of the deployment's apps (`appid`, optional while exactly one app is
enabled: chalicelib/identity/apps.py), exchanged as that app's kind says; the user is found
through the identity graph (chalicelib/identity/graph.py): (appid, openid) -> user, linked by
unionid. The app's `client_id` and `aud` go on the session and its tokens.

A code is exchanged once (chalicelib/code_claims.py): the claimant stores the token response
sealed under a key derived from the code, and any other request with the same code (double
tap, retry on a bad network, within `replay_ttl` seconds) answers the same tokens, without
calling WeChat, as long as the session still holds that refresh token. A mini-program's
`session_key` is kept only sealed, in the session (chalicelib/open_data.py: POST /auth/decrypt).

A replay answers only the code's first caller (issue 22, item 1): a used code would otherwise
be a bearer credential for the session for five minutes, and an official account's or web
page's code travels in a URL. The client may send a random `login_nonce` (the mini-program
client always does, the same on every retry of one code); the claim keeps its hash, and a
replay must present the same nonce. Without one, a replay is answered only for a mini-program
code (it never appears in a URL) within `replay_without_nonce` seconds of the first call
(AUTH_LOGIN_REPLAY_WITHOUT_NONCE), as clients before the nonce retried. Anything else is
invalid_grant, and nothing else happens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from chalicelib import crypto
from chalicelib.code_claims import CodeClaims
from chalicelib.devices import DeviceInfo
from chalicelib.errors import (
    ConditionFailed,
    GrantError,
    LoginPending,
    MergedAway,
    RequestError,
    StoreUnavailable,
)
from chalicelib.events import OFF as EVENTS_OFF
from chalicelib.events import Events
from chalicelib.identity.apps import App, AppRegistry, Exchanged, kind_of, token_audience
from chalicelib.identity.graph import IdentityGraph, Resolved
from chalicelib.open_data import seal_session_key
from chalicelib.sessions import IssuedTokens, SessionManager
from chalicelib.store.logins import LoginRecord
from chalicelib.store.sessions import SessionRecord
from chalicelib.wechat.breaker import GuardedWeChat
from chalicelib.wechat.client import WeChatClient

MAX_CODE_LENGTH = 128
_CODE_RE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces
MAX_NONCE_LENGTH = 128
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")  # e.g. 64 hex digits, 43 base64url characters


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


def nonce_hash(code_hash: str, nonce: str | None) -> bytes | None:
    """What a code's claim keeps of its first caller's `login_nonce` (None: none was sent);
    RequestError for a nonce that is not 16 to 128 letters, digits, `-` or `_`."""
    if nonce is None:
        return None
    if not _NONCE_RE.fullmatch(nonce):
        raise RequestError(
            f"login_nonce must be 16 to {MAX_NONCE_LENGTH} letters, digits, '-' or '_'"
        )
    return hashlib.sha256(f"wxauth/login-nonce|{code_hash}|{nonce}".encode()).digest()


class LoginService:
    def __init__(
        self,
        claims: CodeClaims,
        wechat: WeChatClient,
        sessions: SessionManager,
        *,
        apps: AppRegistry,
        graph: IdentityGraph,
        events: Events = EVENTS_OFF,
        replay_without_nonce: int = 60,
    ) -> None:
        """`claims`: the codes' claims (their repository is the login's transaction's too);
        `wechat` the primary app's client; `apps` the registry (the primary app and the `APP`
        items), `graph` the identity graph; `replay_without_nonce`: see the module doc."""
        self._replay_without_nonce = replay_without_nonce
        self._events = events  # UserCreated after the user is resolved, UserLoggedIn at the end
        self._apps = apps
        self._graph = graph
        self._claims = claims
        self._logins = claims.logins
        self._wechat = wechat
        self._sessions = sessions

    def login(
        self,
        code: str,
        now: int,
        appid: str | None = None,
        *,
        device: DeviceInfo | None = None,
        nonce: str | None = None,
    ) -> LoginResult:
        """Log in with a code of app `appid` (None: the one enabled app). `device`: recorded
        on a new session (a replayed code's session keeps its own). `nonce`: the caller's
        `login_nonce` (see the module doc). UserBanned for a banned user: no session is
        created."""
        validate_code(code)
        app = self._apps.resolve(appid)
        code_hash = hashlib.sha256(f"{app.appid}\x00{code}".encode()).hexdigest()
        presented = nonce_hash(code_hash, nonce)
        wechat = self._client_of(app)
        if isinstance(wechat, GuardedWeChat):  # the app's breaker, before the code is claimed
            wechat.check(now)
        return self._claims.run(
            code_hash,
            now,
            exchange=lambda: self._exchange(app, code, code_hash, now, device),
            replay=lambda record: self._replay(code, code_hash, record, now),
            pending=LoginPending("this code is still being exchanged by another request"),
            nonce_hash=presented,
            admit=lambda record: self._admit(app, record, presented, now),
        )

    def _admit(self, app: App, record: LoginRecord, presented: bytes | None, now: int) -> None:
        """A replay of a used code: only for its first caller (see the module doc). A code
        WeChat refused hands out nothing: anyone gets the refusal (CodeClaims)."""
        if record.refused is not None:
            return
        if record.nonce_hash is not None:
            if presented is not None and hmac.compare_digest(presented, record.nonce_hash):
                return
        elif presented is None and kind_of(app).replays_without_nonce:
            claimed_at = record.claimed_at
            if claimed_at is None:  # claimed by an earlier release: lease_until = claim + lease
                claimed_at = record.lease_until - self._claims.lease
            if now - claimed_at < self._replay_without_nonce:
                return
        raise GrantError("this code was already used")

    def _exchange(
        self, app: App, code: str, code_hash: str, now: int, device: DeviceInfo | None = None
    ) -> LoginResult:
        """A returning user: three DynamoDB requests (the claim, the identity's UpdateItem, one
        transaction) and WeChat once. A first login or a unionid back-fill costs a few more
        (IdentityGraph.resolve). A banned user: refused by the transaction's check. A user
        merged away meanwhile: the session is the kept user's if the merge moved the identity
        (IdentityGraph.moved), else MergedAway."""
        try:
            wx = kind_of(app).exchange(self._client_of(app), code)
        except BaseException as e:
            self._claims.settle(code_hash, e, now)  # a code WeChat refused stays refused
            raise
        try:
            resolved = self._graph.resolve(app, wx, now)
            session, result = self._prepare(app, resolved, wx, now, device)
            if resolved.is_new:  # created, whatever happens next: the next login is not new
                self._events.user_created(resolved.user_id, appid=app.appid, now=now)
            try:
                self._finish(code, code_hash, wx, app, resolved, session, result, now)
            except MergedAway as refused:
                resolved = self._graph.moved(app, wx, refused, now)
                session, result = self._prepare(app, resolved, wx, now, device)
                self._finish(code, code_hash, wx, app, resolved, session, result, now)
        except ConditionFailed as e:
            self._logins.release(code_hash)
            raise StoreUnavailable("the login could not be recorded; try again") from e
        except BaseException:
            self._logins.release(code_hash)
            raise
        self._events.user_logged_in(
            resolved.user_id,
            result.tokens.session_id,
            client_id=session.client_id,
            appid=app.appid,
            is_new=result.is_new,
            now=now,
        )
        self._sessions.enforce_cap(session, now)  # AUTH_MAX_SESSIONS_PER_USER (issue 21)
        return result

    def _prepare(
        self, app: App, resolved: Resolved, wx: Exchanged, now: int, device: DeviceInfo | None
    ) -> tuple[SessionRecord, LoginResult]:
        sealed_key = None  # a mini-program's session_key, sealed (chalicelib/open_data.py)
        if wx.session_key:
            sealed_key = seal_session_key(
                self._client_of(app).secret(),
                appid=app.appid,
                user_id=resolved.user_id,
                session_key=wx.session_key,
            )
        session, tokens = self._sessions.prepare(
            resolved.user_id,
            client_id=app.client_id or app.appid,
            now=now,
            device=device,
            audience=token_audience(app),  # None: AUTH_AUDIENCE
            custom_claims=resolved.custom_claims,  # chalicelib/tokens/claims.py
            profile_claims=resolved.profile_claims,  # chalicelib/profile.py
            sealed_session_key=sealed_key,
        )
        return session, LoginResult(tokens=tokens, is_new=resolved.is_new)

    def _finish(
        self,
        code: str,
        code_hash: str,
        wx: Exchanged,
        app: App,
        resolved: Resolved,
        session: SessionRecord,
        result: LoginResult,
        now: int,
    ) -> None:
        """The login's transaction, with the result sealed under the code for its replays."""
        sealed = crypto.seal(
            code, json.dumps(_to_json(result)).encode("utf-8"), context=code_hash.encode("ascii")
        )
        self._logins.finish(
            code_hash,
            session,
            sealed_response=sealed,
            unionid=wx.unionid,
            identity=resolved.identity,
            now=now,
        )

    def _client_of(self, app: App) -> WeChatClient:
        """The app's WeChat client: the primary's given, the others' from the registry (in
        the service, GuardedWeChat: behind the app's breaker and the per-openid limit)."""
        return self._wechat if app.primary else self._apps.wechat(app)

    def _replay(self, code: str, code_hash: str, record: LoginRecord, now: int) -> LoginResult:
        """The first exchange's session with a newly minted access token (the first one may
        have expired: a short AUTH_ACCESS_TTL, a replay late in the code's five minutes)."""
        assert record.sealed_response is not None
        opened = json.loads(
            crypto.unseal(code, record.sealed_response, context=code_hash.encode("ascii"))
        )
        tokens = self._sessions.resume(opened["refresh_token"], now)
        if tokens is None:
            raise GrantError("code already used, and its session has moved on or ended")
        return LoginResult(tokens=tokens, is_new=bool(opened["is_new"]))


def _to_json(result: LoginResult) -> dict[str, object]:
    """What a replay needs: the refresh token (which names the session) and `is_new`."""
    return {"refresh_token": result.tokens.refresh_token, "is_new": result.is_new}
