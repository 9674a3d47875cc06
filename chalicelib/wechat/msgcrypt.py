"""WeChat's message signature and encryption (the WXBizMsgCrypt scheme), as a third-party
platform's pushes use it (issue 24, item 4: chalicelib/wechat/push.py).

From WeChat's 消息加解密 technical plan (第三方平台 → 消息加解密):
- `msg_signature` = SHA-1, in hex, of the concatenation of the platform's message token, the
  URL's `timestamp` and `nonce`, and the push's `Encrypt` text, sorted as strings first;
- AESKey = Base64_Decode(EncodingAESKey + "="): 32 bytes; AES-256 in CBC mode, the IV the key's
  first 16 bytes;
- `Encrypt` = Base64(AES(random(16 bytes) + msg_len (4 bytes, network order) + msg + appid)),
  the plaintext padded with PKCS#7 to a multiple of 32 bytes (WeChat's block, not AES's 16).

The push is opened only once its signature matches (compared in constant time), and only if it
decrypts to well-formed plaintext naming this platform's appid: anything else is ForgedMessage,
whose message never quotes what was sent. The test vectors are those of WeChat's sample code
(tests/wechat/test_msgcrypt.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chalicelib.errors import ConfigurationError, ForgedMessage

BLOCK = 32  # WeChat pads to 32 bytes
RANDOM_BYTES = 16
MAX_ENCRYPTED = 64 * 1024  # characters of `Encrypt` opened at most (a ticket is ~300)


class MessageCrypt:
    """The platform's token, key and appid; signs, seals and opens pushes."""

    def __init__(self, token: str, encoding_aes_key: str, appid: str) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except (binascii.Error, ValueError) as e:
            raise ConfigurationError("the EncodingAESKey is not 43 base64 characters") from e
        if len(key) != 32:
            raise ConfigurationError("the EncodingAESKey is not 43 base64 characters")
        self._token = token
        self._key = key
        self._appid = appid.encode("utf-8")

    def __repr__(self) -> str:
        return "MessageCrypt(...)"

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        parts = sorted([self._token, timestamp, nonce, encrypted])
        return hashlib.sha1("".join(parts).encode("utf-8"), usedforsecurity=False).hexdigest()

    def open(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> str:
        """The push's plaintext (XML), if WeChat signed it for this platform; else
        ForgedMessage."""
        if len(encrypted) > MAX_ENCRYPTED:
            raise ForgedMessage("the push is too large to be WeChat's")
        expected = self.signature(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), msg_signature.lower().encode()):
            raise ForgedMessage("msg_signature does not match: the push is not WeChat's")
        try:
            sealed = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ForgedMessage("the push's Encrypt is not base64") from e
        if not sealed or len(sealed) % BLOCK:
            raise ForgedMessage("the push's Encrypt is not whole blocks")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(sealed) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise ForgedMessage("the push does not decrypt under this platform's key")
        plain = plain[RANDOM_BYTES:-pad]
        if len(plain) < 4:
            raise ForgedMessage("the push does not decrypt under this platform's key")
        (length,) = struct.unpack(">I", plain[:4])
        message, appid = plain[4 : 4 + length], plain[4 + length :]
        if len(message) != length or not hmac.compare_digest(appid, self._appid):
            raise ForgedMessage("the push is not for this platform")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ForgedMessage("the push is not UTF-8") from e

    def seal(
        self, message: str, timestamp: str, nonce: str, *, random: bytes | None = None
    ) -> tuple[str, str]:
        """(`Encrypt`, `msg_signature`) of `message`, as WeChat makes them (the fake WeChat's
        pushes, tests)."""
        random = os.urandom(RANDOM_BYTES) if random is None else random
        body = message.encode("utf-8")
        plain = random + struct.pack(">I", len(body)) + body + self._appid
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        encrypted = base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()
        return encrypted, self.signature(timestamp, nonce, encrypted)

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))
