"""The admin command line against moto: clients, sessions, key rotation, and its errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import boto3
import jwt
import pytest

from chalicelib import admin
from chalicelib.errors import ClientAuthError
from chalicelib.signing_keys import KeySet
from tests.conftest import START, TABLE
from tests.http import assert_error, basic, bearer, login, post, token

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, settings, dynamodb) -> None:
    """The command line's environment: the moto table and the test key file."""
    monkeypatch.setenv("AUTH_TABLE_NAME", TABLE)
    monkeypatch.setenv("AUTH_SIGNING_KEYS_FILE", settings.signing_keys_file)
    monkeypatch.delenv("AUTH_SIGNING_KEYS_ARN", raising=False)
    monkeypatch.delenv("AUTH_ACCESS_TTL", raising=False)


def run(capsys, *argv: str) -> tuple[int, object, str]:
    """main(argv) -> (exit code, stdout parsed as JSON or None, stderr)."""
    code = admin.main(list(argv))
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


# -- clients -------------------------------------------------------------------------------------


def test_client_create_prints_the_secret_once(capsys, env, services):
    code, out, err = run(capsys, "client", "create", "--scopes", "orders:read orders:write")

    assert code == 0, err
    assert set(out) == {
        "client_id",
        "client_secret",
        "scopes",
        "enabled",
        "created_at",
        "redirect_uris",
        "type",
    }
    assert out["scopes"] == ["orders:read", "orders:write"] and out["enabled"] is True
    assert (out["redirect_uris"], out["type"]) == ([], "confidential")
    assert "shown this once" in err and out["client_secret"] not in err
    record = services.clients.authenticate(out["client_id"], out["client_secret"])
    assert record.scopes == ("orders:read", "orders:write")

    code, listed, _ = run(capsys, "client", "list")
    assert code == 0
    assert listed == [{k: v for k, v in out.items() if k != "client_secret"}]
    assert out["client_secret"] not in json.dumps(listed)


def test_client_create_for_websites_sign_ins(capsys, env, services):
    """Issue 24, item 2: redirect URIs (repeatable), no scope, and a public client."""
    uri, local = "https://shop.example/cb", "http://localhost:3000/cb"
    argv = ["client", "create", "--client-id", "shop-web", "--redirect-uri", uri]
    code, out, err = run(capsys, *argv, "--redirect-uri", local)
    assert code == 0, err
    assert out["redirect_uris"] == [uri, local] and out["scopes"] == []
    assert out["type"] == "confidential" and out["client_secret"]

    code, out, err = run(
        capsys, *argv[:2], "--client-id", "shop-spa", "--redirect-uri", uri, "--public"
    )
    assert code == 0, err
    assert out["type"] == "public" and "client_secret" not in out
    assert services.clients.get("shop-spa").is_public

    # plain http off loopback; public without redirect URIs; neither scopes nor redirect URIs
    for bad in (["--redirect-uri", "http://shop.example/cb"], ["--public"], []):
        code, out, err = run(capsys, "client", "create", *bad)
        assert code == 1 and out is None and err


def test_app_add_a_website(capsys, env, services):
    code, out, err = run(
        capsys,
        "app",
        "add",
        "--appid",
        "wx-web",
        "--kind",
        "website",
        "--secret-arn",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:web",
    )
    assert code == 0, err
    assert out["kind"] == "website"


def test_client_create_with_an_id_and_a_duplicate(capsys, env):
    code, out, _ = run(capsys, "client", "create", "--scopes", "a", "--client-id", "shop-backend")
    assert code == 0 and out["client_id"] == "shop-backend"

    code, out, err = run(capsys, "client", "create", "--scopes", "b", "--client-id", "shop-backend")
    assert code == 1 and out is None
    assert "shop-backend already exists" in err


def test_client_create_refuses_an_id_of_the_form_of_a_user_id(capsys, env, services, dynamodb):
    user_id = "9iGK81l2HuscXBiad8UdkA"  # 22 base64url characters, as login.user_id_for makes
    code = admin.main(["client", "create", "--scopes", "a", "--client-id", user_id])
    assert code == 2
    assert "form of a user id" in capsys.readouterr().err
    assert services.clients.list_clients() == []


