"""One-tap phone login (issue 24, item 1): `POST /auth/login {"code", "phone_code"}` finds or
creates the user and binds the number in the same login (chalicelib/phone_login.py)."""

from __future__ import annotations

import pytest

from chalicelib import runtime
from chalicelib.login import user_id_for
from chalicelib.phone import phone_hash
from chalicelib.store import phone_pk
from tests import test_phone as phone_tests
from tests.conftest import START, TABLE, TEST_APPID, stub_openid, table_items
from tests.http import assert_error, bearer, post
from tests.test_phone import ALICE_E164, ALICE_PHONE, APP_B, with_settings

broker = phone_tests.broker  # fixtures: the app's server-token broker, a second mini-program
app_b = phone_tests.app_b

ALICE_NUMBER = {
    "phone_number": ALICE_E164,
    "country_code": "86",
    "pure_phone_number": ALICE_PHONE,
    "bound_at": START,
}
NONCE = "n" * 32


def phone_login(client, code: str, phone_code: str, **extra):
    return post(client, "/auth/login", {"code": code, "phone_code": phone_code, **extra})


def me(client, access_token: str) -> dict:
    response = client.http.get("/me", headers=bearer(access_token))
    assert response.status_code == 200
    return response.json_body


def owner_of(dynamodb, e164: str) -> str | None:
    item = dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": phone_pk(phone_hash(e164))}, "sk": {"S": "PHONE"}}
    ).get("Item")
    return item["user_id"]["S"] if item else None


def not_claims(dynamodb) -> list[dict]:
    """Every item but the codes' claims (`LOGIN#`) and the apps' brokered server tokens
    (`WXTOKEN#`: an app's first phone code fetches its token, whoever the code's user is)."""
    return [
        item
        for item in table_items(dynamodb)
        if not item["pk"]["S"].startswith(("LOGIN#", "WXTOKEN#"))
    ]


def test_a_new_user_logs_in_with_the_number_bound(client, wechat, dynamodb, broker):
    response = phone_login(client, "alice.1", f"phone.alice.{ALICE_PHONE}")

    assert response.status_code == 200, response.json_body
    user = response.json_body["user"]
    assert user == {"id": user_id_for(TEST_APPID, "openid-alice"), "is_new": True,
                    "phone": ALICE_NUMBER}  # fmt: skip
    assert me(client, response.json_body["access_token"])["phone"] == ALICE_NUMBER
    assert owner_of(dynamodb, ALICE_E164) == user["id"]
    assert (wechat.calls, wechat.phone_calls) == (1, 1)
    assert wechat.phone_tokens == [broker.current]  # the app's server token, alice's openid


def test_a_returning_user_binds_in_three_more_requests_than_a_plain_login(
    client, wechat, dynamodb, broker, dynamodb_requests
):
    first = post(client, "/auth/login", {"code": "alice.1"}).json_body
    dynamodb_requests.clear()

    response = phone_login(client, "alice.2", f"phone.alice.{ALICE_PHONE}")

    assert response.status_code == 200, response.json_body
    assert response.json_body["user"] == {"id": first["user"]["id"], "is_new": False,
                                          "phone": ALICE_NUMBER}  # fmt: skip
    # the claim, the identity (read), the phone code's claim and its sealed answer, the
    # number's owner, one transaction (the session and the number together): as documented
    assert dynamodb_requests == [
        "PutItem", "GetItem", "PutItem", "UpdateItem", "GetItem", "TransactWriteItems"
    ]  # fmt: skip
    assert (wechat.calls, wechat.phone_calls) == (2, 1)


def test_a_returning_login_without_a_phone_code_stays_three_requests(
    client, wechat, dynamodb, dynamodb_requests
):
    post(client, "/auth/login", {"code": "alice.1"})
    dynamodb_requests.clear()

    response = post(client, "/auth/login", {"code": "alice.2", "phone_code": None})

    assert response.status_code == 200 and "phone" not in response.json_body["user"]
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems"]
    assert (wechat.calls, wechat.phone_calls) == (2, 0)


