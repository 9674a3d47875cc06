"""The deploy, simulated end to end on this machine (issue 12, item 5).

1. The built template (infra/build.py: sam.yaml + deployment.zip, built once per session) is
   expanded into plain CloudFormation (infra/expand_sam.py) and created as a stack on a moto
   server on loopback, the zip uploaded to its S3 as `aws cloudformation package` would. The
   stack's table, function, role and API are checked against the template. Where moto cannot
   create a resource type, MOTO_UNSUPPORTED / MOTO_FAILS / MOTO_DROPS below say which, are
   asserted to be exactly moto's gaps (so this notices when moto grows), and those resources
   are checked from the template instead.
2. The unzipped package then runs in a fresh interpreter of the template's Lambda runtime with
   only boto3/botocore beside it (as the runtime provides them), with the environment the stack
   gave the function: its table on the moto server, its two secrets in moto's Secrets Manager,
   WeChat faked on loopback. login -> /me -> refresh -> verify -> logout are driven through the
   handler with API Gateway HTTP API payload-1.0 events.

Both run for each region of REGIONS: us-east-1, and cn-north-1 (Beijing), whose partition is
aws-cn (docs/operators.md, "Deploy in AWS China"): there every ARN of the stack, the endpoints
the template builds and the SAM transform's own ARNs must be China's.

What this cannot prove: IAM's evaluation of the policies, API Gateway itself (routing,
throttling, the payload conversion), and a binary built for another CPU (an arm64 package runs
here as its x86_64 twin). See docs/contributors.md, "Testing".
"""

from __future__ import annotations

import ast
import base64
import importlib.metadata
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from chalicelib import store
from chalicelib.signing_keys import KeySet
from devserver.fake_wechat import FakeWeChat
from tests.events import http_api_v1_event
from tests.infra import lambda_runtime
from tests.infra.conftest import INFRA_PYTHON, ROOT, build_module

# == Targets (issue 12) =========================================================================
# The stack's and the template's values are compared with each other everywhere; these say
# what the template must target: Lambda's python3.13 (Amazon Linux 2023) on Graviton.
EXPECTED_RUNTIME = "python3.13"
EXPECTED_ARCH = "arm64"
# ===============================================================================================

# == moto 5.2.5's CloudFormation, as found ======================================================
# Types moto's CloudFormation does not implement: it creates the stack without them (logging
# "No Moto CloudFormation support for ..."), and a Ref or GetAtt to one resolves to nothing,
# so that an environment variable bound to one is left out of the function. Those present in
# the template must be exactly the template's unsupported types; every one listed must still be
# unknown to moto. The HTTP API, gradual-deploy and dashboard types are listed ahead of the
# templates that will use them.
MOTO_UNSUPPORTED = {
    "AWS::SecretsManager::Secret",
    "AWS::CloudWatch::Alarm",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::ApiGateway::Account",
    "AWS::ApiGateway::Stage",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::Lambda::Alias",
    "AWS::CodeDeploy::Application",
    "AWS::CodeDeploy::DeploymentGroup",
    "AWS::Logs::MetricFilter",
    # The launch's scheduled provisioned concurrency (off by default; checked from the template
    # in tests/infra/test_template.py).
    "AWS::ApplicationAutoScaling::ScalableTarget",
}
# Types moto implements but cannot create from these templates: the stack fails on them, so
# they (and whatever refers to them) are left out of the stack, once a scratch stack with them
# has been seen to fail (with this message, where moto gives one). type -> (the property that
# makes it fail when it refers to a resource moto does not create, or None: always; message).
MOTO_FAILS: dict[str, tuple[str | None, str | None]] = {
    # moto's AWS::ApiGateway::RestApi ignores `Body` (the OpenAPI definition holding every
    # route), so the API has no methods and its deployment is refused ("The REST API doesn't
    # contain any methods").
    "AWS::ApiGateway::Deployment": (None, "contain any methods"),
    # A permission on the function's alias (AutoPublishAlias): moto creates no alias, so
    # FunctionName resolves to nothing and moto's handler raises (a 500 without a message).
    "AWS::Lambda::Permission": ("FunctionName", None),
}
# Properties moto accepts and drops: the stack's resource lacks them, so the template's values
# are checked instead (each is asserted to be still missing in moto's resource).
MOTO_DROPS = {
    "AWS::DynamoDB::Table": ("TimeToLiveSpecification", "PointInTimeRecoverySpecification"),
    # Every function is x86_64 in moto, and has no logging configuration.
    "AWS::Lambda::Function": ("Architectures", "LoggingConfig"),
}
# ===============================================================================================

# moto 5.2.5's CloudFormation resolves AWS::Partition and AWS::URLSuffix to the aws
# partition's whatever the region: a cn-north-1 stack would get arn:aws:... and amazonaws.com.
# `moto_url` sees it happen on a scratch stack (so this notices when moto learns them), then
# makes moto resolve both from the stack's region (moto's own partition table).
MOTO_PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
# ===============================================================================================

pytestmark = pytest.mark.filterwarnings(
    "ignore:Tried to parse:UserWarning"  # moto, of each type it does not support
)

# The regions the stack is deployed to: region -> (AWS::Partition, AWS::URLSuffix).
REGIONS = {
    "us-east-1": ("aws", "amazonaws.com"),
    "cn-north-1": ("aws-cn", "amazonaws.com.cn"),
}
ACCOUNT = "123456789012"  # moto's
STACK = "wxauth-sim"
ARTIFACTS = "wxauth-artifacts-sim"
APPID = "wx0123456789abcdef"
APP_SECRET = "sim-app-secret-0123456789abcdef"
ISSUER = "https://auth.wxauth.test"
PARAMETERS = {"WeChatAppId": APPID, "Issuer": ISSUER}
# Settings holding a Secrets Manager ARN -> the value put there (infra/put-secrets.sh's job).
SECRET_SETTINGS = ("WECHAT_SECRET_ARN", "AUTH_SIGNING_KEYS_ARN", "AUTH_TOMBSTONE_KEY_ARN")
TOMBSTONE_KEY = "sim0tombstone0key0" * 4  # 72 letters and digits, as Secrets Manager generates
HTTP_API_TYPES = ("AWS::ApiGatewayV2::Api", "AWS::Serverless::HttpApi")


def pseudo(region: str) -> dict[str, str]:
    """The pseudo parameters of a stack of ours in `region`."""
    partition, url_suffix = REGIONS[region]
    return {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": partition,
        "AWS::StackName": STACK,
        "AWS::URLSuffix": url_suffix,
    }


# Lambda's names for the machines of its architectures.
HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}

Template = dict[str, Any]


