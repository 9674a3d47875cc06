"""Refresh tokens: their format, their hash, and sealing one secret under another."""

from __future__ import annotations

import hashlib
import re

import pytest

from chalicelib import refresh_tokens
from chalicelib.errors import GrantError

USER_ID = "A" * 21 + "w"  # 22 base64url characters
SESSION_ID = "b-_" + "c" * 19
SECRET_PART = "Z" * 42 + "g"  # 43 base64url characters
WELL_FORMED = f"{USER_ID}.{SESSION_ID}.{SECRET_PART}"
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")


def counting_bytes():
    """A deterministic random source: 0x00.., then 0x01.., ..."""
    state = {"n": 0}

    def rand(size: int) -> bytes:
        value = bytes([state["n"] % 256]) * size
        state["n"] += 1
        return value

    return rand


# --- format ---------------------------------------------------------------------------------


def test_new_id_is_22_base64url_characters_of_16_random_bytes() -> None:
    assert refresh_tokens.new_id(lambda n: b"\xff" * n) == "_" * 21 + "w"
    ids = {refresh_tokens.new_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)


def test_mint_then_parse_returns_the_ids() -> None:
    user_id, session_id = refresh_tokens.new_id(), refresh_tokens.new_id()

    token = refresh_tokens.mint(user_id, session_id)

    assert TOKEN_RE.fullmatch(token)
    assert refresh_tokens.parse(token) == (user_id, session_id)


def test_mint_uses_32_random_bytes_for_the_secret() -> None:
    sizes: list[int] = []

    def rand(size: int) -> bytes:
        sizes.append(size)
        return b"\x00" * size

    token = refresh_tokens.mint(USER_ID, SESSION_ID, rand)

    assert sizes == [32]
    assert token == f"{USER_ID}.{SESSION_ID}.{'A' * 43}"


def test_two_minted_tokens_for_one_session_differ() -> None:
    first = refresh_tokens.mint(USER_ID, SESSION_ID)
    second = refresh_tokens.mint(USER_ID, SESSION_ID)

    assert first != second
    assert refresh_tokens.parse(first) == refresh_tokens.parse(second) == (USER_ID, SESSION_ID)


def test_parse_accepts_a_well_formed_token() -> None:
    assert refresh_tokens.parse(WELL_FORMED) == (USER_ID, SESSION_ID)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param(f"{USER_ID[:-1]}.{SESSION_ID}.{SECRET_PART}", id="user-id-21"),
        pytest.param(f"{USER_ID}A.{SESSION_ID}.{SECRET_PART}", id="user-id-23"),
        pytest.param(f"{USER_ID}.{SESSION_ID[:-1]}.{SECRET_PART}", id="session-id-21"),
        pytest.param(f"{USER_ID}.{SESSION_ID}A.{SECRET_PART}", id="session-id-23"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.{SECRET_PART[:-1]}", id="secret-42"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.{SECRET_PART}A", id="secret-44"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.{SECRET_PART}=", id="padding"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.{SECRET_PART[:-1]}+", id="plus"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.{SECRET_PART[:-1]}/", id="slash"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.{SECRET_PART[:-1]} ", id="space"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.{SECRET_PART[:-1]}é", id="non-ascii-letter"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.{SECRET_PART[:-1]}٣", id="non-ascii-digit"),
        pytest.param(f"{WELL_FORMED}\n", id="trailing-newline"),
        pytest.param(f" {WELL_FORMED}", id="leading-space"),
        pytest.param(f"{WELL_FORMED}.", id="trailing-dot"),
        pytest.param(f".{WELL_FORMED}", id="leading-dot"),
        pytest.param(f"{USER_ID}..{SESSION_ID}.{SECRET_PART}", id="double-dot"),
        pytest.param(f"{WELL_FORMED}.{SECRET_PART}", id="four-parts"),
        pytest.param(f"{USER_ID}.{SESSION_ID}", id="two-parts"),
        pytest.param(f"{USER_ID}{SESSION_ID}{SECRET_PART}", id="no-dots"),
        pytest.param(f"{USER_ID}:{SESSION_ID}:{SECRET_PART}", id="wrong-separator"),
        pytest.param("A" * 600, id="too-long"),
        pytest.param(WELL_FORMED + "." + "A" * 600, id="too-long-with-dots"),
    ],
)
def test_parse_rejects_malformed_strings(token: str) -> None:
    with pytest.raises(GrantError):
        refresh_tokens.parse(token)


@pytest.mark.parametrize(
    "token",
    [None, 42, 4.2, True, WELL_FORMED.encode("ascii"), [WELL_FORMED], {"token": WELL_FORMED}],
    ids=["none", "int", "float", "bool", "bytes", "list", "dict"],
)
def test_parse_rejects_non_strings(token: object) -> None:
    with pytest.raises(GrantError):
        refresh_tokens.parse(token)


