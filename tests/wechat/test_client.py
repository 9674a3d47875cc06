"""The WeChat client: jscode2session over `responses`, its errcodes, its one retry, its secrecy."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses.registries import OrderedRegistry

from chalicelib.errors import (
    ConfigurationError,
    GrantError,
    WeChatCodeRejected,
    WeChatConfigError,
    WeChatError,
    WeChatIpNotAllowed,
    WeChatQuotaExhausted,
    WeChatRateLimited,
    WeChatTokenInvalid,
    WeChatUnavailable,
    WeChatUserBlocked,
)
from chalicelib.logs import LOGGER_NAME
from chalicelib.wechat.client import WeChatClient, WeChatSession, check_token_errcode

BASE = "https://wechat.test"
URL = f"{BASE}/sns/jscode2session"
APPID = "wx-test-appid"
SECRET = "wechat-secret-5f4dcc3b5aa765d61d83"
CODE = "0a1B2c3D4e5F6g7H8i9J0kLmN"
SESSION_KEY = "c2Vzc2lvbi1rZXktc2VjcmV0"
SUCCESS = {"openid": "o-openid-1", "session_key": SESSION_KEY}


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    """Responses are served in the order they are added, and every one must be used."""
    with responses.RequestsMock(
        assert_all_requests_are_fired=True, registry=OrderedRegistry
    ) as requests_mock:
        yield requests_mock


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> WeChatClient:
    return WeChatClient(base_url=BASE, appid=APPID, secret=lambda: SECRET, sleep=sleeps.append)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every record, also of the events logger, which does not propagate once the
    app has configured it."""
    caplog.set_level(logging.DEBUG)
    events = logging.getLogger(LOGGER_NAME)
    events.addHandler(caplog.handler)
    previous_level = events.level
    events.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        events.removeHandler(caplog.handler)
        events.setLevel(previous_level)


def answer(mock: responses.RequestsMock, body: object, *, status: int = 200) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    mock.add(responses.GET, URL, body=text, status=status, content_type="text/plain")


def query_of(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query, keep_blank_values=True)


def exception_chain(error: BaseException) -> list[BaseException]:
    """The error and everything reachable through __cause__ and __context__."""
    seen: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        pending.extend([current.__cause__, current.__context__])
    return seen


# --- success --------------------------------------------------------------------------------


def test_success_with_a_text_plain_body(mock, client: WeChatClient, sleeps) -> None:
    answer(mock, SUCCESS)

    session = client.code2session(CODE)

    assert session == WeChatSession(openid="o-openid-1", unionid=None, session_key=SESSION_KEY)
    assert len(mock.calls) == 1
    assert mock.calls[0].response.headers["Content-Type"] == "text/plain"
    assert sleeps == []


def test_success_with_a_unionid(mock, client: WeChatClient) -> None:
    answer(mock, {**SUCCESS, "unionid": "u-union-1"})

    session = client.code2session(CODE)

    assert session.unionid == "u-union-1"
    assert session.openid == "o-openid-1"


@pytest.mark.parametrize("unionid", ["", None, 42], ids=["empty", "null", "int"])
def test_unusable_unionid_is_none(mock, client: WeChatClient, unionid: object) -> None:
    answer(mock, {**SUCCESS, "unionid": unionid})

    assert client.code2session(CODE).unionid is None


def test_errcode_zero_with_a_session_is_success(mock, client: WeChatClient) -> None:
    answer(mock, {**SUCCESS, "errcode": 0, "errmsg": "ok"})

    assert client.code2session(CODE).openid == "o-openid-1"


def test_request_carries_exactly_the_four_parameters_and_nothing_else(
    mock, client: WeChatClient
) -> None:
    answer(mock, SUCCESS)

    client.code2session(CODE)

    assert len(mock.calls) == 1  # no access_token fetched first
    request = mock.calls[0].request
    assert request.method == "GET"
    assert urlsplit(request.url).path == "/sns/jscode2session"
    assert query_of(mock.calls[0]) == {
        "appid": [APPID],
        "secret": [SECRET],
        "js_code": [CODE],
        "grant_type": ["authorization_code"],
    }
    assert request.body is None
    assert "access_token" not in request.url