def test_the_same_phone_code_twice_makes_one_paid_call(
    client, wechat, dynamodb, broker, clock, dynamodb_requests
):
    first = phone_login(client, "alice.1", f"phone.alice.{ALICE_PHONE}")
    clock.advance(1)  # (no re-read of the app registry, at most every 5 s, in the count)
    dynamodb_requests.clear()

    # a new wx.login code (the first answer was lost), the same button's code
    again = phone_login(client, "alice.2", f"phone.alice.{ALICE_PHONE}")

    assert again.status_code == 200, again.json_body
    assert again.json_body["user"]["phone"]["phone_number"] == ALICE_E164
    assert again.json_body["user"]["id"] == first.json_body["user"]["id"]
    assert wechat.phone_calls == 1  # answered from the phone code's sealed copy
    # the claim, the identity, the phone code's claim (taken) and its read, the number's
    # owner, the transaction
    assert dynamodb_requests == [
        "PutItem", "GetItem", "PutItem", "GetItem", "GetItem", "TransactWriteItems"
    ]  # fmt: skip


def test_a_replayed_phone_login_replays_the_number_without_wechat(
    client, wechat, dynamodb, broker, dynamodb_requests
):
    body = {"code": "alice.1", "phone_code": f"phone.alice.{ALICE_PHONE}", "login_nonce": NONCE}
    first = post(client, "/auth/login", body)
    dynamodb_requests.clear()

    again = post(client, "/auth/login", body)

    assert again.status_code == 200
    assert again.json_body["refresh_token"] == first.json_body["refresh_token"]
    assert again.json_body["user"] == first.json_body["user"]
    assert (wechat.calls, wechat.phone_calls) == (1, 1)
    assert dynamodb_requests == ["PutItem", "GetItem", "GetItem"]


def test_another_users_number_refuses_and_creates_nothing(client, wechat, dynamodb, broker):
    alice = phone_login(client, "alice.1", f"phone.alice.{ALICE_PHONE}").json_body
    before, items = not_claims(dynamodb), len(table_items(dynamodb))

    # bob's phone has alice's number (a shared family phone, a recycled number)
    refused = phone_login(client, "bob.1", f"phone.bob.{ALICE_PHONE}")

    assert_error(refused, 409, "phone_in_use")
    assert ALICE_PHONE not in refused.body.decode()
    assert not_claims(dynamodb) == before  # no user, no identity, no session for bob
    assert len(table_items(dynamodb)) == items + 2  # the two codes' claims, kept refused
    assert owner_of(dynamodb, ALICE_E164) == alice["user"]["id"]
    # the same request again: the same 409, neither WeChat call made again
    calls = (wechat.calls, wechat.phone_calls)
    assert_error(phone_login(client, "bob.1", f"phone.bob.{ALICE_PHONE}"), 409, "phone_in_use")
    assert (wechat.calls, wechat.phone_calls) == calls
    assert not_claims(dynamodb) == before


def test_a_returning_user_with_another_users_number_gets_no_session(
    client, wechat, dynamodb, broker
):
    phone_login(client, "alice.1", f"phone.alice.{ALICE_PHONE}")
    bob = post(client, "/auth/login", {"code": "bob.1"}).json_body
    before = not_claims(dynamodb)

    assert_error(phone_login(client, "bob.2", f"phone.bob.{ALICE_PHONE}"), 409, "phone_in_use")

    assert not_claims(dynamodb) == before
    assert me(client, bob["access_token"])["phone"] is None


def test_link_joins_a_new_openid_to_the_numbers_owner(
    client, services, wechat, dynamodb, broker, app_b, dynamodb_requests
):
    alice = phone_login(client, "alice.1", f"phone.alice.{ALICE_PHONE}", appid=TEST_APPID)
    alice = alice.json_body
    with_settings(services, broker, phone_login="link")
    post(client, "/auth/login", {"code": "carol.1", "appid": APP_B})  # the apps, read
    dynamodb_requests.clear()

    # alice in app B (not bound to the open platform: no unionid), the same number
    joined = phone_login(client, "alice.2", f"phone.alice.{ALICE_PHONE}.@{APP_B}", appid=APP_B)

    assert joined.status_code == 200, joined.json_body
    assert joined.json_body["user"]["id"] == alice["user"]["id"]
    assert joined.json_body["user"]["is_new"] is False
    # as a new user's (the broker's first token of app B aside): the profile's UpdateItem
    # (`if_not_exists`: the owner's profile unchanged), the identity's Put, one transaction
    assert [r for r in dynamodb_requests if r in ("TransactWriteItems", "PutItem")] == [
        "PutItem", "PutItem", "PutItem", "TransactWriteItems"
    ]  # fmt: skip
    identities = me(client, joined.json_body["access_token"])["identities"]
    assert {(i["appid"], i["openid"]) for i in identities} == {
        (TEST_APPID, stub_openid(TEST_APPID, "alice")),
        (APP_B, stub_openid(APP_B, "alice")),
    }
    profiles = [i for i in table_items(dynamodb) if i["sk"]["S"] == "PROFILE"]
    assert len(profiles) == 2  # alice's and carol's: no user was made for the new openid


