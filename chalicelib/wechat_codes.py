"""What a WeChat one-time code (a `wx.login` code, a phone-number button's code, an OAuth
code) may look like before it is sent anywhere: printable ASCII, at most MAX_CODE_LENGTH
characters. A leaf: the login, the phone binding, deletion and the web sign-in check codes
with it."""

from __future__ import annotations

import re

from chalicelib.errors import RequestError

MAX_CODE_LENGTH = 128
_CODE_RE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces


def validate_code(code: str, *, name: str = "code") -> str:
    if len(code) > MAX_CODE_LENGTH or not _CODE_RE.fullmatch(code):
        raise RequestError(f"{name} must be 1 to {MAX_CODE_LENGTH} printable ASCII characters")
    return code
