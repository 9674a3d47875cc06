"""Phone-number binding: one paid WeChat call per code, one owner per number, the policy."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import jwt
import pytest

from chalicelib import runtime
from chalicelib.errors import StoreUnavailable, WeChatTokenInvalid
from chalicelib.phone import phone_hash
from chalicelib.store import Store, phone_pk
from chalicelib.store.phones import Phones
from tests.conftest import START, TEST_APPID, table_items
from tests.http import assert_error, bearer, login, post

T = TypeVar("T")
ALICE_PHONE = "13800138000"
ALICE_E164 = "+8613800138000"


class FakeBroker:
    """The broker's contract (chalicelib/wechat/broker.py): on WeChatTokenInvalid, one new
    token and one retry; the code under test must only raise it."""

    def __init__(self) -> None:
        self.current = "server-token-1"
        self.calls = 0
        self.refreshes = 0

    def token(self) -> str:
        return self.current

    def call(self, request: Callable[[str], T]) -> T:
        self.calls += 1
        try:
            return request(self.current)
        except WeChatTokenInvalid:
            self.refreshes += 1
            self.current = f"server-token-{self.refreshes + 1}"
            return request(self.current)


@pytest.fixture
def broker(services: runtime.Services) -> FakeBroker:
    fake = FakeBroker()
    services.__dict__["broker"] = fake  # before `services.phone` is first built
    return fake


@pytest.fixture
def app_client(client, broker):
    return client


def with_settings(services: runtime.Services, broker: FakeBroker, **changes) -> runtime.Services:
    """The same table, clock and stubs, other settings (the app then uses these)."""
    import app

    rebuilt = runtime.build(
        replace(services.settings, **changes),
        dynamodb=services.store.client,
        clock=services.clock,
        sleep=lambda _: None,
    )
    rebuilt.__dict__["broker"] = broker
    app._services = rebuilt
    return rebuilt


def bind(client, access_token: str, code: str):
    return post(client, "/auth/phone", {"code": code}, headers=bearer(access_token))


def me(client, access_token: str) -> dict:
    response = client.http.get("/me", headers=bearer(access_token))
    assert response.status_code == 200
    return response.json_body


def test_bind_stores_the_number_and_me_shows_it(app_client, wechat, dynamodb, broker):
    alice = login(app_client, "alice.1")
    assert me(app_client, alice["access_token"])["phone"] is None

    response = bind(app_client, alice["access_token"], f"phone.alice.{ALICE_PHONE}")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    phone = {
        "phone_number": ALICE_E164,
        "country_code": "86",
        "pure_phone_number": ALICE_PHONE,
        "bound_at": START,
    }
    assert response.json_body == {"phone": phone}
    assert me(app_client, alice["access_token"])["phone"] == phone
    owner = dynamodb.get_item(
        TableName="wxauth-test",
        Key={"pk": {"S": phone_pk(phone_hash(ALICE_E164))}, "sk": {"S": "PHONE"}},
    )["Item"]
    assert owner["user_id"]["S"] == alice["user"]["id"]
    assert wechat.phone_calls == 1 and wechat.phone_tokens == ["server-token-1"]


def test_the_same_code_again_answers_the_same_without_a_second_paid_call(
    app_client, wechat, dynamodb, clock
):
    alice = login(app_client, "alice.1")
    first = bind(app_client, alice["access_token"], f"phone.alice.{ALICE_PHONE}")
    items = table_items(dynamodb)
    clock.advance(120)

    again = bind(app_client, alice["access_token"], f"phone.alice.{ALICE_PHONE}")

    assert again.status_code == 200 and again.json_body == first.json_body
    assert wechat.phone_calls == 1
    assert table_items(dynamodb) == items


def test_another_users_code_reuse_is_refused(app_client, wechat):
    alice = login(app_client, "alice.1")
    bob = login(app_client, "bob.1")
    bind(app_client, alice["access_token"], f"phone.alice.{ALICE_PHONE}")

    response = bind(app_client, bob["access_token"], f"phone.alice.{ALICE_PHONE}")

    assert_error(response, 400, "invalid_grant")
    assert wechat.phone_calls == 1
    assert me(app_client, bob["access_token"])["phone"] is None


def test_a_code_of_another_user_is_rejected_by_wechats_openid_check(app_client, wechat):
    bob = login(app_client, "bob.1")

    response = bind(app_client, bob["access_token"], f"phone.alice.{ALICE_PHONE}")

    assert_error(response, 400, "invalid_grant")
    assert wechat.phone_calls == 1
    assert me(app_client, bob["access_token"])["phone"] is None


def test_a_number_of_another_user_is_refused_by_default(app_client, wechat, dynamodb):
    alice = login(app_client, "alice.1")
    bob = login(app_client, "bob.1")
    bind(app_client, alice["access_token"], f"phone.alice.{ALICE_PHONE}")

    response = bind(app_client, bob["access_token"], f"phone.bob.{ALICE_PHONE}")

    assert_error(response, 409, "phone_in_use")
    assert ALICE_PHONE not in response.json_body["error_description"]
    assert me(app_client, bob["access_token"])["phone"] is None
    assert me(app_client, alice["access_token"])["phone"]["phone_number"] == ALICE_E164
    # the retry gets the same answer, from the stored result: WeChat is not paid twice
    items = table_items(dynamodb)
    assert_error(
        bind(app_client, bob["access_token"], f"phone.bob.{ALICE_PHONE}"), 409, "phone_in_use"
    )
    assert wechat.phone_calls == 2 and table_items(dynamodb) == items


def test_with_the_move_policy_the_number_moves(app_client, services, broker, wechat, dynamodb):
    with_settings(services, broker, phone_conflict="move")
    alice = login(app_client, "alice.1")
    bob = login(app_client, "bob.1")
    bind(app_client, alice["access_token"], f"phone.alice.{ALICE_PHONE}")

    response = bind(app_client, bob["access_token"], f"phone.bob.{ALICE_PHONE}")

    assert response.status_code == 200
    assert me(app_client, bob["access_token"])["phone"]["phone_number"] == ALICE_E164
    assert me(app_client, alice["access_token"])["phone"] is None
    store = Store(dynamodb, "wxauth-test")
    assert store.phones.owner(phone_hash(ALICE_E164)) == bob["user"]["id"]
    alice_item = dynamodb.get_item(
        TableName="wxauth-test",
        Key={"pk": {"S": f"USER#{alice['user']['id']}"}, "sk": {"S": "PROFILE"}},
    )["Item"]
    bob_item = dynamodb.get_item(
        TableName="wxauth-test",
        Key={"pk": {"S": f"USER#{bob['user']['id']}"}, "sk": {"S": "PROFILE"}},
    )["Item"]
    assert alice_item["phone_moved_to"]["S"] == bob["user"]["id"]  # recorded, not silent
    assert bob_item["phone_moved_from"]["S"] == alice["user"]["id"]


def test_a_move_logs_user_ids_never_the_number_nor_its_hash(
    app_client, services, broker, wechat, log_lines
):
    """What operators.md's "Logs and metrics" says of `phone_moved` (issue #22, item 11)."""
    with_settings(services, broker, phone_conflict="move")
    alice, bob = login(app_client, "alice.1"), login(app_client, "bob.1")
    bind(app_client, alice["access_token"], f"phone.alice.{ALICE_PHONE}")
    bind(app_client, bob["access_token"], f"phone.bob.{ALICE_PHONE}")
    [moved] = [json.loads(line) for line in log_lines if '"phone_moved"' in line]
    assert moved == {
        "event": "phone_moved",
        "from_user_id": alice["user"]["id"],
        "to_user_id": bob["user"]["id"],
    }
    text = "\n".join(log_lines)
    assert ALICE_PHONE not in text and phone_hash(ALICE_E164) not in text
    docs = (Path(__file__).resolve().parent.parent / "docs" / "operators.md").read_text()
    logs_section = docs[docs.index("## Logs and metrics") :]
    described = logs_section[logs_section.index("`phone_moved`") :][:200]
    assert "never the number nor any hash of it" in described
    assert "phone_hash" not in logs_section