def test_base_url_with_a_trailing_slash(mock) -> None:
    answer(mock, SUCCESS)
    client = WeChatClient(base_url=BASE + "/", appid=APPID, secret=lambda: SECRET)

    client.code2session(CODE)

    assert mock.calls[0].request.url.startswith(URL + "?")


def test_a_login_exchange_has_the_short_login_timeouts(mock, client: WeChatClient) -> None:
    """A user waits on jscode2session: 1 s to connect, 2 s for the answer (client.py says
    why); the server-to-server calls keep 2 s and 4 s."""
    answer(mock, SUCCESS)
    mock.add(
        responses.POST,
        f"{BASE}/cgi-bin/stable_token",
        json={"access_token": "t" * 40, "expires_in": 7200},
    )

    client.code2session(CODE)
    client.stable_token()

    assert mock.calls[0].request.req_kwargs["timeout"] == (1.0, 2.0)
    assert mock.calls[1].request.req_kwargs["timeout"] == (2.0, 4.0)


def test_configured_timeouts_are_passed_to_requests(mock) -> None:
    answer(mock, SUCCESS)
    client = WeChatClient(
        base_url=BASE,
        appid=APPID,
        secret=lambda: SECRET,
        login_connect_timeout=1.5,
        login_read_timeout=3.25,
    )

    client.code2session(CODE)

    assert mock.calls[0].request.req_kwargs["timeout"] == (1.5, 3.25)


def test_session_repr_does_not_show_the_session_key() -> None:
    session = WeChatSession(openid="o-openid-1", unionid="u-1", session_key=SESSION_KEY)

    assert SESSION_KEY not in repr(session)
    assert SESSION_KEY not in str(session)
    assert "o-openid-1" in repr(session)


# --- errcodes on HTTP 200 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errcode", "error_type"),
    [
        (40029, WeChatCodeRejected),
        (40163, WeChatCodeRejected),
        (41008, WeChatCodeRejected),
        (40226, WeChatUserBlocked),
        (45011, WeChatRateLimited),
        (40013, WeChatConfigError),
        (40125, WeChatConfigError),
        (41002, WeChatConfigError),
        (41004, WeChatConfigError),
    ],
)
def test_errcode_on_http_200_maps_to_its_error_without_retry(
    mock, client: WeChatClient, sleeps, errcode: int, error_type: type[WeChatError]
) -> None:
    answer(mock, {"errcode": errcode, "errmsg": "some error"})

    with pytest.raises(error_type) as info:
        client.code2session(CODE)

    assert len(mock.calls) == 1
    assert sleeps == []
    assert str(errcode) in str(info.value)


def test_a_rejected_code_is_a_grant_error(mock, client: WeChatClient) -> None:
    answer(mock, {"errcode": 40029, "errmsg": "invalid code"})

    with pytest.raises(GrantError):
        client.code2session(CODE)


def test_rate_limited_and_unavailable_carry_retry_after(mock, client: WeChatClient) -> None:
    answer(mock, {"errcode": 45011, "errmsg": "api minute-quota reach limit"})

    with pytest.raises(WeChatRateLimited) as info:
        client.code2session(CODE)

    assert info.value.retry_after > 0
    assert WeChatUnavailable.retry_after > 0


def test_config_error_is_logged_without_the_secret_or_the_code(
    mock, client: WeChatClient, logs
) -> None:
    answer(mock, {"errcode": 40125, "errmsg": f"invalid appsecret {SECRET}"})

    with pytest.raises(WeChatConfigError) as info:
        client.code2session(CODE)

    lines = [record.getMessage() for record in logs.records]
    assert any('"wechat_configuration_error"' in line and "40125" in line for line in lines)
    for line in [*lines, str(info.value)]:
        assert SECRET not in line
        assert CODE not in line


