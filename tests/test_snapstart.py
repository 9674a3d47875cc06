"""Lambda SnapStart (chalicelib/snapstart.py, app.py's hooks), with the restore simulated: the
hooks reach the runtime's snapshot_restore_py when it is there; before the snapshot the graph
is built and nothing is called; after a restore the secrets, the key set, introspection's
remembered clients and the apps' clients are dropped (the next use reads them again), `random`
is reseeded, and the DynamoDB client, its connections closed, still works."""

from __future__ import annotations

import random
import sys
import types
from dataclasses import replace

import boto3
import pytest

from chalicelib import runtime, snapstart
from chalicelib.identity.apps import MINI_PROGRAM, App
from tests.conftest import START, TEST_APPID
from tests.http import basic, form_post, login, post

APP_SECRET = "aws-stored-app-secret-value"


@pytest.fixture
def secretsmanager(dynamodb):  # inside the conftest's mock_aws, beside the table
    return boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def aws_services(settings, dynamodb, secretsmanager, clock, wechat, key_set_json):
    """The graph as in Lambda: keys and the WeChat secret from Secrets Manager."""
    keys_arn = secretsmanager.create_secret(Name="keys", SecretString=key_set_json)["ARN"]
    app_arn = secretsmanager.create_secret(Name="app", SecretString=APP_SECRET)["ARN"]
    aws = replace(
        settings, signing_keys_arn=keys_arn, wechat_secret_arn=app_arn, wechat_secret=None
    )
    return runtime.build(aws, dynamodb=dynamodb, secretsmanager=secretsmanager, clock=clock)


def calls_of(client, operation: str) -> list[str]:
    seen: list[str] = []
    client.meta.events.register(
        f"before-call.*.{operation}", lambda model, **_: seen.append(model.name)
    )
    return seen


@pytest.fixture
def restored_app(monkeypatch, aws_services):
    """app.py with `aws_services` as its graph, its hooks as Lambda would call them."""
    import app

    monkeypatch.setattr(app, "_services", aws_services)
    return app


def test_the_hooks_reach_the_runtimes_module_when_it_is_there(monkeypatch) -> None:
    registered: list[tuple[str, object]] = []
    fake = types.ModuleType("snapshot_restore_py")
    fake.register_before_snapshot = lambda hook: registered.append(("before", hook))  # type: ignore[attr-defined]
    fake.register_after_restore = lambda hook: registered.append(("after", hook))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)
    monkeypatch.setattr(snapstart, "_before", [])
    monkeypatch.setattr(snapstart, "_after", [])
    order: list[str] = []

    first = snapstart.before_snapshot(lambda: order.append("b1"))
    snapstart.before_snapshot(lambda: order.append("b2"))
    snapstart.after_restore(lambda: order.append("a1"))
    snapstart.after_restore(lambda: order.append("a2"))

    assert [kind for kind, _ in registered] == ["before", "before", "after", "after"]
    assert registered[0][1] is first  # the decorator returns the function itself
    snapstart.run_before_snapshot()
    snapstart.run_after_restore()
    assert order == ["b2", "b1", "a1", "a2"]  # Lambda's order: before reversed, after in order


def test_without_the_runtimes_module_registering_does_nothing_more(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails
    monkeypatch.setattr(snapstart, "_after", [])
    hook = snapstart.after_restore(lambda: None)
    assert snapstart._after == [hook]


def test_app_registers_its_hooks() -> None:
    import app

    assert app._prime in snapstart._before
    assert app._refresh in snapstart._after


def test_before_the_snapshot_the_graph_is_built_and_nothing_is_called(
    monkeypatch, aws_services, dynamodb, secretsmanager
) -> None:
    import app

    monkeypatch.setattr(app, "_services", None)
    monkeypatch.setattr(app.runtime, "build", lambda settings: aws_services)
    dynamodb_calls = calls_of(dynamodb, "*")
    secret_calls = calls_of(secretsmanager, "*")

    snapstart.run_before_snapshot()

    assert app._services is aws_services
    assert {"login", "oauth"} <= set(aws_services.__dict__)  # built into the snapshot
    assert dynamodb_calls == [] and secret_calls == []  # no secret, no connection in it


def test_after_a_restore_secrets_keys_and_clients_are_read_again(
    restored_app, aws_services, secretsmanager, wechat
) -> None:
    services = aws_services
    services.login.login("ivan.1", START)  # reads the app secret and the key set
    assert wechat.seen[-1]["secret"] == APP_SECRET
    fetched = calls_of(secretsmanager, "GetSecretValue")
    services.login.login("ivan.2", START + 1)
    assert fetched == []  # cached

    snapstart.run_after_restore()

    services.login.login("ivan.3", START + 2)
    assert sorted(fetched) == ["GetSecretValue", "GetSecretValue"]  # the keys and the secret


def test_after_a_restore_another_apps_client_and_secret_are_made_again(
    restored_app, aws_services, secretsmanager
) -> None:
    apps = aws_services.apps
    arn = secretsmanager.create_secret(Name="app-b", SecretString="secret-of-b")["ARN"]
    added = apps.add(App("wx-app-b", MINI_PROGRAM, secret_arn=arn), now=START)
    before = apps.wechat(added)
    assert apps.wechat(added) is before  # one per container
    assert set(apps.apps()) == {TEST_APPID, "wx-app-b"}
    reads = calls_of(aws_services.store.client, "Query")

    snapstart.run_after_restore()

    assert apps.wechat(added) is not before  # with a CachedSecret of its own, empty
    assert set(apps.apps()) == {TEST_APPID, "wx-app-b"} and reads == ["Query"]


def test_after_a_restore_introspection_authenticates_clients_again(
    services, client, dynamodb
) -> None:
    _, secret = services.clients.create(["introspect"], now=START, client_id="gateway")
    token = login(client, "judy.1")["access_token"]
    reads = calls_of(dynamodb, "GetItem")

    def introspect() -> None:
        response = form_post(
            client, "/oauth/introspect", {"token": token}, basic("gateway", secret)
        )
        assert response.json_body["active"] is True

    introspect()
    assert len(reads) == 2  # the client, the session
    introspect()
    assert len(reads) == 3  # the session: the client's authentication is remembered
    snapstart.run_after_restore()
    introspect()
    assert len(reads) == 5  # the client again, and the session


def test_after_a_restore_random_is_reseeded(restored_app) -> None:
    random.seed(20261201)  # the state init left in the snapshot, in every container
    from_snapshot = [random.random() for _ in range(3)]
    random.seed(20261201)
    snapstart.run_after_restore()
    assert [random.random() for _ in range(3)] != from_snapshot


def test_the_dynamodb_client_works_after_its_connections_are_closed(client) -> None:
    """`client` serves the conftest's graph (app._services): the restore acts on it."""
    tokens = login(client, "ken.1")
    snapstart.run_after_restore()
    refreshed = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200


def test_a_restore_before_any_graph_is_harmless(monkeypatch) -> None:
    import app

    monkeypatch.setattr(app, "_services", None)
    snapstart.run_after_restore()
    assert app._services is None
