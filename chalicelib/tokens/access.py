"""Access tokens: RS256 JWTs per RFC 9068, minted and checked against the signing key set."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import jwt

from chalicelib.crypto import b64url
from chalicelib.errors import ExpiredToken, InvalidToken
from chalicelib.signing_keys import KeySetProvider

ALGORITHM = "RS256"
TOKEN_TYPE = "at+jwt"  # noqa: S105 - the RFC 9068 typ, not a secret
MAX_TOKEN_LENGTH = 8192
CLOCK_SKEW = 60  # seconds an `iat` may lie in the future (another container's clock)
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti", "client_id"]
# Issue 25, item 1: the tokens of a user pending deletion (a session marked `restricted` with
# DELETION_PENDING) carry this `aud`, so that no backend takes them for its own (its `aud`
# check refuses them), and the claim `deletion_pending`. wxauth accepts them only on the
# account's own routes (chalicelib/api/edge.py); /auth/verify and introspection refuse them.
DELETION_PENDING = "deletion_pending"
DELETION_PENDING_AUDIENCE = "wxauth:deletion-pending"


def seconds_left(expires_at: int, now: int) -> int:
    """Whole seconds certainly left before `expires_at`, for an `expires_in`.

    `now` is the current time rounded down to the second (the service reads the clock once
    per request as an int), so the true time may be up to a second later: `expires_at - now`
    would promise up to a second that is not there.
    """
    return max(0, expires_at - now - 1)


CLIENT_SUBJECT_PREFIX = "client:"


def client_subject(client_id: str) -> str:
    """The `sub` of a client-credentials token: never equal to a user id (which has no ':')."""
    return CLIENT_SUBJECT_PREFIX + client_id


@dataclass(frozen=True)
class AccessClaims:
    subject: str
    session_id: str | None
    client_id: str
    expires_at: int
    issued_at: int
    token_id: str
    scope: str | None = None
    # Every claim of the verified token as it was signed (custom `ext` and `phone_number`
    # included): what RFC 7662 introspection answers (chalicelib/introspection.py).
    claims: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)

    @property
    def deletion_pending(self) -> bool:
        """A token of a user pending deletion (DELETION_PENDING_AUDIENCE)."""
        return self.claims.get("aud") == DELETION_PENDING_AUDIENCE

    @property
    def user_id(self) -> str | None:
        """The user of a user's token (one from a login session); None for a client's."""
        if self.session_id is None or self.subject.startswith(CLIENT_SUBJECT_PREFIX):
            return None
        return self.subject


class AccessTokens:
    """Mints and checks access tokens; `now` always comes from the caller."""

    def __init__(
        self,
        keys: KeySetProvider,
        *,
        issuer: str,
        audience: str,
        ttl: int,
        rand: Callable[[int], bytes] = secrets.token_bytes,
        other_audiences: Callable[[], Collection[str]] | None = None,
    ) -> None:
        """`other_audiences()`: the `aud` values accepted besides `audience` (the registered
        apps', chalicelib/identity/apps.py); asked only for a token whose `aud` is not
        `audience`."""
        self._other_audiences = other_audiences
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl
        self._rand = rand

    @property
    def ttl(self) -> int:
        return self._ttl

    def mint(
        self,
        *,
        subject: str,
        client_id: str,
        now: int,
        session_id: str | None = None,
        scope: str | None = None,
        extra: Mapping[str, object] | None = None,
        audience: str | None = None,
    ) -> tuple[str, int]:
        """Return (token, exp).

        `iat` is `now`, the second of issue rounded down; `exp` is `iat + ttl + 1`, so that the
        token lives at least `ttl` seconds however late in its second it was issued, and an
        `expires_in` of `ttl` (`seconds_left(exp, now)`) never promises more than `exp` gives.
        `extra`: further claims (e.g. `phone_number`), which never replace the ones above.
        """
        expires_at = now + self._ttl + 1
        claims: dict[str, object] = {
            **(extra or {}),
            "iss": self._issuer,
            "sub": subject,
            "aud": audience or self._audience,
            "exp": expires_at,
            "iat": now,
            "jti": b64url(self._rand(16)),
            "client_id": client_id,
        }
        if session_id is not None:
            claims["sid"] = session_id
        if scope is not None:
            claims["scope"] = scope
        key = self._keys.get().signing_key(now)
        token = jwt.encode(
            claims,
            key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": TOKEN_TYPE},
        )
        return token, expires_at

    def check(self, token: object, now: int, *, deletion_pending: bool = False) -> AccessClaims:
        """Verify signature (RS256 only), `typ`, `iss`, `aud`, then `exp` against `now`.
        `deletion_pending`: also accept the `aud` of a user pending deletion's tokens."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("access token missing or too long")
        header = _unverified_header(token)
        if str(header.get("typ", "")).lower() not in (TOKEN_TYPE, "application/" + TOKEN_TYPE):
            raise InvalidToken("access token has the wrong typ")
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("access token algorithm not accepted")
        kid = header.get("kid")
        key = self._keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("access token signed by an unknown key")
        try:
            claims = self._decode(token, key.public_key, self._audience)
        except jwt.InvalidAudienceError as e:
            others = list(self._other_audiences()) if self._other_audiences else []
            if deletion_pending:
                others.append(DELETION_PENDING_AUDIENCE)
            if not others:
                raise InvalidToken(f"access token rejected ({type(e).__name__})") from e
            try:
                claims = self._decode(token, key.public_key, others)
            except jwt.PyJWTError as again:
                raise InvalidToken(f"access token rejected ({type(again).__name__})") from again
        except jwt.PyJWTError as e:
            raise InvalidToken(f"access token rejected ({type(e).__name__})") from e
        exp, iat = claims["exp"], claims["iat"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (exp, iat)):
            raise InvalidToken("access token time claims are not integers")
        if iat > now + CLOCK_SKEW:
            raise InvalidToken("access token issued in the future")
        if now >= exp:
            raise ExpiredToken("access token expired")
        sid = claims.get("sid")
        scope = claims.get("scope")
        if not isinstance(claims["sub"], str) or (sid is not None and not isinstance(sid, str)):
            raise InvalidToken("access token claims malformed")
        return AccessClaims(
            subject=claims["sub"],
            session_id=sid,
            client_id=str(claims["client_id"]),
            expires_at=exp,
            issued_at=iat,
            token_id=str(claims["jti"]),
            scope=scope if isinstance(scope, str) else None,
            claims=claims,
        )

    def _decode(self, token: str, public_key: object, audience: str | list[str]) -> dict:
        return jwt.decode(
            token,
            public_key,  # type: ignore[arg-type]
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=self._issuer,
            # Time claims are checked below against the caller's clock.
            options={
                "require": _REQUIRED,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )


def _unverified_header(token: str) -> dict[str, object]:
    """The JOSE header, read only to pick the key: jwt.decode then verifies the whole token.

    Decodes the first segment alone; `jwt.get_unverified_header` would decode and validate all
    three, and `jwt.decode` does that again (a third of a verify's cost, bench/RESULTS.md).
    """
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError) as e:
        raise InvalidToken("access token is not a JWT") from e
    if not isinstance(header, dict):
        raise InvalidToken("access token is not a JWT")
    return header
