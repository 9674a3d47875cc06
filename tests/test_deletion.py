"""Account deletion (issue 25, item 1) through the app on moto: asked for with a fresh code,
the cooling-off period (restricted logins, cancel), the scheduled erasure (complete, resumable,
idempotent), the tombstone's new user, the events, and `wxauth-admin user delete`."""

from __future__ import annotations

import json
from dataclasses import replace

import jwt
import pytest

from chalicelib import admin, runtime
from chalicelib.errors import StoreUnavailable
from chalicelib.phone import phone_hash
from chalicelib.store.user_data import UserData
from chalicelib.tokens.claims import set_claims
from tests.conftest import START, TABLE, stub_openid, table_items
from tests.http import assert_error, bearer, login, post, verdict
from tests.test_events import BUS, COMMON, Bus
from tests.test_phone import FakeBroker

DAY = 86_400
PHONE = "13800138000"


@pytest.fixture
def bus(dynamodb) -> Bus:
    return Bus()


@pytest.fixture
def services(settings, dynamodb, clock, wechat, bus) -> runtime.Services:
    built = runtime.build(
        replace(settings, event_bus=BUS),
        dynamodb=dynamodb,
        clock=clock,
        sleep=lambda _: None,
        events_client=bus.client,
    )
    built.__dict__["broker"] = FakeBroker()  # phone binding without WeChat's access token
    return built


def ask(client, access_token: str, code: str):
    return post(client, "/me/deletion", {"code": code}, bearer(access_token))


def cancel(client, access_token: str):
    return client.http.delete("/me/deletion", headers=bearer(access_token))


def get(client, path: str, access_token: str):
    return client.http.get(path, headers=bearer(access_token))


def items_naming(dynamodb, *needles: str) -> list[dict]:
    """Every item of the table whose keys or values contain one of `needles`."""
    found = []
    for item in table_items(dynamodb):
        text = json.dumps(item, default=lambda b: b.hex())
        if any(needle in text for needle in needles):
            found.append(item)
    return found


def user_with_everything(client, services) -> tuple[dict, list[str]]:
    """A user with a unionid, two sessions, a phone number, custom claims; its secrets."""
    first = login(client, "union-carol.1")
    login(client, "union-carol.2")
    response = post(
        client, "/auth/phone", {"code": f"phone.union-carol.{PHONE}"}, bearer(first["access_token"])
    )
    assert response.status_code == 200, response.json_body
    set_claims(services.store, first["user"]["id"], {"tier": "gold"}, now=START)
    needles = [
        first["user"]["id"],
        stub_openid("wx-test-appid", "union-carol"),
        "unionid-union-carol",
        PHONE,
    ]
    return first, needles


# -- asking ----------------------------------------------------------------------------------


def test_asking_ends_every_session_and_a_login_is_restricted_until_cancelled(client, clock):
    alice = login(client, "alice.1")
    other = login(client, "alice.2")

    response = ask(client, alice["access_token"], "alice.3")

    assert response.status_code == 202, response.json_body
    assert response.json_body == {
        "deletion": {"requested_at": START, "erase_after": START + 7 * DAY}
    }
    assert response.headers["Cache-Control"] == "no-store"
    for tokens in (alice, other):  # every session ended at once
        assert get(client, "/me", tokens["access_token"]).status_code == 401
        refreshed = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 400

    clock.advance(DAY)
    again = login(client, "alice.4")  # the person may log in, only to see and cancel
    assert again["user"]["id"] == alice["user"]["id"] and again["user"]["is_new"] is False
    assert again["user"]["deletion"] == {"requested_at": START, "erase_after": START + 7 * DAY}
    claims = jwt.decode(again["access_token"], options={"verify_signature": False})
    assert claims["deletion_pending"] is True and claims["aud"] == "wxauth:deletion-pending"
    me = get(client, "/me", again["access_token"])
    assert me.status_code == 200 and me.json_body["deletion"]["erase_after"] == START + 7 * DAY
    assert get(client, "/me/export", again["access_token"]).status_code == 200
    refused = get(client, "/auth/sessions", again["access_token"])
    assert refused.status_code == 403
    assert refused.json_body["error"] == "access_denied"
    assert refused.json_body["reason"] == "deletion_pending"
    assert verdict(client, again["access_token"])["valid"] is False  # no backend takes it

    assert cancel(client, again["access_token"]).status_code == 204
    refreshed = post(client, "/auth/refresh", {"refresh_token": again["refresh_token"]})
    assert refreshed.status_code == 200
    ordinary = refreshed.json_body["access_token"]
    assert "deletion_pending" not in jwt.decode(ordinary, options={"verify_signature": False})
    assert get(client, "/auth/sessions", ordinary).status_code == 200
    assert get(client, "/me", ordinary).json_body["deletion"] is None
    later = login(client, "alice.5")  # cancelled: an ordinary login again
    assert "deletion" not in later["user"]
    assert get(client, "/auth/sessions", later["access_token"]).status_code == 200


