"""Fixtures shared by every test folder: a throwaway PostgreSQL server for the backend tests."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from tests import pgserver

_databases = itertools.count()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pgserver.PgServer]:
    """One PostgreSQL server for the session (``initdb`` + ``postgres`` in a temp directory).

    Without PostgreSQL installed the tests that need it are skipped, except under CI
    (``CI=true``), where they must run: ``.ci/run`` installs the package.
    """
    try:
        # No fsync: the tests kill pushd, never the server, and a shared CI disk busy with
        # other tests' fsyncs would otherwise stall commits for hundreds of milliseconds.
        server = pgserver.start(
            tmp_path_factory.mktemp("postgres"),
            settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
        )
    except pgserver.PgUnavailable as exc:
        message = f"{exc}; the PostgreSQL backend's tests need it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    yield server
    server.stop()


async def fresh_database(server: pgserver.PgServer) -> str:
    """A new, empty database on ``server``: its ``postgresql://`` URL."""
    return await server.create_database(f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture
async def pg_url(pg_server: pgserver.PgServer) -> str:
    """A fresh, empty database on the session's server: its ``postgresql://`` URL."""
    return await fresh_database(pg_server)