def test_client_disable_and_enable(capsys, env, services):
    _, created, _ = run(capsys, "client", "create", "--scopes", "a", "--client-id", "shop-backend")
    secret = created["client_secret"]

    code, out, _ = run(capsys, "client", "disable", "shop-backend")
    assert code == 0 and out == {"client_id": "shop-backend", "enabled": False}
    with pytest.raises(ClientAuthError):
        services.clients.authenticate("shop-backend", secret)
    assert run(capsys, "client", "list")[1][0]["enabled"] is False

    code, out, _ = run(capsys, "client", "enable", "shop-backend")
    assert code == 0 and out["enabled"] is True
    assert services.clients.authenticate("shop-backend", secret).enabled

    code, out, err = run(capsys, "client", "disable", "nobody")
    assert code == 1 and "no client nobody" in err


def test_a_disabled_client_gets_no_token(capsys, env, client, services, clock):
    _, created, _ = run(capsys, "client", "create", "--scopes", "a", "--client-id", "shop-backend")
    credentials = basic("shop-backend", created["client_secret"])
    assert token(client, {"grant_type": "client_credentials"}, credentials).status_code == 200

    assert run(capsys, "client", "disable", "shop-backend")[0] == 0

    # A container that authenticated the client keeps it AUTH_CLIENTS_CACHE_TTL seconds.
    assert services.settings.clients_cache_ttl == 60
    assert token(client, {"grant_type": "client_credentials"}, credentials).status_code == 200
    clock.advance(60)
    response = token(client, {"grant_type": "client_credentials"}, credentials)
    assert_error(response, 401, "invalid_client")


# -- sessions ------------------------------------------------------------------------------------


def ids(tokens: dict) -> tuple[str, str]:
    user_id, session_id = tokens["refresh_token"].split(".")[:2]
    return user_id, session_id


def test_sessions_list(capsys, env, client):
    first = login(client)
    second = login(client, "alice.2")
    user_id, _ = ids(first)

    code, out, _ = run(capsys, "sessions", "list", user_id)

    assert code == 0
    assert sorted(s["session_id"] for s in out) == sorted([ids(first)[1], ids(second)[1]])
    session = out[0]
    assert session["live"] is True and session["revoked_at"] is None
    assert session["client_id"] == "wx-test-appid"
    assert session["expires_at"] == START + 2_592_000
    printed = json.dumps(out)
    assert "hash" not in printed and "sealed" not in printed
    assert first["refresh_token"] not in printed

    code, out, _ = run(capsys, "sessions", "list", "A" * 22)
    assert code == 0 and out == []


def test_sessions_revoke_makes_the_next_refresh_fail(capsys, env, client):
    tokens = login(client)
    other = login(client, "alice.2")
    user_id, session_id = ids(tokens)

    code, out, _ = run(capsys, "sessions", "revoke", user_id, session_id)

    assert code == 0
    assert out == {"session_id": session_id, "revoked": True, "already_revoked": False}
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert_error(token(client, refresh), 400, "invalid_grant")
    assert_error(
        post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]}),
        400,
        "invalid_grant",
    )
    assert_error(
        client.http.get("/me", headers=bearer(tokens["access_token"])), 401, "invalid_token"
    )
    # the user's other session lives on
    assert (
        post(client, "/auth/refresh", {"refresh_token": other["refresh_token"]}).status_code == 200
    )

    listed = run(capsys, "sessions", "list", user_id)[1]
    revoked = next(s for s in listed if s["session_id"] == session_id)
    assert revoked["live"] is False and revoked["revoked_reason"] == "admin"

    code, out, _ = run(capsys, "sessions", "revoke", user_id, session_id)
    assert code == 0 and out["already_revoked"] is True


def test_sessions_revoke_of_an_unknown_session(capsys, env, client):
    user_id, _ = ids(login(client))
    code, out, err = run(capsys, "sessions", "revoke", user_id, "B" * 22)
    assert code == 1 and out is None
    assert f"has no session {'B' * 22}" in err


def test_sessions_revoke_all(capsys, env, client):
    first = login(client)
    second = login(client, "alice.2")
    stranger = login(client, "zed.1")

    code, out, _ = run(capsys, "sessions", "revoke-all", ids(first)[0])

    assert code == 0 and out == {"user_id": ids(first)[0], "revoked": 2}
    for tokens in (first, second):
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        assert_error(token(client, refresh), 400, "invalid_grant")
    assert post(client, "/auth/verify", {"token": stranger["access_token"]}).json_body["valid"]
    assert run(capsys, "sessions", "revoke-all", ids(first)[0])[1]["revoked"] == 0


# -- keys ----------------------------------------------------------------------------------------


@pytest.fixture
def admin_clock(monkeypatch, clock):
    """The command line reads the same fake clock as the service under test."""
    monkeypatch.setattr(admin.time, "time", clock)
    return clock


def test_keys_rotate_on_the_local_file(capsys, env, client, settings, admin_clock, key_set_json):
    before = login(client)["access_token"]
    old_kid = KeySet.from_json(key_set_json).active_kid

    code, out, err = run(capsys, "keys", "rotate")

    assert code == 0, err
    assert out["keys"] == settings.signing_keys_file
    assert out["retired_kid"] == old_kid and out["active_kid"] != old_kid
    assert out["signs_from"] == START + 600
    assert out["published_kids"] == [old_kid, out["active_kid"]] and out["dropped_kids"] == []
    assert "PRIVATE" not in json.dumps(out) + err
    path = settings.signing_keys_file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    rotated = KeySet.from_json(Path(path).read_text())
    assert rotated.active_kid == out["active_kid"]

    # the running service reads the new file at once: it publishes the new key right away...
    jwks = client.http.get("/.well-known/jwks.json").json_body
    assert [k["kid"] for k in jwks["keys"]] == [old_kid, out["active_kid"]]
    # ...keeps signing with the old one for 600 s, so that verifiers fetch the new key first...
    admin_clock.advance(599)
    during = login(client, "alice.2")["access_token"]
    assert jwt.get_unverified_header(during)["kid"] == old_kid
    # ...then signs with the new one; every token verifies
    admin_clock.advance(1)
    after = login(client, "alice.3")["access_token"]
    assert jwt.get_unverified_header(after)["kid"] == out["active_kid"]
    for access_token in (before, during, after):
        assert post(client, "/auth/verify", {"token": access_token}).json_body["valid"] is True


def test_keys_rotate_activate_in_0_signs_with_the_new_key_at_once(capsys, env, client, admin_clock):
    before = login(client)["access_token"]
    code, out, _ = run(capsys, "keys", "rotate", "--activate-in", "0")
    assert code == 0 and out["signs_from"] == START
    after = login(client, "alice.2")["access_token"]
    assert jwt.get_unverified_header(after)["kid"] == out["active_kid"]
    for access_token in (before, after):
        assert post(client, "/auth/verify", {"token": access_token}).json_body["valid"] is True


def test_keys_rotate_emergency_unpublishes_the_old_key(capsys, env, client, admin_clock):
    tokens = login(client)

    code, out, _ = run(capsys, "keys", "rotate", "--emergency")

    assert code == 0 and out["published_kids"] == [out["active_kid"]]
    assert out["dropped_kids"] == [out["retired_kid"]] and out["signs_from"] == START
    jwks = client.http.get("/.well-known/jwks.json").json_body
    assert [k["kid"] for k in jwks["keys"]] == [out["active_kid"]]
    verdict = post(client, "/auth/verify", {"token": tokens["access_token"]}).json_body
    assert verdict == {"valid": False, "reason": "invalid"}
    # the session survives: the client refreshes and gets a token signed by the new key
    refreshed = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert (
        jwt.get_unverified_header(refreshed.json_body["access_token"])["kid"] == out["active_kid"]
    )


def test_keys_rotate_keeps_the_old_key_until_its_last_token_expired(
    capsys, env, admin_clock, key_set_json
):
    original = KeySet.from_json(key_set_json).active_kid
    run(capsys, "keys", "rotate")  # the original key signs until START + 600
    # its tokens live 1800 s; a process may sign with it for 300 s more; 60 s of clock skew
    admin_clock.now = START + 600 + 1800 + 300 + 60 - 1
    _, out, _ = run(capsys, "keys", "rotate")
    assert original in out["published_kids"] and out["dropped_kids"] == []
    admin_clock.now = START + 600 + 1800 + 300 + 60
    _, out, _ = run(capsys, "keys", "rotate")
    assert out["dropped_kids"] == [original]
    assert len(out["published_kids"]) == 3


def test_keys_rotate_without_a_key_file(capsys, env, monkeypatch, tmp_path):
    missing = tmp_path / "nothing-here.json"
    monkeypatch.setenv("AUTH_SIGNING_KEYS_FILE", str(missing))
    code, out, err = run(capsys, "keys", "rotate")
    assert code == 1 and out is None
    assert "no signing key file" in err and not missing.exists()


