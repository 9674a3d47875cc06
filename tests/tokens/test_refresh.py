"""Refresh tokens: their format (v3, and v2 and v1 as earlier releases issued them), their
hash, their key and MAC, and AUTH_LIMIT_REFRESH_PER_SESSION's key."""

from __future__ import annotations

import hashlib
import re

import pytest

from chalicelib.errors import GrantError
from chalicelib.tokens import refresh as refresh_tokens

USER_ID = "A" * 21 + "w"  # 22 base64url characters
SESSION_ID = "b-_" + "c" * 19
SECRET_PART = "Z" * 42 + "g"  # 43 base64url characters
MAC_PART = "M" * 21 + "w"  # 22 base64url characters
KEY_PART = "K" * 42 + "A"  # 43 base64url characters: a v3 token's session key
BODY = f"{USER_ID}.{SESSION_ID}.7.{SECRET_PART}"
WELL_FORMED = f"{BODY}.{MAC_PART}"  # v2
V3_TOKEN = f"{BODY}.{KEY_PART}"
V1_TOKEN = f"{USER_ID}.{SESSION_ID}.{SECRET_PART}"  # issued before generations
KEY = b"\x05" * 32
BODY_RE = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}\.(0|[1-9][0-9]*)\.[A-Za-z0-9_-]{43}")
TOKEN_RE = re.compile(BODY_RE.pattern + r"\.[A-Za-z0-9_-]{22}")  # v2
V3_TOKEN_RE = re.compile(BODY_RE.pattern + r"\.[A-Za-z0-9_-]{43}")


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


def test_new_mac_key_is_32_random_bytes() -> None:
    assert refresh_tokens.new_mac_key(lambda n: b"\x01" * n) == b"\x01" * 32
    assert len({refresh_tokens.new_mac_key() for _ in range(20)}) == 20


def test_new_key_is_43_characters_of_32_random_bytes() -> None:
    assert refresh_tokens.new_key(lambda n: b"\x00" * n) == "A" * 43
    keys = {refresh_tokens.new_key() for _ in range(20)}
    assert len(keys) == 20 and all(re.fullmatch(r"[A-Za-z0-9_-]{43}", k) for k in keys)


def test_mint_issue_then_parse_returns_the_parts_of_a_v3_token() -> None:
    user_id, session_id = refresh_tokens.new_id(), refresh_tokens.new_id()
    key = refresh_tokens.new_key()

    token = refresh_tokens.issue(refresh_tokens.mint(user_id, session_id, 41), key)
    parsed = refresh_tokens.parse(token)

    assert V3_TOKEN_RE.fullmatch(token)
    assert (parsed.user_id, parsed.session_id, parsed.generation) == (user_id, session_id, 41)
    assert (parsed.version, parsed.key, parsed.mac, parsed.token) == (3, key, None, token)
    assert token == f"{parsed.body}.{key}"


def test_a_v3_token_is_hashed_whole_every_character_counts() -> None:
    """Issue 22, item 7: the store keeps the hash of all of a v3 token, key included, so a
    token with any one character changed matches no stored hash."""
    parsed = refresh_tokens.parse(V3_TOKEN)
    assert parsed.hash == hashlib.sha256(V3_TOKEN.encode("ascii")).digest()
    changed = set()
    for i, char in enumerate(V3_TOKEN):
        if char in ".7":  # the separators, the generation: no longer a token if changed
            continue
        token = V3_TOKEN[:i] + ("B" if char != "B" else "C") + V3_TOKEN[i + 1 :]
        changed.add(refresh_tokens.parse(token).hash)
    assert parsed.hash not in changed
    assert len(changed) == len(V3_TOKEN) - 5  # each changed token hashes apart


def test_the_key_hash_is_a_hash_of_the_key_alone() -> None:
    parsed = refresh_tokens.parse(V3_TOKEN)
    again = refresh_tokens.parse(f"{USER_ID}.{SESSION_ID}.8.{'Y' * 42}g.{KEY_PART}")

    assert parsed.key_hash == again.key_hash == refresh_tokens.key_hash(KEY_PART)
    assert parsed.key_hash != hashlib.sha256(KEY_PART.encode()).digest()  # domain-separated
    assert refresh_tokens.parse(WELL_FORMED).key_hash is None
    assert refresh_tokens.parse(V1_TOKEN).key_hash is None


