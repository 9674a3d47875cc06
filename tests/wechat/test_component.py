"""Third-party platform login (issue 24, item 4) through the app: the ticket push
(`POST /wechat/component/ticket`), the brokered component_access_token, and the login of a
`component` app's users (chalicelib/wechat/component.py, push.py; the fake platform of
devserver/fake_component.py behind `responses`)."""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import responses

from chalicelib import runtime
from chalicelib.errors import ForgedMessage
from chalicelib.identity.apps import COMPONENT, App
from chalicelib.setting_values import ComponentKeys
from devserver.fake_component import JSCODE2SESSION_PATH, TOKEN_PATH, FakeComponent
from tests.conftest import START, TABLE, WECHAT_BASE, stub_openid, table_items
from tests.http import assert_error, post

PLATFORM = "wx-platform"
APP_C = "wx-app-c"  # a mini-program that authorized the platform
TOKEN, AES_KEY, SECRET = "push-token", "k" * 43, "platform-secret"
TICKET_KEY = {"pk": {"S": f"WXTOKEN#{PLATFORM}"}, "sk": {"S": "TICKET"}}


def _error(errcode: int) -> dict:
    return {"errcode": errcode, "errmsg": "fake error"}


@pytest.fixture
def platform(wechat, clock) -> FakeComponent:
    fake = FakeComponent(PLATFORM, SECRET, TOKEN, AES_KEY, authorized={APP_C}, clock=clock)
    used: set[str] = set()

    def session(appid: str, code: str) -> dict:
        if code in used:
            return _error(40163)
        used.add(code)
        return {"openid": stub_openid(appid, code.split(".")[0]), "session_key": "sk-secret"}

    def token(request):
        return 200, {}, json.dumps(fake.api_component_token(request.body, _error))

    def login(request):
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        return 200, {}, json.dumps(fake.jscode2session(query, session, _error))

    wechat.mock.add_callback(responses.POST, WECHAT_BASE + TOKEN_PATH, callback=token)
    wechat.mock.add_callback(responses.GET, WECHAT_BASE + JSCODE2SESSION_PATH, callback=login)
    return fake


@pytest.fixture
def services(settings, dynamodb, clock, wechat) -> runtime.Services:
    """The app's services with WECHAT_COMPONENT_APPID's platform (local keys), and APP_C."""
    keys = ComponentKeys(SECRET, TOKEN, AES_KEY)
    with_platform = dataclasses.replace(settings, component_appid=PLATFORM, component=keys)
    built = runtime.build(with_platform, dynamodb=dynamodb, clock=clock, sleep=lambda _: None)
    assert built.apps is not None
    built.apps.add(App(APP_C, COMPONENT, component_appid=PLATFORM), now=START)
    return built


def push(client, query: dict[str, str], body: bytes):
    return client.http.post(
        f"/wechat/component/ticket?{urlencode(query)}",
        headers={"Content-Type": "text/xml"},
        body=body,
    )


def ticket_item(dynamodb) -> dict | None:
    return dynamodb.get_item(TableName=TABLE, Key=TICKET_KEY, ConsistentRead=True).get("Item")


def test_a_genuine_ticket_is_kept_sealed_and_answered_success(client, platform, dynamodb):
    query, body = platform.ticket_push(ticket="ticket@@@genuine")

    response = push(client, query, body)

    assert response.status_code == 200
    assert response.body == b"success"
    item = ticket_item(dynamodb)
    assert item is not None and int(item["create_time"]["N"]) == START
    assert b"genuine" not in item["sealed_ticket"]["B"]  # sealed, never in the clear


@pytest.mark.parametrize("forgery", ["signature", "body", "appid"])
def test_a_forged_ticket_is_refused_and_nothing_kept(client, platform, dynamodb, forgery):
    query, body = platform.ticket_push(ticket="ticket@@@forged", forged=forgery == "signature")
    if forgery == "body":  # a genuine signature over another Encrypt
        other_query, body = platform.ticket_push(ticket="ticket@@@other")
    if forgery == "appid":
        body = body.replace(PLATFORM.encode(), b"wx-other-platform", 1)

    response = push(client, query, body)

    assert_error(response, 403, "access_denied")
    assert b"forged" not in response.body
    assert ticket_item(dynamodb) is None


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ({}, b"<xml><Encrypt>x</Encrypt></xml>"),
        ({"msg_signature": "0" * 40, "timestamp": "1", "nonce": "n"}, b"not xml"),
        ({"msg_signature": "0" * 40, "timestamp": "1", "nonce": "n"}, b""),
        (
            {"msg_signature": "0" * 40, "timestamp": "1", "nonce": "n"},
            b'<!DOCTYPE x [<!ENTITY a "b">]><xml><Encrypt>&a;</Encrypt></xml>',
        ),
    ],
)
def test_a_malformed_push_is_invalid_request(client, platform, dynamodb, query, body):
    assert_error(push(client, query, body), 400, "invalid_request")
    assert ticket_item(dynamodb) is None


def test_an_older_ticket_does_not_replace_a_newer_one(client, platform, dynamodb, services):
    assert push(client, *platform.ticket_push(ticket="ticket@@@new")).status_code == 200
    replayed = platform.ticket_push(ticket="ticket@@@old", create_time=START - 600)

    assert push(client, *replayed).status_code == 200  # WeChat gets its `success`

    assert services.platform().ticket() == "ticket@@@new"


