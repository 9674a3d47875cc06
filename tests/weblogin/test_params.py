"""A web sign-in's parameters and random values (chalicelib/weblogin/params.py)."""

from __future__ import annotations

import pytest

from chalicelib.errors import RequestError
from chalicelib.weblogin import params

# RFC 7636 Appendix B: the example verifier and its S256 challenge.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_s256_matches_rfc_7636_appendix_b() -> None:
    assert params.check_challenge(RFC_CHALLENGE, "S256") == RFC_CHALLENGE
    assert params.verifier_matches(params.check_verifier(RFC_VERIFIER), RFC_CHALLENGE)
    assert not params.verifier_matches(RFC_VERIFIER[:-1] + "Y", RFC_CHALLENGE)
    assert not params.verifier_matches(RFC_CHALLENGE, RFC_CHALLENGE)  # plain is not S256


@pytest.mark.parametrize(
    ("challenge", "method"),
    [
        (RFC_CHALLENGE, None),  # the default method is plain (RFC 7636 §4.3): refused
        (RFC_CHALLENGE, "plain"),
        (RFC_CHALLENGE, "s256"),
        (None, "S256"),
        (RFC_CHALLENGE[:-1], "S256"),
        (RFC_CHALLENGE + "A", "S256"),
        (RFC_CHALLENGE[:-1] + "=", "S256"),
    ],
)
def test_a_challenge_is_s256_and_a_sha256(challenge, method) -> None:
    with pytest.raises(RequestError):
        params.check_challenge(challenge, method)


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, "a" * 42 + "+", "a" * 42 + " "])
def test_a_verifier_is_43_to_128_unreserved_characters(verifier) -> None:
    with pytest.raises(RequestError):
        params.check_verifier(verifier)
    assert params.check_verifier("a" * 43) and params.check_verifier("~._-" * 32)


def test_states_and_codes_name_their_sign_in_and_nothing_else() -> None:
    authz_id = params.new_id()
    value = params.new_value(authz_id)
    assert params.authz_id_of(value) == authz_id
    for other in ("", authz_id, value + "x", "x" + value, value.replace(".", "-"), "a.b"):
        assert params.authz_id_of(other) is None
    assert params.new_value(authz_id) != value  # 256 random bits each time


def test_each_purpose_hashes_apart() -> None:
    value = params.new_value(params.new_id())
    digests = {
        params.digest(purpose, value) for purpose in (params.STATE, params.CODE, params.BROWSER)
    }
    assert len(digests) == 3 and all(len(d) == 32 for d in digests)


def test_with_query_keeps_a_registered_query_and_drops_nones() -> None:
    assert params.with_query("https://a.example/cb", {"code": "c", "state": None}) == (
        "https://a.example/cb?code=c"
    )
    assert params.with_query("https://a.example/cb?x=1", {"state": "s t"}) == (
        "https://a.example/cb?x=1&state=s+t"
    )
