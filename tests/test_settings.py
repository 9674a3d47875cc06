"""Settings: every variable read from the environment, the contract's defaults, validation."""

from __future__ import annotations

import pytest

from chalicelib.budgets import DYNAMODB
from chalicelib.errors import ConfigurationError, StoreUnavailable
from chalicelib.settings import Settings, minimum_refresh_grace

TTL_VARIABLES = [
    "AUTH_ACCESS_TTL",
    "AUTH_REFRESH_IDLE_TTL",
    "AUTH_REFRESH_ABSOLUTE_TTL",
    "AUTH_LOGIN_REPLAY_TTL",
]

EVERY_VARIABLE = {
    "WECHAT_APPID": "wx0123456789abcdef",
    "WECHAT_SECRET": "env-secret",
    "WECHAT_API_BASE": "https://wechat.example",
    "AUTH_TABLE_NAME": "wxauth-prod",
    "AUTH_ISSUER": "https://auth.example",
    "AUTH_AUDIENCE": "wxauth-api",
    "AUTH_ACCESS_TTL": "600",
    "AUTH_REFRESH_IDLE_TTL": "86400",
    "AUTH_REFRESH_ABSOLUTE_TTL": "172800",
    "AUTH_REFRESH_GRACE": "20",
    "AUTH_LOGIN_REPLAY_TTL": "120",
    "AUTH_SIGNING_KEYS_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys",
    "AUTH_SIGNING_KEYS_FILE": "/etc/wxauth/keys.json",
    "AUTH_PHONE_CONFLICT": "move",
    "AUTH_PHONE_CLAIM": "true",
    "AUTH_MAX_SESSIONS_PER_USER": "5",
    "AUTH_MAX_SESSIONS_SCOPE": "app",
}


def test_defaults_match_the_contract() -> None:
    settings = Settings.from_env({})

    assert settings.access_ttl == 1800
    assert settings.refresh_idle_ttl == 2_592_000
    assert settings.refresh_absolute_ttl == 7_776_000
    assert settings.refresh_grace == 30
    assert settings.wechat_api_base == "https://api.weixin.qq.com"
    assert settings.wechat_appid == "wx-local-appid"
    assert settings.wechat_secret  # the local placeholder
    assert settings.wechat_secret_arn is None
    assert settings.signing_keys_arn is None
    assert settings.table_name and settings.issuer and settings.audience


def test_from_env_defaults_equal_the_dataclass_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(EVERY_VARIABLE)

    assert settings == Settings(
        wechat_appid="wx0123456789abcdef",
        wechat_secret="env-secret",
        wechat_secret_arn=None,
        wechat_api_base="https://wechat.example",
        table_name="wxauth-prod",
        issuer="https://auth.example",
        audience="wxauth-api",
        access_ttl=600,
        refresh_idle_ttl=86400,
        refresh_absolute_ttl=172800,
        refresh_grace=20,
        login_replay_ttl=120,
        signing_keys_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:keys",
        signing_keys_file="/etc/wxauth/keys.json",
        phone_conflict="move",
        phone_claim=True,
        max_sessions_per_user=5,
        max_sessions_scope="app",
    )


def test_without_an_argument_the_process_environment_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in EVERY_VARIABLE.items():
        monkeypatch.setenv(name, value)

    assert Settings.from_env() == Settings.from_env(EVERY_VARIABLE)


def test_empty_variables_fall_back_to_the_defaults() -> None:
    empty = {name: "" for name in EVERY_VARIABLE if name != "WECHAT_SECRET"}

    assert Settings.from_env(empty) == Settings()


def test_secret_arn_means_no_secret_from_the_environment() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wechat"

    settings = Settings.from_env({"WECHAT_SECRET_ARN": arn, "WECHAT_SECRET": "env-secret"})

    assert settings.wechat_secret_arn == arn
    assert settings.wechat_secret is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://wechat.example/", "https://wechat.example"),
        ("https://wechat.example//", "https://wechat.example"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("https://wechat.example/prefix/", "https://wechat.example/prefix"),
    ],
)
def test_trailing_slash_is_stripped_from_the_api_base(raw: str, expected: str) -> None:
    assert Settings.from_env({"WECHAT_API_BASE": raw}).wechat_api_base == expected


