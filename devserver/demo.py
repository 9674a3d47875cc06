"""`GET /demo/scan-login`: a small page of the local server only (issue 24, item 3) that plays a
PC or TV in a device login: it starts one (`POST /oauth/device_authorization`), shows the
mini-program code (`GET /oauth/device?user_code=`) and the user code, and polls
`POST /oauth/token` every `interval` seconds (5 s more after a `slow_down`) until the user
confirms or denies it in the mini-program, or it expires.

Registered by `devserver/chalice_local.py` on the app it serves (`make run`), never by app.py:
the deployed API has no such route (and chalicelib/openapi.json does not describe it). The
page shows who signed in (the token's `sub`), never a token. `?client_id=` picks the client
(default: the local app's, WECHAT_APPID).
"""

from __future__ import annotations

import json
import os

from chalice import Blueprint, Response

PATH = "/demo/scan-login"
routes = Blueprint(__name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wxauth: scan to log in</title>
<style>body{font-family:sans-serif;margin:2em}img{width:232px;height:232px;border:1px solid #ccc}
</style></head>
<body>
<h1>Scan with the mini-program to log in</h1>
<p><img id="code" alt="mini-program code"></p>
<p>Or enter this code in the mini-program: <b id="user-code">...</b></p>
<p>Status: <span id="status" data-state="starting">starting</span></p>
<p>Signed in as: <span id="subject"></span></p>
<script>
const CLIENT_ID = new URLSearchParams(location.search).get("client_id") || __CLIENT_ID__;
const GRANT = "urn:ietf:params:oauth:grant-type:device_code";
const show = (state, text) => {
  const el = document.getElementById("status");
  el.dataset.state = state;
  el.textContent = text || state;
};
const post = async (path, params) => {
  const r = await fetch(path, {
    method: "POST",
    headers: {"Content-Type": "application/x-www-form-urlencoded"},
    body: new URLSearchParams(params),
  });
  return [r.status, await r.json()];
};
const sleep = (s) => new Promise((done) => setTimeout(done, s * 1000));
async function main() {
  const [status, start] = await post("/oauth/device_authorization", {client_id: CLIENT_ID});
  if (status !== 200) return show("error", start.error);
  document.getElementById("user-code").textContent = start.user_code;
  const img = document.getElementById("code");
  img.onload = () => { img.dataset.loaded = "true"; };
  img.src = "/oauth/device?user_code=" + encodeURIComponent(start.user_code);
  show("waiting", "waiting for the mini-program");
  let interval = start.interval;
  for (;;) {
    await sleep(interval);
    const [code, answer] = await post(
      "/oauth/token", {grant_type: GRANT, device_code: start.device_code, client_id: CLIENT_ID});
    if (code === 200) {
      const claims = JSON.parse(atob(answer.access_token.split(".")[1]
        .replace(/-/g, "+").replace(/_/g, "/")));
      document.getElementById("subject").textContent = claims.sub;
      return show("signed_in", "signed in");
    }
    if (answer.error === "authorization_pending") continue;
    if (answer.error === "slow_down") { interval += 5; continue; }
    return show(answer.error);  // access_denied, expired_token, ...
  }
}
main().catch((e) => show("error", String(e)));
</script>
</body></html>
"""


@routes.route(PATH, methods=["GET"])
def scan_login() -> Response:
    client_id = os.environ.get("WECHAT_APPID", "")
    body = PAGE.replace("__CLIENT_ID__", json.dumps(client_id).replace("<", "\\u003c"))
    return Response(
        body=body,
        status_code=200,
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )
