"""The settings of the sign-in flows and of the account's life (issues 22, 24 and 25): their
defaults, bounds and parsers, each group a function of the environment that `Settings.from_env`
spreads into its fields. A leaf, as chalicelib/settings.py is (its errors and value parsers
only)."""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.errors import ConfigurationError
from chalicelib.setting_values import flag, host_list, positive_int

# Issue 22: seconds after its first use in which a mini-program's code may be replayed without
# the first caller's `login_nonce`; seconds a container keeps an OAuth client it authenticated.
DEFAULT_LOGIN_REPLAY_WITHOUT_NONCE = 60
DEFAULT_CLIENTS_CACHE_TTL = 60
# Issue 24, item 2 (chalicelib/weblogin/): where a browser scans WeChat's QR code, and the
# seconds an authorization code may be redeemed in (RFC 6749 §4.1.2: 10 minutes at most).
DEFAULT_WECHAT_OPEN_BASE = "https://open.weixin.qq.com"  # qrconnect (issue 24, item 2)
AUTHORIZATION_CODE_TTL_BOUNDS = (60, 600)  # seconds (RFC 6749 §4.1.2: 10 minutes at most)
DEFAULT_AUTHORIZATION_CODE_TTL = 60
# Issue 25, items 4 and 5 (chalicelib/profile.py, chalicelib/open_data.py): WeChat's own avatar
# hosts, where an avatar URL may point while AUTH_AVATAR_URL_HOSTS is unset; the bounds of
# AUTH_DECRYPT_MAX_AGE (seconds).
DEFAULT_AVATAR_URL_HOSTS = ("thirdwx.qlogo.cn", "wx.qlogo.cn")
DECRYPT_MAX_AGE_BOUNDS = (10, 86_400)
DEFAULT_DECRYPT_MAX_AGE = 300
# Issue 25, item 1: account deletion (chalicelib/deletion.py). The cooling-off period is at
# most 15 days (PIPL; GB/T 35273-2020 §8.5: a deletion done within 15 working days), and the
# tombstones' HMAC key, a Secrets Manager value in the stack, at least 32 characters.
DELETION_COOLDOWN_MAX = 15 * 86_400
MIN_TOMBSTONE_KEY = 32
LOCAL_TOMBSTONE_KEY = "wx-local-tombstone-key-placeholder-0000"  # noqa: S105 - local only
DEFAULT_DELETION_COOLDOWN = 7 * 86_400


def security_tokens(env: Mapping[str, str]) -> dict[str, int]:
    """Issue 22's settings: AUTH_LOGIN_REPLAY_WITHOUT_NONCE, AUTH_CLIENTS_CACHE_TTL."""
    return {
        "login_replay_without_nonce": positive_int(
            env, "AUTH_LOGIN_REPLAY_WITHOUT_NONCE", DEFAULT_LOGIN_REPLAY_WITHOUT_NONCE, zero=True
        ),
        "clients_cache_ttl": positive_int(
            env, "AUTH_CLIENTS_CACHE_TTL", DEFAULT_CLIENTS_CACHE_TTL, zero=True
        ),
    }


def web_login(env: Mapping[str, str]) -> dict[str, object]:
    """Issue 24, item 2: WECHAT_OPEN_BASE, AUTH_AUTHORIZATION_CODE_TTL."""
    base = (env.get("WECHAT_OPEN_BASE") or DEFAULT_WECHAT_OPEN_BASE).rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise ConfigurationError("WECHAT_OPEN_BASE must be an http(s) URL")
    low, high = AUTHORIZATION_CODE_TTL_BOUNDS
    ttl = positive_int(env, "AUTH_AUTHORIZATION_CODE_TTL", DEFAULT_AUTHORIZATION_CODE_TTL)
    if not low <= ttl <= high:
        raise ConfigurationError(f"AUTH_AUTHORIZATION_CODE_TTL must be {low} to {high}")
    return {"wechat_open_base": base, "authorization_code_ttl": ttl}


def profile(env: Mapping[str, str]) -> dict[str, object]:
    """Issue 25's settings: AUTH_PROFILE_CLAIM, AUTH_PROFILE_SECURITY_CHECK,
    AUTH_AVATAR_URL_HOSTS (unset: WeChat's own hosts; `none`: no avatar URL at all),
    AUTH_DECRYPT_MAX_AGE."""
    max_age = positive_int(env, "AUTH_DECRYPT_MAX_AGE", DEFAULT_DECRYPT_MAX_AGE)
    low, high = DECRYPT_MAX_AGE_BOUNDS
    if not low <= max_age <= high:
        raise ConfigurationError(f"AUTH_DECRYPT_MAX_AGE must be {low} to {high} seconds")
    return {
        "profile_claim": flag(env, "AUTH_PROFILE_CLAIM", False),
        "profile_security_check": flag(env, "AUTH_PROFILE_SECURITY_CHECK", False),
        "avatar_url_hosts": host_list(env, "AUTH_AVATAR_URL_HOSTS", DEFAULT_AVATAR_URL_HOSTS),
        "decrypt_max_age": max_age,
    }


def deletion(env: Mapping[str, str]) -> dict[str, object]:
    """Issue 25: AUTH_DELETION_COOLDOWN (seconds, 0 to DELETION_COOLDOWN_MAX), and
    AUTH_TOMBSTONE_KEY_ARN or AUTH_TOMBSTONE_KEY (errors never quote the key)."""
    cooldown = positive_int(env, "AUTH_DELETION_COOLDOWN", DEFAULT_DELETION_COOLDOWN, zero=True)
    if cooldown > DELETION_COOLDOWN_MAX:
        raise ConfigurationError(
            f"AUTH_DELETION_COOLDOWN must be 0 to {DELETION_COOLDOWN_MAX} seconds (15 days)"
        )
    arn = (env.get("AUTH_TOMBSTONE_KEY_ARN") or "").strip() or None
    key = env.get("AUTH_TOMBSTONE_KEY") or None
    if arn is None and key is not None and len(key) < MIN_TOMBSTONE_KEY:
        raise ConfigurationError(
            f"AUTH_TOMBSTONE_KEY must be at least {MIN_TOMBSTONE_KEY} characters (random)"
        )
    return {
        "deletion_cooldown": cooldown,
        "tombstone_key": None if arn else (key or LOCAL_TOMBSTONE_KEY),
        "tombstone_key_arn": arn,
    }
