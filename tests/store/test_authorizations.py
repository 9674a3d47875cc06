"""Web sign-ins' items (issue 24, item 2): start, the callback's one-time take, the code, and
the redemption's transaction (moto and DynamoDB Local)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.errors import DeletionPending, MergedAway, UserBanned
from chalicelib.store import Store
from chalicelib.store.authorizations import Authorization, IssuedCode
from chalicelib.store.identities import Identity
from tests.store.records import NOW, ODD_BYTES, USER, Backend, a_session, a_user

AUTHZ_ID = "authz" + "a" * 17
STATE = b"\x00state\xff" + ODD_BYTES[:24]
BROWSER = b"\x01browser\xfe" + ODD_BYTES[24:46]
CODE = b"\x02code\xfd" + ODD_BYTES[46:72]
WEB = "wx-website"


def pending(**changes: object) -> Authorization:
    authz = Authorization(
        authz_id=AUTHZ_ID,
        client_id="shop-web",
        redirect_uri="https://shop.example/callback?from=wxauth",
        redirect_uri_given=True,
        code_challenge="c" * 43,
        appid=WEB,
        created_at=NOW,
        expires_at=NOW + 600,
        state="rp-state 1",
    )
    return replace(authz, **changes)


def issued(unionid: str | None = "union-1", **changes: object) -> IssuedCode:
    code = IssuedCode(
        code_hash=CODE,
        code_expires_at=NOW + 60,
        keep_until=NOW + 660,
        user_id=USER,
        is_new=True,
        identity=Identity(WEB, "openid-web", USER, "website", unionid),
        custom_claims='{"tier":"gold"}',
        user_agent="Mozilla/5.0",
        source_ip="203.0.113.9",
    )
    return replace(code, **changes)


def take(store: Store, now: int = NOW, state: bytes = STATE, browser: bytes = BROWSER):
    return store.authorizations.take(AUTHZ_ID, state_hash=state, browser_hash=browser, now=now)


def test_start_then_get_round_trips(store: Store, backend: Backend) -> None:
    assert store.authorizations.start(pending(), state_hash=STATE, browser_hash=BROWSER)

    assert store.authorizations.get(AUTHZ_ID) == pending()
    item = backend.item(f"AUTHZ#{AUTHZ_ID}", "AUTHZ")
    assert item is not None
    assert bytes(item["state_hash"]["B"]) == STATE and bytes(item["browser_hash"]["B"]) == BROWSER
    assert item["expires_at"] == {"N": str(NOW + 600)}
    assert store.authorizations.get("nobody") is None


def test_start_never_overwrites(store: Store, backend: Backend) -> None:
    assert store.authorizations.start(pending(), state_hash=STATE, browser_hash=BROWSER)
    before = backend.items()

    assert not store.authorizations.start(
        pending(client_id="other"), state_hash=BROWSER, browser_hash=STATE
    )
    assert backend.items() == before


def test_take_passes_once_with_both_hashes_before_expiry(store: Store, backend: Backend) -> None:
    store.authorizations.start(pending(), state_hash=STATE, browser_hash=BROWSER)
    before = backend.items()
    for refused in (
        take(store, state=BROWSER),  # another state
        take(store, browser=STATE),  # another browser (or no cookie)
        take(store, now=NOW + 600),  # expired
    ):
        taken, old = refused
        assert taken is None and old == pending()
        assert backend.items() == before  # nothing taken

    taken, old = take(store, now=NOW + 5)
    assert old is None and taken == pending(consumed_at=NOW + 5)

    taken, old = take(store, now=NOW + 6)  # a reload of the callback
    assert taken is None and old == pending(consumed_at=NOW + 5)
    assert store.authorizations.take("nobody", state_hash=STATE, browser_hash=BROWSER, now=NOW) == (
        None,
        None,
    )


def test_issue_code_only_once_and_only_after_take(store: Store, backend: Backend) -> None:
    store.authorizations.start(pending(), state_hash=STATE, browser_hash=BROWSER)
    assert not store.authorizations.issue_code(AUTHZ_ID, issued())  # not taken yet
    take(store)

    assert store.authorizations.issue_code(AUTHZ_ID, issued())
    after = store.authorizations.get(AUTHZ_ID)
    assert after == replace(
        pending(consumed_at=NOW, expires_at=NOW + 660),
        code_hash=CODE,
        code_expires_at=NOW + 60,
        user_id=USER,
        is_new=True,
        openid="openid-web",
        kind="website",
        unionid="union-1",
        custom_claims='{"tier":"gold"}',
        user_agent="Mozilla/5.0",
        source_ip="203.0.113.9",
    )
    assert after is not None and after.code_hash == CODE
    before = backend.items()
    assert not store.authorizations.issue_code(AUTHZ_ID, issued(code_hash=b"\x09" * 32))
    assert backend.items() == before
    assert not store.authorizations.issue_code("nobody", issued())
    assert backend.items() == before


def issued_authorization(store: Store, unionid: str | None = "union-1") -> Authorization:
    store.authorizations.start(pending(), state_hash=STATE, browser_hash=BROWSER)
    take(store)
    store.authorizations.issue_code(AUTHZ_ID, issued(unionid))
    authz = store.authorizations.get(AUTHZ_ID)
    assert authz is not None
    return authz


@pytest.mark.parametrize("unionid", ["union-1", None])
def test_redeem_starts_the_session_once(store: Store, backend: Backend, unionid) -> None:
    authz = issued_authorization(store, unionid)
    session = a_session(client_id="shop-web")

    assert store.authorizations.redeem(authz, code_hash=CODE, session=session, now=NOW + 9) is None

    assert store.sessions.get(USER, session.session_id) == session
    redeemed = store.authorizations.get(AUTHZ_ID)
    assert redeemed == replace(authz, redeemed_at=NOW + 9, session_id=session.session_id)
    [listed] = store.identities.of_user(USER)
    assert (listed.appid, listed.openid, listed.kind) == (WEB, "openid-web", "website")
    links = backend.item("UNIONID#union-1", f"USER#{USER}")
    assert (links is not None) == (unionid is not None)

    # a second redemption (a replay, or a race lost) writes nothing and says who came first
    before = backend.items()
    again = store.authorizations.redeem(
        authz, code_hash=CODE, session=a_session("sess1", client_id="shop-web"), now=NOW + 10
    )
    assert again == redeemed
    assert backend.items() == before


def test_redeem_with_another_code_hash_writes_nothing(store: Store, backend: Backend) -> None:
    authz = issued_authorization(store)
    before = backend.items()

    old = store.authorizations.redeem(
        authz, code_hash=b"\x07" * 32, session=a_session(), now=NOW + 1
    )
    assert old == authz
    assert backend.items() == before


def test_redeem_refuses_a_banned_or_merged_user(store: Store, backend: Backend) -> None:
    authz = issued_authorization(store)
    store.users.ensure(a_user())
    store.users.ban(USER, now=NOW, reason=None)
    before = backend.items()

    with pytest.raises(UserBanned):
        store.authorizations.redeem(authz, code_hash=CODE, session=a_session(), now=NOW + 1)
    assert backend.items() == before

    store.users.unban(USER)
    backend.client.update_item(  # merged away, as `wxauth-admin user merge` leaves it
        TableName=backend.table,
        Key={"pk": {"S": f"USER#{USER}"}, "sk": {"S": "PROFILE"}},
        UpdateExpression="SET merged_into = :into",
        ExpressionAttributeValues={":into": {"S": "kept-user"}},
    )
    with pytest.raises(MergedAway):
        store.authorizations.redeem(authz, code_hash=CODE, session=a_session(), now=NOW + 1)
    assert store.sessions.get(USER, a_session().session_id) is None


def test_redeem_refuses_a_user_pending_deletion_as_such(store: Store, backend: Backend) -> None:
    """A user who asked for the account's deletion (issue 25) gets no website session; the
    refusal says why (403 access_denied, reason deletion_pending), not a ban."""
    authz = issued_authorization(store)
    store.users.ensure(a_user())
    backend.client.update_item(
        TableName=backend.table,
        Key={"pk": {"S": f"USER#{USER}"}, "sk": {"S": "PROFILE"}},
        UpdateExpression="SET erase_after = :t, deletion_requested_at = :now",
        ExpressionAttributeValues={":t": {"N": str(NOW + 86_400)}, ":now": {"N": str(NOW)}},
    )
    before = backend.items()

    with pytest.raises(DeletionPending) as refused:
        store.authorizations.redeem(authz, code_hash=CODE, session=a_session(), now=NOW + 1)
    assert refused.value.erase_after == NOW + 86_400
    assert backend.items() == before
