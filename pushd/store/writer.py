"""Group commit for SQLite: every write job that waits when the writer wakes shares one commit.

Under load many adds and delivery outcomes pay for one fsync; an idle add pays for exactly one.
A job that raises fails alone: the transaction is rolled back and the jobs before it run again
in a fresh one (jobs are functions of the database state, so re-running them is safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite

from pushd import errors

T = TypeVar("T")
Job = Callable[[aiosqlite.Connection], Awaitable[Any]]
MAX_JOBS_PER_COMMIT = 512


class Writer:
    """Runs write jobs in shared transactions (group commit); one job failing fails only itself."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._jobs: asyncio.Queue[tuple[Job, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pushd-sqlite-writer")

    async def submit(self, job: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        if self._task is None or self._task.done():
            raise errors.InternalError("the SQLite store is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put_nowait((job, fut))
        return await fut

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._jobs.put_nowait(None)
            await self._task

    async def _run(self) -> None:
        try:
            await self._loop()
        finally:
            # Whatever ended the writer, nobody may wait forever on a job it will not run.
            while not self._jobs.empty():
                item = self._jobs.get_nowait()
                if item is not None and not item[1].done():
                    item[1].set_exception(errors.InternalError("the SQLite store is closed"))

    async def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._jobs.get()
            if first is None:
                break
            batch = [first]
            while not self._jobs.empty() and len(batch) < MAX_JOBS_PER_COMMIT:
                item = self._jobs.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Job, asyncio.Future[Any]]]) -> None:
        """Run ``batch`` in one transaction; a failing job is dropped and the rest re-run."""
        pending = [(job, fut) for job, fut in batch if not fut.cancelled()]
        while pending:
            results: list[tuple[asyncio.Future[Any], Any]] = []
            failed: tuple[asyncio.Future[Any], BaseException] | None = None
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                for job, fut in pending:
                    try:
                        results.append((fut, await job(self._conn)))
                    except Exception as exc:  # this job fails alone; the writer lives on
                        failed = (fut, exc)
                        break
                if failed is None:
                    await self._conn.execute("COMMIT")
                    self.commits += 1
                else:
                    await self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:  # BEGIN or COMMIT itself failed: fail the whole batch
                await self._rollback_quietly()
                for _, fut in pending:
                    if not fut.done():
                        fut.set_exception(errors.TransientError(f"SQLite commit failed: {exc}"))
                return
            if failed is None:
                for fut, value in results:
                    if not fut.done():
                        fut.set_result(value)
                return
            # The jobs before the failing one are re-run in a fresh transaction (their work was
            # rolled back); jobs are idempotent functions of the database state.
            bad_fut, bad_exc = failed
            if not bad_fut.done():
                bad_fut.set_exception(bad_exc)
            pending = [(j, f) for j, f in pending if f is not bad_fut and not f.cancelled()]

    async def _rollback_quietly(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            await self._conn.execute("ROLLBACK")
