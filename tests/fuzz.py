"""Hypothesis strategies for request headers, and the settings every fuzz test runs with.

Bounded (`max_examples`), without a deadline (the machine is shared), derandomized and without
an example database, so that a run is the same on every machine and in CI.
"""

from __future__ import annotations

import base64
import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FUZZ_ROUTES = settings(FUZZ, max_examples=100)

# Every code point, surrogates and control characters included.
ANY_CHAR = st.characters(exclude_categories=())
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
# Characters that survive HTTP/1.1 (latin-1), as a header value reaches `chalice local`.
LATIN1_TEXT = st.text(st.characters(max_codepoint=0xFF, exclude_categories=()), max_size=40)
SEPARATORS = st.sampled_from([" ", "  ", "\t", "", " \x00 ", "\n", "\u3000", "\x85", ":"])
SCHEMES = st.sampled_from(
    ["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "basic", "BASIC", "Digest", "Token", ""]
)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _jwt_like(header: object, claims: object, signature: bytes) -> str:
    def part(value: object) -> str:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    return ".".join([part(header), part(claims), part(signature)])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)
JWT_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["RS256", "HS256", "none", "ES256"]) | JSON_VALUES,
        "typ": st.sampled_from(["at+jwt", "JWT", "application/at+jwt"]) | JSON_VALUES,
        "kid": ANY_TEXT | JSON_VALUES,
    },
)
JWT_LIKE = st.builds(
    _jwt_like,
    JWT_HEADERS | JSON_VALUES | st.binary(max_size=40),
    JSON_VALUES | st.binary(max_size=40),
    st.binary(max_size=64),
)

TOKEN_LIKE = ANY_TEXT | JWT_LIKE | st.text(alphabet="abcAB09-_.=+/", max_size=60)

AUTHORIZATION = st.one_of(
    ANY_TEXT,
    TOKEN_LIKE,
    st.builds(lambda scheme, sep, rest: f"{scheme}{sep}{rest}", SCHEMES, SEPARATORS, TOKEN_LIKE),
    # Basic: base64 of arbitrary bytes, of `<token>:`, of `<id>:<secret>` (form-encoded or not)
    st.builds(lambda raw: f"Basic {_b64(raw)}", st.binary(max_size=60)),
    st.builds(lambda t: f"Basic {_b64(f'{t}:'.encode('utf-8', 'surrogatepass'))}", TOKEN_LIKE),
    st.builds(
        lambda i, s: f"Basic {_b64(f'{i}:{s}'.encode('utf-8', 'surrogatepass'))}",
        ANY_TEXT,
        ANY_TEXT,
    ),
    st.builds(lambda t: f"Basic {t}", ANY_TEXT),
    # huge values, of one repeated character
    st.builds(
        lambda scheme, n, ch: f"{scheme} {ch * n}",
        SCHEMES,
        st.integers(0, 20_000),
        st.sampled_from(["a", "é", "=", "\x00", "漢", ".", " "]),
    ),
)

MEDIA_TYPES = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data",
        "application/jsonx",
        "*/*",
        "",
    ]
)


def _odd_case(text: str, mask: list[bool]) -> str:
    mask = mask + [False] * len(text)
    return "".join(c.upper() if up else c for c, up in zip(text, mask[: len(text)], strict=True))


PARAMETER = st.builds(
    lambda name, value: f"{name}={value}",
    st.sampled_from(["charset", "boundary", "q", "CHARSET", ""]) | ANY_TEXT,
    st.sampled_from(["utf-8", "UTF-8", "latin-1", '"utf-8"', "", "utf-16"]) | ANY_TEXT,
)
CONTENT_TYPE = st.one_of(
    ANY_TEXT,
    st.builds(
        lambda media, mask, params, sep: sep.join([_odd_case(media, mask), *params]),
        MEDIA_TYPES,
        st.lists(st.booleans(), max_size=40),
        st.lists(PARAMETER, max_size=3),
        st.sampled_from([";", "; ", " ;", ",", ";;"]),
    ),
    st.builds(lambda media, n: media + ";" + "x" * n, MEDIA_TYPES, st.integers(0, 20_000)),
)