def test_a_code_of_another_user_is_refused_and_changes_nothing(client, dynamodb):
    alice = login(client, "alice.1")
    login(client, "bob.1")
    before = table_items(dynamodb)

    response = ask(client, alice["access_token"], "bob.2")

    assert_error(response, 400, "invalid_grant")
    assert table_items(dynamodb) == before
    assert get(client, "/me", alice["access_token"]).status_code == 200


@pytest.mark.parametrize(
    "body",
    [None, {}, {"code": ""}, {"code": 5}, {"code": "x" * 200}, []],
)
def test_bad_input_is_a_json_error_and_changes_nothing(client, dynamodb, body):
    alice = login(client, "alice.1")
    before = table_items(dynamodb)
    response = post(client, "/me/deletion", body, bearer(alice["access_token"]))
    assert response.status_code == 400, response.body
    assert response.json_body["error"] == "invalid_request"
    assert table_items(dynamodb) == before


def test_a_rejected_code_is_refused_and_a_client_token_cannot_ask(client, dynamodb):
    alice = login(client, "alice.1")
    before = table_items(dynamodb)
    assert ask(client, alice["access_token"], "err-40029.1").status_code == 400
    assert table_items(dynamodb) == before
    assert ask(client, "not-a-token", "alice.2").status_code == 401


def test_asking_twice_is_refused_with_the_pending_deletion(client):
    alice = login(client, "alice.1")
    assert ask(client, alice["access_token"], "alice.2").status_code == 202
    again = login(client, "alice.3")
    response = ask(client, again["access_token"], "alice.4")
    assert response.status_code == 403
    assert response.json_body["reason"] == "deletion_pending"


def test_cancel_without_a_deletion_is_204_and_after_the_period_is_refused(client, clock, services):
    alice = login(client, "alice.1")
    assert cancel(client, alice["access_token"]).status_code == 204
    assert ask(client, alice["access_token"], "alice.2").status_code == 202
    clock.advance(7 * DAY - 60)
    again = login(client, "alice.3")
    clock.advance(60)  # due: no longer cancellable, no longer a login
    response = cancel(client, again["access_token"])
    assert response.status_code == 403 and response.json_body["reason"] == "account_deleted"
    refused = post(client, "/auth/login", {"code": "alice.4"})
    assert refused.status_code == 403 and refused.json_body["reason"] == "account_deleted"


def test_a_cooldown_setting_is_used(client, clock, services):
    services.deletion._cooldown = 3600
    alice = login(client, "alice.1")
    assert ask(client, alice["access_token"], "alice.2").json_body["deletion"] == {
        "requested_at": START,
        "erase_after": START + 3600,
    }


# -- the erasure -----------------------------------------------------------------------------


def test_the_erasure_leaves_nothing_of_the_user_and_a_later_login_is_new(
    client, clock, services, dynamodb, bus
):
    carol, needles = user_with_everything(client, services)
    bob = login(client, "bob.1")
    assert ask(client, carol["access_token"], "union-carol.3").status_code == 202
    restricted = login(client, "union-carol.4")  # its session and claim are erased too
    assert restricted["user"]["deletion"]
    bus.delivered()

    assert services.erasure.run_due(clock.now) == []  # not due yet: nothing erased
    assert items_naming(dynamodb, carol["user"]["id"])
    clock.advance(7 * DAY)
    (done,) = services.erasure.run_due(int(clock.now))

    assert done.done and done.user_id == carol["user"]["id"]
    assert items_naming(dynamodb, *needles) == []
    assert items_naming(dynamodb, phone_hash(f"+86{PHONE}")) == []
    left = [item["pk"]["S"] for item in table_items(dynamodb)]
    assert any(pk.startswith("TOMBSTONE#") for pk in left)
    others = post(client, "/auth/refresh", {"refresh_token": bob["refresh_token"]})
    assert others.status_code == 200  # other users untouched
    (event,) = bus.delivered()
    assert event["detail-type"] == "UserDeleted"
    assert {k: v for k, v in event["detail"].items() if k not in COMMON} == {
        "user_id": carol["user"]["id"],
        "erased_user_ids": [carol["user"]["id"]],
        "requested_at": START,
    }
    assert services.erasure.run_due(int(clock.now)) == []  # done: the queue is empty

    new = login(client, "union-carol.5")
    assert new["user"]["is_new"] is True and new["user"]["id"] != carol["user"]["id"]
    assert "deletion" not in new["user"]
    me = get(client, "/me", new["access_token"]).json_body
    assert me["phone"] is None and me["deletion"] is None


