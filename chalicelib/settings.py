"""Settings, read once from the process environment (docs/operators.md, "Settings")."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from chalicelib.budgets import DYNAMODB, hook_budget
from chalicelib.errors import ConfigurationError, StoreUnavailable
from chalicelib.setting_groups import (  # noqa: F401 - re-exported: settings' constants
    AUTHORIZATION_CODE_TTL_BOUNDS,
    DECRYPT_MAX_AGE_BOUNDS,
    DEFAULT_AUTHORIZATION_CODE_TTL,
    DEFAULT_AVATAR_URL_HOSTS,
    DEFAULT_CLIENTS_CACHE_TTL,
    DEFAULT_DECRYPT_MAX_AGE,
    DEFAULT_DELETION_COOLDOWN,
    DEFAULT_LOGIN_REPLAY_WITHOUT_NONCE,
    DEFAULT_WECHAT_OPEN_BASE,
    DELETION_COOLDOWN_MAX,
    LOCAL_TOMBSTONE_KEY,
    MIN_TOMBSTONE_KEY,
    deletion,
    profile,
    security_tokens,
    web_login,
)
from chalicelib.setting_values import (
    MAX_COUNT,
    ComponentKeys,
    Limit,
    choice,
    component_platform,
    device_values,
    flag,
    is_lambda_arn,
    limit_or_off,
    parse_limit,
    positive_int,
)

DEFAULT_WECHAT_API_BASE = "https://api.weixin.qq.com"
LOCAL_APPID = "wx-local-appid"
LOCAL_SECRET = "wx-local-placeholder-secret"  # noqa: S105 - a documented placeholder, not a secret
# A refresh rotates at `now`, waits on DynamoDB at most DYNAMODB.worst_case seconds, then may
# answer 503 with `Retry-After: StoreUnavailable.retry_after`; the client's retry must still find
# the rotated token in its grace window. 2 s more: times are whole seconds (1), and the
# client's round trips (1).
GRACE_MARGIN = 2
PHONE_CONFLICT_POLICIES = ("refuse", "move")  # chalicelib/phone.py
PHONE_LOGIN_POLICIES = ("refuse", "link")  # issue 24, item 1: chalicelib/phone_login.py
# AUTH_EVENT_BUS: an EventBridge bus name, or its ARN (PutEvents' EventBusName takes either).
_EVENT_BUS_RE = re.compile(
    r"[A-Za-z0-9._/-]{1,256}"
    r"|arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus/[A-Za-z0-9._/-]{1,256}"
)
# Abuse limits (chalicelib/limits.py), by name.
LOGIN_PER_IP = "login_ip"
LOGIN_PER_OPENID = "login_openid"
REFRESH_PER_SESSION = "refresh_session"
LOGIN_PER_IPV6_48 = "login_ipv6_48"  # issue #22, item 4: an IPv6 login's /48 too
DEVICE_PER_IP = "device_ip"  # issue 24, item 3: device authorizations per IP
DEVICE_LOOKUP_PER_USER = "device_user"  # and user codes a user looks up, confirms or denies
DECRYPT_CHECK_PER_SESSION = "decrypt_check"  # issue 25: WeChat checksessions of bad data
# The setting of each limit (docs/operators.md, "Abuse limits").
LIMIT_SETTINGS = {
    LOGIN_PER_IP: "AUTH_LIMIT_LOGIN_PER_IP",
    LOGIN_PER_OPENID: "AUTH_LIMIT_LOGIN_PER_OPENID",
    REFRESH_PER_SESSION: "AUTH_LIMIT_REFRESH_PER_SESSION",
    LOGIN_PER_IPV6_48: "AUTH_LIMIT_LOGIN_PER_IPV6_48",
    DEVICE_PER_IP: "AUTH_LIMIT_DEVICE_PER_IP",
    DEVICE_LOOKUP_PER_USER: "AUTH_LIMIT_DEVICE_LOOKUP_PER_USER",
    DECRYPT_CHECK_PER_SESSION: "AUTH_LIMIT_DECRYPT_CHECK_PER_SESSION",
}
# The pre-token hook (chalicelib/tokens/claims.py): its timeout in ms, and what a failure does.
TOKEN_HOOK_TIMEOUT_MS_MAX = 5000
TOKEN_HOOK_ON_ERROR = ("issue", "refuse")
# The cap on live sessions per user (issue 21 item 6, issue 25 item 3; chalicelib/session_cap.py).
MAX_SESSIONS_LIMIT = 1000
MAX_SESSIONS_SCOPES = ("user", "app")
# Issue 24, item 3: the device limits are on unless set to "off" (RFC 8628 §5.1, §5.2).
DEVICE_LIMIT_DEFAULTS = {DEVICE_PER_IP: Limit(20, 60), DEVICE_LOOKUP_PER_USER: Limit(30, 600)}
DECRYPT_CHECK_DEFAULT = Limit(10, 600)  # on unless "off", as the device limits


def minimum_refresh_grace() -> int:
    """The shortest AUTH_REFRESH_GRACE other than 0 (no grace at all): 16 s by default."""
    return math.ceil(DYNAMODB.worst_case + StoreUnavailable.retry_after) + GRACE_MARGIN


@dataclass(frozen=True)
class Settings:
    """Every knob of the service; built by `from_env` and passed down explicitly."""

    wechat_appid: str = LOCAL_APPID
    wechat_secret: str | None = LOCAL_SECRET
    wechat_secret_arn: str | None = None
    wechat_api_base: str = DEFAULT_WECHAT_API_BASE
    table_name: str = "wxauth"
    issuer: str = "http://localhost:8000"
    audience: str = "wxauth"
    access_ttl: int = 1800
    refresh_idle_ttl: int = 2_592_000
    refresh_absolute_ttl: int = 7_776_000
    refresh_grace: int = 30
    login_replay_ttl: int = 300
    signing_keys_arn: str | None = None
    signing_keys_file: str = ".wxauth/signing-keys.json"
    phone_conflict: str = "refuse"  # or "move" (docs/miniprogram.md, "Phone number binding")
    phone_claim: bool = False
    # Abuse limits (chalicelib/limits.py), `<count>/<seconds>`; None (unset): no limit.
    limit_login_per_ip: Limit | None = None
    limit_login_per_openid: Limit | None = None
    limit_refresh_per_session: Limit | None = None
    apps_cache_ttl: int = 60  # seconds a container keeps the APP items (chalicelib/identity)
    event_bus: str | None = None  # AUTH_EVENT_BUS; None: nothing published (chalicelib/events.py)
    event_log: bool = False  # AUTH_EVENT_LOG: print each event as a log line (the local server)
    token_hook_arn: str | None = None  # a Lambda function ARN; None: no pre-token hook
    token_hook_timeout_ms: int = 1000
    token_hook_on_error: str = "issue"  # noqa: S105 - or "refuse" (docs/backend.md, "Custom claims")
    # Issue 21, the jscode2session breaker (chalicelib/wechat/breaker.py): it opens when at
    # least `breaker_failure_rate` % of at least `breaker_min_calls` calls in the last
    # `breaker_window` seconds failed; `breaker_probes` successful calls close it again.
    breaker_failure_rate: int = 50
    breaker_min_calls: int = 20
    breaker_window: int = 10
    breaker_probes: int = 3
    # Sessions per user (issue 21 item 6, issue 25 item 3): AUTH_MAX_SESSIONS_PER_USER (None:
    # no cap, no request) and AUTH_MAX_SESSIONS_SCOPE ("app": count the logging-in app's only).
    max_sessions_per_user: int | None = None
    max_sessions_scope: str = "user"
    # Issue #22, item 4 (chalicelib/limits.py): the /48 tier of IPv6 logins (None: 16 times
    # AUTH_LIMIT_LOGIN_PER_IP), and the origin secret that makes CloudFront's viewer address
    # trusted (a header name, lowercased; the secret itself, or its Secrets Manager ARN).
    limit_login_per_ipv6_48: Limit | None = None
    origin_secret_header: str | None = None
    origin_secret: str | None = field(default=None, repr=False)
    origin_secret_arn: str | None = None
    # Issue 22 (security-tokens), item 1: seconds after its first use in which a mini-program's
    # code may be replayed without the first caller's `login_nonce`; item 6: seconds a
    # container keeps an OAuth client it authenticated (0: none).
    login_replay_without_nonce: int = DEFAULT_LOGIN_REPLAY_WITHOUT_NONCE
    clients_cache_ttl: int = DEFAULT_CLIENTS_CACHE_TTL
    device_page: str | None = None  # issue 24, item 3: scan-to-login (device_values)
    device_env_version: str = "release"
    limit_device_per_ip: Limit | None = DEVICE_LIMIT_DEFAULTS[DEVICE_PER_IP]
    limit_device_lookup_per_user: Limit | None = DEVICE_LIMIT_DEFAULTS[DEVICE_LOOKUP_PER_USER]
    limit_decrypt_check_per_session: Limit | None = DECRYPT_CHECK_DEFAULT
    # Issue 24, item 2 (website sign-in, chalicelib/weblogin/): WeChat's open platform, where a
    # browser is sent to scan a QR code (`connect/qrconnect`; the local server's fake WeChat),
    # and the seconds an authorization code may be redeemed in (60 to 600).
    wechat_open_base: str = DEFAULT_WECHAT_OPEN_BASE
    authorization_code_ttl: int = DEFAULT_AUTHORIZATION_CODE_TTL
    # Issue 25, items 4 and 5: AUTH_PROFILE_CLAIM (`nickname`, `picture` on access tokens),
    # AUTH_PROFILE_SECURITY_CHECK (a nickname through WeChat's msg_sec_check before it is
    # stored), AUTH_AVATAR_URL_HOSTS (the hosts an avatar URL may name; empty: none),
    # AUTH_DECRYPT_MAX_AGE (seconds a decrypted encryptedData's watermark may be old).
    profile_claim: bool = False
    profile_security_check: bool = False
    avatar_url_hosts: tuple[str, ...] = DEFAULT_AVATAR_URL_HOSTS
    decrypt_max_age: int = DEFAULT_DECRYPT_MAX_AGE
    # Issue 25, item 1 (chalicelib/deletion.py): AUTH_DELETION_COOLDOWN, the cooling-off
    # period in seconds (0 to 15 days); the tombstones' HMAC key: AUTH_TOMBSTONE_KEY_ARN
    # (Secrets Manager, the stack's generated secret) or AUTH_TOMBSTONE_KEY (its value; unset:
    # a local placeholder).
    deletion_cooldown: int = DEFAULT_DELETION_COOLDOWN
    tombstone_key: str | None = field(default=LOCAL_TOMBSTONE_KEY, repr=False)
    tombstone_key_arn: str | None = None
    # Issue 24, item 1 (chalicelib/phone_login.py): AUTH_PHONE_LOGIN, a new openid whose number
    # is another user's: `refuse` (AUTH_PHONE_CONFLICT's rule) or `link` (it joins that user).
    # Item 4 (chalicelib/wechat/component.py): the third-party platform (WECHAT_COMPONENT_*),
    # its secret, message token and EncodingAESKey from WECHAT_COMPONENT_SECRET_ARN in AWS.
    phone_login: str = "refuse"
    component_appid: str | None = None
    component_secret_arn: str | None = None
    component: ComponentKeys | None = field(default=None, repr=False)  # local values

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        secret_arn = env.get("WECHAT_SECRET_ARN") or None
        settings = cls(
            wechat_appid=env.get("WECHAT_APPID") or defaults.wechat_appid,
            # With a Secrets Manager ARN the secret is fetched at first use, never from env.
            wechat_secret=None if secret_arn else (env.get("WECHAT_SECRET") or LOCAL_SECRET),
            wechat_secret_arn=secret_arn,
            wechat_api_base=(env.get("WECHAT_API_BASE") or DEFAULT_WECHAT_API_BASE).rstrip("/"),
            table_name=env.get("AUTH_TABLE_NAME") or defaults.table_name,
            issuer=env.get("AUTH_ISSUER") or defaults.issuer,
            audience=env.get("AUTH_AUDIENCE") or defaults.audience,
            access_ttl=positive_int(env, "AUTH_ACCESS_TTL", defaults.access_ttl),
            refresh_idle_ttl=positive_int(env, "AUTH_REFRESH_IDLE_TTL", defaults.refresh_idle_ttl),
            refresh_absolute_ttl=positive_int(
                env, "AUTH_REFRESH_ABSOLUTE_TTL", defaults.refresh_absolute_ttl
            ),
            refresh_grace=positive_int(
                env, "AUTH_REFRESH_GRACE", defaults.refresh_grace, zero=True
            ),
            login_replay_ttl=positive_int(env, "AUTH_LOGIN_REPLAY_TTL", defaults.login_replay_ttl),
            signing_keys_arn=env.get("AUTH_SIGNING_KEYS_ARN") or None,
            signing_keys_file=env.get("AUTH_SIGNING_KEYS_FILE") or defaults.signing_keys_file,
            phone_conflict=choice(
                env, "AUTH_PHONE_CONFLICT", defaults.phone_conflict, PHONE_CONFLICT_POLICIES
            ),
            phone_claim=flag(env, "AUTH_PHONE_CLAIM", defaults.phone_claim),
            limit_login_per_ip=_limit(env, LOGIN_PER_IP),
            limit_login_per_openid=_limit(env, LOGIN_PER_OPENID),
            limit_refresh_per_session=_limit(env, REFRESH_PER_SESSION),
            apps_cache_ttl=positive_int(
                env, "AUTH_APPS_CACHE_TTL", defaults.apps_cache_ttl, zero=True
            ),
            event_bus=_event_bus(env),
            event_log=flag(env, "AUTH_EVENT_LOG", defaults.event_log),
            **_token_hook(env, defaults),
            **_breaker(env, defaults),
            **_max_sessions(env, defaults),
            limit_login_per_ipv6_48=_limit(env, LOGIN_PER_IPV6_48),
            **_origin_secret(env),
            **security_tokens(env),
            **web_login(env),
            **profile(env),
            **deletion(env),
            phone_login=choice(env, "AUTH_PHONE_LOGIN", defaults.phone_login, PHONE_LOGIN_POLICIES),
            **component_platform(env),
            **device_values(env, {LIMIT_SETTINGS[k]: v for k, v in DEVICE_LIMIT_DEFAULTS.items()}),
            limit_decrypt_check_per_session=limit_or_off(
                env, LIMIT_SETTINGS[DECRYPT_CHECK_PER_SESSION], DECRYPT_CHECK_DEFAULT
            ),
        )
        if settings.refresh_absolute_ttl < settings.refresh_idle_ttl:
            raise ConfigurationError(
                "AUTH_REFRESH_ABSOLUTE_TTL must be at least AUTH_REFRESH_IDLE_TTL"
            )
        if 0 < settings.refresh_grace < minimum_refresh_grace():
            raise ConfigurationError(
                f"AUTH_REFRESH_GRACE must be 0 (no grace) or at least {minimum_refresh_grace()}"
                f" s: a refresh waits up to {DYNAMODB.worst_case:g} s on DynamoDB, then asks the"
                f" client to retry after {StoreUnavailable.retry_after} s"
                " (docs/operators.md, Settings)"
            )
        if settings.token_hook_arn and 0 < settings.refresh_grace < minimum_hook_grace(
            settings.token_hook_timeout_ms
        ):
            raise ConfigurationError(
                "with AUTH_TOKEN_HOOK_ARN, AUTH_REFRESH_GRACE must be 0 or at least"
                f" {minimum_hook_grace(settings.token_hook_timeout_ms)} s: a refresh may also"
                " wait for the hook (docs/operators.md, Settings)"
            )
        return settings

    def limits(self) -> dict[str, Limit | None]:
        """The abuse limits by name (chalicelib/limits.py); None: that limit is off."""
        per_ip, wide = self.limit_login_per_ip, self.limit_login_per_ipv6_48
        if wide is None and per_ip is not None:  # unset: 16 /64s' worth, in the same window
            wide = Limit(min(MAX_COUNT, IPV6_48_FACTOR * per_ip.count), per_ip.seconds)
        return {
            LOGIN_PER_IP: per_ip,
            LOGIN_PER_IPV6_48: wide,
            LOGIN_PER_OPENID: self.limit_login_per_openid,
            REFRESH_PER_SESSION: self.limit_refresh_per_session,
            DEVICE_PER_IP: self.limit_device_per_ip,
            DEVICE_LOOKUP_PER_USER: self.limit_device_lookup_per_user,
            DECRYPT_CHECK_PER_SESSION: self.limit_decrypt_check_per_session,
        }


def _limit(env: Mapping[str, str], name: str) -> Limit | None:
    variable = LIMIT_SETTINGS[name]
    return parse_limit(variable, env.get(variable))


IPV6_48_FACTOR = 16  # AUTH_LIMIT_LOGIN_PER_IPV6_48 unset: this many times the per-IP count
MIN_ORIGIN_SECRET = 32  # characters: a shared secret an attacker must not guess
_HEADER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
# Headers API Gateway, CloudFront or HTTP give a meaning: never the origin secret's.
_RESERVED_HEADERS = frozenset({"host", "authorization", "content-type", "content-length"})


def _origin_secret(env: Mapping[str, str]) -> dict[str, str | None]:
    """AUTH_ORIGIN_SECRET_HEADER with AUTH_ORIGIN_SECRET_ARN or AUTH_ORIGIN_SECRET (issue
    #22, item 4): all unset, or a header name and one secret. Errors never quote the secret."""
    header = (env.get("AUTH_ORIGIN_SECRET_HEADER") or "").strip().lower() or None
    arn = (env.get("AUTH_ORIGIN_SECRET_ARN") or "").strip() or None
    secret = env.get("AUTH_ORIGIN_SECRET") or None
    if header is None:
        if arn or secret:
            raise ConfigurationError(
                "AUTH_ORIGIN_SECRET(_ARN) needs AUTH_ORIGIN_SECRET_HEADER: the header"
                " CloudFront sends it in"
            )
        return {}
    if (
        not _HEADER_NAME_RE.fullmatch(header)
        or header in _RESERVED_HEADERS
        or header.startswith(("cloudfront-", "x-amz", "x-forwarded-"))
    ):
        raise ConfigurationError(
            "AUTH_ORIGIN_SECRET_HEADER must be a header name of your own (letters, digits, -),"
            " e.g. X-Origin-Verify; not one of CloudFront's, AWS's or HTTP's"
        )
    if arn is None and secret is None:
        raise ConfigurationError(
            "AUTH_ORIGIN_SECRET_HEADER needs AUTH_ORIGIN_SECRET_ARN (Secrets Manager) or, for a"
            " local server, AUTH_ORIGIN_SECRET"
        )
    if arn is None and secret is not None and len(secret) < MIN_ORIGIN_SECRET:
        raise ConfigurationError(
            f"AUTH_ORIGIN_SECRET must be at least {MIN_ORIGIN_SECRET} characters (random)"
        )
    return {
        "origin_secret_header": header,
        "origin_secret": None if arn else secret,
        "origin_secret_arn": arn,
    }


def _event_bus(env: Mapping[str, str]) -> str | None:
    raw = (env.get("AUTH_EVENT_BUS") or "").strip()
    if not raw:
        return None
    if not _EVENT_BUS_RE.fullmatch(raw):
        raise ConfigurationError(
            "AUTH_EVENT_BUS must be an EventBridge bus name (letters, digits, . _ / -) or its"
            " ARN (arn:aws:events:<region>:<account>:event-bus/<name>)"
        )
    return raw


def minimum_hook_grace(timeout_ms: int) -> int:
    """minimum_refresh_grace() plus the longest a hook call can take (connect + answer)."""
    return minimum_refresh_grace() + math.ceil(hook_budget(timeout_ms).worst_case)


def _token_hook(env: Mapping[str, str], defaults: Settings) -> dict[str, object]:
    """AUTH_TOKEN_HOOK_ARN, AUTH_TOKEN_HOOK_TIMEOUT_MS (1 to 5000), AUTH_TOKEN_HOOK_ON_ERROR."""
    arn = (env.get("AUTH_TOKEN_HOOK_ARN") or "").strip() or None
    if arn is not None and not is_lambda_arn(arn):
        raise ConfigurationError(
            "AUTH_TOKEN_HOOK_ARN must be a Lambda function ARN"
            " (arn:aws:lambda:<region>:<account>:function:<name>[:<alias or version>])"
        )
    timeout = positive_int(env, "AUTH_TOKEN_HOOK_TIMEOUT_MS", defaults.token_hook_timeout_ms)
    if timeout > TOKEN_HOOK_TIMEOUT_MS_MAX:
        raise ConfigurationError(
            f"AUTH_TOKEN_HOOK_TIMEOUT_MS must be at most {TOKEN_HOOK_TIMEOUT_MS_MAX}"
        )
    return {
        "token_hook_arn": arn,
        "token_hook_timeout_ms": timeout,
        "token_hook_on_error": choice(
            env, "AUTH_TOKEN_HOOK_ON_ERROR", defaults.token_hook_on_error, TOKEN_HOOK_ON_ERROR
        ),
    }


# Issue 21: AUTH_BREAKER_* (docs/operators.md, "Abuse limits and the WeChat circuit breaker").
BREAKER_BOUNDS = {
    "AUTH_BREAKER_FAILURE_RATE": ("breaker_failure_rate", 1, 100),  # percent
    "AUTH_BREAKER_MIN_CALLS": ("breaker_min_calls", 1, 100_000),
    "AUTH_BREAKER_WINDOW": ("breaker_window", 5, 600),  # seconds
    "AUTH_BREAKER_PROBES": ("breaker_probes", 1, 100),
}


def _breaker(env: Mapping[str, str], defaults: Settings) -> dict[str, int]:
    values = {}
    for variable, (field_name, low, high) in BREAKER_BOUNDS.items():
        value = positive_int(env, variable, getattr(defaults, field_name))
        if not low <= value <= high:
            raise ConfigurationError(f"{variable} must be {low} to {high}")
        values[field_name] = value
    return values


def _max_sessions(env: Mapping[str, str], defaults: Settings) -> dict[str, object]:
    """AUTH_MAX_SESSIONS_PER_USER (1 to MAX_SESSIONS_LIMIT; unset or empty: no cap) and
    AUTH_MAX_SESSIONS_SCOPE (user or app)."""
    raw = (env.get("AUTH_MAX_SESSIONS_PER_USER") or "").strip()
    cap = None
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_SESSIONS_LIMIT:
            raise ConfigurationError(
                f"AUTH_MAX_SESSIONS_PER_USER must be an integer from 1 to {MAX_SESSIONS_LIMIT}"
                " (unset: no cap)"
            )
        cap = int(raw)
    return {
        "max_sessions_per_user": cap,
        "max_sessions_scope": choice(
            env, "AUTH_MAX_SESSIONS_SCOPE", defaults.max_sessions_scope, MAX_SESSIONS_SCOPES
        ),
    }
