"""The locks agree with pyproject.toml (docs/contributors.md "Reproducible builds").

`make lock` (uv pip compile --generate-hashes) writes requirements-dev.txt (what `make install`
puts in .venv), requirements.txt (what infra/build.py puts in the Lambda zip: the dependencies
less boto3, which the Lambda runtime provides) and infra/requirements-lint.txt (.venv-infra).
These tests fail when a pin changed in pyproject.toml (or requirements-lint.in) without
`make lock`, or when a lock was edited by hand into something no resolution produced.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = ROOT / "requirements.txt"
DEV_LOCK = ROOT / "requirements-dev.txt"
LINT_LOCK = ROOT / "infra" / "requirements-lint.txt"
LINT_INPUT = ROOT / "infra" / "requirements-lint.in"
PROJECT = "wxauth (pyproject.toml)"

PINNED = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r"\s*(?:\[(?P<extras>[^\]]*)\])?"
    r"\s*==\s*(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)"
)
SHA256 = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pin(requirement: str) -> tuple[str, frozenset[str], str]:
    """(normalized name, normalized extras, version) of `name[extras]==version`."""
    match = PINNED.fullmatch(requirement.strip())
    assert match, f"not pinned with == (or carries a marker): {requirement!r}"
    extras = frozenset(
        normalize(extra.strip()) for extra in (match["extras"] or "").split(",") if extra.strip()
    )
    return normalize(match["name"]), extras, match["version"]


@dataclass(frozen=True)
class Locked:
    """One entry of a lock: its pin, its hashes, and what pulled it in (uv's `# via`)."""

    version: str
    hashes: tuple[str, ...]
    via: tuple[str, ...]


def read_lock(text: str) -> dict[str, Locked]:
    """A `uv pip compile --generate-hashes` output: `name==version [; marker] \\`, its
    `--hash=sha256:...` lines, then `# via X` or `# via` and one `#   X` line per parent."""
    entries: dict[str, Locked] = {}
    current: dict | None = None
    in_via = False

    def flush() -> None:
        if current:
            assert current["name"] not in entries, f"{current['name']} is locked twice"
            entries[current["name"]] = Locked(
                current["version"], tuple(current["hashes"]), tuple(current["via"])
            )

    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not line.startswith((" ", "#")):
            flush()
            requirement = stripped.removesuffix("\\").split(";", 1)[0]
            name, _extras, version = parse_pin(requirement)
            current, in_via = {"name": name, "version": version, "hashes": [], "via": []}, False
        elif current is None:
            continue  # the header
        elif stripped.startswith("--hash="):
            assert SHA256.fullmatch(stripped.removesuffix("\\").strip()), stripped
            current["hashes"].append(stripped.removesuffix("\\").strip())
        elif stripped == "# via":
            in_via = True
        elif stripped.startswith("# via "):
            current["via"].append(stripped.removeprefix("# via ").strip())
        elif in_via and stripped.startswith("#   "):
            current["via"].append(stripped.removeprefix("#   ").strip())
    flush()
    return entries


def lock(path: Path) -> dict[str, Locked]:
    return read_lock(path.read_text(encoding="utf-8"))


def pins(requirements: list[str]) -> dict[str, str]:
    """normalized name -> version of a list of `name[extras]==version`."""
    parsed = [parse_pin(r) for r in requirements]
    names = [name for name, _, _ in parsed]
    assert len(names) == len(set(names)), f"a package is listed twice: {sorted(names)}"
    return {name: version for name, _, version in parsed}


def pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def runtime_pins() -> dict[str, str]:
    return pins(pyproject()["project"]["dependencies"])


def dev_pins() -> dict[str, str]:
    return pins(pyproject()["project"]["optional-dependencies"]["dev"])


def lint_input_pins() -> dict[str, str]:
    lines = [line.split("#", 1)[0].strip() for line in LINT_INPUT.read_text().splitlines()]
    return pins([line for line in lines if line])


def direct(entries: dict[str, Locked], parent: str) -> dict[str, str]:
    """The entries `parent` asks for itself, name -> version."""
    return {name: e.version for name, e in entries.items() if parent in e.via}


# In every Lambda Python runtime (with botocore and s3transfer): packaging them again would
# only make the zip 16 MB bigger.
PROVIDED_BY_LAMBDA = {"boto3"}
PROVIDED_WITH_IT = {"boto3", "botocore", "s3transfer"}


# --- the parsers themselves -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("boto3==1.44.5", ("boto3", frozenset(), "1.44.5")),
        ("PyJWT==2.15.1", ("pyjwt", frozenset(), "2.15.1")),
        ("Zope.Interface == 7.0", ("zope-interface", frozenset(), "7.0")),
        ("moto[server,DynamoDB]==5.2.5", ("moto", frozenset({"server", "dynamodb"}), "5.2.5")),
    ],
)
def test_parse_pin_normalizes_names_and_extras(requirement: str, expected: tuple) -> None:
    assert parse_pin(requirement) == expected


