"""OAuth clients: secret hashing (SHA-256; the scrypt hashes of earlier releases, verified and
replaced), the per-container cache, scopes, and the client items in DynamoDB (moto)."""

from __future__ import annotations

import hashlib
import re

import pytest

from chalicelib import clients
from chalicelib.clients import ClientRecord, ClientStore, ScryptParams, grant_scope, parse_scope
from chalicelib.crypto import b64url
from chalicelib.errors import (
    ClientAuthError,
    ClientExists,
    InvalidScope,
    RequestError,
    UnauthorizedClient,
)
from chalicelib.store import Store
from tests.conftest import START, TABLE, table_items

FAST = ScryptParams(n=2**10, r=8, p=1)


@pytest.fixture
def store(dynamodb) -> Store:
    return Store(dynamodb, TABLE)


@pytest.fixture
def client_store(store: Store, clock) -> ClientStore:
    return ClientStore(store.clients, clock=clock)


# -- secrets -------------------------------------------------------------------------------------


def test_hash_secret_is_a_domain_separated_sha256() -> None:
    encoded = clients.hash_secret("s3cret")
    scheme, digest = encoded.split("$")
    assert scheme == "sha256" and len(digest) == 43
    assert digest == b64url(hashlib.sha256(b"wxauth/client-secret|s3cret").digest())
    assert clients.hash_secret("s3cret") == encoded  # no salt: 256 random bits need none
    assert not clients.needs_rehash(encoded)


def test_verify_secret_of_the_sha256_form() -> None:
    encoded = clients.hash_secret("s3cret")
    assert clients.verify_secret("s3cret", encoded)
    assert not clients.verify_secret("s3cret ", encoded)
    assert not clients.verify_secret("", encoded)
    assert not clients.verify_secret("s3cret", encoded[:-1] + "A")


def test_scrypt_hash_of_earlier_releases_has_its_parameters_and_salt() -> None:
    encoded = clients.scrypt_hash("s3cret", params=FAST)
    scheme, n, r, p, salt, digest = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "1024", "8", "1")
    assert len(salt) == 22 and len(digest) == 43
    assert "s3cret" not in encoded


def test_default_parameters_cost_16_mib() -> None:
    params = clients.DEFAULT_PARAMS
    assert (params.n, params.r, params.p) == (2**14, 8, 1)
    assert 128 * params.r * params.n == 16 * 2**20


def test_verify_secret() -> None:
    encoded = clients.scrypt_hash("s3cret", params=FAST)
    assert clients.needs_rehash(encoded)
    assert clients.verify_secret("s3cret", encoded)
    assert not clients.verify_secret("s3cret ", encoded)
    assert not clients.verify_secret("", encoded)


def test_same_secret_hashes_differently_per_salt() -> None:
    assert clients.scrypt_hash("x", params=FAST) != clients.scrypt_hash("x", params=FAST)


def test_hash_made_with_other_parameters_still_verifies() -> None:
    stronger = clients.scrypt_hash("x", params=ScryptParams(n=2**11, r=8, p=2))
    assert stronger.startswith("scrypt$2048$8$2$")
    assert clients.verify_secret("x", stronger)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "scrypt$1$2",
        "bcrypt$1024$8$1$AAAA$AAAA",
        "scrypt$x$8$1$AAAA$AAAA",
        "scrypt$1024$8$1$!$!",
        "scrypt$3$8$1$AAAA$AAAA",
        "sha256$",
        "sha256$AAAA",
        "sha256",
    ],
)
def test_malformed_hash_never_verifies(encoded: str) -> None:
    assert not clients.verify_secret("x", encoded)


# -- scopes --------------------------------------------------------------------------------------


def test_parse_scope_splits_and_deduplicates() -> None:
    assert parse_scope("b a  b orders:read") == ("b", "a", "orders:read")
    assert parse_scope("") == ()


@pytest.mark.parametrize("scope", ['a"b', "a\\b", "caf\u00e9", "a\tb", "x" * 65])
def test_parse_scope_rejects_what_rfc_6749_forbids(scope: str) -> None:
    with pytest.raises(InvalidScope):
        parse_scope(scope)


def test_parse_scope_limits_the_count() -> None:
    assert len(parse_scope(" ".join(f"s{i}" for i in range(32)))) == 32
    with pytest.raises(InvalidScope):
        parse_scope(" ".join(f"s{i}" for i in range(33)))