def test_holds_key_compares_the_key_hash() -> None:
    parsed = refresh_tokens.parse(V3_TOKEN)

    assert refresh_tokens.holds_key(parsed, refresh_tokens.key_hash(KEY_PART))
    assert not refresh_tokens.holds_key(parsed, refresh_tokens.key_hash("L" * 42 + "A"))
    assert not refresh_tokens.holds_key(parsed, None)
    assert not refresh_tokens.holds_key(refresh_tokens.parse(WELL_FORMED), parsed.key_hash)


@pytest.mark.parametrize(
    ("token", "stored", "mac_key", "older"),
    [
        pytest.param(V3_TOKEN, "key", None, True, id="v3-older"),
        pytest.param(V3_TOKEN, "other-key", None, False, id="v3-another-key"),
        pytest.param(V3_TOKEN, None, KEY, False, id="v3-no-key-stored"),
        pytest.param("v2-signed", None, KEY, True, id="v2-older"),
        pytest.param(WELL_FORMED, None, KEY, False, id="v2-made-up-mac"),
        pytest.param(V1_TOKEN, "key", KEY, False, id="v1-never"),
    ],
)
def test_older_needs_a_lower_generation_and_the_sessions_key(token, stored, mac_key, older):
    if token == "v2-signed":
        token = refresh_tokens.sign(BODY, KEY)
    stored_hash = {
        "key": refresh_tokens.key_hash(KEY_PART),
        "other-key": refresh_tokens.key_hash("x" * 43),
        None: None,
    }[stored]
    parsed = refresh_tokens.parse(token)

    assert refresh_tokens.older(parsed, 8, stored_hash, mac_key) is older
    assert not refresh_tokens.older(parsed, 7, stored_hash, mac_key)  # not below: never older


def test_the_limit_key_is_what_only_a_token_holder_can_present() -> None:
    """Issue 22, item 8: every access token shows the user and session ids; the limit's key
    adds what a made-up token cannot have (the session's key), so it spends its own counter."""
    real = refresh_tokens.parse(V3_TOKEN)
    later = refresh_tokens.parse(f"{USER_ID}.{SESSION_ID}.9.{'Y' * 42}g.{KEY_PART}")
    forged = refresh_tokens.parse(f"{BODY}.{'F' * 42}A")

    assert refresh_tokens.limit_key(real) == refresh_tokens.limit_key(later)  # one session
    assert refresh_tokens.limit_key(forged) != refresh_tokens.limit_key(real)
    assert KEY_PART not in refresh_tokens.limit_key(real)
    assert refresh_tokens.limit_key(refresh_tokens.parse(WELL_FORMED)) == f"{USER_ID}/{SESSION_ID}"
    v1 = refresh_tokens.limit_key(refresh_tokens.parse(V1_TOKEN))
    assert v1.startswith(f"{USER_ID}/{SESSION_ID}/") and SECRET_PART not in v1


def test_issue_refuses_what_is_not_a_body_and_a_key() -> None:
    for body, key in ((WELL_FORMED, KEY_PART), (BODY, MAC_PART), (BODY, KEY_PART + "A"), ("", "")):
        with pytest.raises(ValueError):
            refresh_tokens.issue(body, key)


def test_sealed_hands_out_a_v2_body_signed_and_anything_else_as_it_is() -> None:
    assert refresh_tokens.sealed(BODY, KEY) == refresh_tokens.sign(BODY, KEY)
    assert refresh_tokens.sealed(V3_TOKEN, None) == V3_TOKEN
    assert refresh_tokens.sealed(V1_TOKEN, None) == V1_TOKEN


def test_mint_sign_then_parse_returns_the_parts() -> None:
    user_id, session_id = refresh_tokens.new_id(), refresh_tokens.new_id()

    body = refresh_tokens.mint(user_id, session_id, 41)
    token = refresh_tokens.sign(body, KEY)
    parsed = refresh_tokens.parse(token)

    assert BODY_RE.fullmatch(body)
    assert TOKEN_RE.fullmatch(token)
    assert token.startswith(body + ".")
    assert (parsed.user_id, parsed.session_id, parsed.generation) == (user_id, session_id, 41)
    assert parsed.body == body
    assert parsed.hash == hashlib.sha256(body.encode("ascii")).digest()