class Unresolved:
    """A template value this simulation cannot compute (an attribute moto has no model of)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __repr__(self) -> str:
        return "<unresolved>"


UNRESOLVED = Unresolved()
NO_VALUE = object()


# -- the template --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam(build_dir: Path) -> Template:
    return build_module.load_template(build_dir / "sam.yaml")


@pytest.fixture(scope="module", params=list(REGIONS))
def region(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def expanded(build_dir: Path, region: str, tmp_path_factory: pytest.TempPathFactory) -> Template:
    """The plain CloudFormation of the template, as CloudFormation's SAM transform makes it in
    `region` (the transform writes its own ARNs, CodeDeploy's managed policy, for the region's
    partition)."""
    if not INFRA_PYTHON.exists():
        pytest.fail("needs .venv-infra (aws-sam-translator): `make infra-lint` (or `make test`)")
    target = tmp_path_factory.mktemp("expanded") / "expanded.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    subprocess.run(  # noqa: S603 - fixed argv
        [str(INFRA_PYTHON), str(ROOT / "infra" / "expand_sam.py"), str(build_dir / "sam.yaml"),
         str(target)],
        check=True, env={**env, "AWS_DEFAULT_REGION": region},
    )  # fmt: skip
    return json.loads(target.read_text())


def function_names(template: Template) -> list[str]:
    """The logical ids of the app's functions (those whose handler is the Chalice app): Chalice's,
    and the login function (infra/build.py's LOGIN_FUNCTION, issue 21)."""
    return sorted(
        k
        for k, v in template["Resources"].items()
        if v["Type"] in ("AWS::Lambda::Function", "AWS::Serverless::Function")
        and v["Properties"].get("Handler") == "app.app"
    )


def function_name(template: Template) -> str:
    """The logical id of Chalice's function (every route but the login function's)."""
    names = function_names(template)
    assert names == sorted([build_module.FUNCTION, build_module.LOGIN_FUNCTION]), names
    return build_module.FUNCTION


def of_type(template: Template, *types: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] in types}


