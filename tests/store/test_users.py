"""Users: profiles, their upserts, bans (moto and DynamoDB Local)."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.store import Store, user_pk
from tests.store.records import NOW, USER, Backend, a_user

# -- users ------------------------------------------------------------------------------------


def test_upsert_user_creates_once(store: Store) -> None:
    assert store.users.upsert(a_user()) is None  # None: this call created it
    assert store.users.get(USER) == a_user()
    assert store.users.upsert(replace(a_user(), created_at=NOW + 5)) == a_user()
    assert store.users.get(USER) == a_user()  # created_at keeps its first value


def test_upsert_user_keeps_the_first_unionid(store: Store) -> None:
    store.users.upsert(a_user())
    assert store.users.upsert(a_user(unionid="u-first")) == a_user()
    assert store.users.get(USER).unionid == "u-first"  # a unionid appearing later is recorded
    assert store.users.upsert(a_user(unionid="u-second")) == a_user(unionid="u-first")
    assert store.users.upsert(a_user()) == a_user(unionid="u-first")  # none given: kept
    assert store.users.get(USER) == a_user(unionid="u-first")


def test_get_missing_user(store: Store) -> None:
    assert store.users.get(USER) is None



def test_ban_and_unban_user(store: Store, backend: Backend) -> None:
    store.users.upsert(a_user())
    banned = store.users.ban(USER, now=NOW + 5, reason="spam")
    assert banned == replace(a_user(), banned_at=NOW + 5, ban_reason="spam")
    assert store.users.get(USER) == banned
    assert store.users.upsert(a_user()) == banned  # a login's upsert hands back the ban
    assert store.users.ban(USER, now=NOW + 9, reason=None) == replace(a_user(), banned_at=NOW + 9)
    assert store.users.unban(USER) == replace(a_user(), banned_at=NOW + 9)
    assert store.users.get(USER) == a_user()
    assert "banned_at" not in backend.item(user_pk(USER), "PROFILE")


def test_ban_of_an_unknown_user_writes_nothing(store: Store, backend: Backend) -> None:
    assert store.users.ban(USER, now=NOW, reason="spam") is None
    assert store.users.unban(USER) is None
    assert backend.items() == []


# -- issue 25, item 4: the profile -------------------------------------------------------------


def test_set_profile_sets_clears_and_keeps_what_it_is_not_given(
    store: Store, backend: Backend
) -> None:
    store.users.upsert(a_user())
    url = "https://wx.qlogo.cn/mmopen/a/132"
    changed = store.users.set_profile(USER, {"nickname": "小明 🐱", "avatar_url": url}, now=NOW + 5)
    assert changed == replace(
        a_user(), nickname="小明 🐱", avatar_url=url, profile_updated_at=NOW + 5
    )
    assert store.users.get(USER) == changed

    cleared = store.users.set_profile(USER, {"nickname": None}, now=NOW + 9)  # avatar kept
    assert cleared == replace(a_user(), avatar_url=url, profile_updated_at=NOW + 9)
    assert "nickname" not in backend.item(user_pk(USER), "PROFILE")
    assert store.users.upsert(a_user()) == cleared  # a login's write leaves the profile alone


def test_set_profile_of_an_unknown_user_writes_nothing(store: Store, backend: Backend) -> None:
    assert store.users.set_profile(USER, {"nickname": "小明"}, now=NOW) is None
    assert backend.items() == []