def test_a_new_number_releases_the_old_one(app_client, services, wechat):
    alice = login(app_client, "alice.1")
    bind(app_client, alice["access_token"], f"phone.alice.{ALICE_PHONE}")

    response = bind(app_client, alice["access_token"], "phone.alice.13900139000")

    assert response.json_body["phone"]["phone_number"] == "+8613900139000"
    assert services.store.phones.owner(phone_hash(ALICE_E164)) is None
    assert services.store.phones.owner(phone_hash("+8613900139000")) == alice["user"]["id"]


def test_quota_exhausted_is_429_with_retry_after(app_client, wechat):
    alice = login(app_client, "alice.1")

    response = bind(app_client, alice["access_token"], "phone.err-1400001")

    assert_error(response, 429, "slow_down")
    assert response.headers["Retry-After"] == "3600"


def test_system_busy_is_503_and_the_code_can_be_tried_again(app_client, wechat):
    alice = login(app_client, "alice.1")
    assert_error(
        bind(app_client, alice["access_token"], "phone.err--1"), 503, "temporarily_unavailable"
    )
    assert wechat.phone_calls == 2  # the client's one quick retry


def test_a_rejected_phone_code_again_is_answered_without_calling_wechat(app_client, wechat):
    """WeChat rejected the code (40029): it stays refused in its claim, and the same code
    again, from this user or another, is invalid_grant without another call."""
    alice, bob = login(app_client, "alice.1"), login(app_client, "bob.1")
    code = "phone.err-40029"
    assert_error(bind(app_client, alice["access_token"], code), 400, "invalid_grant")
    assert_error(bind(app_client, alice["access_token"], code), 400, "invalid_grant")
    assert_error(bind(app_client, bob["access_token"], code), 400, "invalid_grant")
    assert wechat.phone_calls == 1


def test_a_rejected_phone_code_with_ten_waiters_makes_one_wechat_call(services, broker, wechat):
    import threading
    import time

    from chalicelib.errors import GrantError

    alice = services.store.users.get(services.login.login("alice.1", START).tokens.user_id)
    phone = services.phone
    phone._claims._sleep = time.sleep
    entered, release = threading.Event(), threading.Event()
    real_call = broker.call

    def slow_call(request):
        entered.set()
        release.wait(5)
        return real_call(request)

    broker.call = slow_call
    outcomes: list[BaseException | None] = []

    def attempt():
        try:
            phone.bind(alice, "phone.err-40029.shared", START)
            outcomes.append(None)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            outcomes.append(e)

    threads = [threading.Thread(target=attempt)]
    threads[0].start()
    assert entered.wait(5)
    threads += [threading.Thread(target=attempt) for _ in range(10)]
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join(10)
    assert wechat.phone_calls == 1
    assert len(outcomes) == 11 and all(isinstance(e, GrantError) for e in outcomes), outcomes


def test_a_refused_server_token_is_left_to_the_broker(app_client, wechat, broker):
    alice = login(app_client, "alice.1")
    wechat.refused_tokens.add("server-token-1")

    response = bind(app_client, alice["access_token"], f"phone.alice.{ALICE_PHONE}")

    assert response.status_code == 200
    assert wechat.phone_tokens == ["server-token-1", "server-token-2"]
    assert (broker.calls, broker.refreshes) == (1, 1)


def test_a_token_refused_after_the_brokers_retry_is_503_without_a_loop(app_client, wechat, broker):
    alice = login(app_client, "alice.1")
    wechat.refused_tokens.update({"server-token-1", "server-token-2", "server-token-3"})

    response = bind(app_client, alice["access_token"], f"phone.alice.{ALICE_PHONE}")

    assert_error(response, 503, "temporarily_unavailable")
    assert "Retry-After" in response.headers
    assert wechat.phone_calls == 2 and broker.calls == 1


def test_a_failure_after_wechat_answered_is_applied_on_retry_without_paying_again(
    app_client, services, wechat, monkeypatch
):
    alice = login(app_client, "alice.1")
    original = Phones.bind
    failures = [StoreUnavailable("DynamoDB transact_write_items failed")]

    def flaky(self, *args, **kwargs):
        if failures:
            raise failures.pop()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Phones, "bind", flaky)
    code = f"phone.alice.{ALICE_PHONE}"
    assert_error(bind(app_client, alice["access_token"], code), 503, "temporarily_unavailable")
    assert me(app_client, alice["access_token"])["phone"] is None

    response = bind(app_client, alice["access_token"], code)

    assert response.status_code == 200 and response.json_body["phone"]["phone_number"] == ALICE_E164
    assert wechat.phone_calls == 1


def test_phone_claim_off_by_default_and_on_tokens_minted_after_binding(
    app_client, services, broker
):
    alice = login(app_client, "alice.1")
    bind(app_client, alice["access_token"], f"phone.alice.{ALICE_PHONE}")
    refreshed = post(app_client, "/auth/refresh", {"refresh_token": alice["refresh_token"]})
    claims = jwt.decode(refreshed.json_body["access_token"], options={"verify_signature": False})
    assert "phone_number" not in claims

    with_settings(services, broker, phone_claim=True)
    bob = login(app_client, "bob.1")
    bob_claims = jwt.decode(bob["access_token"], options={"verify_signature": False})
    assert "phone_number" not in bob_claims  # not bound yet
    again = post(
        app_client, "/auth/refresh", {"refresh_token": refreshed.json_body["refresh_token"]}
    )
    claims = jwt.decode(again.json_body["access_token"], options={"verify_signature": False})
    assert claims["phone_number"] == ALICE_E164
    discovery = app_client.http.get("/.well-known/openid-configuration").json_body
    assert "phone_number" in discovery["claims_supported"]


@pytest.mark.parametrize(
    "body",
    ['{"code": ""}', '{"code": 5}', "{}", '{"code": "' + "x" * 129 + '"}', '{"code": "a b"}'],
)
def test_bad_input_is_invalid_request(app_client, wechat, body):
    alice = login(app_client, "alice.1")
    response = post(app_client, "/auth/phone", raw=body, headers=bearer(alice["access_token"]))
    assert_error(response, 400, "invalid_request")
    assert wechat.phone_calls == 0


def test_no_access_token_is_401(app_client, wechat):
    assert_error(post(app_client, "/auth/phone", {"code": "phone.alice.1"}), 401, "invalid_token")
    assert wechat.phone_calls == 0


# -- a second mini-program's users (issue 22, item 10) ----------------------------------------

APP_B = "wx-app-b"
BOB_PHONE = "13900139000"


@pytest.fixture
def app_b(services: runtime.Services, broker: FakeBroker) -> str:
    from chalicelib.identity.apps import MINI_PROGRAM, App

    assert services.apps is not None
    services.apps.add(
        App(APP_B, MINI_PROGRAM, client_id="shop-b", secret="secret-of-app-b"), now=START
    )
    return APP_B


def login_to(client, code: str, appid: str) -> dict:
    response = post(client, "/auth/login", {"code": code, "appid": appid})
    assert response.status_code == 200, response.json_body
    return response.json_body