def test_without_a_platform_every_push_is_refused(settings, dynamodb, clock, wechat, monkeypatch):
    from chalice.test import Client

    import app

    built = runtime.build(settings, dynamodb=dynamodb, clock=clock, sleep=lambda _: None)
    monkeypatch.setattr(app, "_services", built)
    fake = FakeComponent(PLATFORM, SECRET, TOKEN, AES_KEY, clock=clock)
    with Client(app.app) as client:
        assert_error(push(client, *fake.ticket_push()), 403, "access_denied")
    assert table_items(dynamodb) == []


def test_a_component_apps_new_and_returning_user_log_in(
    client, platform, dynamodb, dynamodb_requests
):
    assert push(client, *platform.ticket_push()).status_code == 200

    new = post(client, "/auth/login", {"code": "carol.1", "appid": APP_C})

    assert new.status_code == 200, new.json_body
    assert new.json_body["user"]["is_new"] is True
    assert platform.token_calls == 1  # the component_access_token, fetched once and kept
    dynamodb_requests.clear()

    returning = post(client, "/auth/login", {"code": "carol.2", "appid": APP_C})

    assert returning.status_code == 200, returning.json_body
    assert returning.json_body["user"] == {"id": new.json_body["user"]["id"], "is_new": False}
    assert platform.token_calls == 1 and platform.login_calls == 2
    # as any app's returning login: the claim, the identity, the transaction (the brokered
    # token is cached in the container)
    assert dynamodb_requests == ["PutItem", "UpdateItem", "TransactWriteItems"]
    assert "sk-secret" not in str(table_items(dynamodb))  # session_key never stored


def test_a_refused_component_token_is_replaced_once(client, platform, dynamodb):
    push(client, *platform.ticket_push())
    post(client, "/auth/login", {"code": "carol.1", "appid": APP_C})
    platform.invalidate_tokens()

    response = post(client, "/auth/login", {"code": "carol.2", "appid": APP_C})

    assert response.status_code == 200, response.json_body
    assert platform.token_calls == 2


def test_no_ticket_yet_is_503_and_no_session(client, platform, dynamodb):
    response = post(client, "/auth/login", {"code": "carol.1", "appid": APP_C})

    assert_error(response, 503, "temporarily_unavailable")
    assert not [i for i in table_items(dynamodb) if "SESSION#" in i["sk"]["S"]]


def test_an_app_that_did_not_authorize_the_platform_is_a_server_error(
    client, services, platform, dynamodb
):
    services.apps.add(App("wx-app-d", COMPONENT, component_appid=PLATFORM), now=START)
    push(client, *platform.ticket_push())

    response = post(client, "/auth/login", {"code": "carol.1", "appid": "wx-app-d"})

    assert response.status_code == 500
    assert response.json_body["error"] == "server_error"


def test_in_aws_the_platforms_keys_come_from_secrets_manager(
    settings, dynamodb, clock, wechat, platform
):
    import boto3

    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    value = {"secret": SECRET, "token": TOKEN, "encoding_aes_key": AES_KEY}
    arn = secrets.create_secret(Name="platform", SecretString=json.dumps(value))["ARN"]
    aws = dataclasses.replace(settings, component_appid=PLATFORM, component_secret_arn=arn)
    built = runtime.build(
        aws, dynamodb=dynamodb, secretsmanager=secrets, clock=clock, sleep=lambda _: None
    )
    built.apps.add(App(APP_C, COMPONENT, component_appid=PLATFORM), now=START)
    events = built.component_events
    assert events is not None

    events.receive(*platform.ticket_push(), now=START)  # opened with the secret's token and key

    assert built.login.login("carol.1", START, APP_C).is_new is True
    assert platform.token_calls == 1  # with the secret's appsecret


def test_a_secret_that_is_not_the_platforms_json_is_a_configuration_error(
    settings, dynamodb, clock, wechat
):
    import boto3

    from chalicelib.errors import ConfigurationError

    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(Name="platform", SecretString="plain-appsecret")["ARN"]
    aws = dataclasses.replace(settings, component_appid=PLATFORM, component_secret_arn=arn)
    built = runtime.build(aws, dynamodb=dynamodb, secretsmanager=secrets, clock=clock)

    with pytest.raises(ConfigurationError) as raised:
        built.platform().crypt()
    assert "plain-appsecret" not in str(raised.value)


def test_after_a_snapstart_restore_the_platforms_keys_are_read_again(
    settings, dynamodb, clock, wechat, platform
):
    import boto3

    from chalicelib import snapstart

    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    value = {"secret": SECRET, "token": "an-old-token", "encoding_aes_key": AES_KEY}
    arn = secrets.create_secret(Name="platform", SecretString=json.dumps(value))["ARN"]
    aws = dataclasses.replace(settings, component_appid=PLATFORM, component_secret_arn=arn)
    built = runtime.build(aws, dynamodb=dynamodb, secretsmanager=secrets, clock=clock)
    events = built.component_events
    assert events is not None
    with pytest.raises(ForgedMessage):  # signed with TOKEN, the secret holds another
        events.receive(*platform.ticket_push(), now=START)
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({**value, "token": TOKEN}))

    snapstart.refresh(built)  # what a restored container runs (chalicelib/snapstart.py)

    assert events.receive(*platform.ticket_push(), now=START) == "component_verify_ticket"
