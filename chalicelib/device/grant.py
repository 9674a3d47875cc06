"""The device's side of a device login (RFC 8628): the device authorization request, and the
device code grant that `POST /oauth/token` answers (registered on OAuthService).

`POST /oauth/device_authorization` (form: `client_id`, or HTTP Basic): the per-IP limit
(AUTH_LIMIT_DEVICE_PER_IP, one UpdateItem), the client (chalicelib/device/clients.py), then
one guarded PutItem of a new pending login under a fresh user code (another one is drawn if
the code is taken: 2.6e10 codes, five minutes each). The answer is RFC 8628 §3.2's:
`device_code`, `user_code`, `verification_uri` (`<issuer>/oauth/device`),
`verification_uri_complete` (the same with `?user_code=`: the mini-program code to show, an
image), `expires_in` (300), `interval` (5).

A poll (`grant_type=urn:ietf:params:oauth:grant-type:device_code`, `device_code`, `client_id`)
is one conditional UpdateItem of the login, whatever the answer (RFC 8628 §3.5):
- pending, and at least `interval` s (less a second of leeway) after the previous poll: the
  poll is recorded, `authorization_pending`;
- pending, sooner: `slow_down`, and the interval grows by 5 s for this and every later poll
  (one more UpdateItem, the one write of a refused poll: the RFC's state);
- denied: `access_denied`; expired: `expired_token`; another client's, unknown, or used:
  `invalid_grant`;
- confirmed: the tokens of a new session of the confirming user for the login's client (its
  `client_id` and `aud`; the device's IP and User-Agent recorded as the session's device): the
  user's profile read (its custom claims, its nickname and avatar as claims), then one
  transaction marking the login `issued` (its device code is used up), storing the session
  and checking the user is neither banned nor merged away. 3 requests, plus
  AUTH_MAX_SESSIONS_PER_USER's.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

from chalicelib.device.clients import DeviceClients, credentials
from chalicelib.device.codes import (
    EXPIRES_IN,
    INTERVAL,
    MAX_DEVICE_CODE_LENGTH,
    POLL_LEEWAY,
    SLOW_DOWN_STEP,
    device_code_hash,
    display,
    new_device_code,
    new_user_code,
    parse_device_code,
)
from chalicelib.devices import DeviceInfo, clean_source_ip, clean_user_agent
from chalicelib.errors import (
    DeviceCodeExpired,
    DeviceGrantPending,
    DeviceLoginDenied,
    DeviceLoginRefused,
    DeviceSlowDown,
    GrantError,
    InvalidScope,
    StoreUnavailable,
)
from chalicelib.events import Events
from chalicelib.http_input import string_field
from chalicelib.oauth import TokenGrant
from chalicelib.profile import profile_claims
from chalicelib.sessions import SessionManager
from chalicelib.store.devices import (
    CONFIRMED,
    DENIED,
    ISSUED,
    DeviceLoginRecord,
    DeviceLogins,
)
from chalicelib.store.users import Users
from chalicelib.tokens.refresh import new_id

CODE_ATTEMPTS = 5  # user codes drawn before giving up (each a guarded PutItem)


class DeviceGrant:
    """Device authorization requests and the device code grant (see the module doc)."""

    def __init__(
        self,
        logins: DeviceLogins,
        *,
        clients: DeviceClients,
        sessions: SessionManager,
        users: Users,
        events: Events,
        issuer: str,
        limit: Callable[[str, int], None] | None = None,
        rand: Callable[[int], bytes] = secrets.token_bytes,
        rand_below: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        """`limit(ip, now)`: AUTH_LIMIT_DEVICE_PER_IP (RateLimiter.hook; None: no limit)."""
        self._logins = logins
        self._clients = clients
        self._sessions = sessions
        self._users = users
        self._events = events
        self._verification_uri = issuer.rstrip("/") + "/oauth/device"
        self._limit = limit
        self._rand = rand
        self._rand_below = rand_below

    # -- POST /oauth/device_authorization ----------------------------------------------------

    def authorize(
        self,
        form: dict[str, str],
        basic: tuple[str, str] | None,
        *,
        source_ip: str | None,
        user_agent: str | None,
        now: int,
    ) -> dict[str, object]:
        """A new device login for the client: RFC 8628 §3.2's answer (see the module doc)."""
        form = {name: value for name, value in form.items() if value != ""}
        if self._limit is not None and source_ip is not None:
            self._limit(source_ip, now)
        client = self._clients.resolve(*credentials(form, basic))
        if "scope" in form:
            raise InvalidScope("device logins carry no scope: send none")
        for _ in range(CODE_ATTEMPTS):
            user_code = new_user_code(self._rand_below)
            device_code = new_device_code(user_code, self._rand)
            login = DeviceLoginRecord(
                device_login_id=new_id(self._rand),
                device_code_hash=device_code_hash(device_code),
                client_id=client.client_id,
                created_at=now,
                code_expires_at=now + EXPIRES_IN,
                interval=INTERVAL,
                next_poll_at=now,
                audience=client.audience,
                source_ip=clean_source_ip(source_ip),
                user_agent=clean_user_agent(user_agent),
            )
            if self._logins.create(user_code, login, now=now):
                break
        else:
            raise StoreUnavailable("no free user code was found; try again")
        shown = display(user_code)
        return {
            "device_code": device_code,
            "user_code": shown,
            "verification_uri": self._verification_uri,
            "verification_uri_complete": f"{self._verification_uri}?user_code={shown}",
            "expires_in": EXPIRES_IN,
            "interval": INTERVAL,
        }

    # -- POST /oauth/token, grant_type=urn:ietf:params:oauth:grant-type:device_code --------------

    def token(self, form: dict[str, str], basic: tuple[str, str] | None, now: int) -> TokenGrant:
        """A device's poll (see the module doc); registered on OAuthService."""
        device_code = string_field(form, "device_code", max_length=MAX_DEVICE_CODE_LENGTH)
        client_id, secret = credentials(form, basic)
        if "scope" in form:
            raise InvalidScope("device logins carry no scope: send none")
        user_code, code_hash = parse_device_code(device_code)
        self._clients.authenticate(client_id, secret)
        try:
            self._logins.poll(
                user_code, code_hash, client_id=client_id, now=now, next_from=now - POLL_LEEWAY
            )
        except DeviceLoginRefused as refused:
            return self._refused(refused.login, user_code, code_hash, client_id, now)
        raise DeviceGrantPending("the user has not confirmed the login yet: poll again")

    def _refused(
        self,
        login: DeviceLoginRecord | None,
        user_code: str,
        code_hash: bytes,
        client_id: str,
        now: int,
    ) -> TokenGrant:
        """A poll the login's write refused: why, in the RFC's words (see the module doc)."""
        if login is None or not hmac.compare_digest(login.device_code_hash, code_hash):
            raise GrantError("device_code is unknown")
        if not hmac.compare_digest(
            login.client_id.encode("utf-8"), client_id.encode("utf-8", "surrogatepass")
        ):
            raise GrantError("device_code was issued to another client")
        if login.status == ISSUED:
            raise GrantError("device_code was already used")
        if login.expired(now):
            raise DeviceCodeExpired("the device login expired: start a new one")
        if login.status == DENIED:
            raise DeviceLoginDenied("the user denied the login")
        if login.status == CONFIRMED:
            return self._issue(login, user_code, code_hash, now)
        next_interval = login.interval + SLOW_DOWN_STEP
        self._logins.slow_down(
            user_code, code_hash, now=now, step=SLOW_DOWN_STEP, next_from=now - POLL_LEEWAY
        )
        raise DeviceSlowDown(f"polled too soon: poll every {next_interval} s from now on")

    def _issue(
        self, login: DeviceLoginRecord, user_code: str, code_hash: bytes, now: int
    ) -> TokenGrant:
        assert login.user_id is not None
        client = self._clients.resolve(login.client_id, None)  # still allowed?
        user = self._users.get(login.user_id)
        session, tokens = self._sessions.prepare(
            login.user_id,
            client_id=login.client_id,
            now=now,
            device=DeviceInfo(user_agent=login.user_agent, source_ip=login.source_ip),
            custom_claims=user.custom_claims if user is not None else None,
            profile_claims=profile_claims(user) if user is not None else None,
            audience=login.audience,
        )
        try:
            self._logins.issue(user_code, code_hash, session, now=now)
        except DeviceLoginRefused as e:  # another poll got the tokens, or the time ran out
            if e.login is not None and e.login.status != ISSUED and e.login.expired(now):
                raise DeviceCodeExpired("the device login expired: start a new one") from e
            raise GrantError("device_code was already used") from e
        self._events.user_logged_in(
            login.user_id,
            session.session_id,
            client_id=login.client_id,
            appid=client.appid,
            is_new=False,
            now=now,
        )
        self._sessions.enforce_cap(session, now)  # AUTH_MAX_SESSIONS_PER_USER
        return TokenGrant(tokens.response(now), login.user_id)
