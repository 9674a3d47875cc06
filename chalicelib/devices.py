"""What a session records about where it was started, and what its user may see of it.

At login the client may send a device label, `{"device": {"name": ..., "platform": ...}}`
(both optional, bounded, printable); the request's `User-Agent` (truncated) and source IP (API
Gateway's `requestContext.identity.sourceIp`) are recorded with it on the session item.
`GET /auth/sessions` shows each live session of the caller with `session_json`: never a hash, a
key or a token, and the source IP masked to its network (/24 for IPv4, /48 for IPv6), in pages
of `limit` (`page_request`) with an opaque `next_cursor` (`cursor_of`): a position in the
caller's own list (a session id), never a key of another partition.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.crypto import b64url
from chalicelib.errors import RequestError
from chalicelib.store.sessions import SessionRecord
from chalicelib.tokens.refresh import is_id

MAX_DEVICE_NAME = 64
MAX_DEVICE_PLATFORM = 32
MAX_USER_AGENT = 256
DEVICE_FIELDS = ("name", "platform")
# What GET /auth/sessions shows of a source IP: its network, not the address.
IPV4_PREFIX = 24
IPV6_PREFIX = 48
# GET /auth/sessions' pages (issue 21): `limit` sessions at most, 20 unless asked.
DEFAULT_PAGE = 20
MAX_PAGE = 100
_LIMIT_RE = re.compile(r"[1-9][0-9]{0,2}")
_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CURSOR_VERSION = b"\x01"


@dataclass(frozen=True)
class DeviceInfo:
    """Where a login came from; every field optional (None: not sent, or not usable)."""

    name: str | None = None
    platform: str | None = None
    user_agent: str | None = None
    source_ip: str | None = None


def _label(device: dict[str, Any], field: str, max_length: int) -> str | None:
    value = device.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"device.{field} must be a string")
    if not value or len(value) > max_length:
        raise RequestError(f"device.{field} must be 1 to {max_length} characters")
    if not value.isprintable():
        raise RequestError(f"device.{field} must be printable text (no control characters)")
    return value


def parse_device(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(name, platform) of a login body's optional `device` object; RequestError if it is not
    an object of at most those two strings (each optional, printable, bounded)."""
    device = body.get("device")
    if device is None:
        return None, None
    if not isinstance(device, dict):
        raise RequestError('device must be an object: {"name": ..., "platform": ...}')
    unknown = sorted(set(device) - set(DEVICE_FIELDS))
    if unknown:
        raise RequestError("device takes only name and platform")
    return (
        _label(device, "name", MAX_DEVICE_NAME),
        _label(device, "platform", MAX_DEVICE_PLATFORM),
    )


def clean_user_agent(value: object) -> str | None:
    """The User-Agent header as recorded: printable characters only, at most MAX_USER_AGENT."""
    if not isinstance(value, str):
        return None
    cleaned = "".join(c if c.isprintable() else "?" for c in value[:MAX_USER_AGENT]).strip()
    return cleaned or None


def clean_source_ip(value: object) -> str | None:
    """The source IP as recorded: a valid IPv4 or IPv6 address in its normal form, else None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def device_info(body: dict[str, Any], *, user_agent: object, source_ip: object) -> DeviceInfo:
    """Everything a login records about its device; RequestError for a bad `device`."""
    name, platform = parse_device(body)
    return DeviceInfo(
        name=name,
        platform=platform,
        user_agent=clean_user_agent(user_agent),
        source_ip=clean_source_ip(source_ip),
    )


def masked_ip(value: str | None) -> str | None:
    """The network of an address, as CIDR: `203.0.113.0/24`, `2001:db8:1::/48`."""
    if value is None:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def session_json(session: SessionRecord, *, current_session_id: str | None) -> dict[str, Any]:
    """One entry of GET /auth/sessions."""
    device = None
    if session.device_name is not None or session.device_platform is not None:
        device = {"name": session.device_name, "platform": session.device_platform}
    return {
        "id": session.session_id,
        "current": session.session_id == current_session_id,
        "created_at": session.created_at,
        # sessions rotated before last_refreshed_at was recorded: their last rotation
        "last_refreshed_at": session.last_refreshed_at or session.rotated_at,
        "expires_at": session.expires_at,
        "device": device,
        "user_agent": session.user_agent,
        "source_ip": masked_ip(session.source_ip),
    }


# -- pages ------------------------------------------------------------------------------------


def page_request(query: Mapping[str, str] | None) -> tuple[int, str | None]:
    """(limit, after) of GET /auth/sessions' query string: `limit` 1 to MAX_PAGE (default
    DEFAULT_PAGE), `cursor` a `next_cursor` of an earlier page (the session id to start
    after). RequestError for anything else; other parameters are ignored."""
    query = query or {}
    limit = DEFAULT_PAGE
    raw_limit = query.get("limit")
    if raw_limit is not None:
        if not _LIMIT_RE.fullmatch(raw_limit) or int(raw_limit) > MAX_PAGE:
            raise RequestError(f"limit must be an integer from 1 to {MAX_PAGE}")
        limit = int(raw_limit)
    cursor = query.get("cursor")
    return limit, None if cursor is None else _after(cursor)


def cursor_of(after: str | None) -> str | None:
    """The opaque `next_cursor` that starts the next page after session `after`."""
    return None if after is None else b64url(_CURSOR_VERSION + after.encode("ascii"))


def _after(cursor: str) -> str:
    bad = RequestError("cursor must be a next_cursor of an earlier page, as it was given")
    if not _CURSOR_RE.fullmatch(cursor):
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as e:
        raise bad from e
    after = raw[1:].decode("ascii", errors="replace")
    if raw[:1] != _CURSOR_VERSION or not is_id(after) or cursor_of(after) != cursor:
        raise bad
    return after
