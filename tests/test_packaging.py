"""requirements.txt (what Chalice packages) and pyproject's dependencies pin the same versions.

Except boto3: the Lambda runtime provides it (and botocore), so requirements.txt leaves it out.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PINNED = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r"\s*(?:\[(?P<extras>[^\]]*)\])?"
    r"\s*==\s*(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)"
)


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


def requirements_lines() -> list[str]:
    lines = []
    for raw in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def project_dependencies() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]["dependencies"]


def pins(requirements: list[str]) -> dict[str, tuple[frozenset[str], str]]:
    parsed = [parse_pin(r) for r in requirements]
    names = [name for name, _, _ in parsed]
    assert len(names) == len(set(names)), f"a package is listed twice: {sorted(names)}"
    return {name: (extras, version) for name, extras, version in parsed}


# --- the parser itself ----------------------------------------------------------------------


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


# --- the project's files --------------------------------------------------------------------


def test_requirements_txt_is_not_empty() -> None:
    assert requirements_lines()


def test_every_requirements_txt_entry_is_pinned_with_double_equals() -> None:
    for line in requirements_lines():
        parse_pin(line)


def test_every_project_dependency_is_pinned_with_double_equals() -> None:
    for requirement in project_dependencies():
        parse_pin(requirement)


# In every Lambda Python runtime: packaging them again would only make the zip 16 MB bigger.
PROVIDED_BY_LAMBDA = {"boto3"}


def test_requirements_txt_pins_exactly_the_project_dependencies() -> None:
    project = pins(project_dependencies())
    assert set(project) >= PROVIDED_BY_LAMBDA
    expected = {name: pin for name, pin in project.items() if name not in PROVIDED_BY_LAMBDA}
    assert pins(requirements_lines()) == expected
