"""The fake WeChat's wxa/getwxacodeunlimit (devserver/fake_wxacode.py; issue 24, item 5)."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from devserver.fake_wxacode import WxaCodes, png, png_text


def test_the_png_is_a_real_one_bit_image_carrying_what_the_code_opens() -> None:
    data = png("WDJB-MJHT", page="pages/device/confirm", env_version="trial")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, depth, kind = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, kind) == (232, 232, 1, 0)
    start = data.index(b"IDAT") + 4
    (length,) = struct.unpack(">I", data[start - 8 : start - 4])
    rows = zlib.decompress(data[start : start + length])
    assert len(rows) == height * (1 + width // 8)  # a filter byte and 29 bytes a row
    assert png_text(data) == {
        "scene": "WDJB-MJHT",
        "page": "pages/device/confirm",
        "env_version": "trial",
    }
    assert png("WDJB-MJHT") != png("BCDF-GHJK")


@pytest.mark.parametrize(
    ("token_ok", "body", "errcode"),
    [
        (None, {"scene": "A"}, 41001),
        (False, {"scene": "A"}, 40001),
        (True, "not json", 47001),
        (True, {"scene": "x" * 33}, 40169),
        (True, {"scene": "A", "env_version": "beta"}, 40097),
        (True, {"scene": "A", "page": "/pages/x"}, 41030),
    ],
)
def test_errors_are_wechats(token_ok: bool | None, body: object, errcode: int) -> None:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
    assert WxaCodes().answer(token_ok, raw)["errcode"] == errcode


def test_queued_failures_and_counts() -> None:
    fake = WxaCodes()
    fake.fail_next(-1)
    raw = json.dumps({"scene": "WDJB-MJHT"}).encode()
    assert fake.answer(True, raw) == {"errcode": -1, "errmsg": "fake failure"}
    assert isinstance(fake.answer(True, raw), bytes)
    assert fake.calls["WDJB-MJHT"] == 2
    fake.reset()
    assert fake.calls == {}
