"""infra/deploy.sh and infra/put-secrets.sh against a fake `aws` command that records every call
and keeps a little state (the stack, buckets, secret values): what reaches CloudFormation, and
that no secret value ever appears on a command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import ROOT

ACCOUNT = "123456789012"
REGION = "ap-southeast-1"
STACK = "wxauth-test"
APPID = "wx0123456789abcdef"
APP_SECRET = "0123456789abcdef0123456789abcdef"
API_URL = f"https://abc123.execute-api.{REGION}.amazonaws.com"
WECHAT_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:WeChatSecret-abc"
KEYS_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:SigningKeysSecret-def"
TEMPLATE_DEFAULTS = {"DomainName": "", "AccessTokenTtl": "1800", "ThrottlingRateLimit": "50"}

FAKE_AWS = r"""
import json, os, re, shutil, sys

args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
with open(os.environ["FAKE_AWS_STATE"]) as f:
    state = json.load(f)


def opt(name):
    return args[args.index(name) + 1] if name in args else None


def save():
    with open(os.environ["FAKE_AWS_STATE"], "w") as f:
        json.dump(state, f)


def fail(message, code=255):
    sys.stderr.write(message + "\n")
    sys.exit(code)


command = tuple(args[:2])
stack = state["stack"]
if command == ("sts", "get-caller-identity"):
    print(state["account"])
elif command == ("s3api", "head-bucket"):
    if opt("--bucket") not in state["buckets"]:
        fail("An error occurred (404) when calling the HeadBucket operation: Not Found", 254)
elif command == ("s3api", "create-bucket"):
    state["buckets"].append(opt("--bucket"))
    save()
    print("{}")
elif command == ("s3api", "put-public-access-block"):
    state["private_buckets"].append(opt("--bucket"))
    save()
elif command == ("cloudformation", "package"):
    shutil.copy(opt("--template-file"), opt("--output-template-file"))
elif command == ("cloudformation", "describe-stacks"):
    if stack is None:
        fail("An error occurred (ValidationError): Stack with id %s does not exist" % args[3])
    query = opt("--query")
    if "StackStatus" in query:
        print(stack["status"])
    elif (m := re.search(r"OutputKey=='(\w+)'", query)):
        print(stack["outputs"].get(m.group(1), "None"))
    elif (m := re.search(r"ParameterKey=='(\w+)'", query)):
        print(stack["parameters"].get(m.group(1), "None"))
    else:
        fail("fake aws: unexpected query " + query)
elif command == ("cloudformation", "deploy"):
    overrides = []
    if "--parameter-overrides" in args:
        for arg in args[args.index("--parameter-overrides") + 1:]:
            if arg.startswith("--"):
                break
            overrides.append(arg)
    parameters = dict(stack["parameters"] if stack else state["defaults"])
    parameters.update(arg.split("=", 1) for arg in overrides)
    outputs = state["outputs"]
    state["stack"] = {"status": "UPDATE_COMPLETE", "parameters": parameters, "outputs": outputs}
    state["deploys"].append(args)
    save()
elif command == ("secretsmanager", "describe-secret"):
    arn = opt("--secret-id")
    description = {"ARN": arn, "Name": arn.rsplit(":", 1)[1]}
    if arn in state["secrets"]:
        description["VersionIdsToStages"] = {"v1": ["AWSCURRENT"]}
    print(json.dumps(description, indent=4))
elif command == ("secretsmanager", "put-secret-value"):
    if opt("--secret-string") != "file:///dev/stdin":
        fail("fake aws: a secret value passed on the command line")
    state["secrets"][opt("--secret-id")] = sys.stdin.read()
    save()
    print("v2")
elif command == ("secretsmanager", "get-secret-value"):
    print(state["secrets"][opt("--secret-id")])
else:
    fail("fake aws: unexpected command %r" % (args,))
