"""The OpenID Connect discovery document (`/.well-known/openid-configuration`) of a deployment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.settings import Settings
from chalicelib.tokens.claims import NAMESPACE as CUSTOM_CLAIMS_NAMESPACE


def openid_configuration(settings: Settings, grant_types: Sequence[str]) -> dict[str, Any]:
    """The endpoints under the issuer, and what the tokens and the token endpoint support."""
    issuer = settings.issuer.rstrip("/")
    return {
        "issuer": settings.issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "grant_types_supported": list(grant_types),
        # none: the mini-program (a public client) refreshes; secrets: client credentials
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": ["none"],
        # RFC 7662, for OAuth clients holding the scope `introspect` (chalicelib/introspection.py)
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        # RFC 8628: scan-to-login on a PC or TV through the mini-program (chalicelib/device/)
        "device_authorization_endpoint": f"{issuer}/oauth/device_authorization",
        # Websites sign in with WeChat through the authorization code grant, PKCE S256 only,
        # and the answer names its issuer (RFC 9207; chalicelib/weblogin/, issue 24, item 2).
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id", "scope"]
        + (["phone_number"] if settings.phone_claim else [])
        + (["nickname", "picture"] if settings.profile_claim else [])  # chalicelib/profile.py
        + [CUSTOM_CLAIMS_NAMESPACE],  # custom claims (chalicelib/tokens/claims.py)
    }
