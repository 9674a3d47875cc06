"""OAuth clients: their secrets, scopes, redirect URIs and authentication.

A client is a backend (or a mini-program without user accounts) that gets access tokens for
itself (client credentials), or a website that signs its users in with WeChat through wxauth
(the authorization code grant, issue 24: its registered `redirect_uris`; a public client, a
page or an app that cannot keep a secret, has none and proves itself with PKCE alone). Its item
(`CLIENT`/`CLIENT#<client_id>`) is chalicelib/store/clients.py's.

The secret is 256 random bits, made here (never chosen by anyone), shown once at creation, and
stored only as `sha256$<b64url(SHA-256("wxauth/client-secret|" + secret))>`, compared in
constant time (issue 22, item 6).

Why a plain SHA-256, and neither scrypt nor an HMAC under a server key: a slow or keyed hash
protects guessable secrets from someone who has read the table; nobody guesses 256 random bits,
nor finds a SHA-256 preimage of them. scrypt (16 MiB and ~50 ms per check) bought nothing for
such secrets and handed that cost to anyone who posted a client id, unknown ones included, to
`/oauth/token`. A server key (the pepper of an HMAC) would be a secret to keep in Secrets
Manager, fetch at every cold start, rotate and never lose (as the signing keys and the app
secrets are), to guard what is already unguessable.

Clients created before carry `scrypt$<n>$<r>$<p>$<salt>$<hash>`: such a hash is still checked
(with scrypt, only for a client id that exists), and replaced by its SHA-256 form at the
client's next successful authentication, with a guarded update from the old hash to the new one.

A container keeps the clients it authenticated (at most CACHE_SIZE, each for `cache_ttl`
seconds, AUTH_CLIENTS_CACHE_TTL): the hash of the secret that was accepted, never the secret,
and the client's record. The same id and secret again cost no DynamoDB request; a disabled
client is refused by a container that cached it once that entry expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from chalicelib.crypto import b64url
from chalicelib.errors import (
    ClientAuthError,
    ClientExists,
    InvalidScope,
    RequestError,
    StoreUnavailable,
    UnauthorizedClient,
)
from chalicelib.logs import log_event
from chalicelib.store.clients import ClientRecord, Clients
from chalicelib.weblogin.params import MAX_REDIRECT_URIS, validate_redirect_uri

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
SHA256 = "sha256"
_SECRET_INFO = b"wxauth/client-secret|"
CACHE_SIZE = 256  # verified (client id, secret hash) pairs a container keeps
DEFAULT_CACHE_TTL = 60


@dataclass(frozen=True)
class ScryptParams:
    """The cost of the scrypt hashes of earlier releases: 128 * r * n bytes of memory (16 MiB
    for the default) and ~50 ms of CPU."""

    n: int = 2**14
    r: int = 8
    p: int = 1


DEFAULT_PARAMS = ScryptParams()


def _digest(secret: str) -> bytes:
    return hashlib.sha256(_SECRET_INFO + secret.encode("utf-8")).digest()


def hash_secret(secret: str) -> str:
    """What is stored of a client secret: `sha256$<b64url(digest)>` (see the module doc)."""
    return f"{SHA256}${b64url(_digest(secret))}"


def scrypt_hash(
    secret: str, *, params: ScryptParams = DEFAULT_PARAMS, salt: bytes | None = None
) -> str:
    """A hash as earlier releases stored it (tests and benchmarks make clients of then)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = _scrypt(secret, salt, params.n, params.r, params.p)
    return "$".join(
        ["scrypt", str(params.n), str(params.r), str(params.p), b64url(salt), b64url(digest)]
    )


def needs_rehash(encoded: str) -> bool:
    """True for a hash of an earlier release (scrypt), replaced at the next successful use."""
    return not encoded.startswith(f"{SHA256}$")


def verify_secret(secret: str, encoded: str) -> bool:
    """True if `secret` hashes to `encoded` (constant time); False for a wrong secret or a
    malformed hash. A scrypt hash of an earlier release costs a scrypt."""
    if not needs_rehash(encoded):
        return hmac.compare_digest(f"{SHA256}${b64url(_digest(secret))}", encoded)
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
    """The scopes to grant `client`: all of its own by default, else a subset of them. A
    client without scopes (a website's, for the authorization code grant only) gets none."""
    if not client.scopes:
        raise UnauthorizedClient("this client holds no scope: it may not use client credentials")
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


# Compared against when a client id is unknown, so that the answer takes the same path: the
# SHA-256 of no secret is all zeros.
_NO_CLIENT = f"{SHA256}${b64url(bytes(32))}"
# A public client's secret hash: no secret hashes to it, so no secret authenticates it.
NO_SECRET = "none"  # noqa: S105 - a marker, not a secret


def validate_redirect_uris(uris: Iterable[str]) -> tuple[str, ...]:
    """A client's redirect URIs: each valid (chalicelib/weblogin/params.py), unique, at most
    MAX_REDIRECT_URIS."""
    unique = tuple(dict.fromkeys(validate_redirect_uri(uri) for uri in uris))
    if len(unique) > MAX_REDIRECT_URIS:
        raise RequestError(f"at most {MAX_REDIRECT_URIS} redirect URIs")
    return unique


