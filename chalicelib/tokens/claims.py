"""Custom claims: validated, stored on the user and their sessions, put in access tokens.

An operator sets a user's claims (`wxauth-admin user set-claims`): `set_claims` writes them on
the user's PROFILE and copies them onto each of the user's IDENTITY items and live SESSION
items, so that a refresh still makes one DynamoDB request (the rotation's UpdateItem returns
the session with its copy) and a returning login three (the identity's UpdateItem returns its
copy: chalicelib/identity/graph.py). A login copies them into the new session; a user's first
login in another app writes them on the new identity (from the profile that login's write
returns), and a merge gives the moved identities the kept user's claims. Set-claims
thus reaches a live session at its next refresh; access tokens already issued keep their
claims until they expire.

In an access token the claims are one JSON object under NAMESPACE (`ext`), never at the top
level, so that no claim of an operator's can be confused with one of ours, today's or a
future one's, and a consumer reads them from one place. Names that collide with registered
JWT, OIDC or wxauth claims are refused anyway (RESERVED): a consumer that flattens `ext`
must not be able to mistake them either.

Optionally a pre-token hook (AUTH_TOKEN_HOOK_ARN, a Lambda function) is invoked at every mint
(login, refresh, a login's replay) and its answer `{"claims": {...}}` adds claims (a hook's
claim replaces a stored one of the same name). A hook that times out, fails, answers
FunctionError or junk takes the AUTH_TOKEN_HOOK_ON_ERROR path: `issue` (without its claims,
metric `TokenHookFailed`) or `refuse` (TokenHookUnavailable: 503 temporarily_unavailable).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.errors import InvalidClaims, NoSuchUser, TokenHookFailed, TokenHookUnavailable
from chalicelib.logs import Metrics

if TYPE_CHECKING:
    from chalicelib.store import SessionRecord, Store

if TYPE_CHECKING:
    from chalicelib.settings import Settings

NAMESPACE = "ext"  # the one access-token claim holding every custom claim
MAX_BYTES = 2048  # of the claims object as compact JSON (UTF-8), stored or hook's, merged
MAX_NAME_LENGTH = 64
MAX_DEPTH = 3  # the claims object is depth 1: a value may be an array or object two deep
_NAME_RE = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{MAX_NAME_LENGTH}}}")
# Registered JWT claims (RFC 7519 §4.1), the JOSE header's, RFC 9068's and RFC 8693's, OIDC's
# standard ones, and wxauth's own (today's and those an issue plans), compared
# case-insensitively. Not `roles`, `groups`, `entitlements`: RFC 9068 §2.2.3.1 gives them the
# meaning an operator's claims have, and under `ext` they cannot be taken for ours.
RESERVED = frozenset(
    {
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti",
        "sid", "client_id", "scope", "typ", "auth_time", "azp", "acr", "amr", "nonce",
        "cnf", "act", "may_act",
        "at_hash", "c_hash", "s_hash", "kid", "alg", "cty",
        "name", "email", "email_verified", "phone_number", "phone_number_verified",
        "preferred_username", "updated_at", "nickname", "picture",
        NAMESPACE, "wxauth", "openid", "unionid", "appid", "session_key", "device",
        "banned", "banned_at",
    }
)  # fmt: skip

TRIGGER_LOGIN = "login"
TRIGGER_REFRESH = "refresh"
ON_ERROR_POLICIES = ("issue", "refuse")
MAX_HOOK_ANSWER_BYTES = 16_384  # read no more of a hook's answer than this
def dumps(claims: Mapping[str, object]) -> str:
    """The canonical form: compact JSON, keys sorted (what is stored and size-checked)."""
    return json.dumps(claims, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def validate(value: object, *, what: str = "claims") -> dict[str, object]:
    """`value` as custom claims, or InvalidClaims saying what is wrong (never quoting values).

    A JSON object of at most MAX_BYTES (compact, UTF-8); names of 1 to MAX_NAME_LENGTH
    characters from `A-Z a-z 0-9 _ . : -`, none of RESERVED (case-insensitively); values
    strings, finite numbers, booleans, null, arrays and objects, nested MAX_DEPTH deep at most.
    """
    if not isinstance(value, dict):
        raise InvalidClaims(f"{what} must be a JSON object")
    for name in value:
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise InvalidClaims(
                f"{what}: names are 1 to {MAX_NAME_LENGTH} characters of A-Z a-z 0-9 _ . : -"
            )
        if name.lower() in RESERVED:
            raise InvalidClaims(f"{what}: {name!r} is a registered or wxauth claim name")
        _check_value(value[name], 1, what)
    try:
        size = len(dumps(value).encode("utf-8"))
    except (ValueError, UnicodeEncodeError) as e:  # lone surrogates
        raise InvalidClaims(f"{what} must be valid Unicode") from e
    if size > MAX_BYTES:
        raise InvalidClaims(f"{what} must be at most {MAX_BYTES} bytes as JSON ({size} given)")
    return dict(value)


def _check_value(value: object, depth: int, what: str) -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidClaims(f"{what}: numbers must be finite")
        return
    if not isinstance(value, (list, dict)):
        raise InvalidClaims(f"{what}: values must be JSON values")
    if depth >= MAX_DEPTH:
        raise InvalidClaims(f"{what}: values may nest at most {MAX_DEPTH - 1} levels deep")
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise InvalidClaims(f"{what}: object keys must be strings")
        items = list(value.values())
    else:
        items = value
    for item in items:
        _check_value(item, depth + 1, what)


def parse(text: str) -> dict[str, object]:
    """Claims given as JSON text (the command line's argument), validated."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InvalidClaims("claims must be JSON text") from e
    return validate(value)


def loads(stored: str | None) -> dict[str, object]:
    """The claims a store attribute holds ({} for none)."""
    return json.loads(stored) if stored else {}


# -- storage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetClaimsResult:
    user_id: str
    claims: dict[str, object]
    sessions_updated: int


def set_claims(
    store: Store, user_id: str, claims: Mapping[str, object] | None, *, now: int
) -> SetClaimsResult:
    """Write `claims` (None or {}: clear them) on the user and copy them onto every live session.

    1 UpdateItem (the profile; NoSuchUser if there is none), a Query (a page per 1 MB of
    sessions and identities), 1 UpdateItem per identity (chalicelib/identity: a returning
    login reads the claims from its identity's UpdateItem) and 1 per live session, guarded so
    that an identity moved to another user, or a session revoked or deleted meanwhile, is left
    alone. A login that read the profile before this
    write may still start a session with the old claims: run it again to be sure.
    """
    value = dumps(validate(dict(claims))) if claims else None
    if not store.users.set_claims(user_id, value, now=now):
        raise NoSuchUser(f"no user {user_id}")
    store.identities.set_claims(user_id, value)
    updated = 0
    for session in store.sessions.of_user(user_id):
        if session.is_live(now) and store.sessions.set_claims(
            user_id, session.session_id, value
        ):
            updated += 1
    return SetClaimsResult(user_id=user_id, claims=loads(value), sessions_updated=updated)


# -- the pre-token hook -------------------------------------------------------------------------


class TokenHook:
    """Invokes the pre-token Lambda synchronously (`RequestResponse`) and checks its answer.

    `client` makes the botocore Lambda client, at the first call (a container that never
    mints never builds it). The payload holds the trigger, user and session ids, client_id,
    audience (the session's: its app's, else `audience`, AUTH_AUDIENCE) and the stored claims:
    never a token, a code, a session_key or a secret.
    """

    def __init__(
        self,
        client: Callable[[], Any],
        *,
        arn: str,
        audience: str,
        on_error: str = "issue",
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if on_error not in ON_ERROR_POLICIES:
            raise ValueError(f"on_error must be one of {ON_ERROR_POLICIES}")
        self._make_client = client
        self._lambda: Any = None
        self._arn = arn
        self._audience = audience
        self._on_error = on_error
        self._metrics = metrics or Metrics()
        self._clock = clock

    def claims(self, session: SessionRecord, stored: Mapping[str, object], trigger: str) -> dict:
        """The hook's claims for this mint ({} on the `issue` path of a failure); with `stored`
        they fit in MAX_BYTES."""
        payload = {
            "version": 1,
            "trigger": trigger,
            "user_id": session.user_id,
            "session_id": session.session_id,
            "client_id": session.client_id,
            "audience": session.audience or self._audience,  # the session's tokens' `aud`
            "claims": dict(stored),
        }
        started = self._clock()
        try:
            return self._invoke(payload, stored)
        except TokenHookFailed as e:
            reason = str(e)
        except Exception as e:  # noqa: BLE001 - whatever the client raised: never a 500
            reason = type(e).__name__
        self._metrics.count(
            "TokenHookFailed",
            reason=reason,
            on_error=self._on_error,
            trigger=trigger,
            latency_ms=round((self._clock() - started) * 1000, 1),
        )
        if self._on_error == "refuse":
            raise TokenHookUnavailable("the token hook failed; no token was issued, try again")
        return {}

    def _invoke(
        self, payload: dict[str, object], stored: Mapping[str, object]
    ) -> dict[str, object]:
        if self._lambda is None:
            self._lambda = self._make_client()
        response = self._lambda.invoke(
            FunctionName=self._arn,
            InvocationType="RequestResponse",
            Payload=json.dumps(payload).encode("utf-8"),
        )
        if response.get("FunctionError"):
            raise TokenHookFailed("FunctionError")
        if response.get("StatusCode") != 200:
            raise TokenHookFailed("StatusCode")
        body = response.get("Payload")
        raw = body.read(MAX_HOOK_ANSWER_BYTES + 1) if body is not None else b""
        if len(raw) > MAX_HOOK_ANSWER_BYTES:
            raise TokenHookFailed("answer too large")
        try:
            answer = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise TokenHookFailed("answer not JSON") from e
        if not isinstance(answer, dict) or set(answer) - {"claims"}:
            raise TokenHookFailed('answer not {"claims": {...}}')
        claims = answer.get("claims")
        if claims is None:
            return {}
        try:
            added = validate(claims, what="the hook's claims")
        except InvalidClaims as e:
            raise TokenHookFailed("claims invalid") from e
        if len(dumps({**stored, **added}).encode("utf-8")) > MAX_BYTES:
            raise TokenHookFailed("claims too large with the stored ones")
        return added


class TokenClaims:
    """What SessionManager adds to each access token: `{NAMESPACE: {...}}`, or nothing.

    The stored claims come from the session item the mint already has (no DynamoDB request);
    the hook, if configured, is called once per mint. Stored and hook claims merged must stay
    within MAX_BYTES, else the hook's answer counts as a failure.
    """

    def __init__(self, hook: TokenHook | None = None) -> None:
        self._hook = hook

    def __call__(self, session: SessionRecord) -> dict[str, object]:
        merged = loads(session.custom_claims)
        if self._hook is not None:
            # A session never rotated mints for a login (or a login's replay).
            trigger = TRIGGER_LOGIN if session.rotated_at is None else TRIGGER_REFRESH
            merged = {**merged, **self._hook.claims(session, merged, trigger)}
        return {NAMESPACE: merged} if merged else {}


def build(settings: Settings, client: Callable[[], Any], metrics: Metrics | None) -> TokenClaims:
    """The TokenClaims of `settings` (with a hook when AUTH_TOKEN_HOOK_ARN is set)."""
    if not settings.token_hook_arn:
        return TokenClaims()
    hook = TokenHook(
        client,
        arn=settings.token_hook_arn,
        audience=settings.audience,
        on_error=settings.token_hook_on_error,
        metrics=metrics,
    )
    return TokenClaims(hook)