def test_mint_uses_32_random_bytes_for_the_secret() -> None:
    sizes: list[int] = []

    def rand(size: int) -> bytes:
        sizes.append(size)
        return b"\x00" * size

    body = refresh_tokens.mint(USER_ID, SESSION_ID, 0, rand)

    assert sizes == [32]
    assert body == f"{USER_ID}.{SESSION_ID}.0.{'A' * 43}"


@pytest.mark.parametrize("generation", [-1, 10**10, 10**12])
def test_mint_refuses_a_generation_out_of_range(generation: int) -> None:
    with pytest.raises(ValueError):
        refresh_tokens.mint(USER_ID, SESSION_ID, generation)


def test_the_largest_generation_round_trips() -> None:
    body = refresh_tokens.mint(USER_ID, SESSION_ID, refresh_tokens.MAX_GENERATION)

    parsed = refresh_tokens.parse(refresh_tokens.sign(body, KEY))

    assert parsed.generation == refresh_tokens.MAX_GENERATION


def test_two_minted_tokens_for_one_session_differ() -> None:
    first = refresh_tokens.sign(refresh_tokens.mint(USER_ID, SESSION_ID, 1), KEY)
    second = refresh_tokens.sign(refresh_tokens.mint(USER_ID, SESSION_ID, 1), KEY)

    assert first != second
    assert refresh_tokens.parse(first).session_id == refresh_tokens.parse(second).session_id


def test_parse_accepts_a_well_formed_token() -> None:
    parsed = refresh_tokens.parse(WELL_FORMED)

    assert (parsed.user_id, parsed.session_id, parsed.generation) == (USER_ID, SESSION_ID, 7)
    assert (parsed.body, parsed.mac, parsed.key, parsed.version) == (BODY, MAC_PART, None, 2)


def test_parse_accepts_a_v3_token() -> None:
    parsed = refresh_tokens.parse(V3_TOKEN)

    assert (parsed.user_id, parsed.session_id, parsed.generation) == (USER_ID, SESSION_ID, 7)
    assert (parsed.body, parsed.mac, parsed.key, parsed.version) == (BODY, None, KEY_PART, 3)


def test_parse_accepts_a_v1_token_as_its_own_body() -> None:
    parsed = refresh_tokens.parse(V1_TOKEN)

    assert (parsed.user_id, parsed.session_id) == (USER_ID, SESSION_ID)
    assert (parsed.generation, parsed.mac, parsed.body) == (None, None, V1_TOKEN)


def test_the_parsed_token_does_not_show_its_secret() -> None:
    parsed = refresh_tokens.parse(WELL_FORMED)

    assert SECRET_PART not in repr(parsed)
    assert MAC_PART not in repr(parsed)
    assert KEY_PART not in repr(refresh_tokens.parse(V3_TOKEN))
    assert SECRET_PART not in repr(refresh_tokens.parse(V3_TOKEN))


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param(f"{USER_ID[:-1]}.{SESSION_ID}.7.{SECRET_PART}.{MAC_PART}", id="user-id-21"),
        pytest.param(f"{USER_ID}A.{SESSION_ID}.7.{SECRET_PART}.{MAC_PART}", id="user-id-23"),
        pytest.param(f"{USER_ID}.{SESSION_ID[:-1]}.7.{SECRET_PART}.{MAC_PART}", id="session-21"),
        pytest.param(f"{USER_ID}.{SESSION_ID}A.7.{SECRET_PART}.{MAC_PART}", id="session-23"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.7.{SECRET_PART[:-1]}.{MAC_PART}", id="secret-42"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.7.{SECRET_PART}A.{MAC_PART}", id="secret-44"),
        pytest.param(f"{BODY}.{MAC_PART[:-1]}", id="mac-21"),
        pytest.param(f"{BODY}.{MAC_PART}A", id="mac-23"),
        pytest.param(f"{BODY}.{KEY_PART[:-1]}", id="key-42"),
        pytest.param(f"{BODY}.{KEY_PART}A", id="key-44"),
        pytest.param(f"{V3_TOKEN}.{MAC_PART}", id="v3-and-a-mac"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.07.{SECRET_PART}.{MAC_PART}", id="gen-leading-0"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.-7.{SECRET_PART}.{MAC_PART}", id="gen-negative"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.+7.{SECRET_PART}.{MAC_PART}", id="gen-plus"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.٧.{SECRET_PART}.{MAC_PART}", id="gen-non-ascii"),
        pytest.param(f"{USER_ID}.{SESSION_ID}.{'1' * 11}.{SECRET_PART}.{MAC_PART}", id="gen-11"),
        pytest.param(f"{USER_ID}.{SESSION_ID}..{SECRET_PART}.{MAC_PART}", id="gen-empty"),
        pytest.param(BODY, id="body-without-mac"),
        pytest.param(f"{WELL_FORMED}=", id="padding"),
        pytest.param(f"{BODY}.{MAC_PART[:-1]}+", id="plus"),
        pytest.param(f"{BODY}.{MAC_PART[:-1]}/", id="slash"),
        pytest.param(f"{BODY}.{MAC_PART[:-1]} ", id="space"),
        pytest.param(f"{BODY}.{MAC_PART[:-1]}é", id="non-ascii-letter"),
        pytest.param(f"{BODY}.{MAC_PART[:-1]}٣", id="non-ascii-digit"),
        pytest.param(f"{WELL_FORMED}\n", id="trailing-newline"),
        pytest.param(f" {WELL_FORMED}", id="leading-space"),
        pytest.param(f"{WELL_FORMED}.", id="trailing-dot"),
        pytest.param(f".{WELL_FORMED}", id="leading-dot"),
        pytest.param(f"{WELL_FORMED}.{MAC_PART}", id="six-parts"),
        pytest.param(f"{V1_TOKEN}.{SECRET_PART}", id="v1-four-parts"),
        pytest.param(f"{V1_TOKEN}\n", id="v1-trailing-newline"),
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


