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


# -- Chalice's function, and its REST API replaced by the HTTP API ------------------------------


def app_routes() -> set[str]:
    """ "METHOD /path" of every route the app registers, read from Chalice's own route table."""
    import app

    return {f"{method} {path}" for path, methods in app.app.routes.items() for method in methods}


def test_chalice_function_keeps_its_logical_id_and_the_sam_transform(template: Template) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert template["Resources"]["APIHandler"]["Type"] == "AWS::Serverless::Function"
    assert props(template, "APIHandler")["CodeUri"] == "./deployment.zip"
    assert props(template, "APIHandler")["Handler"] == "app.app"


def test_chalices_rest_api_is_gone(template: Template) -> None:
    resources = template["Resources"]
    assert "RestAPI" not in resources
    assert "APIHandlerInvokePermission" not in resources
    assert not of_type(template, "AWS::Serverless::Api")
    assert not [r for r in resources.values() if r["Type"].startswith("AWS::ApiGateway::")]
    assert "Events" not in props(template, "APIHandler")
    assert not {"RestAPIId", "EndpointURL"} & set(template["Outputs"])
    assert "RestAPI" not in json.dumps(template)


def _routes(template: Template) -> dict[str, dict[str, Any]]:
    routes = of_type(template, "AWS::ApiGatewayV2::Route")
    return {r["Properties"]["RouteKey"]: r for r in routes.values()}


# The routes that call WeChat, served by the login function (issue 21): infra/build.py's.
LOGIN_ROUTES = {"POST /auth/login", "POST /auth/phone"}
FUNCTIONS = ("APIHandler", "LoginHandler")


def test_one_route_per_app_route_and_a_default_route(template: Template) -> None:
    routes = _routes(template)
    assert set(routes) == app_routes() | {"$default"}
    assert app_routes() >= LOGIN_ROUTES
    for key, route in routes.items():
        integration = "HttpApiLoginIntegration" if key in LOGIN_ROUTES else "HttpApiIntegration"
        assert route["Properties"]["ApiId"] == ref("HttpApi")
        assert route["Properties"]["Target"] == {"Fn::Sub": f"integrations/${{{integration}}}"}
        assert "AuthorizationType" not in route["Properties"]  # the app authorizes
    assert "ANY /{proxy+}" not in routes  # Chalice would answer it 405 (test_http_api_events)


def test_every_contract_route_is_in_the_api(template: Template) -> None:
    routes = _routes(template)
    for route in [
        "POST /auth/login",
        "POST /auth/refresh",
        "POST /auth/verify",
        "POST /auth/logout",
        "GET /me",
        "GET /.well-known/jwks.json",
        "GET /.well-known/openid-configuration",
        "POST /oauth/token",
        "POST /oauth/introspect",
        "POST /oauth/revoke",
        "GET /users/{user_id}/identities",
    ]:
        assert route in routes, f"{route} is not routed"


INTEGRATIONS = {  # integration -> (its function, the permission to invoke it)
    "HttpApiIntegration": ("APIHandler", "HttpApiInvokePermission"),
    "HttpApiLoginIntegration": ("LoginHandler", "HttpApiLoginInvokePermission"),
}


def test_each_integration_is_its_functions_live_alias_with_payload_format_1_0(
    template: Template,
) -> None:
    assert set(of_type(template, "AWS::ApiGatewayV2::Integration")) == set(INTEGRATIONS)
    for name, (function, permission_name) in INTEGRATIONS.items():
        integration = props(template, name)
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert integration["PayloadFormatVersion"] == "1.0"  # Chalice reads v1 events
        assert integration["IntegrationUri"] == ref(f"{function}.Alias")
        assert integration["TimeoutInMillis"] <= 30000
        permission = props(template, permission_name)
        assert permission["FunctionName"] == ref(f"{function}.Alias")
        assert permission["Principal"] == "apigateway.amazonaws.com"
        assert permission["SourceArn"] == {
            "Fn::Sub": (
                "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/*"
            )
        }
    assert set(of_type(template, "AWS::Lambda::Permission")) == {
        permission for _, permission in INTEGRATIONS.values()
    }


def test_sam_resolves_the_alias_for_the_integration_and_permission(expanded: Template) -> None:
    aliases = of_type(expanded, "AWS::Lambda::Alias")
    assert set(aliases) == {f"{function}Aliaslive" for function in FUNCTIONS}
    for name, (function, permission) in INTEGRATIONS.items():
        alias_name = f"{function}Aliaslive"
        alias = expanded["Resources"][alias_name]
        assert alias["Properties"]["Name"] == "live"
        assert alias["Properties"]["FunctionName"] == ref(function)
        assert props(expanded, name)["IntegrationUri"] == ref(alias_name)
        assert props(expanded, permission)["FunctionName"] == ref(alias_name)
        assert "CodeDeployLambdaAliasUpdate" in alias["UpdatePolicy"]


def test_the_login_function_is_chalices_function_with_its_own_concurrency_and_log_group(
    template: Template,
) -> None:
    """Same code, handler, role and environment (infra/build.py copies every property
    resources.yaml does not set), so that both functions are one service; its own reserved
    concurrency, log group and rollback alarm."""
    api, login = props(template, "APIHandler"), props(template, "LoginHandler")
    own = {"ReservedConcurrentExecutions", "LoggingConfig", "DeploymentPreference"}
    assert set(login) == set(api)
    for name in set(api) - own:
        assert login[name] == api[name], name
    assert login["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "HasLoginReservedConcurrency",
            ref("LoginReservedConcurrency"),
            ref("AWS::NoValue"),
        ]
    }
    assert login["LoggingConfig"] == {"LogGroup": ref("LoginFunctionLogGroup"), "LogFormat": "Text"}
    assert login["DeploymentPreference"] == {
        "Type": ref("DeploymentPreferenceType"),
        "Alarms": [ref("Api5xxRateAlarm"), ref("LoginLambdaErrorsAlarm"), ref("LatencyP99Alarm")],
    }
    assert template["Resources"]["LoginHandler"]["Type"] == "AWS::Serverless::Function"
    assert (
        template["Resources"]["LoginHandler"]["Metadata"]
        == template["Resources"]["APIHandler"]["Metadata"]
    )


def test_build_copies_every_property_the_login_function_does_not_set() -> None:
    template = {
        "Resources": {
            "APIHandler": {"Properties": {"Runtime": "python3.13", "SnapStart": {"On": 1}}},
            "LoginHandler": {"Properties": {"Runtime": "mine"}},
        }
    }
    build_module.complete_login_function(template)
    assert template["Resources"]["LoginHandler"]["Properties"] == {
        "Runtime": "mine",
        "SnapStart": {"On": 1},
    }
    with pytest.raises(build_module.BuildError, match="LoginHandler"):
        build_module.complete_login_function({"Resources": {"APIHandler": {"Properties": {}}}})


def test_http_api_is_an_http_api_named_after_the_stack(template: Template) -> None:
    api = props(template, "HttpApi")
    assert api["ProtocolType"] == "HTTP"
    assert api["Name"] == ref("AWS::StackName")
    assert "Body" not in api and "BodyS3Location" not in api  # routes are resources
    # the issuer without a custom domain: on unless DisableExecuteApiEndpoint=true
    assert api["DisableExecuteApiEndpoint"] == {
        "Fn::If": ["ExecuteApiDisabled", True, ref("AWS::NoValue")]
    }


def _chalice_template(paths: dict[str, Any], route_settings: dict[str, Any]) -> Template:
    return {
        "Resources": {
            "APIHandler": {"Type": "AWS::Serverless::Function", "Properties": {}},
            "RestAPI": {
                "Type": "AWS::Serverless::Api",
                "Properties": {"DefinitionBody": {"paths": paths}},
            },
            "HttpApi": {"Type": "AWS::ApiGatewayV2::Api"},
            "HttpApiIntegration": {"Type": "AWS::ApiGatewayV2::Integration"},
            "HttpApiLoginIntegration": {"Type": "AWS::ApiGatewayV2::Integration"},
            "HttpApiDefaultRoute": {"Type": "AWS::ApiGatewayV2::Route"},
            "HttpApiStage": {
                "Type": "AWS::ApiGatewayV2::Stage",
                "Properties": {"RouteSettings": route_settings},
            },
        },
        "Outputs": {},
    }


LOGIN_PATHS = {"/auth/login": {"post": {}}, "/auth/phone": {"post": {}}}


def test_build_refuses_route_settings_for_a_route_the_app_lacks() -> None:
    template = _chalice_template(LOGIN_PATHS, {"POST /auth/signin": {}})
    with pytest.raises(build_module.BuildError, match="POST /auth/signin"):
        build_module.use_http_api(template)


def test_build_refuses_an_app_without_the_login_functions_routes() -> None:
    template = _chalice_template({"/auth/login": {"post": {}}}, {})
    with pytest.raises(build_module.BuildError, match="/auth/phone"):
        build_module.use_http_api(template)
    template = _chalice_template({**LOGIN_PATHS, "/auth/refresh": {"post": {}}}, {})
    build_module.use_http_api(template)
    targets = {
        r["Properties"]["RouteKey"]: r["Properties"]["Target"]["Fn::Sub"]
        for r in of_type(template, "AWS::ApiGatewayV2::Route").values()
        if "Properties" in r  # not the stand-in $default route
    }
    assert targets == {
        "POST /auth/login": "integrations/${HttpApiLoginIntegration}",
        "POST /auth/phone": "integrations/${HttpApiLoginIntegration}",
        "POST /auth/refresh": "integrations/${HttpApiIntegration}",
    }


def test_route_logical_ids_are_stable_and_distinct() -> None:
    assert build_module.route_logical_id("POST", "/auth/login") == "HttpApiRoutePostAuthLogin"
    assert (
        build_module.route_logical_id("GET", "/.well-known/jwks.json")
        == "HttpApiRouteGetWellKnownJwksJson"
    )
    ids = {build_module.route_logical_id(*route.split(" ", 1)) for route in app_routes()}
    assert len(ids) == len(app_routes())


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
    assert set(secrets) == {"WeChatSecret", "SigningKeysSecret", "TombstoneKeySecret"}
    # the tombstones' HMAC key (issue 25) is generated by Secrets Manager: known to no one
    generated = secrets.pop("TombstoneKeySecret")["Properties"]
    assert generated["GenerateSecretString"] == {"PasswordLength": 64, "ExcludePunctuation": True}
    assert "SecretString" not in generated
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]
        assert "GenerateSecretString" not in secret["Properties"]