def references(value: Any) -> set[str]:
    """Logical ids a template value refers to (Ref, Fn::GetAtt, ${...} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {m.split(".")[0] for m in _sub_names(text)}
                if isinstance(inner, list):
                    found |= references(inner[1])
            else:
                found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return found


def _sub_names(text: str) -> list[str]:
    return re.findall(r"\$\{([^}!][^}]*)\}", text)


def parameter_values(template: Template) -> dict[str, str]:
    values = {
        name: str(p["Default"])
        for name, p in template.get("Parameters", {}).items()
        if "Default" in p
    }
    values.update(given_parameters(template))
    return values


def conditions(template: Template, pseudo: dict[str, str]) -> dict[str, bool]:
    params = parameter_values(template)
    defined = template.get("Conditions", {})
    cache: dict[str, bool] = {}

    def value(v: Any) -> Any:
        if isinstance(v, dict) and "Ref" in v:
            return params.get(v["Ref"], pseudo.get(v["Ref"]))
        if isinstance(v, dict) and "Condition" in v:
            return condition(v["Condition"])
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
        raise AssertionError(f"condition function {op} is not simulated")

    def condition(name: str) -> bool:
        if name not in cache:
            cache[name] = evaluate(defined[name])
        return cache[name]

    return {name: condition(name) for name in defined}


# -- the moto server and the stack ---------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    moto_logger = logging.getLogger("moto")
    level = moto_logger.level
    moto_logger.setLevel(logging.ERROR)  # not a line per unsupported resource of every stack
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        with pytest.MonkeyPatch.context() as patch:
            _resolve_pseudo_parameters_by_region(url, patch)
            yield url
    finally:
        server.stop()
        moto_logger.setLevel(level)


def _moto_pseudo_parameters(url: str, region: str) -> dict[str, str]:
    """What moto resolves AWS::Partition and AWS::URLSuffix to, in a stack of `region`."""
    cfn = boto3.client(
        "cloudformation",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    name = f"pseudo-probe-{len(cfn.list_stacks()['StackSummaries'])}"
    cfn.create_stack(StackName=name, TemplateBody=json.dumps({
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k.split("::")[1]: {"Value": {"Ref": k}} for k in MOTO_PSEUDO},
    }))  # fmt: skip
    (described,) = cfn.describe_stacks(StackName=name)["Stacks"]
    return {f"AWS::{o['OutputKey']}": o["OutputValue"] for o in described["Outputs"]}


def _resolve_pseudo_parameters_by_region(url: str, patch: pytest.MonkeyPatch) -> None:
    from moto.cloudformation import parsing
    from moto.utilities.utils import get_partition

    assert _moto_pseudo_parameters(url, "cn-north-1") == MOTO_PSEUDO, (
        "moto now resolves the pseudo parameters of a China stack: drop MOTO_PSEUDO's patch"
    )
    suffixes = {partition: suffix for partition, suffix in REGIONS.values()}
    original = parsing.ResourceMap.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        partition = get_partition(self._region_name)
        self._parsed_resources["AWS::Partition"] = partition
        self._parsed_resources["AWS::URLSuffix"] = suffixes[partition]

    patch.setattr(parsing.ResourceMap, "__init__", init)
    assert _moto_pseudo_parameters(url, "cn-north-1") == {
        "AWS::Partition": "aws-cn", "AWS::URLSuffix": "amazonaws.com.cn"
    }  # fmt: skip


@pytest.fixture(scope="module")
def aws(moto_url: str, region: str) -> boto3.Session:
    """Clients of the moto server, with fake credentials whatever the environment holds."""
    return boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's
        region_name=region,
    )


def client(aws: boto3.Session, moto_url: str, service: str) -> Any:
    return aws.client(service, endpoint_url=moto_url)


@dataclass
class Stack:
    name: str
    template: Template  # what was created: the expanded template less MOTO_FAILS' resources
    left_out: dict[str, str]  # logical id -> why it is not in the stack
    physical: dict[str, str]  # logical id -> physical id, for what moto created
    outputs: dict[str, str]
    region: str
    pseudo: dict[str, str]


def deployable(expanded: Template, bucket: str) -> Template:
    """The expanded template with its code in the moto bucket, as `aws cloudformation package`
    would point it at the uploaded zip."""
    template = json.loads(json.dumps(expanded))
    for resource in of_type(template, "AWS::Lambda::Function").values():
        resource["Properties"]["Code"] = {"S3Bucket": bucket, "S3Key": "deployment.zip"}
    return template


def moto_failing(template: Template) -> dict[str, str]:
    """The resources of `template` that moto fails on (MOTO_FAILS): logical id -> type."""
    unsupported = {
        k for k, v in template["Resources"].items() if v["Type"] in unsupported_types(template)
    }
    failing = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] in MOTO_FAILS:
            prop, _ = MOTO_FAILS[resource["Type"]]
            if prop is None or references(resource["Properties"].get(prop)) & unsupported:
                failing[name] = resource["Type"]
    return failing


def without(template: Template, failing: set[str]) -> tuple[Template, dict[str, str]]:
    """`template` less the resources named in `failing`, what refers to them (transitively)
    and the outputs that name any of them; with the reason each was left out."""
    template = json.loads(json.dumps(template))
    resources = template["Resources"]
    left_out = {k: f"moto fails on {resources[k]['Type']}" for k in failing}
    changed = True
    while changed:
        changed = False
        for name, resource in resources.items():
            if name in left_out:
                continue
            depends = resource.get("DependsOn", [])
            refs = references(resource) | set([depends] if isinstance(depends, str) else depends)
            if refs & set(left_out):
                left_out[name] = f"refers to {sorted(refs & set(left_out))[0]}"
                changed = True
    for name in left_out:
        del resources[name]
    for name, output in list(template.get("Outputs", {}).items()):
        if references(output) & set(left_out):
            del template["Outputs"][name]
    return template, left_out


def given_parameters(template: Template) -> dict[str, str]:
    """PARAMETERS that the template has (Issuer, for one, goes with the REST API)."""
    return {k: v for k, v in PARAMETERS.items() if k in template.get("Parameters", {})}


def create_stack(cfn: Any, name: str, template: Template) -> None:
    parameters = given_parameters(template)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto warns of each unsupported type
        cfn.create_stack(
            StackName=name,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )


@pytest.fixture(scope="module")
def uploaded(aws: boto3.Session, moto_url: str, build_dir: Path, region: str) -> str:
    """The artifact bucket of `region`, holding the zip; its name."""
    s3 = client(aws, moto_url, "s3")
    bucket = f"{ARTIFACTS}-{region}"
    where = {} if region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}  # fmt: skip
    s3.create_bucket(Bucket=bucket, **where)
    s3.upload_file(str(build_dir / "deployment.zip"), bucket, "deployment.zip")
    return bucket


def without_unreadable_outputs(template: Template) -> tuple[Template, dict[str, str]]:
    """moto also fails a stack one of whose outputs reads an attribute (Fn::GetAtt) of a
    resource it does not create (the HTTP API's endpoint, say): those outputs are left out."""
    template = json.loads(json.dumps(template))
    unsupported = {
        k for k, v in template["Resources"].items() if v["Type"] in unsupported_types(template)
    }
    left_out = {}
    for name, output in list(template.get("Outputs", {}).items()):
        read = {ref for ref in _getatt_targets(output["Value"]) if ref in unsupported}
        if read:
            del template["Outputs"][name]
            left_out[f"output {name}"] = f"reads an attribute of {sorted(read)[0]}"
    return template, left_out


def _getatt_targets(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = set()
        for key, inner in value.items():
            if key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {n.split(".")[0] for n in _sub_names(text) if "." in n}
            else:
                found |= _getatt_targets(inner)
        return found
    if isinstance(value, list):
        return {ref for inner in value for ref in _getatt_targets(inner)}
    return set()


def moto_deployable(expanded: Template, bucket: str) -> tuple[Template, dict[str, str]]:
    """The template moto can create: less MOTO_FAILS' resources and the outputs it cannot read."""
    template = deployable(expanded, bucket)
    template, left_out = without(template, set(moto_failing(template)))
    template, outputs = without_unreadable_outputs(template)
    return template, left_out | outputs


@pytest.fixture(scope="module")
def stack(
    aws: boto3.Session, moto_url: str, expanded: Template, uploaded: str, region: str
) -> Stack:
    template, left_out = moto_deployable(expanded, uploaded)
    cfn = client(aws, moto_url, "cloudformation")
    create_stack(cfn, STACK, template)
    (described,) = cfn.describe_stacks(StackName=STACK)["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    summaries = cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    physical = {
        s["LogicalResourceId"]: s.get("PhysicalResourceId", "")
        for s in summaries
        if s["LogicalResourceId"]  # moto lists an unsupported resource with no id
    }
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return Stack(STACK, template, left_out, physical, outputs, region, pseudo(region))


def unsupported_types(template: Template) -> set[str]:
    from moto.cloudformation.parsing import NULL_MODELS, get_model_map

    known = set(get_model_map()) | set(NULL_MODELS)
    return {r["Type"] for r in template["Resources"].values()} - known


def resolver(stack: Stack, aws: boto3.Session, moto_url: str):
    """A function from a template value to what it is in the stack: Ref and Fn::GetAtt of what
    moto created, parameters, pseudo parameters, Fn::Sub, Fn::If. A reference to what moto did
    not create is None (as moto resolves it); an attribute this cannot look up, UNRESOLVED."""
    params = parameter_values(stack.template)
    conds = conditions(stack.template, stack.pseudo)
    resources = stack.template["Resources"]

    def getatt(name: str, attribute: str) -> Any:
        if name not in stack.physical:
            return None
        kind, physical = resources[name]["Type"], stack.physical[name]
        if (kind, attribute) == ("AWS::DynamoDB::Table", "Arn"):
            return client(aws, moto_url, "dynamodb").describe_table(TableName=physical)["Table"][
                "TableArn"
            ]
        if (kind, attribute) == ("AWS::IAM::Role", "Arn"):
            return client(aws, moto_url, "iam").get_role(RoleName=physical)["Role"]["Arn"]
        if (kind, attribute) == ("AWS::Lambda::Function", "Arn"):
            return client(aws, moto_url, "lambda").get_function(FunctionName=physical)[
                "Configuration"
            ]["FunctionArn"]
        if (kind, attribute) == ("AWS::Logs::LogGroup", "Arn"):
            # CloudFormation's is the group's ARN with ":*" (its streams); moto's has none.
            partition = stack.pseudo["AWS::Partition"]
            return f"arn:{partition}:logs:{stack.region}:{ACCOUNT}:log-group:{physical}"
        return UNRESOLVED

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            pairs = ((k, resolve(v)) for k, v in value.items())
            return {k: r for k, r in pairs if r is not NO_VALUE}
        ((key, arg),) = value.items()
        if key == "Ref":
            if arg == "AWS::NoValue":
                return NO_VALUE
            if arg in params:
                return params[arg]
            if arg in stack.pseudo:
                return stack.pseudo[arg]
            return stack.physical.get(arg) or None
        if key == "Fn::GetAtt":
            name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return getatt(name, attribute)
        if key == "Fn::If":
            return resolve(arg[1] if conds[arg[0]] else arg[2])
        if key == "Fn::Sub":
            text, extra = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
            for name in _sub_names(text):
                if name in extra:
                    part = resolve(extra[name])
                elif "." in name:
                    part = getatt(*name.split(".", 1))
                else:
                    part = resolve({"Ref": name})
                if not isinstance(part, str) or part is UNRESOLVED:
                    return UNRESOLVED
                text = text.replace("${" + name + "}", part)
            return text
        return {key: resolve(arg)}

    return resolve


# -- 1. the stack ---------------------------------------------------------------------------------


# The third-party platform (issue 24, item 4): the same template in a second stack with its two
# parameters, beside the first (which has none, and which the tests below check as declared).
COMPONENT_PARAMETERS = {
    "ComponentAppId": "wx1234567890abcdef",
    "ComponentSecretArn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:wxauth/cp-AbCdEf",
}


@pytest.fixture(scope="module")
def component_stack(
    aws: boto3.Session, moto_url: str, expanded: Template, uploaded: str, region: str
) -> tuple[Stack, dict[str, str]]:
    """The second stack, and the parameters it was given."""
    template, left_out = moto_deployable(expanded, uploaded)
    partition = REGIONS[region][0]
    given = {**given_parameters(template), **COMPONENT_PARAMETERS}
    given["ComponentSecretArn"] = given["ComponentSecretArn"].replace(
        "arn:aws:secretsmanager:us-east-1:", f"arn:{partition}:secretsmanager:{region}:"
    )
    name = f"{STACK}-component"
    cfn = client(aws, moto_url, "cloudformation")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto warns of each unsupported type
        cfn.create_stack(
            StackName=name,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    (described,) = cfn.describe_stacks(StackName=name)["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    summaries = cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    physical = {
        s["LogicalResourceId"]: s.get("PhysicalResourceId", "")
        for s in summaries
        if s["LogicalResourceId"]
    }
    found = Stack(name, template, left_out, physical, {}, region, pseudo(region))
    return found, given


@pytest.mark.parametrize("logical", [build_module.FUNCTION, build_module.LOGIN_FUNCTION])
def test_with_the_platform_each_function_has_its_settings_and_the_role_reads_its_secret(
    stack: Stack,
    component_stack: tuple[Stack, dict[str, str]],
    aws: boto3.Session,
    moto_url: str,
    logical: str,
) -> None:
    component_stack, given = component_stack
    with_platform = function_configuration(component_stack, aws, moto_url, logical)[
        "Environment"]["Variables"]  # fmt: skip
    without = function_configuration(stack, aws, moto_url, logical)["Environment"]["Variables"]
    assert with_platform["WECHAT_COMPONENT_APPID"] == given["ComponentAppId"]
    assert with_platform["WECHAT_COMPONENT_SECRET_ARN"] == given["ComponentSecretArn"]
    assert not {"WECHAT_COMPONENT_APPID", "WECHAT_COMPONENT_SECRET_ARN"} & set(without)
    # otherwise the same settings
    extra = {"WECHAT_COMPONENT_APPID", "WECHAT_COMPONENT_SECRET_ARN"}
    assert set(with_platform) - extra == set(without)

    def reads(found: Stack) -> list[dict[str, Any]]:
        policies = role_policies(found, aws, moto_url)
        policies.pop("_role"), policies.pop("_logical")
        (policy,) = policies.values()
        if isinstance(policy, str):
            policy = ast.literal_eval(policy) if policy.startswith("{'") else json.loads(policy)
        return [s for s in _statements(policy).values()
                if "secretsmanager:GetSecretValue" in _as_list(s["Action"])]  # fmt: skip

    with_reads, without_reads = reads(component_stack), reads(stack)
    assert [s["Sid"] for s in without_reads] == ["Secrets"]
    (component,) = [s for s in with_reads if s["Sid"] == "ComponentSecret"]
    assert _as_list(component["Action"]) == ["secretsmanager:GetSecretValue"]
    assert _as_list(component["Resource"]) == [given["ComponentSecretArn"]]
    assert sorted(s["Sid"] for s in with_reads) == ["ComponentSecret", "Secrets"]


def test_moto_cannot_create_exactly_the_listed_types(expanded: Template) -> None:
    from moto.cloudformation.parsing import get_model_map

    grown = sorted(MOTO_UNSUPPORTED & set(get_model_map()))
    assert not grown, f"moto now creates {grown}: drop them from MOTO_UNSUPPORTED, check the stack"
    in_template = {r["Type"] for r in expanded["Resources"].values()}
    assert unsupported_types(expanded) == MOTO_UNSUPPORTED & in_template, (
        "update MOTO_UNSUPPORTED, and check the new types from the template"
    )


def test_moto_fails_on_exactly_the_listed_resources(
    aws: boto3.Session, moto_url: str, expanded: Template, uploaded: str
) -> None:
    """Scratch stacks: each kind of failing resource (MOTO_FAILS), and the outputs moto cannot
    read, put back alone, fails the stack; with none of them it is created, as `stack` is."""
    cfn = client(aws, moto_url, "cloudformation")
    template = deployable(expanded, uploaded)
    failing = moto_failing(template)
    readable, unreadable = without_unreadable_outputs(template)
    groups = {kind: {n for n, t in failing.items() if t != kind} for kind in set(failing.values())}
    for n, (kind, others) in enumerate(sorted(groups.items()), start=1):
        scratch, _ = without(readable, others)
        # moto answers in JSON or HTML where botocore expects XML: either exception.
        with pytest.raises((ClientError, ResponseParserError)) as failure:
            create_stack(cfn, f"{STACK}-scratch-{n}", scratch)
        message = MOTO_FAILS[kind][1]
        assert message is None or message in str(failure.value), (kind, failure.value)
    if unreadable:
        scratch, _ = without(template, set(failing))
        with pytest.raises((ClientError, ResponseParserError)):
            create_stack(cfn, f"{STACK}-scratch-outputs", scratch)
    scratch, _ = without(readable, set(failing))
    create_stack(cfn, f"{STACK}-scratch-none", scratch)  # no other failure is hidden


def test_stack_holds_every_resource_moto_can_create(stack: Stack, expanded: Template) -> None:
    conds = conditions(expanded, stack.pseudo)
    expected = {
        name
        for name, r in expanded["Resources"].items()
        if r["Type"] not in MOTO_UNSUPPORTED
        and name not in stack.left_out
        and conds.get(r.get("Condition", ""), True)
    }
    assert set(stack.physical) == expected
    # Left out for moto's sake (the REST API's deployment): only resources of MOTO_FAILS' types,
    # and what refers to them that moto could not have created anyway (its stage).
    resources = expanded["Resources"]
    lost = {resources[name]["Type"] for name in stack.left_out if name in resources}
    lost -= set(MOTO_FAILS)
    assert lost <= MOTO_UNSUPPORTED, f"left out only because they refer to a failing type: {lost}"


def test_table_keys_billing_and_ttl(stack: Stack, aws: boto3.Session, moto_url: str) -> None:
    (name,) = of_type(stack.template, "AWS::DynamoDB::Table")
    spec = stack.template["Resources"][name]["Properties"]
    dynamodb = client(aws, moto_url, "dynamodb")
    table = dynamodb.describe_table(TableName=stack.physical[name])["Table"]
    assert table["KeySchema"] == spec["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        spec["AttributeDefinitions"], key=str
    )
    assert table["BillingModeSummary"]["BillingMode"] == spec["BillingMode"]
    assert table.get("GlobalSecondaryIndexes", []) == spec.get("GlobalSecondaryIndexes", [])
    assert table["DeletionProtectionEnabled"] == spec.get("DeletionProtectionEnabled", False)
    # The targets, explicitly: the store's keys, on-demand billing, its TTL attribute.
    assert [k["AttributeName"] for k in table["KeySchema"]] == [store.PK, store.SK]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    ttl = dynamodb.describe_time_to_live(TableName=stack.physical[name])["TimeToLiveDescription"]
    pitr = dynamodb.describe_continuous_backups(TableName=stack.physical[name])[
        "ContinuousBackupsDescription"
    ]["PointInTimeRecoveryDescription"]
    dropped = MOTO_DROPS["AWS::DynamoDB::Table"]
    # moto drops both (MOTO_DROPS): when it stops, compare the stack's with the template's.
    assert ("TimeToLiveSpecification" in dropped) == (ttl["TimeToLiveStatus"] == "DISABLED")
    assert ("PointInTimeRecoverySpecification" in dropped) == (
        pitr["PointInTimeRecoveryStatus"] == "DISABLED"
    )
    if "TimeToLiveSpecification" not in dropped:
        assert ttl["AttributeName"] == spec["TimeToLiveSpecification"]["AttributeName"]
    assert spec["TimeToLiveSpecification"] == {"AttributeName": store.EXPIRES_AT, "Enabled": True}
    assert spec["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def function_configuration(
    stack: Stack, aws: boto3.Session, moto_url: str, logical: str | None = None
) -> dict[str, Any]:
    name = stack.physical[logical or function_name(stack.template)]
    return client(aws, moto_url, "lambda").get_function_configuration(FunctionName=name)


@pytest.mark.parametrize("logical", [build_module.FUNCTION, build_module.LOGIN_FUNCTION])
def test_function_runtime_architecture_and_role(
    stack: Stack, aws: boto3.Session, moto_url: str, sam: Template, logical: str
) -> None:
    assert logical in function_names(stack.template)
    spec = stack.template["Resources"][logical]["Properties"]
    config = function_configuration(stack, aws, moto_url, logical)
    resolve = resolver(stack, aws, moto_url)
    assert config["Runtime"] == spec["Runtime"]
    dropped = MOTO_DROPS["AWS::Lambda::Function"]
    if "Architectures" in dropped:  # moto's default whatever the template says: see below
        assert config["Architectures"] == ["x86_64"]
    else:
        assert config["Architectures"] == spec.get("Architectures", ["x86_64"])
    if "LoggingConfig" in dropped:
        assert "LoggingConfig" not in config
    else:
        assert config["LoggingConfig"]["LogGroup"] == resolve(spec["LoggingConfig"]["LogGroup"])
    assert config["Handler"] == spec["Handler"] == "app.app"
    assert config["MemorySize"] == spec["MemorySize"]
    assert config["Timeout"] == spec["Timeout"]
    assert config["Role"] == resolve(spec["Role"])
    # The targets (flip at the top of this file).
    assert spec["Runtime"] == EXPECTED_RUNTIME
    assert spec.get("Architectures", ["x86_64"]) == [EXPECTED_ARCH]
    # What infra/build.py checked the zip against is what the stack runs.
    target = build_module.target_of(sam)
    assert (target.runtime, HOST_ARCH[target.machine]) == (config["Runtime"], EXPECTED_ARCH)


@pytest.mark.parametrize("logical", [build_module.FUNCTION, build_module.LOGIN_FUNCTION])
def test_function_environment_is_the_settings_the_app_needs(
    stack: Stack, aws: boto3.Session, moto_url: str, logical: str
) -> None:
    spec = stack.template["Resources"][logical]["Properties"]
    declared = spec["Environment"]["Variables"]
    resolve = resolver(stack, aws, moto_url)
    # moto keeps Number parameters as numbers; CloudFormation passes every value as a string.
    actual = {k: str(v) for k, v in function_configuration(stack, aws, moto_url, logical)[
        "Environment"]["Variables"].items()}  # fmt: skip
    # Both functions are one service: the same settings (the package run below is Chalice's).
    api = function_configuration(stack, aws, moto_url)["Environment"]["Variables"]
    assert actual == {k: str(v) for k, v in api.items()}
    expected = {k: v for k, v in ((k, resolve(v)) for k, v in declared.items()) if v is not
                NO_VALUE}  # fmt: skip
    on_unsupported = {k for k, v in expected.items() if v is None}
    assert actual == {k: v for k, v in expected.items() if v is not None}
    # Left out by moto: exactly the variables bound to a resource it did not create, the two
    # secrets (checked from the template here, filled in with stand-ins for the function run).
    assert on_unsupported == set(SECRET_SETTINGS)
    for name in SECRET_SETTINGS:
        (ref,) = references(declared[name])
        assert stack.template["Resources"][ref]["Type"] == "AWS::SecretsManager::Secret"
    assert {references(declared[n]).pop() for n in SECRET_SETTINGS} == set(
        of_type(stack.template, "AWS::SecretsManager::Secret")
    )
    # The settings the app cannot run without, explicitly.
    (table,) = of_type(stack.template, "AWS::DynamoDB::Table")
    assert actual["AUTH_TABLE_NAME"] == stack.physical[table]
    assert actual["WECHAT_APPID"] == APPID
    if "Issuer" in stack.template.get("Parameters", {}):
        assert actual["AUTH_ISSUER"] == ISSUER
    assert actual["AUTH_ISSUER"].startswith("https://")


def _statements(document: Any) -> dict[str, dict[str, Any]]:
    """Statements by Sid; moto keeps a statement that is AWS::NoValue as None."""
    if isinstance(document, str):
        document = json.loads(document)
    return {s["Sid"]: s for s in document["Statement"] if s is not None}


def chosen(value: Any, conds: dict[str, bool]) -> Any:
    """`value` with each Fn::If replaced by its chosen branch, AWS::NoValue left out."""
    if isinstance(value, list):
        return [c for c in (chosen(v, conds) for v in value) if c is not NO_VALUE]
    if isinstance(value, dict):
        if list(value) == ["Fn::If"]:
            name, yes, no = value["Fn::If"]
            return chosen(yes if conds[name] else no, conds)
        if value == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        pairs = ((k, chosen(v, conds)) for k, v in value.items())
        return {k: c for k, c in pairs if c is not NO_VALUE}
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_policies(stack: Stack, aws: boto3.Session, moto_url: str) -> dict[str, Any]:
    iam = client(aws, moto_url, "iam")
    spec = stack.template["Resources"][function_name(stack.template)]["Properties"]
    (role,) = references(spec["Role"])
    role_name = stack.physical[role]
    assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    names = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    return {
        name: iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        for name in names
    } | {"_role": iam.get_role(RoleName=role_name)["Role"], "_logical": role}


def test_role_policies_are_the_templates_with_least_privilege(
    stack: Stack, aws: boto3.Session, moto_url: str
) -> None:
    found = role_policies(stack, aws, moto_url)
    role, logical = found.pop("_role"), found.pop("_logical")
    spec = stack.template["Resources"][logical]["Properties"]
    resolve = resolver(stack, aws, moto_url)
    assert role["AssumeRolePolicyDocument"] == spec["AssumeRolePolicyDocument"]
    assert set(found) == {p["PolicyName"] for p in spec["Policies"]}
    conds = conditions(stack.template, stack.pseudo)
    (document,) = [chosen(p["PolicyDocument"], conds) for p in spec["Policies"]]
    (policy,) = found.values()
    # moto hands the document back as the repr of a Python dict, AWS as JSON.
    if isinstance(policy, str):
        policy = ast.literal_eval(policy) if policy.startswith("{'") else json.loads(policy)
    actual = _statements(policy)
    declared = _statements(document)
    assert set(actual) == set(declared)
    for sid, statement in declared.items():
        assert actual[sid]["Effect"] == statement["Effect"] == "Allow"
        assert sorted(_as_list(actual[sid]["Action"])) == sorted(_as_list(statement["Action"]))
        assert _as_list(actual[sid]["Resource"]) == _as_list(resolve(statement["Resource"]))

    # Least privilege, explicitly: the table's item calls on the created table only ...
    (table,) = of_type(stack.template, "AWS::DynamoDB::Table")
    table_arn = resolve({"Fn::GetAtt": [table, "Arn"]})
    dynamodb = [s for s in actual.values() if any(a.startswith("dynamodb:") for a in
                                                  _as_list(s["Action"]))]  # fmt: skip
    (db,) = dynamodb
    assert set(_as_list(db["Action"])) <= {
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
        "dynamodb:Query", "dynamodb:ConditionCheckItem",
    }  # fmt: skip
    assert _as_list(db["Resource"]) == [table_arn]
    # ... GetSecretValue on exactly the two secrets (moto created neither, so the stack's
    # policy names None twice: the template says which) ...
    (sid,) = [s for s, st in declared.items() if "secretsmanager:GetSecretValue" in
              _as_list(st["Action"])]  # fmt: skip
    assert _as_list(actual[sid]["Action"]) == ["secretsmanager:GetSecretValue"]
    assert {r for d in _as_list(declared[sid]["Resource"]) for r in references(d)} == set(
        of_type(stack.template, "AWS::SecretsManager::Secret")
    )
    assert _as_list(actual[sid]["Resource"]) == [None] * len(_as_list(declared[sid]["Resource"]))
    # ... and no wildcard (moto's log group ARN lacks CloudFormation's ":*", its streams).
    for statement in actual.values():
        for value in _as_list(statement["Action"]) + _as_list(statement["Resource"]):
            assert value is None or "*" not in value, f"wildcard in {statement['Sid']}: {value}"


def test_every_arn_principal_and_endpoint_is_of_the_regions_partition(
    stack: Stack, expanded: Template, aws: boto3.Session, moto_url: str
) -> None:
    """cn-north-1: the stack's ARNs are aws-cn's, the issuer's endpoint is amazonaws.com.cn, the
    SAM transform's managed policy is aws-cn's, and the principals are the global ones (IAM
    refuses "<service>.amazonaws.com.cn" in China). us-east-1: the same, for aws."""
    partition, url_suffix = REGIONS[stack.region]
    prefix = f"arn:{partition}:"
    (table,) = of_type(stack.template, "AWS::DynamoDB::Table")
    table_arn = client(aws, moto_url, "dynamodb").describe_table(
        TableName=stack.physical[table])["Table"]["TableArn"]  # fmt: skip
    assert table_arn.startswith(f"{prefix}dynamodb:{stack.region}:{ACCOUNT}:table/")
    config = function_configuration(stack, aws, moto_url)
    assert config["FunctionArn"].startswith(f"{prefix}lambda:{stack.region}:{ACCOUNT}:function:")
    assert config["Role"].startswith(f"{prefix}iam::{ACCOUNT}:role/")
    # The issuer without a custom domain: the HTTP API's URL in the region's domain.
    issuer = config["Environment"]["Variables"]["AUTH_ISSUER"]
    assert issuer.startswith("https://") and issuer.endswith(
        f".execute-api.{stack.region}.{url_suffix}")  # fmt: skip
    # Every ARN the role's policy names (moto created some of them, the rest resolved here).
    found = role_policies(stack, aws, moto_url)
    found.pop("_logical")
    role = found.pop("_role")
    (policy,) = found.values()
    if isinstance(policy, str):
        policy = ast.literal_eval(policy) if policy.startswith("{'") else json.loads(policy)
    arns = [r for st in _statements(policy).values() for r in _as_list(st["Resource"]) if r]
    assert arns and all(arn.startswith(prefix) for arn in arns), arns
    # What the SAM transform wrote for the region: CodeDeploy's role and its managed policy.
    managed = [
        arn for r in of_type(expanded, "AWS::IAM::Role").values()
        for arn in r["Properties"].get("ManagedPolicyArns", [])
    ]  # fmt: skip
    assert managed == [f"{prefix}iam::aws:policy/service-role/AWSCodeDeployRoleForLambda"]
    # Principals: the global form in every partition.
    text = json.dumps(expanded)
    assert "amazonaws.com.cn" not in text  # no endpoint or principal written out
    if partition != "aws":
        assert "arn:aws:" not in text
    principals = set(re.findall(r'"([a-z0-9-]+\.amazonaws\.com[.a-z]*)"', text))
    # (events.amazonaws.com: EventBridge invoking the deletion function's schedule, issue 25)
    assert principals == {
        "lambda.amazonaws.com", "apigateway.amazonaws.com", "cloudwatch.amazonaws.com",
        "codedeploy.amazonaws.com", "events.amazonaws.com",
    }  # fmt: skip
    trust = role["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)
    assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}


def template_routes(template: Template) -> set[tuple[str, str]]:
    """(METHOD, path) of every route of the API in the template: the HTTP API's explicit routes
    (AWS::ApiGatewayV2::Route, less `$default`), or the REST API's OpenAPI paths."""
    routes: set[tuple[str, str]] = set()
    for route in of_type(template, "AWS::ApiGatewayV2::Route").values():
        key = route["Properties"]["RouteKey"]
        if key != "$default":
            method, path = key.split(" ", 1)
            routes.add((method, path))
    if routes:
        return routes
    for api in of_type(template, "AWS::ApiGateway::RestApi").values():
        body = api["Properties"].get("Body") or api["Properties"].get("DefinitionBody") or {}
        for path, operations in body.get("paths", {}).items():
            for method in operations:
                if method.lower() in ("get", "put", "post", "delete", "patch", "head", "options"):
                    routes.add((method.upper(), path))
    return routes


def has_http_api(template: Template) -> bool:
    return bool(of_type(template, *HTTP_API_TYPES))


def test_api_routes_are_the_apps(
    stack: Stack, expanded: Template, aws: boto3.Session, moto_url: str
) -> None:
    import app

    app_routes = {(m, p) for p, methods in app.app.routes.items() for m in methods}
    assert template_routes(expanded) == app_routes
    for method, path in [
        ("POST", "/auth/login"),
        ("POST", "/auth/refresh"),
        ("POST", "/auth/verify"),
        ("POST", "/auth/logout"),
        ("GET", "/me"),
    ]:
        assert (method, path) in app_routes  # fmt: skip
    apis = of_type(stack.template, "AWS::ApiGateway::RestApi")
    if apis:
        # moto's REST API has no methods (it ignores Body: MOTO_FAILS), so the routes above are
        # the template's; when moto imports Body, compare its resources here.
        (name,) = apis
        resources = client(aws, moto_url, "apigateway").get_resources(
            restApiId=stack.physical[name]
        )["items"]
        assert [r["path"] for r in resources] == ["/"]


def test_http_api_checks_apply_when_the_template_has_one(expanded: Template) -> None:
    """HTTP API only (branch httpapi): payload format 1.0 to the function, an explicit route per
    app route plus `$default`; checked from the template (moto has no ApiGatewayV2 model)."""
    if not has_http_api(expanded):
        assert of_type(expanded, "AWS::ApiGateway::RestApi"), "the template has no API at all"
        return
    integrations = of_type(expanded, "AWS::ApiGatewayV2::Integration")
    assert integrations, "an HTTP API without a Lambda integration"
    for integration in integrations.values():
        props = integration["Properties"]
        assert props["IntegrationType"] == "AWS_PROXY"
        assert str(props["PayloadFormatVersion"]) == "1.0"
        assert any(
            ref.startswith(tuple(function_names(expanded)))
            for ref in references(props["IntegrationUri"])
        )
    routes = of_type(expanded, "AWS::ApiGatewayV2::Route")
    keys = [r["Properties"]["RouteKey"] for r in routes.values()]
    assert "$default" in keys
    assert len(keys) == len(set(keys))
    for route in of_type(expanded, "AWS::ApiGatewayV2::Route").values():
        assert references(route["Properties"]["Target"]) & set(integrations)


def test_alarms_from_the_template(expanded: Template, region: str) -> None:
    """moto creates no alarm (MOTO_UNSUPPORTED): each one's metric, threshold and actions."""
    alarms = of_type(expanded, "AWS::CloudWatch::Alarm")
    assert alarms
    pseudo_parameters = pseudo(region)
    names = set(expanded["Resources"]) | set(expanded.get("Parameters", {})) | set(
        pseudo_parameters)  # fmt: skip
    params = parameter_values(expanded)
    metrics = set()

    def static(value: Any) -> str:
        """A literal, or an Fn::Sub of parameters and pseudo parameters."""
        if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
            text = value["Fn::Sub"]
            for name in _sub_names(text):
                text = text.replace("${" + name + "}", {**params, **pseudo_parameters}[name])
            return text
        assert isinstance(value, str), value
        return value

    def number(value: Any) -> float:
        return float(params[value["Ref"]] if isinstance(value, dict) else value)

    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert number(props["Threshold"]) > 0, name
        assert props["ComparisonOperator"] in (
            "GreaterThanOrEqualToThreshold", "GreaterThanThreshold"
        ), name  # fmt: skip
        assert number(props["EvaluationPeriods"]) >= 1, name
        assert references(props["AlarmActions"]) <= set(of_type(expanded, "AWS::SNS::Topic"))
        assert props["AlarmActions"], f"{name} notifies no one"
        if "Metrics" in props:
            assert sum(bool(m.get("ReturnData", True)) for m in props["Metrics"]) == 1, name
            stats = [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]
        else:
            assert number(props["Period"]) >= 60, name
            assert props.get("Statistic") or props.get("ExtendedStatistic"), name
            stats = [props]
        for metric in stats:
            metrics.add((static(metric["Namespace"]), static(metric["MetricName"])))
            assert references(metric.get("Dimensions", [])) <= names, name
    # The failures an operator must hear of (docs/operators.md "Deploy to AWS").
    assert {("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles")} <= metrics
    assert {("AWS/DynamoDB", "ReadThrottleEvents"), ("AWS/DynamoDB", "WriteThrottleEvents")} <= (
        metrics
    )
    assert metrics & {("AWS/ApiGateway", "5XXError"), ("AWS/ApiGateway", "5xx")}


# -- 2. the package in the runtime's interpreter ---------------------------------------------------


@pytest.fixture(scope="module")
def package_zip(build_dir: Path, sam: Template, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip that can run here: the build itself, or its twin for this machine's CPU (an arm64
    build's x86_64 twin, `infra/build.py --architecture x86_64`), same runtime and sources."""
    target = build_module.target_of(sam)
    host = HOST_ARCH[platform.machine().lower()]
    if HOST_ARCH[target.machine] == host:
        return build_dir / "deployment.zip"
    outdir = tmp_path_factory.mktemp(f"twin-{host}")
    result = subprocess.run(  # noqa: S603 - the project's own build
        [sys.executable, str(ROOT / "infra" / "build.py"), str(outdir), "--architecture", host],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"the {host} twin did not build:\n{result.stderr}"
    twin = build_module.target_of(build_module.load_template(outdir / "sam.yaml"))
    assert twin.runtime == target.runtime
    return outdir / "deployment.zip"


def runtime_pins() -> dict[str, str]:
    """boto3 as pyproject pins it, botocore as installed with it (the lock's): the versions the
    tests run with, which the Lambda runtime is assumed to provide."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (boto3_pin,) = [d for d in dependencies if d.replace(" ", "").startswith("boto3==")]
    pins = {"boto3": boto3_pin.split("==", 1)[1].strip(), "botocore": importlib.metadata.version(
        "botocore")}  # fmt: skip
    assert importlib.metadata.version("boto3") == pins["boto3"]
    return pins


@pytest.fixture(scope="module")
def runtime(sam: Template, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The runtime's interpreter in a throwaway venv holding only boto3 and botocore."""
    version = lambda_runtime.python_version_of(build_module.target_of(sam).runtime)
    python = lambda_runtime.find_python(version)
    venv = tmp_path_factory.mktemp("lambda-runtime") / "venv"
    pins = runtime_pins()
    return {
        "version": version,
        "python": lambda_runtime.make_runtime_venv(python, venv, pins),
        "venv": venv,
        "pins": pins,
    }


@pytest.fixture(scope="module")
def fake_wechat(region: str) -> Iterator[FakeWeChat]:
    """A fresh fake per region: its codes are single-use, and it counts calls."""
    with FakeWeChat(APPID, APP_SECRET) as wechat:
        yield wechat


@pytest.fixture(scope="module")
def key_set() -> KeySet:
    import time

    return KeySet.new(int(time.time()))


@pytest.fixture(scope="module")
def secret_stand_ins(
    stack: Stack, aws: boto3.Session, moto_url: str, key_set: KeySet
) -> dict[str, str]:
    """The secrets moto's CloudFormation could not create, made in its Secrets Manager and
    filled as infra/put-secrets.sh fills them (the tombstone key as the stack generates it);
    setting -> the secret's ARN."""
    declared = stack.template["Resources"][function_name(stack.template)]["Properties"][
        "Environment"
    ]["Variables"]
    values = {
        "WECHAT_SECRET_ARN": APP_SECRET,
        "AUTH_SIGNING_KEYS_ARN": key_set.to_json(),
        "AUTH_TOMBSTONE_KEY_ARN": TOMBSTONE_KEY,
    }
    secretsmanager = client(aws, moto_url, "secretsmanager")
    arns = {}
    for setting in SECRET_SETTINGS:
        if setting not in declared:
            continue  # test_function_environment_... says so
        (logical,) = references(declared[setting])
        created = secretsmanager.create_secret(
            Name=f"{stack.name}-{logical}", SecretString=values[setting]
        )
        arns[setting] = created["ARN"]
    return arns


@pytest.fixture(scope="module")
def function(
    stack: Stack,
    aws: boto3.Session,
    moto_url: str,
    package_zip: Path,
    runtime: dict[str, Any],
    secret_stand_ins: dict[str, str],
    fake_wechat: FakeWeChat,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[lambda_runtime.LambdaProcess]:
    """The unzipped package's handler in the runtime's interpreter, with the function's
    environment from the stack (plus the secrets' stand-ins) and the variables Lambda sets."""
    config = function_configuration(stack, aws, moto_url)
    workdir = tmp_path_factory.mktemp("lambda")
    task_root = lambda_runtime.unzip(package_zip, workdir / "task")
    env = {k: str(v) for k, v in config["Environment"]["Variables"].items()}
    env.update(secret_stand_ins)
    env.update(
        # What Lambda sets (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html)
        _HANDLER=config["Handler"],
        LAMBDA_TASK_ROOT=str(task_root),
        PYTHONPATH=str(task_root),
        AWS_EXECUTION_ENV=f"AWS_Lambda_{config['Runtime']}",
        AWS_LAMBDA_FUNCTION_NAME=config["FunctionName"],
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(config["MemorySize"]),
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{config['FunctionName']}",
        AWS_REGION=stack.region,
        AWS_DEFAULT_REGION=stack.region,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106
        AWS_SESSION_TOKEN="testing",  # noqa: S106
        PATH="/usr/local/bin:/usr/bin:/bin",
        LANG="C.UTF-8",
        TZ=":UTC",
        # The simulation: AWS is the moto server, WeChat the fake; no file of this machine's
        # AWS configuration is read, and no instance metadata is asked for.
        AWS_ENDPOINT_URL=moto_url,
        AWS_CONFIG_FILE=str(workdir / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        HOME=str(workdir),
        WECHAT_API_BASE=fake_wechat.url,
        WXAUTH_SIM_FUNCTION_ARN=config["FunctionArn"],
        WXAUTH_SIM_TIMEOUT=str(config["Timeout"]),
    )
    process = lambda_runtime.LambdaProcess(runtime["python"], env, workdir)
    try:
        yield process
    finally:
        process.close()


def test_the_python_of_each_runtime_is_found() -> None:
    """python3.13 is the target (issue 12); this machine and CI carry it beside 3.11."""
    for runtime in ("python3.11", EXPECTED_RUNTIME, "python3.13"):
        version = lambda_runtime.python_version_of(runtime)
        python = lambda_runtime.find_python(version)
        answer = subprocess.run(  # noqa: S603 - the interpreter found
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert answer == version


def test_package_runs_on_the_runtimes_python_with_only_boto3_beside_it(
    function: lambda_runtime.LambdaProcess, runtime: dict[str, Any], sam: Template
) -> None:
    info = function.info
    task_root = Path(info["task_root"])
    assert ".".join(map(str, info["python"][:2])) == runtime["version"]
    assert f"python{runtime['version']}" == build_module.target_of(sam).runtime
    assert Path(info["chalice"]).is_relative_to(task_root), info["chalice"]
    assert info["chalice_elsewhere"] == []
    assert info["moto"] is None
    assert info["pytest"] is None
    for name in ("boto3", "botocore"):
        assert Path(info[name]).is_relative_to(runtime["venv"]), f"{name}: {info[name]}"
    for entry in info["sys_path"]:
        path = Path(entry or ".").resolve()
        assert not path.is_relative_to(ROOT), f"the repository is on sys.path: {entry}"
        assert not path.is_relative_to(Path(sys.prefix).resolve()), f"dev venv: {entry}"


def test_package_serves_the_templates_routes(
    function: lambda_runtime.LambdaProcess, expanded: Template
) -> None:
    assert {tuple(r) for r in function.info["routes"]} == template_routes(expanded)


def api_stage(expanded: Template) -> str:
    """The stage of the HTTP API (`$default` unless the template names another)."""
    stages = of_type(expanded, "AWS::ApiGatewayV2::Stage")
    for stage in stages.values():
        name = stage["Properties"].get("StageName", "$default")
        return name if isinstance(name, str) else "$default"
    return "$default"


class Client:
    """Requests to the handler as the HTTP API sends them; checks the payload-1.0 response."""

    def __init__(self, function: lambda_runtime.LambdaProcess, stage: str) -> None:
        self.function = function
        self.stage = stage

    def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None,
        raw: str | None = None,
    ) -> tuple[int, dict[str, str], Any]:  # fmt: skip
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        text = raw if raw is not None else (None if body is None else json.dumps(body))
        if text is not None:
            headers["Content-Type"] = "application/json"
        event = http_api_v1_event(method, path, headers=headers, body=text, stage=self.stage)
        response = self.function.invoke(event)
        assert isinstance(response["statusCode"], int)
        assert isinstance(response["headers"], dict)
        assert all(isinstance(v, str) for v in response["headers"].values())
        assert not response.get("isBase64Encoded", False)
        body_text = response.get("body") or ""
        parsed = json.loads(body_text) if body_text else None
        return response["statusCode"], response["headers"], parsed


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_login_me_refresh_verify_logout_through_http_api_events(
    function: lambda_runtime.LambdaProcess,
    expanded: Template,
    stack: Stack,
    aws: boto3.Session,
    moto_url: str,
    fake_wechat: FakeWeChat,
    key_set: KeySet,
) -> None:
    api = Client(function, api_stage(expanded))
    token_keys = {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in"}

    status, headers, body = api.call("POST", "/auth/login", {"code": "sim-alice.1"})
    assert status == 200, body
    assert token_keys | {"user"} <= set(body)
    assert body["token_type"] == "Bearer"
    assert body["user"]["is_new"] is True
    assert headers["Cache-Control"] == "no-store"
    assert fake_wechat.calls == 1  # WECHAT_API_BASE, and the AppSecret from Secrets Manager
    user_id = body["user"]["id"]
    claims = _claims(body["access_token"])
    assert claims["iss"] == function.env["AUTH_ISSUER"]  # as the stack set it
    assert claims["sub"] == user_id

    status, _, me = api.call("GET", "/me", token=body["access_token"])
    assert status == 200, me
    assert me["id"] == user_id

    status, headers, refreshed = api.call(
        "POST", "/auth/refresh", {"refresh_token": body["refresh_token"]}
    )
    assert status == 200, refreshed
    assert token_keys <= set(refreshed)
    assert refreshed["refresh_token"] != body["refresh_token"]
    assert headers["Cache-Control"] == "no-store"

    status, _, verified = api.call("POST", "/auth/verify", {"token": refreshed["access_token"]})
    assert status == 200, verified
    assert verified["valid"] is True
    assert verified["sub"] == user_id
    assert {"sid", "exp", "expires_in"} <= set(verified)

    status, _, jwks = api.call("GET", "/.well-known/jwks.json")
    assert status == 200
    assert [k["kid"] for k in jwks["keys"]] == [key_set.active_kid]  # the key set in the secret

    status, _, nothing = api.call("POST", "/auth/logout", token=refreshed["access_token"])
    assert (status, nothing) == (204, None)

    status, _, verified = api.call("POST", "/auth/verify", {"token": refreshed["access_token"]})
    assert (status, verified) == (200, {"valid": False, "reason": "revoked"})
    status, _, error = api.call(
        "POST", "/auth/refresh", {"refresh_token": refreshed["refresh_token"]}
    )
    assert status == 400
    assert error["error"] == "invalid_grant"
    status, _, error = api.call("POST", "/auth/login", raw="{not json")
    assert status == 400
    assert set(error) == {"error", "error_description"}
    assert error["error"] == "invalid_request"

    # It wrote to the stack's table on the moto server.
    (table,) = of_type(stack.template, "AWS::DynamoDB::Table")
    items = client(aws, moto_url, "dynamodb").scan(TableName=stack.physical[table])["Items"]
    assert items
    # Its log lines (stdout, which Lambda sends to CloudWatch) are there, and hold no secret.
    logs = function.logs()
    assert '"event":"request"' in logs
    for secret in (APP_SECRET, body["access_token"], body["refresh_token"],
                   refreshed["refresh_token"], "sim-alice.1", "PRIVATE KEY"):  # fmt: skip
        assert secret not in logs
