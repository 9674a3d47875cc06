"""Every path of the repository that the docs name exists (`chalicelib/...`, `tests/...`, ...).

Code moves (issue #20 moved most of chalicelib into packages); a doc that names a file must name
it where it is now. bench/RESULTS.md is left out: its measurements name the code as it was when
they were taken (profiles list `file:line(function)` of that commit).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "clients").glob("*/README.md")),
]
TOP = ("chalicelib", "tests", "devserver", "infra", "bench", "tools", "clients")
# A path starting at one of TOP (not inside another path, such as build/infra/...), up to the
# first character no path of ours has.
PATH = re.compile(rf"(?<![\w/.-])(?:{'|'.join(TOP)})/[A-Za-z0-9_./*-]*")


def named_paths(text: str) -> set[str]:
    found = set()
    for match in PATH.finditer(text):
        path = match.group(0).rstrip(".,:;")
        if "*" not in path:  # a glob names no one file
            found.add(path)
    return found


def exists(path: str) -> bool:
    if (ROOT / path).exists():
        return True
    module, dot, _attribute = path.rpartition(".")  # `tests/infra/lambda_runtime.http_api_v1_event`
    return bool(dot) and (ROOT / f"{module}.py").is_file()


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    missing = sorted(p for p in named_paths(doc.read_text(encoding="utf-8")) if not exists(p))
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_the_check_finds_paths_and_misses() -> None:
    text = "see `chalicelib/store/table.py`, chalicelib/store.py and build/infra/sam.yaml."
    assert named_paths(text) == {"chalicelib/store/table.py", "chalicelib/store.py"}
    assert exists("chalicelib/store/table.py") and exists("chalicelib/store/")
    assert not exists("chalicelib/store.py")