def test_no_secret_value_anywhere_in_the_template(template: Template) -> None:
    text = json.dumps(template)
    assert "PRIVATE KEY" not in text
    assert '"SecretString"' not in text  # GenerateSecretString: the tombstone key's
    for value in strings(template):
        assert not re.fullmatch(r"[0-9a-f]{32}", value), "looks like a WeChat AppSecret"


# -- the function and its role -------------------------------------------------------------------


def _policy_statements(template: Template) -> list[dict[str, Any]]:
    role = props(template, "APIHandlerRole")
    (policy,) = role["Policies"]
    return policy["PolicyDocument"]["Statement"]


def _statements(template: Template) -> dict[str, dict[str, Any]]:
    """The statements the role always has (not those under a condition)."""
    return {s["Sid"]: s for s in _policy_statements(template) if "Fn::If" not in s}


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
    # Chalice made no role of its own (config: manage_iam_role false for prod), and an HTTP
    # API needs no account-wide logging role.
    roles = of_type(template, "AWS::IAM::Role")
    assert set(roles) == {"APIHandlerRole"}


def test_role_grants_exactly_the_table_actions_on_exactly_the_table(template: Template) -> None:
    table = _statements(template)["AuthTable"]
    assert table["Effect"] == "Allow"
    assert sorted(_as_list(table["Action"])) == [
        "dynamodb:ConditionCheckItem",  # the login transaction's check that the user is not banned
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
# ... and only for an operator's command, with the operator's credentials: the Scan of
# `wxauth-admin user pending` without a user (chalicelib/store/identities.py, `all_pending`).
ADMIN_ONLY_OPERATIONS = {"scan"}
# IAM has no action for a transaction: each of its items needs its own (Put: PutItem, ...).
TRANSACTION_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def test_table_actions_are_the_operations_the_code_calls(template: Template) -> None:
    model = botocore.session.get_session().get_service_model("dynamodb")
    operations = {xform_name(name): name for name in model.operation_names}
    source = "\n".join(p.read_text() for p in (ROOT / "chalicelib").rglob("*.py"))
    called = {
        name
        for snake, name in operations.items()
        if snake not in LOCAL_ONLY_OPERATIONS | ADMIN_ONLY_OPERATIONS
        and re.search(rf'[".]{snake}["(]', source)
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


def test_the_one_scan_is_an_operators_command() -> None:
    """The Scan (everyone's pending links) is reached only from wxauth-admin, never a route."""
    callers = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "chalicelib").rglob("*.py")
        if re.search(r'\ball_pending\(|\.scan\(|"scan"', p.read_text())
    ]
    assert sorted(callers) == [
        "chalicelib/identity/graph.py",  # pending(user_id=None), wxauth-admin's only
        "chalicelib/store/identities.py",
        "chalicelib/store/table.py",
    ]
    pending_callers = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "chalicelib").rglob("*.py")
        if re.search(r"graph\.pending\(", p.read_text())
    ]
    assert pending_callers == ["chalicelib/admin/users.py"]


def test_role_reads_exactly_the_two_secrets(template: Template) -> None:
    secrets = _statements(template)["Secrets"]
    assert secrets["Effect"] == "Allow"
    assert _as_list(secrets["Action"]) == ["secretsmanager:GetSecretValue"]
    assert sorted(_as_list(secrets["Resource"]), key=json.dumps) == [
        ref("SigningKeysSecret"),
        ref("TombstoneKeySecret"),
        ref("WeChatSecret"),
    ]


def test_role_writes_only_its_own_log_groups(template: Template) -> None:
    statement = _statements(template)["Logs"]
    assert sorted(_as_list(statement["Action"])) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    # A group's ARN attribute ends in ":*" (its streams): the only wildcard in the policy,
    # and no logs:CreateLogGroup, since the groups exist before the functions run.
    assert _as_list(statement["Resource"]) == [
        getatt("FunctionLogGroup", "Arn"),
        getatt("LoginFunctionLogGroup", "Arn"),
        getatt("DeletionFunctionLogGroup", "Arn"),
    ]
    for function in (*FUNCTIONS, "DeletionHandler"):  # one role: the same code, the same calls
        assert props(template, function)["Role"] == getatt("APIHandlerRole", "Arn")


def test_role_has_nothing_else_and_no_wildcard(template: Template) -> None:
    statements = _statements(template)
    assert set(statements) == {"AuthTable", "Secrets", "Logs"}
    for statement in statements.values():
        assert statement["Effect"] == "Allow"
        assert set(statement) == {"Sid", "Effect", "Action", "Resource"}
        for value in strings(statement["Action"]) + strings(statement["Resource"]):
            assert "*" not in value, f"wildcard in {statement['Sid']}: {value}"
    conditional = [s for s in _policy_statements(template) if "Fn::If" in s]
    assert [s["Fn::If"][0] for s in conditional] == [
        "FixedEgress",
        "HasTokenHook",
        "TracingActive",
        "HasEventBus",
        "HasAppSecrets",
        "HasOriginSecret",
        "HasComponentPlatform",
    ]


def test_role_puts_events_only_on_the_configured_bus(template: Template) -> None:
    (statement,) = [
        s for s in _policy_statements(template) if s.get("Fn::If", [""])[0] == "HasEventBus"
    ]
    _, events, otherwise = statement["Fn::If"]
    assert otherwise == ref("AWS::NoValue")
    assert events == {
        "Sid": "Events",
        "Effect": "Allow",
        "Action": "events:PutEvents",
        "Resource": {
            "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}"
            ":event-bus/${EventBusName}"
        },
    }
    assert template["Conditions"]["HasEventBus"] == {
        "Fn::Not": [{"Fn::Equals": [ref("EventBusName"), ""]}]
    }


@pytest.mark.parametrize(
    "value",
    [
        "",
        "default",
        "wxauth-events",
        "aws.partner/example.com/123/source",
        "has space",
        "bus;drop",
        "a" * 257,
    ],
)
def test_the_event_bus_parameter_allows_exactly_the_bus_names_the_settings_accept(
    template: Template, value: str
) -> None:
    """The parameter takes a name (the policy's ARN is built from it); the setting also an ARN."""
    from chalicelib.errors import ConfigurationError

    pattern = re.compile(template["Parameters"]["EventBusName"]["AllowedPattern"])
    try:
        Settings.from_env({"AUTH_EVENT_BUS": value})
        accepted = True
    except ConfigurationError:
        accepted = False
    assert bool(pattern.fullmatch(value)) == accepted
    assert not pattern.fullmatch("arn:aws:events:us-east-1:123456789012:event-bus/wxauth")
    assert template["Parameters"]["EventBusName"]["Default"] == ""


def test_role_writes_x_ray_only_when_tracing_is_active(template: Template) -> None:
    (statement,) = [
        s for s in _policy_statements(template) if s.get("Fn::If", [""])[0] == "TracingActive"
    ]
    condition, xray, otherwise = statement["Fn::If"]
    assert condition == "TracingActive"
    assert otherwise == ref("AWS::NoValue")
    # X-Ray's write actions take no resource: "*" is the only value they accept.
    assert xray == {
        "Sid": "XRay",
        "Effect": "Allow",
        "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
        "Resource": "*",
    }
    assert template["Conditions"]["TracingActive"] == {"Fn::Equals": [ref("Tracing"), "Active"]}
    assert props(template, "APIHandler")["Tracing"] == ref("Tracing")
    assert template["Parameters"]["Tracing"]["AllowedValues"] == ["PassThrough", "Active"]