# --- MAC ------------------------------------------------------------------------------------


def test_a_signed_token_is_authentic_under_its_key_only() -> None:
    token = refresh_tokens.parse(refresh_tokens.sign(BODY, KEY))

    assert refresh_tokens.authentic(token, KEY)
    assert not refresh_tokens.authentic(token, b"\x06" * 32)
    assert not refresh_tokens.authentic(token, None)


def test_the_mac_covers_every_part_of_the_body() -> None:
    mac = refresh_tokens.parse(refresh_tokens.sign(BODY, KEY)).mac
    bodies = [
        f"{USER_ID}.{SESSION_ID}.8.{SECRET_PART}",  # another generation
        f"{USER_ID}.{SESSION_ID}.7.{'Y' * 42}g",  # another secret
        f"{USER_ID}.{'d' * 22}.7.{SECRET_PART}",  # another session
        f"{'B' * 21}w.{SESSION_ID}.7.{SECRET_PART}",  # another user
    ]

    for body in bodies:
        assert not refresh_tokens.authentic(refresh_tokens.parse(f"{body}.{mac}"), KEY)


def test_a_made_up_mac_is_not_authentic() -> None:
    assert not refresh_tokens.authentic(refresh_tokens.parse(WELL_FORMED), KEY)


def test_a_v1_token_is_never_authentic() -> None:
    assert not refresh_tokens.authentic(refresh_tokens.parse(V1_TOKEN), KEY)


def test_sign_leaves_a_v1_token_as_it_is() -> None:
    assert refresh_tokens.sign(V1_TOKEN, None) == V1_TOKEN
    assert refresh_tokens.sign(V1_TOKEN, KEY) == V1_TOKEN


@pytest.mark.parametrize("body", [WELL_FORMED, "", "x.y.z", BODY + "!"])
def test_sign_refuses_what_is_not_a_body(body: str) -> None:
    with pytest.raises(ValueError):
        refresh_tokens.sign(body, KEY)


def test_sign_of_a_v2_body_needs_a_key() -> None:
    with pytest.raises(ValueError):
        refresh_tokens.sign(BODY, None)


# --- hash -----------------------------------------------------------------------------------


def test_token_hash_of_a_v2_token_is_sha256_of_its_body() -> None:
    body = refresh_tokens.mint(USER_ID, SESSION_ID, 3)

    digest = refresh_tokens.token_hash(body)

    assert digest == hashlib.sha256(body.encode("ascii")).digest()
    assert refresh_tokens.parse(refresh_tokens.sign(body, KEY)).hash == digest
    assert len(digest) == 32


def test_token_hash_differs_for_tokens_of_the_same_session() -> None:
    first = refresh_tokens.mint(USER_ID, SESSION_ID, 1)
    second = refresh_tokens.mint(USER_ID, SESSION_ID, 1)

    assert refresh_tokens.token_hash(first) != refresh_tokens.token_hash(second)
