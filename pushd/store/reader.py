"""The SQLite store's read connection (aiosqlite), which can be closed and opened again.

Reads see only committed data and never block the writer (WAL). A read that finds the disk
unreadable or the file damaged fails with :class:`~pushd.errors.StoreUnavailableError` (a 503,
not the 500 a raw :class:`sqlite3.DatabaseError` made), and damage is passed on to the writer
(``on_damaged``) so that nothing more is written into the file.

:meth:`Reader.reopen` exists for the ``-wal`` deleted under the daemon: every connection must
be closed before any is opened again, or one left on the deleted file reads the wrong frames.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiosqlite

from pushd import errors
from pushd.store import health


async def _connect(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA busy_timeout=10000")
    except BaseException:
        await conn.close()
        raise
    return conn


class Reader:
    """One aiosqlite connection; reads wait while it is opened again."""

    def __init__(
        self, path: str, conn: aiosqlite.Connection, on_damaged: Callable[[str], None]
    ) -> None:
        self._path = path
        self._conn = conn
        self._on_damaged = on_damaged
        self._reads = 0
        self._reads_done = asyncio.Event()
        self._readable = asyncio.Event()  # cleared while the connection is opened again
        self._readable.set()

    @classmethod
    async def open(cls, path: str, *, on_damaged: Callable[[str], None]) -> Reader:
        return cls(path, await _connect(path), on_damaged)

    async def close(self) -> None:
        await self._conn.close()

    async def one(self, query: str, params: Iterable[Any]) -> Any:
        async def run(conn: aiosqlite.Connection) -> Any:
            async with conn.execute(query, params) as cur:
                return await cur.fetchone()

        return await self._read(run)

    async def all(self, query: str, params: Iterable[Any]) -> list[Any]:
        async def run(conn: aiosqlite.Connection) -> list[Any]:
            async with conn.execute(query, params) as cur:
                return list(await cur.fetchall())

        return list(await self._read(run))

    async def reopen(self, between: Awaitable[None]) -> None:
        """Close the connection once its reads are done, await ``between`` (the writer opening
        its own again), then open it again; reads wait meanwhile."""
        self._readable.clear()
        try:
            while self._reads:
                self._reads_done.clear()
                await self._reads_done.wait()
            await self._conn.close()
            await between
            self._conn = await _connect(self._path)
        finally:
            self._readable.set()

    async def _read(self, run: Callable[[aiosqlite.Connection], Awaitable[Any]]) -> Any:
        if not self._readable.is_set():
            await self._readable.wait()
        self._reads += 1
        try:
            return await run(self._conn)
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        finally:
            self._reads -= 1
            if not self._reads:
                self._reads_done.set()

    def _unavailable(self, exc: sqlite3.Error) -> errors.StoreUnavailableError:
        if health.is_damaged(exc):
            error = health.damaged_error(exc)
            self._on_damaged(error.message)
            return error
        return errors.StoreUnavailableError(f"the database could not be read ({exc}); retry")
