"""schemathesis fuzzes the local server (`make run`'s devserver over real HTTP) against the
OpenAPI description it serves at GET /openapi.json: every operation, valid and invalid data,
and the stateful links login -> refresh -> verify -> logout (and /me, /oauth/token,
/oauth/revoke). Any 5xx, or an answer outside the description, fails the run.

Settings in tests/integration/schemathesis.toml; the run is bounded by max-examples and
max-steps there, and by RUN_TIMEOUT here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_devserver import (
    REPO_ROOT,
    DevServer,
    start_devserver,
    stop,
    wait_until_serving,
)

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).with_name("schemathesis.toml")
RUN_TIMEOUT = 180  # s: the run takes ~20 s on an idle 2-core machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = start_devserver(tmp_path_factory.mktemp("schemathesis"))
    try:
        wait_until_serving(server)
        yield server
    finally:
        stop(server)


def test_schemathesis_finds_nothing(server: DevServer) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{server.url}/openapi.json",
        "--phases",
        "examples,coverage,fuzzing,stateful",
    ]
    try:
        result = subprocess.run(
            command,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"schemathesis ran over {RUN_TIMEOUT} s:\n{e.stdout}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output + "\ndevserver:\n" + server.output()[-4000:]
    # Every phase ran over every operation it selected, and every link was followed.
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", output)
    assert selected and len(set(selected.groups())) == 1, output
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected / (\d+) total", output)
    assert links and len(set(links.groups())) == 1 and int(links[1]) >= 4, output
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in output, output