@pytest.mark.parametrize(
    "body",
    [
        {"errcode": 99999, "errmsg": "unknown"},
        {"errcode": "40029", "errmsg": "a string errcode"},
        {"session_key": SESSION_KEY},
        {"openid": "", "session_key": SESSION_KEY},
        {"openid": 42, "session_key": SESSION_KEY},
        {"openid": "o-openid-1"},
        {"openid": "o-openid-1", "session_key": None},
    ],
    ids=[
        "unknown-errcode",
        "string-errcode",
        "missing-openid",
        "empty-openid",
        "int-openid",
        "missing-session-key",
        "null-session-key",
    ],
)
def test_unusable_answer_is_unavailable(mock, client: WeChatClient, body: dict) -> None:
    answer(mock, body)

    with pytest.raises(WeChatUnavailable):
        client.code2session(CODE)


# --- one retry ------------------------------------------------------------------------------


def test_system_busy_then_success_succeeds_after_one_sleep(
    mock, client: WeChatClient, sleeps
) -> None:
    answer(mock, {"errcode": -1, "errmsg": "system error"})
    answer(mock, SUCCESS)

    session = client.code2session(CODE)

    assert session.openid == "o-openid-1"
    assert len(mock.calls) == 2
    assert sleeps == [0.2]
    assert query_of(mock.calls[1]) == query_of(mock.calls[0])


def test_the_retry_waits_the_configured_delay(mock, sleeps) -> None:
    answer(mock, {"errcode": -1, "errmsg": "system error"})
    answer(mock, SUCCESS)
    client = WeChatClient(
        base_url=BASE, appid=APPID, secret=lambda: SECRET, retry_delay=0.75, sleep=sleeps.append
    )

    client.code2session(CODE)

    assert sleeps == [0.75]


def test_system_busy_twice_is_unavailable_after_exactly_two_calls(
    mock, client: WeChatClient, sleeps
) -> None:
    answer(mock, {"errcode": -1, "errmsg": "system error"})
    answer(mock, {"errcode": -1, "errmsg": "system error"})

    with pytest.raises(WeChatUnavailable):
        client.code2session(CODE)

    assert len(mock.calls) == 2
    assert sleeps == [0.2]


def test_system_busy_then_rejected_code_is_the_rejection(mock, client: WeChatClient) -> None:
    answer(mock, {"errcode": -1, "errmsg": "system error"})
    answer(mock, {"errcode": 40163, "errmsg": "code been used"})

    with pytest.raises(WeChatCodeRejected):
        client.code2session(CODE)

    assert len(mock.calls) == 2


TRANSPORT_ERRORS = [
    requests.exceptions.ConnectTimeout,
    requests.exceptions.ReadTimeout,
    requests.exceptions.ConnectionError,
]


@pytest.mark.parametrize("error_type", TRANSPORT_ERRORS, ids=lambda t: t.__name__)
def test_transport_failure_then_success_succeeds(
    mock, client: WeChatClient, sleeps, error_type: type[Exception]
) -> None:
    mock.add(responses.GET, URL, body=error_type("connection trouble"))
    answer(mock, SUCCESS)

    assert client.code2session(CODE).openid == "o-openid-1"
    assert len(mock.calls) == 2
    assert sleeps == [0.2]


@pytest.mark.parametrize("error_type", TRANSPORT_ERRORS, ids=lambda t: t.__name__)
def test_transport_failure_twice_is_unavailable(
    mock, client: WeChatClient, sleeps, error_type: type[Exception]
) -> None:
    mock.add(responses.GET, URL, body=error_type("connection trouble"))
    mock.add(responses.GET, URL, body=error_type("connection trouble"))

    with pytest.raises(WeChatUnavailable) as info:
        client.code2session(CODE)

    assert len(mock.calls) == 2
    assert sleeps == [0.2]
    assert error_type.__name__ in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_http_5xx_then_success_succeeds(mock, client: WeChatClient, status: int) -> None:
    answer(mock, "<html>Bad Gateway</html>", status=status)
    answer(mock, SUCCESS)

    assert client.code2session(CODE).openid == "o-openid-1"
    assert len(mock.calls) == 2


