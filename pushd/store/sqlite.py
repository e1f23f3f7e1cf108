"""The embedded default store: one SQLite file in WAL mode.

Two connections. Reads go through aiosqlite. Every change goes through
:class:`~pushd.store.writer.Writer`, which owns the other connection on a thread of its own and
runs the jobs that are waiting when it wakes in one transaction and one commit (group commit),
in one hop from the event loop: under load many adds, claims and delivery outcomes share one
fsync, and an idle add pays for exactly one. Nothing is acknowledged before its commit returns.
With ``durability="full"`` (``synchronous=FULL``) that commit is on disk and survives a power
cut; with ``"normal"`` (``synchronous=NORMAL``) it is in the WAL and survives a crash or kill -9
of pushd, but the last commits may be lost if the machine itself loses power.

The reader connection sees only committed data (WAL readers never block the writer), so the
APIs' reads never observe a batch that is later rolled back.

The file is this daemon's alone while it is open (:mod:`pushd.store.dbfile`: a lock, a check at
start, the ``-wal`` watched each second). A read or write that finds the disk full or the file
damaged fails with :class:`~pushd.errors.StoreUnavailableError` (503, never a 500 or a crash),
and :attr:`SqliteStore.problem` says so for /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pushd import clock, errors, logs, models
from pushd.store import base, codec, dbfile, reader, sqlbase, sqlite_leases, writer

Q = sqlite_leases.Q
T = TypeVar("T")
WAL_CHECK_S = 1.0  # how often the -wal file's identity is compared with the one SQLite writes
_TRY_AGAIN = (-1, -1)
#: What deleting an API queue drops with it: a queue made again under its name starts empty.
_DROP_QUEUE = (
    "drop_queue_tasks",
    "drop_queue_tombstones",
    "drop_queue_dead",
    "drop_queue_state",
)  # no file's identity: the next look handles the -wal again


_first = sqlite_leases.first_row


class SqliteStore(sqlbase.SqlStore, sqlite_leases.SqliteLeasing, base.Claiming, base.Listing):
    """:class:`~pushd.store.base.Store` over one SQLite file."""

    def __init__(
        self,
        write: writer.Writer,
        read: reader.Reader,
        *,
        tombstone_retention_us: int,
        dead_letter_retention_us: int,
        lock: dbfile.FileLock | None = None,
        clock_: clock.Clock | None = None,
    ) -> None:
        super().__init__(tombstone_retention_us, dead_letter_retention_us)
        self._writer = write
        self._r = read
        self._lock = lock  # on the database file, whose path it keeps
        self._clock = clock_ or clock.SystemClock()
        self._watcher: asyncio.Task[None] | None = None
        #: The paused queues, read once: only this store writes them (the file is this
        #: daemon's alone), and every lease asks (a read through the reader's thread each).
        self._paused: set[str] | None = None
        self._paused_writes = 0  # set_paused calls: a read older than one is not kept

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        durability: str = "full",
        tombstone_retention_us: int = 9 * 86400 * 1_000_000,
        dead_letter_retention_us: int = 7 * 86400 * 1_000_000,
    ) -> SqliteStore:
        synchronous = {"full": "FULL", "normal": "NORMAL"}[durability]
        lock = dbfile.FileLock(Path(path))
        lock.acquire()
        try:
            # The check runs once, at open; connections opened again later skip it.
            first = functools.partial(dbfile.connect, str(path), synchronous, check=True)
            write = await writer.Writer.open(first)
            write.reconnect_with(functools.partial(dbfile.connect, str(path), synchronous))
            write.relaxable = synchronous == "FULL"
            try:
                read = await reader.Reader.open(str(path), on_damaged=write.mark_damaged)
            except BaseException:
                await write.close()
                raise
        except BaseException:
            lock.release()
            raise
        store = cls(
            write,
            read,
            tombstone_retention_us=tombstone_retention_us,
            dead_letter_retention_us=dead_letter_retention_us,
            lock=lock,
        )
        store._watcher = asyncio.get_running_loop().create_task(
            store._watch_wal(dbfile.wal_identity(Path(path)), WAL_CHECK_S),
            name="pushd-sqlite-wal-watch",
        )
        return store

    @property
    def commits(self) -> int:
        """How many write transactions were committed (group commit makes this < writes)."""
        return self._writer.commits

    @property
    def problem(self) -> str | None:
        """Why the store cannot be used now (disk full, file damaged); None while it works."""
        return self._writer.damaged or self._writer.problem

    async def give_back_claims(self, *, now_us: int) -> int:
        """Make the push tasks claimed by the previous daemon due now: it is gone (this one
        holds the file's lock), so its claims would only delay them until they end."""

        def job(conn: sqlite3.Connection) -> int:
            return int(conn.execute(Q["give_back_claims"], (now_us,)).rowcount)

        return await self._writer.submit(job)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        try:
            await self._writer.close()
            await self._r.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    # ---- the -wal file
    @property
    def _path(self) -> Path:
        """The database file's path (the store was opened on a file: it holds its lock)."""
        assert self._lock is not None
        return self._lock.db

    async def _watch_wal(self, seen: tuple[int, int] | None, every_s: float) -> None:
        """Each ``every_s``: the ``-wal`` at the path must still be the file SQLite writes."""
        while True:
            await self._clock.sleep(every_s)
            now = dbfile.wal_identity(self._path)
            if seen is None or now == seen:
                seen = now  # none yet (SQLite makes it on the first write): the first one seen
                continue
            seen = await self._wal_lost(now)

    async def _wal_lost(self, now: tuple[int, int] | None) -> tuple[int, int] | None:
        """The ``-wal`` was deleted or replaced: SQLite goes on writing into the deleted file,
        and a crash would lose every commit since the last checkpoint. Copy it all into the
        database file now (a checkpoint, synced), then open both connections again so that
        SQLite makes a new ``-wal`` at the path."""
        wal = self._path.with_name(self._path.name + "-wal")
        logs.event(
            "wal_missing",
            logging.ERROR,
            wal=str(wal),
            found="nothing" if now is None else "another file",
            action="checkpointing into the database file and reopening it",
        )
        try:
            async with self._writer.suspended():
                await self._writer.call(dbfile.checkpoint)
                await self._r.reopen(self._writer.reconnect())
        except (sqlite3.Error, OSError) as exc:
            logs.event("wal_reopen_failed", logging.ERROR, wal=str(wal), error=str(exc))
            return _TRY_AGAIN
        seen = dbfile.wal_identity(self._path)
        logs.event("wal_recreated", wal=str(wal))
        return seen

    async def _one(self, query: str, *params: Any) -> Any:
        return await self._r.one(Q[query], params)

    async def _all(self, query: str, *params: Any) -> list[Any]:
        return await self._r.all(Q[query], params)

    def _names_param(self, names: Sequence[str]) -> Any:
        return codec.dump_json(names)

    def _stranded_params(self, modes: Mapping[str, models.QueueMode]) -> tuple[Any, ...]:
        return (codec.dump_json({q: int(m is models.QueueMode.PUSH) for q, m in modes.items()}),)

    def _matching_params(
        self, queue: str, after: str, prefix: str, tag: bytes | None, limit: int
    ) -> tuple[Any, ...]:
        return (queue, max(after, prefix), after, len(prefix), prefix, tag, tag, limit)

    # ---- producers
    async def add(self, tasks: Sequence[models.Task], *, now_us: int) -> list[models.AddResult]:
        rows = codec.task_rows(tasks)
        live_after = now_us - self.tombstone_retention_us
        by_queue: dict[str, list[str]] = {}
        for t in tasks:
            by_queue.setdefault(t.queue, []).append(t.name)

        def job(conn: sqlite3.Connection) -> list[models.AddResult]:
            # A few statements per batch, not per task.
            tombstoned: set[tuple[str, str]] = set()
            taken: set[tuple[str, str]] = set()
            for queue, names in by_queue.items():
                names_json = codec.dump_json(names)
                found = conn.execute(
                    Q["tombstoned_names"], (queue, live_after, names_json)
                ).fetchall()
                tombstoned.update((queue, r[0]) for r in found)
                found = conn.execute(Q["live_names"], (queue, names_json)).fetchall()
                taken.update((queue, r[0]) for r in found)
            results, inserts = [], []
            for task, row in zip(tasks, rows, strict=True):
                key = (task.queue, task.name)
                if key in tombstoned:
                    results.append(models.AddResult(task, errors.TombstonedTaskError))
                elif key in taken:
                    results.append(models.AddResult(task, errors.TaskAlreadyExistsError))
                else:
                    taken.add(key)
                    inserts.append(row)
                    results.append(models.AddResult(task))
            if inserts:
                conn.executemany(Q["insert_task_row"], inserts)
            return results

        return await self._writer.submit(job)

    async def delete(
        self, queue: str, names: Sequence[str], *, now_us: int, pull: bool = False
    ) -> list[bool]:
        names_json = codec.dump_json(names)

        def job(conn: sqlite3.Connection) -> list[bool]:
            # Two statements for the whole request, not two per name.
            gone = {r[0] for r in conn.execute(Q["delete_named"], (queue, names_json))}
            self._tombstone_many(conn, queue, sorted(gone), now_us)
            done = []
            for name in names:  # a name given twice was deleted once: the first says so
                done.append(name in gone)
                gone.discard(name)
            return done

        # A pull task's delete is its worker's acknowledgement: lost to a power cut, the task
        # is leased again, as after a lease that ran out (at-least-once). No fsync for it.
        return await self._writer.submit(job, sync=not pull)

    async def purge(self, queue: str, *, now_us: int) -> int:
        def job(conn: sqlite3.Connection) -> int:
            conn.execute(Q["purge_tombstones"], (now_us, queue))
            cur = conn.execute(Q["purge_tasks"], (queue,))
            return cur.rowcount

        return await self._writer.submit(job)

    async def run_now(self, queue: str, name: str, *, now_us: int) -> models.Task | None:
        def job(conn: sqlite3.Connection) -> models.Task | None:
            # In the writer's transaction, so no lease can slip between the check and the update.
            row = _first(conn, "get_task", queue, name)
            if row is None:
                return None
            base.check_runnable(codec.task_from_row(row), now_us)
            conn.execute(Q["set_eta"], (now_us, queue, name))
            return dataclasses.replace(codec.task_from_row(row), eta_us=now_us)

        return await self._writer.submit(job)

    # ---- push delivery
    async def _claim_due(self, ask: base.ClaimAsk) -> list[base.Claimed]:
        queue, now_us, limit, lease_us, slack_us, deadlines = ask.terms()

        def job(conn: sqlite3.Connection) -> list[base.Claimed]:
            cursor = conn.cursor()
            cursor.row_factory = None  # plain tuples, read by position (codec.TASK_COLUMNS)
            rows = cursor.execute(Q["due_push"], (queue, now_us, limit)).fetchall()
            if not rows:
                return []
            # One UPDATE for the batch, its leases computed by SQLite as lease_for does.
            ids = codec.dump_json([row[-1] for row in rows])
            conn.execute(Q["claim_many"], (now_us, lease_us, deadlines, slack_us, ids))
            claimed = []
            for row in rows:
                task = codec.task_from_values(row)
                lease = base.lease_for(
                    task, lease_us=lease_us, slack_us=slack_us, deadlines=deadlines
                )
                claimed.append(base.Claimed(task, now_us + lease))
            return claimed

        return await self._writer.submit(job)

    async def step_back(
        self, queue: str, *, now_us: int, was_us: int, held: Collection[str]
    ) -> int:
        held_json = codec.dump_json(sorted(held))

        def job(conn: sqlite3.Connection) -> int:
            params = (was_us - now_us, queue, now_us, was_us, held_json)
            return conn.execute(Q["step_back"], params).rowcount

        return await self._writer.submit(job)

    async def finish(self, outcomes: Sequence[base.Outcome], *, now_us: int) -> None:
        if not outcomes:
            return
        done, retries, dead = sqlbase.split_outcomes(outcomes)

        done_json = codec.dump_json([[o.queue, o.name, o.lease_eta_us] for o in done])

        def job(conn: sqlite3.Connection) -> None:
            if done:
                # Two set statements, no row through Python: the tombstones of the tasks
                # whose lease still matches, then those tasks.
                conn.execute(Q["tombstone_done_many"], (done_json, now_us))
                conn.execute(Q["finish_done_many"], (done_json,))
            if retries:
                conn.executemany(Q["finish_retry"], [sqlbase.retry_row(o) for o in retries])
            for d in dead:
                row = _first(conn, "get_leased", d.queue, d.name, d.lease_eta_us)
                if row is None:
                    continue
                dead_task = base.as_dead(codec.task_from_row(row), d)
                conn.execute(
                    Q["insert_dead"],
                    (d.queue, d.name, now_us, d.reason, codec.dump_task(dead_task)),
                )
                conn.execute(Q["delete_task"], (d.queue, d.name))
                conn.execute(Q["tombstone"], (d.queue, d.name, now_us))

        await self._writer.submit(job)

    # ---- pull queues: sqlite_leases.SqliteLeasing

    # ---- queue state
    async def set_paused(self, queue: str, paused: bool) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(Q["set_paused"], (queue, int(paused)))

        await self._writing_paused(job)

    async def _writing_paused(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run a write job that may change the paused queues: the kept set is read again."""
        self._paused_writes += 1
        try:
            return await self._writer.submit(job)
        finally:
            self._paused = None  # committed or not, the file says which

    async def paused_queues(self) -> set[str]:
        if self._paused is None:
            writes = self._paused_writes
            found = await super().paused_queues()
            if writes != self._paused_writes:
                return found  # a pause or resume ran meanwhile: keep nothing that may be stale
            self._paused = found
        return set(self._paused)

    # ---- OIDC signing keys (reads: sqlbase)
    async def add_signing_key(self, key: models.SigningKey, *, rotate: bool) -> None:
        def job(conn: sqlite3.Connection) -> None:
            if rotate:
                conn.execute(Q["retire_signing_key"], (key.created_us,))
            conn.execute(Q["insert_signing_key"], (key.kid, key.pem, key.created_us))

        await self._writer.submit(job)

    async def drop_signing_keys(self, *, retired_before_us: int) -> int:
        def job(conn: sqlite3.Connection) -> int:
            return conn.execute(Q["drop_signing_keys"], (retired_before_us,)).rowcount

        return await self._writer.submit(job)

    async def counts(self, queue: str) -> base.QueueCounts:
        tasks, oldest, size = await self._one("counts", queue)
        (dead,) = await self._one("count_dead", queue)
        return base.QueueCounts(tasks=tasks, oldest_eta_us=oldest, dead_letters=dead, bytes=size)

    # ---- queues created through the Cloud Tasks API
    async def save_api_queue(
        self, queue: models.ApiQueue, *, create: bool, now_us: int
    ) -> models.QueueSave:
        def job(conn: sqlite3.Connection) -> models.QueueSave:
            row = _first(conn, "find_api_queue", queue.name)
            found = None if row is None else (row[0], row[1])
            outcome, created_us = base.api_queue_save(found, create=create, now_us=now_us)
            if outcome in (models.QueueSave.CREATED, models.QueueSave.UPDATED):
                spec = codec.dump_api_queue(queue)
                conn.execute(Q["put_api_queue"], (queue.name, spec, created_us))
            return outcome

        return await self._writer.submit(job)

    async def delete_api_queue(self, name: str, *, now_us: int) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            if not conn.execute(Q["delete_api_queue"], (now_us, name)).rowcount:
                return False
            for query in _DROP_QUEUE:
                conn.execute(Q[query], (name,))
            return True

        return await self._writing_paused(job)  # its pause goes with it

    # ---- dead letters
    async def redrive(self, queue: str, name: str, *, now_us: int) -> models.Task | None:
        def job(conn: sqlite3.Connection) -> models.Task | None:
            row = _first(conn, "get_dead", queue, name)
            if row is None:
                return None
            old = codec.load_task(row["task"])
            task = base.redriven(old, now_us)
            cur = conn.execute(Q["insert_task"], codec.task_params(task))
            if cur.rowcount == 0:
                return None  # a live task took the name meanwhile
            conn.execute(Q["delete_dead"], (queue, name))
            conn.execute(Q["clear_tombstone"], (queue, name))
            return task

        return await self._writer.submit(job)

    async def delete_dead(self, queue: str, name: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(Q["delete_dead"], (queue, name))
            return bool(cur.rowcount)

        return await self._writer.submit(job)

    # ---- housekeeping
    async def expire(self, *, now_us: int) -> int:
        def job(conn: sqlite3.Connection) -> int:
            a = conn.execute(Q["expire_tombstones"], (now_us - self.tombstone_retention_us,))
            b = conn.execute(Q["expire_dead"], (now_us - self.dead_letter_retention_us,))
            c = conn.execute(Q["expire_api_queues"], (now_us - models.API_QUEUE_TOMBSTONE_US,))
            return a.rowcount + b.rowcount + c.rowcount

        return await self._writer.submit(job)
