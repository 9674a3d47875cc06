"""Settings, read once from the process environment (docs/operators.md, "Settings")."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.budgets import DYNAMODB, hook_budget
from chalicelib.errors import ConfigurationError, StoreUnavailable

DEFAULT_WECHAT_API_BASE = "https://api.weixin.qq.com"
LOCAL_APPID = "wx-local-appid"
LOCAL_SECRET = "wx-local-placeholder-secret"  # noqa: S105 - a documented placeholder, not a secret
# A refresh rotates at `now`, waits on DynamoDB at most DYNAMODB.worst_case seconds, then may
# answer 503 with `Retry-After: StoreUnavailable.retry_after`; the client's retry must still find
# the rotated token in its grace window. 2 s more: times are whole seconds (1), and the
# client's round trips (1).
GRACE_MARGIN = 2
PHONE_CONFLICT_POLICIES = ("refuse", "move")  # chalicelib/phone.py
# AUTH_EVENT_BUS: an EventBridge bus name, or its ARN (PutEvents' EventBusName takes either).
_EVENT_BUS_RE = re.compile(
    r"[A-Za-z0-9._/-]{1,256}"
    r"|arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus/[A-Za-z0-9._/-]{1,256}"
)
# Abuse limits (chalicelib/limits.py), by name.
LOGIN_PER_IP = "login_ip"
LOGIN_PER_OPENID = "login_openid"
REFRESH_PER_SESSION = "refresh_session"
# The setting of each limit (docs/operators.md, "Abuse limits").
LIMIT_SETTINGS = {
    LOGIN_PER_IP: "AUTH_LIMIT_LOGIN_PER_IP",
    LOGIN_PER_OPENID: "AUTH_LIMIT_LOGIN_PER_OPENID",
    REFRESH_PER_SESSION: "AUTH_LIMIT_REFRESH_PER_SESSION",
}
MAX_WINDOW = 86_400  # one day
MAX_COUNT = 1_000_000
_LIMIT_RE = re.compile(r"\s*(\d{1,7})\s*/\s*(\d{1,5})\s*")


@dataclass(frozen=True)
class Limit:
    """At most `count` requests per key in each aligned window of `seconds`."""

    count: int
    seconds: int

    def window(self, now: int) -> tuple[int, int]:
        """(start, end) of the window holding `now`; `end` is exclusive."""
        start = now - now % self.seconds
        return start, start + self.seconds

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}"


def parse_limit(name: str, raw: str | None) -> Limit | None:
    """`<count>/<seconds>` (e.g. `20/60`), or None for unset/empty (no limit, no request).

    ConfigurationError naming the variable for anything else: 1 <= count <= 1,000,000,
    1 <= seconds <= 86,400."""
    if raw is None or not raw.strip():
        return None
    match = _LIMIT_RE.fullmatch(raw)
    if match is None:
        raise ConfigurationError(
            f"{name} must be <count>/<seconds>, e.g. 20/60 (unset: no limit)"
        )
    count, seconds = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_COUNT:
        raise ConfigurationError(f"{name}: the count must be 1 to {MAX_COUNT}")
    if not 1 <= seconds <= MAX_WINDOW:
        raise ConfigurationError(f"{name}: the window must be 1 to {MAX_WINDOW} seconds")
    return Limit(count, seconds)


_LAMBDA_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]{1,128})?"
)
# The pre-token hook (chalicelib/tokens/claims.py): its timeout in ms, and what a failure does.
TOKEN_HOOK_TIMEOUT_MS_MAX = 5000
TOKEN_HOOK_ON_ERROR = ("issue", "refuse")


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
    # Issue 22 (security-tokens), item 1: seconds after its first use in which a mini-program's
    # code may be replayed without the first caller's `login_nonce`; item 6: seconds a
    # container keeps an OAuth client it authenticated (0: none).
    login_replay_without_nonce: int = 60
    clients_cache_ttl: int = 60

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
            access_ttl=_positive_int(env, "AUTH_ACCESS_TTL", defaults.access_ttl),
            refresh_idle_ttl=_positive_int(env, "AUTH_REFRESH_IDLE_TTL", defaults.refresh_idle_ttl),
            refresh_absolute_ttl=_positive_int(
                env, "AUTH_REFRESH_ABSOLUTE_TTL", defaults.refresh_absolute_ttl
            ),
            refresh_grace=_positive_int(
                env, "AUTH_REFRESH_GRACE", defaults.refresh_grace, zero=True
            ),
            login_replay_ttl=_positive_int(env, "AUTH_LOGIN_REPLAY_TTL", defaults.login_replay_ttl),
            signing_keys_arn=env.get("AUTH_SIGNING_KEYS_ARN") or None,
            signing_keys_file=env.get("AUTH_SIGNING_KEYS_FILE") or defaults.signing_keys_file,
            phone_conflict=_choice(
                env, "AUTH_PHONE_CONFLICT", defaults.phone_conflict, PHONE_CONFLICT_POLICIES
            ),
            phone_claim=_flag(env, "AUTH_PHONE_CLAIM", defaults.phone_claim),
            limit_login_per_ip=_limit(env, LOGIN_PER_IP),
            limit_login_per_openid=_limit(env, LOGIN_PER_OPENID),
            limit_refresh_per_session=_limit(env, REFRESH_PER_SESSION),
            apps_cache_ttl=_positive_int(
                env, "AUTH_APPS_CACHE_TTL", defaults.apps_cache_ttl, zero=True
            ),
            event_bus=_event_bus(env),
            event_log=_flag(env, "AUTH_EVENT_LOG", defaults.event_log),
            **_token_hook(env, defaults),
            **_security_tokens(env, defaults),
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
        return {
            LOGIN_PER_IP: self.limit_login_per_ip,
            LOGIN_PER_OPENID: self.limit_login_per_openid,
            REFRESH_PER_SESSION: self.limit_refresh_per_session,
        }


def _security_tokens(env: Mapping[str, str], defaults: Settings) -> dict[str, int]:
    """Issue 22's settings: AUTH_LOGIN_REPLAY_WITHOUT_NONCE, AUTH_CLIENTS_CACHE_TTL."""
    return {
        "login_replay_without_nonce": _positive_int(
            env, "AUTH_LOGIN_REPLAY_WITHOUT_NONCE", defaults.login_replay_without_nonce, zero=True
        ),
        "clients_cache_ttl": _positive_int(
            env, "AUTH_CLIENTS_CACHE_TTL", defaults.clients_cache_ttl, zero=True
        ),
    }


