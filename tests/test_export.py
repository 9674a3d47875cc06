"""A copy of one's data (issue 25, item 2): `GET /me/export` lists exactly what the table holds
about the user (compared with a scan), and never a secret."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import START, table_items
from tests.http import bearer, login, post
from tests.test_deletion import PHONE, ask, get, user_with_everything
from tests.test_phone import FakeBroker


@pytest.fixture
def services(services):
    services.__dict__["broker"] = FakeBroker()  # phone binding without WeChat's access token
    return services


SECRET_NAMES = ("hash", "key", "token", "sealed", "mac", "secret", "nonce")


def export(client, access_token: str) -> dict:
    response = get(client, "/me/export", access_token)
    assert response.status_code == 200, response.body
    assert response.headers["Cache-Control"] == "no-store"
    return response.json_body


def items_of(dynamodb, user_id: str) -> list[dict]:
    """Every item of the table that names the user, in its keys or its attributes."""
    return [item for item in table_items(dynamodb) if user_id in json.dumps(item, default=str)]


def binary_values(items: list[dict]) -> list[str]:
    """Every binary attribute (hashes, sealed values, keys) in the forms JSON could carry."""
    found = []
    for item in items:
        for value in item.values():
            if "B" in value:
                raw = value["B"]
                found += [raw.hex(), base64.b64encode(raw).decode()]
                found.append(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
    return found


def test_the_export_lists_exactly_what_the_table_holds(client, services, dynamodb, clock):
    carol, _ = user_with_everything(client, services)
    user_id = carol["user"]["id"]
    post(client, "/auth/logout", {}, bearer(carol["access_token"]))  # an ended session too
    clock.advance(10)
    assert ask(client, login(client, "union-carol.3")["access_token"], "union-carol.4").status_code
    pending = login(client, "union-carol.5")  # restricted: it may still export

    body = export(client, pending["access_token"])
    held = items_of(dynamodb, user_id)

    kinds: dict[str, list[tuple[str, str]]] = {}
    for item in held:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        kind = pk.split("#", 1)[0] + "/" + sk.split("#", 1)[0]
        kinds.setdefault(kind, []).append((pk, sk))
    assert body["user"]["id"] == user_id and body["user"]["created_at"] == START
    sessions = {sk.removeprefix("SESSION#") for _, sk in kinds["USER/SESSION"]}
    assert {s["id"] for s in body["sessions"]} == sessions
    ended = [s for s in body["sessions"] if s["revoked_at"] is not None]
    assert ended and all(s["revoked_reason"] for s in ended)
    identities = {pk.removeprefix("IDENTITY#") for pk, _ in kinds["IDENTITY/IDENTITY"]}
    assert {f"{i['appid']}#{i['openid']}" for i in body["identities"]} == identities
    listed = {sk.removeprefix("IDENTITY#") for _, sk in kinds["USER/IDENTITY"]}
    assert listed == identities
    unionids = {pk.removeprefix("UNIONID#") for pk, _ in kinds["UNIONID/OWNER"]}
    assert unionids == {u["unionid"] for u in body["unionids"]}
    assert all(u["owner_since"] and u["linked_at"] for u in body["unionids"])
    assert body["phone"]["phone_number"] == f"+86{PHONE}"
    assert body["phone"]["owner_since"] == body["phone"]["bound_at"]
    assert len(body["code_records"]) == len(kinds["LOGIN/LOGIN"])
    assert {r["kind"] for r in body["code_records"]} == {"login", "phone"}
    assert body["claims"] == {"tier": "gold"}
    assert body["deletion"]["erase_after"] > START and body["deletion"]["requested_by"] == "user"
    assert len(kinds["USER/PROFILE"]) == 1 and len(kinds["PHONE/PHONE"]) == 1
    deletion_items = [k for k in kinds if k.startswith("DELETION/")]
    assert len(deletion_items) == 1
    every = {"USER/PROFILE", "USER/SESSION", "USER/IDENTITY", "IDENTITY/IDENTITY"}
    every |= {"UNIONID/OWNER", "UNIONID/USER", "PHONE/PHONE", "LOGIN/LOGIN", *deletion_items}
    assert set(kinds) == every  # nothing the export does not account for

    text = json.dumps(body)
    for secret in (carol["refresh_token"], pending["refresh_token"], pending["access_token"]):
        assert secret not in text
    for value in binary_values(held):
        assert value not in text
    for entry in [body, *body["sessions"], *body["code_records"], body["phone"]]:
        assert not [name for name in entry if any(w in name for w in SECRET_NAMES)]


def test_a_fresh_user_exports_its_one_identity_and_session(client):
    alice = login(client, "alice.1")
    body = export(client, alice["access_token"])
    assert body["version"] == 1 and body["exported_at"] == START
    assert [(i["appid"], i["kind"]) for i in body["identities"]] == [
        ("wx-test-appid", "mini-program")
    ]
    assert len(body["sessions"]) == 1 and body["phone"] is None and body["deletion"] is None
    assert body["pending_links"] == [] and body["merged_accounts"] == []
    assert body["user"]["nickname"] is None and body["user"]["avatar_url"] is None


def test_the_profile_set_by_patch_me_is_in_the_export(client):
    alice = login(client, "alice.1")
    response = client.http.patch(
        "/me",
        body=json.dumps({"nickname": "阿丽", "avatar_url": "https://wx.qlogo.cn/a/b.png"}),
        headers={
            "authorization": f"Bearer {alice['access_token']}",
            "content-type": "application/json",
        },
    )
    assert response.status_code == 200, response.body
    user = export(client, alice["access_token"])["user"]
    assert user["nickname"] == "阿丽" and user["avatar_url"] == "https://wx.qlogo.cn/a/b.png"
    assert user["profile_updated_at"] == START


@pytest.mark.parametrize("authorization", [None, "Bearer nope"])
def test_without_a_users_token_it_is_401(client, authorization):
    headers = {"authorization": authorization} if authorization else {}
    response = client.http.get("/me/export", headers=headers)
    assert response.status_code == 401
    assert response.json_body["error"] == "invalid_token"