@pytest.mark.parametrize("name", [*TTL_VARIABLES, "AUTH_REFRESH_GRACE"])
@pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "30s", "0x10", " "], ids=repr)
def test_non_integer_durations_are_a_configuration_error(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({name: raw})

    assert name in str(info.value)


@pytest.mark.parametrize("name", [*TTL_VARIABLES, "AUTH_REFRESH_GRACE"])
def test_negative_durations_are_a_configuration_error(name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({name: "-1"})

    assert name in str(info.value)


@pytest.mark.parametrize("name", TTL_VARIABLES)
def test_zero_ttl_is_a_configuration_error(name: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({name: "0"})


def test_zero_grace_is_allowed() -> None:
    assert Settings.from_env({"AUTH_REFRESH_GRACE": "0"}).refresh_grace == 0


def test_the_minimum_grace_covers_the_dynamodb_wait_and_retry_after() -> None:
    """A refresh rotates, waits on DynamoDB, answers 503 + Retry-After; the retry must be in grace:
    12 s of DynamoDB, 2 s of Retry-After, 1 s of whole-second clocks, 1 s of round trips."""
    assert DYNAMODB.worst_case == 12
    assert StoreUnavailable.retry_after == 2
    assert minimum_refresh_grace() == 16
    assert Settings().refresh_grace >= minimum_refresh_grace()  # the default respects the rule


@pytest.mark.parametrize("grace", [1, 2, 5, 10, 15])
def test_a_grace_shorter_than_a_stalled_refresh_is_a_configuration_error(grace: int) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"AUTH_REFRESH_GRACE": str(grace)})

    message = str(info.value)
    assert "AUTH_REFRESH_GRACE" in message and "at least 16 s" in message
    assert "0 (no grace)" in message


@pytest.mark.parametrize("grace", [16, 30, 300])
def test_a_grace_covering_a_stalled_refresh_is_allowed(grace: int) -> None:
    assert Settings.from_env({"AUTH_REFRESH_GRACE": str(grace)}).refresh_grace == grace


def test_absolute_ttl_shorter_than_idle_ttl_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({"AUTH_REFRESH_IDLE_TTL": "1000", "AUTH_REFRESH_ABSOLUTE_TTL": "999"})


def test_absolute_ttl_below_the_default_idle_ttl_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({"AUTH_REFRESH_ABSOLUTE_TTL": "86400"})


def test_absolute_ttl_equal_to_idle_ttl_is_allowed() -> None:
    settings = Settings.from_env(
        {"AUTH_REFRESH_IDLE_TTL": "1000", "AUTH_REFRESH_ABSOLUTE_TTL": "1000"}
    )

    assert settings.refresh_idle_ttl == settings.refresh_absolute_ttl == 1000


def test_phone_settings_default_to_refuse_and_no_claim() -> None:
    settings = Settings.from_env({})
    assert (settings.phone_conflict, settings.phone_claim) == ("refuse", False)


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("1", True), ("On", True), ("no", False)]
)
def test_phone_claim_flag_values(raw: str, expected: bool) -> None:
    assert Settings.from_env({"AUTH_PHONE_CLAIM": raw}).phone_claim is expected


@pytest.mark.parametrize(
    ("name", "raw"), [("AUTH_PHONE_CONFLICT", "merge"), ("AUTH_PHONE_CLAIM", "maybe")]
)
def test_bad_phone_settings_are_a_configuration_error(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: raw})


# -- issue 21: the jscode2session breaker's thresholds ---------------------------------------


def test_breaker_settings_default_to_half_of_twenty_calls_in_ten_seconds() -> None:
    settings = Settings.from_env({})
    assert (
        settings.breaker_failure_rate,
        settings.breaker_min_calls,
        settings.breaker_window,
        settings.breaker_probes,
    ) == (50, 20, 10, 3)


def test_breaker_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "AUTH_BREAKER_FAILURE_RATE": "75",
            "AUTH_BREAKER_MIN_CALLS": "100",
            "AUTH_BREAKER_WINDOW": "30",
            "AUTH_BREAKER_PROBES": "5",
        }
    )
    assert (
        settings.breaker_failure_rate,
        settings.breaker_min_calls,
        settings.breaker_window,
        settings.breaker_probes,
    ) == (75, 100, 30, 5)


# -- the cap on sessions per user (issue 21) ---------------------------------------------------


def test_the_session_cap_is_off_by_default_and_counts_per_user() -> None:
    settings = Settings.from_env({})
    assert (settings.max_sessions_per_user, settings.max_sessions_scope) == (None, "user")
    assert Settings.from_env({"AUTH_MAX_SESSIONS_PER_USER": ""}).max_sessions_per_user is None


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("5", 5), (" 12 ", 12), ("1000", 1000)])
def test_the_session_cap_values(raw: str, expected: int) -> None:
    assert Settings.from_env({"AUTH_MAX_SESSIONS_PER_USER": raw}).max_sessions_per_user == expected


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("AUTH_BREAKER_FAILURE_RATE", "0"),
        ("AUTH_BREAKER_FAILURE_RATE", "101"),
        ("AUTH_BREAKER_FAILURE_RATE", "0.5"),
        ("AUTH_BREAKER_MIN_CALLS", "0"),
        ("AUTH_BREAKER_WINDOW", "4"),
        ("AUTH_BREAKER_WINDOW", "601"),
        ("AUTH_BREAKER_PROBES", "-1"),
    ],
)
def test_bad_breaker_settings_are_a_configuration_error(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: raw})


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("AUTH_MAX_SESSIONS_PER_USER", "0"),
        ("AUTH_MAX_SESSIONS_PER_USER", "-1"),
        ("AUTH_MAX_SESSIONS_PER_USER", "1001"),
        ("AUTH_MAX_SESSIONS_PER_USER", "3.5"),
        ("AUTH_MAX_SESSIONS_PER_USER", "five"),
        ("AUTH_MAX_SESSIONS_SCOPE", "device"),
    ],
)
def test_bad_session_cap_settings_are_a_configuration_error(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: raw})


