"""The README's first screen works as written: its "Try it" shell blocks (and the Chinese
README's "试一试"), run top to bottom in one bash against `make run`'s server (on a free PORT,
which the examples read), answer what their comments say; run again they fail on the used
codes, as the README warns."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.local_server import REPO_ROOT, LocalServer, local_server

pytestmark = pytest.mark.integration

READMES = {"README.md": "Try it", "README.zh-CN.md": "试一试"}
FENCE = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def try_it_blocks(readme: str = "README.md") -> list[str]:
    """The ```sh blocks of the README's "Try it" section, in order."""
    text = (REPO_ROOT / readme).read_text(encoding="utf-8")
    section = text.split(f"\n## {READMES[readme]}\n", 1)[1].split("\n## ", 1)[0]
    return FENCE.findall(section)


def run(blocks: list[str], server: LocalServer) -> subprocess.CompletedProcess[str]:
    script = "set -euo pipefail\n" + "\n".join(blocks)
    return subprocess.run(  # noqa: S603 - the README's own examples, against loopback
        ["bash", "-c", script],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "PORT": str(server.port)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("readme", READMES)
def test_the_try_it_section_has_the_examples_it_describes(readme: str) -> None:
    blocks = try_it_blocks(readme)
    assert len(blocks) == 2
    script = "\n".join(blocks)
    assert "PORT=${PORT:-8000}" in script  # PORT stated, 8000 the devserver's default
    assert "localhost:8000" not in script and ":$PORT/" in script
    assert '"alice.1"' in script and '"alice.2"' in script  # a new code for the second login
    for route in ("/auth/login", "/me", "/auth/refresh", "/auth/verify", "/auth/logout"):
        assert f":$PORT{route}" in script, route


def test_both_readmes_run_the_same_commands() -> None:
    def commands(readme: str) -> list[str]:
        lines = "\n".join(try_it_blocks(readme)).splitlines()
        return [line.split("#", 1)[0].rstrip() for line in lines if not line.startswith("#")]

    assert commands("README.zh-CN.md") == commands("README.md")


@pytest.mark.parametrize("readme", READMES)
def test_the_readme_examples_run_top_to_bottom_against_the_local_server(
    tmp_path: Path, readme: str
) -> None:
    with local_server(tmp_path) as server:
        result = run(try_it_blocks(readme), server)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        # Both logouts answer 204 (the second with a fresh login's token, never a 401).
        assert [line for line in lines if re.fullmatch(r"\d{3}", line)] == ["204", "204"]
        me, verified, jwks, discovery = json_lines(result.stdout)
        assert me["id"] and me["appid"] == "wx-local-appid"
        assert verified["valid"] is True and verified["sub"] == me["id"]
        assert jwks["keys"] and all(key["kty"] == "RSA" for key in jwks["keys"])
        assert discovery["issuer"] == f"http://localhost:{server.port}"

        # Run again on the same server: alice.1 is used up (WeChat's 40163), as the README says.
        again = run(try_it_blocks(readme), server)
        assert again.returncode != 0
        assert "KeyError: 'access_token'" in again.stderr