def test_http_502_twice_is_unavailable(mock, client: WeChatClient) -> None:
    answer(mock, "<html>Bad Gateway</html>", status=502)
    answer(mock, "<html>Bad Gateway</html>", status=502)

    with pytest.raises(WeChatUnavailable) as info:
        client.code2session(CODE)

    assert len(mock.calls) == 2
    assert "502" in str(info.value)


def test_http_404_is_unavailable_without_retry(mock, client: WeChatClient, sleeps) -> None:
    answer(mock, "not found", status=404)

    with pytest.raises(WeChatUnavailable):
        client.code2session(CODE)

    assert len(mock.calls) == 1
    assert sleeps == []


@pytest.mark.parametrize("body", ["<html>oops</html>", "", "[1, 2]", '"text"', "{"], ids=repr)
def test_non_json_or_non_object_body_is_retried_then_unavailable(
    mock, client: WeChatClient, body: str
) -> None:
    answer(mock, body)
    answer(mock, body)

    with pytest.raises(WeChatUnavailable):
        client.code2session(CODE)

    assert len(mock.calls) == 2


def test_non_json_body_then_success_succeeds(mock, client: WeChatClient) -> None:
    answer(mock, "<html>oops</html>")
    answer(mock, SUCCESS)

    assert client.code2session(CODE).openid == "o-openid-1"


# --- secrecy --------------------------------------------------------------------------------


def leaky_transport_error(error_type: type[Exception]) -> Exception:
    """What requests says on a timeout: the full URL, query (secret and code) included."""
    url = (
        f"/sns/jscode2session?appid={APPID}&secret={SECRET}&js_code={CODE}"
        "&grant_type=authorization_code"
    )
    return error_type(
        f"HTTPSConnectionPool(host='wechat.test', port=443): Max retries exceeded with url: "
        f"{url} (Caused by ConnectTimeoutError('Connection to {BASE}{url} timed out'))"
    )


@pytest.mark.parametrize("error_type", TRANSPORT_ERRORS, ids=lambda t: t.__name__)
def test_transport_failure_leaks_neither_secret_nor_code(
    mock, client: WeChatClient, logs, error_type: type[Exception]
) -> None:
    mock.add(responses.GET, URL, body=leaky_transport_error(error_type))
    mock.add(responses.GET, URL, body=leaky_transport_error(error_type))

    with pytest.raises(WeChatUnavailable) as info:
        client.code2session(CODE)

    shown: list[tuple[str, str]] = []
    for e in exception_chain(info.value):
        shown += [(f"str({type(e).__name__})", str(e)), (f"repr({type(e).__name__})", repr(e))]
    shown += [(f"log record {r.name}", r.getMessage()) for r in logs.records]
    shown.append(("captured log text", logs.text))
    leaks = [where for where, text in shown if SECRET in text or CODE in text]
    assert leaks == []


@pytest.mark.parametrize("error_type", TRANSPORT_ERRORS, ids=lambda t: t.__name__)
def test_transport_failure_traceback_shows_neither_secret_nor_code(
    mock, client: WeChatClient, error_type: type[Exception]
) -> None:
    mock.add(responses.GET, URL, body=leaky_transport_error(error_type))
    mock.add(responses.GET, URL, body=leaky_transport_error(error_type))

    with pytest.raises(WeChatUnavailable) as info:
        client.code2session(CODE)

    printed = "".join(traceback.format_exception(info.value))
    assert SECRET not in printed
    assert CODE not in printed


def test_errors_do_not_carry_the_session_key(mock, client: WeChatClient) -> None:
    answer(mock, {"openid": "", "session_key": SESSION_KEY})

    with pytest.raises(WeChatUnavailable) as info:
        client.code2session(CODE)

    for e in exception_chain(info.value):
        assert SESSION_KEY not in str(e)
        assert SECRET not in str(e)


# --- getuserphonenumber -----------------------------------------------------------------------

