"""deployment size: the zip `chalice package` builds (through `infra/build.py`, which also checks
that every pinned wheel is in it), in MB, and what dominates it. Target <= 6 MB.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import harness as h
from common import Section, Summary, markdown_table, verdict, zip_top_level

TARGET_MB = 6.0
MB = 1024 * 1024


def build(outdir: Path) -> Path:
    result = subprocess.run(  # noqa: S603 - this interpreter, the repository's build script
        [sys.executable, str(h.REPO_ROOT / "infra" / "build.py"), str(outdir)],
        cwd=h.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"infra/build.py failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return outdir / "deployment.zip"


def describe(zip_path: Path, top: int = 10) -> Section:
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
        f"`{shown}`: **{mb:.2f} MB** ({size:,} bytes; {unzipped:.1f} MB unzipped, "
        f"{len(infos):,} files). Target <= {TARGET_MB:g} MB: {verdict(mb <= TARGET_MB)}.\n\n"
        f"Wheels in the zip: {', '.join(f'`{d}`' for d in dists) or 'none'}.\n\n"
        + markdown_table(
            ["top-level entry", "compressed", "share", "unzipped", "files"],
            [
                (f"`{name}`", f"{c / MB:.2f} MB", f"{100 * c / size:.0f}%", f"{u / MB:.2f} MB", n)
                for name, (c, u, n) in ranked[:top]
            ],
        )
    )
    return Section(
        "deployment size",
        body,
        [Summary("deployment zip", f"{mb:.2f} MB", f"<= {TARGET_MB:g} MB", mb <= TARGET_MB)],
    )


def run(
    env: h.Env | None = None,
    *,
    quick: bool = False,
    profile: bool = False,
    zip_path: Path | None = None,
) -> Section:
    if zip_path is None:
        zip_path = build(h.REPO_ROOT / "build" / "bench-package")
    return describe(zip_path)