def test_function_environment_is_wired_to_parameters_and_resources(template: Template) -> None:
    assert props(template, "APIHandler")["Environment"]["Variables"] == {
        "AUTH_TABLE_NAME": ref("AuthTable"),
        "WECHAT_APPID": ref("WeChatAppId"),
        "WECHAT_API_BASE": ref("WeChatApiBase"),
        "WECHAT_SECRET_ARN": ref("WeChatSecret"),
        "AUTH_SIGNING_KEYS_ARN": ref("SigningKeysSecret"),
        "AUTH_ISSUER": {
            "Fn::If": [
                "HasCustomDomain",
                {"Fn::Sub": "https://${DomainName}"},
                {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"},
            ]
        },
        "AUTH_AUDIENCE": ref("Audience"),
        "AUTH_ACCESS_TTL": ref("AccessTokenTtl"),
        "AUTH_REFRESH_IDLE_TTL": ref("RefreshIdleTtl"),
        "AUTH_REFRESH_ABSOLUTE_TTL": ref("RefreshAbsoluteTtl"),
        "AUTH_REFRESH_GRACE": ref("RefreshGrace"),
        "AUTH_EVENT_BUS": ref("EventBusName"),
        "AUTH_LIMIT_LOGIN_PER_IP": ref("LoginLimitPerIp"),
        "AUTH_LIMIT_LOGIN_PER_IPV6_48": ref("LoginLimitPerIpv6Prefix48"),
        "AUTH_ORIGIN_SECRET_HEADER": ref("OriginSecretHeader"),
        "AUTH_ORIGIN_SECRET_ARN": ref("OriginSecretArn"),
        "AUTH_LIMIT_LOGIN_PER_OPENID": ref("LoginLimitPerOpenid"),
        "AUTH_LIMIT_REFRESH_PER_SESSION": ref("RefreshLimitPerSession"),
        "AUTH_TOKEN_HOOK_ARN": ref("TokenHookArn"),
        "AUTH_TOKEN_HOOK_TIMEOUT_MS": ref("TokenHookTimeoutMs"),
        "AUTH_TOKEN_HOOK_ON_ERROR": ref("TokenHookOnError"),
        "AUTH_MAX_SESSIONS_PER_USER": ref("MaxSessionsPerUser"),
        "AUTH_MAX_SESSIONS_SCOPE": ref("MaxSessionsScope"),
        "AUTH_DELETION_COOLDOWN": ref("DeletionCooldown"),
        "AUTH_TOMBSTONE_KEY_ARN": ref("TombstoneKeySecret"),
        "WECHAT_COMPONENT_APPID": {
            "Fn::If": ["HasComponentPlatform", ref("ComponentAppId"), ref("AWS::NoValue")]
        },
        "WECHAT_COMPONENT_SECRET_ARN": {
            "Fn::If": ["HasComponentPlatform", ref("ComponentSecretArn"), ref("AWS::NoValue")]
        },
        "WXAUTH_STACK_NAME": ref("AWS::StackName"),
    }


def test_role_invokes_only_the_token_hook_and_only_when_one_is_set(template: Template) -> None:
    import re

    from chalicelib.settings import is_lambda_arn

    (statement,) = [
        s for s in _policy_statements(template) if s.get("Fn::If", [""])[0] == "HasTokenHook"
    ]
    _, invoke, otherwise = statement["Fn::If"]
    assert otherwise == ref("AWS::NoValue")
    assert invoke == {
        "Sid": "TokenHook",
        "Effect": "Allow",
        "Action": "lambda:InvokeFunction",
        "Resource": ref("TokenHookArn"),
    }
    assert template["Conditions"]["HasTokenHook"] == {
        "Fn::Not": [{"Fn::Equals": [ref("TokenHookArn"), ""]}]
    }
    parameters = template["Parameters"]
    defaults = Settings()
    assert parameters["TokenHookArn"]["Default"] == ""  # no hook
    assert parameters["TokenHookTimeoutMs"]["Default"] == defaults.token_hook_timeout_ms
    assert parameters["TokenHookOnError"]["Default"] == defaults.token_hook_on_error
    assert parameters["TokenHookOnError"]["AllowedValues"] == ["issue", "refuse"]
    pattern = re.compile(parameters["TokenHookArn"]["AllowedPattern"])
    for arn in (
        "arn:aws:lambda:us-east-1:123456789012:function:claims",
        "arn:aws-cn:lambda:cn-north-1:123456789012:function:claims:live",
        "arn:aws:lambda:us-east-1:123456789012:function:claims*",
        "arn:aws:lambda:us-east-1:123456789012:layer:x",
        "*",
    ):
        assert bool(pattern.fullmatch(arn)) == is_lambda_arn(arn), arn


def test_environment_names_are_the_settings_the_code_reads(template: Template) -> None:
    # settings.py reads them; the names of the AUTH_LIMIT_* limits are in limits.py, those of
    # issues 24 and 25 (deletion, the third-party platform) in setting_groups.py and
    # setting_values.py
    files = ("settings.py", "limits.py", "setting_groups.py", "setting_values.py")
    source = "".join((ROOT / "chalicelib" / f).read_text() for f in files)
    for name in props(template, "APIHandler")["Environment"]["Variables"]:
        if name != "WXAUTH_STACK_NAME":
            assert f'"{name}"' in source, f"chalicelib/settings.py does not read {name}"
    assert '"WXAUTH_STACK_NAME"' in (ROOT / "chalicelib" / "logs.py").read_text()


def test_the_grace_parameter_allows_exactly_what_the_settings_accept(template: Template) -> None:
    import re

    from chalicelib.settings import minimum_refresh_grace

    pattern = re.compile(template["Parameters"]["RefreshGrace"]["AllowedPattern"])
    allowed = [g for g in range(0, 400) if pattern.fullmatch(str(g))]
    assert allowed == [0, *range(minimum_refresh_grace(), 301)]


# WeChat's API access points ("API Domain Name Description", WeChat Official Accounts docs).
WECHAT_ACCESS_POINTS = [
    "https://api.weixin.qq.com",
    "https://api2.weixin.qq.com",
    "https://sh.api.weixin.qq.com",
    "https://sz.api.weixin.qq.com",
    "https://hk.api.weixin.qq.com",
]


def test_the_wechat_api_base_is_a_parameter_of_wechats_access_points(template: Template) -> None:
    parameter = template["Parameters"]["WeChatApiBase"]
    assert parameter["AllowedValues"] == WECHAT_ACCESS_POINTS
    assert parameter["Default"] == Settings().wechat_api_base == WECHAT_ACCESS_POINTS[0]
    variables = props(template, "APIHandler")["Environment"]["Variables"]
    assert variables["WECHAT_API_BASE"] == ref("WeChatApiBase")
    # Each is a base the settings take as they are (no trailing slash to strip).
    for base in WECHAT_ACCESS_POINTS:
        assert Settings.from_env({"WECHAT_API_BASE": base}).wechat_api_base == base
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert any("WeChatApiBase" in group["Parameters"] for group in groups)


def test_parameter_defaults_are_the_settings_defaults(template: Template) -> None:
    parameters = template["Parameters"]
    defaults = Settings()
    assert parameters["AccessTokenTtl"]["Default"] == defaults.access_ttl
    assert parameters["RefreshIdleTtl"]["Default"] == defaults.refresh_idle_ttl
    assert parameters["RefreshAbsoluteTtl"]["Default"] == defaults.refresh_absolute_ttl
    assert int(parameters["RefreshGrace"]["Default"]) == defaults.refresh_grace
    assert parameters["Audience"]["Default"] == defaults.audience
    assert "Default" not in parameters["WeChatAppId"]  # no deploy without an appid
    # The issuer is the custom domain's URL or the API's: no parameter, no second deploy.
    assert "Issuer" not in parameters
    assert "Stage" not in parameters  # the $default stage
    for name in ("WeChatAppId", "ThrottlingRateLimit", "ThrottlingBurstLimit", "DomainName"):
        assert name in parameters


def test_function_runtime_memory_timeout_and_logging(template: Template) -> None:
    function = props(template, "APIHandler")
    assert function["Runtime"] == "python3.13"  # Amazon Linux 2023
    assert function["Architectures"] == ["arm64"]  # Graviton (docs/operators.md "What it costs")
    assert function["MemorySize"] == 512
    # WeChat calls time out after ~12 s; API Gateway gives up on the function at 29 s.
    assert 15 <= function["Timeout"] < 29
    assert function["LoggingConfig"] == {"LogGroup": ref("FunctionLogGroup"), "LogFormat": "Text"}


# -- the HTTP API stage, throttling, access log, custom domain ------------------------------------

STRICT_ROUTES = {
    "POST /auth/login": ("LoginThrottlingRateLimit", "LoginThrottlingBurstLimit"),
    "POST /auth/phone": ("LoginThrottlingRateLimit", "LoginThrottlingBurstLimit"),
    "POST /auth/refresh": ("TokenThrottlingRateLimit", "TokenThrottlingBurstLimit"),
    "POST /oauth/token": ("TokenThrottlingRateLimit", "TokenThrottlingBurstLimit"),
    "POST /oauth/introspect": ("TokenThrottlingRateLimit", "TokenThrottlingBurstLimit"),
    "POST /wechat/access-token": (
        "WeChatTokenThrottlingRateLimit",
        "WeChatTokenThrottlingBurstLimit",
    ),
}
DETAILED_METRICS = {"Fn::If": ["DetailedRouteMetricsEnabled", True, False]}


def test_stage_is_the_default_stage_deployed_automatically(template: Template) -> None:
    (name,) = of_type(template, "AWS::ApiGatewayV2::Stage")
    stage = props(template, name)
    assert name == "HttpApiStage"
    assert stage["ApiId"] == ref("HttpApi")
    assert stage["StageName"] == "$default"  # no stage segment in the URL or the issuer
    assert stage["AutoDeploy"] is True


def test_default_route_throttling_and_detailed_metrics_are_parameters(template: Template) -> None:
    assert props(template, "HttpApiStage")["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": ref("ThrottlingRateLimit"),
        "ThrottlingBurstLimit": ref("ThrottlingBurstLimit"),
        "DetailedMetricsEnabled": DETAILED_METRICS,
    }


def test_login_and_token_endpoints_are_throttled_harder(template: Template) -> None:
    settings = props(template, "HttpApiStage")["RouteSettings"]
    assert set(settings) == set(STRICT_ROUTES)
    assert set(settings) <= app_routes()
    for route, (rate, burst) in STRICT_ROUTES.items():
        assert settings[route] == {
            "ThrottlingRateLimit": ref(rate),
            "ThrottlingBurstLimit": ref(burst),
            "DetailedMetricsEnabled": DETAILED_METRICS,
        }
    parameters = template["Parameters"]
    for rate, burst in STRICT_ROUTES.values():
        assert parameters[rate]["Default"] < parameters["ThrottlingRateLimit"]["Default"]
        assert parameters[burst]["Default"] < parameters["ThrottlingBurstLimit"]["Default"]


def test_stage_is_created_after_every_route_it_may_name(template: Template) -> None:
    routes = set(of_type(template, "AWS::ApiGatewayV2::Route"))
    assert set(template["Resources"]["HttpApiStage"]["DependsOn"]) == routes


def test_access_log_is_json_without_headers_or_bodies(template: Template) -> None:
    setting = props(template, "HttpApiStage")["AccessLogSettings"]
    assert setting["DestinationArn"] == getatt("ApiAccessLogGroup", "Arn")
    fields = json.loads(setting["Format"])
    assert {"requestId", "ip", "httpMethod", "routeKey", "path", "status"} <= set(fields)
    for forbidden in ("$input", "$context.authorizer", "header", "Authorization", "$util"):
        assert forbidden not in setting["Format"]
    assert "querystring" not in setting["Format"].lower()


def test_custom_domain_is_optional_and_maps_the_stage(template: Template) -> None:
    resources = template["Resources"]
    domain, mapping = resources["CustomDomain"], resources["CustomDomainMapping"]
    assert domain["Condition"] == mapping["Condition"] == "HasCustomDomain"
    assert template["Conditions"]["HasCustomDomain"] == {
        "Fn::Not": [{"Fn::Equals": [ref("DomainName"), ""]}]
    }
    assert domain["Type"] == "AWS::ApiGatewayV2::DomainName"
    assert domain["Properties"]["DomainName"] == ref("DomainName")
    assert domain["Properties"]["DomainNameConfigurations"] == [
        {
            "CertificateArn": ref("CertificateArn"),
            "EndpointType": "REGIONAL",
            "SecurityPolicy": "TLS_1_2",
        }
    ]
    assert mapping["Type"] == "AWS::ApiGatewayV2::ApiMapping"
    assert mapping["Properties"] == {
        "DomainName": ref("CustomDomain"),
        "ApiId": ref("HttpApi"),
        "Stage": ref("HttpApiStage"),
    }
    assert "ApiMappingKey" not in mapping["Properties"]  # at the root: the issuer has no path
    (assertion,) = template["Rules"]["CertificateWithDomain"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [ref("CertificateArn"), ""]}]}
    assert template["Parameters"]["DomainName"]["Default"] == ""


