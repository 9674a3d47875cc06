"""Verify wxauth access tokens in a Python backend (FastAPI, Django, Flask...) with PyJWT.

    verifier = Verifier(issuer="https://auth.example.com", audience="wxauth")
    claims = verifier.verify(token)        # raises jwt.InvalidTokenError if it is not good

What it checks, as wxauth's own /auth/verify does (docs/backend.md, "Verify tokens in your
backend"): the signature with RS256 only, against the issuer's JWKS (PyJWKClient: fetched once,
cached, fetched again for an unknown `kid`, so key rotation needs nothing here); `typ` at+jwt
(RFC 9068); `iss`; `aud`; `exp` and `iat` with a leeway. What a JWT alone cannot say is whether
its session was revoked meanwhile (logout, ban, reuse): for that, see `introspect` below.

Needs `pyjwt[crypto]` (and `requests` for `introspect`).
"""

from __future__ import annotations

from typing import Any

import jwt
import requests

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a JOSE type, not a secret


class Verifier:
    def __init__(
        self, issuer: str, audience: str, *, jwks_uri: str | None = None, leeway: int = 60
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.jwks = jwt.PyJWKClient(jwks_uri or f"{issuer}/.well-known/jwks.json", lifespan=300)

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims (`sub`: the user id, `sid`: the session, `client_id`, ...)."""
        if jwt.get_unverified_header(token).get("typ") != ACCESS_TOKEN_TYPE:
            raise jwt.InvalidTokenError("not an access token (typ at+jwt)")
        key = self.jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            issuer=self.issuer,
            audience=self.audience,
            leeway=self.leeway,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
        )


# FastAPI, for instance:
#
#   from fastapi import Depends, HTTPException
#   from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
#
#   verifier = Verifier(issuer=..., audience="wxauth")
#
#   def user(credentials: HTTPAuthorizationCredentials = Depends(HTTPBearer())) -> dict:
#       try:
#           return verifier.verify(credentials.credentials)
#       except jwt.InvalidTokenError:
#           raise HTTPException(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


# -- revocation: RFC 7662 token introspection -----------------------------------------------
# POST /oauth/introspect (docs/backend.md, "Revoked tokens: introspection"). Call it where a
# revoked session must be refused at once (payments, account changes); elsewhere an access
# token lives at most AUTH_ACCESS_TTL (30 min) anyway. Authlib's OAuth2Session.introspect_token
# does the same.
def introspect(
    token: str, *, introspection_endpoint: str, client_id: str, client_secret: str
) -> dict[str, Any]:
    """RFC 7662: {"active": false} for a token that is not good now (expired, a revoked or
    ended session, anything else), else {"active": true, "sub", "sid", "exp", "client_id",
    ...}: the token's claims. The caller is an OAuth client of wxauth holding the scope
    `introspect` (`wxauth-admin client create --scopes introspect`), with HTTP Basic."""
    response = requests.post(
        introspection_endpoint,
        data={"token": token, "token_type_hint": "access_token"},
        auth=(client_id, client_secret),
        headers={"Accept": "application/json"},
        timeout=5,
    )
    response.raise_for_status()
    answer = response.json()
    if not isinstance(answer.get("active"), bool):
        raise ValueError('introspection answered no "active"')
    return answer