class ClientStore:
    """Registers, reads, lists, enables/disables and authenticates OAuth clients."""

    def __init__(
        self,
        store: Clients,
        *,
        rand: Callable[[int], bytes] = secrets.token_bytes,
        clock: Callable[[], float] = time.time,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        """`cache_ttl`: seconds an authenticated (client id, secret hash) pair is kept (0:
        none); at most `cache_size` pairs, the least recently used dropped first."""
        self._store = store
        self._rand = rand
        self._clock = clock
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._verified: OrderedDict[str, tuple[bytes, ClientRecord, float]] = OrderedDict()
        self._lock = threading.Lock()

    def create(
        self,
        scopes: Iterable[str],
        *,
        now: int,
        client_id: str | None = None,
        redirect_uris: Iterable[str] = (),
        public: bool = False,
    ) -> tuple[ClientRecord, str | None]:
        """Register a client; return it and its secret (the only time the secret exists; None
        for a public client, which has none). A client with redirect URIs (the authorization
        code grant) may have no scopes; a public one must have redirect URIs."""
        if client_id is None:
            client_id = "c-" + b64url(self._rand(12))
        validate_client_id(client_id)
        uris = validate_redirect_uris(redirect_uris)
        scope_list = parse_scope(" ".join(scopes))
        if not scope_list and not uris:
            raise InvalidScope("a client needs at least one scope, or redirect URIs")
        if public and not uris:
            raise RequestError("a public client is for the authorization code grant: give it"
                               " redirect URIs")
        secret = None if public else b64url(self._rand(32))
        record = ClientRecord(
            client_id=client_id,
            secret_hash=NO_SECRET if secret is None else hash_secret(secret),
            scopes=scope_list,
            enabled=True,
            created_at=now,
            redirect_uris=uris,
            is_public=public,
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
        with self._lock:
            self._verified.pop(client_id, None)
        return self._store.set_enabled(client_id, enabled)

    def authenticate(self, client_id: str, secret: str) -> ClientRecord:
        """The enabled client whose secret this is; ClientAuthError otherwise.

        A pair this container verified less than `cache_ttl` seconds ago: no request. Else one
        GetItem and a SHA-256, compared in constant time (an unknown id against a hash no
        secret has); a scrypt hash of an earlier release is checked with scrypt and, if the
        secret is right, replaced (one guarded UpdateItem more, once per client).
        """
        if len(secret) > MAX_SECRET_LENGTH:
            secret = ""
        digest = _digest(secret)
        cached = self._cached(client_id, digest)
        if cached is not None:
            return cached
        client = self.get(client_id) if len(client_id) <= 64 else None
        matches = verify_secret(secret, client.secret_hash if client else _NO_CLIENT)
        if client is None or not matches or not client.enabled or client.is_public:
            raise ClientAuthError("client authentication failed")
        if needs_rehash(client.secret_hash):
            client = self._rehash(client, secret)
        self._remember(client, digest)
        return client

    def identify(self, form: dict[str, str], basic: tuple[str, str] | None) -> ClientRecord:
        """The client of a token request that may come from a public client (the authorization
        code grant): a confidential client authenticated by its secret (HTTP Basic or
        client_secret, as `authenticate`), else the enabled public client the form's
        `client_id` (or HTTP Basic's user with an empty password) names: one GetItem.
        ClientAuthError otherwise, a confidential client without its secret included."""
        if (basic is not None and basic[1]) or form.get("client_secret") is not None:
            return self.authenticate(*client_credentials(form, basic))
        client_id = form.get("client_id")
        if basic is not None:
            if client_id is not None and client_id != basic[0]:
                raise RequestError("client_id differs from the HTTP Basic user")
            client_id = basic[0]
        if client_id is None:
            raise ClientAuthError("client_id is required (RFC 6749 §3.2.1), or authenticate")
        client = self.get(client_id) if len(client_id) <= 64 else None
        if client is None or not client.enabled or not client.is_public:
            raise ClientAuthError("client authentication failed")
        return client

    def forget(self) -> None:
        """Drop every remembered authentication (after a SnapStart restore)."""
        with self._lock:
            self._verified.clear()

    def _rehash(self, client: ClientRecord, secret: str) -> ClientRecord:
        """Replace a scrypt hash by the SHA-256 form; the client as it is if that fails (a
        secret changed meanwhile, DynamoDB failing): the next use tries again."""
        new = hash_secret(secret)
        try:
            if self._store.replace_secret_hash(client.client_id, old=client.secret_hash, new=new):
                log_event("client_secret_rehashed", client_id=client.client_id)
                return replace(client, secret_hash=new)
        except StoreUnavailable as e:
            log_event("client_secret_rehash_failed", client_id=client.client_id, detail=str(e))
        return client

    def _cached(self, client_id: str, digest: bytes) -> ClientRecord | None:
        with self._lock:
            entry = self._verified.get(client_id)
            if entry is None:
                return None
            accepted, client, until = entry
            if self._clock() >= until:
                del self._verified[client_id]
                return None
            if not hmac.compare_digest(accepted, digest):
                return None  # checked against the table: the secret may be another now
            self._verified.move_to_end(client_id)
            return client

    def _remember(self, client: ClientRecord, digest: bytes) -> None:
        if self._cache_ttl <= 0:
            return
        with self._lock:
            self._verified[client.client_id] = (digest, client, self._clock() + self._cache_ttl)
            self._verified.move_to_end(client.client_id)
            while len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)


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
