"""Signing keys: key ids, JWKs, the JSON key set, rotation, the local file, the cached provider
and the command line."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

from chalicelib import signing_keys
from chalicelib.errors import ConfigurationError
from chalicelib.signing_keys import KeySet, KeySetProvider, SigningKey
from tests.conftest import START, FakeClock

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")

# RFC 7638 §3.1: the example key and its thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPeb"
    "WKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368Q"
    "QMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2"
    "NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def b64url_to_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def manual_thumbprint(jwk: dict[str, str]) -> str:
    canonical = '{"e":"%s","kty":"RSA","n":"%s"}' % (jwk["e"], jwk["n"])  # noqa: UP031
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pem(private_key) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@pytest.fixture(scope="module")
def key_pool() -> list[rsa.RSAPrivateKey]:
    """Pre-generated RSA keys: generating them is the slow part, do it once per module."""
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


@pytest.fixture
def generated(monkeypatch: pytest.MonkeyPatch, key_pool) -> list[dict]:
    """Hand out the pool's keys in order instead of generating new ones; records each call."""
    calls: list[dict] = []
    keys = iter(key_pool)

    def generate_private_key(**kwargs) -> rsa.RSAPrivateKey:
        calls.append(kwargs)
        return next(keys)

    monkeypatch.setattr(signing_keys.rsa, "generate_private_key", generate_private_key)
    return calls


@pytest.fixture(scope="module")
def key_set(key_set_json: str) -> KeySet:
    """Frozen, so one parse serves the module (loading an RSA key validates it: slow)."""
    return KeySet.from_json(key_set_json)


@pytest.fixture(scope="module")
def key_pem(key_set: KeySet) -> str:
    return pem(key_set.active.private_key)


# --- key ids and JWKs -----------------------------------------------------------------------


def test_thumbprint_matches_the_rfc_7638_example() -> None:
    public_key = rsa.RSAPublicNumbers(e=65537, n=b64url_to_int(RFC7638_N)).public_key()

    assert signing_keys.thumbprint(public_key) == RFC7638_THUMBPRINT


def test_kid_is_the_rfc_7638_thumbprint_of_the_public_key(key_set: KeySet) -> None:
    key = key_set.active
    jwk = RSAAlgorithm.to_jwk(key.public_key, as_dict=True)

    assert key.kid == manual_thumbprint(jwk)
    assert key.kid == signing_keys.thumbprint(key.public_key)


def test_generate_key_asks_for_a_2048_bit_key_and_names_it_by_thumbprint(generated) -> None:
    key = signing_keys.generate_key(START)

    assert generated == [{"public_exponent": 65537, "key_size": 2048}]
    assert key.kid == signing_keys.thumbprint(key.public_key)
    assert key.created_at == START
    assert key.retired_at is None


def test_public_jwk_has_the_public_members_only(key_set: KeySet) -> None:
    key = key_set.active

    jwk = key.public_jwk()

    assert set(jwk) == {"kty", "kid", "use", "alg", "n", "e"}
    assert jwk["kty"] == "RSA"
    assert jwk["kid"] == key.kid
    assert jwk["use"] == "sig"
    assert jwk["alg"] == "RS256"
    numbers = key.public_key.public_numbers()
    assert b64url_to_int(jwk["n"]) == numbers.n
    assert b64url_to_int(jwk["e"]) == numbers.e
    assert jwk["e"] == "AQAB"
    assert not any(member in jwk for member in PRIVATE_MEMBERS)


def test_public_jwk_loads_as_the_same_public_key_in_pyjwt(key_set: KeySet) -> None:
    key = key_set.active

    loaded = RSAAlgorithm.from_jwk(json.dumps(key.public_jwk()))

    assert isinstance(loaded, rsa.RSAPublicKey)
    assert loaded.public_numbers() == key.public_key.public_numbers()


def test_jwks_lists_every_key_without_private_parts(key_set: KeySet) -> None:
    jwks = key_set.jwks()

    assert [k["kid"] for k in jwks["keys"]] == [k.kid for k in key_set.keys]
    text = json.dumps(jwks)
    assert "PRIVATE KEY" not in text
    for jwk in jwks["keys"]:
        assert not any(member in jwk for member in PRIVATE_MEMBERS)


