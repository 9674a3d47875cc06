"""Every exception wxauth raises, under one root (WxAuthError), with a family per layer.

Only the HTTP edge (chalicelib/api/edge.py) knows HTTP: it maps each family to a status and an
RFC 6749 error code. Messages are for developers and never carry a token, a code, a
session_key or a secret.
"""

from __future__ import annotations

from typing import Any


class WxAuthError(Exception):
    """Root of every error wxauth raises on purpose."""


class ConfigurationError(WxAuthError):
    """The service is misconfigured (settings, WeChat appid/secret, keys)."""


class RequestError(WxAuthError):
    """The request is malformed: bad JSON, wrong types, missing or oversized fields."""


class InvalidClaims(RequestError):
    """Custom claims are not a bounded JSON object of allowed names and JSON values."""


class GrantError(WxAuthError):
    """A refresh token or WeChat code cannot be exchanged (unknown, expired, revoked, reused)."""

    reason: str | None = None  # the error body's `reason`, where a client must tell it apart


class SessionEvicted(GrantError):
    """The refresh token's session was ended by the cap on sessions per user (a later login)."""

    reason = "session_evicted"


class ReuseDetected(GrantError):
    """A rotated refresh token came back after the grace window; its session was revoked."""


class ClientAuthError(WxAuthError):
    """OAuth client authentication failed."""


class UnauthorizedClient(WxAuthError):
    """The client may not use this grant or flow (RFC 6749 §5.2 `unauthorized_client`)."""


class UnsupportedResponseType(WxAuthError):
    """The authorization endpoint answers only `response_type=code` (RFC 6749 §4.1.2.1)."""


class AccessDenied(WxAuthError):
    """The user did not allow a web sign-in at WeChat (RFC 6749 §4.1.2.1 `access_denied`)."""


class ClientExists(WxAuthError):
    """An OAuth client with this client_id is already registered."""


class UnsupportedGrantType(WxAuthError):
    """The token endpoint does not support the requested grant_type."""


class InvalidScope(WxAuthError):
    """The requested scope is malformed or exceeds the scopes granted to the client."""


class InsufficientScope(WxAuthError):
    """A genuine access token lacks the scope a protected route requires."""


class TokenError(WxAuthError):
    """An access token is not acceptable; `reason` is `invalid`, `expired` or `revoked`."""

    reason = "invalid"


class InvalidToken(TokenError):
    """Not a well-formed, correctly signed access token of ours."""

    reason = "invalid"


class ExpiredToken(TokenError):
    """A genuine access token whose `exp` has passed."""

    reason = "expired"


class RevokedToken(TokenError):
    """A genuine access token whose session was revoked or has ended."""

    reason = "revoked"


class WeChatError(WxAuthError):
    """A WeChat API call did not give us what we asked for."""


class WeChatCodeRejected(WeChatError, GrantError):
    """WeChat rejected the code (invalid, used or missing: 40029, 40163, 41008)."""


class WeChatUserBlocked(WeChatError):
    """WeChat flagged the user as high-risk (40226)."""


class WeChatRateLimited(WeChatError):
    """WeChat's quota for this appid is exhausted (45011; 45009 for stable_token), or our own
    daily budget of forced access-token refreshes is."""

    retry_after = 60


class WeChatQuotaExhausted(WeChatRateLimited):
    """A paid or daily WeChat quota is used up (1400001, 45009): not before long, if today."""

    retry_after = 3600


class WeChatUnavailable(WeChatError):
    """WeChat failed or timed out, also after one retry (-1, transport errors)."""

    retry_after = 5


class WeChatBusy(WeChatUnavailable):
    """WeChat answered -1 (system busy), also to the one retry."""


