"""Reading requests strictly: JSON bodies, form bodies, fields and the Authorization header."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from chalicelib.errors import ClientAuthError, InvalidToken, RequestError
from chalicelib.http_input import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    access_token_from_header,
    basic_credentials,
    bool_field,
    cookie,
    form_body,
    json_body,
    string_field,
)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode("utf-8")).decode("ascii")


def padded_json(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    skeleton = b'{"code":"abc","pad":""}'
    body = skeleton[:-2] + b"x" * (size - len(skeleton)) + b'"}'
    assert len(body) == size
    assert json.loads(body)
    return body


# --- json_body ------------------------------------------------------------------------------


def test_json_body_returns_the_object() -> None:
    assert json_body(b'{"code": "abc", "n": 1}', JSON) == {"code": "abc", "n": 1}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
        " application/json ",
    ],
)
def test_json_body_accepts_json_media_types_with_parameters(content_type: str) -> None:
    assert json_body(b'{"code": "abc"}', content_type) == {"code": "abc"}


@pytest.mark.parametrize(
    "content_type",
    [None, "", "text/plain", FORM, "application/jsonx", "application/json-patch+json", "json"],
    ids=repr,
)
def test_json_body_rejects_a_wrong_or_missing_content_type(content_type: str | None) -> None:
    with pytest.raises(RequestError):
        json_body(b'{"code": "abc"}', content_type)


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"code": }', b"{'code': 'abc'}", b'{"code": "abc"} trailing', b"\xef\xbb\xbf{}"],
    ids=["unclosed", "missing-value", "single-quotes", "trailing-garbage", "utf8-bom"],
)
def test_json_body_rejects_invalid_json(raw: bytes) -> None:
    with pytest.raises(RequestError):
        json_body(raw, JSON)


@pytest.mark.parametrize("raw", [b'{"code": "\xff\xfe"}', b'{"code": "\xc3"}', b"\x80{}"], ids=repr)
def test_json_body_rejects_invalid_utf8(raw: bytes) -> None:
    with pytest.raises(RequestError):
        json_body(raw, JSON)


@pytest.mark.parametrize(
    "raw", [b"[]", b'[{"code": "abc"}]', b'"abc"', b"42", b"4.2", b"true", b"null"], ids=repr
)
def test_json_body_rejects_non_object_bodies(raw: bytes) -> None:
    with pytest.raises(RequestError):
        json_body(raw, JSON)


def test_json_body_accepts_exactly_the_size_limit() -> None:
    assert MAX_BODY_BYTES == 8192

    body = json_body(padded_json(MAX_BODY_BYTES), JSON)

    assert body["code"] == "abc"


@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, 1024 * 1024], ids=["8193-bytes", "1-MB"])
def test_json_body_rejects_bodies_over_the_size_limit(size: int) -> None:
    with pytest.raises(RequestError) as info:
        json_body(padded_json(size), JSON)

    assert "8192" in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 4000 + b"]" * 4000, id="nested-arrays"),
        pytest.param(b'{"":' * 1600 + b"1" + b"}" * 1600, id="nested-objects"),
    ],
)
def test_json_body_rejects_deeply_nested_json_within_the_size_limit(raw: bytes) -> None:
    """Within 8192 bytes, but nested deeper than the parser's recursion limit: a client error,
    not a crash."""
    assert len(raw) <= MAX_BODY_BYTES

    with pytest.raises(RequestError):
        json_body(raw, JSON)


@pytest.mark.parametrize("raw", [None, b"", b"   ", b"\n"], ids=repr)
def test_json_body_required_but_empty_is_an_error(raw: bytes | None) -> None:
    with pytest.raises(RequestError):
        json_body(raw, JSON)


@pytest.mark.parametrize("raw", [None, b"", b"  \r\n"], ids=repr)
@pytest.mark.parametrize("content_type", [JSON, None])
def test_json_body_optional_and_empty_is_an_empty_object(
    raw: bytes | None, content_type: str | None
) -> None:
    assert json_body(raw, content_type, required=False) == {}


def test_json_body_optional_but_present_is_still_checked() -> None:
    assert json_body(b'{"all": true}', JSON, required=False) == {"all": True}
    with pytest.raises(RequestError):
        json_body(b"[]", JSON, required=False)
    with pytest.raises(RequestError):
        json_body(b'{"all": true}', "text/plain", required=False)


def test_json_body_error_does_not_echo_the_body() -> None:
    with pytest.raises(RequestError) as info:
        json_body(b'{"refresh_token": "SECRET-TOKEN-VALUE"', JSON)

    assert "SECRET-TOKEN-VALUE" not in str(info.value)


# --- form_body ------------------------------------------------------------------------------


def test_form_body_returns_the_parameters() -> None:
    raw = b"grant_type=refresh_token&refresh_token=a.b.c&scope=x+y&note=%2F%3D"

    assert form_body(raw, FORM) == {
        "grant_type": "refresh_token",
        "refresh_token": "a.b.c",
        "scope": "x y",
        "note": "/=",
    }


def test_form_body_keeps_blank_values() -> None:
    assert form_body(b"token=&x=1", FORM) == {"token": "", "x": "1"}


@pytest.mark.parametrize(
    "content_type",
    [FORM + "; charset=UTF-8", "Application/X-WWW-Form-Urlencoded"],
)
def test_form_body_accepts_form_media_types_with_parameters(content_type: str) -> None:
    assert form_body(b"token=abc", content_type) == {"token": "abc"}


@pytest.mark.parametrize(
    "content_type", [None, "", JSON, "multipart/form-data", "text/plain"], ids=repr
)
def test_form_body_rejects_a_wrong_or_missing_content_type(content_type: str | None) -> None:
    with pytest.raises(RequestError):
        form_body(b"token=abc", content_type)


@pytest.mark.parametrize(
    "raw", [b"token=a&token=b", b"token=a&token=a", b"token=&token=b"], ids=repr
)
def test_form_body_rejects_repeated_parameters(raw: bytes) -> None:
    with pytest.raises(RequestError):
        form_body(raw, FORM)


def test_form_body_rejects_invalid_utf8() -> None:
    with pytest.raises(RequestError):
        form_body(b"token=\xff", FORM)


def test_form_body_rejects_a_body_over_the_size_limit() -> None:
    with pytest.raises(RequestError):
        form_body(b"token=" + b"a" * MAX_BODY_BYTES, FORM)


def test_form_body_empty_is_an_empty_form() -> None:
    assert form_body(b"", FORM) == {}
    assert form_body(None, FORM) == {}


# --- string_field ---------------------------------------------------------------------------


def test_string_field_returns_the_string() -> None:
    assert string_field({"code": "abc"}, "code", max_length=3) == "abc"


@pytest.mark.parametrize(
    "body",
    [{}, {"code": None}, {"other": "abc"}],
    ids=["missing", "null", "other-field"],
)
def test_string_field_missing_or_null_is_an_error(body: dict[str, Any]) -> None:
    with pytest.raises(RequestError) as info:
        string_field(body, "code", max_length=64)

    assert "code" in str(info.value)


@pytest.mark.parametrize("value", [42, 4.2, ["abc"], {"v": "abc"}, True, False, b"abc"], ids=repr)
def test_string_field_of_a_wrong_type_is_an_error(value: object) -> None:
    with pytest.raises(RequestError):
        string_field({"code": value}, "code", max_length=64)


def test_string_field_empty_is_an_error() -> None:
    with pytest.raises(RequestError):
        string_field({"code": ""}, "code", max_length=64)


def test_string_field_longer_than_max_length_is_an_error() -> None:
    assert string_field({"code": "x" * 64}, "code", max_length=64) == "x" * 64
    with pytest.raises(RequestError) as info:
        string_field({"code": "x" * 65}, "code", max_length=64)

    assert "x" * 65 not in str(info.value)


# --- bool_field -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
def test_bool_field_returns_the_boolean(value: bool) -> None:
    assert bool_field({"all": value}, "all", default=not value) is value


@pytest.mark.parametrize("default", [True, False])
def test_bool_field_missing_is_the_default(default: bool) -> None:
    assert bool_field({}, "all", default=default) is default


@pytest.mark.parametrize("value", [1, 0, "true", "false", None, [], {}], ids=repr)
def test_bool_field_of_a_wrong_type_is_an_error(value: object) -> None:
    with pytest.raises(RequestError):
        bool_field({"all": value}, "all", default=False)


# --- access_token_from_header ---------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN}",
        f"bearer {TOKEN}",
        f"BEARER {TOKEN}",
        f"  Bearer   {TOKEN}  ",
        TOKEN,
        f" {TOKEN} ",
        basic(f"{TOKEN}:"),
        "basic " + base64.b64encode(f"{TOKEN}:".encode()).decode(),
    ],
    ids=[
        "bearer",
        "bearer-lowercase",
        "bearer-uppercase",
        "extra-spaces",
        "bare",
        "bare-padded",
        "basic-empty-password",
        "basic-lowercase",
    ],
)
def test_access_token_from_header_accepts_the_contract_forms(header: str) -> None:
    assert access_token_from_header(header) == TOKEN


@pytest.mark.parametrize("header", [None, "", "   "], ids=repr)
def test_access_token_from_header_absent_is_none(header: str | None) -> None:
    assert access_token_from_header(header) is None


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(basic(f"{TOKEN}:password"), id="basic-with-password"),
        pytest.param(basic("client-id:client-secret"), id="basic-client-credentials"),
        pytest.param("Basic not*base64!", id="basic-bad-base64"),
        pytest.param("Basic YWJ", id="basic-bad-padding"),
        pytest.param("Basic " + base64.b64encode(b"\xff\xfe:").decode(), id="basic-not-utf8"),
        pytest.param(f"Token {TOKEN}", id="unknown-scheme"),
        pytest.param(f"Digest {TOKEN}", id="digest-scheme"),
        pytest.param(f"Bearer {TOKEN} extra", id="three-parts"),
        pytest.param(f"Bearer {TOKEN} {TOKEN}", id="two-tokens"),
        # base64.b64decode raises a bare ValueError for non-ASCII text: it was a 500
        pytest.param("Basic é漢", id="basic-non-ascii"),
        pytest.param("Basic \x00", id="basic-control-char"),
        pytest.param("Bearer é漢", id="bearer-non-ascii"),
        pytest.param("é漢", id="bare-non-ascii"),
        pytest.param("Bearer tok\x7fen", id="bearer-delete-char"),
        pytest.param(basic("é漢:"), id="basic-non-ascii-token"),
        pytest.param(f"Bearer {'a' * 12288}", id="too-long"),
    ],
)
def test_access_token_from_header_rejects_malformed_headers(header: str) -> None:
    with pytest.raises(InvalidToken):
        access_token_from_header(header)


def test_access_token_from_header_error_does_not_echo_the_header() -> None:
    with pytest.raises(InvalidToken) as info:
        access_token_from_header(basic(f"{TOKEN}:password"))

    assert TOKEN not in str(info.value)
    assert "password" not in str(info.value).replace("empty password", "")


# --- basic_credentials ----------------------------------------------------------------------


def test_basic_credentials_returns_id_and_secret() -> None:
    assert basic_credentials(basic("client-1:s3cret")) == ("client-1", "s3cret")


def test_basic_credentials_are_form_decoded() -> None:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before base64."""
    header = basic("client%3Aone:s%C3%A9cret%2Fwith%3Acolon+and%25")

    assert basic_credentials(header) == ("client:one", "sécret/with:colon and%")