def test_issuer_and_api_url_are_the_custom_domain_else_the_api_url(template: Template) -> None:
    issuer = props(template, "APIHandler")["Environment"]["Variables"]["AUTH_ISSUER"]
    assert template["Outputs"]["ApiUrl"]["Value"] == issuer
    condition, with_domain, without = issuer["Fn::If"]
    assert condition == "HasCustomDomain"
    assert with_domain == {"Fn::Sub": "https://${DomainName}"}
    # The API's own URL: the $default stage has no path, so no trailing segment or slash.
    assert without == {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert template["Outputs"]["CustomDomainTarget"] == {
        "Condition": "HasCustomDomain",
        "Description": template["Outputs"]["CustomDomainTarget"]["Description"],
        "Value": getatt("CustomDomain", "RegionalDomainName"),
    }


def test_expanded_function_keeps_role_environment_and_log_group(expanded: Template) -> None:
    function = props(expanded, "APIHandler")
    assert expanded["Resources"]["APIHandler"]["Type"] == "AWS::Lambda::Function"
    assert function["Role"] == getatt("APIHandlerRole", "Arn")
    assert function["LoggingConfig"]["LogGroup"] == ref("FunctionLogGroup")
    assert function["Environment"]["Variables"]["AUTH_TABLE_NAME"] == ref("AuthTable")
    # SAM adds no role of its own for the function; CodeDeploy gets one for the canary.
    assert set(of_type(expanded, "AWS::IAM::Role")) == {"APIHandlerRole", "CodeDeployServiceRole"}


def test_every_log_group_has_the_retention_parameter(template: Template) -> None:
    groups = of_type(template, "AWS::Logs::LogGroup")
    # An HTTP API writes no execution log: the functions' and the access log only.
    assert set(groups) == {
        "FunctionLogGroup",
        "LoginFunctionLogGroup",
        "DeletionFunctionLogGroup",
        "ApiAccessLogGroup",
    }
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == ref("LogRetentionDays")
    assert 365 in template["Parameters"]["LogRetentionDays"]["AllowedValues"]


# -- concurrency and gradual deploys ------------------------------------------------------------


def test_reserved_concurrency_is_a_parameter_and_zero_reserves_none(template: Template) -> None:
    function = props(template, "APIHandler")
    assert function["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", ref("ReservedConcurrency"), ref("AWS::NoValue")]
    }
    assert template["Conditions"]["HasReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [ref("ReservedConcurrency"), "0"]}]
    }
    parameters = template["Parameters"]
    parameter = parameters["ReservedConcurrency"]
    # Enough for the one route left here that calls WeChat (the token route: up to ~12 s
    # each while WeChat hangs), plus the token and other routes at their limits (tens of ms).
    token_rate = parameters["WeChatTokenThrottlingRateLimit"]["Default"]
    assert parameter["Default"] >= token_rate * 12.2 + 10
    assert parameter["MinValue"] == 0


def test_the_login_function_reserves_enough_for_its_routes_while_wechat_hangs(
    template: Template,
) -> None:
    """Both of its routes (login, phone) at their limits while each request waits ~12.2 s for
    WeChat, plus their bursts: then they are throttled, and refresh and verify are not."""
    parameters = template["Parameters"]
    assert template["Conditions"]["HasLoginReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [ref("LoginReservedConcurrency"), "0"]}]
    }
    rate = parameters["LoginThrottlingRateLimit"]["Default"]
    burst = parameters["LoginThrottlingBurstLimit"]["Default"]
    assert parameters["LoginReservedConcurrency"]["Default"] >= 2 * (rate * 12.2 + burst)
    assert parameters["LoginReservedConcurrency"]["MinValue"] == 0
    # Lambda keeps 100 of an account's default 1,000 unreserved
    assert (
        parameters["LoginReservedConcurrency"]["Default"]
        + parameters["ReservedConcurrency"]["Default"]
        <= 900
    )


def test_launch_concurrency_is_scheduled_on_each_functions_alias_and_off_by_default(
    template: Template,
) -> None:
    parameters = template["Parameters"]
    for function, parameter, target in (
        ("LoginHandler", "LaunchConcurrencyLogin", "LoginLaunchConcurrency"),
        ("APIHandler", "LaunchConcurrencyApi", "ApiLaunchConcurrency"),
    ):
        assert parameters[parameter]["Default"] == 0
        resource = template["Resources"][target]
        assert resource["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
        assert template["Conditions"][resource["Condition"]] == {
            "Fn::Not": [{"Fn::Equals": [ref(parameter), "0"]}]
        }
        assert resource["DependsOn"] == f"{function}Aliaslive"  # SAM's alias of AutoPublishAlias
        target_props = resource["Properties"]
        assert target_props["ServiceNamespace"] == "lambda"
        assert target_props["ScalableDimension"] == "lambda:function:ProvisionedConcurrency"
        assert target_props["ResourceId"] == {"Fn::Sub": f"function:${{{function}}}:live"}
        assert (target_props["MinCapacity"], target_props["MaxCapacity"]) == (0, ref(parameter))
        start, end = target_props["ScheduledActions"]
        assert start["Schedule"] == ref("LaunchWindowStart")
        assert start["ScalableTargetAction"] == {
            "MinCapacity": ref(parameter),
            "MaxCapacity": ref(parameter),
        }
        assert end["Schedule"] == ref("LaunchWindowEnd")
        assert end["ScalableTargetAction"] == {"MinCapacity": 0, "MaxCapacity": 0}
    pattern = re.compile(parameters["LaunchWindowStart"]["AllowedPattern"])
    assert parameters["LaunchWindowEnd"]["AllowedPattern"] == pattern.pattern
    for good in ("", "at(2026-06-18T11:30:00)", "cron(30 11 * * ? *)"):
        assert pattern.fullmatch(good), good
    for bad in ("2026-06-18T11:30:00", "at(tomorrow)", "rate(5 minutes)", "cron(x); y"):
        assert not pattern.fullmatch(bad), bad
    (assertion,) = template["Rules"]["LaunchConcurrencyHasAWindow"]["Assertions"]
    assert {"Fn::Not": [{"Fn::Equals": [ref("LaunchWindowStart"), ""]}]} in assertion["Assert"][
        "Fn::And"
    ]


def test_the_table_can_be_pre_warmed_and_is_not_by_default(template: Template) -> None:
    parameters = template["Parameters"]
    assert parameters["TableWarmReadUnits"]["Default"] == 0
    assert parameters["TableWarmWriteUnits"]["Default"] == 0
    assert props(template, "AuthTable")["WarmThroughput"] == {
        "Fn::If": [
            "HasWarmThroughput",
            {
                "ReadUnitsPerSecond": ref("TableWarmReadUnits"),
                "WriteUnitsPerSecond": ref("TableWarmWriteUnits"),
            },
            ref("AWS::NoValue"),
        ]
    }
    assert "WarmThroughputHasBothUnits" in template["Rules"]


ROLLBACK_ALARMS = ["Api5xxRateAlarm", "LambdaErrorsAlarm", "LatencyP99Alarm"]


def test_deploys_shift_traffic_to_the_live_alias_and_roll_back_on_alarms(
    template: Template,
) -> None:
    function = props(template, "APIHandler")
    assert function["AutoPublishAlias"] == "live"
    preference = function["DeploymentPreference"]
    assert preference["Type"] == ref("DeploymentPreferenceType")
    assert preference["Alarms"] == [ref(name) for name in ROLLBACK_ALARMS]
    parameter = template["Parameters"]["DeploymentPreferenceType"]
    assert parameter["Default"] == "Canary10Percent5Minutes"
    assert "AllAtOnce" in parameter["AllowedValues"]
    # Rollback alarms decide within the canary's bake time: one-minute periods.
    for name in ROLLBACK_ALARMS:
        alarm = props(template, name)
        periods = [m["MetricStat"]["Period"] for m in alarm.get("Metrics", []) if "MetricStat" in m]
        assert set(periods or [alarm["Period"]]) == {60}, name
        assert alarm.get("EvaluationPeriods", 1) <= 5


def test_codedeploy_group_rolls_back_on_those_alarms(expanded: Template) -> None:
    groups = of_type(expanded, "AWS::CodeDeploy::DeploymentGroup")
    assert set(groups) == {f"{function}DeploymentGroup" for function in FUNCTIONS}
    login_alarms = [a.replace("LambdaErrors", "LoginLambdaErrors") for a in ROLLBACK_ALARMS]
    for name, alarms in (
        ("APIHandlerDeploymentGroup", ROLLBACK_ALARMS),
        ("LoginHandlerDeploymentGroup", login_alarms),
    ):
        config = groups[name]["Properties"]
        assert config["AlarmConfiguration"] == {
            "Alarms": [{"Name": ref(alarm)} for alarm in alarms],
            "Enabled": True,
        }
        assert config["AutoRollbackConfiguration"]["Enabled"] is True
        assert "DEPLOYMENT_STOP_ON_ALARM" in config["AutoRollbackConfiguration"]["Events"]
        assert config["DeploymentStyle"]["DeploymentOption"] == "WITH_TRAFFIC_CONTROL"


# -- alarms --------------------------------------------------------------------------------------


def _alarm(template: Template, name: str) -> dict[str, Any]:
    alarm = props(template, name)
    assert alarm["AlarmActions"] == [ref("AlarmTopic")]
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    return alarm


API_DIMENSIONS = [
    {"Name": "ApiId", "Value": ref("HttpApi")},
    {"Name": "Stage", "Value": "$default"},
]


def test_alarm_on_api_5xx_rate(template: Template) -> None:
    alarm = _alarm(template, "Api5xxRateAlarm")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    for metric_id, name in (("errors", "5xx"), ("requests", "Count")):
        stat = metrics[metric_id]["MetricStat"]
        assert stat["Metric"] == {
            "Namespace": "AWS/ApiGateway",
            "MetricName": name,
            "Dimensions": API_DIMENSIONS,
        }
        assert (stat["Stat"], stat["Period"]) == ("Sum", 60)
    assert (
        metrics["rate"]["Expression"] == "IF(FILL(requests, 0) > 0, FILL(errors, 0) / requests, 0)"
    )
    assert [m["Id"] for m in alarm["Metrics"] if m["ReturnData"]] == ["rate"]
    assert alarm["Threshold"] == ref("Api5xxRateThreshold")
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (5, 3)


def test_alarm_stage_dimension_is_the_stages_name(template: Template) -> None:
    assert props(template, "HttpApiStage")["StageName"] == "$default"


def test_alarm_on_p99_latency(template: Template) -> None:
    alarm = _alarm(template, "LatencyP99Alarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "Latency")
    assert alarm["Dimensions"] == API_DIMENSIONS
    assert alarm["ExtendedStatistic"] == "p99"
    assert alarm["Threshold"] == ref("LatencyP99ThresholdMs")
    assert template["Parameters"]["LatencyP99ThresholdMs"]["Default"] == 2000


@pytest.mark.parametrize(
    ("name", "metric", "period", "function"),
    [
        ("LambdaErrorsAlarm", "Errors", 60, "APIHandler"),
        ("LambdaThrottlesAlarm", "Throttles", 300, "APIHandler"),
        ("LoginLambdaErrorsAlarm", "Errors", 60, "LoginHandler"),
        ("LoginLambdaThrottlesAlarm", "Throttles", 300, "LoginHandler"),
    ],
)
def test_alarm_on_lambda_errors_and_throttles(
    template: Template, name: str, metric: str, period: int, function: str
) -> None:
    alarm = _alarm(template, name)
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", metric)
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": ref(function)}]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["Period"]) == ("Sum", 1, period)


@pytest.mark.parametrize(
    ("name", "function"),
    [("LambdaDurationAlarm", "APIHandler"), ("LoginLambdaDurationAlarm", "LoginHandler")],
)
def test_alarm_on_duration_near_the_timeout(template: Template, name: str, function: str) -> None:
    alarm = _alarm(template, name)
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Duration")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": ref(function)}]
    assert alarm["Statistic"] == "Maximum"
    timeout_ms = props(template, function)["Timeout"] * 1000
    assert alarm["Threshold"] == 0.8 * timeout_ms, "keep the alarm at 80% of the timeout"


