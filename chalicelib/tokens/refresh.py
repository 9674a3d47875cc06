"""Opaque refresh tokens: their format, their hash, and the key that ties them to a session.

A refresh token is `<user_id>.<session_id>.<generation>.<secret>.<key>` ("v3"):
- the ids (22 base64url characters each) name the session's item;
- `generation` counts the session's rotations (0 at login, decimal);
- `secret` is 256 random bits (43 base64url characters), new at every rotation;
- `key` is the session's token key: 256 random bits (43 characters) drawn at login, the same
  in every token of the session.

The table keeps the SHA-256 of the **whole** token, every byte of it, for the current and the
previous token, and the SHA-256 of the session's key (`key_hash`). The token is high-entropy,
so a fast hash is enough.

Why the whole token (issue 22, item 7): a refresh is ONE conditional UpdateItem, whose condition
compares the hash of what was presented with the stored one. With v2 tokens (below) the stored
hash covered only the body and the MAC was checked against a key the write itself handed back:
a token with its MAC altered still matched, and refreshed. A MAC under a key kept in the item
cannot be checked before that write without a read first, and a new token's MAC cannot be known
before it either; a key derived from a server secret could, but that is one more secret to keep,
fetch at a cold start and never lose. So the v3 token carries its session's key itself, and the
condition compares the hash of the whole token: only an issued token, byte for byte, matches,
and a token with any character changed (the key included) writes nothing. The rotation knows
the new token's key before the write (it is the presented one's), so the new token's hash is
written by the same request.

The key is what lets a refresh tell an older token of the session (issued some rotations ago:
theft, the session is revoked) from a forged one (made up by someone who knows a session id from
an access token: nothing to act on), without keeping every hash the session ever had: an older
token carries the key whose hash the session keeps. Only a holder of a token of the session
knows it, and such a holder can end the session anyway (presenting a rotated token does). The
table keeps only the key's hash, so a copy of the table forges no token either.

Earlier formats still parse, and their sessions move to v3 at their next rotation:
- "v2" `<user_id>.<session_id>.<generation>.<secret>.<mac>`: `mac` is HMAC-SHA256, truncated to
  128 bits (22 characters), of the body under the session's `mac_key` (kept in its item). The
  store hashed only the body, so a v2 token is checked before any write by reading its session
  first (SessionManager: one GetItem more, once per session after the upgrade).
- "v1" `<user_id>.<session_id>.<secret>` (before generations): no MAC; the store hashed the
  whole token, which is its body.
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
KEY_BYTES = 32
MAX_GENERATION = 10**10 - 1  # ten digits: a rotation a second for 300 years
_ID = r"[A-Za-z0-9_-]{22}"
_ID_RE = re.compile(_ID)
_RANDOM = r"[A-Za-z0-9_-]{43}"
_GENERATION = r"0|[1-9][0-9]{0,9}"
_BODY = rf"({_ID})\.({_ID})\.({_GENERATION})\.{_RANDOM}"
_TOKEN_RE = re.compile(rf"({_BODY})\.({_RANDOM})")  # v3: the body and the session's key
_V2_TOKEN_RE = re.compile(rf"({_BODY})\.([A-Za-z0-9_-]{{22}})")  # the body and its MAC
_BODY_RE = re.compile(_BODY)
_V1_TOKEN_RE = re.compile(rf"({_ID})\.({_ID})\.{_RANDOM}")
_MAC_INFO = b"wxauth/refresh/v2|"
_MAC_BYTES = 16


@dataclass(frozen=True)
class RefreshToken:
    """A well-formed refresh token, parsed. Its secret is in `body` and `token`: never log
    them, nor `key`."""

    user_id: str
    session_id: str
    generation: int | None  # None: a v1 token
    body: str  # everything but the key (v3) or the MAC (v2); a v1 token whole
    mac: str | None  # v2 only
    key: str | None = None  # v3 only: the session's token key
    token: str = ""  # the token as presented

    @property
    def version(self) -> int:
        return 3 if self.key is not None else 2 if self.mac is not None else 1

    @property
    def hash(self) -> bytes:
        """What the store keeps of this token: the SHA-256 of all of it (v3, v1), of its body
        (v2, whose MAC is checked apart)."""
        return token_hash(self.body if self.version == 2 else self.token)

    @property
    def key_hash(self) -> bytes | None:
        return key_hash(self.key) if self.key is not None else None

    def __repr__(self) -> str:
        return f"RefreshToken(version={self.version}, generation={self.generation})"


def new_id(rand: RandomBytes = secrets.token_bytes) -> str:
    """A random 128-bit identifier, 22 base64url characters."""
    return b64url(rand(16))


def is_id(value: object) -> bool:
    """A user or session id as `new_id` makes them (22 base64url characters)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def new_key(rand: RandomBytes = secrets.token_bytes) -> str:
    """A session's token key: 256 random bits, 43 base64url characters."""
    return b64url(rand(KEY_BYTES))


