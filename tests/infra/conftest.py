"""The deployment template, built once per session by infra/build.py (as `make package` does)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA_PYTHON = ROOT / ".venv-infra" / "bin" / "python"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"wxauth_infra_{name}", ROOT / "infra" / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build_module = _load("build")


# Everything infra/build.py reads: a build newer than all of them is current.
BUILD_INPUTS = (
    "app.py",
    "requirements.txt",
    ".chalice/config.json",
    "chalicelib",
    "vendor",
    "infra/resources.yaml",
    "infra/build.py",
)


def _latest_input_change() -> float:
    latest = 0.0
    for name in BUILD_INPUTS:
        path = ROOT / name
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                latest = max(latest, f.stat().st_mtime)
    return latest


def _newer_than_inputs(outputs: list[Path]) -> bool:
    if not all(p.is_file() for p in outputs):
        return False
    return min(p.stat().st_mtime for p in outputs) > _latest_input_change()


def _built_for_this_python(template: Path) -> bool:
    """A build made by another Python (a .venv of before) has another runtime: not current."""
    function = build_module.load_template(template)["Resources"]["APIHandler"]["Properties"]
    return (function["Runtime"], function.get("Architectures")) == (
        build_module.lambda_runtime(),
        [build_module.DEFAULT_ARCHITECTURE],
    )


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sam.yaml and the checked deployment.zip: those `make package` left in build/infra (as
    `make test` runs it first) if they are newer than every input, else a fresh build.
    WXAUTH_INFRA_REBUILD=1 always builds afresh."""
    made = ROOT / "build" / "infra"
    outputs = [made / "sam.yaml", made / "deployment.zip"]
    outdir = tmp_path_factory.mktemp("infra-build")
    if (
        os.environ.get("WXAUTH_INFRA_REBUILD") != "1"
        and _newer_than_inputs(outputs)
        and _built_for_this_python(made / "sam.yaml")
    ):
        for p in outputs:
            shutil.copy2(p, outdir / p.name)
    else:
        build_module.build(outdir)
    return outdir


@pytest.fixture(scope="session")
def template(build_dir: Path) -> dict[str, Any]:
    return build_module.load_template(build_dir / "sam.yaml")


@pytest.fixture(scope="session")
def expanded(build_dir: Path) -> dict[str, Any]:
    """The plain CloudFormation that the AWS::Serverless transform makes of the template."""
    if not INFRA_PYTHON.exists():
        pytest.skip("needs .venv-infra (aws-sam-translator): run `make infra-lint` once")
    target = build_dir / "expanded.json"  # a copy or a temporary build: never build/infra
    subprocess.run(  # noqa: S603 - fixed argv
        [
            str(INFRA_PYTHON),
            str(ROOT / "infra" / "expand_sam.py"),
            str(build_dir / "sam.yaml"),
            str(target),
        ],
        check=True,
    )
    return json.loads(target.read_text())