PHONE_URL = f"{BASE}/wxa/business/getuserphonenumber"
ACCESS_TOKEN = "server-access-token-93f1c0a7"
PHONE_CODE = "e31968a7f94cc5ee25fafc2aef2773f0"
OPENID = "o-openid-1"
PHONE_SUCCESS = {
    "errcode": 0,
    "errmsg": "ok",
    "phone_info": {
        "phoneNumber": "13800138000",
        "purePhoneNumber": "13800138000",
        "countryCode": "86",
        "watermark": {"timestamp": 1637744274, "appid": APPID},
    },
}


def phone_answer(mock: responses.RequestsMock, body: object, *, status: int = 200) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    mock.add(responses.POST, PHONE_URL, body=text, status=status, content_type="text/plain")


def test_phone_number_posts_code_and_openid_with_the_token(mock, client: WeChatClient) -> None:
    phone_answer(mock, PHONE_SUCCESS)

    info = client.get_phone_number(ACCESS_TOKEN, PHONE_CODE, OPENID)

    assert (info.e164, info.country_code, info.pure_phone_number) == (
        "+8613800138000",
        "86",
        "13800138000",
    )
    assert "13800138000" not in repr(info)
    request = mock.calls[0].request
    assert query_of(mock.calls[0]) == {"access_token": [ACCESS_TOKEN]}
    assert json.loads(request.body) == {"code": PHONE_CODE, "openid": OPENID}
    assert request.headers["Content-Type"] == "application/json"


def test_phone_country_code_as_a_number_too(mock, client: WeChatClient) -> None:
    info = {**PHONE_SUCCESS["phone_info"], "countryCode": 1, "purePhoneNumber": "4155550100"}
    phone_answer(mock, {**PHONE_SUCCESS, "phone_info": info})

    assert client.get_phone_number(ACCESS_TOKEN, PHONE_CODE, OPENID).e164 == "+14155550100"


@pytest.mark.parametrize(
    ("errcode", "error", "retry_after"),
    [
        (40001, WeChatTokenInvalid, 5),
        (42001, WeChatTokenInvalid, 5),
        (40014, WeChatTokenInvalid, 5),
        (40029, WeChatCodeRejected, None),
        (40003, WeChatCodeRejected, None),
        (1400001, WeChatQuotaExhausted, 3600),
        (45009, WeChatQuotaExhausted, 3600),
        (45011, WeChatRateLimited, 60),
        (48001, WeChatConfigError, None),
        (99999, WeChatUnavailable, 5),
    ],
)
def test_phone_errcodes_map_without_retry(
    mock, client: WeChatClient, sleeps, errcode: int, error: type, retry_after: int | None
) -> None:
    phone_answer(mock, {"errcode": errcode, "errmsg": "x"})

    with pytest.raises(error) as info:
        client.get_phone_number(ACCESS_TOKEN, PHONE_CODE, OPENID)

    assert getattr(info.value, "retry_after", None) == retry_after
    assert len(mock.calls) == 1 and sleeps == []
    if error is WeChatCodeRejected:
        assert isinstance(info.value, GrantError)


def test_phone_system_busy_is_retried_once_then_unavailable(mock, client: WeChatClient) -> None:
    phone_answer(mock, {"errcode": -1, "errmsg": "system error"})
    phone_answer(mock, {"errcode": -1, "errmsg": "system error"})

    with pytest.raises(WeChatUnavailable):
        client.get_phone_number(ACCESS_TOKEN, PHONE_CODE, OPENID)
    assert len(mock.calls) == 2


def test_phone_read_timeout_is_not_retried(mock, client: WeChatClient) -> None:
    """The code may have been used up, and the call paid: a retry would get 40029."""
    mock.add(responses.POST, PHONE_URL, body=requests.ReadTimeout("slow"))

    with pytest.raises(WeChatUnavailable):
        client.get_phone_number(ACCESS_TOKEN, PHONE_CODE, OPENID)
    assert len(mock.calls) == 1


