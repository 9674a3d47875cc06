"""One user across several WeChat apps (issue #14).

- `apps`: the registry of apps a deployment serves (appid, kind, client_id, token audience,
  secret), their kinds (mini-program, official-account web OAuth, mobile app), each a small class
  with its code exchange, and the per-container cache of `APP` items.
- `graph`: the identity graph: `IDENTITY#<appid>#<openid>` items pointing at a user, the
  `UNIONID#<unionid>`/`OWNER` arbiter that links identities of one person, pending links (a
  unionid that would join two existing users), and the admin merge.

The login flow that uses them is `chalicelib/login.py`; their items are `chalicelib/store/`'s;
the operator's commands are `wxauth-admin app ...` and `user pending|merge`
(chalicelib/admin/).
"""
