"""Task storage: the :class:`~pushd.store.base.Store` seam and its backends.

:func:`open_store` picks the backend from a URL (``sqlite:///path``, a bare file path,
``postgresql://...`` or ``memory:``) and imports it lazily, so a backend's driver is only needed when it is used.
"""

from __future__ import annotations

from pathlib import Path

from pushd import errors
from pushd.store.base import Store


def describe_url(url: str) -> str:
    """``url`` fit for logs and messages: a PostgreSQL password is masked."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user, colon, _password = credentials.partition(":")
        rest = f"{user}{':***' if colon else ''}@{host}"
    return f"{scheme}{sep}{rest}"


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


async def open_store(
    url: str,
    *,
    durability: str = "full",
    tombstone_retention_us: int = 9 * 86400 * 1_000_000,
    dead_letter_retention_us: int = 7 * 86400 * 1_000_000,
    migrate_schema: bool = True,
) -> Store:
    """Open the store named by ``url``; its schema is migrated unless ``migrate_schema`` is
    False (PostgreSQL only: then a database at another schema version is refused)."""
    if url in ("memory:", "memory://"):
        from pushd.store.memory import MemoryStore

        return MemoryStore(
            tombstone_retention_us=tombstone_retention_us,
            dead_letter_retention_us=dead_letter_retention_us,
        )
    if is_postgres(url):
        from pushd.store.postgres import PostgresStore

        return await PostgresStore.open(
            url,
            tombstone_retention_us=tombstone_retention_us,
            dead_letter_retention_us=dead_letter_retention_us,
            migrate_schema=migrate_schema,
        )
    path = url.removeprefix("sqlite://") if url.startswith("sqlite://") else url
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        path = "/" + path.removeprefix("/") if url.startswith("sqlite:////") else path
    if Path(path).parent and not Path(path).parent.exists():
        raise errors.PushdError(f"database {url!r}: folder {Path(path).parent} does not exist")
    from pushd.store.sqlite import SqliteStore

    return await SqliteStore.open(
        path,
        durability=durability,
        tombstone_retention_us=tombstone_retention_us,
        dead_letter_retention_us=dead_letter_retention_us,
    )


__all__ = ["Store", "describe_url", "is_postgres", "open_store"]
