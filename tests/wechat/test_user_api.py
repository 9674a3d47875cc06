"""WeChat's APIs about one user (chalicelib/wechat/user_api.py): msg_sec_check's verdicts and
checksession's signature, against WeChat's documented example."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from chalicelib.errors import RequestError, WeChatUnavailable
from chalicelib.wechat.user_api import _current, _verdict, session_key_signature

DOC_KEY = "o0q0otL8aEzpcZL/FT9WsQ=="  # WeChat's example session_key (用户登录态签名)


def test_the_signature_is_keyed_with_the_session_key_text_as_wechats_example():
    # WeChat's example: hmac_sha256('{"foo":"bar"}', session_key) = 654571f7...
    example = hmac.new(DOC_KEY.encode(), b'{"foo":"bar"}', hashlib.sha256).hexdigest()
    assert example == "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b"
    # checksession signs the empty string with the same key
    expected = hmac.new(DOC_KEY.encode(), b"", hashlib.sha256).hexdigest()
    assert session_key_signature(DOC_KEY) == expected


@pytest.mark.parametrize("suggest", ["pass", "review", "risky"])
def test_verdicts(suggest):
    body = {"errcode": 0, "result": {"suggest": suggest, "label": 20002}}
    verdict = _verdict(body)
    assert (verdict.suggest, verdict.label) == (suggest, 20002)


@pytest.mark.parametrize(
    "body",
    [
        {"errcode": 40003, "errmsg": "invalid openid"},
        {"errcode": 0},
        {"errcode": 0, "result": {"suggest": "maybe"}},
        {"errcode": 0, "result": "risky"},
    ],
)
def test_no_verdict_is_unavailable(body):
    with pytest.raises(WeChatUnavailable):
        _verdict(body)


def test_no_recent_visit_is_the_clients_to_fix_not_a_retry():
    """61010: WeChat checks only users who opened the mini-program recently."""
    with pytest.raises(RequestError, match="61010"):
        _verdict({"errcode": 61010, "errmsg": "user has not visited in two hours"})


def test_checksession_answers():
    assert _current({"errcode": 0, "errmsg": "ok"}) is True
    assert _current({"errcode": 87009, "errmsg": "invalid signature"}) is False
    with pytest.raises(WeChatUnavailable):
        _current({"errcode": 40003})
