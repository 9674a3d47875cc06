"""The fake WeChat's APIs about one user (issue 25, items 4 and 5), beside devserver/fake_wechat.py:

- `GET /wxa/checksession?access_token=&openid=&signature=&sig_method=hmac_sha256`: errcode 0 if
  `signature` is HMAC-SHA256 keyed with the user's current session_key (the one the latest
  jscode2session answered for that app and openid) over the empty string, else 87009; a server
  access_token the fake did not issue 40001.
- `POST /wxa/msg_sec_check?access_token=` (version 2): `result.suggest` `risky` (label 20002)
  for a `content` containing `risky`, `review` (20001) for one containing `review`, else `pass`
  (100); 40003 without an openid, 47001 for a body that is not an object.
- `POST /_fake/open-data {"appid"?, "user", "data"}` (the fake's own, not WeChat's): what a
  mini-program gets from `wx.getWeRunData` or `wx.getShareInfo`, `{"encryptedData", "iv"}`:
  `data` with a `watermark` {appid, timestamp: now} added, encrypted with the user's current
  session_key (AES-128-CBC, PKCS#7); 404 if the user has not logged in to that app.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable
from typing import Any

CHECK_SESSION_PATH = "/wxa/checksession"
MSG_SEC_CHECK_PATH = "/wxa/msg_sec_check"
OPEN_DATA_PATH = "/_fake/open-data"


def _error(errcode: int) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": f"fake error {errcode}"}


class SessionKeys:
    """Each (appid, openid)'s current session_key, as jscode2session last answered it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._keys: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def issue(self, appid: str, openid: str) -> str:
        """A new session_key for the user (the one a jscode2session answers): the current one."""
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        with self._lock:
            self._keys[(appid, openid)] = key
        return key

    def current(self, appid: str, openid: str) -> str | None:
        with self._lock:
            return self._keys.get((appid, openid))

    def reset(self) -> None:
        with self._lock:
            self._keys.clear()

    def check_session(self, appid: str | None, query: dict[str, str]) -> dict[str, Any]:
        if appid is None:
            return _error(40001)
        key = self.current(appid, query.get("openid", ""))
        expected = hmac.new((key or "").encode(), b"", hashlib.sha256).hexdigest()
        if key is None or not hmac.compare_digest(expected, query.get("signature", "")):
            return _error(87009)
        return {"errcode": 0, "errmsg": "ok"}

    def open_data(self, primary: str, openid_for: Callable[[str, str], str], raw: bytes) -> Any:
        """`{"encryptedData", "iv"}` of the request's data, or None (no such user, bad body)."""
        from cryptography.hazmat.primitives import padding
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        try:
            body = json.loads(raw)
            appid, user, data = body.get("appid") or primary, body["user"], body["data"]
        except (ValueError, KeyError, AttributeError, TypeError, RecursionError):
            return None
        key = self.current(appid, openid_for(appid, user)) if isinstance(user, str) else None
        if key is None or not isinstance(data, dict):
            return None
        watermark = {"appid": appid, "timestamp": int(self._clock())}
        plain = json.dumps({**data, "watermark": watermark}, ensure_ascii=False).encode()
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plain) + padder.finalize()
        iv = secrets.token_bytes(16)
        encryptor = Cipher(algorithms.AES(base64.b64decode(key)), modes.CBC(iv)).encryptor()
        encrypted = encryptor.update(padded) + encryptor.finalize()
        return {
            "encryptedData": base64.b64encode(encrypted).decode(),
            "iv": base64.b64encode(iv).decode(),
        }


def msg_sec_check(token_app: str | None, raw: bytes) -> dict[str, Any]:
    """msg_sec_check 2.0's answer (see the module doc)."""
    if token_app is None:
        return _error(40001)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        return _error(47001)
    if not body.get("openid"):
        return _error(40003)
    content = str(body.get("content", ""))
    suggest, label = "pass", 100
    if "risky" in content:
        suggest, label = "risky", 20002
    elif "review" in content:
        suggest, label = "review", 20001
    return {
        "errcode": 0,
        "errmsg": "ok",
        "result": {"suggest": suggest, "label": label},
        "detail": [{"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label}],
        "trace_id": "fake-" + secrets.token_hex(8),
    }
