"""WeChat's message signature and encryption: the vectors of WeChat's sample code, and pushes
that must not open (chalicelib/wechat/msgcrypt.py)."""

from __future__ import annotations

import pytest

from chalicelib.errors import ConfigurationError, ForgedMessage
from chalicelib.wechat.msgcrypt import MessageCrypt

# WeChat's WXBizMsgCrypt sample (the download linked from 消息加解密说明): its decryption test
# (token "spamtest", appid "wx2c2769f8efd9abc2") and its encryption test (token "pamtest",
# appid "wxb11529c136998cb6", the random "aaaabbbbccccdddd"), one EncodingAESKey.
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SAMPLE_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PG"
    "HQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6"
    "tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp"
    "3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhv"
    "Ql+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
SAMPLE_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
SAMPLE_TIMESTAMP, SAMPLE_NONCE = "1409735669", "1320562132"


def sample() -> MessageCrypt:
    return MessageCrypt("spamtest", KEY, "wx2c2769f8efd9abc2")


def test_the_sample_push_opens_to_its_message():
    message = sample().open(SAMPLE_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT)

    assert message.startswith("<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>")
    assert "<Content><![CDATA[abcdteT]]></Content>" in message
    assert message.endswith("</xml>")


def test_the_sample_signature():
    assert sample().signature(SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT) == SAMPLE_SIGNATURE


def test_sealing_with_the_samples_random_gives_the_samples_encrypt():
    crypt = MessageCrypt("pamtest", KEY, "wxb11529c136998cb6")

    encrypted, signature = crypt.seal(
        "我是中文abcd123", "1409304348", "xxxxxx", random=b"aaaabbbbccccdddd"
    )

    assert encrypted == (
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    )
    assert crypt.open(signature, "1409304348", "xxxxxx", encrypted) == "我是中文abcd123"


@pytest.mark.parametrize(
    "change",
    [
        {"signature": "0" * 40},
        {"signature": SAMPLE_SIGNATURE[:-1] + "b"},
        {"timestamp": "1409735670"},
        {"nonce": "1320562133"},
        {"encrypt": "A" + SAMPLE_ENCRYPT[1:]},
        {"token": "spamtesT"},
    ],
)
def test_a_changed_signature_timestamp_nonce_body_or_token_is_forged(change):
    crypt = MessageCrypt(change.get("token", "spamtest"), KEY, "wx2c2769f8efd9abc2")
    with pytest.raises(ForgedMessage) as raised:
        crypt.open(
            change.get("signature", SAMPLE_SIGNATURE),
            change.get("timestamp", SAMPLE_TIMESTAMP),
            change.get("nonce", SAMPLE_NONCE),
            change.get("encrypt", SAMPLE_ENCRYPT),
        )
    assert SAMPLE_ENCRYPT[:20] not in str(raised.value)


def test_a_signed_push_for_another_platform_or_under_another_key_is_forged():
    other_platform = MessageCrypt("spamtest", KEY, "wx-another-platform")
    with pytest.raises(ForgedMessage):
        other_platform.open(SAMPLE_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT)
    other_key = MessageCrypt("spamtest", "B" * 43, "wx2c2769f8efd9abc2")
    with pytest.raises(ForgedMessage):
        other_key.open(SAMPLE_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT)


@pytest.mark.parametrize("encrypted", ["", "not base64!", "QUJD", "A" * 70000])
def test_a_correctly_signed_body_that_is_no_ciphertext_is_forged(encrypted):
    crypt = sample()
    signature = crypt.signature("1", "2", encrypted)
    with pytest.raises(ForgedMessage):
        crypt.open(signature, "1", "2", encrypted)


def test_a_key_that_is_not_43_base64_characters_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        MessageCrypt("t", "short", "wx")
    assert "spamtest" not in repr(sample())
