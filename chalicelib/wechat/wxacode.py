"""WeChat's `wxa/getwxacodeunlimit` (获取不限制的小程序码, getUnlimitedQRCode): a mini-program code
that opens a page of the mini-program with a `scene` of at most 32 characters. The device login
(chalicelib/device/) asks it for the code of a user code (issue 24, item 3).

From WeChat's documentation: `POST wxa/getwxacodeunlimit?access_token=...` with a JSON body
(`scene`; `page` without a leading `/` nor a query, the home page if absent; `check_path`, true
by default: the page must exist in the *published* mini-program, so false for a trial or
develop version; `env_version`: `release`, `trial` or `develop`); the answer is the image's
bytes, or on failure a JSON `{"errcode", "errmsg"}` (HTTP 200 either way). Codes made by this
call never expire and are unlimited in number; WeChat allows 5,000 calls a minute per app.

The image is told from an error by its bytes (PNG or JPEG signature), not the Content-Type.
A refused access token (40001, 42001, 40014) raises WeChatTokenInvalid for the broker's one
refresh-and-retry (`AccessTokenBroker.call`); -1 and transport failures are retried once here
(a code costs nothing and making it twice changes nothing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chalicelib.errors import (
    WeChatAttemptFailed,
    WeChatConfigError,
    WeChatRateLimited,
    WeChatUnavailable,
)
from chalicelib.wechat.client import SYSTEM_BUSY, check_token_errcode

if TYPE_CHECKING:
    import requests

PATH = "/wxa/getwxacodeunlimit"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
MAX_IMAGE_BYTES = 1_000_000  # a 1280 px code is a few hundred KB
QUOTA = frozenset({45009, 45011})  # 5,000 calls a minute per app
# WeChat's documented errors: 45009 (the minute's quota), 41030 (the page does not exist in the
# published mini-program: AUTH_DEVICE_PAGE, or AUTH_DEVICE_ENV_VERSION for an unpublished one);
# and as developers report them, 40097 (an argument refused) and 40169 (the scene refused:
# ours, user codes, are always valid).
CONFIG_ERRORS = frozenset({41030, 40097, 40169})


@dataclass(frozen=True)
class WxaCode:
    """A mini-program code image and its media type (`image/png` or `image/jpeg`)."""

    image: bytes = field(repr=False)
    content_type: str


def image_type(data: bytes) -> str | None:
    """`image/png` or `image/jpeg` from the bytes' signature; None for anything else."""
    if data.startswith(PNG_SIGNATURE):
        return "image/png"
    if data.startswith(JPEG_SIGNATURE):
        return "image/jpeg"
    return None


class WxaCodes:
    """The `getwxacodeunlimit` client: explicit timeouts, one retry, errors as WeChatErrors."""

    def __init__(
        self,
        *,
        base_url: str,
        http: requests.Session | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 4.0,
        retry_delay: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = base_url.rstrip("/") + PATH
        self._http = http
        self._timeout = (connect_timeout, read_timeout)
        self._retry_delay = retry_delay
        self._sleep = sleep

    def unlimited(
        self, access_token: str, *, scene: str, page: str | None, env_version: str
    ) -> WxaCode:
        """The code of `scene` opening `page` (None: the home page) of the `env_version`
        mini-program; `check_path` only for the released one."""
        body: dict[str, object] = {
            "scene": scene,
            "check_path": env_version == "release",
            "env_version": env_version,
        }
        if page is not None:
            body["page"] = page
        try:
            return self._attempt(access_token, body)
        except WeChatAttemptFailed:
            self._sleep(self._retry_delay)
        try:
            return self._attempt(access_token, body)
        except WeChatAttemptFailed as e:
            raise WeChatUnavailable(f"WeChat getwxacodeunlimit failed after one retry: {e}") from e

    def _attempt(self, access_token: str, body: dict[str, object]) -> WxaCode:
        import requests  # not imported before the first device login's image

        if self._http is None:
            self._http = requests.Session()
        response, failure = None, ""
        try:  # requests' messages carry the URL and its access_token: raise outside the handler
            response = self._http.post(
                self._url, params={"access_token": access_token}, json=body, timeout=self._timeout
            )
        except requests.RequestException as e:
            failure = type(e).__name__
        if response is None:
            raise WeChatAttemptFailed(f"transport failure ({failure})")
        if response.status_code >= 500:
            raise WeChatAttemptFailed(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise WeChatUnavailable(f"WeChat answered HTTP {response.status_code}")
        return _interpret(response.content)


def _interpret(content: bytes) -> WxaCode:
    kind = image_type(content)
    if kind is not None:
        if len(content) > MAX_IMAGE_BYTES:
            raise WeChatUnavailable("WeChat answered an image larger than expected")
        return WxaCode(content, kind)
    try:
        answer = json.loads(content)
    except (ValueError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        raise WeChatAttemptFailed("neither an image nor a JSON object")
    check_token_errcode(answer)  # 40001, 42001, 40014: the broker refreshes and retries once
    errcode = answer.get("errcode")
    if errcode == SYSTEM_BUSY:
        raise WeChatAttemptFailed("WeChat system busy (-1)", busy=True)
    if errcode in QUOTA:
        raise WeChatRateLimited(f"WeChat getwxacodeunlimit quota exceeded (errcode {errcode})")
    if errcode in CONFIG_ERRORS:
        raise WeChatConfigError(
            f"WeChat refused the mini-program code's arguments (errcode {errcode}): check"
            " AUTH_DEVICE_PAGE and AUTH_DEVICE_ENV_VERSION (docs/operators.md)"
        )
    raise WeChatUnavailable(f"WeChat getwxacodeunlimit answered errcode {errcode}")
