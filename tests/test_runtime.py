"""Wiring in AWS mode: keys and the WeChat secret come from Secrets Manager (moto)."""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib import budgets, runtime
from chalicelib.errors import ConfigurationError
from chalicelib.secrets_manager import CachedSecret
from chalicelib.signing_keys import KeySet
from chalicelib.wechat.client import WeChatClient
from tests.conftest import START

AWS_SECRET = "aws-stored-app-secret-value"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def secretsmanager(dynamodb):  # inside the same mock_aws as the table
    client = boto3.client("secretsmanager", region_name="us-east-1")
    yield client


def test_keys_and_wechat_secret_come_from_secrets_manager(
    settings, dynamodb, secretsmanager, clock, wechat, key_set_json
):
    keys_arn = secretsmanager.create_secret(Name="keys", SecretString=key_set_json)["ARN"]
    app_arn = secretsmanager.create_secret(Name="app", SecretString=AWS_SECRET)["ARN"]
    aws = replace(
        settings, signing_keys_arn=keys_arn, wechat_secret_arn=app_arn, wechat_secret=None
    )
    services = runtime.build(aws, dynamodb=dynamodb, secretsmanager=secretsmanager, clock=clock)

    result = services.login.login("ivan.1", START)
    assert wechat.seen[-1]["secret"] == AWS_SECRET
    claims = services.access_tokens.check(result.tokens.access_token, START)
    assert claims.subject == result.tokens.user_id
    assert services.keys.get().active_kid == KeySet.from_json(key_set_json).active_kid


def test_an_unreadable_secret_is_a_configuration_error_naming_only_the_arn(
    settings, dynamodb, secretsmanager, clock
):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"
    aws = replace(settings, signing_keys_arn=arn)
    services = runtime.build(aws, dynamodb=dynamodb, secretsmanager=secretsmanager, clock=clock)
    with pytest.raises(ConfigurationError, match="cannot read secret") as caught:
        services.keys.get()
    assert arn in str(caught.value)


def test_a_secrets_manager_outage_leaves_tokens_minted_and_verified(
    settings, dynamodb, secretsmanager, clock, wechat, key_set_json, log_lines
):
    """Keys and app secret loaded, then Secrets Manager fails every call (botocore's Stubber):
    logins mint, refreshes rotate and tokens verify on the cached values for an hour, the
    reloads back off, and tokens naming random kids do not reload the key set each."""
    import secrets

    import jwt
    from botocore.stub import Stubber

    from chalicelib.errors import InvalidToken

    keys_arn = secretsmanager.create_secret(Name="keys", SecretString=key_set_json)["ARN"]
    app_arn = secretsmanager.create_secret(Name="app", SecretString=AWS_SECRET)["ARN"]
    aws = replace(
        settings, signing_keys_arn=keys_arn, wechat_secret_arn=app_arn, wechat_secret=None
    )
    services = runtime.build(aws, dynamodb=dynamodb, secretsmanager=secretsmanager, clock=clock)
    first = services.login.login("ivan.1", START)
    reads: list[str] = []
    secretsmanager.meta.events.register(  # emitted before the Stubber answers
        "provide-client-params.secrets-manager.GetSecretValue",
        lambda params, **_: reads.append(params["SecretId"]),
    )
    with Stubber(secretsmanager):  # nothing queued: every call fails
        clock.advance(301)  # both values are due for a reload
        now = services.now()
        second = services.login.login("ivan.2", now)
        refreshed = services.sessions.refresh(first.tokens.refresh_token, now)
        for tokens in (second.tokens, refreshed):
            assert services.access_tokens.check(tokens.access_token, now).subject
        assert sorted(reads) == sorted([keys_arn, app_arn])  # one try each, then back-off
        for _ in range(30):  # random kids, a second apart: at most one reload per 10 s
            forged = jwt.encode(
                {"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": secrets.token_hex(8)}
            )
            with pytest.raises(InvalidToken):
                services.access_tokens.check(forged, services.now())
            clock.advance(1)
        assert reads.count(keys_arn) <= 1 + 30 // 10
        clock.advance(3600)  # past the hour: the outage is the request's now
        with pytest.raises(ConfigurationError, match="cannot read secret"):
            services.keys.get()
    assert any('"SecretReloadFailed"' in line for line in log_lines)
    assert not any(AWS_SECRET in line for line in log_lines)


def test_cached_secret_fetches_once_per_max_age(clock):
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="s", SecretString="one")["ARN"]
        secret = CachedSecret(client, arn, clock=clock, max_age=300)
        assert secret() == "one"
        client.put_secret_value(SecretId=arn, SecretString="two")
        clock.advance(299)
        assert secret() == "one"
        clock.advance(1)
        assert secret() == "two"


API_GATEWAY_TIMEOUT = 29  # seconds: API Gateway's integration timeout (REST API, default maximum)


def test_the_lambda_timeout_outlasts_every_bounded_wait_of_a_request() -> None:
    """The function must answer with its own 503 (and Retry-After) before Lambda kills it, and
    no request may outlive API Gateway. Worst cases with one slow dependency: a login whose
    WeChat call times out and is retried, then one DynamoDB call at its longest; a cold start
    whose Secrets Manager read is at its longest, then one DynamoDB call."""
    config = json.loads((REPO_ROOT / ".chalice" / "config.json").read_text())
    timeout = config["stages"]["prod"]["lambda_timeout"]
    wechat = inspect.signature(WeChatClient).parameters
    wechat_worst = (
        2 * (wechat["connect_timeout"].default + wechat["read_timeout"].default)
        + wechat["retry_delay"].default
    )

    assert timeout >= wechat_worst + budgets.DYNAMODB.worst_case + 1
    assert timeout >= budgets.SECRETS_MANAGER.worst_case + budgets.DYNAMODB.worst_case + 1
    assert timeout < API_GATEWAY_TIMEOUT