def test_basic_credentials_split_at_the_first_colon() -> None:
    assert basic_credentials(basic("client:secret:with:colons")) == (
        "client",
        "secret:with:colons",
    )


def test_basic_credentials_scheme_is_case_insensitive() -> None:
    header = "basic " + base64.b64encode(b"client:secret").decode()

    assert basic_credentials(header) == ("client", "secret")


@pytest.mark.parametrize("header", [None, f"Bearer {TOKEN}", TOKEN], ids=repr)
def test_basic_credentials_absent_or_other_scheme_is_none(header: str | None) -> None:
    assert basic_credentials(header) is None


@pytest.mark.parametrize(
    "header",
    [
        basic("no-colon"),
        "Basic not*base64!",
        "Basic " + base64.b64encode(b"\xff:x").decode(),
        "Basic é漢",
        "Basic " + "QUJD" * 4000,
    ],
    ids=["no-colon", "bad-base64", "not-utf8", "non-ascii", "too-long"],
)
def test_basic_credentials_malformed_is_a_failed_client_authentication(header: str) -> None:
    """RFC 6749 §5.2: Basic credentials we cannot read are `invalid_client` (401)."""
    with pytest.raises(ClientAuthError):
        basic_credentials(header)


def test_json_body_accepts_nesting_up_to_the_depth_limit() -> None:
    raw = b'{"a":' * (MAX_JSON_DEPTH - 1) + b"{}" + b"}" * (MAX_JSON_DEPTH - 1)
    body = json_body(raw, JSON)
    for _ in range(MAX_JSON_DEPTH - 1):
        body = body["a"]
    assert body == {}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":' * MAX_JSON_DEPTH + b"{}" + b"}" * MAX_JSON_DEPTH,
        b'{"a": [' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"]}",
    ],
    ids=["objects", "arrays-in-an-object"],
)
def test_json_body_rejects_nesting_past_the_depth_limit(raw: bytes) -> None:
    with pytest.raises(RequestError) as info:
        json_body(raw, JSON)

    assert str(MAX_JSON_DEPTH) in str(info.value)


# -- cookies (issue 24, item 2: a web sign-in's browser cookie) -----------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a=1; __Host-wxauth-authz-x=v4lue; b=2", "v4lue"),
        ("__Host-wxauth-authz-x=first;__Host-wxauth-authz-x=second", "first"),
        ('__Host-wxauth-authz-x="quoted"', "quoted"),
        ("__Host-wxauth-authz-xy=other", None),
        ("__Host-wxauth-authz-x", None),
        ("", None),
        (None, None),
        ("__Host-wxauth-authz-x=v; " + "c=" + "x" * 9000, None),  # too long: none
    ],
)
def test_cookie(header: str | None, expected: str | None) -> None:
    assert cookie(header, "__Host-wxauth-authz-x") == expected