def test_a_second_mini_programs_user_binds_a_number_from_its_button(
    app_client, app_b, wechat, broker, services, dynamodb
):
    """The code of app B's button goes to WeChat with app B's server token and the user's
    openid in app B. It went with the primary app's token and the profile's first openid:
    400 invalid_grant (WeChat 40029)."""
    bob = login_to(app_client, "bob.1", app_b)

    response = bind(app_client, bob["access_token"], f"phone.bob.{BOB_PHONE}.@{app_b}")

    assert response.status_code == 200, response.json_body
    assert response.json_body["phone"]["pure_phone_number"] == BOB_PHONE
    assert broker.calls == 0  # the primary app's broker was not asked
    assert wechat.phone_tokens == ["stub-at-wx-app-b-1"]  # app B's own server token
    assert wechat.token_apps == {"stub-at-wx-app-b-1": app_b}
    brokered = [i for i in table_items(dynamodb) if i["pk"]["S"].startswith("WXTOKEN#")]
    assert [i["pk"]["S"] for i in brokered] == [f"WXTOKEN#{app_b}"]  # its broker's own item
    # and the same code again (a retry) answers the same number without another paid call
    again = bind(app_client, bob["access_token"], f"phone.bob.{BOB_PHONE}.@{app_b}")
    assert again.json_body == response.json_body and wechat.phone_calls == 1


def test_the_primary_apps_code_still_uses_its_token_for_a_user_first_seen_in_app_b(
    app_client, app_b, wechat, broker, services
):
    """The profile keeps the first app's openid (app B's here): a session of the primary app
    sends the user's openid in the primary app (its identity, one Query), not the profile's."""
    first = login_to(app_client, "union-carol.1", app_b)
    primary = login_to(app_client, "union-carol.2", TEST_APPID)
    assert primary["user"]["id"] == first["user"]["id"]  # one user (a unionid), profile of B
    response = bind(app_client, primary["access_token"], "phone.union-carol.13700137000")
    assert response.status_code == 200, response.json_body
    assert wechat.phone_tokens == ["server-token-1"] and broker.calls == 1


def test_a_code_of_app_b_in_a_session_of_the_primary_app_is_refused(
    app_client, app_b, wechat, broker, dynamodb
):
    """The session says which app's button the code must come from: app B's code with a session
    of the primary app goes to WeChat with the primary's token, and WeChat refuses it."""
    bob = login_to(app_client, "bob.1", TEST_APPID)
    before = [i for i in table_items(dynamodb) if i["pk"]["S"].startswith("PHONE#")]
    response = bind(app_client, bob["access_token"], f"phone.bob.{BOB_PHONE}.@{app_b}")
    assert_error(response, 400, "invalid_grant")
    assert [i for i in table_items(dynamodb) if i["pk"]["S"].startswith("PHONE#")] == before


def test_a_user_known_in_both_apps_binds_from_either(app_client, app_b, wechat, broker, services):
    """One user (a unionid) with identities in both apps: each session's code goes with its
    app's token and the user's openid there."""
    a = login_to(app_client, "union-dan.1", TEST_APPID)
    b = login_to(app_client, "union-dan.2", app_b)
    assert a["user"]["id"] == b["user"]["id"]
    response = bind(app_client, b["access_token"], f"phone.union-dan.{BOB_PHONE}.@{app_b}")
    assert response.status_code == 200, response.json_body
    response = bind(app_client, a["access_token"], "phone.union-dan.13600136000")
    assert response.status_code == 200, response.json_body


def test_the_app_of_a_session_is_found_by_its_client_id_once_per_container(services, app_b, broker):
    from chalicelib.errors import GrantError

    apps = services.phone._apps
    assert apps.of(None).appid == TEST_APPID and apps.of(TEST_APPID).broker is broker
    made = apps.of("shop-b")
    assert made.appid == app_b and apps.of("shop-b") is made  # one broker per appid
    services.apps.set_enabled(app_b, False, now=START)  # a disabled app's sessions still live
    assert apps.of("shop-b") is made
    with pytest.raises(GrantError):
        apps.of("no-such-client")
