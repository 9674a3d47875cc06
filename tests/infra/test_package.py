"""The deployment package: what infra/build.py installs into it, for which architecture, and
that two builds of one tree ship the same files (docs/contributors.md "Reproducible builds")."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT, build_module


def contents(zip_path: Path) -> dict[str, str]:
    """File name -> SHA-256 of its bytes (zip timestamps and order left aside)."""
    with zipfile.ZipFile(zip_path) as zf:
        return {
            info.filename: hashlib.sha256(zf.read(info)).hexdigest()
            for info in zf.infolist()
            if not info.is_dir()
        }


def function(build_dir: Path) -> dict:
    template = build_module.load_template(build_dir / "sam.yaml")
    return template["Resources"]["APIHandler"]["Properties"]


@pytest.fixture(scope="module")
def second_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another build of the same tree, at another time in another scratch directory."""
    outdir = tmp_path_factory.mktemp("second-build")
    build_module.build(outdir)
    return outdir


@pytest.fixture(scope="module")
def x86_64_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("x86_64-build")
    build_module.build(outdir, architecture="x86_64")
    return outdir


# -- reproducible -------------------------------------------------------------------------------


def test_two_builds_of_one_tree_ship_the_same_files(build_dir: Path, second_build: Path) -> None:
    first = contents(build_dir / "deployment.zip")
    second = contents(second_build / "deployment.zip")
    assert sorted(first) == sorted(second)
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"{len(differ)} files differ between two builds, e.g. {differ[:3]}"
    assert (build_dir / "sam.yaml").read_text() == (second_build / "sam.yaml").read_text()


def test_the_zip_holds_exactly_the_runtime_lock(build_dir: Path) -> None:
    """Every package of requirements.txt at its locked version, and no other distribution
    (no resolution at build time adds one)."""
    with zipfile.ZipFile(build_dir / "deployment.zip") as zf:
        names = zf.namelist()
    shipped = {
        (build_module._normalize(m.group(1)), m.group(2))
        for m in (re.fullmatch(r"([^/]+)-([^/-]+)\.dist-info/METADATA", n) for n in names)
        if m
    }
    locked = build_module._pins((ROOT / build_module.RUNTIME_LOCK).read_text())
    assert shipped == {(build_module._normalize(name), version) for name, version in locked}
    assert not any(n.endswith(".pyc") or n.startswith("bin/") for n in names)


def test_lock_parser_reads_hashed_multiline_entries() -> None:
    lock = (
        "# header\ncffi==2.1.1 \\\n    --hash=sha256:" + "a" * 64 + " \\\n"
        "    --hash=sha256:" + "b" * 64 + "\n    # via cryptography\n"
        "pyjwt==2.15.1 \\\n    --hash=sha256:" + "c" * 64 + "\n"
    )
    assert build_module._pins(lock) == [("cffi", "2.1.1"), ("pyjwt", "2.15.1")]


# -- the architecture -----------------------------------------------------------------------------


def test_the_default_build_is_python_3_13_on_arm64(build_dir: Path) -> None:
    assert build_module.DEFAULT_ARCHITECTURE == "arm64"
    assert function(build_dir)["Runtime"] == "python3.13"
    assert function(build_dir)["Architectures"] == ["arm64"]
    rust = "cryptography/hazmat/bindings/_rust.abi3.so"
    with zipfile.ZipFile(build_dir / "deployment.zip") as zf:
        elf = zf.read(rust)
        assert int.from_bytes(elf[18:20], "little") == 183  # EM_AARCH64
        assert "_cffi_backend.cpython-313-aarch64-linux-gnu.so" in zf.namelist()


def test_the_x86_64_twin_is_the_same_package_for_the_other_cpu(
    build_dir: Path, x86_64_build: Path
) -> None:
    assert function(x86_64_build)["Architectures"] == ["x86_64"]
    assert function(x86_64_build)["Runtime"] == "python3.13"
    arm64 = contents(build_dir / "deployment.zip")
    x86_64 = contents(x86_64_build / "deployment.zip")
    # Compiled modules and their wheels' metadata (RECORD, WHEEL, SBOMs) differ; nothing else.
    only_arm64 = {n.replace("aarch64", "x86_64") for n in set(arm64) - set(x86_64)}
    assert only_arm64 == set(x86_64) - set(arm64)
    common = set(arm64) & set(x86_64)
    differ = {n for n in common if arm64[n] != x86_64[n]}
    assert all(n.endswith(".so") or ".dist-info/" in n for n in differ), sorted(differ)
    assert "cryptography/hazmat/bindings/_rust.abi3.so" in differ


def test_each_zip_passes_only_its_own_architectures_check(
    build_dir: Path, x86_64_build: Path
) -> None:
    lock = (ROOT / build_module.RUNTIME_LOCK).read_text()
    arm64 = build_module.target_for("python3.13", "arm64")
    x86_64 = build_module.target_for("python3.13", "x86_64")
    assert build_module.check_deployment_zip(build_dir / "deployment.zip", lock, arm64) == []
    assert build_module.check_deployment_zip(x86_64_build / "deployment.zip", lock, x86_64) == []
    wrong = build_module.check_deployment_zip(build_dir / "deployment.zip", lock, x86_64)
    assert any("_rust.abi3.so is built for another CPU than x86_64" in p for p in wrong)
    assert any("cryptography-" in p and "not python3.13" in p for p in wrong)


def test_pip_is_asked_for_every_manylinux_the_runtime_can_load() -> None:
    target = build_module.target_for("python3.13", "arm64")
    platforms = build_module.pip_platforms(target)
    assert platforms[0] == "manylinux_2_34_aarch64"  # Amazon Linux 2023
    assert "manylinux_2_28_aarch64" in platforms
    assert platforms[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert not any("2_35" in p or "x86_64" in p for p in platforms)


def test_the_stage_architecture_goes_into_chalices_config(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text((ROOT / ".chalice" / "config.json").read_text())
    build_module.set_stage_architecture(config, "x86_64")
    stages = json.loads(config.read_text())["stages"]
    assert stages["prod"]["lambda_architecture"] == "x86_64"
    assert "lambda_architecture" not in stages["local"]


def test_build_refuses_an_unknown_architecture(tmp_path: Path) -> None:
    with pytest.raises(build_module.BuildError, match="architecture"):
        build_module.build(tmp_path / "out", architecture="riscv64")
