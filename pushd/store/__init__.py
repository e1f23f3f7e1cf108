"""Task storage: the :class:`~pushd.store.base.Store` seam and its backends.

:func:`open_store` picks the backend from a URL (``sqlite:///path``, a bare file path, or
``memory:``) and imports it lazily, so a backend's driver is only needed when it is used.
"""

from __future__ import annotations

from pathlib import Path

from pushd import errors
from pushd.store.base import Store


async def open_store(
    url: str,
    *,
    durability: str = "full",
    tombstone_retention_us: int = 9 * 86400 * 1_000_000,
    dead_letter_retention_us: int = 7 * 86400 * 1_000_000,
) -> Store:
    """Open the store named by ``url``."""
    if url in ("memory:", "memory://"):
        from pushd.store.memory import MemoryStore

        return MemoryStore(
            tombstone_retention_us=tombstone_retention_us,
            dead_letter_retention_us=dead_letter_retention_us,
        )
    if url.startswith(("postgres://", "postgresql://")):
        raise errors.PushdError(
            f"database {url!r}: the PostgreSQL backend is not available yet; use a SQLite path"
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


__all__ = ["Store", "open_store"]
