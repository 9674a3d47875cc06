"""Wiring in AWS mode: keys and the WeChat secret come from Secrets Manager (moto)."""

from __future__ import annotations

from dataclasses import replace

import boto3
import pytest
from moto import mock_aws

from chalicelib import runtime
from chalicelib.errors import ConfigurationError
from chalicelib.signing_keys import KeySet
from tests.conftest import START

AWS_SECRET = "aws-stored-app-secret-value"


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


def test_cached_secret_fetches_once_per_max_age(clock):
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="s", SecretString="one")["ARN"]
        secret = runtime.CachedSecret(client, arn, clock=clock, max_age=300)
        assert secret() == "one"
        client.put_secret_value(SecretId=arn, SecretString="two")
        clock.advance(299)
        assert secret() == "one"
        clock.advance(1)
        assert secret() == "two"