@pytest.mark.parametrize(
    ("name", "function", "condition", "parameter"),
    [
        ("ConcurrencyAlarm", "APIHandler", "HasReservedConcurrency", "ReservedConcurrency"),
        (
            "LoginConcurrencyAlarm",
            "LoginHandler",
            "HasLoginReservedConcurrency",
            "LoginReservedConcurrency",
        ),
    ],
)
def test_alarm_on_concurrency_near_the_reserved_limit(
    template: Template, name: str, function: str, condition: str, parameter: str
) -> None:
    resource = template["Resources"][name]
    assert resource["Condition"] == condition  # no limit, nothing to near
    alarm = _alarm(template, name)
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    stat = metrics["concurrency"]["MetricStat"]
    assert stat["Metric"] == {
        "Namespace": "AWS/Lambda",
        "MetricName": "ConcurrentExecutions",
        "Dimensions": [{"Name": "FunctionName", "Value": ref(function)}],
    }
    assert stat["Stat"] == "Maximum"
    assert metrics["percent"]["Expression"] == {
        "Fn::Sub": f"100 * FILL(concurrency, 0) / ${{{parameter}}}"
    }
    assert alarm["Threshold"] == ref("ConcurrencyAlarmPercent")


LOG_NAMESPACE = {"Fn::Sub": "wxauth/${AWS::StackName}"}


def test_alarm_on_a_spike_of_login_failures(template: Template) -> None:
    alarm = _alarm(template, "LoginFailureRateAlarm")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    for metric_id, name in (("failures", "LoginFailures"), ("successes", "LoginSuccesses")):
        stat = metrics[metric_id]["MetricStat"]
        assert stat["Metric"] == {"Namespace": LOG_NAMESPACE, "MetricName": name}
        assert (stat["Stat"], stat["Period"]) == ("Sum", 300)
    expression = metrics["rate"]["Expression"]
    assert expression.startswith("IF(FILL(failures, 0) + FILL(successes, 0) >= 10,")
    assert alarm["Threshold"] == ref("LoginFailureRateThreshold")


# Each log metric, from the log group of the function that writes its lines (the login
# function's: the login route and phone bindings; the other's: refreshes, the WeChat token route).
LOG_METRIC_GROUPS = {
    "LoginSuccesses": {"LoginFunctionLogGroup"},
    "LoginFailures": {"LoginFunctionLogGroup"},
    "Refreshes": {"FunctionLogGroup"},
    "WeChatErrors": {"LoginFunctionLogGroup", "FunctionLogGroup"},
}


def _filters(template: Template) -> dict[str, dict[str, Any]]:
    """Metric name -> log group -> its filter's properties."""
    filters: dict[str, dict[str, Any]] = {}
    for resource in of_type(template, "AWS::Logs::MetricFilter").values():
        (transformation,) = resource["Properties"]["MetricTransformations"]
        assert transformation["MetricNamespace"] == LOG_NAMESPACE
        assert (transformation["MetricValue"], transformation["DefaultValue"]) == ("1", 0)
        group = resource["Properties"]["LogGroupName"]["Ref"]
        filters.setdefault(transformation["MetricName"], {})[group] = resource["Properties"]
    assert {name: set(groups) for name, groups in filters.items()} == LOG_METRIC_GROUPS
    return filters


def test_log_metrics_read_fields_and_values_the_request_log_has(template: Template) -> None:
    """The filter patterns name only fields of the request log line (edge.handle ->
    logs.log_request), routes the app has, and error codes the app answers."""
    import inspect

    from chalicelib.api import edge, error_table

    filters = {
        f"{name} ({group})": properties
        for name, groups in _filters(template).items()
        for group, properties in groups.items()
    }
    handle = inspect.getsource(edge.handle)
    log_fields = set(re.findall(r"\n\s+(\w+)=", handle.split("logs.log_request(", 1)[1]))
    paths = {route.split(" ", 1)[1] for route in app_routes()}
    codes = {code for _kind, _status, code in error_table.ERROR_TABLE}
    for name, properties in filters.items():
        pattern = properties["FilterPattern"]
        for field, value in re.findall(r'\$\.(\w+) (?:=|>=) ("[^"]*"|\d+)', pattern):
            value = value.strip('"')
            if field == "event":
                assert value in ("request", "wechat_configuration_error"), name
            else:
                assert field in log_fields, f"{name}: the request log has no {field}"
            if field == "route":
                assert value in paths, f"{name}: no route {value}"
            if field == "error":
                assert value in codes, f"{name}: the app never answers {value}"
    wechat_client = ROOT / "chalicelib" / "wechat" / "client.py"
    assert '"wechat_configuration_error"' in wechat_client.read_text()
    assert "$.status >= 400" in filters["LoginFailures (LoginFunctionLogGroup)"]["FilterPattern"]
    assert "$.status = 200" in filters["LoginSuccesses (LoginFunctionLogGroup)"]["FilterPattern"]


def _dashboard(template: Template) -> dict[str, Any]:
    body = props(template, "Dashboard")["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([\w:]+)\}", body))
    assert names <= set(template["Resources"]) | set(template["Parameters"]) | {
        "AWS::Region",
        "AWS::StackName",
    }, names
    numbers = {"LatencyP99ThresholdMs", "ReservedConcurrency", "LoginReservedConcurrency"}
    return json.loads(
        re.sub(r"\$\{([\w:]+)\}", lambda m: "1" if m.group(1) in numbers else m.group(1), body)
    )


def test_dashboard_shows_what_the_operator_watches(template: Template) -> None:
    dashboard = _dashboard(template)
    text = json.dumps(dashboard)
    titles = [w["properties"]["title"] for w in dashboard["widgets"]]
    assert len(titles) == len(set(titles))
    for needle in (
        '"Count", "ApiId", "HttpApi"',
        '"p50"',
        '"p99"',
        '"LoginSuccesses"',
        '"LoginFailures"',
        '"Refreshes"',
        '"RefreshTokenReuse", "Stack", "AWS::StackName"',
        '"WeChatErrors"',
        '"ReadThrottleEvents"',
        '"WriteThrottleEvents"',
        '"ConcurrentExecutions"',
    ):
        assert needle in text, needle
    # each function's concurrency, errors, throttles and duration
    for function in FUNCTIONS:
        for metric in ("ConcurrentExecutions", "Duration"):
            assert f'"AWS/Lambda", "{metric}", "FunctionName", "{function}"' in text, function
        (widget,) = [
            w
            for w in dashboard["widgets"]
            if f'"ConcurrentExecutions", "FunctionName", "{function}"'
            in json.dumps(w["properties"].get("metrics"))
        ]
        metrics = json.dumps(widget["properties"]["metrics"])
        assert '"Errors"' in metrics and '"Throttles"' in metrics, function
    for metric in ("Count", "4xx", "5xx"):  # by route: the detailed metrics' Route dimension
        assert f'{{AWS/ApiGateway,ApiId,Route,Stage}} MetricName=\\"{metric}\\"' in text
    (log_widget,) = [w for w in dashboard["widgets"] if w["type"] == "log"]
    assert "SOURCE 'ApiAccessLogGroup'" in log_widget["properties"]["query"]
    assert "by routeKey, status" in log_widget["properties"]["query"]
    # The EMF metric the code emits, in the namespace the code uses.
    assert logs.METRICS_NAMESPACE == "wxauth"


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


# -- the WeChat server access token (broker) and fixed egress -------------------------------------