def test_an_erasure_cut_half_way_resumes_and_finishes(
    client, clock, services, dynamodb, monkeypatch
):
    carol, needles = user_with_everything(client, services)
    assert ask(client, carol["access_token"], "union-carol.3").status_code == 202
    clock.advance(7 * DAY)
    real = UserData.delete_identity

    def throttled(self, *args, **kwargs):
        raise StoreUnavailable("throttled")

    monkeypatch.setattr(UserData, "delete_identity", throttled)
    with pytest.raises(RuntimeError, match="1 erasure"):
        services.erasure.run_due(int(clock.now))
    (record,) = services.store.deletions.due(int(clock.now))
    assert record.step == "unionids"  # the steps before it are done, and recorded
    assert items_naming(dynamodb, carol["user"]["id"])  # not all gone yet

    monkeypatch.setattr(UserData, "delete_identity", real)
    (done,) = services.erasure.run_due(int(clock.now))
    assert done.done
    assert items_naming(dynamodb, *needles) == []
    again = [i for i in table_items(dynamodb) if i["pk"]["S"].startswith("TOMBSTONE#")]
    assert len(again) == 1  # the tombstone step was not repeated into a second one
    assert login(client, "union-carol.4")["user"]["is_new"] is True


def test_every_step_run_twice_changes_nothing(client, clock, services, dynamodb):
    alice = login(client, "alice.1")
    assert ask(client, alice["access_token"], "alice.2").status_code == 202
    clock.advance(7 * DAY)
    (record,) = services.store.deletions.due(int(clock.now))
    services.erasure.erase(record, int(clock.now))
    after = table_items(dynamodb)
    services.erasure.erase(record, int(clock.now))  # a run that read the queue before
    assert table_items(dynamodb) == after


def test_the_events_of_a_deletion_name_the_user_only(client, clock, bus):
    alice = login(client, "alice.1")
    bus.delivered()
    assert ask(client, alice["access_token"], "alice.2").status_code == 202
    events = {e["detail-type"]: e["detail"] for e in bus.delivered()}
    requested = {k: v for k, v in events["UserDeletionRequested"].items() if k not in COMMON}
    assert requested == {
        "user_id": alice["user"]["id"],
        "requested_at": START,
        "erase_after": START + 7 * DAY,
        "requested_by": "user",
        "sessions_ended": 1,
    }
    again = login(client, "alice.3")
    bus.delivered()
    assert cancel(client, again["access_token"]).status_code == 204
    (event,) = [e for e in bus.delivered() if e["detail-type"] == "UserDeletionCancelled"]
    assert {k: v for k, v in event["detail"].items() if k not in COMMON} == {
        "user_id": alice["user"]["id"]
    }
    text = json.dumps(bus.requests, default=str)
    assert "alice.2" not in text and stub_openid("wx-test-appid", "alice") not in text


# -- wxauth-admin ----------------------------------------------------------------------------


@pytest.fixture
def admin_env(monkeypatch, settings) -> None:
    monkeypatch.setenv("AUTH_TABLE_NAME", TABLE)
    monkeypatch.setenv("AUTH_SIGNING_KEYS_FILE", settings.signing_keys_file)
    monkeypatch.setenv("AUTH_EVENT_BUS", BUS)


def test_admin_delete_now_erases_a_banned_user(capsys, admin_env, client, dynamodb, bus):
    alice = login(client, "alice.1")
    user_id = alice["user"]["id"]
    assert admin.main(["user", "ban", user_id]) == 0, capsys.readouterr()
    capsys.readouterr()
    bus.delivered()

    assert admin.main(["user", "delete", user_id, "--now"]) == 0
    out = json.loads(capsys.readouterr().out)

    assert out["user_id"] == user_id and out["erased"] is True
    assert items_naming(dynamodb, user_id, stub_openid("wx-test-appid", "alice")) == []
    kinds = [e["detail-type"] for e in bus.delivered()]
    assert "UserDeletionRequested" in kinds and "UserDeleted" in kinds
    assert admin.main(["user", "delete", user_id]) == 1  # no such user any more
    assert login(client, "alice.2")["user"]["is_new"] is True


