"""The Chinese docs say what the English ones say where it can be checked: both languages name
the same routes, settings (environment variables) and commands (make targets, wxauth-admin
commands). A Chinese doc translates either its English twin whole, or the sections it lists in
a first-lines comment `<!-- translates: operators.md#deploy-to-aws ... -->` (each section with
its subsections). No network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_docs import anchors, github_slug

ROOT = Path(__file__).resolve().parent.parent
PAIRS = {  # the Chinese doc -> its English twin
    ROOT / "README.zh-CN.md": ROOT / "README.md",
    ROOT / "docs" / "miniprogram.zh-CN.md": ROOT / "docs" / "miniprogram.md",
    ROOT / "docs" / "operators.zh-CN.md": ROOT / "docs" / "operators.md",
}
TRANSLATES = re.compile(r"<!--\s*translates:\s*(.*?)\s*-->", re.S)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ROUTE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9_.{}/-]*[A-Za-z0-9_}])")
SETTING = re.compile(
    r"\b(?:(?:AUTH|WECHAT|WXAUTH|AWS|FAKE_WECHAT|PIP|UV)_[A-Z0-9_]*[A-Z0-9]|PORT|npm_config_registry)\b"
)
MAKE = re.compile(r"\bmake ([a-z][a-z-]*[a-z])\b")
ADMIN = re.compile(r"\bwxauth-admin\s+([a-z][a-z-]*)(?:\s+([a-z][a-z-]*[a-z]))?")
ADMIN_GROUPS = {"client", "sessions", "user", "keys", "app"}


def sections(text: str, slugs: list[str]) -> str:
    """The sections of `text` whose headings have these anchors, each with its subsections."""
    lines, out, keep_level = text.splitlines(), [], None
    fenced = False
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else HEADING.match(line)
        if match:
            level = len(match[1])
            if keep_level is not None and level <= keep_level:
                keep_level = None
            if keep_level is None and github_slug(match[2]) in slugs:
                keep_level = level
        if keep_level is not None:
            out.append(line)
    return "\n".join(out)


def names(text: str) -> dict[str, set[str]]:
    admin = set()
    for group, verb in ADMIN.findall(text):
        admin.add(f"{group} {verb}" if group in ADMIN_GROUPS and verb else group)
    return {
        "routes": {f"{m} {p}" for m, p in ROUTE.findall(text)},
        "settings": set(SETTING.findall(text)),
        "make targets": set(MAKE.findall(text)),
        "wxauth-admin commands": admin,
    }


def english_part(chinese: Path, english: Path) -> str:
    text = english.read_text(encoding="utf-8")
    marker = TRANSLATES.search("\n".join(chinese.read_text(encoding="utf-8").splitlines()[:6]))
    if not marker:
        return text
    slugs = []
    for target in marker[1].split():
        file_part, _, anchor = target.partition("#")
        assert file_part == english.name, f"{chinese.name} translates {target}, not {english.name}"
        assert anchor in anchors(english), f"{chinese.name}: no section #{anchor} in {english.name}"
        slugs.append(anchor)
    return sections(text, slugs)


@pytest.mark.parametrize("chinese", PAIRS, ids=lambda p: str(p.relative_to(ROOT)))
def test_both_languages_name_the_same_routes_settings_and_commands(chinese: Path) -> None:
    english = PAIRS[chinese]
    assert chinese.is_file(), f"{chinese.relative_to(ROOT)} is missing"
    want = names(english_part(chinese, english))
    have = names(chinese.read_text(encoding="utf-8"))
    assert want["routes"] and want["settings"]
    for kind in want:
        missing, extra = want[kind] - have[kind], have[kind] - want[kind]
        assert not missing and not extra, (
            f"{chinese.name} vs {english.name}, {kind}: "
            f"only in English {sorted(missing)}, only in Chinese {sorted(extra)}"
        )


@pytest.mark.parametrize("chinese", PAIRS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_language_links_the_other(chinese: Path) -> None:
    english = PAIRS[chinese]
    first = "\n".join(english.read_text(encoding="utf-8").splitlines()[:6])
    assert f"]({chinese.name})" in first or f"]({chinese.relative_to(english.parent)})" in first
    first = "\n".join(chinese.read_text(encoding="utf-8").splitlines()[:8])
    assert f"]({english.name})" in first


def test_the_chinese_docs_are_written_in_chinese() -> None:
    for chinese in PAIRS:
        text = chinese.read_text(encoding="utf-8")
        han = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
        assert han > 300, f"{chinese.name}: {han} Chinese characters"


def test_the_extraction_finds_what_it_should() -> None:
    text = (
        "`POST /auth/login` and GET /auth/sessions/{sid}; `AUTH_ACCESS_TTL`, PORT, "
        "npm_config_registry; make run, `make test-js`; wxauth-admin user ban, wxauth-admin "
        "keys rotate --emergency\n```sh\nmake deploy\n```"
    )
    assert names(text) == {
        "routes": {"POST /auth/login", "GET /auth/sessions/{sid}"},
        "settings": {"AUTH_ACCESS_TTL", "PORT", "npm_config_registry"},
        "make targets": {"run", "test-js", "deploy"},
        "wxauth-admin commands": {"user ban", "keys rotate"},
    }
    doc = "# A\n## B\nPORT\n### C\nAUTH_X1\n## D\nWECHAT_Y\n"
    assert sections(doc, ["b"]) == "## B\nPORT\n### C\nAUTH_X1"
