"""Neutral helpers of several modules: base64url, and sealing one secret under another.

`seal` keeps a value so that only a holder of another secret can open it: the next refresh
token under the previous one (chalicelib/tokens/refresh.py), a login's answer under its WeChat
code (chalicelib/login.py), a phone code's answer (chalicelib/phone.py), the WeChat access token
under the app secret (chalicelib/wechat/broker.py). The table holds neither secret.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chalicelib.errors import GrantError

RandomBytes = Callable[[int], bytes]

_SEAL_INFO = b"wxauth/seal/v1"
_NONCE_BYTES = 12


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _seal_key(secret: str, context: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO + b"|" + context)
    return AESGCM(hkdf.derive(secret.encode("utf-8")))


def seal(
    secret: str, plaintext: bytes, *, context: bytes, rand: RandomBytes = secrets.token_bytes
) -> bytes:
    """Encrypt `plaintext` under a key derived (HKDF-SHA256) from `secret`, bound to `context`
    (AES-256-GCM, the context as associated data)."""
    nonce = rand(_NONCE_BYTES)
    return nonce + _seal_key(secret, context).encrypt(nonce, plaintext, context)


def unseal(secret: str, sealed: bytes, *, context: bytes) -> bytes:
    """Open what `seal` made with the same secret and context; GrantError otherwise."""
    nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        return _seal_key(secret, context).decrypt(nonce, ciphertext, context)
    except (InvalidTag, ValueError) as e:
        raise GrantError("sealed token does not open with this secret") from e
