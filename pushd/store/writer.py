"""Group commit for SQLite: every write job that waits when the writer wakes shares one commit.

Under load many adds and delivery outcomes pay for one fsync; an idle add pays for exactly one.
A job that raises fails alone: the transaction is rolled back and the jobs before it run again
in a fresh one (jobs are functions of the database state, so re-running them is safe).

Jobs are plain functions of a :class:`sqlite3.Connection`, and a whole batch (BEGIN, every
job, COMMIT) runs on the writer's own thread in one hop from the event loop. With a hop per
statement, as an async driver makes it, a claim of due tasks took four to six trips through
an event loop busy with HTTP deliveries, and its latency, not SQLite, capped the delivery rate.

Not every write needs an fsync before its answer. With ``durability: full`` the connection
runs ``synchronous=FULL``; a job submitted with ``sync=False`` (a pull lease, its renewal, a
pull task's delete: see :mod:`pushd.store.sqlite`) may be answered once its commit is in the
WAL, and a batch of only such jobs commits under ``synchronous=NORMAL`` (no fsync). The WAL is
a log: the next fsync'd commit (or checkpoint) makes every frame before it durable too, so a
write that depends on an unsynced one (an add refused by a delete's tombstone, a redrive of a
task a lease dead-lettered) never outlives it. ``PRAGMA synchronous`` cannot change inside a
transaction, hence the choice per batch, before its ``BEGIN``.

A batch that fails for the disk's sake (full, I/O) or the file's (damaged) fails whole with
:class:`~pushd.errors.StoreUnavailableError`, and :attr:`Writer.problem` says why until a
commit succeeds again. A damaged file is final: nothing more is written into it (every later
job is refused at once) until the operator restores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from pushd import errors
from pushd.store import health

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
MAX_JOBS_PER_COMMIT = 512

#: What one job came to: ``(True, value)`` or ``(False, exception)``.
_Outcome = tuple[bool, Any]
#: A submitted job, the future of its result, and whether its commit must be fsync'd.
_Item = tuple[Job, "asyncio.Future[Any]", bool]


class WriterThread:
    """One thread that runs functions in the order given and answers each on its event loop.

    What ``run_in_executor`` on a one-thread pool did, without its machinery: a pool's
    ``submit`` takes two locks and a Python-level semaphore, and its future is chained to the
    loop's through two more. With a hop per commit (every add, lease, delete, claim and
    outcome batch) that was a fifth of the event loop's time under a pull-queue load.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], _Answer] | None]
        self._calls = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """``fn()`` on the thread, after every function given before it; its result (or what
        it raised) comes back as the future's."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._calls.put((fn, _Answer(loop, fut)))
        return fut

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop once the functions given so far have run (waiting for them with ``wait``)."""
        self._calls.put(None)
        if wait and self._thread is not threading.current_thread():
            self._thread.join()

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            fn, answer = call
            try:
                answer.send(True, fn())
            except BaseException as exc:  # the caller gets it, as from an executor
                answer.send(False, exc)


