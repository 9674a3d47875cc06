"""A stand-in for the Lambda Python runtime: the runtime's interpreter, only boto3 and botocore
beside the unzipped package, and API Gateway HTTP API events (payload format 1.0).

Used by tests/infra/test_deploy_simulated.py; the child process runs tests/infra/lambda_driver.py.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("lambda_driver.py")
FIND_PYTHON = ROOT / "tools" / "find-python.sh"  # the Makefile's, once the platform work lands


class RuntimeUnavailable(Exception):
    """No interpreter for the Lambda runtime, or its boto3 could not be installed."""


# -- the interpreter ---------------------------------------------------------------------------


def python_version_of(runtime: str) -> str:
    """`python3.13` -> `3.13`."""
    m = re.fullmatch(r"python(3\.\d+)", runtime)
    if not m:
        raise RuntimeUnavailable(f"not a Python Lambda runtime: {runtime}")
    return m.group(1)


def _version_of(python: str) -> str | None:
    try:
        result = subprocess.run(  # noqa: S603 - a candidate interpreter, fixed argv
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return result.stdout.strip()


def find_python(version: str) -> str:
    """The path of a CPython `version` interpreter (not a pyenv shim): the Makefile's
    tools/find-python.sh if the checkout has it, else `python<version>` on PATH, else pyenv's
    ~/.pyenv/versions/<version>*/bin/python<version> (newest first)."""
    if FIND_PYTHON.is_file():
        env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
        env["WXAUTH_PYTHON_VERSION"] = version
        result = subprocess.run(  # noqa: S603 - the project's own script
            ["bash", str(FIND_PYTHON)], capture_output=True, text=True, env=env, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip().splitlines()[-1]
        raise RuntimeUnavailable(f"tools/find-python.sh found no Python {version}: {result.stderr}")
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(
        glob.glob(f"{pyenv_root}/versions/{version}*/bin/python{version}"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.split("/versions/")[1].split("/")[0])],
        reverse=True,
    )
    for candidate in filter(None, candidates):
        answer = _version_of(candidate)
        if answer and answer.split(" ", 1)[0] == version:
            return answer.split(" ", 1)[1]
    raise RuntimeUnavailable(
        f"no Python {version} interpreter (the Lambda runtime's): install one, e.g. "
        f"`pyenv install {version}`, or put python{version} on PATH"
    )


def make_runtime_venv(python: str, dest: Path, pins: dict[str, str]) -> Path:
    """A fresh venv of `python` holding only `pins` (boto3, botocore and what they need), as
    the Lambda runtime provides them; installed with the current interpreter's pip. Returns
    the venv's python."""
    subprocess.run([python, "-m", "venv", "--without-pip", str(dest)], check=True)  # noqa: S603
    venv_python = dest / "bin" / "python"
    result = subprocess.run(  # noqa: S603 - fixed argv
        [
            sys.executable, "-m", "pip", "--python", str(venv_python),
            "install", "--quiet", "--disable-pip-version-check", "--no-input",
            "--only-binary", ":all:",
            *(f"{name}=={version}" for name, version in sorted(pins.items())),
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeUnavailable(f"pip could not install {pins} for {python}:\n{result.stderr}")
    return venv_python


def unzip(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest


# -- events ------------------------------------------------------------------------------------


# -- the function process ----------------------------------------------------------------------


class LambdaProcess:
    """The package's handler in its own interpreter: `invoke(event)` returns its response.
    `info` is what the child reported of itself; `logs()` what it wrote (its stdout too)."""

    def __init__(self, python: Path, env: dict[str, str], workdir: Path) -> None:
        self.env = dict(env)
        workdir.mkdir(parents=True, exist_ok=True)
        self._log_path = workdir / "function.log"
        self._log: IO[str] = self._log_path.open("w")
        # -P: sys.path[0] is not the directory of the driver (in the repository); -c runs it
        # from an empty directory, so nothing but PYTHONPATH and the venv is on sys.path.
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv
            [str(python), "-P", "-c", DRIVER.read_text()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=tempfile.mkdtemp(prefix="cwd-", dir=workdir),
            env=env,
            text=True,
        )
        self.info = self._read()

    def _read(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=30)
            raise AssertionError(
                f"the function process exited ({self._process.returncode}):\n{self.logs()}"
            )
        return json.loads(line)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(event) + "\n")
        self._process.stdin.flush()
        return self._read()

    def logs(self) -> str:
        self._log.flush()
        return self._log_path.read_text()

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._log.close()