"""


class FakeAws:
    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        script = self.bin / "aws"
        script.write_text(f"#!{sys.executable}\n{FAKE_AWS}")
        script.chmod(0o755)
        self.log = root / "aws-calls.jsonl"
        self.log.touch()
        self.state_path = root / "aws-state.json"
        self.state: dict[str, Any] = {
            "account": ACCOUNT,
            "stack": None,
            "buckets": [],
            "private_buckets": [],
            "secrets": {},
            "deploys": [],
            "defaults": TEMPLATE_DEFAULTS,
            "outputs": {
                "ApiUrl": API_URL,
                "WeChatSecretArn": WECHAT_ARN,
                "SigningKeysSecretArn": KEYS_ARN,
                "AlarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms",
            },
        }
        self.save()

    def save(self) -> None:
        self.state_path.write_text(json.dumps(self.state))

    def load(self) -> dict[str, Any]:
        self.state = json.loads(self.state_path.read_text())
        return self.state

    def existing_stack(self, status: str = "UPDATE_COMPLETE", **parameters: str) -> None:
        self.state["stack"] = {
            "status": status,
            "parameters": {**TEMPLATE_DEFAULTS, "WeChatAppId": APPID, **parameters},
            "outputs": self.state["outputs"],
        }
        self.save()

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def aws(tmp_path: Path) -> FakeAws:
    return FakeAws(tmp_path)


@pytest.fixture
def env(aws: FakeAws, tmp_path: Path, build_dir: Path) -> dict[str, str]:
    out = tmp_path / "build"
    out.mkdir()
    for name in ("sam.yaml", "deployment.zip"):
        shutil.copy(build_dir / name, out / name)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WXAUTH_"))}
    for name in ("WECHAT_APPID", "AUTH_ISSUER", "AUTH_ACCESS_TTL", "AUTH_AUDIENCE"):
        environ.pop(name, None)
    environ.update(
        PATH=f"{aws.bin}{os.pathsep}{environ['PATH']}",
        AWS_REGION=REGION,
        WXAUTH_STACK_NAME=STACK,
        WXAUTH_SKIP_BUILD="1",
        WXAUTH_BUILD_DIR=str(out),
        WXAUTH_PYTHON=sys.executable,
        FAKE_AWS_LOG=str(aws.log),
        FAKE_AWS_STATE=str(aws.state_path),
    )
    return environ


def run(script: str, env: dict[str, str], *args: str, stdin: str | None = None):
    return subprocess.run(  # noqa: S603 - the project's own scripts
        ["bash", str(ROOT / "infra" / script), *args],
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def new_keyset(env: dict[str, str]) -> str:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "chalicelib.signing_keys", "new-keyset"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def assert_no_secret_on_a_command_line(aws: FakeAws) -> None:
    for call in aws.calls():
        text = " ".join(call)
        assert APP_SECRET not in text
        assert "PRIVATE KEY" not in text
        assert "private_key_pem" not in text


def test_first_deploy_creates_the_stack_and_both_secrets_in_one_deploy(aws, env) -> None:
    env["WECHAT_APPID"] = APPID
    result = run("deploy.sh", env, stdin=APP_SECRET + "\n")
    assert result.returncode == 0, result.stderr
    state = aws.load()

    bucket = f"wxauth-artifacts-{ACCOUNT}-{REGION}"
    assert state["buckets"] == [bucket]
    assert state["private_buckets"] == [bucket]
    # The template sets the issuer (the custom domain's URL or the API's): no second deploy.
    (deploy,) = state["deploys"]
    assert deploy[deploy.index("--stack-name") + 1] == STACK
    assert deploy[deploy.index("--template-file") + 1].endswith("packaged.yaml")
    assert deploy[deploy.index("--s3-bucket") + 1] == bucket
    capabilities = deploy[deploy.index("--capabilities") + 1 :][:3]
    assert capabilities == ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
    assert "--no-fail-on-empty-changeset" in deploy
    assert deploy[deploy.index("--parameter-overrides") + 1 :] == [f"WeChatAppId={APPID}"]

    assert state["secrets"][WECHAT_ARN] == APP_SECRET
    keyset = json.loads(state["secrets"][KEYS_ARN])
    assert keyset["active_kid"] in [key["kid"] for key in keyset["keys"]]
    assert_no_secret_on_a_command_line(aws)
    assert APP_SECRET not in result.stdout + result.stderr
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    assert f"curl -s {API_URL}/.well-known/openid-configuration" in result.stdout


def test_first_deploy_without_the_app_secret_says_how_to_set_it(aws, env) -> None:
    env["WECHAT_APPID"] = APPID
    result = run("deploy.sh", env)
    assert result.returncode != 0
    assert "infra/put-secrets.sh wechat-secret" in result.stderr
    state = aws.load()
    assert WECHAT_ARN not in state["secrets"]
    assert KEYS_ARN in state["secrets"]  # the signing keys need no input


def test_first_deploy_needs_an_appid_and_a_region(aws, env) -> None:
    result = run("deploy.sh", env)
    assert result.returncode == 1
    assert "WECHAT_APPID" in result.stderr
    del env["AWS_REGION"]
    result = run("deploy.sh", env)
    assert result.returncode == 1
    assert "AWS_REGION" in result.stderr
    assert aws.load()["deploys"] == []


def test_redeploy_passes_only_what_is_set_and_keeps_the_rest(aws, env) -> None:
    aws.existing_stack(DomainName="auth.example.com")
    aws.state["buckets"] = [f"wxauth-artifacts-{ACCOUNT}-{REGION}"]
    aws.state["secrets"] = {WECHAT_ARN: APP_SECRET, KEYS_ARN: new_keyset(env)}
    aws.save()
    env.update(
        AUTH_ACCESS_TTL="900",
        WXAUTH_THROTTLE_RATE="20",
        WXAUTH_LOGIN_THROTTLE_RATE="2",
        WXAUTH_RESERVED_CONCURRENCY="0",
        WXAUTH_DEPLOYMENT_PREFERENCE="AllAtOnce",
        WXAUTH_TRACING="Active",
    )
    result = run("deploy.sh", env)
    assert result.returncode == 0, result.stderr
    state = aws.load()
    (deploy,) = state["deploys"]
    assert deploy[deploy.index("--parameter-overrides") + 1 :] == [
        "AccessTokenTtl=900",
        "ThrottlingRateLimit=20",
        "LoginThrottlingRateLimit=2",
        "ReservedConcurrency=0",
        "DeploymentPreferenceType=AllAtOnce",
        "Tracing=Active",
    ]
    assert state["stack"]["parameters"]["DomainName"] == "auth.example.com"
    assert state["private_buckets"] == []  # the bucket existed
    assert not any(call[:2] == ["secretsmanager", "put-secret-value"] for call in aws.calls())


def test_the_launch_capacity_parameters_are_passed(aws, env) -> None:
    """docs/operators.md, "Capacity and launch checklist": the login function's concurrency, the
    launch window's provisioned concurrency and the table's warm throughput."""
    aws.existing_stack()
    aws.state["buckets"] = [f"wxauth-artifacts-{ACCOUNT}-{REGION}"]
    aws.state["secrets"] = {WECHAT_ARN: APP_SECRET, KEYS_ARN: new_keyset(env)}
    aws.save()
    env.update(
        WXAUTH_LOGIN_RESERVED_CONCURRENCY="3000",
        WXAUTH_LAUNCH_CONCURRENCY_LOGIN="2500",
        WXAUTH_LAUNCH_CONCURRENCY_API="800",
        WXAUTH_LAUNCH_WINDOW_START="at(2026-06-18T11:30:00)",
        WXAUTH_LAUNCH_WINDOW_END="at(2026-06-18T15:00:00)",
        WXAUTH_TABLE_WARM_READ_UNITS="60000",
        WXAUTH_TABLE_WARM_WRITE_UNITS="240000",
    )
    result = run("deploy.sh", env)
    assert result.returncode == 0, result.stderr
    (deploy,) = aws.load()["deploys"]
    assert deploy[deploy.index("--parameter-overrides") + 1 :] == [
        "LoginReservedConcurrency=3000",
        "LaunchConcurrencyLogin=2500",
        "LaunchConcurrencyApi=800",
        "LaunchWindowStart=at(2026-06-18T11:30:00)",
        "LaunchWindowEnd=at(2026-06-18T15:00:00)",
        "TableWarmReadUnits=60000",
        "TableWarmWriteUnits=240000",
    ]


def test_a_custom_domain_is_passed_with_its_certificate(aws, env) -> None:
    env.update(
        WECHAT_APPID=APPID,
        WXAUTH_DOMAIN_NAME="auth.example.com",
        WXAUTH_CERTIFICATE_ARN=f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0123-abcd",
    )
    aws.state["outputs"].update(
        ApiUrl="https://auth.example.com",
        CustomDomainTarget=f"d-abc.execute-api.{REGION}.amazonaws.com",
        HttpApiEndpoint=f"https://abc123.execute-api.{REGION}.amazonaws.com",
    )
    aws.save()
    result = run("deploy.sh", env, stdin=APP_SECRET + "\n")
    assert result.returncode == 0, result.stderr
    (deploy,) = aws.load()["deploys"]
    assert deploy[deploy.index("--parameter-overrides") + 1 :] == [
        f"WeChatAppId={APPID}",
        "DomainName=auth.example.com",
        f"CertificateArn=arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0123-abcd",
    ]
    assert f"auth.example.com (CNAME) at d-abc.execute-api.{REGION}.amazonaws.com" in result.stdout
    assert "curl -s https://auth.example.com/.well-known/openid-configuration" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTH_ISSUER", "https://auth.example.com"),
        ("WXAUTH_STAGE", "api"),
        ("WXAUTH_MANAGE_APIGW_ACCOUNT", "false"),
    ],
)
def test_variables_of_removed_parameters_are_refused(aws, env, variable, value) -> None:
    aws.existing_stack()
    env[variable] = value
    result = run("deploy.sh", env)
    assert result.returncode == 1
    assert f"{variable} is no longer a parameter" in result.stderr
    assert aws.load()["deploys"] == []


def test_a_given_artifact_bucket_must_exist_and_be_ours(aws, env) -> None:
    aws.existing_stack()
    env["WXAUTH_ARTIFACT_BUCKET"] = "someone-elses-bucket"
    result = run("deploy.sh", env)
    assert result.returncode == 1
    assert "not owned by account" in result.stderr
    head = next(c for c in aws.calls() if c[:2] == ["s3api", "head-bucket"])
    assert head[head.index("--expected-bucket-owner") + 1] == ACCOUNT
    assert aws.load()["buckets"] == []


def test_deploy_refuses_a_stack_that_failed_to_create(aws, env) -> None:
    aws.existing_stack(status="ROLLBACK_COMPLETE")
    result = run("deploy.sh", env)
    assert result.returncode == 1
    assert "aws cloudformation delete-stack --stack-name wxauth-test" in result.stderr
    assert aws.load()["deploys"] == []


def test_wechat_secret_is_read_from_stdin(aws, env) -> None:
    aws.existing_stack()
    result = run("put-secrets.sh", env, "wechat-secret", stdin=APP_SECRET + "\n")
    assert result.returncode == 0, result.stderr
    assert aws.load()["secrets"][WECHAT_ARN] == APP_SECRET
    assert APP_SECRET not in result.stdout + result.stderr
    assert_no_secret_on_a_command_line(aws)


@pytest.mark.parametrize("value", ["", "two words"])
def test_wechat_secret_rejects_empty_or_odd_input(aws, env, value: str) -> None:
    aws.existing_stack()
    result = run("put-secrets.sh", env, "wechat-secret", stdin=value)
    assert result.returncode == 1
    assert aws.load()["secrets"] == {}


def test_init_signing_keys_never_overwrites_a_key_set(aws, env) -> None:
    aws.existing_stack()
    aws.state["secrets"] = {KEYS_ARN: "existing"}
    aws.save()
    result = run("put-secrets.sh", env, "init-signing-keys")
    assert result.returncode == 1
    assert "rotate-signing-key" in result.stderr
    assert aws.load()["secrets"][KEYS_ARN] == "existing"


def test_rotate_adds_a_new_active_key_and_keeps_the_old_one(aws, env) -> None:
    aws.existing_stack()
    current = json.loads(new_keyset(env))
    aws.state["secrets"] = {KEYS_ARN: json.dumps(current)}
    aws.save()
    result = run("put-secrets.sh", env, "rotate-signing-key")
    assert result.returncode == 0, result.stderr
    rotated = json.loads(aws.load()["secrets"][KEYS_ARN])
    kids = [key["kid"] for key in rotated["keys"]]
    assert current["active_kid"] in kids
    assert rotated["active_kid"] != current["active_kid"]
    assert rotated["active_kid"] in kids
    assert f"active kid {rotated['active_kid']}" in result.stdout
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    assert_no_secret_on_a_command_line(aws)


def test_status_tells_which_secrets_are_set_without_reading_them(aws, env) -> None:
    aws.existing_stack()
    aws.state["secrets"] = {KEYS_ARN: "set"}
    aws.save()
    result = run("put-secrets.sh", env, "status")
    assert result.returncode == 0, result.stderr
    assert f"WeChatSecretArn: EMPTY ({WECHAT_ARN})" in result.stdout
    assert f"SigningKeysSecretArn: set ({KEYS_ARN})" in result.stdout
    assert not any(call[:2] == ["secretsmanager", "get-secret-value"] for call in aws.calls())


# -- WeChat's access point and AWS China (docs/operators.md "Deploy in AWS China") ------------

WECHAT_ACCESS_POINTS = [
    "https://api.weixin.qq.com",
    "https://api2.weixin.qq.com",
    "https://sh.api.weixin.qq.com",
    "https://sz.api.weixin.qq.com",
    "https://hk.api.weixin.qq.com",
]


@pytest.mark.parametrize("base", WECHAT_ACCESS_POINTS)
def test_wechat_api_base_is_passed_as_the_stack_parameter(aws, env, base: str) -> None:
    aws.existing_stack()
    aws.state["buckets"] = [f"wxauth-artifacts-{ACCOUNT}-{REGION}"]
    aws.state["secrets"] = {WECHAT_ARN: APP_SECRET, KEYS_ARN: new_keyset(env)}
    aws.save()
    env["WECHAT_API_BASE"] = base
    result = run("deploy.sh", env)
    assert result.returncode == 0, result.stderr
    state = aws.load()
    (deploy,) = state["deploys"]
    assert deploy[deploy.index("--parameter-overrides") + 1 :] == [f"WeChatApiBase={base}"]
    assert state["stack"]["parameters"]["WeChatApiBase"] == base


def test_the_deploy_script_passes_the_access_points_the_template_allows(template) -> None:
    allowed = template["Parameters"]["WeChatApiBase"]["AllowedValues"]
    assert allowed == WECHAT_ACCESS_POINTS
    script = (ROOT / "infra" / "deploy.sh").read_text()
    assert "WeChatApiBase=WECHAT_API_BASE" in script
    for base in allowed:
        assert base in script


@pytest.mark.parametrize(
    "base", ["http://127.0.0.1:9000", "https://api.weixin.qq.com/", "https://example.com"]
)
def test_a_wechat_api_base_that_is_no_access_point_is_refused_before_anything(
    aws, env, base: str
) -> None:
    aws.existing_stack()
    env["WECHAT_API_BASE"] = base  # e.g. the local server's fake WeChat, left in the shell
    result = run("deploy.sh", env)
    assert result.returncode == 1
    assert "is not one of WeChat's access points" in result.stderr
    assert aws.calls() == []  # not even a describe-stacks
    assert aws.load()["deploys"] == []


def test_first_deploy_in_aws_china(aws, env) -> None:
    region = "cn-northwest-1"
    api_url = f"https://abc123.execute-api.{region}.amazonaws.com.cn"
    aws.state["outputs"]["ApiUrl"] = api_url
    aws.save()
    env.update(
        AWS_REGION=region, WECHAT_APPID=APPID, WECHAT_API_BASE="https://sh.api.weixin.qq.com"
    )
    result = run("deploy.sh", env, stdin=APP_SECRET + "\n")
    assert result.returncode == 0, result.stderr
    state = aws.load()
    bucket = f"wxauth-artifacts-{ACCOUNT}-{region}"
    assert state["buckets"] == [bucket] and state["private_buckets"] == [bucket]
    create = next(c for c in aws.calls() if c[:2] == ["s3api", "create-bucket"])
    assert create[create.index("--create-bucket-configuration") + 1] == (
        f"LocationConstraint={region}"
    )
    (deploy,) = state["deploys"]
    assert deploy[deploy.index("--parameter-overrides") + 1 :] == [
        f"WeChatAppId={APPID}",
        "WeChatApiBase=https://sh.api.weixin.qq.com",
    ]
    assert f"curl -s {api_url}/.well-known/openid-configuration" in result.stdout
    assert "ICP" in result.stdout and "403" in result.stdout
    assert state["secrets"][WECHAT_ARN] == APP_SECRET
    assert_no_secret_on_a_command_line(aws)


def test_outside_china_the_icp_note_is_not_printed(aws, env) -> None:
    env["WECHAT_APPID"] = APPID
    result = run("deploy.sh", env, stdin=APP_SECRET + "\n")
    assert result.returncode == 0, result.stderr
    assert "ICP" not in result.stdout


@pytest.mark.parametrize("region", ["cn-north-1", "cn-northwest-1"])
def test_snapstart_is_refused_in_china(aws, env, region: str) -> None:
    aws.existing_stack()
    env.update(AWS_REGION=region, WXAUTH_SNAPSTART="On")
    result = run("deploy.sh", env)
    assert result.returncode == 1
    assert "SnapStart for Python is not available in the China regions" in (
        result.stderr.replace("\\\n", "")
    )
    assert aws.load()["deploys"] == []


def test_snapstart_is_passed_elsewhere(aws, env) -> None:
    aws.existing_stack()
    aws.state["buckets"] = [f"wxauth-artifacts-{ACCOUNT}-{REGION}"]
    aws.state["secrets"] = {WECHAT_ARN: APP_SECRET, KEYS_ARN: new_keyset(env)}
    aws.save()
    env.update(WXAUTH_SNAPSTART="On")
    result = run("deploy.sh", env)
    assert result.returncode == 0, result.stderr
    (deploy,) = aws.load()["deploys"]
    assert deploy[deploy.index("--parameter-overrides") + 1 :] == ["SnapStart=On"]


@pytest.mark.parametrize("region", ["cn-north-1", "cn-northwest-1"])
def test_x_ray_tracing_is_refused_in_china(aws, env, region: str) -> None:
    aws.existing_stack()
    env.update(AWS_REGION=region, WXAUTH_TRACING="Active")
    result = run("deploy.sh", env)
    assert result.returncode == 1
    assert "X-Ray integration with Lambda is not available in the China regions" in (
        result.stderr.replace("\\\n", "")
    )
    assert aws.load()["deploys"] == []


def test_behind_cloudfront_the_origin_secret_and_the_execute_api_switch_are_passed(
    aws, env
) -> None:
    """Issue #22, item 4: the variables of the CloudFront parameters reach the stack."""
    aws.existing_stack(DomainName="auth.example.com")
    aws.state["buckets"] = [f"wxauth-artifacts-{ACCOUNT}-{REGION}"]
    aws.state["secrets"] = {WECHAT_ARN: APP_SECRET, KEYS_ARN: new_keyset(env)}
    aws.save()
    origin = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:wxauth/origin-AbCdEf"
    env.update(
        AUTH_LIMIT_LOGIN_PER_IPV6_48="200/60",
        WXAUTH_ORIGIN_SECRET_HEADER="X-Origin-Verify",
        WXAUTH_ORIGIN_SECRET_ARN=origin,
        WXAUTH_DISABLE_EXECUTE_API="true",
    )
    result = run("deploy.sh", env)
    assert result.returncode == 0, result.stderr
    (deploy,) = aws.load()["deploys"]
    assert deploy[deploy.index("--parameter-overrides") + 1 :] == [
        "LoginLimitPerIpv6Prefix48=200/60",
        "OriginSecretHeader=X-Origin-Verify",
        f"OriginSecretArn={origin}",
        "DisableExecuteApiEndpoint=true",
    ]