def test_parse_error_does_not_echo_the_token() -> None:
    with pytest.raises(GrantError) as info:
        refresh_tokens.parse(WELL_FORMED + "!")

    assert SECRET_PART not in str(info.value)
    assert USER_ID not in str(info.value)


# --- hash -----------------------------------------------------------------------------------


def test_token_hash_is_sha256_of_the_token() -> None:
    token = refresh_tokens.mint(USER_ID, SESSION_ID)

    digest = refresh_tokens.token_hash(token)

    assert digest == hashlib.sha256(token.encode("ascii")).digest()
    assert len(digest) == 32


def test_token_hash_differs_for_tokens_of_the_same_session() -> None:
    first = refresh_tokens.mint(USER_ID, SESSION_ID)
    second = refresh_tokens.mint(USER_ID, SESSION_ID)

    assert refresh_tokens.token_hash(first) != refresh_tokens.token_hash(second)


# --- seal / unseal --------------------------------------------------------------------------

SEAL_SECRET = refresh_tokens.mint(USER_ID, SESSION_ID, lambda n: b"\x01" * n)
CONTEXT = b"session-context"
PLAINTEXT = b"the current refresh token"


def test_seal_then_unseal_returns_the_plaintext() -> None:
    sealed = refresh_tokens.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    assert refresh_tokens.unseal(SEAL_SECRET, sealed, context=CONTEXT) == PLAINTEXT


def test_seal_round_trips_an_empty_plaintext() -> None:
    sealed = refresh_tokens.seal(SEAL_SECRET, b"", context=CONTEXT)

    assert refresh_tokens.unseal(SEAL_SECRET, sealed, context=CONTEXT) == b""


def test_sealed_bytes_do_not_contain_the_plaintext_or_the_secret() -> None:
    sealed = refresh_tokens.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    assert PLAINTEXT not in sealed
    assert SEAL_SECRET.encode("ascii") not in sealed
    assert len(sealed) == 12 + len(PLAINTEXT) + 16  # nonce + ciphertext + GCM tag


def test_sealing_is_randomized() -> None:
    first = refresh_tokens.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)
    second = refresh_tokens.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    assert first != second
    assert first[:12] != second[:12]
    assert refresh_tokens.unseal(SEAL_SECRET, first, context=CONTEXT) == PLAINTEXT
    assert refresh_tokens.unseal(SEAL_SECRET, second, context=CONTEXT) == PLAINTEXT


def test_seal_takes_its_nonce_from_the_injected_random_source() -> None:
    rand = counting_bytes()

    sealed = refresh_tokens.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT, rand=rand)

    assert sealed[:12] == b"\x00" * 12
    assert refresh_tokens.unseal(SEAL_SECRET, sealed, context=CONTEXT) == PLAINTEXT


def test_unseal_with_a_wrong_secret_raises_grant_error() -> None:
    sealed = refresh_tokens.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)
    other = refresh_tokens.mint(USER_ID, SESSION_ID, lambda n: b"\x02" * n)

    with pytest.raises(GrantError):
        refresh_tokens.unseal(other, sealed, context=CONTEXT)


def test_unseal_with_a_wrong_context_raises_grant_error() -> None:
    sealed = refresh_tokens.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    with pytest.raises(GrantError):
        refresh_tokens.unseal(SEAL_SECRET, sealed, context=b"another-context")


@pytest.mark.parametrize("position", [0, 11, 12, 20, -1], ids=lambda p: f"byte{p}")
def test_unseal_of_a_tampered_byte_raises_grant_error(position: int) -> None:
    sealed = bytearray(refresh_tokens.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT))
    sealed[position] ^= 0x01

    with pytest.raises(GrantError):
        refresh_tokens.unseal(SEAL_SECRET, bytes(sealed), context=CONTEXT)


@pytest.mark.parametrize("length", [0, 5, 11, 12, 27, 40])
def test_unseal_of_a_truncated_blob_raises_grant_error(length: int) -> None:
    sealed = refresh_tokens.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    with pytest.raises(GrantError):
        refresh_tokens.unseal(SEAL_SECRET, sealed[:length], context=CONTEXT)


def test_unseal_error_does_not_echo_the_secret() -> None:
    sealed = refresh_tokens.seal(SEAL_SECRET, PLAINTEXT, context=CONTEXT)

    with pytest.raises(GrantError) as info:
        refresh_tokens.unseal(SEAL_SECRET + "x", sealed, context=CONTEXT)

    assert SEAL_SECRET not in str(info.value)
