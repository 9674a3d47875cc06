"""Every header and body parser of chalicelib.http_input, fed arbitrary input (hypothesis): each
returns what it documents or raises the project's own error, never anything else, and no error
message quotes the credentials it was given."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import ClientAuthError, InvalidToken, RequestError, WxAuthError
from chalicelib.http_input import (
    MAX_AUTHORIZATION_CHARS,
    access_token_from_header,
    basic_credentials,
    form_body,
    json_body,
)
from tests.fuzz import ANY_TEXT, AUTHORIZATION, CONTENT_TYPE, FUZZ

BODIES = st.one_of(
    st.none(),
    st.binary(max_size=200),
    st.sampled_from([b"{}", b'{"code": "abc"}', b"token=abc", b"grant_type=refresh_token"]),
    ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def _credentials(header: str) -> str:
    """The part of an Authorization value after its scheme."""
    return header.strip().partition(" ")[2].strip()


def _assert_not_quoted(error: Exception, header: str) -> None:
    secret = _credentials(header) or header.strip()
    if len(secret) >= 8:
        assert secret not in str(error)


@FUZZ
@given(AUTHORIZATION)
def test_access_token_from_header_returns_a_token_or_raises_invalid_token(header: str) -> None:
    try:
        token = access_token_from_header(header)
    except InvalidToken as e:
        _assert_not_quoted(e, header)
        return
    if token is None:
        assert not header.strip()
    else:
        assert token.isascii() and token.isprintable() and " " not in token
        assert 0 < len(token) <= MAX_AUTHORIZATION_CHARS


@FUZZ
@given(AUTHORIZATION)
def test_basic_credentials_return_a_pair_or_raise_invalid_client(header: str) -> None:
    try:
        credentials = basic_credentials(header)
    except ClientAuthError as e:
        _assert_not_quoted(e, header)
        return
    if credentials is not None:
        client_id, secret = credentials
        assert isinstance(client_id, str) and isinstance(secret, str)
        assert header.strip().lower().startswith("basic")


@FUZZ
@given(AUTHORIZATION | st.none())
def test_no_authorization_value_raises_a_foreign_error(header: str | None) -> None:
    for parse in (access_token_from_header, basic_credentials):
        with contextlib.suppress(WxAuthError):  # anything else fails the test
            parse(header)


@FUZZ
@given(BODIES, CONTENT_TYPE | st.none(), st.booleans())
def test_json_body_returns_an_object_or_raises_request_error(
    raw: bytes | None, content_type: str | None, required: bool
) -> None:
    try:
        body = json_body(raw, content_type, required=required)
    except RequestError:
        return
    assert isinstance(body, dict)


@FUZZ
@given(BODIES, CONTENT_TYPE | st.none())
def test_form_body_returns_strings_or_raises_request_error(
    raw: bytes | None, content_type: str | None
) -> None:
    try:
        form = form_body(raw, content_type)
    except RequestError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in form.items())


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON; charset=utf-8",
        "APPLICATION/JSON;;",
        "application/json,",
    ],
)
def test_json_media_type_with_odd_casing_and_parameters_is_json(content_type: str) -> None:
    """Sanity check that the strategy's odd forms of the right type can pass."""
    if content_type.endswith(","):
        with pytest.raises(RequestError):
            json_body(b"{}", content_type)
    else:
        assert json_body(b"{}", content_type) == {}
