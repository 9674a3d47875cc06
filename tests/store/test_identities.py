"""Identities: unionid links written by the login's transaction."""

from __future__ import annotations

from chalicelib.store import Store
from tests.store.records import NOW, OTHER, USER, a_session, claim, finish


def test_users_by_unionid(store: Store) -> None:
    for i, user_id in enumerate((USER, OTHER)):
        code = f"code{i}"
        claim(store, NOW, code=code)
        finish(store, code, a_session(user_id=user_id), unionid="u-shared", now=NOW)
    assert sorted(store.identities.users_of_unionid("u-shared")) == sorted([USER, OTHER])
    assert store.identities.users_of_unionid("u-nobody") == []
