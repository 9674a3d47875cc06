"""The HTTP edge: the one part of chalicelib that imports Chalice.

- `edge`: the app class (`WxAuth`), `Call`, `handle` (one request: domain errors to HTTP
  answers, the request log line), `Routes` (`endpoint`, `protected`), the error table.
- one Blueprint per audience: `auth` (mini-programs: login, refresh, verify, logout),
  `account` (the signed-in user: `/me`, phone, sessions), `oauth` (backends: `/oauth/*`,
  `/.well-known/*`, `/openapi.json`), `internal` (services: `/wechat/access-token`), `web`
  (browsers: a website's sign-in with WeChat, `/oauth/authorize` and its callback).

`app.py` makes the app and registers the Blueprints; a route parses the request, calls one
service, and returns what it answers.
"""
