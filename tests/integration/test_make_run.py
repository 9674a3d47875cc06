"""`make run` installs only what serving needs: requirements-run.txt (written by `make lock` from
pyproject.toml's dependencies and requirements-run.in, at the dev lock's versions), into .venv
with its own stamp, so `make test` still installs the whole dev lock. The last test makes a
fresh venv of requirements-run.txt alone and serves a login from it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.integration.local_server import REPO_ROOT, local_server

RUN_LOCK = REPO_ROOT / "requirements-run.txt"
RUN_INPUT = REPO_ROOT / "requirements-run.in"
DEV_LOCK = REPO_ROOT / "requirements-dev.txt"
PROJECT = "wxauth (pyproject.toml)"
# What serving needs beside the service's dependencies: Chalice (`chalice local`), moto's
# DynamoDB backend and what its ThreadedMotoServer imports.
SERVER_EXTRAS = {"chalice", "moto", "flask", "flask-cors"}
# Tools of `make test` that serving never needs, nor moto's `server` extra's other services.
NOT_FOR_SERVING = {
    "pytest", "ruff", "hypothesis", "schemathesis", "authlib", "cfn-lint", "sympy", "networkx",
}  # fmt: skip
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, dict]:
    """name -> {"version", "hashes", "via"} of a `uv pip compile --generate-hashes` output."""
    entries: dict[str, dict] = {}
    current: dict | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        match = REQUIREMENT.match(line)
        if match:
            name = normalize(match[1])
            assert name not in entries, f"{name} locked twice"
            current = entries[name] = {"version": match[2], "hashes": [], "via": []}
        elif current is not None and stripped.startswith("--hash=sha256:"):
            current["hashes"].append(stripped.removesuffix("\\").strip())
        elif current is not None and stripped.startswith("# via "):
            current["via"].append(stripped.removeprefix("# via ").strip())
        elif current is not None and stripped.startswith("#   "):
            current["via"].append(stripped.removeprefix("#   ").strip())
    return entries


def test_the_run_lock_is_make_locks_with_every_package_hashed() -> None:
    text = RUN_LOCK.read_text(encoding="utf-8")
    assert "#    make lock\n" in text.split("\n\n", 1)[0]
    entries = read_lock(RUN_LOCK)
    assert entries
    for name, entry in entries.items():
        assert entry["hashes"], f"{name} has no --hash: pip --require-hashes fails"
        assert entry["via"], f"nothing pulls in {name}"


def test_the_run_lock_is_the_dev_locks_versions_and_files() -> None:
    dev = read_lock(DEV_LOCK)
    for name, entry in read_lock(RUN_LOCK).items():
        assert name in dev, f"{name} is in the run lock but not in the dev lock"
        assert entry["version"] == dev[name]["version"], name
        assert set(entry["hashes"]) <= set(dev[name]["hashes"]), name


def test_the_run_lock_holds_the_dependencies_and_the_server_and_nothing_for_tests() -> None:
    entries = read_lock(RUN_LOCK)
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    dependencies = {normalize(REQUIREMENT.match(d)[1]) for d in project["dependencies"]}
    direct = {name for name, e in entries.items() if PROJECT in e["via"]}
    assert direct == dependencies, "pyproject.toml's dependencies changed: make lock"
    inputs = {name for name, e in entries.items() if "-r requirements-run.in" in e["via"]}
    assert inputs == SERVER_EXTRAS
    assert not NOT_FOR_SERVING & set(entries)
    assert len(entries) < len(read_lock(DEV_LOCK))


def test_make_run_installs_the_run_lock_and_make_test_the_dev_lock() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    run_recipe = re.search(r"^\$\(RUN_STAMP\): (.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert run_recipe and run_recipe[1].split() == ["requirements-run.txt"]
    assert "-r requirements-run.txt" in run_recipe[2] and "requirements-dev" not in run_recipe[2]
    assert re.search(r"^run: \$\(RUN_STAMP\)$", makefile, re.M)
    assert re.search(r"^test: \$\(STAMP\)$", makefile, re.M)
    assert re.search(r"^\$\(STAMP\): pyproject.toml requirements-dev.txt$", makefile, re.M)
    assert "requirements-run.in -o requirements-run.txt" in makefile  # written by make lock


@pytest.mark.integration
def test_a_venv_of_the_run_lock_alone_serves_a_login(tmp_path: Path) -> None:
    venv = tmp_path / "run-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
    python = str(venv / "bin" / "python")
    subprocess.run(  # noqa: S603 - the project's lock, as the Makefile installs it
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--require-hashes", "--no-deps", "-r", str(RUN_LOCK)],
        check=True,
    )  # fmt: skip
    installed = subprocess.run(  # noqa: S603
        [python, "-c", "import importlib.util as u; print(u.find_spec('pytest') is None)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert installed == "True"
    with local_server(tmp_path, python=python) as server:
        request = urllib.request.Request(  # noqa: S310 - loopback
            server.url + "/auth/login",
            data=b'{"code": "alice.1"}',
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert response.status == 200
            assert b'"access_token"' in response.read()