def test_keys_rotate_in_secrets_manager(capsys, env, monkeypatch, key_set_json):
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(Name="wxauth/signing-keys", SecretString=key_set_json)["ARN"]
    monkeypatch.setenv("AUTH_SIGNING_KEYS_ARN", arn)
    old_kid = KeySet.from_json(key_set_json).active_kid

    code, out, err = run(capsys, "keys", "rotate")

    assert code == 0, err
    assert out["keys"] == arn and out["retired_kid"] == old_kid
    stored = KeySet.from_json(secrets.get_secret_value(SecretId=arn)["SecretString"])
    assert stored.active_kid == out["active_kid"] != old_kid
    assert stored.get(old_kid).retired_at is not None
    assert "PRIVATE" not in json.dumps(out) + err


def test_keys_rotate_with_a_missing_secret(capsys, env, monkeypatch):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nothing-AbCdEf"
    monkeypatch.setenv("AUTH_SIGNING_KEYS_ARN", arn)
    code, out, err = run(capsys, "keys", "rotate")
    assert code == 1 and out is None
    assert "GetSecretValue failed: ResourceNotFoundException" in err


# -- bad arguments and failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["client"],
        ["client", "create", "--scopes", ""],
        ["client", "create", "--scopes", 'a "b"'],
        ["client", "create", "--scopes", "a", "--client-id", "x y"],
        ["client", "disable"],
        ["client", "disable", "a b"],
        ["sessions", "list"],
        ["sessions", "revoke", "short", "B" * 22],
        ["sessions", "revoke", "A" * 22],
        ["sessions", "revoke-all", "A" * 21 + "!"],
        ["keys"],
        ["keys", "spin"],
        ["keys", "rotate", "now"],
        ["keys", "rotate", "--activate-in", "-1"],
        ["keys", "rotate", "--activate-in", "soon"],
        ["keys", "rotate", "--activate-in", "86401"],
        ["keys", "rotate", "--activate-in", "0", "--emergency"],
    ],
)
def test_bad_arguments_exit_2_with_usage_and_touch_nothing(capsys, env, dynamodb, argv):
    code = admin.main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "usage: wxauth-admin" in captured.err and "error:" in captured.err
    assert dynamodb.scan(TableName=TABLE)["Items"] == []


def test_help_exits_0(capsys):
    assert admin.main(["--help"]) == 0
    assert "client" in capsys.readouterr().out


def test_configuration_error_exits_1(capsys, env, monkeypatch):
    monkeypatch.setenv("AUTH_ACCESS_TTL", "soon")
    code, out, err = run(capsys, "client", "list")
    assert code == 1 and out is None
    assert "AUTH_ACCESS_TTL must be an integer" in err


def test_missing_table_exits_1_naming_the_aws_error(capsys, env, monkeypatch):
    monkeypatch.setenv("AUTH_TABLE_NAME", "no-such-table")
    code, out, err = run(capsys, "client", "list")
    assert code == 1 and out is None
    assert "Query failed: ResourceNotFoundException" in err
    assert "Traceback" not in err


def test_runs_as_a_module():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-m", "chalicelib.admin", "sessions", "revoke"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "usage: wxauth-admin sessions revoke" in result.stderr


# -- users: ban and unban ------------------------------------------------------------------------


def test_user_ban_and_unban(capsys, env, client, services):
    tokens = login(client, "alice.1")
    user_id = tokens["user"]["id"]
    code, out, err = run(capsys, "user", "ban", user_id, "--reason", "chargeback fraud")
    assert code == 0, err
    assert out == {
        "user_id": user_id,
        "banned": True,
        "banned_at": out["banned_at"],
        "sessions_revoked": 1,
    }
    assert services.store.users.get(user_id).ban_reason == "chargeback fraud"
    verdict = post(client, "/auth/verify", {"token": tokens["access_token"]}).json_body
    assert verdict == {"valid": False, "reason": "revoked"}
    assert_error(post(client, "/auth/login", {"code": "alice.2"}), 403, "access_denied")

    code, out, err = run(capsys, "user", "unban", user_id)
    assert code == 0, err
    assert out == {"user_id": user_id, "banned": False, "banned_at": None, "sessions_revoked": 0}
    assert login(client, "alice.3")["user"]["id"] == user_id


