"""Typed values of environment variables, as chalicelib/settings.py reads them: choices, flags,
seconds, abuse limits (`<count>/<seconds>`), Lambda ARNs. Each refuses a bad value with a
ConfigurationError naming the variable. Imports nothing of the domain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.errors import ConfigurationError

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
        raise ConfigurationError(f"{name} must be <count>/<seconds>, e.g. 20/60 (unset: no limit)")
    count, seconds = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_COUNT:
        raise ConfigurationError(f"{name}: the count must be 1 to {MAX_COUNT}")
    if not 1 <= seconds <= MAX_WINDOW:
        raise ConfigurationError(f"{name}: the window must be 1 to {MAX_WINDOW} seconds")
    return Limit(count, seconds)


_LAMBDA_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]{1,128})?"
)


def is_lambda_arn(value: str) -> bool:
    """A Lambda function ARN (any partition, `aws-cn` included), with an optional alias or
    version."""
    return bool(_LAMBDA_ARN_RE.fullmatch(value))


def choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ConfigurationError(f"{name} must be one of: {', '.join(choices)}")
    return raw


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false")


def positive_int(env: Mapping[str, str], name: str, default: int, *, zero: bool = False) -> int:
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


# -- issue 24, item 3 (the device login's settings) -------------------------------------------
_PAGE_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+){0,7}")
DEVICE_ENV_VERSIONS = ("release", "trial", "develop")


def device_values(env: Mapping[str, str], limits: Mapping[str, Limit]) -> dict[str, object]:
    """Settings' device fields: AUTH_DEVICE_PAGE (unset: the mini-program's home page),
    AUTH_DEVICE_ENV_VERSION, and the device limits (`limits`: each variable's default, the
    per-IP one first; unset: the default, "off": none)."""
    per_ip, per_user = ((name, default) for name, default in limits.items())
    return {
        "device_page": page_path(env, "AUTH_DEVICE_PAGE"),
        "device_env_version": choice(
            env, "AUTH_DEVICE_ENV_VERSION", "release", DEVICE_ENV_VERSIONS
        ),
        "limit_device_per_ip": limit_or_off(env, *per_ip),
        "limit_device_lookup_per_user": limit_or_off(env, *per_user),
    }


def limit_or_off(env: Mapping[str, str], name: str, default: Limit) -> Limit | None:
    """A limit that is on unless set to `off`: unset or empty, `default`; else parse_limit's."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if raw.lower() == "off":
        return None
    try:
        return parse_limit(name, raw)
    except ConfigurationError as e:
        raise ConfigurationError(
            f"{name} must be <count>/<seconds> (e.g. {default}) or off; unset: {default}"
        ) from e


def page_path(env: Mapping[str, str], name: str) -> str | None:
    """A page path of the mini-program (`pages/device/confirm`: no leading `/`, no query), or
    None when unset (its home page)."""
    page = (env.get(name) or "").strip() or None
    if page is not None and not _PAGE_RE.fullmatch(page):
        raise ConfigurationError(
            f"{name} must be a page path of the mini-program, e.g. pages/device/confirm"
            " (no leading /, no query)"
        )
    return page


# A host name of at least two DNS labels (ASCII: an IDN in its xn-- form), optionally `*.` for
# any name under it (issue 25, AUTH_AVATAR_URL_HOSTS).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})+")


def host_list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated host names, lowercased (`*.example.com`: any name under example.com);
    unset or empty: `default`; `none`: no host at all."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw == "none":
        return ()
    hosts = tuple(part.strip() for part in raw.split(","))
    for host in hosts:
        if len(host) > 253 or not _HOST_RE.fullmatch(host):
            raise ConfigurationError(
                f"{name} must be host names separated by commas (cdn.example.com,"
                " *.example.com), or none"
            )
    return hosts


# Issue 24, item 4: the third-party platform (第三方平台) of WECHAT_COMPONENT_APPID.
_AES_KEY_RE = re.compile(r"[A-Za-z0-9]{43}")  # EncodingAESKey: 43 letters and digits
_APPID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class ComponentKeys:
    """A third-party platform's secrets: its appsecret (for `api_component_token`), the
    message token and the EncodingAESKey of its pushes (WeChat's 消息校验 Token, 消息加解密
    Key). Never logged: reprs hide them."""

    secret: str
    token: str
    encoding_aes_key: str

    def __repr__(self) -> str:
        return "ComponentKeys(...)"

    @classmethod
    def of(cls, secret: object, token: object, aes_key: object, *, source: str) -> ComponentKeys:
        """The three values, checked; ConfigurationError naming `source`, never a value."""
        if not isinstance(secret, str) or not secret:
            raise ConfigurationError(f"{source}: the component's appsecret is missing")
        if not isinstance(token, str) or not 1 <= len(token) <= 128 or not token.isprintable():
            raise ConfigurationError(f"{source}: the message token must be 1 to 128 characters")
        if not isinstance(aes_key, str) or not _AES_KEY_RE.fullmatch(aes_key):
            raise ConfigurationError(f"{source}: the EncodingAESKey must be 43 letters and digits")
        return cls(secret, token, aes_key)

    @classmethod
    def from_json(cls, text: str, *, source: str) -> ComponentKeys:
        """A Secrets Manager value: `{"secret", "token", "encoding_aes_key"}`."""
        import json

        try:
            value = json.loads(text)
        except ValueError as e:
            raise ConfigurationError(f"{source} is not a JSON object") from e
        if not isinstance(value, dict):
            raise ConfigurationError(f"{source} is not a JSON object")
        return cls.of(
            value.get("secret"), value.get("token"), value.get("encoding_aes_key"), source=source
        )


def component_platform(env: Mapping[str, str]) -> dict[str, object]:
    """WECHAT_COMPONENT_APPID with WECHAT_COMPONENT_SECRET_ARN (AWS: a JSON secret), or, for a
    local server, WECHAT_COMPONENT_SECRET, WECHAT_COMPONENT_TOKEN and WECHAT_COMPONENT_AES_KEY.
    All unset: no third-party platform. Errors never quote a secret."""
    appid = (env.get("WECHAT_COMPONENT_APPID") or "").strip() or None
    arn = (env.get("WECHAT_COMPONENT_SECRET_ARN") or "").strip() or None
    local = [env.get(name) or None for name in _COMPONENT_LOCAL]
    if appid is None:
        if arn or any(local):
            raise ConfigurationError(
                "WECHAT_COMPONENT_SECRET_ARN (or _SECRET, _TOKEN, _AES_KEY) needs"
                " WECHAT_COMPONENT_APPID: the third-party platform's appid"
            )
        return {}
    if not _APPID_RE.fullmatch(appid):
        raise ConfigurationError("WECHAT_COMPONENT_APPID must be 1 to 64 of A-Z a-z 0-9 _ -")
    if arn is not None:
        return {"component_appid": appid, "component_secret_arn": arn}
    if not all(local):
        raise ConfigurationError(
            "WECHAT_COMPONENT_APPID needs WECHAT_COMPONENT_SECRET_ARN (Secrets Manager) or, for a"
            " local server, " + ", ".join(_COMPONENT_LOCAL)
        )
    keys = ComponentKeys.of(*local, source="WECHAT_COMPONENT_SECRET/_TOKEN/_AES_KEY")
    return {"component_appid": appid, "component": keys}


_COMPONENT_LOCAL = ("WECHAT_COMPONENT_SECRET", "WECHAT_COMPONENT_TOKEN", "WECHAT_COMPONENT_AES_KEY")
