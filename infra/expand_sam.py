"""Expand the built SAM template into the plain CloudFormation that AWS would create.

    .venv-infra/bin/python infra/expand_sam.py build/infra/sam.yaml build/infra/expanded.json

Runs the same translator (aws-sam-translator) as CloudFormation's AWS::Serverless transform,
offline: `CodeUri` is pointed at a placeholder S3 object, as `aws cloudformation package`
would do, and parameters take their defaults (WeChatAppId, which has none, a dummy appid).
The result is linted too, and the template tests use it to check what SAM generates from the
function: its `live` alias and version, which the HTTP API's integration and invoke permission
name, and CodeDeploy's application and deployment group with the rollback alarms.
Needs aws-sam-translator, so it runs in .venv-infra (Makefile target infra-lint).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

PLACEHOLDER_CODE_URI = "s3://wxauth-artifacts-placeholder/deployment.zip"
PARAMETERS = {"WeChatAppId": "wx0000000000000000"}


class _NoManagedPolicies:
    """The template names managed policies by ARN only, so no IAM lookup is needed."""

    def load(self) -> dict[str, str]:
        return {}


def expand(template: dict) -> dict:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform

    template = json.loads(json.dumps(template))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = PLACEHOLDER_CODE_URI
    expanded = transform(template, dict(PARAMETERS), _NoManagedPolicies())
    return expanded


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    template = yaml.safe_load(Path(argv[1]).read_text())
    Path(argv[2]).write_text(json.dumps(expand(template), indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
