"""Reading requests: JSON bodies, form bodies and the Authorization header, strictly.

Framework-free: takes raw bytes and header values, and raises only the project's own errors
(RequestError, InvalidToken, ClientAuthError), whatever the input: tests/test_http_input_fuzz.py
feeds every parser arbitrary text.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from chalicelib.errors import ClientAuthError, InvalidToken, RequestError

MAX_BODY_BYTES = 8192
# No request body of the contract nests more than two levels. Python 3.11's parser stopped at
# its recursion limit (~1000 levels); 3.13's parses 8 KB of nesting whole, so the depth is
# checked here rather than left to the interpreter.
MAX_JSON_DEPTH = 32
# Longer than `Basic base64(<the longest access token>:)`; API Gateway's own limit is 10 KiB.
MAX_AUTHORIZATION_CHARS = 12288
# An access token is printable ASCII without spaces (a JWT is base64url and dots); anything
# else is refused here, before a token parser sees it.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _check_size(raw: bytes) -> None:
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(f"request body is larger than {MAX_BODY_BYTES} bytes")


def json_body(
    raw: bytes | None, content_type: str | None, *, required: bool = True
) -> dict[str, Any]:
    """The request's JSON object; `{}` for an absent optional body."""
    raw = raw or b""
    if not raw.strip():
        if required:
            raise RequestError("a JSON body is required")
        return {}
    _check_size(raw)
    if _media_type(content_type) != "application/json":
        raise RequestError("Content-Type must be application/json")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RequestError("body is not valid JSON") from e
    if not isinstance(body, dict):
        raise RequestError("body must be a JSON object")
    if _nested_deeper_than(body, MAX_JSON_DEPTH):
        raise RequestError(f"body nests deeper than {MAX_JSON_DEPTH} levels")
    return body


def _nested_deeper_than(value: Any, limit: int) -> bool:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            pending.extend((child, depth + 1) for child in children)
    return False


def form_body(raw: bytes | None, content_type: str | None) -> dict[str, str]:
    """A form-encoded body; a repeated parameter is an error (RFC 6749 §3.2)."""
    raw = raw or b""
    _check_size(raw)
    if _media_type(content_type) != "application/x-www-form-urlencoded":
        raise RequestError("Content-Type must be application/x-www-form-urlencoded")
    try:
        parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as e:
        raise RequestError("body is not a valid form") from e
    form = {}
    for name, values in parsed.items():
        if len(values) != 1:
            raise RequestError(f"parameter {name} is repeated")
        form[name] = values[0]
    return form


def string_field(body: dict[str, Any], name: str, *, max_length: int) -> str:
    if name not in body or body[name] is None:
        raise RequestError(f"{name} is required")
    value = body[name]
    if not isinstance(value, str):
        raise RequestError(f"{name} must be a string")
    if not value:
        raise RequestError(f"{name} must not be empty")
    if len(value) > max_length:
        raise RequestError(f"{name} is longer than {max_length} characters")
    return value


def bool_field(body: dict[str, Any], name: str, *, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false")
    return value


def _decode_basic(credentials: str) -> str | None:
    """The text inside Basic credentials (base64, then UTF-8); None if it is not that."""
    try:
        return base64.b64decode(credentials, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII input are all one
        return None


def access_token_from_header(authorization: str | None) -> str | None:
    """The access token in `Authorization`: `Bearer <t>` (RFC 6750), a bare `<t>`, or
    `Basic base64(<t>:)`, as mini-program code sends them. None if the header is absent.
    Anything else, and any token that is not printable ASCII, is InvalidToken."""
    if authorization is None or not authorization.strip():
        return None
    if len(authorization) > MAX_AUTHORIZATION_CHARS:
        raise InvalidToken("Authorization header is too long")
    parts = authorization.strip().split()
    if len(parts) == 1:
        return _checked_token(parts[0])
    if len(parts) != 2:
        raise InvalidToken("malformed Authorization header")
    scheme, credentials = parts
    if scheme.lower() == "bearer":
        return _checked_token(credentials)
    if scheme.lower() == "basic":
        decoded = _decode_basic(credentials)
        if decoded is None:
            raise InvalidToken("malformed Basic credentials")
        token, _, password = decoded.partition(":")
        if password:
            raise InvalidToken("Basic credentials must be <token> with an empty password")
        return _checked_token(token)
    raise InvalidToken("unsupported Authorization scheme")


def _checked_token(token: str) -> str:
    if not _TOKEN_CHARS.fullmatch(token):
        raise InvalidToken("malformed access token")
    return token


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(client_id, client_secret) from `Basic`, form-decoded per RFC 6749 §2.3.1; None if absent
    or another scheme. Basic credentials that cannot be decoded are a failed client
    authentication (ClientAuthError: 401 invalid_client, RFC 6749 §5.2)."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    if len(authorization) > MAX_AUTHORIZATION_CHARS:
        raise ClientAuthError("Authorization header is too long")
    decoded = _decode_basic(credentials.strip())
    if decoded is None:
        raise ClientAuthError("malformed Basic credentials")
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise ClientAuthError("malformed Basic credentials: no colon between id and secret")
    return unquote_plus(client_id), unquote_plus(secret)


MAX_COOKIE_CHARS = 8192


def cookie(header: str | None, name: str) -> str | None:
    """The value of the cookie `name` in a `Cookie` header (RFC 6265 §5.4: `name=value` pairs
    separated by `;`), the first if there are several; None if it is absent or the header is
    longer than MAX_COOKIE_CHARS."""
    if header is None or len(header) > MAX_COOKIE_CHARS:
        return None
    for pair in header.split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None