def _limit(env: Mapping[str, str], name: str) -> Limit | None:
    variable = LIMIT_SETTINGS[name]
    return parse_limit(variable, env.get(variable))


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


def is_lambda_arn(value: str) -> bool:
    """A Lambda function ARN (any partition, `aws-cn` included), with an optional alias or
    version."""
    return bool(_LAMBDA_ARN_RE.fullmatch(value))


def _token_hook(env: Mapping[str, str], defaults: Settings) -> dict[str, object]:
    """AUTH_TOKEN_HOOK_ARN, AUTH_TOKEN_HOOK_TIMEOUT_MS (1 to 5000), AUTH_TOKEN_HOOK_ON_ERROR."""
    arn = (env.get("AUTH_TOKEN_HOOK_ARN") or "").strip() or None
    if arn is not None and not is_lambda_arn(arn):
        raise ConfigurationError(
            "AUTH_TOKEN_HOOK_ARN must be a Lambda function ARN"
            " (arn:aws:lambda:<region>:<account>:function:<name>[:<alias or version>])"
        )
    timeout = _positive_int(env, "AUTH_TOKEN_HOOK_TIMEOUT_MS", defaults.token_hook_timeout_ms)
    if timeout > TOKEN_HOOK_TIMEOUT_MS_MAX:
        raise ConfigurationError(
            f"AUTH_TOKEN_HOOK_TIMEOUT_MS must be at most {TOKEN_HOOK_TIMEOUT_MS_MAX}"
        )
    return {
        "token_hook_arn": arn,
        "token_hook_timeout_ms": timeout,
        "token_hook_on_error": _choice(
            env, "AUTH_TOKEN_HOOK_ON_ERROR", defaults.token_hook_on_error, TOKEN_HOOK_ON_ERROR
        ),
    }


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ConfigurationError(f"{name} must be one of: {', '.join(choices)}")
    return raw


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false")


def _positive_int(env: Mapping[str, str], name: str, default: int, *, zero: bool = False) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise ConfigurationError(f"{name} must be an integer number of seconds") from e
    if value < 0 or (value == 0 and not zero):
        raise ConfigurationError(f"{name} must be positive")
    return value
