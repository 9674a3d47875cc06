"""What WeChat's calls answer, as records; a secret in one (session_key, a user's or the
server's access_token, a phone number) is kept out of its repr. The calls are
chalicelib/wechat/client.py's (which re-exports these names)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StableToken:
    """A server access_token and its lifetime in seconds, as WeChat answered them."""

    access_token: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True)
class WeChatSession:
    openid: str
    unionid: str | None
    session_key: str = field(repr=False)


@dataclass(frozen=True)
class OAuthAccess:
    """`sns/oauth2/access_token`'s answer: the user's openid (and unionid, once the app is bound
    to an open-platform account). The user access_token is kept out of reprs and never stored."""

    openid: str
    unionid: str | None
    access_token: str = field(repr=False)
    scope: str | None = None


@dataclass(frozen=True)
class PhoneInfo:
    """A phone number as WeChat returns it; `e164` is `+<country_code><pure_phone_number>`."""

    country_code: str
    pure_phone_number: str = field(repr=False)

    @property
    def e164(self) -> str:
        return f"+{self.country_code}{self.pure_phone_number}"