def test_signing_key_repr_hides_the_private_key(key_set: KeySet) -> None:
    text = repr(key_set)

    assert "private_key" not in text
    assert "PRIVATE" not in text


# --- JSON -----------------------------------------------------------------------------------


def test_to_json_from_json_round_trip(key_set: KeySet) -> None:
    again = KeySet.from_json(key_set.to_json())

    assert again.active_kid == key_set.active_kid
    assert [(k.kid, k.created_at, k.retired_at) for k in again.keys] == [
        (k.kid, k.created_at, k.retired_at) for k in key_set.keys
    ]
    assert [k.private_key.private_numbers() for k in again.keys] == [
        k.private_key.private_numbers() for k in key_set.keys
    ]


def test_to_json_has_the_documented_shape(key_set: KeySet) -> None:
    data = json.loads(key_set.to_json())

    assert set(data) == {"active_kid", "keys"}
    assert data["active_kid"] == key_set.active_kid
    (entry,) = data["keys"]
    assert set(entry) == {"kid", "private_key_pem", "created_at"}
    assert entry["private_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    assert entry["created_at"] == START


def test_round_trip_keeps_retired_at(key_set: KeySet, key_pool) -> None:
    old = key_set.active
    retired = SigningKey(kid=old.kid, private_key=old.private_key, created_at=1, retired_at=5)
    new = SigningKey(
        kid=signing_keys.thumbprint(key_pool[0].public_key()),
        private_key=key_pool[0],
        created_at=5,
    )
    original = KeySet(active_kid=new.kid, keys=(retired, new))

    again = KeySet.from_json(original.to_json())

    assert [(k.kid, k.retired_at) for k in again.keys] == [(old.kid, 5), (new.kid, None)]
    assert again.active.kid == new.kid


def malformed_key_sets(pem_text: str) -> dict[str, str]:
    good_entry = {"kid": "k1", "private_key_pem": pem_text, "created_at": 1}
    return {
        "not-json": "{" + pem_text,
        "json-list": json.dumps([good_entry]),
        "json-string": json.dumps(pem_text),
        "json-null": "null",
        "no-keys": json.dumps({"active_kid": "k1"}),
        "no-active-kid": json.dumps({"keys": [good_entry]}),
        "keys-not-list": json.dumps({"active_kid": "k1", "keys": good_entry}),
        "no-pem": json.dumps({"active_kid": "k1", "keys": [{"kid": "k1", "created_at": 1}]}),
        "pem-garbage": json.dumps(
            {"active_kid": "k1", "keys": [{**good_entry, "private_key_pem": pem_text[:200]}]}
        ),
        "pem-not-str": json.dumps(
            {"active_kid": "k1", "keys": [{**good_entry, "private_key_pem": [pem_text]}]}
        ),
        "no-created-at": json.dumps(
            {"active_kid": "k1", "keys": [{"kid": "k1", "private_key_pem": pem_text}]}
        ),
        "created-at-holds-pem": json.dumps(
            {"active_kid": "k1", "keys": [{**good_entry, "created_at": pem_text}]}
        ),
        "kid-missing": json.dumps(
            {"active_kid": "k1", "keys": [{"private_key_pem": pem_text, "created_at": 1}]}
        ),
    }


MALFORMED_CASES = list(malformed_key_sets("PEM").keys())


@pytest.mark.parametrize("case", MALFORMED_CASES)
def test_from_json_of_malformed_input_raises_configuration_error_without_echoing_it(
    case: str, key_pem: str
) -> None:
    pem_text = key_pem
    text = malformed_key_sets(pem_text)[case]
    body_line = pem_text.splitlines()[1]  # a line of the base64 key material

    with pytest.raises(ConfigurationError) as info:
        KeySet.from_json(text)

    for shown in (str(info.value), repr(info.value)):
        assert body_line not in shown
        assert "PRIVATE KEY" not in shown
    # Nothing chained that a traceback would print.
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None


def test_from_json_rejects_a_non_rsa_key() -> None:
    ec_pem = pem(ec.generate_private_key(ec.SECP256R1()))
    text = json.dumps(
        {"active_kid": "k1", "keys": [{"kid": "k1", "private_key_pem": ec_pem, "created_at": 1}]}
    )

    with pytest.raises(ConfigurationError) as info:
        KeySet.from_json(text)

    assert ec_pem.splitlines()[1] not in str(info.value)


def test_from_json_with_active_kid_naming_no_key_raises_configuration_error(
    key_set: KeySet,
) -> None:
    data = json.loads(key_set.to_json())
    data["active_kid"] = "no-such-kid"

    with pytest.raises(ConfigurationError):
        KeySet.from_json(json.dumps(data))


def test_active_of_a_set_whose_active_kid_names_no_key_raises_configuration_error(
    key_set: KeySet,
) -> None:
    broken = KeySet(active_kid="no-such-kid", keys=key_set.keys)

    with pytest.raises(ConfigurationError):
        broken.active  # noqa: B018


# --- rotation -------------------------------------------------------------------------------


def test_rotate_adds_a_new_active_key_and_retires_the_old_one(key_set: KeySet, generated) -> None:
    old = key_set.active

    rotated = key_set.rotate(START + 100, keep_retired_for=1800)

    assert len(generated) == 1
    assert len(rotated.keys) == 2
    assert rotated.active_kid != old.kid
    assert rotated.active.created_at == START + 100
    assert rotated.active.retired_at is None
    kept = rotated.get(old.kid)
    assert kept is not None
    assert kept.retired_at == START + 100
    assert kept.private_key.private_numbers() == old.private_key.private_numbers()
    assert {k["kid"] for k in rotated.jwks()["keys"]} == {old.kid, rotated.active_kid}
    # The original set is unchanged (frozen).
    assert key_set.active_kid == old.kid and key_set.active.retired_at is None


def test_rotate_drops_keys_retired_longer_ago_than_keep_retired_for(
    key_set: KeySet, generated
) -> None:
    first = key_set.active
    second_set = key_set.rotate(START + 100, keep_retired_for=1800)  # first retired at +100
    second = second_set.active
    third_set = second_set.rotate(START + 1000, keep_retired_for=1800)  # second retired at +1000
    third = third_set.active

    # first was retired 1801 s ago, second 901 s ago: only first goes.
    fourth_set = third_set.rotate(START + 1901, keep_retired_for=1800)

    kids = [k.kid for k in fourth_set.keys]
    assert first.kid not in kids
    assert second.kid in kids
    assert third.kid in kids
    assert fourth_set.active_kid in kids
    assert len(kids) == 3
    assert fourth_set.get(second.kid).retired_at == START + 1000
    assert fourth_set.get(third.kid).retired_at == START + 1901


def test_rotate_keeps_a_key_retired_just_under_keep_retired_for_ago(
    key_set: KeySet, generated
) -> None:
    first = key_set.active
    second_set = key_set.rotate(START, keep_retired_for=1800)

    third_set = second_set.rotate(START + 1799, keep_retired_for=1800)

    assert third_set.get(first.kid) is not None
    assert len(third_set.keys) == 3


# --- the local file -------------------------------------------------------------------------


def test_load_or_create_file_creates_a_0600_file_once(tmp_path, generated) -> None:
    path = tmp_path / "sub" / "keys.json"

    created = signing_keys.load_or_create_file(str(path), START)

    assert path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(generated) == 1
    assert KeySet.from_json(path.read_text()).active_kid == created.active_kid
    assert created.active.created_at == START
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temporary file left

    again = signing_keys.load_or_create_file(str(path), START + 999)

    assert len(generated) == 1  # no new key generated
    assert again.active_kid == created.active_kid
    assert again.active.created_at == START


def test_load_or_create_file_does_not_clobber_an_existing_file(
    tmp_path, key_set_json: str, generated
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(key_set_json)

    loaded = signing_keys.load_or_create_file(str(path), START + 5)

    assert generated == []
    assert path.read_text() == key_set_json
    assert loaded.active_kid == KeySet.from_json(key_set_json).active_kid


def test_load_or_create_file_keeps_a_set_another_process_wrote_first(
    tmp_path, key_set_json: str, generated, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    real_new = KeySet.new

    def new_while_another_process_writes(now: int) -> KeySet:
        path.write_text(key_set_json)  # the other process links its file first
        return real_new(now)

    monkeypatch.setattr(KeySet, "new", staticmethod(new_while_another_process_writes))

    loaded = signing_keys.load_or_create_file(str(path), START)

    assert path.read_text() == key_set_json
    assert loaded.active_kid == KeySet.from_json(key_set_json).active_kid
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]


def test_load_or_create_file_of_a_malformed_file_raises_and_leaves_it(tmp_path, generated) -> None:
    path = tmp_path / "keys.json"
    path.write_text("not json")

    with pytest.raises(ConfigurationError):
        signing_keys.load_or_create_file(str(path), START)

    assert path.read_text() == "not json"
    assert generated == []


# --- the cached provider --------------------------------------------------------------------


class CountingLoader:
    def __init__(self, *sets: KeySet) -> None:
        self.sets = list(sets)
        self.calls = 0

    def __call__(self) -> KeySet:
        key_set = self.sets[min(self.calls, len(self.sets) - 1)]
        self.calls += 1
        return key_set


@pytest.fixture
def rotated_set(key_set: KeySet, generated) -> KeySet:
    return key_set.rotate(START, keep_retired_for=1800)


@pytest.fixture
def provider_factory(clock: FakeClock) -> Callable[[Callable[[], KeySet]], KeySetProvider]:
    def build(load: Callable[[], KeySet]) -> KeySetProvider:
        return KeySetProvider(load, clock=clock, max_age=300, min_reload_interval=10)

    return build


def test_provider_loads_once_and_caches(key_set: KeySet, clock: FakeClock, provider_factory):
    load = CountingLoader(key_set)
    provider = provider_factory(load)

    assert load.calls == 0  # lazy
    first = provider.get()
    clock.advance(299)
    second = provider.get()
    found = provider.find(key_set.active_kid)

    assert load.calls == 1
    assert first is second is key_set
    assert found is key_set.active


def test_provider_reloads_after_max_age(
    key_set: KeySet, rotated_set: KeySet, clock: FakeClock, provider_factory
) -> None:
    load = CountingLoader(key_set, rotated_set)
    provider = provider_factory(load)
    provider.get()

    clock.advance(300)
    reloaded = provider.get()
    clock.advance(299)
    cached = provider.get()

    assert load.calls == 2
    assert reloaded is rotated_set
    assert cached is rotated_set


def test_provider_find_of_an_unknown_kid_reloads_at_most_once_per_interval(
    key_set: KeySet, rotated_set: KeySet, clock: FakeClock, provider_factory
) -> None:
    load = CountingLoader(key_set, rotated_set)
    provider = provider_factory(load)
    provider.get()

    assert provider.find("unknown-kid") is None
    assert provider.find("unknown-kid") is None
    assert load.calls == 1  # loaded just now: no reload yet

    clock.advance(10)
    assert provider.find("unknown-kid") is None
    assert load.calls == 2

    for _ in range(5):
        clock.advance(1.5)
        assert provider.find("unknown-kid") is None
    assert load.calls == 2  # 7.5 s since the reload

    clock.advance(2.5)
    assert provider.find("unknown-kid") is None
    assert load.calls == 3


def test_provider_find_picks_up_a_key_rotated_elsewhere(
    key_set: KeySet, rotated_set: KeySet, clock: FakeClock, provider_factory
) -> None:
    load = CountingLoader(key_set, rotated_set)
    provider = provider_factory(load)
    provider.get()
    new_kid = rotated_set.active_kid

    assert provider.find(new_kid) is None  # too soon to reload
    clock.advance(10)
    found = provider.find(new_kid)

    assert found is rotated_set.active
    assert load.calls == 2
    assert provider.get() is rotated_set  # and the reloaded set is what get() serves


def test_provider_find_of_a_known_kid_never_reloads(
    key_set: KeySet, clock: FakeClock, provider_factory
) -> None:
    load = CountingLoader(key_set)
    provider = provider_factory(load)

    for _ in range(20):
        assert provider.find(key_set.active_kid) is key_set.active
        clock.advance(10)

    assert load.calls == 1  # the last find came 190 s after the load: under max_age


# --- the command line -----------------------------------------------------------------------


def test_cli_new_keyset_prints_a_loadable_key_set(capsys, generated) -> None:
    assert signing_keys.main(["new-keyset"]) == 0

    out = capsys.readouterr().out
    printed = KeySet.from_json(out)
    assert len(printed.keys) == 1
    assert printed.active.kid == signing_keys.thumbprint(printed.active.public_key)


def test_cli_rotate_reads_stdin_and_prints_a_set_with_two_keys(
    capsys, monkeypatch: pytest.MonkeyPatch, key_set_json: str, generated
) -> None:
    current = KeySet.from_json(key_set_json)
    monkeypatch.setattr("sys.stdin", io.StringIO(key_set_json))

    assert signing_keys.main(["rotate"]) == 0

    printed = KeySet.from_json(capsys.readouterr().out)
    assert len(printed.keys) == 2
    assert printed.active_kid != current.active_kid
    assert printed.get(current.active_kid).retired_at is not None


@pytest.mark.parametrize(
    ("argv", "signs_in"), [(["rotate"], 600), (["rotate", "--activate-in", "0"], 0)]
)
def test_cli_rotate_publishes_ahead_like_the_admin_command(
    capsys, monkeypatch: pytest.MonkeyPatch, key_set_json: str, generated, argv, signs_in
) -> None:
    current = KeySet.from_json(key_set_json)
    monkeypatch.setattr("sys.stdin", io.StringIO(key_set_json))
    monkeypatch.setattr(signing_keys.time, "time", lambda: START)

    assert signing_keys.main(argv) == 0

    printed = KeySet.from_json(capsys.readouterr().out)
    assert printed.active.starts_at == START + signs_in
    expected_signer = current.active_kid if signs_in else printed.active_kid
    assert printed.signing_key(START).kid == expected_signer
    assert printed.signing_key(START + signs_in).kid == printed.active_kid


def test_rotate_for_service_keeps_the_old_key_until_its_tokens_expired(key_set, generated):
    rotated = signing_keys.rotate_for_service(key_set, START, access_ttl=1800, activate_in=600)
    switch = START + 600
    keep_until = switch + 1800 + int(signing_keys.RELOAD_MAX_AGE) + 60
    later = signing_keys.rotate_for_service(rotated, keep_until - 1, access_ttl=1800)
    assert key_set.active_kid in {k.kid for k in later.keys}
    last = signing_keys.rotate_for_service(later, keep_until, access_ttl=1800)
    assert key_set.active_kid not in {k.kid for k in last.keys}


def test_rotate_for_service_emergency_keeps_only_the_new_key(key_set, generated):
    rotated = signing_keys.rotate_for_service(key_set, START, access_ttl=1800, emergency=True)
    assert [k.kid for k in rotated.keys] == [rotated.active_kid]
    assert rotated.signing_key(START).kid == rotated.active_kid


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["unknown"],
        ["new-keyset", "extra"],
        ["rotate", "now"],
        ["rotate", "--activate-in", "soon"],
        ["--help"],
    ],
    ids=["none", "unknown", "new-keyset-extra", "rotate-extra", "rotate-bad-seconds", "help"],
)
def test_cli_bad_arguments_exit_2_with_usage(capsys, argv: list[str], generated) -> None:
    assert signing_keys.main(argv) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage" in captured.err
    assert generated == []


