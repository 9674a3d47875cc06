"""Identities: unionid links written by the login's transaction."""

from __future__ import annotations

from chalicelib.store import Store
from tests.store.records import NOW, OTHER, USER, Backend, a_session, claim, finish


def test_users_by_unionid(store: Store) -> None:
    for i, user_id in enumerate((USER, OTHER)):
        code = f"code{i}"
        claim(store, NOW, code=code)
        finish(store, code, a_session(user_id=user_id), unionid="u-shared", now=NOW)
    assert sorted(store.identities.users_of_unionid("u-shared")) == sorted([USER, OTHER])
    assert store.identities.users_of_unionid("u-nobody") == []


# -- pending links (issue 21: in their unionid's partition, no longer one shared partition) ------


def test_pending_links_are_kept_per_unionid_once_each(store: Store, backend: Backend) -> None:
    from chalicelib.store.identities import PendingLink

    link = PendingLink("u-1", OTHER, USER, "wx-b", "o-b", NOW)
    assert store.identities.add_pending(link) is True
    assert store.identities.add_pending(link) is False  # once per unionid and user
    assert store.identities.add_pending(PendingLink("u-2", USER, OTHER, "wx-b", "o-c", NOW))
    item = backend.item("UNIONID#u-1", f"PENDING#{USER}")
    assert (item["owner"]["S"], item["user_id"]["S"]) == (OTHER, USER)
    assert store.identities.pending_of_unionid("u-1") == [link]
    assert store.identities.pending_of_unionid("u-9") == []
    assert [p.unionid for p in store.identities.all_pending()] == ["u-1", "u-2"]
    # the unionid's owner and users are read as before, its pending links aside
    assert store.identities.unionid("u-1") == (None, [])


def test_pending_links_of_earlier_releases_are_read(store: Store, backend: Backend) -> None:
    """`PENDING`/`LINK#<unionid>#<user>` items, never written any more, are still found."""
    from dataclasses import replace

    from chalicelib.store.identities import PendingLink

    old = {
        "pk": {"S": "PENDING"},
        "sk": {"S": f"LINK#u-1#{USER}"},
        "unionid": {"S": "u-1"},
        "owner": {"S": OTHER},
        "user_id": {"S": USER},
        "appid": {"S": "wx-b"},
        "openid": {"S": "o-b"},
        "created_at": {"N": str(NOW)},
    }
    backend.client.put_item(TableName=backend.table, Item=old)
    other = dict(old, sk={"S": f"LINK#u-10#{USER}"}, unionid={"S": "u-10"})
    backend.client.put_item(TableName=backend.table, Item=other)  # a prefix of it: not u-1's
    expected = replace(PendingLink("u-1", OTHER, USER, "wx-b", "o-b", NOW), legacy=True)
    assert store.identities.pending_of_unionid("u-1") == [expected]
    assert {(p.unionid, p.legacy) for p in store.identities.all_pending()} == {
        ("u-1", True),
        ("u-10", True),
    }