@pytest.mark.parametrize(
    ("requested", "granted"),
    [(None, ("a", "b")), ("", ("a", "b")), ("b", ("b",)), ("b a", ("b", "a")), ("a a", ("a",))],
)
def test_grant_scope_defaults_to_all_and_allows_subsets(requested, granted) -> None:
    record = ClientRecord("c1x", "h", ("a", "b"), True, START)
    assert grant_scope(record, requested) == granted


def test_grant_scope_beyond_the_clients_is_invalid_scope() -> None:
    record = ClientRecord("c1x", "h", ("a",), True, START)
    with pytest.raises(InvalidScope):
        grant_scope(record, "a b")


# -- the store -----------------------------------------------------------------------------------


def test_create_stores_only_a_hash(client_store: ClientStore, dynamodb) -> None:
    record, secret = client_store.create(["orders:read", "orders:write"], now=START)

    assert re.fullmatch(r"c-[A-Za-z0-9_-]{16}", record.client_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)  # 256 bits
    [item] = table_items(dynamodb)
    assert item["pk"] == {"S": "CLIENT"}
    assert item["sk"] == {"S": f"CLIENT#{record.client_id}"}
    assert item["scopes"] == {"L": [{"S": "orders:read"}, {"S": "orders:write"}]}
    assert item["enabled"] == {"BOOL": True}
    assert item["created_at"] == {"N": str(START)}
    assert item["secret_hash"]["S"] == clients.hash_secret(secret)
    assert secret not in repr(item)
    assert clients.verify_secret(secret, item["secret_hash"]["S"])
    assert client_store.get(record.client_id) == record


def test_create_with_a_chosen_id_and_a_duplicate(client_store: ClientStore, dynamodb) -> None:
    record, _ = client_store.create(["a"], now=START, client_id="shop-backend")
    assert record.client_id == "shop-backend"
    before = table_items(dynamodb)

    with pytest.raises(ClientExists):
        client_store.create(["b"], now=START + 1, client_id="shop-backend")

    assert table_items(dynamodb) == before


@pytest.mark.parametrize("client_id", ["ab", "-abc", "a b c", "x" * 65, "caf\u00e9"])
def test_create_rejects_a_bad_client_id(client_store: ClientStore, dynamodb, client_id) -> None:
    with pytest.raises(RequestError):
        client_store.create(["a"], now=START, client_id=client_id)
    assert table_items(dynamodb) == []


@pytest.mark.parametrize(
    "client_id",
    ["9iGK81l2HuscXBiad8UdkA", "A" * 22, "shop-backend-v2-orders"],  # user id form: 22 base64url
)
def test_create_rejects_a_client_id_of_the_form_of_a_user_id(
    client_store: ClientStore, dynamodb, client_id
) -> None:
    with pytest.raises(RequestError, match="user id"):
        client_store.create(["a"], now=START, client_id=client_id)
    assert table_items(dynamodb) == []


@pytest.mark.parametrize("client_id", ["A" * 21, "A" * 23, "shop.backend.v2.orders"])
def test_create_accepts_ids_near_the_user_id_form(client_store: ClientStore, client_id) -> None:
    record, _ = client_store.create(["a"], now=START, client_id=client_id)
    assert record.client_id == client_id


@pytest.mark.parametrize("scopes", [[], [""], ['"quoted"']])
def test_create_needs_valid_scopes(client_store: ClientStore, dynamodb, scopes) -> None:
    with pytest.raises(InvalidScope):
        client_store.create(scopes, now=START)
    assert table_items(dynamodb) == []


def test_get_of_unknown_or_malformed_ids(client_store: ClientStore) -> None:
    assert client_store.get("nobody") is None
    assert client_store.get("a b") is None
    assert client_store.get("") is None


def test_list_clients_queries_every_page(
    client_store: ClientStore, store: Store, monkeypatch
) -> None:
    created = {client_store.create(["a"], now=START)[0].client_id for _ in range(3)}
    operations = []
    real_call = store.table.call

    def one_per_page(operation, **kwargs):
        operations.append(operation)
        if operation == "query":
            kwargs["Limit"] = 1
        return real_call(operation, **kwargs)

    monkeypatch.setattr(store.table, "call", one_per_page)
    listed = client_store.list_clients()

    assert {client.client_id for client in listed} == created
    assert set(operations) == {"query"} and len(operations) >= 3  # never a Scan