def test_alarm_on_forced_wechat_token_refreshes_matches_the_metric_the_code_emits(
    template: Template,
) -> None:
    from chalicelib.wechat import broker

    alarm = _alarm(template, "WeChatTokenForceRefreshAlarm")
    assert alarm["Namespace"] == logs.METRICS_NAMESPACE
    assert alarm["MetricName"] == "WeChatTokenForceRefresh"
    assert alarm["Dimensions"] == [{"Name": "Stack", "Value": ref("AWS::StackName")}]
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Sum", 86400, 1)
    assert alarm["Threshold"] == ref("WeChatForceRefreshAlarmThreshold")
    threshold = template["Parameters"]["WeChatForceRefreshAlarmThreshold"]
    assert threshold["Default"] <= broker.DAILY_FORCE_BUDGET <= 20
    source = (ROOT / "chalicelib" / "wechat" / "broker.py").read_text()
    assert '"WeChatTokenForceRefresh"' in source and '"WeChatTokenFetchFailed"' in source
    failed = _alarm(template, "WeChatTokenFetchFailedAlarm")
    assert failed["MetricName"] == "WeChatTokenFetchFailed" and failed["Namespace"] == "wxauth"


@pytest.mark.parametrize(
    ("alarm_id", "metric", "source"),
    [
        ("WeChatBreakerOpenedAlarm", "WeChatBreakerOpened", "chalicelib/wechat/breaker.py"),
        ("EventsDroppedAlarm", "EventsDropped", "chalicelib/events.py"),
    ],
)
def test_the_breaker_and_dropped_events_alarm_on_the_first_one(
    template: Template, alarm_id: str, metric: str, source: str
) -> None:
    """On the metric the code counts (by the Stack dimension only, as Metrics.count emits it),
    at the first one in 5 minutes, mailing the alarm topic."""
    alarm = _alarm(template, alarm_id)
    assert (alarm["Namespace"], alarm["MetricName"]) == ("wxauth", metric)
    assert alarm["Dimensions"] == [{"Name": "Stack", "Value": ref("AWS::StackName")}]
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 300, 1)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [ref("AlarmTopic")]
    assert f'"{metric}"' in (ROOT / source).read_text()


EGRESS_TYPES = {
    "EgressVpc": "AWS::EC2::VPC",
    "EgressInternetGateway": "AWS::EC2::InternetGateway",
    "EgressGatewayAttachment": "AWS::EC2::VPCGatewayAttachment",
    "EgressPublicSubnet": "AWS::EC2::Subnet",
    "EgressPrivateSubnetA": "AWS::EC2::Subnet",
    "EgressPrivateSubnetB": "AWS::EC2::Subnet",
    "EgressPublicRouteTable": "AWS::EC2::RouteTable",
    "EgressPublicRoute": "AWS::EC2::Route",
    "EgressPublicSubnetRoutes": "AWS::EC2::SubnetRouteTableAssociation",
    "EgressIp": "AWS::EC2::EIP",
    "EgressNatGateway": "AWS::EC2::NatGateway",
    "EgressPrivateRouteTable": "AWS::EC2::RouteTable",
    "EgressPrivateRoute": "AWS::EC2::Route",
    "EgressPrivateSubnetARoutes": "AWS::EC2::SubnetRouteTableAssociation",
    "EgressPrivateSubnetBRoutes": "AWS::EC2::SubnetRouteTableAssociation",
    "EgressDynamoDBEndpoint": "AWS::EC2::VPCEndpoint",
    "FunctionSecurityGroup": "AWS::EC2::SecurityGroup",
}


def test_fixed_egress_is_an_option_off_by_default(template: Template) -> None:
    parameter = template["Parameters"]["FixedEgressIp"]
    assert parameter["Default"] == "false" and parameter["AllowedValues"] == ["true", "false"]
    assert "$32/month" in parameter["Description"]
    assert template["Conditions"]["FixedEgress"] == {"Fn::Equals": [ref("FixedEgressIp"), "true"]}
    resources = template["Resources"]
    for name, type_ in EGRESS_TYPES.items():
        assert resources[name]["Type"] == type_
        assert resources[name]["Condition"] == "FixedEgress", name
    ec2 = {n for n, r in resources.items() if r.get("Type", "").startswith("AWS::EC2::")}
    assert ec2 == set(EGRESS_TYPES)
    assert template["Outputs"]["EgressIpAddress"] == {
        "Condition": "FixedEgress",
        "Description": template["Outputs"]["EgressIpAddress"]["Description"],
        "Value": ref("EgressIp"),
    }


def test_fixed_egress_routes_the_function_through_one_nat_gateway(template: Template) -> None:
    vpc_config = props(template, "APIHandler")["VpcConfig"]
    condition, config, otherwise = vpc_config["Fn::If"]
    assert (condition, otherwise) == ("FixedEgress", ref("AWS::NoValue"))
    assert config == {
        "SecurityGroupIds": [ref("FunctionSecurityGroup")],
        "SubnetIds": [ref("EgressPrivateSubnetA"), ref("EgressPrivateSubnetB")],
    }
    assert props(template, "EgressNatGateway") == {
        "AllocationId": getatt("EgressIp", "AllocationId"),
        "SubnetId": ref("EgressPublicSubnet"),
        "Tags": props(template, "EgressNatGateway")["Tags"],
    }
    assert props(template, "EgressPrivateRoute")["NatGatewayId"] == ref("EgressNatGateway")
    assert props(template, "EgressPublicRoute")["GatewayId"] == ref("EgressInternetGateway")
    for association in ("EgressPrivateSubnetARoutes", "EgressPrivateSubnetBRoutes"):
        assert props(template, association)["RouteTableId"] == ref("EgressPrivateRouteTable")
    group = props(template, "FunctionSecurityGroup")
    assert "SecurityGroupIngress" not in group
    assert [(r["FromPort"], r["ToPort"]) for r in group["SecurityGroupEgress"]] == [(443, 443)]


def test_fixed_egress_grants_what_lambda_needs_for_its_network_interfaces(template) -> None:
    (statement,) = [
        s for s in _policy_statements(template) if s.get("Fn::If", [""])[0] == "FixedEgress"
    ]
    _, granted, otherwise = statement["Fn::If"]
    assert otherwise == ref("AWS::NoValue")
    # AWSLambdaVPCAccessExecutionRole's EC2 actions (its logs actions are in the Logs statement)
    assert granted == {
        "Sid": "VpcNetworkInterfaces",
        "Effect": "Allow",
        "Action": [
            "ec2:AssignPrivateIpAddresses",
            "ec2:CreateNetworkInterface",
            "ec2:DeleteNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSubnets",
            "ec2:UnassignPrivateIpAddresses",
        ],
        "Resource": "*",
    }


# -- outputs and suppressions ---------------------------------------------------------------------


def test_outputs_give_the_url_and_secret_arns(template: Template) -> None:
    outputs = template["Outputs"]
    assert outputs["HttpApiId"]["Value"] == ref("HttpApi")
    assert outputs["HttpApiEndpoint"]["Value"] == getatt("HttpApi", "ApiEndpoint")
    assert outputs["WeChatSecretArn"]["Value"] == ref("WeChatSecret")
    assert outputs["SigningKeysSecretArn"]["Value"] == ref("SigningKeysSecret")
    assert outputs["TableName"]["Value"] == ref("AuthTable")
    assert outputs["DashboardName"]["Value"] == ref("Dashboard")


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


@pytest.mark.parametrize(
    "value",
    [
        "",
        "20/60",
        "1/1",
        "1000000/86400",
        "0/60",
        "20/0",
        "20",
        "20/60/1",
        " 20/60",
        "x/60",
        "1000001/60",
        "20/86401",
        "020/60",
    ],
)
@pytest.mark.parametrize(
    ("parameter", "variable"),
    [
        ("LoginLimitPerIp", "AUTH_LIMIT_LOGIN_PER_IP"),
        ("LoginLimitPerIpv6Prefix48", "AUTH_LIMIT_LOGIN_PER_IPV6_48"),
        ("LoginLimitPerOpenid", "AUTH_LIMIT_LOGIN_PER_OPENID"),
        ("RefreshLimitPerSession", "AUTH_LIMIT_REFRESH_PER_SESSION"),
    ],
)
def test_limit_parameters_are_off_by_default_and_allow_only_what_the_settings_accept(
    template: Template, parameter: str, variable: str, value: str
) -> None:
    """Where the pattern is stricter than the settings (a leading zero, a window the pattern's
    digit count allows but the settings refuse), the stack refuses it before the function does."""
    from chalicelib.errors import ConfigurationError

    definition = template["Parameters"][parameter]
    assert definition["Default"] == ""
    pattern = re.compile(definition["AllowedPattern"])
    try:
        Settings.from_env({variable: value})
        accepted = True
    except ConfigurationError:
        accepted = False
    if pattern.fullmatch(value):
        assert accepted, f"{parameter} allows {value!r}, which {variable} refuses"
    if value in ("", "20/60", "1/1", "1000000/86400"):
        assert pattern.fullmatch(value), f"{parameter} refuses {value!r}"


@pytest.mark.parametrize(
    "value", ["", "1", "5", "99", "100", "999", "1000", "0", "01", "1001", "-1", "5 ", "x"]
)
def test_the_session_cap_parameter_is_off_by_default_and_allows_what_the_settings_accept(
    template: Template, value: str
) -> None:
    from chalicelib.errors import ConfigurationError

    definition = template["Parameters"]["MaxSessionsPerUser"]
    assert definition["Default"] == ""
    try:
        Settings.from_env({"AUTH_MAX_SESSIONS_PER_USER": value})
        accepted = True
    except ConfigurationError:
        accepted = False
    if re.fullmatch(definition["AllowedPattern"], value):
        assert accepted, f"MaxSessionsPerUser allows {value!r}, which the settings refuse"
    if value in ("", "1", "5", "1000"):
        assert re.fullmatch(definition["AllowedPattern"], value)
    scope = template["Parameters"]["MaxSessionsScope"]
    assert scope["Default"] == "user" and scope["AllowedValues"] == ["user", "app"]


