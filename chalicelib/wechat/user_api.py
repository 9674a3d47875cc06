"""WeChat's server APIs about one user, called with the app's server access_token through its
broker (chalicelib/wechat/broker.py: a refused token is replaced once, then the call retried):

- `wxa/msg_sec_check`, content security 2.0 (`version` 2, issue 25 item 4): is a user's text
  fit to publish? `result.suggest` is `pass`, `review` or `risky`, `result.label` its category
  (100 normal, 10001 ads, 20001 politics, 20002 porn, 20003 abuse, 20006 crime, 20008 fraud,
  20012 vulgar, 20013 copyright, 21000 other). `openid` is the user's in the app, who must have
  opened the mini-program in the last two hours (WeChat's rule); scene 1 is a profile (资料).
- `wxa/checksession` (checkSessionKey, issue 25 item 5): is a stored session_key still the
  user's? The key is never sent: `signature` is HMAC-SHA256 keyed with the session_key (its
  base64 text, as WeChat's example computes it) over the empty string; errcode 87009 means it
  is no longer valid (a later `wx.login` replaced it, or it expired).

Both are checks without an effect, so a timeout is retried once as -1 is
(WeChatClient.call_with_token); any other errcode is a WeChatUnavailable (503): a check that
did not answer never lets unchecked text through.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.errors import RequestError, WeChatUnavailable

if TYPE_CHECKING:
    from chalicelib.wechat.client import WeChatClient

MSG_SEC_CHECK_PATH = "/wxa/msg_sec_check"
CHECK_SESSION_PATH = "/wxa/checksession"
SCENE_PROFILE = 1
MAX_CONTENT_CHARACTERS = 2500  # msg_sec_check's limit
VERDICTS = ("pass", "review", "risky")
INVALID_SIGNATURE = 87009  # checksession: not the user's current session_key


@dataclass(frozen=True)
class TextVerdict:
    """msg_sec_check's overall result: `suggest` (pass, review, risky) and `label`."""

    suggest: str
    label: int | None = None


# msg_sec_check: the openid has no recent visit of the mini-program (WeChat: "用户访问记录超时";
# its community answers: the user must have opened it in the last 30 minutes to 2 hours).
NO_RECENT_VISIT = 61010


def msg_sec_check(
    wechat: WeChatClient,
    access_token: str,
    *,
    openid: str,
    content: str,
    scene: int = SCENE_PROFILE,
    nickname: str | None = None,
) -> TextVerdict:
    """`POST wxa/msg_sec_check` (version 2) of `content`; WeChatUnavailable unless WeChat
    answered one of VERDICTS (the errcode is in the message: never the text)."""
    body: dict[str, object] = {"version": 2, "openid": openid, "scene": scene, "content": content}
    if nickname is not None:
        body["nickname"] = nickname
    return wechat.call_with_token(MSG_SEC_CHECK_PATH, access_token, _verdict, json=body)


def _verdict(body: dict[str, object]) -> TextVerdict:
    errcode = body.get("errcode", 0)
    if errcode == NO_RECENT_VISIT:  # retrying cannot help: the user must open the mini-program
        raise RequestError(
            "WeChat's content check needs the user to have opened the mini-program recently"
            " (errcode 61010): open it, then send the nickname again"
        )
    if errcode != 0:
        raise WeChatUnavailable(f"WeChat msg_sec_check answered errcode {errcode}")
    result = body.get("result")
    suggest = result.get("suggest") if isinstance(result, dict) else None
    if suggest not in VERDICTS:
        raise WeChatUnavailable("WeChat msg_sec_check answered without a verdict")
    assert isinstance(result, dict) and isinstance(suggest, str)
    label = result.get("label")
    return TextVerdict(suggest, label if type(label) is int else None)


def session_key_signature(session_key: str) -> str:
    """checksession's `signature` of a session_key: HMAC-SHA256 over "" keyed with its text."""
    return hmac.new(session_key.encode("utf-8"), b"", hashlib.sha256).hexdigest()


def session_key_current(
    wechat: WeChatClient, access_token: str, *, openid: str, session_key: str
) -> bool:
    """`GET wxa/checksession`: True if `session_key` is the user's current one, False for
    87009; WeChatUnavailable for anything else."""
    query = {
        "openid": openid,
        "signature": session_key_signature(session_key),
        "sig_method": "hmac_sha256",
    }
    return wechat.call_with_token(CHECK_SESSION_PATH, access_token, _current, query=query)


def _current(body: dict[str, object]) -> bool:
    errcode = body.get("errcode", 0)
    if errcode == 0:
        return True
    if errcode == INVALID_SIGNATURE:
        return False
    raise WeChatUnavailable(f"WeChat checksession answered errcode {errcode}")
