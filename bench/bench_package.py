"""deployment size: the zip `chalice package` builds through `infra/build.py` for the deployed
architecture (arm64, its default; the build also checks that every pinned wheel is in it, built
for that runtime and architecture), in MB, and what dominates it. Target <= 6.5 MB. Also the size
of its x86_64 twin (`--architecture x86_64`), for comparison.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import harness as h
from common import Section, Summary, markdown_table, verdict, zip_top_level

TARGET_MB = 6.5  # 6.0 until issues 24 and 25 (bench/RESULTS.md)
MB = 1024 * 1024


def build(outdir: Path, architecture: str | None = None) -> Path:
    """`infra/build.py OUTDIR` (its default architecture, the deployed one) or with
    `--architecture`; returns the zip."""
    extra = ["--architecture", architecture] if architecture else []
    result = subprocess.run(  # noqa: S603 - this interpreter, the repository's build script
        [sys.executable, str(h.REPO_ROOT / "infra" / "build.py"), str(outdir), *extra],
        cwd=h.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"infra/build.py failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return outdir / "deployment.zip"


def architecture_of(zip_path: Path) -> str:
    """The function's architecture from the template `infra/build.py` wrote beside the zip."""
    template = zip_path.with_name("sam.yaml")
    if template.is_file():
        m = re.search(r"Architectures:\s*\n\s*-\s*(\w+)", template.read_text())
        if m:
            return m.group(1)
    return "unknown architecture"


def _twin_line(twin: Path) -> str:
    size = twin.stat().st_size
    with zipfile.ZipFile(twin) as zf:
        infos = zf.infolist()
    unzipped = sum(i.file_size for i in infos) / MB
    return (
        f"Its twin for {architecture_of(twin)} (`infra/build.py --architecture x86_64`, same "
        f"lock): {size / MB:.2f} MB ({size:,} bytes; {unzipped:.1f} MB unzipped, "
        f"{len(infos):,} files).\n\n"
    )


def describe(zip_path: Path, top: int = 10, twin: Path | None = None) -> Section:
    size = zip_path.stat().st_size
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        dists = sorted(
            i.filename.split("/", 1)[0].removesuffix(".dist-info")
            for i in infos
            if i.filename.endswith(".dist-info/METADATA")
        )
    for info in infos:
        g = groups[zip_top_level(info.filename)]
        g[0] += info.compress_size
        g[1] += info.file_size
        g[2] += 1
    ranked = sorted(groups.items(), key=lambda kv: kv[1][0], reverse=True)
    mb = size / MB
    shown = zip_path.relative_to(h.REPO_ROOT) if zip_path.is_relative_to(h.REPO_ROOT) else zip_path
    unzipped = sum(g[1] for g in groups.values()) / MB
    body = (
        f"`{shown}` ({architecture_of(zip_path)}): **{mb:.2f} MB** ({size:,} bytes; "
        f"{unzipped:.1f} MB unzipped, {len(infos):,} files). Target <= {TARGET_MB:g} MB: "
        f"{verdict(mb <= TARGET_MB)}.\n\n"
        + (_twin_line(twin) if twin else "")
        + f"Wheels in the zip: {', '.join(f'`{d}`' for d in dists) or 'none'}.\n\n"
        + markdown_table(
            ["top-level entry", "compressed", "share", "unzipped", "files"],
            [
                (f"`{name}`", f"{c / MB:.2f} MB", f"{100 * c / size:.0f}%", f"{u / MB:.2f} MB", n)
                for name, (c, u, n) in ranked[:top]
            ],
        )
    )
    arch = architecture_of(zip_path)
    return Section(
        "deployment size",
        body,
        [
            Summary(
                f"deployment zip ({arch})", f"{mb:.2f} MB", f"<= {TARGET_MB:g} MB", mb <= TARGET_MB
            )
        ],
    )


def run(
    env: h.Env | None = None,
    *,
    quick: bool = False,
    profile: bool = False,
    zip_path: Path | None = None,
) -> Section:
    if zip_path is not None:
        return describe(zip_path)
    zip_path = build(h.REPO_ROOT / "build" / "bench-package")
    twin = build(h.REPO_ROOT / "build" / "bench-package-x86_64", "x86_64")
    return describe(zip_path, twin=twin)
