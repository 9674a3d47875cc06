"""The one table from domain errors to answers (the contract's error body: `error`,
`error_description`, and `reason` where one is given), and the bare 500 of anything else,
whose log line names only the exception's type and place. chalicelib/api/edge.py answers with
them."""

from __future__ import annotations

import logging
import traceback

from chalice import Response

from chalicelib import logs
from chalicelib.errors import (
    AccessDenied,
    AccountStateError,
    AppDisabled,
    ClientAuthError,
    ConfigurationError,
    DeviceCodeExpired,
    DeviceGrantPending,
    DeviceLoginDenied,
    DeviceLoginNotFound,
    DeviceSlowDown,
    ForgedMessage,
    GrantError,
    InsufficientScope,
    InvalidScope,
    MergedAway,
    PhoneInUse,
    RateLimited,
    RequestError,
    RiskyContent,
    SessionKeyExpired,
    SessionNotFound,
    StoreUnavailable,
    TokenError,
    TokenHookUnavailable,
    UnauthorizedClient,
    UnknownUser,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UserBanned,
    WeChatRateLimited,
    WeChatTokenInvalid,
    WeChatUnavailable,
    WeChatUserBlocked,
    WxAuthError,
)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# The answers for requests that reach no view: a path that is no route, a method a route lacks.
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"

# Domain error -> (HTTP status, RFC 6749 error code). First match wins.
ERROR_TABLE: list[tuple[type[WxAuthError], int, str]] = [
    (RequestError, 400, "invalid_request"),
    (GrantError, 400, "invalid_grant"),
    (TokenError, 401, "invalid_token"),
    (ClientAuthError, 401, "invalid_client"),
    (UnsupportedGrantType, 400, "unsupported_grant_type"),
    (InvalidScope, 400, "invalid_scope"),
    (InsufficientScope, 403, "insufficient_scope"),
    (AppDisabled, 400, "unauthorized_client"),  # RFC 6749 §5.2: this app may not log in
    # RFC 8628 §3.5, a device's poll (chalicelib/device/): each its own code, all 400
    (DeviceGrantPending, 400, "authorization_pending"),
    (DeviceSlowDown, 400, "slow_down"),
    (DeviceLoginDenied, 400, "access_denied"),
    (DeviceCodeExpired, 400, "expired_token"),
    (DeviceLoginNotFound, 404, NOT_FOUND),  # no device login has this user code
    (UnauthorizedClient, 400, "unauthorized_client"),  # issue 24: a client of another grant
    (UnsupportedResponseType, 400, "unsupported_response_type"),  # GET /oauth/authorize
    (WeChatUserBlocked, 403, "access_denied"),
    (AccessDenied, 403, "access_denied"),  # a web sign-in the user refused (issue 24)
    (UserBanned, 403, "access_denied"),
    (MergedAway, 403, "access_denied"),  # an identity a merge left behind (docs/operators.md)
    (ForgedMessage, 403, "access_denied"),  # a push WeChat did not sign (issue 24, item 4)
    (AccountStateError, 403, "access_denied"),  # issue 25: reason deletion_pending, account_deleted
    (SessionNotFound, 404, NOT_FOUND),
    (UnknownUser, 404, NOT_FOUND),  # GET /users/{user_id}/identities
    (PhoneInUse, 409, "phone_in_use"),
    (RiskyContent, 400, "risky_content"),  # PATCH /me: msg_sec_check said risky (issue 25)
    (SessionKeyExpired, 400, "session_key_expired"),  # POST /auth/decrypt: log in again
    (WeChatRateLimited, 429, "slow_down"),
    (RateLimited, 429, "slow_down"),  # AUTH_LIMIT_* (chalicelib/limits.py)
    (WeChatUnavailable, 503, "temporarily_unavailable"),
    (WeChatTokenInvalid, 503, "temporarily_unavailable"),  # refused again after one refresh
    (StoreUnavailable, 503, "temporarily_unavailable"),
    (TokenHookUnavailable, 503, "temporarily_unavailable"),  # AUTH_TOKEN_HOOK_ON_ERROR=refuse
    (ConfigurationError, 500, "server_error"),
]


def error_response(error: WxAuthError) -> tuple[Response, str]:
    status, code = next(
        ((status, code) for kind, status, code in ERROR_TABLE if isinstance(error, kind)),
        (500, "server_error"),
    )
    description = str(error) if status < 500 else "the service is misconfigured; see its logs"
    headers = dict(NO_STORE)
    if code in ("invalid_token", "insufficient_scope"):
        headers["WWW-Authenticate"] = f'Bearer realm="wxauth", error="{code}"'
    elif code == "invalid_client":
        # RFC 7235 §3.1: every 401 carries a challenge; RFC 6749 §5.2: Basic's, when used.
        headers["WWW-Authenticate"] = 'Basic realm="wxauth"'
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = {"error": code, "error_description": description}
    if isinstance(error, (GrantError, AccountStateError)) and error.reason:
        body["reason"] = error.reason  # session_evicted (issue 21), deletion_pending (issue 25)
    return Response(body=body, status_code=status, headers=headers), code


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"


def internal_error(error: BaseException, request_id: str) -> Response:
    """A bare 500; the log line has only the type and place: messages of foreign exceptions
    may quote secrets."""
    logs.log_event(
        "unhandled_exception",
        level=logging.ERROR,
        error_type=type(error).__name__,
        where=_where(error),
        request_id=request_id,
    )
    return Response(
        body={"error": "server_error", "error_description": "internal error"},
        status_code=500,
        headers=dict(NO_STORE),
    )
