"""User codes and device codes (chalicelib/device/codes.py; RFC 8628 §6.1)."""

from __future__ import annotations

import itertools

import pytest

from chalicelib.device import codes
from chalicelib.errors import GrantError, RequestError


def test_user_codes_are_8_characters_of_the_base_20_alphabet_shown_with_a_dash() -> None:
    assert set(codes.ALPHABET).isdisjoint("AEIOUY01")  # no vowels (no words), no 0/O 1/I
    assert len(codes.ALPHABET) == 20
    drawn = itertools.count()
    user_code = codes.new_user_code(lambda n: next(drawn) % n)
    assert user_code == "BCDFGHJK"
    assert codes.display(user_code) == "BCDF-GHJK"


@pytest.mark.parametrize("typed", ["BCDF-GHJK", "bcdfghjk", " bcdf ghjk ", "B-C-D-F-G-H-J-K"])
def test_a_user_code_is_read_as_a_person_types_it(typed: str) -> None:
    assert codes.normalize_user_code(typed) == "BCDFGHJK"


@pytest.mark.parametrize("bad", ["", "BCDFGHJ", "BCDFGHJKL", "AEIOUBCD", "BCDF_GHJK", "x" * 33, 7])
def test_anything_else_is_invalid_request(bad: object) -> None:
    with pytest.raises(RequestError):
        codes.normalize_user_code(bad)


def test_a_device_code_carries_its_user_code_and_256_random_bits_only_hashed() -> None:
    device_code = codes.new_device_code("BCDFGHJK", lambda n: b"\xff" * n)
    user_code, code_hash = codes.parse_device_code(device_code)
    assert user_code == "BCDFGHJK"
    assert code_hash == codes.device_code_hash(device_code) and len(code_hash) == 32
    assert device_code.encode() not in code_hash
    assert len(device_code.split(".")[1]) == 43  # 32 bytes, base64url


@pytest.mark.parametrize(
    "bad", ["", "BCDFGHJK", "BCDFGHJK." + "A" * 42, "bcdfghjk." + "A" * 43, "AEIOUBCD." + "A" * 43]
)
def test_anything_that_is_no_device_code_of_ours_is_invalid_grant(bad: str) -> None:
    with pytest.raises(GrantError):
        codes.parse_device_code(bad)