class _Answer:
    """Where a :class:`WriterThread` call's outcome goes: a future of an event loop."""

    __slots__ = ("fut", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]) -> None:
        self.loop, self.fut = loop, fut

    def send(self, ok: bool, value: Any) -> None:
        """From the thread: settle the future on its loop (nothing if the loop is closed)."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._settle, ok, value)

    def _settle(self, ok: bool, value: Any) -> None:
        if self.fut.done():  # cancelled by its caller meanwhile
            return
        if ok:
            self.fut.set_result(value)
        else:
            self.fut.set_exception(value)


class Writer:
    """Runs write jobs in shared transactions (group commit); one job failing fails only itself.

    The connection is used only on the writer's thread (opened there by :meth:`open`).
    :attr:`relaxable` (set by the store for ``durability: full``) lets a batch of jobs submitted
    with ``sync=False`` commit without an fsync.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        thread: WriterThread,
        connect: Callable[[], sqlite3.Connection] | None = None,
    ) -> None:
        self._conn = conn
        self._thread = thread
        self._connect = connect
        self._batch_gate = asyncio.Lock()  # held by each batch, and by suspended()
        #: Why the last batch failed (None once one commits); a damaged file stays damaged.
        self.problem: str | None = None
        self.damaged: str | None = None
        self._jobs: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.commits = 0
        #: Whether the connection runs ``synchronous=FULL`` and may drop to NORMAL per batch.
        self.relaxable = False
        self._relaxed = False  # the connection's synchronous is NORMAL now (writer's thread)
        self.unsynced_commits = 0  # of :attr:`commits`, those made without an fsync

    @classmethod
    async def open(cls, connect: Callable[[], sqlite3.Connection]) -> Writer:
        """Open the connection with ``connect`` on a new writer thread, and start the writer."""
        thread = WriterThread("pushd-sqlite-writer")
        try:
            conn = await thread.run(connect)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        writer = cls(conn, thread, connect)
        writer._task = asyncio.get_running_loop().create_task(
            writer._run(), name="pushd-sqlite-writer"
        )
        return writer

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer's thread outside any batch (set-up, close)."""
        conn = self._conn
        return await self._thread.run(lambda: fn(conn))

    async def submit(self, job: Callable[[sqlite3.Connection], T], *, sync: bool = True) -> T:
        """Run ``job`` in the next batch; its result once that batch committed. ``sync=False``:
        the job's write may be lost by a power cut (never by a crash of pushd), see above."""
        if self._task is None or self._task.done():
            raise errors.InternalError("the SQLite store is closed")
        if self.damaged is not None:
            raise errors.StoreUnavailableError(self.damaged)
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put_nowait((job, fut, sync))
        return await fut

    def mark_damaged(self, message: str) -> None:
        """The file was found damaged (by a read): nothing more is written into it."""
        self.damaged = self.problem = message

    @contextlib.asynccontextmanager
    async def suspended(self) -> AsyncIterator[None]:
        """No batch runs inside (one running is finished first): for :meth:`reconnect`."""
        async with self._batch_gate:
            yield

    def reconnect_with(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """How :meth:`reconnect` opens the connection from now on."""
        self._connect = connect

    async def reconnect(self) -> None:
        """Close the connection and open a new one (inside :meth:`suspended`)."""
        assert self._connect is not None, "opened without Writer.open"
        connect = self._connect

        def again(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = connect()
            self._relaxed = False  # connect set the durability asked for

        await self.call(again)

    async def close(self) -> None:
        """Run the jobs already submitted, then close the connection and the thread; a second
        call does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None and not self._task.done():
            self._jobs.put_nowait(None)
            await self._task
        with contextlib.suppress(sqlite3.Error):
            await self.call(lambda conn: conn.close())
        self._thread.shutdown(wait=True)

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
            batch = [item for item in batch if not item[1].cancelled()]
            if not batch:
                continue
            relax = self.relaxable and not any(sync for _, _, sync in batch)
            commit = functools.partial(self._commit, [job for job, _, _ in batch], relax=relax)
            async with self._batch_gate:
                # Shielded: a cancelled caller must not leave a transaction half done on the
                # thread.
                outcomes = await asyncio.shield(self._thread.run(commit))
            for (_, fut, _), (ok, value) in zip(batch, outcomes, strict=True):
                if fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)

    def _commit(self, jobs: list[Job], *, relax: bool = False) -> list[_Outcome]:
        """On the writer's thread: run ``jobs`` in one transaction (without an fsync with
        ``relax``); a failing job is dropped and the rest re-run in a fresh one. One outcome
        per job, in order."""
        outcomes: list[_Outcome | None] = [None] * len(jobs)
        pending = list(range(len(jobs)))
        while pending:
            try:
                self._synchronous(relax)
                results, failed = self._transaction(jobs, pending)
            except sqlite3.Error as exc:  # BEGIN, COMMIT or the disk failed: the whole batch
                self._rollback_quietly()
                error = self._unavailable(exc)
                for i in pending:
                    outcomes[i] = (False, error)
                break
            if failed is None:
                for i, value in results:
                    outcomes[i] = (True, value)
                break
            # The jobs before the failing one are re-run in a fresh transaction (their work was
            # rolled back); jobs are idempotent functions of the database state.
            bad, bad_exc = failed
            outcomes[bad] = (False, bad_exc)
            pending = [i for i in pending if i != bad]
        return [
            o if o is not None else (False, errors.InternalError("job not run")) for o in outcomes
        ]

    def _transaction(
        self, jobs: list[Job], pending: list[int]
    ) -> tuple[list[tuple[int, Any]], tuple[int, BaseException] | None]:
        """Run the ``pending`` jobs in one transaction: committed if every one ran, else rolled
        back at the first that failed, returned with its error. A failure of the disk or the
        file (not of a job) is raised: it fails the whole batch."""
        results: list[tuple[int, Any]] = []
        self._conn.execute("BEGIN IMMEDIATE")
        for i in pending:
            try:
                results.append((i, jobs[i](self._conn)))
            except BaseException as exc:  # this job fails alone; the writer lives on
                if _whole_batch(exc):
                    raise
                self._conn.execute("ROLLBACK")
                return results, (i, exc)
        self._conn.execute("COMMIT")
        self.commits += 1
        self.unsynced_commits += self._relaxed
        self.problem = None
        return results, None

    def _synchronous(self, relax: bool) -> None:
        """Outside a transaction: NORMAL for a batch that may skip the fsync, else FULL."""
        if relax != self._relaxed:
            self._conn.execute(f"PRAGMA synchronous={'NORMAL' if relax else 'FULL'}")
            self._relaxed = relax

    def _unavailable(self, exc: sqlite3.Error) -> errors.StoreUnavailableError:
        """The error a whole batch fails with; remembered as :attr:`problem`."""
        if health.is_damaged(exc):
            error = health.damaged_error(exc)
            self.damaged = error.message
        else:
            error = errors.StoreUnavailableError(
                f"the database could not be written ({exc}); nothing of this request was "
                "stored: free disk space or make the database's filesystem writable, then "
                "retry"
            )
        self.problem = error.message
        return error

    def _rollback_quietly(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")


def _whole_batch(exc: BaseException) -> bool:
    """Whether ``exc`` is the disk's or the file's, not the job's: the whole batch fails."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    return isinstance(exc, sqlite3.OperationalError) or health.is_damaged(exc)