def test_role_reads_the_added_apps_secrets_only_when_listed(template: Template) -> None:
    """AppSecretArns (the secrets of `wxauth-admin app add --secret-arn` apps): exactly those
    ARNs, GetSecretValue only; empty, no statement at all."""
    (statement,) = [
        s for s in _policy_statements(template) if s.get("Fn::If", [""])[0] == "HasAppSecrets"
    ]
    _, secrets, otherwise = statement["Fn::If"]
    assert otherwise == ref("AWS::NoValue")
    assert secrets == {
        "Sid": "AppSecrets",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": {"Fn::Split": [",", ref("AppSecretArns")]},
    }
    parameter = template["Parameters"]["AppSecretArns"]
    assert parameter["Default"] == ""
    pattern = re.compile(parameter["AllowedPattern"])
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wxauth/app-b-AbCdEf"
    assert pattern.fullmatch("") and pattern.fullmatch(arn) and pattern.fullmatch(f"{arn},{arn}")
    for bad in (
        "*",
        f"{arn}, {arn}",
        f"{arn},",
        "arn:aws:secretsmanager:us-east-1:1:secret:x",
        arn.replace("secret:", "secret:*"),
    ):
        assert not pattern.fullmatch(bad), bad


# -- behind CloudFront (issue #22, item 4; docs/operators.md "The API") ----------------------------


def test_role_reads_the_origin_secret_only_when_one_is_given(template: Template) -> None:
    (statement,) = [
        s for s in _policy_statements(template) if s.get("Fn::If", [""])[0] == "HasOriginSecret"
    ]
    _, read, otherwise = statement["Fn::If"]
    assert otherwise == ref("AWS::NoValue")
    assert read == {
        "Sid": "OriginSecret",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": ref("OriginSecretArn"),
    }
    assert template["Conditions"]["HasOriginSecret"] == {
        "Fn::Not": [{"Fn::Equals": [ref("OriginSecretArn"), ""]}]
    }


def test_the_origin_secret_parameters_go_together_and_are_what_the_settings_accept(
    template: Template,
) -> None:
    from chalicelib.errors import ConfigurationError

    parameters = template["Parameters"]
    assert parameters["OriginSecretHeader"]["Default"] == parameters["OriginSecretArn"][
        "Default"] == ""  # fmt: skip
    for rule, given, needed in (
        ("OriginSecretHeaderNeedsItsSecret", "OriginSecretHeader", "OriginSecretArn"),
        ("OriginSecretNeedsItsHeader", "OriginSecretArn", "OriginSecretHeader"),
    ):
        definition = template["Rules"][rule]
        assert definition["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [ref(given), ""]}]}
        (assertion,) = definition["Assertions"]
        assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [ref(needed), ""]}]}
    header = re.compile(parameters["OriginSecretHeader"]["AllowedPattern"])
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wxauth/origin-AbCdEf"
    for name in ("X-Origin-Verify", "x-wxauth-origin", "a", "Host", "x origin", "-x", "x_y"):
        try:
            Settings.from_env({"AUTH_ORIGIN_SECRET_HEADER": name, "AUTH_ORIGIN_SECRET_ARN": arn})
            accepted = True
        except ConfigurationError:
            accepted = False
        if accepted:
            assert header.fullmatch(name), name
        if not header.fullmatch(name):
            assert not accepted, name
    # as the stack passes them when off: both empty
    off = Settings.from_env({"AUTH_ORIGIN_SECRET_HEADER": "", "AUTH_ORIGIN_SECRET_ARN": ""})
    assert off.origin_secret_header is None and off.origin_secret_arn is None


def test_the_execute_api_endpoint_can_be_turned_off_with_a_custom_domain_only(
    template: Template,
) -> None:
    parameter = template["Parameters"]["DisableExecuteApiEndpoint"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("false", ["false", "true"])
    assert template["Conditions"]["ExecuteApiDisabled"] == {
        "Fn::Equals": [ref("DisableExecuteApiEndpoint"), "true"]
    }
    rule = template["Rules"]["ExecuteApiOffNeedsDomain"]
    assert rule["RuleCondition"] == {"Fn::Equals": [ref("DisableExecuteApiEndpoint"), "true"]}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [ref("DomainName"), ""]}]}


# -- the aws-cn partition (cn-north-1, cn-northwest-1): docs/operators.md "Deploy in AWS China" ---

# Service principals are "<service>.amazonaws.com" in every partition, China's included: IAM
# refuses "<service>.amazonaws.com.cn" there as an invalid principal, and the SAM transform
# that CloudFormation runs in China writes codedeploy.amazonaws.com itself.
GLOBAL_PRINCIPAL = re.compile(r"[a-z0-9-]+\.amazonaws\.com")


