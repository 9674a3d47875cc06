"""The fake WeChat's `wxa/getwxacodeunlimit` (issue 24, item 5): a real, small PNG per scene.

`POST /wxa/getwxacodeunlimit?access_token=...` with a JSON body `{"scene", "page"?,
"check_path"?, "env_version"?}` answers, as WeChat does, the image's bytes (here always a PNG,
`Content-Type: image/png`), or on failure HTTP 200 with a JSON `{"errcode", "errmsg"}`. Checked
in this order:

| condition                                                        | errcode |
|------------------------------------------------------------------|---------|
| no access_token                                                  | 41001   |
| an access_token `stable_token` did not issue, expired or refused | 40001   |
| the body is not a JSON object                                    | 47001   |
| `scene` missing, empty, over 32 characters or outside WeChat's   | 40169   |
| set (digits, letters and ``!#$&'()*+,/:;=?@-._~``)               |         |
| `env_version` not `release`, `trial` or `develop`                | 40097   |
| `page` with a leading `/` or a query                             | 41030   |
| queued by `fail_next(errcode)` (tests: -1, 45009, 41030, ...)    | that    |

The PNG is 1 bit per pixel: a 21 x 21 grid of modules drawn from the SHA-256 of the scene
(three corner squares like a QR code's, so it looks like a code), 8 pixels a module, with a
quiet zone; its `tEXt` chunks carry `scene`, `page` and `env_version`, so a test reads what the
code would open (`png_text`). Nothing here can be scanned by WeChat: scanning is what the test
plays by posting the user code to `/auth/device/confirm`.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
import zlib
from collections import Counter
from typing import Any

PATH = "/wxa/getwxacodeunlimit"
MODULES = 21
SCALE = 8
QUIET = 4
_SCENE_RE = re.compile(r"[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}")
ENV_VERSIONS = ("release", "trial", "develop")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _modules(scene: str) -> list[list[bool]]:
    """A QR-looking grid: finder squares in three corners, the rest the scene's hash bits."""
    bits = "".join(f"{byte:08b}" for byte in hashlib.sha512(scene.encode()).digest())
    grid = [
        [bits[(r * MODULES + c) % len(bits)] == "1" for c in range(MODULES)] for r in range(MODULES)
    ]
    for top, left in ((0, 0), (0, MODULES - 7), (MODULES - 7, 0)):
        for r in range(7):
            for c in range(7):
                ring = max(abs(r - 3), abs(c - 3))
                grid[top + r][left + c] = ring != 2  # dark, light ring, dark centre
    return grid


def _columns(side: int) -> list[int]:
    return [x // SCALE - QUIET for x in range(side)]


def png(scene: str, *, page: str | None = None, env_version: str = "release") -> bytes:
    """A 1-bit grayscale PNG of the scene's grid, the arguments in tEXt chunks."""
    grid = _modules(scene)
    side = (MODULES + 2 * QUIET) * SCALE
    rows = []
    for y in range(side):
        r = y // SCALE - QUIET
        dark = [0 <= r < MODULES and 0 <= c < MODULES and grid[r][c] for c in _columns(side)]
        bits = "".join("0" if d else "1" for d in dark)  # 1-bit grayscale: 0 black, 1 white
        bits += "1" * (-len(bits) % 8)
        rows.append(b"\x00" + int(bits, 2).to_bytes(len(bits) // 8, "big"))  # filter: none
    text = [("scene", scene), ("page", page or ""), ("env_version", env_version)]
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + b"".join(_chunk(b"tEXt", f"{k}\x00{v}".encode("latin-1")) for k, v in text)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _chunk(b"IEND", b"")
    )


def png_text(data: bytes) -> dict[str, str]:
    """The tEXt chunks of a PNG (tests: what the fake's code would open)."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    found, at = {}, 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"tEXt":
            name, _, value = body.partition(b"\x00")
            found[name.decode("latin-1")] = value.decode("latin-1")
        at += 12 + length
    return found


class WxaCodes:
    """The fake's getwxacodeunlimit: its checks, its failures to come, its counts per scene."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self.calls: Counter[str] = Counter()  # requests per scene, whatever their answer

    def fail_next(self, errcode: int, count: int = 1) -> None:
        with self._lock:
            self._failures.extend([errcode] * count)

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self.calls.clear()

    def answer(self, token_ok: bool | None, raw: bytes) -> bytes | dict[str, Any]:
        """PNG bytes, or WeChat's error body. `token_ok`: None when no access_token was sent."""
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            body = None
        scene = body.get("scene") if isinstance(body, dict) else None
        with self._lock:
            self.calls[scene if isinstance(scene, str) else ""] += 1
        if token_ok is None:
            return {"errcode": 41001, "errmsg": "access_token missing"}
        if not token_ok:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}
        if not isinstance(body, dict):
            return {"errcode": 47001, "errmsg": "data format error"}
        if not isinstance(scene, str) or not _SCENE_RE.fullmatch(scene):
            return {"errcode": 40169, "errmsg": "invalid length for scene"}
        env_version = body.get("env_version", "release")
        if env_version not in ENV_VERSIONS:
            return {"errcode": 40097, "errmsg": "invalid args"}
        page = body.get("page")
        if page is not None and (not isinstance(page, str) or page.startswith("/") or "?" in page):
            return {"errcode": 41030, "errmsg": "invalid page"}
        with self._lock:
            if self._failures:
                errcode = self._failures.pop(0)
                return {"errcode": errcode, "errmsg": "fake failure"}
        return png(scene, page=page, env_version=env_version)
