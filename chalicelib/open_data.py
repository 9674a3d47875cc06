"""WeChat's encrypted open data without handing out session_key (issue 25, item 5).

Mini-programs still get some data only encrypted: a share ticket's group (`wx.getShareInfo`),
WeRun steps (`wx.getWeRunData`), ... WeChat encrypts it with the user's session_key
(AES-128-CBC, PKCS#7 padding, key = base64-decode(session_key), the `iv` given with the data,
and a `watermark` {appid, timestamp} inside), and the session_key must never leave the server.

- **Kept sealed.** The login seals the session_key jscode2session answered into the new
  session's item (`session_key_sealed`, in the Put the login's transaction makes anyway: no
  request more, chalicelib/login.py): AES-256-GCM under a key derived (HKDF) from the app secret,
  bound to the app and the user (chalicelib/crypto.py). A copy of the table opens nothing
  without the app secret. Not sealed under something only the session holder has: the holder's
  one secret the server could use, its refresh token's key, comes with refreshes only, never
  with the access token that asks to decrypt (and sending the refresh token along would make
  every decryption a chance to steal the session). The app secret is at hand at both ends (the
  login's jscode2session needs it; so does the broker that decrypt's checksession goes
  through) and adds no secret to keep. A refresh rotates the session and leaves the sealed key
  as it is: it stays until the next login (a new session); a revocation removes it.
- **Decrypted here.** `POST /auth/decrypt {"encryptedData", "iv"}` with the user's access
  token: decrypted with its session's key, the watermark checked (the session's appid; a
  timestamp not older than AUTH_DECRYPT_MAX_AGE nor than the session's login, nor in the
  future), the JSON answered as it is. No request more than the token check's GetItem of the
  session (which the edge hands over).
- **A stale key told apart from altered data.** WeChat keeps one session_key per user at a time:
  a later `wx.login` (a new login, on this phone or another; a data prefetch) replaces it, and
  data encrypted since does not decrypt with the session's key. CBC has no MAC: a wrong key and
  altered data look alike. So when the data does not decrypt, WeChat's checksession (through the
  app's broker, with the user's openid there: one Query of the user's identities) says which:
  the key is no longer current -> SessionKeyExpired (400 `session_key_expired`: log in again,
  then fetch the data again); it is -> 400 `invalid_request` (the data or the iv was altered, or
  is not this user's). Only failures pay for that call.

Nothing of it is logged: not the key, the data, the iv, nor what they decrypt to.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib import crypto
from chalicelib.errors import GrantError, RequestError, SessionKeyExpired
from chalicelib.store.apps import MINI_PROGRAM

if TYPE_CHECKING:
    from chalicelib.identity.apps import AppRegistry
    from chalicelib.store.identities import Identities
    from chalicelib.store.sessions import SessionRecord

BLOCK = 16  # AES: the key of a session_key, the iv and the block are 16 bytes
MAX_ENCRYPTED_DATA = 6000  # characters of base64 (the request body is at most 8 KiB)
LOGIN_CODE_TTL = 300  # a wx.login code (and its session_key) is at most this old at the login
CLOCK_SKEW = 60  # seconds a watermark may be ahead of this service's clock
STALE = (
    "this session's WeChat session_key is no longer the user's current one (wx.login was called"
    " again since this session's login, here or on another device, or it expired): log in again"
    " (wx.login, POST /auth/login), then get the encrypted data again"
)
NONE_KEPT = (
    "this session keeps no WeChat session_key (started before they were kept, or its key cannot"
    " be opened any more): log in again (wx.login, POST /auth/login), then get the encrypted"
    " data again"
)


class SessionApps(Protocol):
    """chalicelib.phone.AppPhones, as used here (not imported: the login imports this module,
    and phone.py the login's): `of(client_id)` is the session's app, a PhoneApp with its
    `appid`, `wechat` client (its `secret()`) and `broker` (`call(request)`)."""

    def of(self, client_id: str | None) -> Any: ...


def _context(appid: str, user_id: str) -> bytes:
    return f"session-key|{appid}|{user_id}".encode()


def seal_session_key(secret: str, *, appid: str, user_id: str, session_key: str) -> bytes:
    """What a session item keeps of the login's session_key (see the module doc)."""
    return crypto.seal(secret, session_key.encode("utf-8"), context=_context(appid, user_id))


def open_session_key(secret: str, sealed: bytes, *, appid: str, user_id: str) -> str:
    """The session_key `seal_session_key` sealed; GrantError if it does not open (another
    secret: the app secret was reset since the login)."""
    return crypto.unseal(secret, sealed, context=_context(appid, user_id)).decode("utf-8")


def _base64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as e:
        raise RequestError(f"{name} must be base64, as WeChat gives it") from e


def parse_request(body: dict[str, Any]) -> tuple[bytes, bytes]:
    """The ciphertext and iv of `{"encryptedData", "iv"}`; RequestError if either is missing
    or cannot be AES-CBC's."""
    from chalicelib.http_input import string_field

    data = string_field(body, "encryptedData", max_length=MAX_ENCRYPTED_DATA)
    iv = string_field(body, "iv", max_length=64)
    unknown = sorted(set(body) - {"encryptedData", "iv"})
    if unknown:
        raise RequestError(f"unknown field {unknown[0]}: only encryptedData and iv")
    ciphertext, iv_bytes = _base64(data, "encryptedData"), _base64(iv, "iv")
    if len(iv_bytes) != BLOCK:
        raise RequestError(f"iv must be {BLOCK} bytes (base64 of 24 characters)")
    if not ciphertext or len(ciphertext) % BLOCK:
        raise RequestError(f"encryptedData must be whole AES blocks of {BLOCK} bytes")
    return ciphertext, iv_bytes


def decrypt(session_key: str, ciphertext: bytes, iv: bytes) -> dict[str, Any] | None:
    """WeChat's algorithm: AES-128-CBC, PKCS#7, key = base64-decode(session_key). The JSON
    object it decrypts to, or None (a wrong key, altered data: padding, UTF-8 or JSON wrong)."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(session_key)  # checked by `OpenData._session_key`
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(BLOCK * 8).unpadder()
    try:
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        data = json.loads((unpadder.update(padded) + unpadder.finalize()).decode("utf-8"))
    except (ValueError, RecursionError):  # bad padding, UnicodeDecodeError, JSONDecodeError
        return None
    return data if isinstance(data, dict) else None


class OpenData:
    """`POST /auth/decrypt`: a session's encrypted open data, decrypted and checked."""

    def __init__(
        self,
        registry: AppRegistry,
        apps: SessionApps,
        identities: Identities,
        *,
        max_age: int,
        limit: Callable[[str, int], None] | None = None,
    ) -> None:
        """`registry`: the session's app (its kind); `apps`: its WeChat client and broker (the
        secret, checksession); `identities`: the user's openid there; `max_age`:
        AUTH_DECRYPT_MAX_AGE."""
        self._registry = registry
        self._apps = apps
        self._identities = identities
        self._max_age = max_age
        self._limit = limit  # AUTH_LIMIT_DECRYPT_CHECK_PER_SESSION, before each checksession

    def decrypt(self, session: SessionRecord, body: dict[str, Any], now: int) -> dict[str, Any]:
        """The decrypted JSON object of `body`'s encryptedData, its watermark checked.

        RequestError (malformed, altered, another app's, too old), SessionKeyExpired (the key
        is stale or none is kept: log in again), the WeChat errors of checksession (503)."""
        ciphertext, iv = parse_request(body)
        app = self._registry.by_client_id(session.client_id)
        if app is None:
            raise GrantError("the app of this session is not an app of this deployment")
        if app.kind != MINI_PROGRAM:
            raise RequestError(
                f"encrypted data is a mini-program's; this session's app is an {app.kind}"
            )
        wechat_app = self._apps.of(session.client_id)
        session_key = self._session_key(wechat_app, session)
        data = decrypt(session_key, ciphertext, iv)
        if data is None:
            self._undecryptable(wechat_app, session, session_key, now)
        assert data is not None
        self._check_watermark(data.get("watermark"), wechat_app.appid, session, now)
        return data

    def _session_key(self, app: Any, session: SessionRecord) -> str:
        if session.sealed_session_key is None:
            raise SessionKeyExpired(NONE_KEPT)
        try:
            key = open_session_key(
                app.wechat.secret(),
                session.sealed_session_key,
                appid=app.appid,
                user_id=session.user_id,
            )
            if len(base64.b64decode(key, validate=True)) != BLOCK:
                raise ValueError("not a 16-byte key")
        except (GrantError, ValueError) as e:  # another app secret; not a key WeChat would give
            raise SessionKeyExpired(NONE_KEPT) from e
        return key

    def _undecryptable(self, app: Any, session: SessionRecord, session_key: str, now: int) -> None:
        """The data does not decrypt with the session's key: ask WeChat whether the key is
        still the user's (see the module doc), at most AUTH_LIMIT_DECRYPT_CHECK_PER_SESSION
        times per session (RateLimited: WeChat is not asked). Always raises."""
        from chalicelib.wechat.user_api import session_key_current

        if self._limit is not None:
            self._limit(session.session_id, now)

        openid = self._openid(session.user_id, app.appid)
        current = app.broker.call(
            lambda token: session_key_current(
                app.wechat, token, openid=openid, session_key=session_key
            )
        )
        if not current:
            raise SessionKeyExpired(STALE)
        raise RequestError(
            "encryptedData and iv do not decrypt with this session's key, which is current:"
            " they were altered, cut, or are not this user's"
        )

    def _openid(self, user_id: str, appid: str) -> str:
        for identity in self._identities.of_user(user_id):
            if identity.appid == appid:
                return identity.openid
        raise SessionKeyExpired(NONE_KEPT)  # no identity of the app: nothing to check it with

    def _check_watermark(
        self, watermark: object, appid: str, session: SessionRecord, now: int
    ) -> None:
        if not isinstance(watermark, dict):
            raise RequestError("the decrypted data has no watermark: it is not WeChat's open data")
        if watermark.get("appid") != appid:
            raise RequestError(
                "the data's watermark names another app than this session's: it was encrypted"
                " for another mini-program"
            )
        timestamp = watermark.get("timestamp")
        if type(timestamp) is not int:
            raise RequestError("the data's watermark has no timestamp")
        oldest = max(now - self._max_age, session.created_at - LOGIN_CODE_TTL)
        if timestamp < oldest:
            raise RequestError(
                f"the data is {now - timestamp} s old (the limit is {now - oldest} s:"
                " AUTH_DECRYPT_MAX_AGE, and never older than this session's login): get it again"
            )
        if timestamp > now + CLOCK_SKEW:
            raise RequestError("the data's watermark is later than now: the clocks disagree")
