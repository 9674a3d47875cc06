"""The fake WeChat's open-platform page for website apps (issue 24, item 2):
`GET /connect/qrconnect?appid=&redirect_uri=&response_type=code&scope=snsapi_login&state=`.

WeChat shows a QR code there; a user scans it with WeChat, allows the sign-in, and WeChat sends
the browser to `redirect_uri?code=CODE&state=STATE` (a code valid 10 minutes, once, exchanged
with `sns/oauth2/access_token`). The fake "scans" at once when told who scans:

| request                                   | answer                                               |
|-------------------------------------------|------------------------------------------------------|
| header `X-Fake-WeChat-User: <user>`       | 302 to `redirect_uri?code=<user>.qr-<random>&state=` |
| header `X-Fake-WeChat-User: deny`         | 302 to `redirect_uri?state=` (the user refused)      |
| neither, and `FAKE_WECHAT_USER` set       | as the header with that user                         |
| neither                                   | 200, an HTML page: a user name and Allow / Deny      |
|                                           | (`GET /connect/qrconnect/confirm?...&user=<user>`,   |
|                                           | or `&decision=deny`: the same answers)               |

`<user>` is the fake's user as in every code (`alice`, `union-bob`: a `union…` user has a
unionid, the same in every app bound to the open platform), so the code it hands out logs that
user in to the website app, and `union-bob` through the website and `union-bob.1` through the
mini-program are one person. Checked first, as WeChat checks them (it shows "该链接无法访问",
"this link cannot be visited"): an appid the fake does not know, no `redirect_uri` (or not an
http(s) URL), `response_type` other than `code`, `scope` other than `snsapi_login`: 400 with
that text.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable, Mapping
from urllib.parse import urlencode, urlsplit

QRCONNECT_PATH = "/connect/qrconnect"
CONFIRM_PATH = "/connect/qrconnect/confirm"
USER_HEADER = "X-Fake-WeChat-User"
DENY = "deny"
CANNOT_VISIT = "该链接无法访问 (fake WeChat: {})"
FIELDS = ("appid", "redirect_uri", "response_type", "scope", "state")

Answer = tuple[int, dict[str, str], bytes]


def qrconnect(
    query: Mapping[str, str],
    user: str | None,
    *,
    known_app: Callable[[str], bool],
    issued: Callable[[str], None],
) -> Answer:
    """The answer to `GET /connect/qrconnect` (or its confirm page) from `user` (None: no one
    said who scans). `known_app(appid)`: the fake knows the app; `issued(code)`: a code was
    handed out (its `sns/oauth2/access_token` answers scope `snsapi_login`)."""
    redirect_uri = query.get("redirect_uri", "")
    if not known_app(query.get("appid", "")):
        return _cannot_visit("unknown appid")
    if urlsplit(redirect_uri).scheme not in ("http", "https"):
        return _cannot_visit("redirect_uri")
    if query.get("response_type") != "code" or query.get("scope") != "snsapi_login":
        return _cannot_visit("response_type must be code, scope snsapi_login")
    if not user:
        return _page(query)
    answer = {"state": query.get("state", "")}
    if user != DENY:
        code = f"{user}.qr-{secrets.token_hex(8)}"
        issued(code)
        answer = {"code": code, **answer}
    location = f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(answer)}"
    return 302, {"Location": location, "Cache-Control": "no-store"}, b""


def _cannot_visit(why: str) -> Answer:
    body = CANNOT_VISIT.format(why).encode()
    return 400, {"Content-Type": "text/plain; charset=utf-8"}, body


def _page(query: Mapping[str, str]) -> Answer:
    """What a person sees instead of a QR code: who scans, and Allow or Deny."""
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
        for name in FIELDS
    )
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fake WeChat: scan to sign in</title></head>
<body><h1>Fake WeChat</h1>
<p>Website app <code>{html.escape(query.get("appid", ""))}</code> asks you to sign in.
Who scans the QR code? (A <code>union…</code> user has a unionid: the same person as in the
mini-program.)</p>
<form method="get" action="{CONFIRM_PATH}">{hidden}
<label>User <input name="user" value="alice" required></label>
<button type="submit">Allow</button>
<button type="submit" name="decision" value="{DENY}" formnovalidate>Deny</button>
</form></body></html>
"""
    return 200, {"Content-Type": "text/html; charset=utf-8"}, body.encode()
