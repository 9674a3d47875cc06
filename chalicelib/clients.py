"""OAuth clients for the client credentials grant: their secrets, scopes and authentication.

A client is a backend (or a mini-program without user accounts) that gets access tokens for
itself. Its item (`CLIENT`/`CLIENT#<client_id>`) is chalicelib/store/clients.py's.

The secret is 256 random bits, shown once at creation, and stored only as
`scrypt$<n>$<r>$<p>$<salt>$<hash>` (a per-client 16-byte salt; the parameters are kept with the
hash so that they can be raised later without breaking existing clients).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chalicelib.crypto import b64url
from chalicelib.errors import ClientAuthError, ClientExists, InvalidScope, RequestError
from chalicelib.store.clients import ClientRecord, Clients

__all__ = [
    "ClientRecord",
    "ClientStore",
    "ScryptParams",
    "client_credentials",
    "grant_scope",
    "parse_scope",
]

CLIENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}")
USER_ID_RE = re.compile(r"[A-Za-z0-9_-]{22}")  # chalicelib.login.user_id_for
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,64}")
MAX_SCOPES = 32
MAX_SECRET_LENGTH = 256


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost: 128 * r * n bytes of memory (16 MiB for the default) and ~50 ms of CPU."""

    n: int = 2**14
    r: int = 8
    p: int = 1


DEFAULT_PARAMS = ScryptParams()


def hash_secret(
    secret: str, *, params: ScryptParams = DEFAULT_PARAMS, salt: bytes | None = None
) -> str:
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = _scrypt(secret, salt, params.n, params.r, params.p)
    return "$".join(
        ["scrypt", str(params.n), str(params.r), str(params.p), b64url(salt), b64url(digest)]
    )


def verify_secret(secret: str, encoded: str) -> bool:
    """True if `secret` hashes to `encoded`; False for a wrong secret or a malformed hash."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64url(digest)
        actual = _scrypt(secret, _unb64url(salt), int(n), int(r), int(p))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * r * n * p + 2**20, dklen=32
    )


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_scope(scope: str) -> tuple[str, ...]:
    """A space-separated scope string (RFC 6749 §3.3) as unique tokens, in order."""
    tokens = [token for token in scope.split(" ") if token]
    if not all(SCOPE_TOKEN_RE.fullmatch(token) for token in tokens):
        raise InvalidScope("scope must be space-separated printable ASCII tokens")
    unique = tuple(dict.fromkeys(tokens))
    if len(unique) > MAX_SCOPES:
        raise InvalidScope(f"at most {MAX_SCOPES} scopes")
    return unique


def grant_scope(client: ClientRecord, requested: str | None) -> tuple[str, ...]:
    """The scopes to grant `client`: all of its own by default, else a subset of them."""
    if requested is None:
        return client.scopes
    wanted = parse_scope(requested)
    if not wanted:
        return client.scopes
    beyond = [scope for scope in wanted if scope not in client.scopes]
    if beyond:
        raise InvalidScope("the requested scope exceeds the scopes granted to this client")
    return wanted


def validate_client_id(client_id: str) -> str:
    """A client id for a new client: CLIENT_ID_RE, and never of the form of a user id.

    Client-credentials tokens carry `sub` `client:<client_id>`, which no user id can equal;
    refusing ids that look like user ids (22 base64url characters) keeps the two apart in
    logs, admin commands and any consumer that reads `client_id` where it meant `sub`.
    """
    if not CLIENT_ID_RE.fullmatch(client_id):
        raise RequestError(
            "client_id must be 3 to 64 characters: letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    if USER_ID_RE.fullmatch(client_id):
        raise RequestError(
            "client_id must not be 22 letters, digits, '_' or '-': that is the form of a user id"
        )
    return client_id


class ClientStore:
    """Registers, reads, lists, enables/disables and authenticates OAuth clients."""

    def __init__(
        self,
        store: Clients,
        *,
        params: ScryptParams = DEFAULT_PARAMS,
        rand: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._store = store
        self._params = params
        self._rand = rand
        self._dummy_hash: str | None = None

    def create(
        self, scopes: Iterable[str], *, now: int, client_id: str | None = None
    ) -> tuple[ClientRecord, str]:
        """Register a client; return it and its secret (the only time the secret exists)."""
        if client_id is None:
            client_id = "c-" + b64url(self._rand(12))
        validate_client_id(client_id)
        scope_list = parse_scope(" ".join(scopes))
        if not scope_list:
            raise InvalidScope("a client needs at least one scope")
        secret = b64url(self._rand(32))
        record = ClientRecord(
            client_id=client_id,
            secret_hash=hash_secret(secret, params=self._params, salt=self._rand(16)),
            scopes=scope_list,
            enabled=True,
            created_at=now,
        )
        if not self._store.add(record):
            raise ClientExists(f"client {client_id} already exists")
        return record, secret

    def get(self, client_id: str) -> ClientRecord | None:
        if not CLIENT_ID_RE.fullmatch(client_id):
            return None
        return self._store.get(client_id)

    def list_clients(self) -> list[ClientRecord]:
        return self._store.all()

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Enable or disable a client; False if there is no such client."""
        if not CLIENT_ID_RE.fullmatch(client_id):
            return False
        return self._store.set_enabled(client_id, enabled)

    def authenticate(self, client_id: str, secret: str) -> ClientRecord:
        """The enabled client whose secret this is; ClientAuthError otherwise.

        An unknown client costs one scrypt too, so timing does not tell which ids exist.
        """
        client = self.get(client_id) if len(client_id) <= 64 else None
        if len(secret) > MAX_SECRET_LENGTH:
            secret = ""
        encoded = client.secret_hash if client is not None else self._dummy()
        matches = verify_secret(secret, encoded)
        if client is None or not matches or not client.enabled:
            raise ClientAuthError("client authentication failed")
        return client

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = hash_secret(b64url(self._rand(32)), params=self._params)
        return self._dummy_hash


def client_credentials(form: dict[str, str], basic: tuple[str, str] | None) -> tuple[str, str]:
    """(client_id, secret) from exactly one method: HTTP Basic (`basic`, as
    http_input.basic_credentials decoded it) or the form's client_id and client_secret
    (RFC 6749 §2.3.1), as /oauth/token and /oauth/introspect take them."""
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if basic is not None:
        if form_secret is not None:
            raise RequestError("authenticate with HTTP Basic or client_secret, not both")
        if form_id is not None and form_id != basic[0]:
            raise RequestError("client_id differs from the HTTP Basic user")
        return basic
    if form_secret is not None and form_id is None:
        raise RequestError("client_secret needs client_id")
    if form_id is None or form_secret is None:
        raise ClientAuthError(
            "client authentication required: HTTP Basic, or client_id and client_secret"
        )
    return form_id, form_secret