@pytest.mark.parametrize(("status", "text"), [(502, "{}"), (200, "<html>busy</html>")])
def test_phone_answers_that_may_have_used_the_code_are_not_retried(
    mock, client: WeChatClient, status: int, text: str
) -> None:
    phone_answer(mock, text, status=status)

    with pytest.raises(WeChatUnavailable):
        client.get_phone_number(ACCESS_TOKEN, PHONE_CODE, OPENID)
    assert len(mock.calls) == 1


def test_phone_connection_failure_is_retried_once(mock, client: WeChatClient) -> None:
    mock.add(responses.POST, PHONE_URL, body=requests.ConnectionError("refused"))
    phone_answer(mock, PHONE_SUCCESS)

    assert client.get_phone_number(ACCESS_TOKEN, PHONE_CODE, OPENID).country_code == "86"


@pytest.mark.parametrize(
    "info",
    [
        None,
        {"countryCode": "86"},
        {"countryCode": "86", "purePhoneNumber": "138-0013"},
        {"countryCode": "086", "purePhoneNumber": "13800138000"},
        {"countryCode": "86", "purePhoneNumber": "1" * 14},
        {"countryCode": True, "purePhoneNumber": "13800138000"},
    ],
)
def test_phone_malformed_answer_is_unavailable(mock, client: WeChatClient, info) -> None:
    phone_answer(mock, {"errcode": 0, "phone_info": info})

    with pytest.raises(WeChatUnavailable):
        client.get_phone_number(ACCESS_TOKEN, PHONE_CODE, OPENID)


@pytest.mark.parametrize("error_type", TRANSPORT_ERRORS, ids=lambda t: t.__name__)
def test_phone_transport_failure_leaks_neither_token_nor_code(
    mock, client: WeChatClient, logs, error_type: type[Exception]
) -> None:
    url = f"/wxa/business/getuserphonenumber?access_token={ACCESS_TOKEN}&code={PHONE_CODE}"
    leaky = error_type(f"Max retries exceeded with url: {url}")
    mock.add(responses.POST, PHONE_URL, body=leaky)
    if error_type is not requests.exceptions.ReadTimeout:  # not retried: it may have arrived
        mock.add(responses.POST, PHONE_URL, body=leaky)

    with pytest.raises(WeChatUnavailable) as info:
        client.get_phone_number(ACCESS_TOKEN, PHONE_CODE, OPENID)

    printed = "".join(traceback.format_exception(info.value))
    shown = [printed, logs.text] + [str(e) for e in exception_chain(info.value)]
    assert not [text for text in shown if ACCESS_TOKEN in text or PHONE_CODE in text]


def test_phone_errors_carry_neither_token_nor_code_nor_number(mock, client: WeChatClient) -> None:
    for errcode in (40001, 40029, 1400001, 48001):
        phone_answer(mock, {"errcode": errcode, "errmsg": f"code {PHONE_CODE} 13800138000"})
        with pytest.raises(WeChatError) as info:
            client.get_phone_number(ACCESS_TOKEN, PHONE_CODE, OPENID)
        for e in exception_chain(info.value):
            assert ACCESS_TOKEN not in str(e) and PHONE_CODE not in str(e)
            assert "13800138000" not in str(e)


# -- stable_token (the broker's fetch) ---------------------------------------------------------

STABLE_URL = f"{BASE}/cgi-bin/stable_token"
SERVER_TOKEN = "wxat-server-access-token-0123456789abcdef"


def test_stable_token_posts_json_and_parses_the_answer(mock, client: WeChatClient) -> None:
    mock.post(STABLE_URL, json={"access_token": SERVER_TOKEN, "expires_in": 7200})
    mock.post(STABLE_URL, json={"access_token": SERVER_TOKEN, "expires_in": 7000})

    first = client.stable_token()
    forced = client.stable_token(force_refresh=True)

    assert (first.access_token, first.expires_in) == (SERVER_TOKEN, 7200)
    assert forced.expires_in == 7000
    bodies = [json.loads(call.request.body) for call in mock.calls]
    assert bodies == [
        {"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": f}
        for f in (False, True)
    ]
    assert all(call.request.method == "POST" for call in mock.calls)
    assert SERVER_TOKEN not in repr(first)


