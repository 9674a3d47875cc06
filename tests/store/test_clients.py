"""OAuth clients' items: add, and the guarded replacement of a secret hash (moto and DynamoDB
Local)."""

from __future__ import annotations

from chalicelib.store import Store
from chalicelib.store.clients import ClientRecord
from tests.store.records import NOW, Backend

OLD = "scrypt$16384$8$1$c2FsdA$ZGlnZXN0"
NEW = "sha256$" + "A" * 43


def a_client(secret_hash: str = OLD) -> ClientRecord:
    return ClientRecord("shop-backend", secret_hash, ("orders:read",), True, NOW)


def test_replace_secret_hash_from_the_old_to_the_new(store: Store, backend: Backend) -> None:
    assert store.clients.add(a_client())

    assert store.clients.replace_secret_hash("shop-backend", old=OLD, new=NEW)

    assert store.clients.get("shop-backend") == a_client(NEW)
    [item] = backend.items()
    assert item["secret_hash"] == {"S": NEW}


def test_replace_secret_hash_never_overwrites_another_hash(store: Store, backend: Backend) -> None:
    assert store.clients.add(a_client("sha256$" + "B" * 43))
    before = backend.items()

    assert not store.clients.replace_secret_hash("shop-backend", old=OLD, new=NEW)

    assert backend.items() == before


def test_replace_secret_hash_of_no_client_creates_nothing(store: Store, backend: Backend) -> None:
    assert not store.clients.replace_secret_hash("nobody", old=OLD, new=NEW)
    assert backend.items() == []


def test_a_website_clients_redirect_uris_and_type_round_trip(
    store: Store, backend: Backend
) -> None:
    uris = ("https://shop.example/cb", "http://127.0.0.1:8080/cb?x=1")
    record = ClientRecord("shop-spa", "none", (), True, NOW, redirect_uris=uris, is_public=True)
    assert store.clients.add(record)

    assert store.clients.get("shop-spa") == record
    [item] = backend.items()
    assert item["redirect_uris"] == {"L": [{"S": uri} for uri in uris]}
    assert item["public"] == {"BOOL": True}
    assert store.clients.all() == [record]