def test_without_link_the_same_login_is_refused(client, wechat, dynamodb, broker, app_b):
    phone_login(client, "alice.1", f"phone.alice.{ALICE_PHONE}", appid=TEST_APPID)
    before = not_claims(dynamodb)

    refused = phone_login(client, "alice.2", f"phone.alice.{ALICE_PHONE}.@{APP_B}", appid=APP_B)

    assert_error(refused, 409, "phone_in_use")
    assert not_claims(dynamodb) == before


def test_link_never_merges_two_existing_users(client, services, wechat, dynamodb, broker):
    phone_login(client, "alice.1", f"phone.alice.{ALICE_PHONE}")
    post(client, "/auth/login", {"code": "bob.1"})
    with_settings(services, broker, phone_login="link")
    before = not_claims(dynamodb)

    assert_error(phone_login(client, "bob.2", f"phone.bob.{ALICE_PHONE}"), 409, "phone_in_use")

    assert not_claims(dynamodb) == before


def test_a_unionids_user_comes_before_the_numbers_owner(
    client, services, wechat, dynamodb, broker, app_b
):
    """union-carol logged in to the primary app and bound her number; her first login to app B
    carries the same unionid: she is the unionid's user, whose number it is: no conflict, even
    under `refuse`."""
    carol = phone_login(
        client, "union-carol.1", "phone.union-carol.13700137000", appid=TEST_APPID
    ).json_body

    response = phone_login(
        client, "union-carol.2", f"phone.union-carol.13700137000.@{APP_B}", appid=APP_B
    )

    assert response.status_code == 200, response.json_body
    assert response.json_body["user"]["id"] == carol["user"]["id"]


def test_with_the_move_policy_a_returning_users_login_takes_the_number(
    client, services, wechat, dynamodb, broker
):
    alice = phone_login(client, "alice.1", f"phone.alice.{ALICE_PHONE}").json_body
    bob = post(client, "/auth/login", {"code": "bob.1"}).json_body
    with_settings(services, broker, phone_conflict="move")

    moved = phone_login(client, "bob.2", f"phone.bob.{ALICE_PHONE}")

    assert moved.status_code == 200, moved.json_body
    assert owner_of(dynamodb, ALICE_E164) == bob["user"]["id"]
    assert me(client, alice["access_token"])["phone"] is None


def test_a_number_changed_since_is_rebuilt_from_fresh_reads(client, wechat, dynamodb, broker):
    """alice's profile holds another number: the transaction guarded by none is refused, read
    again, and the old number's owner item goes."""
    phone_login(client, "alice.1", "phone.alice.13900139000")

    response = phone_login(client, "alice.2", f"phone.alice.{ALICE_PHONE}")

    assert response.status_code == 200, response.json_body
    assert owner_of(dynamodb, ALICE_E164) == response.json_body["user"]["id"]
    assert owner_of(dynamodb, "+8613900139000") is None


def test_a_banned_user_gets_no_session_and_no_number(client, services, wechat, dynamodb, broker):
    alice = post(client, "/auth/login", {"code": "alice.1"}).json_body
    services.store.users.ban(alice["user"]["id"], now=START, reason=None)
    before = not_claims(dynamodb)

    assert_error(phone_login(client, "alice.2", f"phone.alice.{ALICE_PHONE}"), 403, "access_denied")

    assert not_claims(dynamodb) == before