@pytest.mark.parametrize(
    "requirement",
    ["boto3", "boto3>=1.0", "boto3~=1.44", "boto3==1.*", "boto3===1.0", "-r other.txt"],
)
def test_parse_pin_rejects_unpinned_requirements(requirement: str) -> None:
    with pytest.raises(AssertionError):
        parse_pin(requirement)


HASH_A = "--hash=sha256:" + "a" * 64
HASH_B = "--hash=sha256:" + "b" * 64
SAMPLE_LOCK = f"""\
# This file was autogenerated by uv via the following command:
#    make lock
cffi==2.1.1 ; platform_python_implementation != 'PyPy' \\
    {HASH_A} \\
    {HASH_B}
    # via cryptography
PyJWT==2.15.1 \\
    {HASH_A}
    # via
    #   -c requirements-dev.txt
    #   wxauth (pyproject.toml)
"""


def test_read_lock_reads_pins_hashes_markers_and_both_via_styles() -> None:
    assert read_lock(SAMPLE_LOCK) == {
        "cffi": Locked("2.1.1", (HASH_A, HASH_B), ("cryptography",)),
        "pyjwt": Locked("2.15.1", (HASH_A,), ("-c requirements-dev.txt", PROJECT)),
    }


@pytest.mark.parametrize(
    "bad",
    [
        "cffi>=2.1 \\\n    " + HASH_A + "\n",  # not pinned
        "cffi==2.1.1 \\\n    --hash=sha256:abc\n",  # not a sha256
        "cffi==2.1.1\ncffi==2.1.2\n",  # twice
    ],
    ids=["unpinned", "short-hash", "twice"],
)
def test_read_lock_rejects_what_no_lock_holds(bad: str) -> None:
    with pytest.raises(AssertionError):
        read_lock(bad)


# --- the project's locks ----------------------------------------------------------------------


@pytest.mark.parametrize("path", [RUNTIME_LOCK, DEV_LOCK, LINT_LOCK], ids=lambda p: p.name)
def test_every_locked_package_is_pinned_and_hashed_by_make_lock(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "#    make lock\n" in text.split("\n\n", 1)[0], "write it with `make lock`"
    entries = read_lock(text)
    assert entries
    for name, entry in entries.items():
        assert entry.hashes, f"{path.name}: {name} has no --hash (pip --require-hashes fails)"


@pytest.mark.parametrize("path", [RUNTIME_LOCK, DEV_LOCK, LINT_LOCK], ids=lambda p: p.name)
def test_every_locked_package_is_pulled_in_by_a_pin(path: Path) -> None:
    """Nothing in a lock that neither an input nor another locked package asks for."""
    entries = lock(path)
    inputs = {PROJECT, f"-r {LINT_INPUT.relative_to(ROOT)}"}
    for name, entry in entries.items():
        parents = {p for p in entry.via if not p.startswith("-c ")}
        assert parents, f"{path.name}: nothing pulls in {name}"
        for parent in parents:
            assert parent in inputs or normalize(parent) in entries, (
                f"{path.name}: {name} is there for {parent}, which is not locked"
            )


def test_runtime_lock_pins_exactly_the_dependencies_less_what_lambda_provides() -> None:
    expected = {n: v for n, v in runtime_pins().items() if n not in PROVIDED_BY_LAMBDA}
    assert set(runtime_pins()) >= PROVIDED_BY_LAMBDA
    assert direct(lock(RUNTIME_LOCK), PROJECT) == expected, "pyproject.toml changed: make lock"


def test_runtime_lock_leaves_out_what_the_lambda_runtime_provides() -> None:
    assert not set(lock(RUNTIME_LOCK)) & PROVIDED_WITH_IT


def test_dev_lock_pins_exactly_the_dependencies_and_the_dev_extra() -> None:
    expected = runtime_pins() | dev_pins()
    assert len(expected) == len(runtime_pins()) + len(dev_pins()), "pinned twice in pyproject"
    assert direct(lock(DEV_LOCK), PROJECT) == expected, "pyproject.toml changed: make lock"


def test_the_tests_run_the_versions_the_zip_ships() -> None:
    dev = lock(DEV_LOCK)
    for name, entry in lock(RUNTIME_LOCK).items():
        assert name in dev, f"{name} is in the zip but not in .venv"
        assert dev[name].version == entry.version, f"{name}: zip {entry.version}, .venv {dev[name]}"


def test_lint_lock_pins_exactly_the_linters_of_requirements_lint_in() -> None:
    assert direct(lock(LINT_LOCK), f"-r {LINT_INPUT.relative_to(ROOT)}") == lint_input_pins()


def test_pyproject_targets_python_3_13_only() -> None:
    project = pyproject()
    assert project["project"]["requires-python"] == ">=3.13,<3.14"
    assert project["tool"]["ruff"]["target-version"] == "py313"