@pytest.mark.parametrize(("raw", "expected"), [("app", "app"), ("USER", "user"), ("", "user")])
def test_the_session_cap_scope(raw: str, expected: str) -> None:
    assert Settings.from_env({"AUTH_MAX_SESSIONS_SCOPE": raw}).max_sessions_scope == expected


# -- issue 22: replays without a login nonce, the client cache --------------------------------

SECURITY_TOKENS = {
    "AUTH_LOGIN_REPLAY_WITHOUT_NONCE": "login_replay_without_nonce",
    "AUTH_CLIENTS_CACHE_TTL": "clients_cache_ttl",
}


def test_the_issue_22_settings_default_to_60_seconds() -> None:
    settings = Settings.from_env({})
    assert (settings.login_replay_without_nonce, settings.clients_cache_ttl) == (60, 60)


@pytest.mark.parametrize(("name", "field"), SECURITY_TOKENS.items())
@pytest.mark.parametrize("raw", ["0", "5", "300"])
def test_the_issue_22_settings_are_seconds_zero_included(name: str, field: str, raw: str) -> None:
    assert getattr(Settings.from_env({name: raw}), field) == int(raw)


@pytest.mark.parametrize("name", SECURITY_TOKENS)
@pytest.mark.parametrize("raw", ["-1", "1.5", "soon"])
def test_the_issue_22_settings_refuse_what_is_not_seconds(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: raw})


# -- issue 24, item 2: website sign-in ------------------------------------------------------------


def test_the_web_login_settings_default_to_wechats_open_platform_and_60_seconds() -> None:
    settings = Settings.from_env({})
    assert settings.wechat_open_base == "https://open.weixin.qq.com"
    assert settings.authorization_code_ttl == 60


def test_the_web_login_settings_are_read() -> None:
    settings = Settings.from_env(
        {"WECHAT_OPEN_BASE": "http://127.0.0.1:9000/", "AUTH_AUTHORIZATION_CODE_TTL": "600"}
    )
    assert settings.wechat_open_base == "http://127.0.0.1:9000"
    assert settings.authorization_code_ttl == 600


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("AUTH_AUTHORIZATION_CODE_TTL", "59"),
        ("AUTH_AUTHORIZATION_CODE_TTL", "601"),
        ("AUTH_AUTHORIZATION_CODE_TTL", "soon"),
        ("WECHAT_OPEN_BASE", "open.weixin.qq.com"),
    ],
)
def test_bad_web_login_settings_are_a_configuration_error(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: raw})


# -- issue 25, items 4 and 5: the profile and encrypted data --------------------------------


def test_profile_settings_default_to_wechats_avatar_hosts_and_nothing_on() -> None:
    settings = Settings.from_env({})
    assert settings.avatar_url_hosts == ("thirdwx.qlogo.cn", "wx.qlogo.cn")
    assert not settings.profile_claim and not settings.profile_security_check
    assert settings.decrypt_max_age == 300


def test_profile_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "AUTH_PROFILE_CLAIM": "true",
            "AUTH_PROFILE_SECURITY_CHECK": "1",
            "AUTH_AVATAR_URL_HOSTS": " CDN.example.com, *.img.example.com ",
            "AUTH_DECRYPT_MAX_AGE": "600",
        }
    )
    assert settings.profile_claim and settings.profile_security_check
    assert settings.avatar_url_hosts == ("cdn.example.com", "*.img.example.com")
    assert settings.decrypt_max_age == 600
    assert Settings.from_env({"AUTH_AVATAR_URL_HOSTS": "none"}).avatar_url_hosts == ()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("AUTH_AVATAR_URL_HOSTS", "https://cdn.example.com"),
        ("AUTH_AVATAR_URL_HOSTS", "localhost"),
        ("AUTH_AVATAR_URL_HOSTS", "*"),
        ("AUTH_AVATAR_URL_HOSTS", "a.example.com,,b.example.com"),
        ("AUTH_AVATAR_URL_HOSTS", "cdn.example.com:8443"),
        ("AUTH_DECRYPT_MAX_AGE", "5"),
        ("AUTH_DECRYPT_MAX_AGE", "86401"),
        ("AUTH_DECRYPT_MAX_AGE", "soon"),
        ("AUTH_PROFILE_CLAIM", "maybe"),
    ],
)
def test_bad_profile_settings_are_a_configuration_error(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({name: raw})