class WeChatAttemptFailed(WxAuthError):
    """One attempt of a WeChat call failed in a way worth one more try (the client's own
    signal, never raised out of it: after the retry it becomes a WeChatError)."""

    def __init__(self, message: str, *, maybe_sent: bool = False, busy: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent  # WeChat may have acted on the request (it was sent)
        self.busy = busy  # WeChat answered -1 (system busy): WeChatBusy if the retry is too


class WeChatConfigError(WeChatError, ConfigurationError):
    """WeChat rejected our appid or secret (40013, 40125, 41002, 41004)."""


class PhoneInUse(WxAuthError):
    """The phone number is bound to another user and AUTH_PHONE_CONFLICT is `refuse`."""


class WeChatIpNotAllowed(WeChatConfigError):
    """WeChat refused our egress IP: not in the API IP allowlist (40164, 89501, 89503, ...)."""


class WeChatTokenInvalid(WeChatError):
    """WeChat refused the server access_token (40001, 42001, 40014)."""

    retry_after = 5


class StoreError(WxAuthError):
    """The session store failed."""


class StoreUnavailable(StoreError):
    """DynamoDB throttled or could not be reached, also after botocore's retries."""

    # With budgets.DYNAMODB.worst_case, part of the AUTH_REFRESH_GRACE rule (settings.py): a refresh
    # retried after this long must still find its rotation in the grace window.
    retry_after = 2


class ConditionFailed(StoreError):
    """A guarded write lost its race (a condition failed); handled inside chalicelib, never an
    answer of its own: the edge treats one that escapes as an internal error."""

    def __init__(
        self,
        operation: str,
        item: dict[str, Any] | None = None,
        reasons: list[str | None] | None = None,
        items: list[dict[str, Any] | None] | None = None,
    ) -> None:
        super().__init__(operation)
        self.item = item  # the item as it was, where the write asked for it back
        self.reasons = reasons  # a transaction's: one code (or None) per item, in order
        self.items = items  # a transaction's: each item as it was, where it asked for it back


class RotationRefused(ConditionFailed):
    """The presented hash is not current, or the session is not live; `session` as it was
    (a chalicelib.store.sessions.SessionRecord, None if there is no such session)."""

    def __init__(self, session: Any) -> None:
        super().__init__("update_item")
        self.session = session


class LoginPending(StoreUnavailable):
    """Another request is still exchanging this code; retry shortly."""

    retry_after = 1


class PhonePending(StoreUnavailable):
    """Another request is still exchanging this phone code; retry shortly."""

    retry_after = 1


class UnknownApp(RequestError):
    """`appid` names no app of this deployment (or is required: several apps are enabled)."""


class AppDisabled(WxAuthError):
    """The app is registered but disabled (`wxauth-admin app disable`): it may not log in."""


class MergeRefused(WxAuthError):
    """An admin merge of two users cannot be carried out; nothing was written."""


class UnknownUser(WxAuthError):
    """There is no user with this id (an operator's command or a backend named one)."""


class NoSuchUser(UnknownUser):
    """Claims were set for a user id that has no profile."""


class AdminError(WxAuthError):
    """An operator's command could not be carried out; the message says why."""


class TokenHookUnavailable(WxAuthError):
    """The pre-token hook failed and AUTH_TOKEN_HOOK_ON_ERROR is `refuse`: no token now."""

    retry_after = 2


class TokenHookFailed(WxAuthError):
    """Why one pre-token hook call gave no usable answer (a short reason, never the answer
    itself); handled inside the hook: the AUTH_TOKEN_HOOK_ON_ERROR path is taken."""


class UserBanned(WxAuthError):
    """The user is banned (`wxauth-admin user ban`): login and refresh are refused."""


class MergedAway(WxAuthError):
    """The login's user was merged into another (`wxauth-admin user merge`): no session of it
    is started. `merged_into` is the kept user's id (for the log, never for the client)."""

    def __init__(self, message: str, *, user_id: str, merged_into: str) -> None:
        super().__init__(message)
        self.user_id = user_id
        self.merged_into = merged_into


class AccountStateError(WxAuthError):
    """The account is being deleted (issue 25, item 1): 403 `access_denied` with a `reason`
    the client acts on."""

    reason = "deletion_pending"


class DeletionPending(AccountStateError):
    """The user asked for the account's deletion and its cooling-off period runs: only
    `GET /me`, `GET /me/export`, `DELETE /me/deletion` and logout accept its tokens."""

    reason = "deletion_pending"

    def __init__(self, message: str, *, requested_at: int = 0, erase_after: int = 0) -> None:
        super().__init__(message)
        self.requested_at = requested_at
        self.erase_after = erase_after


class AccountDeleted(AccountStateError):
    """The account's cooling-off period is over: it is erased (or about to be) and cannot
    log in, nor cancel; a later login of the same WeChat user is a new user."""

    reason = "account_deleted"


class SessionNotFound(WxAuthError):
    """The caller has no live session with this id (unknown, another user's, or ended)."""


class RateLimited(WxAuthError):
    """An abuse limit (AUTH_LIMIT_*, chalicelib/limits.py) refused the request for now."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds until the window that refused it ends


# -- issue 24, item 3: scan-to-login on a PC or TV, the device authorization grant (RFC 8628,
# chalicelib/device/). The token endpoint's answers to a device that polls, each its RFC code.


class DeviceGrantPending(WxAuthError):
    """The device login is not confirmed or denied yet (`authorization_pending`): poll again
    after the interval."""


class DeviceSlowDown(WxAuthError):
    """The device polled sooner than its interval (`slow_down`): the interval grew by 5 s."""


class DeviceLoginDenied(WxAuthError):
    """The user denied the device login (`access_denied`): stop polling."""


class DeviceCodeExpired(WxAuthError):
    """The device code's five minutes are over (`expired_token`): start a new device login."""


class DeviceLoginNotFound(WxAuthError):
    """No device login has this user code (unknown, or long expired)."""


class DeviceLoginClosed(GrantError):
    """The device login was already confirmed or denied (`reason` `device_login_decided`), or
    its five minutes are over (`device_login_expired`): nothing more to decide."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DeviceImagePending(StoreUnavailable):
    """Another request is still fetching this user code's mini-program code; retry shortly."""

    retry_after = 1


class DeviceLoginRefused(ConditionFailed):
    """A device login's guarded write found it in another state (issue 24, item 3); `login` is
    the login as it was (a chalicelib.store.devices.DeviceLoginRecord, None if there is none)."""

    def __init__(self, login: Any) -> None:
        super().__init__("device_login")
        self.login = login


class RiskyContent(WxAuthError):
    """WeChat's content security check (msg_sec_check) judged the text risky: not stored."""


class SessionKeyExpired(WxAuthError):
    """The session holds no usable WeChat session_key (replaced by a later wx.login, or never
    kept): the mini-program must log in again before its encrypted data can be read."""


# Issue 24, item 4: the third-party platform's pushes (chalicelib/wechat/push.py).
class ForgedMessage(WxAuthError):
    """A push to the third-party platform's URL that WeChat did not sign (or whose content does
    not decrypt under the platform's key, or names another platform): refused, nothing kept."""