# -- the third-party platform (issue 24, item 4; docs/operators.md "Third-party platform login") --

COMPONENT_APPID = "wx1234567890abcdef"
COMPONENT_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:wxauth/component-AbCdEf"
COMPONENT_SECRET = "fedcba9876543210fedcba9876543210"
COMPONENT_TOKEN = "component-message-token"
COMPONENT_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 letters and digits


def component_values(env: dict[str, str]) -> None:
    env.update(
        WECHAT_COMPONENT_SECRET=COMPONENT_SECRET,
        WECHAT_COMPONENT_TOKEN=COMPONENT_TOKEN,
        WECHAT_COMPONENT_AES_KEY=COMPONENT_AES_KEY,
    )


def assert_no_component_value_shown(aws: FakeAws, result) -> None:
    for value in (COMPONENT_SECRET, COMPONENT_TOKEN, COMPONENT_AES_KEY):
        assert value not in result.stdout + result.stderr
        for call in aws.calls():
            assert value not in " ".join(call)


def test_the_platform_parameters_are_passed_and_its_secret_put_from_the_environment(
    aws, env
) -> None:
    aws.existing_stack()
    aws.state["buckets"] = [f"wxauth-artifacts-{ACCOUNT}-{REGION}"]
    aws.state["secrets"] = {WECHAT_ARN: APP_SECRET, KEYS_ARN: new_keyset(env)}
    aws.save()
    env.update(WXAUTH_COMPONENT_APPID=COMPONENT_APPID, WXAUTH_COMPONENT_SECRET_ARN=COMPONENT_ARN)
    component_values(env)
    result = run("deploy.sh", env)
    assert result.returncode == 0, result.stderr
    state = aws.load()
    (deploy,) = state["deploys"]
    assert deploy[deploy.index("--parameter-overrides") + 1 :] == [
        f"ComponentAppId={COMPONENT_APPID}",
        f"ComponentSecretArn={COMPONENT_ARN}",
    ]
    # ensure: the stack now has a platform whose secret was empty
    assert json.loads(state["secrets"][COMPONENT_ARN]) == {
        "secret": COMPONENT_SECRET,
        "token": COMPONENT_TOKEN,
        "encoding_aes_key": COMPONENT_AES_KEY,
    }
    assert_no_component_value_shown(aws, result)
    assert_no_secret_on_a_command_line(aws)