# --- a local file that changes --------------------------------------------------------------


def test_replace_file_writes_atomically_with_mode_0600(tmp_path, key_set: KeySet, generated):
    path = tmp_path / "keys.json"
    path.write_text("old")
    rotated = key_set.rotate(START, keep_retired_for=1800)

    signing_keys.replace_file(str(path), rotated)

    assert KeySet.from_json(path.read_text()).active_kid == rotated.active_kid
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temporary file left


def test_file_version_changes_when_the_file_is_replaced(tmp_path, key_set: KeySet) -> None:
    path = str(tmp_path / "keys.json")
    assert signing_keys.file_version(path) is None
    signing_keys.replace_file(path, key_set)
    first = signing_keys.file_version(path)

    signing_keys.replace_file(path, key_set)

    assert first is not None and signing_keys.file_version(path) != first


def test_unknown_kids_while_the_source_fails_are_capped_by_attempts_and_keep_the_set(
    key_set: KeySet, clock: FakeClock, provider_factory
) -> None:
    """Tokens naming random kids, one a second, while every reload fails: the cached set keeps
    verifying, and the source is tried at most once per interval (fewer: back-off)."""
    attempts = []

    def load() -> KeySet:
        attempts.append(clock())
        if len(attempts) > 1:
            raise ConfigurationError("cannot read secret arn:aws:secretsmanager:x (Timeout)")
        return key_set

    provider = provider_factory(load)
    provider.get()
    for n in range(60):
        assert provider.find(f"random-{n}") is None
        assert provider.find(key_set.active_kid) is key_set.active
        clock.advance(1)
    assert 1 < len(attempts) <= 1 + 60 // 10
    assert all(b - a >= 10 for a, b in zip(attempts, attempts[1:], strict=False))


