"""Scan-to-login on a PC, TV or kiosk through the mini-program (issue 24, item 3): the OAuth 2.0
Device Authorization Grant (RFC 8628), with a mini-program code as the thing to scan.

- `codes`: the user code (what a person scans or types), the device code (what the device
  polls with, holding the user code and 256 random bits; only its hash is stored), the times;
- `clients`: who may start a device login (an app's client id, or an OAuth client holding the
  scope `device_login`) and the `aud` of the session it ends in;
- `grant`: `POST /oauth/device_authorization` and the device code grant of `POST /oauth/token`
  (`authorization_pending`, `slow_down`, `access_denied`, `expired_token`, or tokens of a new
  session of the confirming user);
- `confirm`: the mini-program's side, a signed-in user shown the login, confirming or denying
  it once (`GET /auth/device/{user_code}`, `POST /auth/device/confirm`, `/deny`);
- `image`: the mini-program code of a user code (`wxa/getwxacodeunlimit` through the broker),
  made once per user code and kept until it expires (`GET /oauth/device?user_code=`);
- `wiring`: the service the runtime builds at the first use.

The items are chalicelib/store/devices.py's. Nothing here is imported by a login, a refresh
or a verify.
"""
