"""Access tokens: RS256 JWTs (RFC 9068) minted and checked against the signing key set."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from chalicelib import signing_keys
from chalicelib.errors import ExpiredToken, InvalidToken
from chalicelib.signing_keys import KeySet, KeySetProvider
from chalicelib.tokens import refresh as refresh_tokens
from chalicelib.tokens.access import AccessClaims, AccessTokens
from tests.conftest import START, FakeClock

ISSUER = "https://auth.test"
AUDIENCE = "wxauth-test"
TTL = 1800


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


@pytest.fixture(scope="module")
def key_set(key_set_json: str) -> KeySet:
    return KeySet.from_json(key_set_json)


@pytest.fixture(scope="module")
def other_private_key() -> rsa.RSAPrivateKey:
    """Another RSA key: an attacker's, or the next one a rotation brings in."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider(key_set: KeySet, clock: FakeClock) -> KeySetProvider:
    return KeySetProvider(lambda: key_set, clock=clock)


@pytest.fixture
def tokens(provider: KeySetProvider) -> AccessTokens:
    return AccessTokens(provider, issuer=ISSUER, audience=AUDIENCE, ttl=TTL)


def good_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": START + TTL,
        "iat": START,
        "jti": "jti-1",
        "client_id": "wx-test-appid",
        "sid": "session-1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], private_key: rsa.RSAPrivateKey, kid: str, **header: Any) -> str:
    headers = {"kid": kid, "typ": "at+jwt", **header}
    return jwt.encode(claims, private_key, algorithm="RS256", headers=headers)


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64url_json(header)}.{b64url_json(claims)}.{b64url(signature)}"


