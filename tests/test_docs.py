"""The docs hold together: every relative link and `#anchor` resolves, the README's first screen
has the two set-up commands, and every doc in docs/ says first whom it is for. No network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
CHECKED = [
    ROOT / "README.md",
    ROOT / "README.zh-CN.md",
    *DOCS,
    ROOT / "clients" / "miniprogram" / "README.md",
    ROOT / "clients" / "miniprogram" / "CHANGELOG.md",
    ROOT / "examples" / "verify" / "README.md",
    ROOT / "bench" / "RESULTS.md",
]
# The readers' docs that the README's map names (issue #16); others may be added.
READER_DOCS = ["miniprogram.md", "backend.md", "operators.md", "contributors.md"]
FIRST_SCREEN = 40  # lines

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+).*?\1")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code blanked out."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, INLINE_CODE.sub("", line)))
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lowercase, spaces to
    hyphens (letters, digits, `-` and `_` kept, non-ASCII letters included)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"(\*\*|__|\*|~~)", "", text)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, duplicates suffixed -1, -2, ... as GitHub does."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines_keep_code(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def prose_lines_keep_code(text: str) -> list[tuple[int, str]]:
    """Lines outside fenced code blocks, inline code kept (headings may hold it)."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def relative_links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link outside code that is not a URL; a link's text may
    run over several lines."""
    text = path.read_text(encoding="utf-8")
    kept = dict(prose_lines(text))
    prose = "\n".join(kept.get(number, "") for number in range(1, len(text.splitlines()) + 1))
    return [
        (prose.count("\n", 0, match.start()) + 1, match.group(1))
        for match in LINK.finditer(prose)
        if not EXTERNAL.match(match.group(1))
    ]


def test_the_slug_follows_githubs_rules() -> None:
    assert github_slug("After: Python 3.13 + HTTP API") == "after-python-313--http-api"
    assert github_slug("WeChat server access token (credential broker)") == (
        "wechat-server-access-token-credential-broker"
    )
    assert github_slug("OAuth 2.0 endpoints") == "oauth-20-endpoints"
    assert github_slug("`chalice local` and snake_case") == "chalice-local-and-snake_case"
    assert github_slug("WeChat server access token: operator's steps") == (
        "wechat-server-access-token-operators-steps"
    )


def test_duplicate_headings_get_numbered_anchors(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# A\n## Summary\n```\n# not a heading\n```\n## Summary\n### Summary\n")
    assert anchors(doc) == {"a", "summary", "summary-1", "summary-2"}


def test_links_in_code_are_not_links_and_a_link_may_span_lines(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[a](x.md) `[b](y.md)`\n```\n[c](z.md)\n```\n[d](https://example.com) [e\nf](g.md#h)\n"
    )
    assert relative_links(doc) == [(1, "x.md"), (5, "g.md#h")]


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    broken = []
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not linked.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            broken.append(f"{where} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_first_screen_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_screen = "\n".join(readme.splitlines()[:FIRST_SCREEN])
    # .ci/run calls `make test`: the README must keep naming it as the test command.
    assert "make run" in first_screen
    assert "make test" in first_screen


def test_the_readme_first_screen_links_the_chinese_readme_and_says_the_licence() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_screen = "\n".join(readme.splitlines()[:FIRST_SCREEN])
    assert "](README.zh-CN.md)" in first_screen
    assert "Apache License 2.0" in first_screen and "](LICENSE)" in first_screen
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")[:200]


def test_no_doc_points_outside_the_repository() -> None:
    """The docs stand alone: no pointer to a contract or style file next to the repository."""
    for path in CHECKED:
        text = path.read_text(encoding="utf-8")
        for outside in ("CONTRACT.md", "STYLE.md", "../shared"):
            assert outside not in text, f"{path.relative_to(ROOT)} points at {outside}"


def test_the_readme_maps_every_readers_doc() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in READER_DOCS:
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"
        assert f"](docs/{name})" in readme, f"the README's map does not link docs/{name}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_doc_starts_with_whom_it_is_for(path: Path) -> None:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0].startswith("# "), f"{path.name}: the first line is not its title"
    # A Chinese doc (`*.zh-CN.md`) says it in Chinese: "面向..." ("for ...").
    opening = "面向" if path.name.endswith(".zh-CN.md") else "For "
    assert lines[1].startswith(opening), (
        f"{path.name}: the line after the title must say whom the doc is for ({opening!r}...)"
    )


# -- the mini-program guide's JavaScript examples call only what exists -------------------------

JS_FENCE = re.compile(r"^```js\n(.*?)^```", re.S | re.M)
JS_CALL = re.compile(r"(?<![\w$.])([A-Za-z_$][\w$]*)\s*\(")
JS_DEFINED = re.compile(
    r"\bfunction\s+([A-Za-z_$][\w$]*)|\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*="
    r"|^[ \t]*(?:async[ \t]+)?([A-Za-z_$][\w$]*)[ \t]*\([^)\n]*\)[ \t]*\{",
    re.M,
)
JS_REQUIRED = re.compile(r"\{([^}]*)\}\s*=\s*require\('@wxauth/miniprogram'\)")
JS_KEYWORDS = {"if", "for", "while", "switch", "catch", "function", "return", "typeof", "await"}
JS_GLOBALS = {"Page", "Promise", "require", "setTimeout", "Error"}  # the mini-program's own


def client_exports() -> set[str]:
    source = (ROOT / "clients" / "miniprogram" / "index.js").read_text(encoding="utf-8")
    block = source.split("module.exports = {", 1)[1].split("};", 1)[0]
    return set(re.findall(r"^\s*([A-Za-z_$][\w$]*):", block, re.M))


@pytest.mark.parametrize("name", ["miniprogram.md", "miniprogram.zh-CN.md"])
def test_the_guides_javascript_calls_only_what_exists(name: str) -> None:
    blocks = JS_FENCE.findall((ROOT / "docs" / name).read_text(encoding="utf-8"))
    assert blocks
    exports = client_exports()
    assert {"createAuthClient", "wxAdapter"} <= exports
    for block in blocks:
        code = "\n".join(re.sub(r"(^|\s)//.*$", "", line) for line in block.splitlines())
        defined = {n for groups in JS_DEFINED.findall(code) for n in groups if n}
        required = {n.strip() for names in JS_REQUIRED.findall(code) for n in names.split(",")}
        assert required <= exports, f"{name}: the client exports no {required - exports}"
        called = set(JS_CALL.findall(code)) - JS_KEYWORDS
        unknown = called - defined - required - JS_GLOBALS
        assert not unknown, f"{name}: calls {sorted(unknown)}, defined nowhere in\n{block}"


def test_the_javascript_check_finds_undefined_calls() -> None:
    code = "async function api(p) { return request(p, {}); }\nconst x = post('/a');\n"
    called = set(JS_CALL.findall(code)) - JS_KEYWORDS
    defined = {n for groups in JS_DEFINED.findall(code) for n in groups if n}
    assert called - defined == {"request", "post"}