def test_user_ban_of_an_unknown_user(capsys, env, dynamodb):
    code, out, err = run(capsys, "user", "ban", "u" * 22)
    assert code == 1 and out is None and f"no user {'u' * 22}" in err
    code, out, err = run(capsys, "user", "unban", "u" * 22)
    assert code == 1 and out is None


@pytest.mark.parametrize(
    "argv",
    [
        ["user", "ban", "not-an-id"],
        ["user", "ban", "u" * 22, "--reason", "r" * 201],
        ["user", "ban", "u" * 22, "--reason", "a\nb"],
        ["user"],
    ],
)
def test_user_bad_arguments(capsys, env, argv):
    assert admin.main(argv) == 2


def test_user_help_says_what_a_ban_does(capsys):
    assert admin.main(["user", "ban", "--help"]) == 0
    text = capsys.readouterr().out
    assert "access_denied" in text and "revoke" in text


# -- user claims ---------------------------------------------------------------------------------


def test_user_set_show_and_clear_claims(capsys, env, client, services):
    from chalicelib.tokens.claims import NAMESPACE

    body = login(client, "alice.1")
    user_id = body["user"]["id"]

    code, out, err = run(capsys, "user", "set-claims", user_id, '{"roles": ["editor"]}')
    assert code == 0, err
    assert out == {"user_id": user_id, "claims": {"roles": ["editor"]}, "sessions_updated": 1}
    code, out, _ = run(capsys, "user", "show-claims", user_id)
    assert code == 0 and out == {"user_id": user_id, "claims": {"roles": ["editor"]}}
    refreshed = post(client, "/auth/refresh", {"refresh_token": body["refresh_token"]}).json_body
    decoded = jwt.decode(refreshed["access_token"], options={"verify_signature": False})
    assert decoded[NAMESPACE] == {"roles": ["editor"]}

    code, out, _ = run(capsys, "user", "clear-claims", user_id)
    assert code == 0 and out == {"user_id": user_id, "claims": {}, "sessions_updated": 1}
    again = post(client, "/auth/refresh", {"refresh_token": refreshed["refresh_token"]}).json_body
    assert NAMESPACE not in jwt.decode(again["access_token"], options={"verify_signature": False})


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("not json", "JSON text"),
        ('["editor"]', "JSON object"),
        ('{"sub": "root"}', "registered or wxauth claim"),
        ('{"Client_ID": "x"}', "registered or wxauth claim"),
        ('{"x": "' + "a" * 2048 + '"}', "at most 2048 bytes"),
        ('{"bad name": 1}', "names are"),
    ],
)
def test_user_set_claims_refuses_bad_claims(
    capsys, env, client, services, dynamodb, given, message
):
    from tests.conftest import table_items

    user_id = login(client)["user"]["id"]
    before = table_items(dynamodb)
    code = admin.main(["user", "set-claims", user_id, given])
    assert code == 2
    assert message in capsys.readouterr().err
    assert table_items(dynamodb) == before


def test_user_claims_of_an_unknown_user(capsys, env):
    unknown = "A" * 22
    code, out, err = run(capsys, "user", "set-claims", unknown, '{"roles": []}')
    assert code == 1 and out is None and f"no user {unknown}" in err
    code, out, err = run(capsys, "user", "show-claims", unknown)
    assert code == 1 and f"no user {unknown}" in err


# -- ids that begin with "-" or "_" (1 in 64 ids: argparse must not take them for options) --------

ODD_IDS = ["-" + "a" * 21, "--" + "b" * 20, "-h" + "c" * 20, "_" + "d" * 21]


def _user_with_session(services, user_id: str, session_id: str) -> None:
    from dataclasses import replace

    from chalicelib.store import UserRecord

    services.store.users.upsert(UserRecord(user_id, "wx-test-appid", f"o-{user_id}", None, START))
    session, _ = services.sessions.prepare(user_id, client_id="wx-test-appid", now=START)
    services.store.sessions.put(replace(session, session_id=session_id))


