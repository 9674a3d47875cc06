"""AWS China (docs/operators.md, "Deploy in AWS China"): the build does not depend on the region
(`make deploy` in cn-northwest-1 builds the template the tests check), and the build and the
tests take a PyPI or npm mirror through the tools' usual variables (PIP_INDEX_URL,
npm_config_registry): nothing names an index."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT, build_module


def test_a_build_for_a_china_region_is_the_same_template_and_zip(
    build_dir: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_REGION"] = "cn-northwest-1"  # as infra/deploy.sh exports it
    subprocess.run(  # noqa: S603 - the project's own build
        [sys.executable, str(ROOT / "infra" / "build.py"), str(tmp_path)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    assert (tmp_path / "sam.yaml").read_text() == (build_dir / "sam.yaml").read_text()
    assert (tmp_path / "deployment.zip").read_bytes() == (build_dir / "deployment.zip").read_bytes()


def test_the_build_leaves_the_index_to_pip_and_its_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = []

    def run(command, **kwargs):
        calls.append((command, kwargs))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(build_module.subprocess, "run", run)
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    lock = tmp_path / "requirements.txt"
    lock.write_text("")
    target = build_module.target_for(build_module.lambda_runtime(), "arm64")
    build_module.install_dependencies(lock, tmp_path / "vendor", target)
    ((command, kwargs),) = calls
    assert command[1:4] == ["-m", "pip", "install"]
    for option in ("--index-url", "-i", "--extra-index-url", "--no-index", "--find-links"):
        assert option not in command
    # No env= of its own: pip runs with this process's environment, PIP_INDEX_URL included.
    assert "env" not in kwargs


def test_npm_installs_take_npm_config_registry() -> None:
    makefile = (ROOT / "Makefile").read_text()
    npm_lines = [line for line in makefile.splitlines() if re.match(r"\tnpm ", line)]
    assert len(npm_lines) == 2  # the client's devDependencies, the examples' jose
    for line in npm_lines:
        assert line.startswith("\tnpm ci ")
        assert "--registry" not in line
    for lock in ("clients/miniprogram/package-lock.json", "examples/verify/node/package-lock.json"):
        packages = {n: p for n, p in json.loads((ROOT / lock).read_text())["packages"].items() if n}
        assert packages, lock
        for name, package in packages.items():
            # No registry address (npm then asks npm_config_registry), or the default one, which
            # npm rewrites to npm_config_registry (replace-registry-host); every file pinned.
            resolved = package.get("resolved", "https://registry.npmjs.org/")
            assert resolved.startswith("https://registry.npmjs.org/"), (lock, name)
            assert package["integrity"].startswith("sha512-"), (lock, name)
