"""A website sign-in driven through chalice.test.Client: a browser that keeps cookies, the
relying party's PKCE pair, and the fake WeChat "scanning" the QR code."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from devserver.fake_wechat import FakeWeChat
from tests.http import FORM

ISSUER = "https://auth.test"  # tests/conftest.py's settings
CALLBACK = f"{ISSUER}/oauth/wechat/callback"
WEB_APPID = "wx-website"
WEB_SECRET = "secret-of-the-website-0123456789"
CONFIDENTIAL = "shop-web"  # a relying party with a server (and a secret)
PUBLIC = "shop-spa"  # a single-page app: no secret, PKCE only
FIRST_PARTY = WEB_APPID  # wxauth's own web login: the website app's client id
RP_URI = "https://shop.example/signed-in?from=wxauth"
SPA_URI = "https://app.shop.example/callback"


@dataclass(frozen=True)
class Clients:
    confidential_secret: str


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


@dataclass
class Browser:
    """Follows wxauth's redirects by hand, keeping cookies as a browser does (all of them: the
    test client speaks to https://auth.test)."""

    client: Any
    cookies: dict[str, str] = field(default_factory=dict)
    user_agent: str = "Mozilla/5.0 (test browser)"

    def get(self, url: str) -> Any:
        path = url.removeprefix(ISSUER)
        headers = {"user-agent": self.user_agent}
        if self.cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.client.http.get(path, headers=headers)
        set_cookie = response.headers.get("Set-Cookie") or response.headers.get("set-cookie")
        if set_cookie:
            jar = SimpleCookie()
            jar.load(set_cookie)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response


def authorize_url(client: str, challenge: str | None, **overrides: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client,
        "redirect_uri": RP_URI if client == CONFIDENTIAL else SPA_URI,
        "state": "rp-state-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def scan(fake: FakeWeChat, wechat_location: str, user: str) -> str:
    """The fake WeChat's qrconnect page, scanned by `user`: where WeChat sends the browser."""
    parts = urlsplit(wechat_location)
    assert parts.path == "/connect/qrconnect" and parts.fragment == "wechat_redirect"
    status, headers, _ = fake.qrconnect(query_of(wechat_location), user)
    assert status == 302
    assert headers["Location"].startswith(CALLBACK + "?")
    return headers["Location"]


@dataclass
class SignIn:
    """One sign-in: the browser, the RP's verifier, where each step sent the browser."""

    browser: Browser
    verifier: str
    to_wechat: str
    to_callback: str = ""
    to_rp: str = ""

    @property
    def code(self) -> str:
        return query_of(self.to_rp)["code"]


def sign_in(
    client: Any, fake: FakeWeChat, user: str = "alice", client_id: str = CONFIDENTIAL
) -> SignIn:
    """Authorize, scan and come back: the relying party holds a code (`.code`)."""
    browser = Browser(client)
    verifier, challenge = pkce()
    started = browser.get(authorize_url(client_id, challenge))
    assert started.status_code == 302, started.body
    flow = SignIn(browser, verifier, started.headers["Location"])
    flow.to_callback = scan(fake, flow.to_wechat, user)
    back = browser.get(flow.to_callback)
    assert back.status_code == 302, back.body
    flow.to_rp = back.headers["Location"]
    return flow


def redeem(
    client: Any,
    flow: SignIn,
    *,
    client_id: str = CONFIDENTIAL,
    secret: str | None = None,
    **overrides: str | None,
) -> Any:
    """The relying party's token request (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
    params: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": flow.code,
        "redirect_uri": RP_URI if client_id == CONFIDENTIAL else SPA_URI,
        "client_id": client_id,
        "code_verifier": flow.verifier,
    }
    if secret is not None:
        params["client_secret"] = secret
    params.update(overrides)
    body = urlencode({k: v for k, v in params.items() if v is not None})
    return client.http.post("/oauth/token", headers=FORM, body=body)