def test_a_deploy_with_a_platform_but_no_values_says_how_to_put_its_secret(aws, env) -> None:
    aws.existing_stack(ComponentAppId=COMPONENT_APPID, ComponentSecretArn=COMPONENT_ARN)
    aws.state["buckets"] = [f"wxauth-artifacts-{ACCOUNT}-{REGION}"]
    aws.state["secrets"] = {WECHAT_ARN: APP_SECRET, KEYS_ARN: new_keyset(env)}
    aws.save()
    result = run("deploy.sh", env)
    assert result.returncode != 0
    assert "set WECHAT_COMPONENT_SECRET" in result.stderr
    assert "infra/put-secrets.sh component-secret" in result.stderr
    assert COMPONENT_ARN not in aws.load()["secrets"]


def test_without_a_platform_nothing_is_asked_for_it(aws, env) -> None:
    aws.existing_stack()
    aws.state["buckets"] = [f"wxauth-artifacts-{ACCOUNT}-{REGION}"]
    aws.state["secrets"] = {WECHAT_ARN: APP_SECRET, KEYS_ARN: new_keyset(env)}
    aws.save()
    result = run("deploy.sh", env)
    assert result.returncode == 0, result.stderr
    assert "--parameter-overrides" not in aws.load()["deploys"][0]
    status = run("put-secrets.sh", env, "status")
    assert status.returncode == 0, status.stderr
    assert "ComponentSecretArn" not in status.stdout
    result = run("put-secrets.sh", env, "component-secret")
    assert result.returncode == 1
    assert "has no third-party platform" in result.stderr
    assert "WXAUTH_COMPONENT_APPID and WXAUTH_COMPONENT_SECRET_ARN" in result.stderr


