"""The user's own profile: a nickname and an avatar URL (issue 25, item 4).

`wx.getUserProfile` no longer hands these out; a mini-program collects them with WeChat's avatar
and nickname fill-in ability (头像昵称填写): `<button open-type="chooseAvatar">` gives a temporary
file of the chosen picture, which the mini-program uploads to its own storage (the https URL
there is what wxauth keeps), and `<input type="nickname">` offers the WeChat nickname above the
keyboard. Since base library 2.24.4 WeChat runs its content security on both in the client; a
client can skip that, the server cannot, hence AUTH_PROFILE_SECURITY_CHECK.

`PATCH /me {"nickname"?, "avatar_url"?}` (each optional, null clears it, at least one given):
- nickname: NFC-normalised, spaces trimmed, 1 to MAX_NICKNAME characters (code points), none a
  control, format (except the emoji joiner and tag characters), line or paragraph separator, or
  lone surrogate;
- avatar_url: `https://`, at most MAX_AVATAR_URL characters of printable ASCII, no user info, no
  port but 443, its host on AUTH_AVATAR_URL_HOSTS (unset: WeChat's own avatar hosts,
  thirdwx.qlogo.cn and wx.qlogo.cn; `*.example.com`: any name under example.com; `none`: no
  avatar URL is taken). An allow-list, so that a profile never points anywhere an attacker
  chose (tracking pixels, a look-alike host).
- AUTH_PROFILE_SECURITY_CHECK: a new nickname goes through WeChat's msg_sec_check (2.0, scene 1,
  the user's openid in the session's app, through that app's broker) before anything is
  written: `risky` -> RiskyContent (400 `risky_content`); `review` -> stored, and counted
  (metric ProfileTextReview, with WeChat's label) for a person to look at; WeChat failing ->
  503, nothing stored. The avatar's picture is not checked here (WeChat checks it in
  chooseAvatar; the upload is the mini-program's: mediaCheckAsync is the tool for it).
- AUTH_PROFILE_CLAIM: access tokens carry OIDC's `nickname` and `picture` (OpenID Connect Core
  §5.1: `nickname` is a casual name, which a WeChat nickname is; `name` is a full name). They
  come from the session item as custom claims do (chalicelib/tokens/claims.py), so that a
  refresh stays one request and a returning login three: PATCH /me copies them onto the
  user's identities (a login's identity UpdateItem returns them; a first login in another app
  takes them from the profile) and live sessions (a Query, an UpdateItem each), whether or not
  the setting is on, so that turning it on rewrites nothing. At most about 700 bytes (32
  characters, 512 of URL) beside the `ext` claims' 2048.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chalicelib.errors import GrantError, RequestError, RiskyContent, TokenError
from chalicelib.logs import Metrics, log_event
from chalicelib.store.apps import MINI_PROGRAM
from chalicelib.store.users import PROFILE_ATTRIBUTES, PROFILE_CLAIMS

if TYPE_CHECKING:
    from chalicelib.identity.apps import AppRegistry
    from chalicelib.open_data import SessionApps  # chalicelib.phone.AppPhones (no cycle)
    from chalicelib.store.identities import Identities, Identity
    from chalicelib.store.sessions import Sessions
    from chalicelib.store.users import UserRecord, Users

MAX_NICKNAME = 32  # characters after NFC (WeChat's msg_sec_check takes up to 2500)
MAX_AVATAR_URL = 512  # characters; qlogo avatar URLs are about 130
_ALLOWED_FORMAT = {"\u200d"} | {chr(c) for c in range(0xE0020, 0xE0080)}  # ZWJ, emoji tags
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def nickname(value: object) -> str | None:
    """A nickname as stored (None: clear it); RequestError naming the rule it breaks."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError("nickname must be a string or null")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise RequestError("nickname must not be empty (null clears it)")
    if len(text) > MAX_NICKNAME:
        raise RequestError(f"nickname is longer than {MAX_NICKNAME} characters")
    for ch in text:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES and ch not in _ALLOWED_FORMAT:
            raise RequestError(
                f"nickname must be printable: U+{ord(ch):04X} is a control or invisible character"
            )
    return text


