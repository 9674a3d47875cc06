"""The deployment template (Chalice's SAM output merged with infra/resources.yaml): every setting
an operator relies on, checked on the built template, and where SAM generates resources (the
API stage), on the plain CloudFormation the transform makes of it."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from chalicelib import logs, store
from chalicelib.settings import Settings
from tests.infra.conftest import ROOT, build_module

Template = dict[str, Any]


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def getatt(name: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, attribute]}


def of_type(template: Template, type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def props(template: Template, name: str) -> dict[str, Any]:
    return template["Resources"][name]["Properties"]


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


# -- Chalice's resources, merged ---------------------------------------------------------------


def test_chalice_resources_keep_their_logical_ids_and_the_sam_transform(template: Template) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert template["Resources"]["APIHandler"]["Type"] == "AWS::Serverless::Function"
    assert template["Resources"]["RestAPI"]["Type"] == "AWS::Serverless::Api"
    assert template["Resources"]["APIHandlerInvokePermission"]["Type"] == "AWS::Lambda::Permission"
    assert props(template, "APIHandler")["CodeUri"] == "./deployment.zip"
    assert props(template, "APIHandler")["Handler"] == "app.app"


def test_every_contract_route_is_in_the_api(template: Template) -> None:
    paths = props(template, "RestAPI")["DefinitionBody"]["paths"]
    for route, method in [
        ("/auth/login", "post"),
        ("/auth/refresh", "post"),
        ("/auth/verify", "post"),
        ("/auth/logout", "post"),
        ("/me", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/.well-known/openid-configuration", "get"),
    ]:
        assert method in paths.get(route, {}), f"{method.upper()} {route} is not routed"


# -- the table ---------------------------------------------------------------------------------


def test_table_is_on_demand_with_the_stores_keys_and_no_index(template: Template) -> None:
    (name,) = of_type(template, "AWS::DynamoDB::Table")
    table = props(template, name)
    assert name == "AuthTable"
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [
        {"AttributeName": store.PK, "KeyType": "HASH"},
        {"AttributeName": store.SK, "KeyType": "RANGE"},
    ]
    assert table["AttributeDefinitions"] == [
        {"AttributeName": store.PK, "AttributeType": "S"},
        {"AttributeName": store.SK, "AttributeType": "S"},
    ]
    assert "GlobalSecondaryIndexes" not in table
    assert "LocalSecondaryIndexes" not in table
    assert "ProvisionedThroughput" not in table
    assert "TableName" not in table  # generated, so that two stacks never collide


def test_table_ttl_is_on_the_expiry_attribute(template: Template) -> None:
    assert props(template, "AuthTable")["TimeToLiveSpecification"] == {
        "AttributeName": store.EXPIRES_AT,
        "Enabled": True,
    }


def test_table_has_pitr_encryption_and_survives_deletion(template: Template) -> None:
    table = template["Resources"]["AuthTable"]
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True
    }
    assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"


# -- the secrets -------------------------------------------------------------------------------


def test_both_secrets_are_created_empty(template: Template) -> None:
    secrets = of_type(template, "AWS::SecretsManager::Secret")
    assert set(secrets) == {"WeChatSecret", "SigningKeysSecret"}
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]
        assert "GenerateSecretString" not in secret["Properties"]


def test_no_secret_value_anywhere_in_the_template(template: Template) -> None:
    text = json.dumps(template)
    assert "PRIVATE KEY" not in text
    assert "SecretString" not in text
    for value in strings(template):
        assert not re.fullmatch(r"[0-9a-f]{32}", value), "looks like a WeChat AppSecret"


# -- the function and its role -------------------------------------------------------------------


def _statements(template: Template) -> dict[str, dict[str, Any]]:
    role = props(template, "APIHandlerRole")
    (policy,) = role["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_function_runs_as_its_own_role_assumable_by_lambda_only(template: Template) -> None:
    assert props(template, "APIHandler")["Role"] == getatt("APIHandlerRole", "Arn")
    role = props(template, "APIHandlerRole")
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    assert "ManagedPolicyArns" not in role
    # Chalice made no role of its own (config: manage_iam_role false for prod).
    roles = of_type(template, "AWS::IAM::Role")
    assert set(roles) == {"APIHandlerRole", "ApiGatewayCloudWatchRole"}


def test_role_grants_exactly_the_table_actions_on_exactly_the_table(template: Template) -> None:
    table = _statements(template)["AuthTable"]
    assert table["Effect"] == "Allow"
    assert sorted(_as_list(table["Action"])) == [
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ]
    # The table's ARN only: no "/index/*", since the table has no index.
    assert _as_list(table["Resource"]) == [getatt("AuthTable", "Arn")]


# Operations chalicelib calls only to set up a local table (devserver), never in Lambda.
LOCAL_ONLY_OPERATIONS = {"create_table", "update_time_to_live", "describe_table"}
# IAM has no action for a transaction: each of its items needs its own (Put: PutItem, ...).
TRANSACTION_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}


def test_table_actions_are_the_operations_the_code_calls(template: Template) -> None:
    model = botocore.session.get_session().get_service_model("dynamodb")
    operations = {xform_name(name): name for name in model.operation_names}
    source = "\n".join(p.read_text() for p in (ROOT / "chalicelib").glob("*.py"))
    called = {
        name
        for snake, name in operations.items()
        if snake not in LOCAL_ONLY_OPERATIONS and re.search(rf'[".]{snake}["(]', source)
    }
    if called & {"TransactWriteItems"}:
        called.remove("TransactWriteItems")
        for item, action in TRANSACTION_ITEM_ACTIONS.items():
            if re.search(rf'"{item}": [{{s]', source):  # {"Put": {...}} or {"Put": self...
                called.add(action)
    granted = {
        a.removeprefix("dynamodb:") for a in _as_list(_statements(template)["AuthTable"]["Action"])
    }
    assert called == granted, "update the AuthTable statement in infra/resources.yaml"


def test_role_reads_exactly_the_two_secrets(template: Template) -> None:
    secrets = _statements(template)["Secrets"]
    assert secrets["Effect"] == "Allow"
    assert _as_list(secrets["Action"]) == ["secretsmanager:GetSecretValue"]
    assert sorted(_as_list(secrets["Resource"]), key=json.dumps) == [
        ref("SigningKeysSecret"),
        ref("WeChatSecret"),
    ]


def test_role_writes_only_its_own_log_group(template: Template) -> None:
    statement = _statements(template)["Logs"]
    assert sorted(_as_list(statement["Action"])) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    # The group's ARN attribute ends in ":*" (its streams): the only wildcard in the policy,
    # and no logs:CreateLogGroup, since the group exists before the function runs.
    assert _as_list(statement["Resource"]) == [getatt("FunctionLogGroup", "Arn")]


def test_role_has_nothing_else_and_no_wildcard(template: Template) -> None:
    statements = _statements(template)
    assert set(statements) == {"AuthTable", "Secrets", "Logs"}
    for statement in statements.values():
        assert statement["Effect"] == "Allow"
        assert set(statement) == {"Sid", "Effect", "Action", "Resource"}
        for value in strings(statement["Action"]) + strings(statement["Resource"]):
            assert "*" not in value, f"wildcard in {statement['Sid']}: {value}"


def test_function_environment_is_wired_to_parameters_and_resources(template: Template) -> None:
    assert props(template, "APIHandler")["Environment"]["Variables"] == {
        "AUTH_TABLE_NAME": ref("AuthTable"),
        "WECHAT_APPID": ref("WeChatAppId"),
        "WECHAT_SECRET_ARN": ref("WeChatSecret"),
        "AUTH_SIGNING_KEYS_ARN": ref("SigningKeysSecret"),
        "AUTH_ISSUER": {"Fn::If": ["HasIssuer", ref("Issuer"), ref("AWS::NoValue")]},
        "AUTH_AUDIENCE": ref("Audience"),
        "AUTH_ACCESS_TTL": ref("AccessTokenTtl"),
        "AUTH_REFRESH_IDLE_TTL": ref("RefreshIdleTtl"),
        "AUTH_REFRESH_ABSOLUTE_TTL": ref("RefreshAbsoluteTtl"),
        "AUTH_REFRESH_GRACE": ref("RefreshGrace"),
        "WXAUTH_STACK_NAME": ref("AWS::StackName"),
    }


def test_environment_names_are_the_settings_the_code_reads(template: Template) -> None:
    source = (ROOT / "chalicelib" / "settings.py").read_text()
    for name in props(template, "APIHandler")["Environment"]["Variables"]:
        if name != "WXAUTH_STACK_NAME":
            assert f'"{name}"' in source, f"chalicelib/settings.py does not read {name}"
    assert '"WXAUTH_STACK_NAME"' in (ROOT / "chalicelib" / "logs.py").read_text()


def test_parameter_defaults_are_the_settings_defaults(template: Template) -> None:
    parameters = template["Parameters"]
    defaults = Settings()
    assert parameters["AccessTokenTtl"]["Default"] == defaults.access_ttl
    assert parameters["RefreshIdleTtl"]["Default"] == defaults.refresh_idle_ttl
    assert parameters["RefreshAbsoluteTtl"]["Default"] == defaults.refresh_absolute_ttl
    assert parameters["RefreshGrace"]["Default"] == defaults.refresh_grace
    assert parameters["Audience"]["Default"] == defaults.audience
    assert "Default" not in parameters["WeChatAppId"]  # no deploy without an appid
    assert parameters["Issuer"]["Default"] == ""  # infra/deploy.sh sets the API's URL
    for name in ("Stage", "Issuer", "WeChatAppId", "ThrottlingRateLimit", "ThrottlingBurstLimit"):
        assert name in parameters


def test_function_runtime_memory_timeout_and_logging(template: Template) -> None:
    function = props(template, "APIHandler")
    assert function["Runtime"] == "python3.13"  # Amazon Linux 2023
    assert function["Architectures"] == ["arm64"]  # Graviton (README "What it costs")
    assert function["MemorySize"] == 512
    # WeChat calls time out after ~12 s; API Gateway gives up on the function at 29 s.
    assert 15 <= function["Timeout"] < 29
    assert function["LoggingConfig"] == {"LogGroup": ref("FunctionLogGroup"), "LogFormat": "Text"}


# -- the API stage -------------------------------------------------------------------------------


def test_stage_throttling_and_logging_are_parameters(template: Template) -> None:
    api = props(template, "RestAPI")
    assert api["StageName"] == ref("Stage")
    assert api["Name"] == ref("AWS::StackName")  # the ApiName dimension of the 5xx alarm
    assert api["MethodSettings"] == [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": ref("ThrottlingRateLimit"),
            "ThrottlingBurstLimit": ref("ThrottlingBurstLimit"),
            "LoggingLevel": "ERROR",
            "DataTraceEnabled": False,  # would log bodies, that is codes and tokens
            "MetricsEnabled": False,
        }
    ]
    assert "CacheClusterEnabled" not in api


def test_access_log_is_json_without_headers_or_bodies(template: Template) -> None:
    setting = props(template, "RestAPI")["AccessLogSetting"]
    assert setting["DestinationArn"] == getatt("ApiAccessLogGroup", "Arn")
    fields = json.loads(setting["Format"])
    assert {"requestId", "ip", "httpMethod", "resourcePath", "status"} <= set(fields)
    for forbidden in ("$input", "$context.authorizer", "header", "Authorization", "$util"):
        assert forbidden not in setting["Format"]


def test_api_gateway_logging_role_is_optional_retained_and_ordered(template: Template) -> None:
    resources = template["Resources"]
    role = resources["ApiGatewayCloudWatchRole"]
    assert role["Condition"] == resources["ApiGatewayAccount"]["Condition"]
    assert role["DeletionPolicy"] == "Retain"
    assert role["Properties"]["ManagedPolicyArns"] == [
        {
            "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs"
        }
    ]
    # The API (and so its stage) is created after the account's logging role is set.
    assert "${ApiGatewayAccount}" in json.dumps(props(template, "RestAPI")["Description"])


def test_sam_makes_exactly_one_stage_with_those_settings(expanded: Template) -> None:
    stages = of_type(expanded, "AWS::ApiGateway::Stage")
    assert len(stages) == 1, f"extra stages (SAM's 'Stage'?): {sorted(stages)}"
    (stage,) = stages.values()
    assert stage["Properties"]["StageName"] == ref("Stage")
    settings = stage["Properties"]["MethodSettings"][0]
    assert settings["ThrottlingRateLimit"] == ref("ThrottlingRateLimit")
    assert settings["ThrottlingBurstLimit"] == ref("ThrottlingBurstLimit")
    assert settings["DataTraceEnabled"] is False
    assert stage["Properties"]["AccessLogSetting"]["DestinationArn"] == getatt(
        "ApiAccessLogGroup", "Arn"
    )
    deployments = of_type(expanded, "AWS::ApiGateway::Deployment")
    assert all("StageName" not in d["Properties"] for d in deployments.values())
    (rest_api,) = of_type(expanded, "AWS::ApiGateway::RestApi").values()
    assert rest_api["Properties"]["Name"] == ref("AWS::StackName")


def test_expanded_function_keeps_role_environment_and_log_group(expanded: Template) -> None:
    function = props(expanded, "APIHandler")
    assert expanded["Resources"]["APIHandler"]["Type"] == "AWS::Lambda::Function"
    assert function["Role"] == getatt("APIHandlerRole", "Arn")
    assert function["LoggingConfig"]["LogGroup"] == ref("FunctionLogGroup")
    assert function["Environment"]["Variables"]["AUTH_TABLE_NAME"] == ref("AuthTable")
    # SAM adds no role or policy of its own.
    assert set(of_type(expanded, "AWS::IAM::Role")) == {
        "APIHandlerRole",
        "ApiGatewayCloudWatchRole",
    }


def test_every_log_group_has_the_retention_parameter(template: Template) -> None:
    groups = of_type(template, "AWS::Logs::LogGroup")
    assert set(groups) == {"FunctionLogGroup", "ApiAccessLogGroup", "ApiExecutionLogGroup"}
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == ref("LogRetentionDays")
    # The name API Gateway writes execution logs to; created first so the retention applies.
    assert groups["ApiExecutionLogGroup"]["Properties"]["LogGroupName"] == {
        "Fn::Sub": "API-Gateway-Execution-Logs_${RestAPI}/${Stage}"
    }
    assert 365 in template["Parameters"]["LogRetentionDays"]["AllowedValues"]


# -- alarms --------------------------------------------------------------------------------------


def _alarm(template: Template, name: str) -> dict[str, Any]:
    alarm = props(template, name)
    assert alarm["AlarmActions"] == [ref("AlarmTopic")]
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    return alarm


def test_alarm_on_api_5xx_rate(template: Template) -> None:
    alarm = _alarm(template, "Api5xxRateAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5XXError")
    assert alarm["Dimensions"] == [
        {"Name": "ApiName", "Value": ref("AWS::StackName")},
        {"Name": "Stage", "Value": ref("Stage")},
    ]
    assert alarm["Statistic"] == "Average"  # 0 or 1 per request: the average is the rate
    assert alarm["Threshold"] == ref("Api5xxRateThreshold")


@pytest.mark.parametrize(
    ("name", "metric"), [("LambdaErrorsAlarm", "Errors"), ("LambdaThrottlesAlarm", "Throttles")]
)
def test_alarm_on_lambda_errors_and_throttles(template: Template, name: str, metric: str) -> None:
    alarm = _alarm(template, name)
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", metric)
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": ref("APIHandler")}]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["Period"]) == ("Sum", 1, 300)


def test_alarm_on_table_throttles(template: Template) -> None:
    alarm = _alarm(template, "TableThrottlesAlarm")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    for metric_id, metric_name in (
        ("reads", "ReadThrottleEvents"),
        ("writes", "WriteThrottleEvents"),
    ):
        stat = metrics[metric_id]["MetricStat"]
        assert stat["Metric"] == {
            "Namespace": "AWS/DynamoDB",
            "MetricName": metric_name,
            "Dimensions": [{"Name": "TableName", "Value": ref("AuthTable")}],
        }
        assert (stat["Stat"], stat["Period"]) == ("Sum", 300)
    assert metrics["throttles"]["Expression"] == "FILL(reads, 0) + FILL(writes, 0)"
    assert [m["Id"] for m in alarm["Metrics"] if m["ReturnData"]] == ["throttles"]
    assert alarm["Threshold"] == 1


def test_alarm_on_refresh_token_reuse_matches_the_metric_the_code_emits(template: Template) -> None:
    alarm = _alarm(template, "RefreshTokenReuseAlarm")
    assert alarm["Namespace"] == logs.METRICS_NAMESPACE == "wxauth"
    assert alarm["MetricName"] == "RefreshTokenReuse"
    assert alarm["Dimensions"] == [{"Name": "Stack", "Value": ref("AWS::StackName")}]
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 300, 1)
    assert '"RefreshTokenReuse"' in "\n".join(
        p.read_text() for p in (ROOT / "chalicelib").glob("*.py")
    ), "no code emits RefreshTokenReuse"


def test_alarm_topic_accepts_only_this_accounts_cloudwatch(template: Template) -> None:
    (statement,) = props(template, "AlarmTopicPolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}
    assert template["Resources"]["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"


# -- outputs and suppressions ---------------------------------------------------------------------


def test_outputs_give_the_url_and_secret_arns(template: Template) -> None:
    outputs = template["Outputs"]
    url = "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"
    assert outputs["ApiUrl"]["Value"] == {"Fn::Sub": url}
    assert outputs["EndpointURL"]["Value"] == {"Fn::Sub": url + "/"}
    assert outputs["WeChatSecretArn"]["Value"] == ref("WeChatSecret")
    assert outputs["SigningKeysSecretArn"]["Value"] == ref("SigningKeysSecret")
    assert outputs["TableName"]["Value"] == ref("AuthTable")


def test_every_checkov_suppression_is_justified(template: Template) -> None:
    skips = [
        (name, skip)
        for name, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
        assert len(skip.get("comment", "")) >= 60, f"{name}: justify {skip['id']}"


# -- the deployment package ------------------------------------------------------------------------


def test_zip_holds_the_app_and_its_dependencies(build_dir: Path) -> None:
    with zipfile.ZipFile(build_dir / "deployment.zip") as zf:
        names = set(zf.namelist())
    for package in ("jwt", "cryptography", "requests", "chalicelib"):
        assert f"{package}/__init__.py" in names
    for package in ("boto3", "botocore"):  # the Lambda runtime's own
        assert f"{package}/__init__.py" not in names
    assert "app.py" in names
    assert "cryptography/hazmat/bindings/_rust.abi3.so" in names
    assert not any(n.startswith(("tests/", "infra/", ".venv")) for n in names)


def _rewrite_zip(source: Path, target: Path, keep, replace=None) -> None:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            if keep(info.filename):
                data = src.read(info)
                if replace and info.filename in replace:
                    data = replace[info.filename](data)
                dst.writestr(info, data)


@pytest.fixture(scope="module")
def target() -> Any:
    return build_module.Target("python3.13", "cp313", (2, 34), "aarch64", 183)


def test_zip_check_reports_a_dropped_dependency(build_dir: Path, tmp_path: Path, target) -> None:
    broken = tmp_path / "broken.zip"
    _rewrite_zip(
        build_dir / "deployment.zip", broken, keep=lambda n: not n.startswith("cryptography")
    )
    requirements = (ROOT / "requirements.txt").read_text()
    problems = build_module.check_deployment_zip(broken, requirements, target)
    assert any("cryptography/" in p for p in problems)
    assert any(p.startswith("cryptography==") for p in problems)


def test_zip_check_reports_binaries_lambda_cannot_load(
    build_dir: Path, tmp_path: Path, target
) -> None:
    rust = "cryptography/hazmat/bindings/_rust.abi3.so"
    (wheel,) = [
        n
        for n in zipfile.ZipFile(build_dir / "deployment.zip").namelist()
        if re.fullmatch(r"cryptography-[^/]+\.dist-info/WHEEL", n)
    ]
    broken = tmp_path / "broken.zip"

    def x86_64(data: bytes) -> bytes:  # e_machine = EM_X86_64
        return data[:18] + (62).to_bytes(2, "little") + data[20:]

    def newer_glibc(data: bytes) -> bytes:  # Amazon Linux 2023 has glibc 2.34
        return re.sub(rb"manylinux[\w.]*_aarch64", b"manylinux_2_35_aarch64", data)

    _rewrite_zip(
        build_dir / "deployment.zip",
        broken,
        keep=lambda n: True,
        replace={rust: x86_64, wheel: newer_glibc},
    )
    problems = build_module.check_deployment_zip(
        broken, (ROOT / "requirements.txt").read_text(), target
    )
    assert any(rust in p and "CPU" in p for p in problems)
    assert any(wheel.split("/")[0] in p and "manylinux_2_35" in p for p in problems)


def test_zip_check_reports_a_macos_wheel(tmp_path: Path, target) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("app.py", "")
        zf.writestr("cffi/_cffi_backend.cpython-313-darwin.so", b"\xcf\xfa\xed\xfe")
    problems = build_module.check_deployment_zip(bad, "", target)
    assert any("another operating system" in p for p in problems)
