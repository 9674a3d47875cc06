"""Sealing one secret under another (chalicelib/crypto.py): AES-GCM under an HKDF key."""

from __future__ import annotations

import pytest

from chalicelib import crypto
from chalicelib.errors import GrantError

SEAL_SECRET = "A" * 22 + "." + "B" * 22 + ".0." + "C" * 43  # a refresh token body, say
CONTEXT = b"session-context"
PLAINTEXT = b"the current refresh token"


def test_b64url_has_no_padding() -> None:
    assert crypto.b64url(b"\xfb\xff") == "-_8"
    assert crypto.b64url(bytes(16)) == "A" * 22


def test_seal_then_unseal_returns_the_plaintext() -> None:
    sealed = crypto.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    assert crypto.unseal(SEAL_SECRET, sealed, context=CONTEXT) == PLAINTEXT


def test_seal_round_trips_an_empty_plaintext() -> None:
    sealed = crypto.seal(SEAL_SECRET, b"", context=CONTEXT)

    assert crypto.unseal(SEAL_SECRET, sealed, context=CONTEXT) == b""


def test_sealed_bytes_do_not_contain_the_plaintext_or_the_secret() -> None:
    sealed = crypto.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    assert PLAINTEXT not in sealed
    assert SEAL_SECRET.encode("ascii") not in sealed
    assert len(sealed) == 12 + len(PLAINTEXT) + 16  # nonce + ciphertext + GCM tag


def test_sealing_is_randomized() -> None:
    first = crypto.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)
    second = crypto.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    assert first != second
    assert first[:12] != second[:12]
    assert crypto.unseal(SEAL_SECRET, first, context=CONTEXT) == PLAINTEXT
    assert crypto.unseal(SEAL_SECRET, second, context=CONTEXT) == PLAINTEXT


def test_seal_takes_its_nonce_from_the_injected_random_source() -> None:
    sealed = crypto.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT, rand=lambda n: b"\x00" * n)

    assert sealed[:12] == b"\x00" * 12
    assert crypto.unseal(SEAL_SECRET, sealed, context=CONTEXT) == PLAINTEXT


def test_unseal_with_a_wrong_secret_raises_grant_error() -> None:
    sealed = crypto.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)
    other = SEAL_SECRET[:-1] + "D"

    with pytest.raises(GrantError):
        crypto.unseal(other, sealed, context=CONTEXT)


def test_unseal_with_a_wrong_context_raises_grant_error() -> None:
    sealed = crypto.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    with pytest.raises(GrantError):
        crypto.unseal(SEAL_SECRET, sealed, context=b"another-context")


@pytest.mark.parametrize("position", [0, 11, 12, 20, -1], ids=lambda p: f"byte{p}")
def test_unseal_of_a_tampered_byte_raises_grant_error(position: int) -> None:
    sealed = bytearray(crypto.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT))
    sealed[position] ^= 0x01

    with pytest.raises(GrantError):
        crypto.unseal(SEAL_SECRET, bytes(sealed), context=CONTEXT)


@pytest.mark.parametrize("length", [0, 5, 11, 12, 27, 40])
def test_unseal_of_a_truncated_blob_raises_grant_error(length: int) -> None:
    sealed = crypto.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    with pytest.raises(GrantError):
        crypto.unseal(SEAL_SECRET, sealed[:length], context=CONTEXT)


def test_unseal_error_does_not_echo_the_secret() -> None:
    sealed = crypto.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    with pytest.raises(GrantError) as info:
        crypto.unseal(SEAL_SECRET + "x", sealed, context=CONTEXT)

    assert SEAL_SECRET not in str(info.value)