def host_allowed(host: str, hosts: Sequence[str]) -> bool:
    """`host` is one of `hosts`, or under a `*.<domain>` of them."""
    return any(
        host.endswith(allowed[1:]) if allowed.startswith("*.") else host == allowed
        for allowed in hosts
    )


def avatar_url(value: object, hosts: Sequence[str]) -> str | None:
    """An avatar URL as stored (None: clear it); RequestError naming the rule it breaks."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RequestError("avatar_url must be a URL or null")
    if len(value) > MAX_AVATAR_URL:
        raise RequestError(f"avatar_url is longer than {MAX_AVATAR_URL} characters")
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise RequestError("avatar_url must be printable ASCII without spaces (percent-encoded)")
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError as e:
        raise RequestError("avatar_url is not a URL") from e
    if url.scheme != "https":
        raise RequestError(
            "avatar_url must be an https URL: upload chooseAvatar's temporary file to your"
            " storage first, and send its URL there"
        )
    host = (url.hostname or "").rstrip(".")
    if not host or url.username is not None or url.password is not None or port not in (None, 443):
        raise RequestError("avatar_url must be https://<host>/<path>, without user or port")
    if not host_allowed(host, hosts):
        raise RequestError(
            "avatar_url's host is not one this service takes avatars from"
            " (AUTH_AVATAR_URL_HOSTS, see docs/operators.md)"
        )
    return value


def changes_of(body: dict[str, Any], hosts: Sequence[str]) -> dict[str, str | None]:
    """The attributes `PATCH /me` sets (a value) or clears (None), checked; RequestError for
    an unknown field or an empty change."""
    unknown = sorted(set(body) - set(PROFILE_ATTRIBUTES))
    if unknown:
        hint = " (avatar_url, not avatarUrl)" if "avatarUrl" in unknown else ""
        raise RequestError(f"unknown field {unknown[0]}: only nickname and avatar_url{hint}")
    if not body:
        raise RequestError("give nickname and/or avatar_url (null clears one)")
    changes: dict[str, str | None] = {}
    if "nickname" in body:
        changes["nickname"] = nickname(body["nickname"])
    if "avatar_url" in body:
        changes["avatar_url"] = avatar_url(body["avatar_url"], hosts)
    return changes


def profile_claims(user: UserRecord) -> str | None:
    """The profile as access-token claims (`nickname`, `picture`), JSON text; None for none."""
    claims = {
        name: value
        for name, value in (("nickname", user.nickname), ("picture", user.avatar_url))
        if value is not None
    }
    return json.dumps(claims, ensure_ascii=False, sort_keys=True) if claims else None


class TextCheck:
    """AUTH_PROFILE_SECURITY_CHECK: a nickname through WeChat's msg_sec_check, with the app of
    the session (`client_id`) and the user's openid there (see the module doc)."""

    def __init__(
        self, apps: SessionApps, registry: AppRegistry, metrics: Metrics | None = None
    ) -> None:
        """`apps`: the session's app with its WeChat client and broker; `registry`: its kind."""
        self._apps = apps
        self._registry = registry
        self._metrics = metrics or Metrics()

    def check(
        self, text: str, *, user_id: str, client_id: str | None, openid_of: Callable[[str], str]
    ) -> None:
        """Return if WeChat passes `text` (or asks for a review: counted); RiskyContent if it
        judges it risky; the WeChat errors (503) if it does not answer. RequestError for a
        session of an app that is not a mini-program: msg_sec_check is a mini-program's API,
        and unchecked text is never stored while the check is on."""
        from chalicelib.wechat.user_api import msg_sec_check

        registry = self._registry
        kind = registry.primary.kind if client_id is None else None
        if client_id is not None:
            found = registry.by_client_id(client_id)
            kind = found.kind if found is not None else None
        if kind is not None and kind != MINI_PROGRAM:
            raise RequestError(
                "a nickname is checked with WeChat's msg_sec_check, a mini-program's API: set it"
                f" from a mini-program's session (this session's app is an {kind})"
            )
        app = self._apps.of(client_id)
        openid = openid_of(app.appid)
        try:
            verdict = app.broker.call(
                lambda token: msg_sec_check(
                    app.wechat, token, openid=openid, content=text, nickname=text
                )
            )
        except Exception as e:
            log_event(  # for the operator: which app, what kind of failure; never the text
                "profile_check_failed",
                level=logging.WARNING,
                user_id=user_id,
                appid=app.appid,
                error=type(e).__name__,
            )
            raise
        if verdict.suggest == "risky":
            self._metrics.count("ProfileTextRisky", appid=app.appid, label=verdict.label)
            log_event("profile_text_risky", user_id=user_id, label=verdict.label)
            raise RiskyContent(
                "WeChat's content security check refused this nickname; ask the user for another"
            )
        if verdict.suggest == "review":
            self._metrics.count("ProfileTextReview", appid=app.appid, label=verdict.label)
            log_event("profile_text_review", user_id=user_id, label=verdict.label)