@pytest.mark.parametrize("odd", ODD_IDS)
def test_every_command_takes_ids_that_begin_with_a_dash_or_underscore(
    capsys, env, services, odd: str
) -> None:
    other = "Z" * 22
    _user_with_session(services, odd, odd)
    _user_with_session(services, other, other)

    code, listed, err = run(capsys, "sessions", "list", odd)
    assert code == 0, err
    assert [s["session_id"] for s in listed] == [odd]
    code, out, err = run(capsys, "sessions", "revoke", odd, odd)
    assert (code, out["session_id"], out["revoked"]) == (0, odd, True), err
    code, out, err = run(capsys, "sessions", "revoke-all", odd)
    assert (code, out) == (0, {"user_id": odd, "revoked": 0}), err

    code, out, err = run(capsys, "user", "ban", odd, "--reason", "spam")
    assert (code, out["user_id"], out["banned"]) == (0, odd, True), err
    code, out, err = run(capsys, "user", "unban", odd)
    assert (code, out["banned"]) == (0, False), err
    code, out, err = run(capsys, "user", "set-claims", odd, '{"roles": ["a"]}')
    assert (code, out["claims"]) == (0, {"roles": ["a"]}), err
    code, out, err = run(capsys, "user", "show-claims", odd)
    assert (code, out["user_id"]) == (0, odd), err
    code, out, err = run(capsys, "user", "clear-claims", odd)
    assert (code, out["claims"]) == (0, {}), err

    code, out, err = run(capsys, "user", "pending", odd)
    assert (code, out) == (0, []), err
    force = ("--force", "--reason", "test", "--operator", odd)  # no link between them
    code, out, err = run(capsys, "user", "merge", "--into", other, "--from", odd, *force)
    assert (code, out["into"], out["from"], out["operator"]) == (0, other, odd, odd), err
    code, _, err = run(capsys, "user", "merge", "--into", odd, "--from", other, *force)
    assert code == 1 and "already merged" in err  # parsed, then refused by the graph


def test_a_reason_that_looks_like_an_id_is_still_a_reason(capsys, env, services) -> None:
    _user_with_session(services, "Y" * 22, "S" * 22)
    code, out, err = run(capsys, "user", "ban", "Y" * 22, "--reason", ODD_IDS[0])
    assert code == 0, err
    assert services.store.users.get("Y" * 22).ban_reason == ODD_IDS[0]


# -- app add --secret: local tables only (issue #22, item 11) ----------------------------

APP_ADD = ["app", "add", "--appid", "wx-local-b", "--kind", "mini-program", "--secret", "s3cret-b"]


@pytest.mark.parametrize(
    "endpoint",
    [
        None,  # AWS itself
        "https://dynamodb.us-east-1.amazonaws.com",  # set, but AWS's
        "https://dynamodb.example.com",
        "http://127.0.0.1.example.com:8000",  # a name that only begins like a loopback address
        "http://localhost.example.com:8000",
        "http://10.0.0.5:8000",
        "http://0.0.0.0:8000",
    ],
)
def test_app_add_with_a_secret_is_refused_unless_the_table_is_on_this_machine(
    capsys, env, monkeypatch, dynamodb, endpoint
):
    import botocore.endpoint

    def no_network(self, request):  # moto answers AWS's own names before this is reached
        raise AssertionError(f"a request left for {request.url.split('/')[2]}")

    monkeypatch.setattr(botocore.endpoint.Endpoint, "_send", no_network)
    if endpoint is not None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    before = dynamodb.scan(TableName=TABLE)["Items"]
    code, out, err = run(capsys, *APP_ADD)
    assert code == 1 and out is None
    assert "local tables only" in err and "--secret-arn" in err
    assert "s3cret-b" not in err
    assert dynamodb.scan(TableName=TABLE)["Items"] == before


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_app_add_with_a_secret_on_a_loopback_table(capsys, monkeypatch, settings, host):
    from moto.server import ThreadedMotoServer

    from chalicelib import store as store_module

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        port = moto.get_host_and_port()[1]
        endpoint = f"http://{host}:{port}"
        table = f"wxauth-loopback-{host}"  # moto's server keeps its tables for the process
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        monkeypatch.setenv("AUTH_TABLE_NAME", table)
        monkeypatch.setenv("AUTH_SIGNING_KEYS_FILE", settings.signing_keys_file)
        client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        store_module.create_table(client, table)
        code, out, err = run(capsys, *APP_ADD)
        assert code == 0, err
        assert (out["appid"], out["secret"]) == ("wx-local-b", "local")
        assert "s3cret-b" not in json.dumps(out)
    finally:
        moto.stop()
