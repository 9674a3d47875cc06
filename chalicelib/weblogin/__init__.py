"""Website sign-in with WeChat, and wxauth as an OAuth 2.0 provider (issue 24, item 2).

A browser goes to `GET /oauth/authorize` (RFC 6749 §4.1 with PKCE, RFC 7636, S256 only), is
sent on to WeChat's `qrconnect` page of the deployment's `website` app, scans the QR code, and
comes back to `GET /oauth/wechat/callback`, which finds or creates the user through the
identity graph and sends the browser to the relying party's `redirect_uri` with a one-time
authorization code. The relying party posts the code and its PKCE verifier to `/oauth/token`
(`grant_type=authorization_code`) and gets a session's tokens, as a login would.

- `params`: the rules of the requests' parameters (redirect URIs, PKCE, states) and the
  random values with their hashes (states, codes, the browser's cookie).
- `authorize`: the authorization endpoint and the callback (`WebLogin`).
- `grant`: the `authorization_code` grant, registered on the token endpoint.

The items are chalicelib/store/authorizations.py's; the routes chalicelib/api/web.py's.
"""