def new_mac_key(rand: RandomBytes = secrets.token_bytes) -> bytes:
    """A v2 session's MAC key (tests and benchmarks of v2 sessions make them)."""
    return rand(MAC_KEY_BYTES)


def mint(
    user_id: str, session_id: str, generation: int, rand: RandomBytes = secrets.token_bytes
) -> str:
    """A new token body (`issue` adds the session's key)."""
    if not 0 <= generation <= MAX_GENERATION:
        raise ValueError("generation out of range")
    return f"{user_id}.{session_id}.{generation}.{b64url(rand(32))}"


def issue(body: str, key: str) -> str:
    """The v3 token of a body and its session's key."""
    if _BODY_RE.fullmatch(body) is None or re.fullmatch(_RANDOM, key) is None:
        raise ValueError("not a refresh token body and key")
    return f"{body}.{key}"


def is_body(text: str) -> bool:
    """True for a bare v2/v3 body (what an earlier release sealed for a grace replay)."""
    return _BODY_RE.fullmatch(text) is not None


def _mac(body: str, key: bytes) -> str:
    digest = hmac.new(key, _MAC_INFO + body.encode("ascii"), hashlib.sha256).digest()
    return b64url(digest[:_MAC_BYTES])


def sign(body: str, key: bytes | None) -> str:
    """The v2 token of a stored v2 body (a v1 token as it is): a session rotated by an earlier
    release holds one sealed for its grace window, and tests make them."""
    if _BODY_RE.fullmatch(body) is None:
        if _V1_TOKEN_RE.fullmatch(body) is None:
            raise ValueError("not a refresh token body")
        return body
    if key is None:
        raise ValueError("a v2 token body needs its session's MAC key")
    return f"{body}.{_mac(body, key)}"


def authentic(token: RefreshToken, key: bytes | None) -> bool:
    """True if the v2 `token` carries a MAC made with `key` (constant time): this service
    issued it for its session."""
    if token.mac is None or key is None:
        return False
    return hmac.compare_digest(_mac(token.body, key), token.mac)


def holds_key(token: RefreshToken, stored_key_hash: bytes | None) -> bool:
    """True if the v3 `token` carries the key whose hash its session keeps (constant time)."""
    presented = token.key_hash
    if presented is None or stored_key_hash is None:
        return False
    return hmac.compare_digest(presented, stored_key_hash)


def older(
    token: RefreshToken, generation: int, stored_key_hash: bytes | None, mac_key: bytes | None
) -> bool:
    """True if `token` is an older token of a session now at `generation`: a generation below
    it, and the session's key (v3) or a MAC that opens with its `mac_key` (v2)."""
    return (
        token.generation is not None
        and token.generation < generation
        and (holds_key(token, stored_key_hash) or authentic(token, mac_key))
    )


def sealed(stored: str, mac_key: bytes | None) -> str:
    """The token to hand out for what a session keeps sealed for its grace window: a v3 or v1
    token as it is, a v2 body (sealed by an earlier release) with its MAC."""
    return sign(stored, mac_key) if is_body(stored) else stored


def limit_key(token: RefreshToken) -> str:
    """AUTH_LIMIT_REFRESH_PER_SESSION's key for a presented token (issue 22, item 8): the
    session and what only a holder of one of its real tokens can present. v3: the hash of the
    session's key; v2: the session alone, counted only once the MAC opened; v1 (no key): the
    hash of the token. A token made up from the ids an access token shows (every access token
    shows them) therefore spends a counter of its own, never the owner's."""
    session = f"{token.user_id}/{token.session_id}"
    if token.key is not None:
        return f"{session}/{b64url(key_hash(token.key))}"
    if token.version == 1:
        return f"{session}/{b64url(token.hash)}"
    return session


def parse(token: object) -> RefreshToken:
    """The parts of a well-formed token (v3, v2 or v1); GrantError otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise GrantError("malformed refresh token")
    match = _TOKEN_RE.fullmatch(token)
    if match is not None:
        body, user_id, session_id, generation, key = match.groups()
        return RefreshToken(user_id, session_id, int(generation), body, None, key, token)
    match = _V2_TOKEN_RE.fullmatch(token)
    if match is not None:
        body, user_id, session_id, generation, mac = match.groups()
        return RefreshToken(user_id, session_id, int(generation), body, mac, None, token)
    match = _V1_TOKEN_RE.fullmatch(token)
    if match is None:
        raise GrantError("malformed refresh token")
    return RefreshToken(match.group(1), match.group(2), None, token, None, None, token)


def token_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def key_hash(key: str) -> bytes:
    """What the store keeps of a session's token key."""
    return hashlib.sha256(b"wxauth/refresh-key|" + key.encode("ascii")).digest()
