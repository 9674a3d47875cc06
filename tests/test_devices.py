"""The device a login records, and what GET /auth/sessions shows of a session."""

from __future__ import annotations

import pytest

from chalicelib.devices import (
    MAX_USER_AGENT,
    DeviceInfo,
    clean_source_ip,
    clean_user_agent,
    device_info,
    masked_ip,
    parse_device,
    session_json,
)
from chalicelib.errors import RequestError
from chalicelib.store import SessionRecord


def test_parse_device() -> None:
    assert parse_device({}) == (None, None)
    assert parse_device({"device": None}) == (None, None)
    assert parse_device({"device": {}}) == (None, None)
    assert parse_device({"device": {"name": "张三的 iPhone", "platform": "ios"}}) == (
        "张三的 iPhone",
        "ios",
    )
    assert parse_device({"device": {"platform": "android", "name": None}}) == (None, "android")
    assert parse_device({"device": {"name": "x" * 64}}) == ("x" * 64, None)


@pytest.mark.parametrize(
    "device",
    [
        "iPhone",
        ["iPhone"],
        42,
        True,
        {"name": 42},
        {"name": ["a"]},
        {"name": {"a": 1}},
        {"name": ""},
        {"name": "x" * 65},
        {"platform": "p" * 33},
        {"name": "a\nb"},
        {"name": "a\x00b"},
        {"platform": "ios\u202e"},  # a bidi override is not printable
        {"name": "ok", "model": "iPhone 15"},
    ],
)
def test_bad_device_is_a_request_error(device: object) -> None:
    with pytest.raises(RequestError) as raised:
        parse_device({"device": device})
    assert str(raised.value).startswith("device")


def test_user_agent_is_truncated_and_printable() -> None:
    assert clean_user_agent("a" * 1000) == "a" * MAX_USER_AGENT
    assert clean_user_agent("wx\x00agent\x7f") == "wx?agent?"
    assert clean_user_agent(None) is None and clean_user_agent("  ") is None


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("not-an-ip", None),
        ("203.0.113.7, 10.0.0.1", None),
        ("1" * 100, None),
        (None, None),
        (17, None),
    ],
)
def test_source_ip_is_kept_only_if_it_is_an_address(raw: object, kept: str | None) -> None:
    assert clean_source_ip(raw) == kept


def test_device_info() -> None:
    info = device_info(
        {"device": {"name": "Pixel"}}, user_agent="UA/1.0", source_ip="198.51.100.20"
    )
    assert info == DeviceInfo(
        name="Pixel", platform=None, user_agent="UA/1.0", source_ip="198.51.100.20"
    )


def test_masked_ip() -> None:
    assert masked_ip("203.0.113.7") == "203.0.113.0/24"
    assert masked_ip("2001:db8:1:2::9") == "2001:db8:1::/48"
    assert masked_ip(None) is None and masked_ip("garbage") is None


def session(**changes: object) -> SessionRecord:
    base = {
        "user_id": "u" * 22,
        "session_id": "s" * 22,
        "client_id": "wx-app",
        "current_hash": b"\x01" * 32,
        "previous_hash": b"\x02" * 32,
        "rotated_at": 150,
        "sealed_current": b"\x03" * 40,
        "created_at": 100,
        "idle_expires_at": 1000,
        "absolute_expires_at": 900,
        "mac_key": b"\x04" * 32,
    }
    return SessionRecord(**{**base, **changes})  # type: ignore[arg-type]


def test_session_json_shows_no_secret() -> None:
    shown = session_json(
        session(
            device_name="Pixel",
            device_platform="android",
            user_agent="UA",
            source_ip="203.0.113.7",
            last_refreshed_at=160,
        ),
        current_session_id="s" * 22,
    )
    assert shown == {
        "id": "s" * 22,
        "current": True,
        "created_at": 100,
        "last_refreshed_at": 160,
        "expires_at": 900,
        "device": {"name": "Pixel", "platform": "android"},
        "user_agent": "UA",
        "source_ip": "203.0.113.0/24",
    }


def test_session_json_of_a_session_from_before_devices() -> None:
    shown = session_json(session(), current_session_id="other")
    assert shown["current"] is False and shown["device"] is None
    assert shown["user_agent"] is None and shown["source_ip"] is None
    assert shown["last_refreshed_at"] == 150  # its last rotation
