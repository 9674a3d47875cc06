"""A device login's codes and times (RFC 8628).

The user code is what a person scans (it is the mini-program code's `scene`) or types: 8
characters of RFC 8628 §6.1's base-20 alphabet (no vowels, so no words; no 0/O or 1/I), about
34 bits, shown as `WDJB-MJHT`. It is read case-insensitively, dashes and spaces ignored, and
stored only as a hash (the item's key). Guessing one is bounded by the five minutes a code lives,
by RFC 8628 §5.1's rate limit (AUTH_LIMIT_DEVICE_LOOKUP_PER_USER: a user token is needed to try
one), and by the confirmation the person gives it.

The device code is `<user code>.<256 random bits, base64url>`: the user code in it finds the
login's item with one key (chalicelib/store/devices.py), the random part is what makes it a
secret. Only the SHA-256 of the whole device code is stored, and it is compared in constant
time.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable

from chalicelib.crypto import b64url
from chalicelib.errors import GrantError, RequestError

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
EXPIRES_IN = 300  # seconds a device login lives: the five minutes
INTERVAL = 5  # seconds between polls (RFC 8628's default)
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: each slow_down adds 5 s to the interval
POLL_LEEWAY = 1  # a poll up to a second early is in time (whole seconds, network jitter)
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1
USER_CODE_LENGTH = 8
MAX_USER_CODE_INPUT = 32  # what a person may type around the 8 characters (dashes, spaces)
DEVICE_CODE_BYTES = 32
MAX_DEVICE_CODE_LENGTH = 128
_DEVICE_CODE_RE = re.compile(rf"([{ALPHABET}]{{{USER_CODE_LENGTH}}})\.([A-Za-z0-9_-]{{43}})")


def new_user_code(rand_below: Callable[[int], int] = secrets.randbelow) -> str:
    """A random user code, normalized (`WDJBMJHT`)."""
    return "".join(ALPHABET[rand_below(len(ALPHABET))] for _ in range(USER_CODE_LENGTH))


def display(user_code: str) -> str:
    """A normalized user code as shown and as the mini-program code's scene: `WDJB-MJHT`."""
    half = USER_CODE_LENGTH // 2
    return f"{user_code[:half]}-{user_code[half:]}"


def normalize_user_code(raw: object) -> str:
    """A user code as a person sent it (any case, dashes and spaces anywhere), normalized;
    RequestError if it is not 8 characters of the alphabet."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_USER_CODE_INPUT:
        raise RequestError(f"user_code must be {USER_CODE_LENGTH} letters, like WDJB-MJHT")
    code = raw.upper().replace("-", "").replace(" ", "")
    if len(code) != USER_CODE_LENGTH or any(c not in ALPHABET for c in code):
        raise RequestError(
            f"user_code must be {USER_CODE_LENGTH} letters of {ALPHABET}, like WDJB-MJHT"
        )
    return code


def new_device_code(user_code: str, rand: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """The device code of a normalized user code: `<user code>.<256 random bits>`."""
    return f"{user_code}.{b64url(rand(DEVICE_CODE_BYTES))}"


def device_code_hash(device_code: str) -> bytes:
    """What is stored of a device code: the SHA-256 of all of it."""
    return hashlib.sha256(b"wxauth/device-code|" + device_code.encode("utf-8")).digest()


def parse_device_code(device_code: str) -> tuple[str, bytes]:
    """(its normalized user code, its hash); GrantError (invalid_grant) for anything that is no
    device code of ours."""
    match = _DEVICE_CODE_RE.fullmatch(device_code)
    if match is None:
        raise GrantError("device_code is unknown")
    return match.group(1), device_code_hash(device_code)