def leaves(value: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """(path, string) of every string in a template value, Fn::Sub's text included."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in leaves(v, (*path, i))]
    return []


def is_principal(template: Template, path: tuple) -> bool:
    """A service principal: a policy's Principal.Service, or a Lambda permission's Principal."""
    if path[-2:] == ("Principal", "Service") or (len(path) > 2 and path[-3:-1] == (
            "Principal", "Service")):  # fmt: skip
        return True
    resource = template["Resources"].get(path[1]) if path[:1] == ("Resources",) else None
    return bool(resource) and resource["Type"] == "AWS::Lambda::Permission" and path[-1] == (
        "Principal")  # fmt: skip


def test_no_partition_or_domain_is_written_out_but_the_global_principals(template) -> None:
    principals = set()
    for path, text in leaves({k: v for k, v in template.items() if k != "Parameters"}):
        where = "/".join(map(str, path))
        assert "arn:aws:" not in text, f"{where}: an ARN with the aws partition: {text}"
        assert "amazonaws.com.cn" not in text, f"{where}: the China domain written out: {text}"
        if "amazonaws.com" in text:
            assert is_principal(template, path), f"{where}: a domain written out: {text}"
            assert GLOBAL_PRINCIPAL.fullmatch(text), f"{where}: {text}"
            principals.add(text)
        if text.startswith("arn:"):
            assert text.startswith("arn:${AWS::Partition}:"), f"{where}: {text}"
        if "execute-api." in text and text.startswith("https://"):
            assert text.endswith(".${AWS::URLSuffix}"), f"{where}: {text}"
    assert principals == {
        "lambda.amazonaws.com", "apigateway.amazonaws.com", "cloudwatch.amazonaws.com",
    }  # fmt: skip


def test_every_arn_parameter_accepts_the_china_partition(template: Template) -> None:
    examples = {
        "CertificateArn": "arn:aws-cn:acm:cn-north-1:123456789012:certificate/0123-abcd",
        "TokenHookArn": "arn:aws-cn:lambda:cn-northwest-1:123456789012:function:claims",
        "AppSecretArns": "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:app-b-AbCdEf",
        "OriginSecretArn": "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:origin-AbCd",
        "ComponentSecretArn": "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:cp-AbCd",
    }
    arn_parameters = {
        name for name, p in template["Parameters"].items() if "arn:" in p.get("AllowedPattern", "")
    }
    assert arn_parameters == set(examples)
    for name, arn in examples.items():
        pattern = re.compile(template["Parameters"][name]["AllowedPattern"])
        assert pattern.fullmatch(arn), name
        assert pattern.fullmatch(arn.replace("arn:aws-cn:", "arn:aws:")), name
        assert not pattern.fullmatch(arn.replace("arn:aws-cn:", "arn:cn:")), name


def test_snapstart_is_an_option_on_the_published_versions(template: Template) -> None:
    """SnapStart=On|Off (default Off): SnapStart on the published versions, which the `live`
    alias (AutoPublishAlias) is, and nothing at all when Off."""
    parameter = template["Parameters"]["SnapStart"]
    assert parameter["Default"] == "Off" and parameter["AllowedValues"] == ["On", "Off"]
    assert template["Conditions"]["SnapStartOn"] == {"Fn::Equals": [ref("SnapStart"), "On"]}
    function = props(template, "APIHandler")
    assert function["SnapStart"] == {
        "Fn::If": ["SnapStartOn", {"ApplyOn": "PublishedVersions"}, ref("AWS::NoValue")]
    }
    assert function["AutoPublishAlias"] == "live"
    assert function["Runtime"] in ("python3.12", "python3.13")  # SnapStart: Python 3.12 and later


def test_snapstart_reaches_each_function_and_each_alias_serves_a_version(
    expanded: Template,
) -> None:
    """Both functions (the API's and the login's, issue #21) take the option, each alias serving
    a published version of its own function; the deletion function (issue 25) has neither."""
    functions = of_type(expanded, "AWS::Lambda::Function")
    assert "SnapStart" not in props(expanded, "DeletionHandler")
    functions = {k: v for k, v in functions.items() if k != "DeletionHandler"}
    assert set(functions) == set(FUNCTIONS)
    for name in functions:
        assert props(expanded, name)["SnapStart"] == {
            "Fn::If": ["SnapStartOn", {"ApplyOn": "PublishedVersions"}, ref("AWS::NoValue")]
        }
    versions = {
        props(expanded, v)["FunctionName"]["Ref"]: v
        for v in of_type(expanded, "AWS::Lambda::Version")
    }
    assert set(versions) == set(functions)
    aliases = of_type(expanded, "AWS::Lambda::Alias")
    assert len(aliases) == 2
    for alias in aliases:
        function = props(expanded, alias)["FunctionName"]["Ref"]
        assert props(expanded, alias)["FunctionVersion"] == getatt(versions[function], "Version")


# -- the erasure of deleted users (issue 25) ----------------------------------------------------


def test_the_deletion_function_is_chalices_code_on_an_hourly_schedule(template: Template) -> None:
    """Same code, role and environment as APIHandler; its own handler (app.erase_due), log
    group and schedule; no alias, traffic shifting, SnapStart or reserved concurrency."""
    api, deletion = props(template, "APIHandler"), props(template, "DeletionHandler")
    own = {"Handler", "Timeout", "LoggingConfig", "Events"}
    assert set(deletion) == (set(api) - set(build_module.NOT_FOR_DELETION)) | own
    for name in set(deletion) - own:
        assert deletion[name] == api[name], name
    assert deletion["Handler"] == "app.erase_due" and deletion["Timeout"] == 900
    assert deletion["LoggingConfig"]["LogGroup"] == ref("DeletionFunctionLogGroup")
    (event,) = deletion["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == "rate(1 hour)"
    cooldown = template["Parameters"]["DeletionCooldown"]
    assert cooldown["Default"] == Settings().deletion_cooldown
    assert (cooldown["MinValue"], cooldown["MaxValue"]) == (0, 15 * 86_400)


def test_build_copies_the_deletion_function_all_but_the_apis_properties() -> None:
    template = {
        "Resources": {
            "APIHandler": {"Properties": {"Runtime": "python3.13", "AutoPublishAlias": "live"}},
            "DeletionHandler": {"Properties": {"Handler": "app.erase_due"}},
        }
    }
    build_module.complete_deletion_function(template)
    assert template["Resources"]["DeletionHandler"]["Properties"] == {
        "Handler": "app.erase_due",
        "Runtime": "python3.13",
    }
    with pytest.raises(build_module.BuildError, match="DeletionHandler"):
        build_module.complete_deletion_function({"Resources": {"APIHandler": {"Properties": {}}}})


# -- the third-party platform (issue 24, item 4; docs/operators.md "Third-party platform login") --

COMPONENT_APPID = "wx1234567890abcdef"
COMPONENT_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wxauth/component-AbCdEf"
NO_VALUE = object()


def _condition_values(template: Template, parameters: dict[str, str]) -> dict[str, bool]:
    """The template's Conditions for these parameters (the others at their defaults)."""
    values = {n: str(p.get("Default", "")) for n, p in template["Parameters"].items()}
    values.update(parameters)
    defined = template["Conditions"]

    def value(v: Any) -> Any:
        if isinstance(v, dict) and "Ref" in v:
            return values.get(v["Ref"], v["Ref"])
        if isinstance(v, dict) and "Condition" in v:
            return evaluate(defined[v["Condition"]])
        if isinstance(v, dict):
            return evaluate(v)
        return v

    def evaluate(expr: dict[str, Any]) -> bool:
        ((op, args),) = expr.items()
        if op == "Fn::Equals":
            return str(value(args[0])) == str(value(args[1]))
        if op == "Fn::Not":
            return not value(args[0])
        if op == "Fn::And":
            return all(value(a) for a in args)
        if op == "Fn::Or":
            return any(value(a) for a in args)
        raise AssertionError(f"condition function {op} is not evaluated here")

    return {name: evaluate(expr) for name, expr in defined.items()}


def _chosen(value: Any, conds: dict[str, bool], parameters: dict[str, str]) -> Any:
    """`value` with each Fn::If replaced by its branch, AWS::NoValue left out, and a Ref to one
    of `parameters` replaced by its value."""
    if isinstance(value, list):
        return [c for c in (_chosen(v, conds, parameters) for v in value) if c is not NO_VALUE]
    if isinstance(value, dict):
        if list(value) == ["Fn::If"]:
            name, yes, no = value["Fn::If"]
            return _chosen(yes if conds[name] else no, conds, parameters)
        if value == ref("AWS::NoValue"):
            return NO_VALUE
        if list(value) == ["Ref"] and value["Ref"] in parameters:
            return parameters[value["Ref"]]
        pairs = ((k, _chosen(v, conds, parameters)) for k, v in value.items())
        return {k: c for k, c in pairs if c is not NO_VALUE}
    return value


def _rules_failing(template: Template, parameters: dict[str, str]) -> list[str]:
    """The Rules whose assertion fails for these parameters, as CloudFormation evaluates them
    before it changes anything (their AssertDescription is the deploy's error)."""
    values = {n: str(p.get("Default", "")) for n, p in template["Parameters"].items()}
    values.update(parameters)

    def truth(expr: dict[str, Any]) -> bool:
        ((op, args),) = expr.items()
        if op == "Fn::Equals":
            left, right = (values[a["Ref"]] if isinstance(a, dict) else a for a in args)
            return str(left) == str(right)
        if op == "Fn::Not":
            return not truth(args[0])
        if op == "Fn::And":
            return all(truth(a) for a in args)
        if op == "Fn::Or":
            return any(truth(a) for a in args)
        raise AssertionError(f"rule function {op} is not evaluated here")

    failing = []
    for name, rule in template["Rules"].items():
        if "RuleCondition" in rule and not truth(rule["RuleCondition"]):
            continue
        if not all(truth(a["Assert"]) for a in rule["Assertions"]):
            failing.append(name)
    return failing


def _deployed(template: Template, parameters: dict[str, str]) -> tuple[dict, list[dict]]:
    """For these parameters: each function's environment and the role's statements."""
    conds = _condition_values(template, parameters)
    environments = {
        name: _chosen(props(template, name)["Environment"]["Variables"], conds, parameters)
        for name in (*FUNCTIONS, "DeletionHandler")
    }
    (policy,) = props(template, "APIHandlerRole")["Policies"]
    statements = _chosen(policy["PolicyDocument"]["Statement"], conds, parameters)
    return environments, statements


def test_the_platform_parameters_are_off_by_default_and_in_their_group(template: Template) -> None:
    parameters = template["Parameters"]
    assert parameters["ComponentAppId"]["Default"] == ""
    assert parameters["ComponentSecretArn"]["Default"] == ""
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    (group,) = [g for g in groups if "ComponentAppId" in g["Parameters"]]
    assert group["Parameters"] == ["ComponentAppId", "ComponentSecretArn"]
    assert template["Conditions"]["HasComponentPlatform"] == {
        "Fn::And": [
            {"Fn::Not": [{"Fn::Equals": [ref("ComponentAppId"), ""]}]},
            {"Fn::Not": [{"Fn::Equals": [ref("ComponentSecretArn"), ""]}]},
        ]
    }


def test_without_the_platform_no_function_has_its_settings_and_the_role_not_its_secret(
    template: Template,
) -> None:
    environments, statements = _deployed(template, {"WeChatAppId": "wx0123456789abcdef"})
    for name, variables in environments.items():
        assert not {"WECHAT_COMPONENT_APPID", "WECHAT_COMPONENT_SECRET_ARN"} & set(variables), name
        settings = Settings.from_env({k: str(v) for k, v in variables.items()
                                      if isinstance(v, str)})  # fmt: skip
        assert settings.component_appid is None and settings.component_secret_arn is None
    assert "ComponentSecret" not in {s["Sid"] for s in statements}
    assert _rules_failing(template, {"WeChatAppId": "wx0123456789abcdef"}) == []


def test_with_the_platform_every_function_has_its_settings_and_the_role_reads_exactly_its_secret(
    template: Template,
) -> None:
    """The API function (the ticket route), the login function (the component apps' logins)
    and the deletion function (the same code and settings) all get both settings; the role,
    which they share, may read that one secret and nothing more."""
    given = {
        "WeChatAppId": "wx0123456789abcdef",
        "ComponentAppId": COMPONENT_APPID,
        "ComponentSecretArn": COMPONENT_ARN,
    }
    environments, statements = _deployed(template, given)
    assert set(environments) == {"APIHandler", "LoginHandler", "DeletionHandler"}
    for name, variables in environments.items():
        assert variables["WECHAT_COMPONENT_APPID"] == COMPONENT_APPID, name
        assert variables["WECHAT_COMPONENT_SECRET_ARN"] == COMPONENT_ARN, name
        settings = Settings.from_env({k: v for k, v in variables.items() if isinstance(v, str)})
        assert settings.component_appid == COMPONENT_APPID
        assert settings.component_secret_arn == COMPONENT_ARN
    for function in (*FUNCTIONS, "DeletionHandler"):
        assert props(template, function)["Role"] == getatt("APIHandlerRole", "Arn")
    (statement,) = [s for s in statements if s["Sid"] == "ComponentSecret"]
    assert statement == {
        "Sid": "ComponentSecret",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": COMPONENT_ARN,
    }
    reads = [s for s in statements if "secretsmanager:GetSecretValue" in _as_list(s["Action"])]
    assert sorted(s["Sid"] for s in reads) == ["ComponentSecret", "Secrets"]
    assert _rules_failing(template, given) == []


@pytest.mark.parametrize(
    ("given", "rule"),
    [
        ({"ComponentAppId": COMPONENT_APPID}, "ComponentAppIdNeedsItsSecret"),
        ({"ComponentSecretArn": COMPONENT_ARN}, "ComponentSecretNeedsItsAppId"),
    ],
)
def test_one_platform_parameter_without_the_other_fails_the_deploy_clearly(
    template: Template, given: dict[str, str], rule: str
) -> None:
    assert _rules_failing(template, {"WeChatAppId": "wx0123456789abcdef", **given}) == [rule]
    (assertion,) = template["Rules"][rule]["Assertions"]
    other = ({"ComponentAppId", "ComponentSecretArn"} - set(given)).pop()
    assert assertion["AssertDescription"].startswith(f"{next(iter(given))} needs {other}")
    # and the settings refuse the same half-platform, should it reach a function at all
    from chalicelib.errors import ConfigurationError

    env = {"ComponentAppId": "WECHAT_COMPONENT_APPID",
           "ComponentSecretArn": "WECHAT_COMPONENT_SECRET_ARN"}  # fmt: skip
    with pytest.raises(ConfigurationError):
        Settings.from_env({env[k]: v for k, v in given.items()})


def test_the_platform_parameters_allow_what_the_settings_accept_and_no_wildcard(
    template: Template,
) -> None:
    from chalicelib.errors import ConfigurationError

    parameters = template["Parameters"]
    appid = re.compile(parameters["ComponentAppId"]["AllowedPattern"])
    for value in (COMPONENT_APPID, "a", "x" * 64, "x" * 65, "wx 1", "wx*", "wx/1", "wx.1"):
        try:
            Settings.from_env(
                {"WECHAT_COMPONENT_APPID": value, "WECHAT_COMPONENT_SECRET_ARN": COMPONENT_ARN}
            )
            accepted = True
        except ConfigurationError:
            accepted = False
        assert bool(appid.fullmatch(value)) == accepted, value
    assert appid.fullmatch("")
    arn = re.compile(parameters["ComponentSecretArn"]["AllowedPattern"])
    assert arn.fullmatch("") and arn.fullmatch(COMPONENT_ARN)
    for bad in (
        "*",
        COMPONENT_ARN.replace("secret:", "secret:*"),
        COMPONENT_ARN + "*",
        f"{COMPONENT_ARN},{COMPONENT_ARN}",
        "arn:aws:secretsmanager:us-east-1:1:secret:x",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
    ):
        assert not arn.fullmatch(bad), bad