def test_a_user_pending_deletion_gets_a_restricted_session_and_no_number(
    client, wechat, dynamodb, broker
):
    """Issue 25: a phone login of a user who asked for the account's deletion is the login of
    such a user (a restricted session, `user.deletion`), and binds no number: the binding's
    profile update checks what the login's check would."""
    alice = post(client, "/auth/login", {"code": "alice.1"}).json_body
    user_id = alice["user"]["id"]
    erase_after = START + 7 * 86_400
    dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "PROFILE"}},
        UpdateExpression="SET erase_after = :t, deletion_requested_at = :now",
        ExpressionAttributeValues={":t": {"N": str(erase_after)}, ":now": {"N": str(START)}},
    )

    response = phone_login(client, "alice.2", f"phone.alice.{ALICE_PHONE}")

    assert response.status_code == 200, response.json_body
    user = response.json_body["user"]
    assert user["id"] == user_id and user["deletion"]["erase_after"] == erase_after
    assert "phone" not in user
    assert owner_of(dynamodb, ALICE_E164) is None
    token = response.json_body["access_token"]  # restricted: the account's own routes only
    refused = post(client, "/auth/phone", {"code": "x"}, headers=bearer(token))
    assert refused.status_code == 403
    assert refused.json_body["error"] == "access_denied"
    assert refused.json_body["reason"] == "deletion_pending"


@pytest.mark.parametrize(
    "body",
    [
        {"code": "alice.1", "phone_code": ""},
        {"code": "alice.1", "phone_code": 12},
        {"code": "alice.1", "phone_code": "x" * 129},
        {"code": "alice.1", "phone_code": "has space"},
    ],
)
def test_a_bad_phone_code_is_invalid_request_and_changes_nothing(client, wechat, dynamodb, body):
    assert_error(post(client, "/auth/login", body), 400, "invalid_request")
    assert table_items(dynamodb) == [] and (wechat.calls, wechat.phone_calls) == (0, 0)


def test_a_kind_without_a_phone_button_refuses_a_phone_code(client, services, wechat, dynamodb):
    from chalicelib.identity.apps import OFFICIAL_ACCOUNT, App

    services.apps.add(App("wx-oa", OFFICIAL_ACCOUNT, secret="oa-secret"), now=START)

    response = phone_login(client, "alice.1", "phone.alice.1", appid="wx-oa")

    assert_error(response, 400, "invalid_request")
    assert wechat.calls == 0


def test_a_phone_code_wechat_rejects_is_invalid_grant_and_no_session(
    client, wechat, dynamodb, broker
):
    response = phone_login(client, "alice.1", "phone.err-40029")

    assert_error(response, 400, "invalid_grant")
    assert not_claims(dynamodb) == []


def test_runtime_builds_the_phone_step_at_the_first_phone_login(services: runtime.Services):
    services.login  # noqa: B018
    assert "phone_login" not in services.__dict__


def test_a_new_users_phone_login_requests_as_documented(
    client, wechat, dynamodb, broker, dynamodb_requests
):
    post(client, "/auth/login", {"code": "carol.1"})  # the container's read of the apps
    dynamodb_requests.clear()

    response = phone_login(client, "alice.1", f"phone.alice.{ALICE_PHONE}")

    assert response.status_code == 200, response.json_body
    # the claim, the identity (read), the phone code's claim and its sealed answer, the
    # number's owner, the identity's tombstones (issue 25), the profile's UpdateItem, the
    # identity's Put, one transaction
    assert dynamodb_requests == [
        "PutItem", "GetItem", "PutItem", "UpdateItem", "GetItem", "Query", "UpdateItem",
        "PutItem", "TransactWriteItems",
    ]  # fmt: skip


def test_a_refused_phone_login_requests_as_documented(
    client, wechat, dynamodb, broker, dynamodb_requests
):
    phone_login(client, "alice.1", f"phone.alice.{ALICE_PHONE}")
    dynamodb_requests.clear()

    refused = phone_login(client, "bob.1", f"phone.bob.{ALICE_PHONE}")

    assert_error(refused, 409, "phone_in_use")
    # the claim, the identity (read), the phone code's claim and its sealed answer, the
    # number's owner, the login code's claim kept refused: no write of a user or a session
    assert dynamodb_requests == [
        "PutItem", "GetItem", "PutItem", "UpdateItem", "GetItem", "UpdateItem"
    ]  # fmt: skip
    dynamodb_requests.clear()

    assert_error(phone_login(client, "bob.1", f"phone.bob.{ALICE_PHONE}"), 409, "phone_in_use")
    assert dynamodb_requests == ["PutItem", "GetItem"]  # the claim, read: refused again