def test_provider_with_a_version_reloads_as_soon_as_the_source_changes(
    key_set: KeySet, rotated_set: KeySet, clock: FakeClock
) -> None:
    load = CountingLoader(key_set, rotated_set)
    version = {"value": 1}
    provider = KeySetProvider(
        load, clock=clock, max_age=300, min_reload_interval=10, version=lambda: version["value"]
    )
    assert provider.get() is key_set
    assert provider.get() is key_set
    assert load.calls == 1

    version["value"] = 2  # no time passes: the change alone triggers the reload

    assert provider.find(rotated_set.active_kid) is rotated_set.active
    assert provider.get() is rotated_set
    assert load.calls == 2


def test_provider_over_a_rotated_local_file_signs_with_the_new_key_at_once(
    tmp_path, key_set: KeySet, clock: FakeClock, generated
) -> None:
    path = str(tmp_path / "keys.json")
    signing_keys.replace_file(path, key_set)
    provider = KeySetProvider(
        lambda: signing_keys.load_or_create_file(path, START),
        clock=clock,
        version=lambda: signing_keys.file_version(path),
    )
    assert provider.get().active_kid == key_set.active_kid

    signing_keys.replace_file(path, key_set.rotate(START, keep_retired_for=1800))

    reloaded = provider.get()
    assert reloaded.active_kid != key_set.active_kid
    assert reloaded.get(key_set.active_kid) is not None  # the old key still verifies