class Profiles:
    """PATCH /me: the checks, the profile's UpdateItem, the claims' copies on the user's
    identities and live sessions (whatever AUTH_PROFILE_CLAIM says: it only decides whether
    tokens carry them, so that turning it on needs no rewrite of anything)."""

    def __init__(
        self,
        users: Users,
        identities: Identities,
        sessions: Sessions,
        *,
        avatar_hosts: Sequence[str],
        check: TextCheck | None = None,
    ) -> None:
        """`avatar_hosts`: AUTH_AVATAR_URL_HOSTS; `check`: AUTH_PROFILE_SECURITY_CHECK's
        (None: off)."""
        self._users = users
        self._identities = identities
        self._sessions = sessions
        self._hosts = tuple(avatar_hosts)
        self._check = check

    def update(
        self,
        user_id: str,
        body: dict[str, Any],
        *,
        client_id: str | None,
        identities: Callable[[UserRecord | None], list[Identity]],
        now: int,
    ) -> UserRecord:
        """Check and write the changes; the user as it is now. `identities(user)`: the user's
        identities (read once: the check's openid, the copies, the answer; `user` None: read
        the user first). TokenError if the user is gone."""
        changes = changes_of(body, self._hosts)  # nothing is read before the body is checked
        if self._check is not None and changes.get("nickname") is not None:
            self._check.check(
                changes["nickname"] or "",
                user_id=user_id,
                client_id=client_id,
                openid_of=lambda appid: self._openid(appid, identities(None)),
            )
        user = self._users.set_profile(user_id, changes, now=now)
        if user is None:
            raise TokenError("the user of this access token no longer exists")
        log_event("profile_updated", user_id=user_id, fields=sorted(changes))  # never the values
        self._copy(user, identities(user), now)
        return user

    def _openid(self, appid: str, identities: list[Identity]) -> str:
        for identity in identities:
            if identity.appid == appid:
                return identity.openid
        raise GrantError("this user has not logged in with the app of this session")

    def _copy(self, user: UserRecord, identities: list[Identity], now: int) -> int:
        """Copy the profile's claims onto the user's identities (a returning login reads them
        from its identity's UpdateItem) and live sessions (a refresh from its one UpdateItem),
        as set-claims does: one UpdateItem per identity, a Query of the sessions and one
        conditional UpdateItem per live session; how many sessions were written."""
        value, sessions = profile_claims(user), self._sessions
        self._identities.set_claims(user.user_id, value, name=PROFILE_CLAIMS, identities=identities)
        return sum(
            1
            for session in sessions.of_user(user.user_id)
            if session.is_live(now)
            and sessions.set_claims(user.user_id, session.session_id, value, name=PROFILE_CLAIMS)
        )
