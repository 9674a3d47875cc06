"""A web sign-in's parameters and random values.

- Redirect URIs (RFC 6749 §3.1.2), registered per OAuth client and compared character for
  character: absolute `https` URIs, or `http` to a loopback host (`localhost`, `127.0.0.1`,
  `[::1]`: a developer's machine, RFC 8252 §7.3); no fragment, no user name or password, at
  most MAX_REDIRECT_URI characters, at most MAX_REDIRECT_URIS per client.
- PKCE (RFC 7636), S256 only: the challenge is 43 base64url characters (a SHA-256), the
  verifier 43 to 128 unreserved characters; `plain` is refused (RFC 7636 §7.2: it protects
  nothing against an attacker who sees the authorization request).
- The relying party's `state`: optional, at most MAX_STATE printable ASCII characters, handed
  back as it came.
- wxauth's own random values: the state it sends to WeChat and the authorization code are both
  `<authz id>.<secret>` (the sign-in's item, and 256 random bits), the browser's cookie holds
  another 256 random bits; the table keeps only their SHA-256 (`digest`, one purpose each).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from urllib.parse import urlencode, urlsplit

from chalicelib.crypto import b64url
from chalicelib.errors import RequestError

MAX_REDIRECT_URI = 512
MAX_REDIRECT_URIS = 10
MAX_STATE = 512
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
S256 = "S256"
_CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_VERIFIER_RE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_STATE_RE = re.compile(rf"[\x20-\x7e]{{1,{MAX_STATE}}}")  # RFC 6749 Appendix A.5: VSCHAR
_VALUE_RE = re.compile(r"([A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{43}")
_URI_FORBIDDEN = frozenset(' "<>\\^`{|}')
ID_BYTES = 16
SECRET_BYTES = 32
COOKIE_PREFIX = "__Host-wxauth-authz-"  # + the sign-in's id: one cookie per sign-in (tabs)

# What each random value's hash is of (one purpose each: a hash of one never matches another).
STATE, CODE, BROWSER = "authz-state", "authz-code", "authz-browser"


def validate_redirect_uri(uri: str) -> str:
    """A redirect URI a client may register (see the module doc); RequestError otherwise."""
    if (
        not uri
        or len(uri) > MAX_REDIRECT_URI
        or not uri.isascii()
        or not uri.isprintable()
        or _URI_FORBIDDEN.intersection(uri)
        or "#" in uri
    ):
        raise RequestError(
            f"a redirect URI is an absolute URI of at most {MAX_REDIRECT_URI} printable ASCII"
            " characters, without a fragment"
        )
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError as e:
        raise RequestError("a redirect URI must be an absolute URI") from e
    secure = parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS)
    if not host or not secure or "@" in parts.netloc:
        raise RequestError(
            "a redirect URI must be https:// (or http:// to localhost, 127.0.0.1 or [::1]),"
            " with a host and without a user name"
        )
    return uri


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """`uri` with `params` added to its query (a registered URI may have one already)."""
    query = urlencode({name: value for name, value in params.items() if value is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def check_challenge(challenge: str | None, method: str | None) -> str:
    """The PKCE challenge of an authorization request; RequestError if it is missing, not
    S256 (the default, `plain`, included) or not a SHA-256 in base64url."""
    if challenge is None:
        raise RequestError("code_challenge is required (PKCE, RFC 7636, with S256)")
    if method != S256:
        raise RequestError("code_challenge_method must be S256")
    if not _CHALLENGE_RE.fullmatch(challenge):
        raise RequestError("code_challenge must be 43 base64url characters (a SHA-256)")
    return challenge


def check_verifier(verifier: str) -> str:
    if not _VERIFIER_RE.fullmatch(verifier):
        raise RequestError(
            "code_verifier must be 43 to 128 of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)"
        )
    return verifier


def verifier_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge, in constant time."""
    computed = b64url(hashlib.sha256(verifier.encode("ascii")).digest())
    return hmac.compare_digest(computed.encode("ascii"), challenge.encode("ascii"))


def check_state(state: str | None) -> str | None:
    """The relying party's state: optional, handed back as it came."""
    if state is not None and not _STATE_RE.fullmatch(state):
        raise RequestError(f"state must be 1 to {MAX_STATE} printable ASCII characters")
    return state


def new_id(rand: Callable[[int], bytes] = secrets.token_bytes) -> str:
    return b64url(rand(ID_BYTES))


def new_value(authz_id: str, rand: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A state or an authorization code of the sign-in `authz_id`."""
    return f"{authz_id}.{new_secret(rand)}"


def new_secret(rand: Callable[[int], bytes] = secrets.token_bytes) -> str:
    return b64url(rand(SECRET_BYTES))


def authz_id_of(value: str) -> str | None:
    """The sign-in a state or a code names; None for anything that is not one of ours."""
    match = _VALUE_RE.fullmatch(value)
    return match[1] if match else None


def digest(purpose: str, value: str) -> bytes:
    """What the table keeps of a random value: SHA-256 of its purpose and itself."""
    return hashlib.sha256(f"wxauth/{purpose}|{value}".encode()).digest()


def cookie_name(authz_id: str) -> str:
    return COOKIE_PREFIX + authz_id