@pytest.mark.parametrize(
    ("errcode", "error"),
    [
        (45009, WeChatRateLimited),
        (45011, WeChatRateLimited),
        (40164, WeChatIpNotAllowed),
        (89503, WeChatIpNotAllowed),
        (89501, WeChatIpNotAllowed),
        (40125, WeChatConfigError),
        (40013, WeChatConfigError),
        (40001, WeChatConfigError),  # for stable_token itself: a wrong AppSecret
        (48001, WeChatUnavailable),
    ],
)
def test_stable_token_errcodes(mock, client: WeChatClient, errcode: int, error: type) -> None:
    mock.post(STABLE_URL, body=json.dumps({"errcode": errcode, "errmsg": "x"}))
    with pytest.raises(error) as raised:
        client.stable_token()
    assert len(mock.calls) == 1
    assert SECRET not in str(raised.value)


def test_stable_token_ip_allowlist_is_a_configuration_error_logged_with_a_hint(
    mock, client: WeChatClient, logs
) -> None:
    mock.post(STABLE_URL, json={"errcode": 40164, "errmsg": "invalid ip 203.0.113.9"})
    with pytest.raises(WeChatIpNotAllowed) as raised:
        client.stable_token()
    assert isinstance(raised.value, ConfigurationError)
    events = [json.loads(r.getMessage()) for r in logs.records if r.name == LOGGER_NAME]
    assert events[-1]["errcode"] == 40164 and "allowlist" in events[-1]["hint"]
    assert all(SECRET not in r.getMessage() for r in logs.records)


def test_stable_token_busy_once_is_retried(mock, client: WeChatClient, sleeps) -> None:
    mock.post(STABLE_URL, json={"errcode": -1, "errmsg": "system error"})
    mock.post(STABLE_URL, json={"access_token": SERVER_TOKEN, "expires_in": 7200})
    assert client.stable_token().access_token == SERVER_TOKEN
    assert len(sleeps) == 1


def test_a_forced_refresh_is_never_retried(mock, client: WeChatClient, sleeps) -> None:
    mock.post(STABLE_URL, json={"errcode": -1, "errmsg": "system error"})
    with pytest.raises(WeChatUnavailable):
        client.stable_token(force_refresh=True)
    assert len(mock.calls) == 1 and sleeps == []


def test_stable_token_busy_twice_is_unavailable(mock, client: WeChatClient) -> None:
    for _ in range(2):
        mock.post(STABLE_URL, json={"errcode": -1, "errmsg": "system error"})
    with pytest.raises(WeChatUnavailable):
        client.stable_token()
    assert len(mock.calls) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in": 7200},
        {"access_token": "", "expires_in": 7200},
        {"access_token": SERVER_TOKEN},
        {"access_token": SERVER_TOKEN, "expires_in": "7200"},
        {"access_token": SERVER_TOKEN, "expires_in": True},
        {"access_token": SERVER_TOKEN, "expires_in": 5},
        {"access_token": 12, "expires_in": 7200},
    ],
)
def test_stable_token_unusable_answer_is_unavailable(mock, client: WeChatClient, body) -> None:
    mock.post(STABLE_URL, json=body)
    with pytest.raises(WeChatUnavailable) as raised:
        client.stable_token()
    assert SERVER_TOKEN not in str(raised.value)


@pytest.mark.parametrize("errcode", [40001, 42001, 40014])
def test_check_token_errcode_raises_token_invalid(errcode: int) -> None:
    with pytest.raises(WeChatTokenInvalid):
        check_token_errcode({"errcode": errcode, "errmsg": "invalid credential"})


@pytest.mark.parametrize("body", [{}, {"errcode": 0}, {"errcode": 40029}, {"errcode": True}])
def test_check_token_errcode_lets_other_answers_through(body: dict) -> None:
    check_token_errcode(body)
