"""The store contract's fixtures (tests/store/records.py): `backend` and `store`."""

from tests.store.records import backend, store  # noqa: F401 - fixtures
