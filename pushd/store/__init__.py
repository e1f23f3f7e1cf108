"""Task storage: the :class:`~pushd.store.base.Store` seam and its backends.

:func:`open_store` picks the backend from a URL (``sqlite:///path``, a bare file path,
``postgresql://...`` or ``memory:``) and imports it lazily, so a backend's driver is only needed when it is used.
"""

from __future__ import annotations

import platform
import sqlite3
from pathlib import Path

from pushd import errors
from pushd.store import base
from pushd.store.base import Store
from pushd.store.urls import SCHEMES, describe_url, is_postgres, sqlite_path


def check_url(url: str) -> None:
    """Refuse a database ``url`` that cannot work before anything is opened, in one line that
    says what is wrong and what to give instead (``--db`` comes straight from the user)."""
    scheme, sep, _ = url.partition("://")
    if sep and scheme.lower() not in SCHEMES:
        raise errors.StoreRefusedError(
            f"database {describe_url(url)!r}: {scheme}:// databases are not supported; give a "
            "SQLite file (pushd.sqlite3, sqlite:////abs/path) or postgresql://user@host/db"
        )
    if is_postgres(url) or url in ("memory:", "memory://"):
        return
    path = Path(sqlite_path(url))
    if not str(path):
        raise errors.StoreRefusedError(
            "database: no file given; give a SQLite file such as pushd.sqlite3"
        )
    if path.is_dir():
        raise errors.StoreRefusedError(
            f"database {url!r} is a folder; give a file in it, e.g. {path / 'pushd.sqlite3'}"
        )
    if not path.parent.is_dir():
        raise errors.StoreRefusedError(
            f"database {url!r}: folder {path.parent} does not exist; create it or give another path"
        )


async def server_versions(store: Store) -> dict[str, str]:
    """The versions a ``listening`` line reports: Python's and SQLite's library, and the
    PostgreSQL server's when the store is one (a bug report starts with these)."""
    found = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    if isinstance(store, base.Shared):  # only PostgreSQL; its module is loaded already
        from pushd.store.postgres import PostgresStore

        if isinstance(store, PostgresStore):
            found["postgresql"] = await store.server_version()
    return found


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
    check_url(url)
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
    path = sqlite_path(url)
    from pushd.store.sqlite import SqliteStore

    try:
        return await SqliteStore.open(
            path,
            durability=durability,
            tombstone_retention_us=tombstone_retention_us,
            dead_letter_retention_us=dead_letter_retention_us,
        )
    except sqlite3.DatabaseError as exc:  # not a database, or one SQLite cannot open
        raise errors.StoreRefusedError(
            f"database {url!r} is not a SQLite database ({exc}); give the path of a "
            "new file or of an existing pushd database"
        ) from None
    except sqlite3.Error as exc:
        raise errors.StoreRefusedError(
            f"database {url!r}: cannot open it ({exc}); check the path and its permissions"
        ) from None


__all__ = [
    "SCHEMES",
    "Store",
    "check_url",
    "describe_url",
    "is_postgres",
    "open_store",
    "server_versions",
    "sqlite_path",
]