def test_component_secret_is_checked_before_it_is_put_and_never_shown(aws, env) -> None:
    aws.existing_stack(ComponentAppId=COMPONENT_APPID, ComponentSecretArn=COMPONENT_ARN)
    component_values(env)
    env["WECHAT_COMPONENT_AES_KEY"] = COMPONENT_AES_KEY[:-1]  # 42 characters
    result = run("put-secrets.sh", env, "component-secret")
    assert result.returncode == 1
    assert "EncodingAESKey must be 43 letters and digits" in result.stderr
    assert not any(call[:2] == ["secretsmanager", "put-secret-value"] for call in aws.calls())
    del env["WECHAT_COMPONENT_TOKEN"]
    result = run("put-secrets.sh", env, "component-secret")
    assert result.returncode == 1
    assert "set WECHAT_COMPONENT_TOKEN" in result.stderr
    component_values(env)
    status = run("put-secrets.sh", env, "status")
    assert f"ComponentSecretArn: EMPTY ({COMPONENT_ARN})" in status.stdout
    result = run("put-secrets.sh", env, "component-secret")
    assert result.returncode == 0, result.stderr
    assert f"stored in {COMPONENT_ARN}" in result.stdout
    assert json.loads(aws.load()["secrets"][COMPONENT_ARN])["secret"] == COMPONENT_SECRET
    status = run("put-secrets.sh", env, "status")
    assert f"ComponentSecretArn: set ({COMPONENT_ARN})" in status.stdout
    assert_no_component_value_shown(aws, result)
    assert_no_component_value_shown(aws, status)


def test_the_deploy_script_maps_every_platform_parameter_of_the_template(template) -> None:
    script = (ROOT / "infra" / "deploy.sh").read_text()
    for parameter, variable in (
        ("ComponentAppId", "WXAUTH_COMPONENT_APPID"),
        ("ComponentSecretArn", "WXAUTH_COMPONENT_SECRET_ARN"),
    ):
        assert parameter in template["Parameters"]
        assert f"  {parameter}={variable}\n" in script
        assert f"#   {variable} " in script  # documented in its header