def test_admin_delete_without_now_queues_and_erase_due_erases(capsys, admin_env, client, dynamodb):
    alice = login(client, "alice.1")
    user_id = alice["user"]["id"]
    assert admin.main(["user", "delete", user_id]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["erased"] is False and out["erase_after"] - out["requested_at"] == 7 * DAY
    assert get(client, "/me", alice["access_token"]).status_code == 401  # sessions ended
    assert admin.main(["user", "erase-due"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # not due yet (the real clock)
    assert items_naming(dynamodb, user_id)


def test_a_tombstone_is_a_keyed_hash_never_the_openid_nor_its_plain_hash(
    client, clock, services, dynamodb
):
    import hashlib

    from chalicelib.deletion import tombstone_hash

    alice = login(client, "alice.1")
    assert ask(client, alice["access_token"], "alice.2").status_code == 202
    clock.advance(7 * DAY)
    services.erasure.run_due(int(clock.now))

    openid = stub_openid("wx-test-appid", "alice")
    (tombstone,) = [i for i in table_items(dynamodb) if i["pk"]["S"].startswith("TOMBSTONE#")]
    keyed = tombstone["pk"]["S"].removeprefix("TOMBSTONE#")
    key = services.tombstone_key().encode()
    assert keyed == tombstone_hash(key, "wx-test-appid", openid)
    assert keyed != tombstone_hash(b"another-key-" + key, "wx-test-appid", openid)
    for plain in (
        openid,
        f"wx-test-appid{openid}",
        f"wxauth-tombstone\x00wx-test-appid\x00{openid}",
    ):
        assert hashlib.sha256(plain.encode()).hexdigest() != keyed
    assert set(tombstone) == {"pk", "sk", "deleted_at"}  # no id, no openid, no personal data
    assert alice["user"]["id"] not in json.dumps(tombstone) and openid not in json.dumps(tombstone)


def test_the_scheduled_handler_erases_what_is_due_within_the_lambdas_time(
    client, clock, services, dynamodb, bus
):
    import app

    class Context:
        def __init__(self, left_ms: int) -> None:
            self.left_ms = left_ms

        def get_remaining_time_in_millis(self) -> int:
            return self.left_ms

    alice = login(client, "alice.1")
    assert ask(client, alice["access_token"], "alice.2").status_code == 202
    clock.advance(DAY)
    bob = login(client, "bob.1")
    assert ask(client, bob["access_token"], "bob.2").status_code == 202
    clock.advance(7 * DAY)
    bus.delivered()

    # too little time left for another user: nothing is started, the next run does it
    assert app.erase_due({}, Context(30_000)) == {"erased": 0, "pending_announcement": 0}
    assert items_naming(dynamodb, alice["user"]["id"])
    assert app.erase_due({}, Context(600_000)) == {"erased": 2, "pending_announcement": 0}
    assert items_naming(dynamodb, alice["user"]["id"], bob["user"]["id"]) == []
    kinds = [e["detail-type"] for e in bus.delivered()]
    assert kinds == ["UserDeleted", "UserDeleted"]  # published by the handler's run


def test_request_counts_of_a_deletion_and_a_pending_users_login_and_refresh(
    client, dynamodb_requests
):
    alice = login(client, "alice.1")
    dynamodb_requests.clear()
    assert ask(client, alice["access_token"], "alice.2").status_code == 202
    # the session's GetItem, the profile's, the identity's; the transaction; the sessions'
    # Query and an UpdateItem per live session
    assert dynamodb_requests == [
        "GetItem",
        "GetItem",
        "GetItem",
        "TransactWriteItems",
        "Query",
        "UpdateItem",
    ]
    dynamodb_requests.clear()
    pending = login(client, "alice.3")
    # a returning login's three, and the restricted session's transaction on this path only
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems"] + [
        "TransactWriteItems"
    ]
    dynamodb_requests.clear()
    assert post(client, "/auth/refresh", {"refresh_token": pending["refresh_token"]}).status_code
    assert dynamodb_requests == ["UpdateItem"]  # a refresh stays one request


def test_a_cancel_restores_every_device_that_logged_in_meanwhile(client):
    alice = login(client, "alice.1")
    assert ask(client, alice["access_token"], "alice.2").status_code == 202
    phone, laptop = login(client, "alice.3"), login(client, "alice.4")
    assert cancel(client, phone["access_token"]).status_code == 204
    for device in (phone, laptop):
        refreshed = post(client, "/auth/refresh", {"refresh_token": device["refresh_token"]})
        assert refreshed.status_code == 200
        token = refreshed.json_body["access_token"]
        assert get(client, "/auth/sessions", token).status_code == 200
