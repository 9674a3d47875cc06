"""Opaque refresh tokens: their format, their hash, and sealing one secret under another.

A refresh token is `<user_id>.<session_id>.<secret>`: 22 + 22 + 43 base64url characters, the
secret being 256 random bits. The ids let the store find the session with one GetItem; only the
SHA-256 of the whole token is stored. A token is high-entropy, so a fast hash is enough.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chalicelib.errors import GrantError

RandomBytes = Callable[[int], bytes]

MAX_TOKEN_LENGTH = 512
_TOKEN_RE = re.compile(r"([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{43}")
_SEAL_INFO = b"wxauth/seal/v1"
_NONCE_BYTES = 12


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_id(rand: RandomBytes = secrets.token_bytes) -> str:
    """A random 128-bit identifier, 22 base64url characters."""
    return b64url(rand(16))


def mint(user_id: str, session_id: str, rand: RandomBytes = secrets.token_bytes) -> str:
    return f"{user_id}.{session_id}.{b64url(rand(32))}"


def parse(token: object) -> tuple[str, str]:
    """Return (user_id, session_id) of a well-formed token; GrantError otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise GrantError("malformed refresh token")
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        raise GrantError("malformed refresh token")
    return match.group(1), match.group(2)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _seal_key(secret: str, context: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO + b"|" + context)
    return AESGCM(hkdf.derive(secret.encode("utf-8")))


def seal(
    secret: str, plaintext: bytes, *, context: bytes, rand: RandomBytes = secrets.token_bytes
) -> bytes:
    """Encrypt `plaintext` under a key derived (HKDF-SHA256) from `secret`, bound to `context`.

    Used to keep the current refresh token (and a login's response) so that only a holder of
    the previous token (or of the WeChat code) can recover it: the table holds neither.
    """
    nonce = rand(_NONCE_BYTES)
    return nonce + _seal_key(secret, context).encrypt(nonce, plaintext, context)


def unseal(secret: str, sealed: bytes, *, context: bytes) -> bytes:
    nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        return _seal_key(secret, context).decrypt(nonce, ciphertext, context)
    except (InvalidTag, ValueError) as e:
        raise GrantError("sealed token does not open with this secret") from e
