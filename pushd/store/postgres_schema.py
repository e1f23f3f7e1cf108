"""The PostgreSQL schema and connections: connect with a clear error, migrate under a lock,
and what "unavailable right now" means (:data:`TRANSIENT`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from pushd import errors
from pushd.store import sql
from pushd.store.urls import describe_url

Q = sql.queries("postgres.sql")
LOCK_MIGRATE = 0x70757368  # advisory lock key ("push")
#: Errors that mean "the database is not reachable or not writable right now": the caller
#: answers 503 and tries again, as with a full disk under SQLite.
TRANSIENT = (
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def _migrations() -> list[tuple[int, str]]:
    found = sorted(
        (int(name.removeprefix("migration_")), text)
        for name, text in Q.items()
        if name.startswith("migration_")
    )
    assert [v for v, _ in found] == list(range(1, len(found) + 1)), "migrations must be 1..N"
    return found


SCHEMA_VERSION = len(_migrations())


#: How long a first connection may take before the server counts as unreachable.
CONNECT_TIMEOUT_S = 15.0


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection to ``dsn``; a clear error (password masked) when it cannot be made,
    with what to check: the server, the credentials or the database name."""
    try:
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise errors.PushdError(
            f"database {describe_url(dsn)}: cannot connect: {reason}; {_connect_hint(exc)}"
        ) from None


def _connect_hint(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "create the database (createdb NAME) or fix its name in the URL"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):  # a password too
        return "check the user and password in the URL (postgresql://USER:PASSWORD@HOST/DB)"
    if isinstance(exc, OSError):  # refused, unreachable, unknown host, timed out
        return "is PostgreSQL running there? check the host and port in the URL"
    return "check the URL (postgresql://USER:PASSWORD@HOST:PORT/DB)"


async def migrate(conn: asyncpg.Connection) -> tuple[int, int]:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns (version before, version after).

    Serialised between daemons by an advisory lock; each migration is its own transaction. A
    database from a newer pushd is refused rather than written with older assumptions.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_MIGRATE)
    try:
        await conn.execute(Q["meta_table"])
        before = int(await conn.fetchval(Q["schema_version"]))
        if before > SCHEMA_VERSION:
            raise errors.PushdError(
                f"the database has pushd schema {before}, newer than this pushd knows "
                f"({SCHEMA_VERSION}): upgrade pushd, or point it at another database"
            )
        for version, script in _migrations()[before:]:
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute(Q["set_schema_version"], version)
        return before, SCHEMA_VERSION
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_MIGRATE)


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction; unreachable-database errors become TransientError."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            yield conn
    except TRANSIENT as exc:
        raise errors.TransientError(
            f"the PostgreSQL database is unavailable ({type(exc).__name__}: {exc}); "
            "nothing was changed; try again"
        ) from None
    except asyncpg.exceptions.DataError as exc:
        # A value PostgreSQL cannot hold (a NUL character in a text cursor, ...): the
        # request's fault, and nothing was changed. SQLite takes such values.
        raise errors.Error(f"a value PostgreSQL cannot take: {exc}") from None
