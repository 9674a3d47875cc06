"""RSA signing keys for access tokens: the key set, where it is kept, and its rotation.

A key set is JSON: `{"active_kid": "...", "keys": [{"kid", "private_key_pem", "created_at",
"retired_at"?}]}`. The active key signs; every key in the set verifies and is published in JWKS,
so rotating adds a key without logging anyone out. A retired key is dropped by a later rotation
once every token it signed has expired. A rotation may publish the new key ahead of using it
(`active_from`, as API Gateway's JWT authorizer documentation asks): until then the previous key
keeps signing, and verifiers that cache the JWKS have time to fetch the new key first.

In AWS the set lives in a Secrets Manager secret (`AUTH_SIGNING_KEYS_ARN`); locally it is
generated once into a git-ignored file (`AUTH_SIGNING_KEYS_FILE`).

    python -m chalicelib.signing_keys new-keyset > keyset.json
    python -m chalicelib.signing_keys rotate < keyset.json > next.json
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from chalicelib.errors import ConfigurationError
from chalicelib.logs import Metrics
from chalicelib.secrets_manager import Reloaded

KEY_BITS = 2048
RELOAD_MAX_AGE = 300.0  # seconds a process may keep signing with a key set it loaded
JWKS_MAX_AGE = 300  # the Cache-Control max-age of /.well-known/jwks.json
# Publish a new key this long before it signs: every container reloads the key set within
# RELOAD_MAX_AGE, and verifiers cache the JWKS for JWKS_MAX_AGE before they refetch it.
DEFAULT_ACTIVATE_IN = int(RELOAD_MAX_AGE) + JWKS_MAX_AGE


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: RSAPrivateKey = field(repr=False)
    created_at: int
    retired_at: int | None = None
    active_from: int | None = None  # None: signs from created_at

    @property
    def starts_at(self) -> int:
        return self.created_at if self.active_from is None else self.active_from

    @cached_property
    def public_key(self) -> RSAPublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }

    def to_dict(self) -> dict[str, Any]:
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        data: dict[str, Any] = {
            "kid": self.kid,
            "private_key_pem": pem,
            "created_at": self.created_at,
        }
        if self.retired_at is not None:
            data["retired_at"] = self.retired_at
        if self.active_from is not None:
            data["active_from"] = self.active_from
        return data


def thumbprint(public_key: RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint, used as the key id."""
    numbers = public_key.public_numbers()
    canonical = json.dumps(
        {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def generate_key(now: int) -> SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return SigningKey(
        kid=thumbprint(private_key.public_key()), private_key=private_key, created_at=now
    )


@dataclass(frozen=True)
class KeySet:
    active_kid: str
    keys: tuple[SigningKey, ...]

    @classmethod
    def new(cls, now: int) -> KeySet:
        key = generate_key(now)
        return cls(active_kid=key.kid, keys=(key,))

    @property
    def active(self) -> SigningKey:
        key = self.get(self.active_kid)
        if key is None:
            raise ConfigurationError("signing key set: active_kid names no key")
        return key

    def get(self, kid: str) -> SigningKey | None:
        return next((key for key in self.keys if key.kid == kid), None)

    def signing_key(self, now: int) -> SigningKey:
        """The key that signs at `now`: the active key once its `active_from` has come, until
        then the most recently started of the others (the one it replaces)."""
        active = self.active
        if active.starts_at <= now:
            return active
        started = [key for key in self.keys if key.starts_at <= now]
        return max(started, key=lambda key: key.starts_at) if started else active

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    def rotate(self, now: int, *, keep_retired_for: int, publish_ahead: int = 0) -> KeySet:
        """Add a new active key, retire the old one, drop keys retired over `keep_retired_for`
        seconds ago (pass the access-token lifetime: no live token is signed by them).

        With `publish_ahead`, the new key signs only from `now + publish_ahead` on, and the old
        one retires then."""
        new_key = generate_key(now)
        switch_at = now + publish_ahead
        if publish_ahead > 0:
            new_key = replace(new_key, active_from=switch_at)
        kept = []
        for key in self.keys:
            if key.kid == self.active_kid:
                kept.append(replace(key, retired_at=switch_at))
            elif key.retired_at is None or key.retired_at + keep_retired_for > now:
                kept.append(key)
        return KeySet(active_kid=new_key.kid, keys=(*kept, new_key))

    def to_json(self) -> str:
        return json.dumps(
            {"active_kid": self.active_kid, "keys": [key.to_dict() for key in self.keys]}, indent=2
        )

    @classmethod
    def from_json(cls, text: str) -> KeySet:
        try:
            data = json.loads(text)
            keys = []
            for entry in data["keys"]:
                # Our own keys, from our own secret or file: skipping the RSA consistency
                # check makes a cold start ~50 ms faster per key. A damaged PEM still fails.
                private_key = serialization.load_pem_private_key(
                    entry["private_key_pem"].encode("ascii"),
                    password=None,
                    unsafe_skip_rsa_key_validation=True,
                )
                if not isinstance(private_key, RSAPrivateKey):
                    raise ConfigurationError("signing key set: only RSA keys are supported")
                keys.append(
                    SigningKey(
                        kid=str(entry["kid"]),
                        private_key=private_key,
                        created_at=int(entry["created_at"]),
                        retired_at=entry.get("retired_at"),
                        active_from=entry.get("active_from"),
                    )
                )
            key_set = cls(active_kid=str(data["active_kid"]), keys=tuple(keys))
        except ConfigurationError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            # The text holds private keys: say what is wrong, never echo it.
            raise ConfigurationError(f"signing key set is malformed ({type(e).__name__})") from None
        key_set.active  # noqa: B018 - validates active_kid
        return key_set


def load_or_create_file(path: str, now: int) -> KeySet:
    """Read the local key set, creating it (mode 0600, atomically, first writer wins)."""
    try:
        with open(path, encoding="utf-8") as f:
            return KeySet.from_json(f.read())
    except FileNotFoundError:
        pass
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    key_set = KeySet.new(now)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".keys-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key_set.to_json())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # atomic and never clobbers a set another process wrote
    finally:
        os.unlink(tmp)
    with open(path, encoding="utf-8") as f:
        return KeySet.from_json(f.read())


def replace_file(path: str, key_set: KeySet) -> None:
    """Write the local key set atomically (mode 0600): readers see the old set or the new one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".keys-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key_set.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def file_version(path: str) -> tuple[int, int, int] | None:
    """What changes when the file is replaced or rewritten: (inode, mtime_ns, size)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class KeySetProvider:
    """Loads the key set once and caches it; reloads after `max_age` seconds, or on demand when
    a token names an unknown kid (at most one attempt every `min_reload_interval` seconds,
    successful or not), so that a key rotated in Secrets Manager reaches every warm container.
    A failed reload keeps the cached set for up to an hour (stale-if-error, with a metric and
    back-off: chalicelib/secrets_manager.py `Reloaded`).

    `version`, if given, is a cheap probe of the source (see `file_version`): when its answer
    changes, the next `get` or `find` reloads at once, so a rotated local file is seen at once.
    """

    def __init__(
        self,
        load: Callable[[], KeySet],
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = RELOAD_MAX_AGE,
        min_reload_interval: float = 10.0,
        version: Callable[[], object] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._load = load
        self._version = version
        self._loaded_version: object = None
        self._min_reload_interval = min_reload_interval
        self._cache = Reloaded(
            self._load_versioned,
            name="signing_keys",
            clock=clock,
            max_age=max_age,
            metrics=metrics,
        )

    def _load_versioned(self) -> KeySet:
        # The version is read first: a change made during the load is seen by the next call.
        version = self._version() if self._version is not None else None
        key_set = self._load()
        self._loaded_version = version
        return key_set

    def _changed(self) -> bool:
        return self._version is not None and self._version() != self._loaded_version

    def get(self) -> KeySet:
        return self._cache.get(reload=self._changed())

    def forget(self) -> None:
        """Drop the loaded key set: the next use loads it again (after a SnapStart restore)."""
        self._cache.forget()

    def find(self, kid: str) -> SigningKey | None:
        key = self.get().get(kid)
        if key is not None:
            return key
        return self._cache.get(reload=True, min_interval=self._min_reload_interval).get(kid)


def rotate_for_service(
    current: KeySet,
    now: int,
    *,
    access_ttl: int,
    activate_in: int = DEFAULT_ACTIVATE_IN,
    emergency: bool = False,
) -> KeySet:
    """A rotation as operators run it (`wxauth-admin keys rotate`, `... signing_keys rotate`).

    The new key is published at once and signs from `now + activate_in`. The old key stays
    published until its last token has expired: a process may sign with it for RELOAD_MAX_AGE
    after it retires, its tokens live `access_ttl`, plus a minute of clock skew. `emergency`
    (the old key may be compromised) signs with the new key at once and drops every other key.
    """
    keep_for = access_ttl + int(RELOAD_MAX_AGE) + 60
    rotated = current.rotate(
        now, keep_retired_for=keep_for, publish_ahead=0 if emergency else activate_in
    )
    if emergency:
        return KeySet(active_kid=rotated.active_kid, keys=(rotated.active,))
    return rotated


def main(argv: list[str]) -> int:
    usage = (
        "usage: python -m chalicelib.signing_keys new-keyset\n"
        "       python -m chalicelib.signing_keys rotate [--activate-in SECONDS] < current.json"
    )
    if argv == ["new-keyset"]:
        print(KeySet.new(int(time.time())).to_json())
        return 0
    activate_in = DEFAULT_ACTIVATE_IN
    if len(argv) == 3 and argv[:2] == ["rotate", "--activate-in"] and argv[2].isdigit():
        activate_in = int(argv[2])
    elif argv != ["rotate"]:
        print(usage, file=sys.stderr)
        return 2
    access_ttl = int(os.environ.get("AUTH_ACCESS_TTL", "1800"))
    current = KeySet.from_json(sys.stdin.read())
    rotated = rotate_for_service(
        current, int(time.time()), access_ttl=access_ttl, activate_in=activate_in
    )
    print(rotated.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