# --- publishing a key ahead of signing with it ----------------------------------------------


def test_rotate_with_publish_ahead_keeps_the_old_key_signing_until_then(
    key_set: KeySet, generated
) -> None:
    rotated = key_set.rotate(START, keep_retired_for=1800, publish_ahead=600)
    old, new = rotated.get(key_set.active_kid), rotated.active

    assert new.active_from == START + 600 and old.retired_at == START + 600
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [old.kid, new.kid]  # published now
    assert rotated.signing_key(START).kid == old.kid
    assert rotated.signing_key(START + 599).kid == old.kid
    assert rotated.signing_key(START + 600).kid == new.kid


def test_publish_ahead_survives_json(key_set: KeySet, generated) -> None:
    rotated = key_set.rotate(START, keep_retired_for=1800, publish_ahead=600)
    data = json.loads(rotated.to_json())
    assert data["keys"][1]["active_from"] == START + 600
    assert "active_from" not in data["keys"][0]
    loaded = KeySet.from_json(rotated.to_json())
    assert loaded.active.active_from == START + 600
    assert loaded.signing_key(START + 1).kid == key_set.active_kid


def test_without_publish_ahead_the_new_key_signs_at_once(key_set: KeySet, generated) -> None:
    rotated = key_set.rotate(START, keep_retired_for=1800)
    assert rotated.active.active_from is None
    assert rotated.signing_key(START).kid == rotated.active_kid
    assert "active_from" not in rotated.to_json()


def test_a_rotation_during_publish_ahead_hands_over_in_order(key_set: KeySet, generated) -> None:
    first = key_set.rotate(START, keep_retired_for=1800, publish_ahead=600)
    second = first.rotate(START + 100, keep_retired_for=1800, publish_ahead=600)
    k1, k2, k3 = key_set.active_kid, first.active_kid, second.active_kid

    assert second.signing_key(START + 100).kid == k1
    assert second.signing_key(START + 600).kid == k2
    assert second.signing_key(START + 700).kid == k3
