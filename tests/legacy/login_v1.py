"""FROZEN COPY of chalicelib/login.py as on main at 51e08e2 (before issue #14), used only by
tests/identity/test_migration.py to write data exactly as single-app deployments did.

Login with a WeChat code: exchange it once, find or create the user, start a session.

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

from chalicelib import crypto
from chalicelib.errors import ConditionFailed, GrantError, RequestError, StoreUnavailable
from chalicelib.sessions import IssuedTokens, SessionManager
from chalicelib.store import Store, UserRecord
from chalicelib.store.identities import unionid_link
from chalicelib.store.logins import login_result
from chalicelib.store.sessions import new_session
from chalicelib.store.users import not_banned
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
        store: Store,
        wechat: WeChatClient,
        sessions: SessionManager,
        *,
        appid: str,
        replay_ttl: int = 300,
        lease: int = 20,
        poll_interval: float = 0.05,
        max_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._wechat = wechat
        self._sessions = sessions
        self._appid = appid
        self._replay_ttl = replay_ttl
        self._lease = lease
        self._poll_interval = poll_interval
        self._max_polls = max(1, int(max_wait / poll_interval))
        self._sleep = sleep

    def login(self, code: str, now: int) -> LoginResult:
        validate_code(code)
        code_hash = hashlib.sha256(f"{self._appid}\x00{code}".encode()).hexdigest()
        for _ in range(self._max_polls):
            claimed = self._store.logins.claim(
                code_hash, now=now, lease_until=now + self._lease, expires_at=now + self._replay_ttl
            )
            if claimed:
                return self._exchange(code, code_hash, now)
            record = self._store.logins.get(code_hash)
            if record is not None and record.done:
                assert record.sealed_response is not None
                return self._replay(code, code_hash, record.sealed_response, now)
            if record is None:
                continue  # the claimant failed and released the code: claim it ourselves
            self._sleep(self._poll_interval)
        raise LoginPending("this code is still being exchanged by another request")

    def _exchange(self, code: str, code_hash: str, now: int) -> LoginResult:
        """Three DynamoDB requests in all (the claim, the user, one transaction) and WeChat once."""
        try:
            wx = self._wechat.code2session(code)
            user_id = user_id_for(self._appid, wx.openid)
            before = self._store.users.upsert(
                UserRecord(
                    user_id=user_id,
                    appid=self._appid,
                    openid=wx.openid,
                    unionid=wx.unionid,
                    created_at=now,
                )
            )
            session, tokens = self._sessions.prepare(user_id, client_id=self._appid, now=now)
            result = LoginResult(tokens=tokens, is_new=before is None)
            sealed = crypto.seal(
                code,
                json.dumps(_to_json(result)).encode("utf-8"),
                context=code_hash.encode("ascii"),
            )
            # The transaction of then: the session, the claim's result, the unionid link, and
            # the ban check (written here with today's item builders: the items are the same).
            table = self._store.table_name
            items = [
                {"Put": new_session(table, session)},
                login_result(
                    table,
                    code_hash,
                    sealed_response=sealed,
                    user_id=session.user_id,
                    session_id=session.session_id,
                ),
            ]
            if wx.unionid:
                items.append(unionid_link(table, wx.unionid, user_id, now=now))
            self._store.table.transact([*items, not_banned(table, user_id)])
        except ConditionFailed as e:
            self._store.logins.release(code_hash)
            raise StoreUnavailable("the login could not be recorded; try again") from e
        except BaseException:
            self._store.logins.release(code_hash)
            raise
        return result

    def _replay(self, code: str, code_hash: str, sealed: bytes, now: int) -> LoginResult:
        """The first exchange's session with a newly minted access token (the first one may
        have expired: a short AUTH_ACCESS_TTL, a replay late in the code's five minutes)."""
        opened = json.loads(crypto.unseal(code, sealed, context=code_hash.encode("ascii")))
        tokens = self._sessions.resume(opened["refresh_token"], now)
        if tokens is None:
            raise GrantError("code already used, and its session has moved on or ended")
        return LoginResult(tokens=tokens, is_new=bool(opened["is_new"]))


def _to_json(result: LoginResult) -> dict[str, object]:
    """What a replay needs: the refresh token (which names the session) and `is_new`."""
    return {"refresh_token": result.tokens.refresh_token, "is_new": result.is_new}