def sign_by_hand(
    header: dict[str, Any], claims: dict[str, Any], private_key: rsa.RSAPrivateKey
) -> str:
    """A genuine RS256 signature over exactly this header (pyjwt would add `typ: JWT`)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = private_key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


# --- mint / check ---------------------------------------------------------------------------


def test_mint_then_check_round_trips_the_claims(tokens: AccessTokens) -> None:
    token, exp = tokens.mint(
        subject="user-1", client_id="wx-app", now=START, session_id="sess-1", scope="profile"
    )

    claims = tokens.check(token, START)

    assert exp == START + TTL + 1
    assert claims == AccessClaims(
        subject="user-1",
        session_id="sess-1",
        client_id="wx-app",
        expires_at=START + TTL + 1,
        issued_at=START,
        token_id=claims.token_id,
        scope="profile",
    )
    assert len(claims.token_id) == 22


def test_minted_token_has_the_rfc_9068_header_and_claims(
    tokens: AccessTokens, key_set: KeySet
) -> None:
    token, _ = tokens.mint(subject="user-1", client_id="wx-app", now=START, session_id="sess-1")

    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, options={"verify_signature": False})

    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": key_set.active_kid}
    assert payload == {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": START + TTL + 1,
        "iat": START,
        "jti": payload["jti"],
        "client_id": "wx-app",
        "sid": "sess-1",
    }


def test_minted_token_verifies_with_the_published_jwk(
    tokens: AccessTokens, key_set: KeySet
) -> None:
    token, _ = tokens.mint(subject="user-1", client_id="wx-app", now=START)
    (jwk,) = key_set.jwks()["keys"]
    public_key = jwt.PyJWK(jwk).key

    payload = jwt.decode(
        token,
        public_key,
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )

    assert payload["sub"] == "user-1"


def test_token_without_session_or_scope_checks_with_none(tokens: AccessTokens) -> None:
    token, _ = tokens.mint(subject="svc", client_id="client-1", now=START)

    claims = tokens.check(token, START)

    assert claims.session_id is None
    assert claims.scope is None
    assert "sid" not in jwt.decode(token, options={"verify_signature": False})


def test_each_minted_token_has_its_own_jti(tokens: AccessTokens) -> None:
    first, _ = tokens.mint(subject="u", client_id="c", now=START)
    second, _ = tokens.mint(subject="u", client_id="c", now=START)

    assert tokens.check(first, START).token_id != tokens.check(second, START).token_id


def test_jti_comes_from_the_injected_random_source(provider: KeySetProvider) -> None:
    tokens = AccessTokens(
        provider, issuer=ISSUER, audience=AUDIENCE, ttl=TTL, rand=lambda n: b"\x00" * n
    )

    token, _ = tokens.mint(subject="u", client_id="c", now=START)

    assert tokens.check(token, START).token_id == "A" * 22


# --- time -----------------------------------------------------------------------------------


def test_token_is_valid_until_one_second_before_exp(tokens: AccessTokens) -> None:
    token, exp = tokens.mint(subject="u", client_id="c", now=START)

    assert tokens.check(token, exp - 1).expires_at == exp


def test_token_expires_exactly_at_exp(tokens: AccessTokens) -> None:
    token, exp = tokens.mint(subject="u", client_id="c", now=START)

    with pytest.raises(ExpiredToken) as info:
        tokens.check(token, exp)

    assert info.value.reason == "expired"
    with pytest.raises(ExpiredToken):
        tokens.check(token, exp + 10_000)


def test_iat_up_to_60_seconds_in_the_future_is_accepted(tokens: AccessTokens) -> None:
    token, _ = tokens.mint(subject="u", client_id="c", now=START + 60)

    assert tokens.check(token, START).issued_at == START + 60


def test_iat_more_than_60_seconds_in_the_future_is_invalid(tokens: AccessTokens) -> None:
    token, _ = tokens.mint(subject="u", client_id="c", now=START + 61)

    with pytest.raises(InvalidToken) as info:
        tokens.check(token, START)

    assert info.value.reason == "invalid"


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": str(START + TTL)},
        {"iat": str(START)},
        {"exp": float(START + TTL)},
        {"exp": True},
    ],
    ids=["exp-string", "iat-string", "exp-float", "exp-bool"],
)
def test_non_integer_time_claims_are_invalid(
    tokens: AccessTokens, key_set: KeySet, overrides: dict[str, Any]
) -> None:
    token = sign(good_claims(**overrides), key_set.active.private_key, key_set.active_kid)

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


# --- claims and header ----------------------------------------------------------------------


def test_a_correctly_signed_hand_made_token_is_accepted(
    tokens: AccessTokens, key_set: KeySet
) -> None:
    """The baseline for the rejections below: only the named defect makes them fail."""
    token = sign(good_claims(), key_set.active.private_key, key_set.active_kid)
    header = {"alg": "RS256", "typ": "at+jwt", "kid": key_set.active_kid}
    by_hand = sign_by_hand(header, good_claims(), key_set.active.private_key)

    assert tokens.check(token, START).subject == "user-1"
    assert tokens.check(by_hand, START).subject == "user-1"


def test_typ_application_at_jwt_is_accepted(tokens: AccessTokens, key_set: KeySet) -> None:
    token = sign(
        good_claims(), key_set.active.private_key, key_set.active_kid, typ="application/at+jwt"
    )

    assert tokens.check(token, START).subject == "user-1"


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "https://evil.test"},
        {"iss": "https://auth.test/"},
        {"iss": "auth.test"},  # a substring of the issuer
        {"iss": "https://auth"},
        {"aud": "another-api"},
        {"aud": "wxauth"},  # a substring of the audience
        {"aud": ["another-api"]},
        {"sub": 42},
        {"sid": 7},
    ],
    ids=[
        "wrong-iss",
        "iss-trailing-slash",
        "iss-substring",
        "iss-prefix",
        "wrong-aud",
        "aud-substring",
        "aud-list-without-ours",
        "sub-not-string",
        "sid-not-string",
    ],
)
def test_wrong_claims_are_invalid(
    tokens: AccessTokens, key_set: KeySet, overrides: dict[str, Any]
) -> None:
    token = sign(good_claims(**overrides), key_set.active.private_key, key_set.active_kid)

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "jti", "client_id"])
def test_missing_required_claim_is_invalid(
    tokens: AccessTokens, key_set: KeySet, claim: str
) -> None:
    claims = good_claims()
    del claims[claim]
    token = sign(claims, key_set.active.private_key, key_set.active_kid)

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt2", "", None, "application/jwt"], ids=repr)
def test_wrong_or_missing_typ_is_invalid(
    tokens: AccessTokens, key_set: KeySet, typ: str | None
) -> None:
    header: dict[str, Any] = {"alg": "RS256", "kid": key_set.active_kid}
    if typ is not None:
        header["typ"] = typ
    token = sign_by_hand(header, good_claims(), key_set.active.private_key)

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


# --- algorithm and key attacks --------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_token_is_invalid(tokens: AccessTokens, key_set: KeySet, alg: str) -> None:
    header = {"alg": alg, "typ": "at+jwt", "kid": key_set.active_kid}

    for signature in (b"", b"\x00" * 256):
        with pytest.raises(InvalidToken):
            tokens.check(forge(header, good_claims(), signature), START)


def test_pyjwt_unsigned_token_is_invalid(tokens: AccessTokens, key_set: KeySet) -> None:
    token = jwt.encode(
        good_claims(), None, algorithm="none", headers={"kid": key_set.active_kid, "typ": "at+jwt"}
    )

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


@pytest.mark.parametrize("pem_format", ["spki", "pkcs1"])
def test_hs256_token_keyed_with_the_public_key_pem_is_invalid(
    tokens: AccessTokens, key_set: KeySet, pem_format: str
) -> None:
    """The algorithm confusion attack: HMAC with the public key a verifier might use as secret."""
    public_format = {
        "spki": serialization.PublicFormat.SubjectPublicKeyInfo,
        "pkcs1": serialization.PublicFormat.PKCS1,
    }[pem_format]
    public_pem = key_set.active.public_key.public_bytes(serialization.Encoding.PEM, public_format)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key_set.active_kid}
    signing_input = f"{b64url_json(header)}.{b64url_json(good_claims())}"
    signature = hmac.new(public_pem, signing_input.encode("ascii"), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(signature)}"

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "ES256", "HS256"])
def test_other_algorithms_are_invalid(tokens: AccessTokens, key_set: KeySet, alg: str) -> None:
    header = {"alg": alg, "typ": "at+jwt", "kid": key_set.active_kid}
    token = forge(header, good_claims(), b"\x00" * 256)

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


def test_token_signed_by_another_key_with_our_kid_is_invalid(
    tokens: AccessTokens, key_set: KeySet, other_private_key: rsa.RSAPrivateKey
) -> None:
    token = sign(good_claims(), other_private_key, key_set.active_kid)

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


def test_token_with_an_unknown_kid_is_invalid(
    tokens: AccessTokens, other_private_key: rsa.RSAPrivateKey
) -> None:
    kid = signing_keys.thumbprint(other_private_key.public_key())
    token = sign(good_claims(), other_private_key, kid)

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


@pytest.mark.parametrize("kid", [None, 42, ["kid"], {"kid": 1}], ids=repr)
def test_token_with_a_missing_or_non_string_kid_is_invalid(
    tokens: AccessTokens, key_set: KeySet, kid: object
) -> None:
    header: dict[str, Any] = {"alg": "RS256", "typ": "at+jwt"}
    if kid is not None:
        header["kid"] = kid
    token = forge(header, good_claims(), b"\x00" * 256)

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


def test_token_with_a_tampered_payload_is_invalid(tokens: AccessTokens) -> None:
    token, _ = tokens.mint(subject="user-1", client_id="c", now=START)
    header, _, signature = token.split(".")
    tampered = f"{header}.{b64url_json(good_claims(sub='admin'))}.{signature}"

    with pytest.raises(InvalidToken):
        tokens.check(tampered, START)


def test_token_with_a_jwk_header_of_the_attackers_key_is_invalid(
    tokens: AccessTokens, key_set: KeySet, other_private_key: rsa.RSAPrivateKey
) -> None:
    """An embedded `jwk` (RFC 7515 §4.1.3) must not be trusted in place of our key set."""
    attacker_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(other_private_key.public_key(), as_dict=True)
    token = sign(good_claims(), other_private_key, key_set.active_kid, jwk=attacker_jwk)

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


# --- not a token at all ---------------------------------------------------------------------


REFRESH_TOKEN = refresh_tokens.sign(
    refresh_tokens.mint(refresh_tokens.new_id(), refresh_tokens.new_id(), 0), b"\x01" * 32
)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("garbage", id="garbage"),
        pytest.param("a.b.c", id="three-garbage-parts"),
        pytest.param("...", id="only-dots"),
        pytest.param("Bearer x.y.z", id="with-scheme"),
        pytest.param("ünïcödé.ünïcödé.ünïcödé", id="non-ascii"),
        pytest.param("eyJ.eyJ.", id="truncated-base64"),
        pytest.param(b64url_json([1, 2]) + ".e30.", id="header-is-a-list"),
        pytest.param(b64url(b"\xff\xfe") + ".e30.", id="header-not-utf8"),
        pytest.param("x" * 9000, id="9000-chars"),
        pytest.param("a" * 3000 + "." + "b" * 3000 + "." + "c" * 3000, id="9000-char-jwt-shape"),
        pytest.param(REFRESH_TOKEN, id="refresh-token"),
    ],
)
def test_garbage_strings_are_invalid(tokens: AccessTokens, token: str) -> None:
    with pytest.raises(InvalidToken):
        tokens.check(token, START)


@pytest.mark.parametrize("token", [None, 42, b"a.b.c", ["a.b.c"], {"t": 1}], ids=repr)
def test_non_strings_are_invalid(tokens: AccessTokens, token: object) -> None:
    with pytest.raises(InvalidToken):
        tokens.check(token, START)


@pytest.mark.parametrize("cut", [1, 10, 100, -1, -10, -100])
def test_truncated_tokens_are_invalid(tokens: AccessTokens, cut: int) -> None:
    token, _ = tokens.mint(subject="u", client_id="c", now=START)

    truncated = token[:cut]

    with pytest.raises(InvalidToken):
        tokens.check(truncated, START)


def test_token_without_its_signature_is_invalid(tokens: AccessTokens) -> None:
    token, _ = tokens.mint(subject="u", client_id="c", now=START)
    unsigned = token.rsplit(".", 1)[0] + "."

    with pytest.raises(InvalidToken):
        tokens.check(unsigned, START)


def test_a_valid_token_padded_over_the_length_limit_is_invalid(tokens: AccessTokens) -> None:
    token, _ = tokens.mint(subject="u" * 9000, client_id="c", now=START)
    assert len(token) > 8192

    with pytest.raises(InvalidToken):
        tokens.check(token, START)


def test_error_messages_do_not_echo_the_token(tokens: AccessTokens, key_set: KeySet) -> None:
    token = sign(good_claims(iss="https://evil.test"), key_set.active.private_key, "kid")

    with pytest.raises(InvalidToken) as info:
        tokens.check(token, START)

    for part in token.split("."):
        assert part not in str(info.value)


# --- rotation -------------------------------------------------------------------------------


def test_after_rotation_old_tokens_verify_and_new_tokens_use_the_new_key(
    key_set: KeySet,
    other_private_key: rsa.RSAPrivateKey,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The rotation's "new" key is the one generated once for the module.
    monkeypatch.setattr(signing_keys.rsa, "generate_private_key", lambda **_: other_private_key)
    current = {"set": key_set}
    provider = KeySetProvider(lambda: current["set"], clock=clock, max_age=300)
    tokens = AccessTokens(provider, issuer=ISSUER, audience=AUDIENCE, ttl=TTL)
    old_token, _ = tokens.mint(subject="u", client_id="c", now=START)

    current["set"] = key_set.rotate(START + 10, keep_retired_for=TTL)
    clock.advance(300)  # the provider picks up the rotated set
    new_token, _ = tokens.mint(subject="u", client_id="c", now=START + 300)

    new_kid = current["set"].active_kid
    assert new_kid != key_set.active_kid
    assert new_kid == signing_keys.thumbprint(other_private_key.public_key())
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert jwt.get_unverified_header(old_token)["kid"] == key_set.active_kid
    assert tokens.check(old_token, START + 300).subject == "u"
    assert tokens.check(new_token, START + 300).subject == "u"


def test_a_token_of_a_newly_rotated_key_verifies_once_the_provider_reloads(
    key_set: KeySet,
    other_private_key: rsa.RSAPrivateKey,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another container rotated: its first token names a kid this container has not seen."""
    monkeypatch.setattr(signing_keys.rsa, "generate_private_key", lambda **_: other_private_key)
    rotated = key_set.rotate(START, keep_retired_for=TTL)
    stale = AccessTokens(
        KeySetProvider(lambda: key_set, clock=clock), issuer=ISSUER, audience=AUDIENCE, ttl=TTL
    )
    loads = {"n": 0}

    def load() -> KeySet:
        loads["n"] += 1
        return key_set if loads["n"] == 1 else rotated

    warm = AccessTokens(
        KeySetProvider(load, clock=clock, min_reload_interval=10),
        issuer=ISSUER,
        audience=AUDIENCE,
        ttl=TTL,
    )
    warm.check(warm.mint(subject="u", client_id="c", now=START)[0], START)  # loads the old set
    elsewhere = AccessTokens(
        KeySetProvider(lambda: rotated, clock=clock), issuer=ISSUER, audience=AUDIENCE, ttl=TTL
    )
    token, _ = elsewhere.mint(subject="u", client_id="c", now=START)

    with pytest.raises(InvalidToken):
        stale.check(token, START)
    clock.advance(10)
    assert warm.check(token, START + 10).subject == "u"
    assert loads["n"] == 2
