"""Fixtures shared by test modules: a throw-away PostgreSQL server (tests/postgres_support.py).

`postgres` is the session's server (skipped, with the reason, where the server
binaries cannot be had); `pg_url` a URL of a new, empty database of it for one
test, dropped after.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postgres_support import Server, server


@pytest.fixture(scope="session")
def postgres() -> Server:
    return server()


@pytest.fixture
def pg_database(postgres: Server) -> Iterator[str]:
    """The name of a new, empty database, dropped after the test."""
    name = postgres.new_database()
    yield name
    postgres.drop_database(name)


@pytest.fixture
def pg_url(postgres: Server, pg_database: str) -> str:
    return postgres.url(pg_database)
