"""Opaque refresh tokens: their format, their hash, their MAC.

A refresh token is `<user_id>.<session_id>.<generation>.<secret>.<mac>`:
- the ids (22 base64url characters each) let the store find the session with one GetItem;
- `generation` counts the session's rotations (0 at login, decimal);
- `secret` is 256 random bits (43 base64url characters);
- `mac` is HMAC-SHA256, truncated to 128 bits (22 characters), of everything before it, under
  the session's own MAC key (random, 256 bits, kept only in the session's item).

Only the SHA-256 of the token's *body* (everything but the MAC) is stored, for the current and
the previous token; the token is high-entropy, so a fast hash is enough. The MAC is what lets a
refresh tell an older token of the session (one this service issued, some rotations ago:
theft) from a forged one (made up by someone who knows a session id: nothing to act on),
without keeping every hash the session ever had. It is computed from the key the store hands
back, so the body, hashed before the write, does not depend on it.

Tokens issued before generations existed (`<user_id>.<session_id>.<secret>`, "v1") still parse:
their body is the whole token, they carry no generation and no MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from chalicelib.crypto import RandomBytes, b64url
from chalicelib.errors import GrantError

MAX_TOKEN_LENGTH = 512
MAC_KEY_BYTES = 32
MAX_GENERATION = 10**10 - 1  # ten digits: a rotation a second for 300 years
_ID = r"[A-Za-z0-9_-]{22}"
_ID_RE = re.compile(_ID)
_RANDOM = r"[A-Za-z0-9_-]{43}"
_GENERATION = r"0|[1-9][0-9]{0,9}"
_TOKEN_RE = re.compile(rf"(({_ID})\.({_ID})\.({_GENERATION})\.{_RANDOM})\.([A-Za-z0-9_-]{{22}})")
_BODY_RE = re.compile(rf"{_ID}\.{_ID}\.(?:{_GENERATION})\.{_RANDOM}")
_V1_TOKEN_RE = re.compile(rf"({_ID})\.({_ID})\.{_RANDOM}")
_MAC_INFO = b"wxauth/refresh/v2|"
_MAC_BYTES = 16


@dataclass(frozen=True)
class RefreshToken:
    """A well-formed refresh token, parsed. Its secret is in `body`: never log either."""

    user_id: str
    session_id: str
    generation: int | None  # None: a v1 token
    body: str
    mac: str | None

    @property
    def hash(self) -> bytes:
        return token_hash(self.body)

    def __repr__(self) -> str:
        return f"RefreshToken(generation={self.generation})"


def new_id(rand: RandomBytes = secrets.token_bytes) -> str:
    """A random 128-bit identifier, 22 base64url characters."""
    return b64url(rand(16))


def is_id(value: object) -> bool:
    """A user or session id as `new_id` makes them (22 base64url characters)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def new_mac_key(rand: RandomBytes = secrets.token_bytes) -> bytes:
    return rand(MAC_KEY_BYTES)


def mint(
    user_id: str, session_id: str, generation: int, rand: RandomBytes = secrets.token_bytes
) -> str:
    """A new token body (no MAC yet: `sign` adds it once the session's key is known)."""
    if not 0 <= generation <= MAX_GENERATION:
        raise ValueError("generation out of range")
    return f"{user_id}.{session_id}.{generation}.{b64url(rand(32))}"


def _mac(body: str, key: bytes) -> str:
    digest = hmac.new(key, _MAC_INFO + body.encode("ascii"), hashlib.sha256).digest()
    return b64url(digest[:_MAC_BYTES])


def sign(body: str, key: bytes | None) -> str:
    """The token to hand out for a stored body: the body and its MAC (a v1 body as it is)."""
    if _BODY_RE.fullmatch(body) is None:
        if _V1_TOKEN_RE.fullmatch(body) is None:
            raise ValueError("not a refresh token body")
        return body
    if key is None:
        raise ValueError("a v2 token body needs its session's MAC key")
    return f"{body}.{_mac(body, key)}"


def authentic(token: RefreshToken, key: bytes | None) -> bool:
    """True if `token` carries a MAC made with `key`: this service issued it for its session."""
    if token.mac is None or key is None:
        return False
    return hmac.compare_digest(_mac(token.body, key), token.mac)


def parse(token: object) -> RefreshToken:
    """The parts of a well-formed token (v2, or v1); GrantError otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise GrantError("malformed refresh token")
    match = _TOKEN_RE.fullmatch(token)
    if match is not None:
        body, user_id, session_id, generation, mac = match.groups()
        return RefreshToken(user_id, session_id, int(generation), body, mac)
    match = _V1_TOKEN_RE.fullmatch(token)
    if match is None:
        raise GrantError("malformed refresh token")
    return RefreshToken(match.group(1), match.group(2), None, token, None)


def token_hash(body: str) -> bytes:
    return hashlib.sha256(body.encode("utf-8")).digest()