def test_set_enabled(client_store: ClientStore) -> None:
    record, _ = client_store.create(["a"], now=START)

    assert client_store.set_enabled(record.client_id, False)
    assert client_store.get(record.client_id).enabled is False
    assert client_store.set_enabled(record.client_id, True)
    assert client_store.get(record.client_id).enabled is True
    assert not client_store.set_enabled("nobody", False)
    assert not client_store.set_enabled("a b", False)
    assert client_store.get("nobody") is None  # no item was created


def test_public_view_has_no_secret_hash(client_store: ClientStore) -> None:
    record, _ = client_store.create(["a"], now=START)
    assert record.public() == {
        "client_id": record.client_id,
        "scopes": ["a"],
        "enabled": True,
        "created_at": START,
        "redirect_uris": [],
        "type": "confidential",
    }


# -- authentication ------------------------------------------------------------------------------


def test_authenticate(client_store: ClientStore) -> None:
    record, secret = client_store.create(["a"], now=START)
    assert client_store.authenticate(record.client_id, secret) == record


def test_authenticate_failures_say_nothing_specific(client_store: ClientStore) -> None:
    record, secret = client_store.create(["a"], now=START)
    disabled, disabled_secret = client_store.create(["a"], now=START)
    client_store.set_enabled(disabled.client_id, False)

    cases = [
        (record.client_id, secret[:-1]),
        (record.client_id, ""),
        (record.client_id, secret + "x" * 300),
        ("nobody", secret),
        ("x" * 1000, secret),
        (disabled.client_id, disabled_secret),
    ]
    messages = set()
    for client_id, candidate in cases:
        with pytest.raises(ClientAuthError) as failure:
            client_store.authenticate(client_id, candidate)
        messages.add(str(failure.value))
        assert secret not in str(failure.value)
    assert messages == {"client authentication failed"}


def test_unknown_client_costs_a_hash_too(client_store: ClientStore, monkeypatch) -> None:
    verified = []
    real = clients.verify_secret

    def spy(secret, encoded):
        verified.append(encoded)
        return real(secret, encoded)

    monkeypatch.setattr(clients, "verify_secret", spy)
    with pytest.raises(ClientAuthError):
        client_store.authenticate("nobody", "guess")
    with pytest.raises(ClientAuthError):
        client_store.authenticate("nobody-else", "guess")

    assert len(verified) == 2 and verified[0] == verified[1]
    assert verified[0].startswith("sha256$")


@pytest.fixture
def scrypt_calls(monkeypatch) -> list[int]:
    """Every scrypt run (its memory, in bytes), wherever it is called from."""
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(password, *, salt, n, r, p, maxmem=0, dklen=64):
        calls.append(128 * r * n)
        return real(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


def test_no_scrypt_for_any_caller_of_an_unknown_or_new_client(
    client_store: ClientStore, scrypt_calls
) -> None:
    """Issue 22, item 6: every client-credentials request ran a 16 MiB scrypt, unknown client
    ids included, before anyone was authenticated."""
    record, secret = client_store.create(["a"], now=START)
    for client_id, candidate in (("nobody", "guess"), ("x" * 64, "g"), (record.client_id, "no")):
        with pytest.raises(ClientAuthError):
            client_store.authenticate(client_id, candidate)
    assert client_store.authenticate(record.client_id, secret) == record
    assert scrypt_calls == []


def legacy_client(store: Store, client_id: str = "old-backend") -> tuple[ClientRecord, str]:
    """A client as an earlier release stored it: its secret's scrypt hash (16 MiB)."""
    secret = b64url(b"s" * 32)
    record = ClientRecord(client_id, clients.scrypt_hash(secret), ("a",), True, START)
    assert store.clients.add(record)
    return record, secret


def test_a_scrypt_hash_is_replaced_at_the_next_successful_use(
    client_store: ClientStore, store: Store, dynamodb, dynamodb_requests, scrypt_calls, log_lines
) -> None:
    record, secret = legacy_client(store)
    scrypt_calls.clear()
    with pytest.raises(ClientAuthError):  # a wrong secret: one scrypt, nothing replaced
        client_store.authenticate(record.client_id, "wrong")
    assert store.clients.get(record.client_id).secret_hash == record.secret_hash
    assert scrypt_calls == [16 * 2**20]

    dynamodb_requests.clear()
    authenticated = client_store.authenticate(record.client_id, secret)

    assert dynamodb_requests == ["GetItem", "UpdateItem"]  # read, then the guarded replacement
    assert authenticated.secret_hash == clients.hash_secret(secret)
    [item] = table_items(dynamodb)
    assert item["secret_hash"]["S"] == clients.hash_secret(secret)
    assert len(scrypt_calls) == 2
    assert any('"client_secret_rehashed"' in line for line in log_lines)
    assert not [line for line in log_lines if secret in line]
    # from now on: SHA-256, never scrypt again, in this container or a fresh one
    fresh = ClientStore(store.clients)
    assert fresh.authenticate(record.client_id, secret).client_id == record.client_id
    assert len(scrypt_calls) == 2


def test_a_replacement_never_overwrites_a_hash_changed_meanwhile(
    client_store: ClientStore, store: Store, monkeypatch
) -> None:
    record, secret = legacy_client(store)
    real_get = store.clients.get

    def changed_after_the_read(client_id):
        read = real_get(client_id)
        store.table.call(  # another secret was stored meanwhile
            "update_item",
            Key={"pk": {"S": "CLIENT"}, "sk": {"S": f"CLIENT#{client_id}"}},
            UpdateExpression="SET secret_hash = :h",
            ExpressionAttributeValues={":h": {"S": clients.hash_secret("another")}},
        )
        return read

    monkeypatch.setattr(store.clients, "get", changed_after_the_read)
    client_store.authenticate(record.client_id, secret)  # its secret was right when read

    assert real_get(record.client_id).secret_hash == clients.hash_secret("another")


# -- the per-container cache of verified pairs ---------------------------------------------------


def test_a_verified_pair_is_cached_as_a_hash_for_its_ttl(
    store: Store, clock, dynamodb_requests
) -> None:
    client_store = ClientStore(store.clients, clock=clock, cache_ttl=60)
    record, secret = client_store.create(["a"], now=START)
    client_store.authenticate(record.client_id, secret)
    dynamodb_requests.clear()

    assert client_store.authenticate(record.client_id, secret) == record
    assert dynamodb_requests == []  # no request, no hash of the table's
    assert secret not in repr(client_store._verified)  # the secret's hash only
    with pytest.raises(ClientAuthError):  # another secret: checked against the table
        client_store.authenticate(record.client_id, secret[:-1] + "x")
    assert dynamodb_requests == ["GetItem"]

    clock.advance(60)
    dynamodb_requests.clear()
    assert client_store.authenticate(record.client_id, secret) == record
    assert dynamodb_requests == ["GetItem"]  # expired: read again


def test_the_cache_is_bounded_and_off_at_ttl_zero(store: Store, clock, dynamodb_requests) -> None:
    bounded = ClientStore(store.clients, clock=clock, cache_size=2)
    made = [bounded.create(["a"], now=START) for _ in range(3)]
    for record, secret in made:
        bounded.authenticate(record.client_id, secret)
    assert list(bounded._verified) == [made[1][0].client_id, made[2][0].client_id]

    off = ClientStore(store.clients, clock=clock, cache_ttl=0)
    record, secret = made[0]
    off.authenticate(record.client_id, secret)
    dynamodb_requests.clear()
    off.authenticate(record.client_id, secret)
    assert dynamodb_requests == ["GetItem"] and not off._verified


def test_disabling_a_client_drops_it_from_this_containers_cache(client_store: ClientStore) -> None:
    record, secret = client_store.create(["a"], now=START)
    client_store.authenticate(record.client_id, secret)

    client_store.set_enabled(record.client_id, False)

    with pytest.raises(ClientAuthError):
        client_store.authenticate(record.client_id, secret)


# -- websites' clients: redirect URIs, public clients (issue 24, item 2) --------------------------

WEB = "https://shop.example/signed-in"


def test_a_website_client_has_redirect_uris_and_may_have_no_scope(
    client_store: ClientStore, dynamodb
) -> None:
    record, secret = client_store.create(
        [], now=START, client_id="shop-web", redirect_uris=[WEB, "http://localhost:3000/cb", WEB]
    )
    assert record.redirect_uris == (WEB, "http://localhost:3000/cb")  # once each, in order
    assert secret is not None and not record.is_public
    [item] = table_items(dynamodb)
    assert item["redirect_uris"] == {"L": [{"S": WEB}, {"S": "http://localhost:3000/cb"}]}
    assert "public" not in item
    assert client_store.get("shop-web") == record
    assert record.public()["redirect_uris"] == [WEB, "http://localhost:3000/cb"]
    # no scope, no client credentials
    assert client_store.authenticate("shop-web", secret) == record
    with pytest.raises(UnauthorizedClient):
        grant_scope(record, None)


def test_a_public_client_has_no_secret_and_never_authenticates(
    client_store: ClientStore, dynamodb
) -> None:
    record, secret = client_store.create(
        [], now=START, client_id="shop-spa", redirect_uris=[WEB], public=True
    )
    assert secret is None and record.is_public
    assert record.public()["type"] == "public"
    [item] = table_items(dynamodb)
    assert item["public"] == {"BOOL": True}
    assert item["secret_hash"] == {"S": clients.NO_SECRET}
    for presented in ("", "none", clients.NO_SECRET):
        with pytest.raises(ClientAuthError):
            client_store.authenticate("shop-spa", presented)


@pytest.mark.parametrize(
    "uri",
    [
        "http://shop.example/cb",  # plain http, not loopback
        "https://shop.example/cb#frag",
        "https://user@shop.example/cb",
        "/relative/cb",
        "https://",
        "javascript:alert(1)",
        "https://shop.example/c b",
        "https://shop.example/caf\u00e9",
        "https://shop.example:99999/cb",
        "https://shop.example/" + "x" * 500,
        "",
    ],
)
def test_create_refuses_a_bad_redirect_uri(client_store: ClientStore, dynamodb, uri) -> None:
    with pytest.raises(RequestError):
        client_store.create([], now=START, redirect_uris=[uri])
    assert table_items(dynamodb) == []


def test_create_refuses_a_public_client_without_redirect_uris_and_too_many_uris(
    client_store: ClientStore, dynamodb
) -> None:
    with pytest.raises(RequestError):
        client_store.create(["a"], now=START, public=True)
    with pytest.raises(RequestError):
        client_store.create([], now=START, redirect_uris=[f"{WEB}/{i}" for i in range(11)])
    with pytest.raises(InvalidScope):
        client_store.create([], now=START)  # neither scopes nor redirect URIs
    assert table_items(dynamodb) == []


def test_loopback_redirect_uris_may_be_http(client_store: ClientStore) -> None:
    uris = ["http://localhost/cb", "http://127.0.0.1:8080/cb?x=1", "http://[::1]:9/cb"]
    record, _ = client_store.create([], now=START, redirect_uris=uris)
    assert record.redirect_uris == tuple(uris)


def test_identify_a_token_requests_client(client_store: ClientStore) -> None:
    spa, _ = client_store.create(
        [], now=START, client_id="shop-spa", redirect_uris=[WEB], public=True
    )
    web, secret = client_store.create([], now=START, client_id="shop-web", redirect_uris=[WEB])
    assert client_store.identify({"client_id": "shop-spa"}, None) == spa
    assert client_store.identify({}, ("shop-spa", "")) == spa  # Basic with an empty password
    assert client_store.identify({}, ("shop-web", secret)) == web
    assert client_store.identify({"client_id": "shop-web", "client_secret": secret}, None) == web
    for form, basic in [
        ({}, None),  # names no client
        ({"client_id": "shop-web"}, None),  # a confidential client without its secret
        ({"client_id": "shop-web", "client_secret": "wrong"}, None),
        ({"client_id": "nobody"}, None),
        ({"client_id": "x" * 65}, None),
        ({"client_id": "shop-spa", "client_secret": "anything"}, None),
    ]:
        with pytest.raises(ClientAuthError):
            client_store.identify(form, basic)
    with pytest.raises(RequestError):
        client_store.identify({"client_id": "shop-web"}, ("shop-spa", ""))
    client_store.set_enabled("shop-spa", False)
    with pytest.raises(ClientAuthError):
        client_store.identify({"client_id": "shop-spa"}, None)
