"""The scale-out store: one PostgreSQL database shared by several pushd daemons (asyncpg).

Every verb is one transaction on a pooled connection. Claims and leases take rows with
``FOR UPDATE SKIP LOCKED`` and lease them in the same statement (claim-as-lease, as in SQLite):
two daemons never take the same task, and a dead daemon's claims become due again when their
lease runs out. Names, tombstones, pull leases, pauses and statistics live in the database, so
they are the same whichever daemon answers.

Changes another daemon must act on are announced with ``NOTIFY``, and which daemon dispatches
each push queue is decided in the database too: :mod:`pushd.store.postgres_cluster`. The schema,
migrations and connections: :mod:`pushd.store.postgres_schema`. The reads shared with SQLite:
:mod:`pushd.store.sqlbase`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import asyncpg

from pushd import errors, models
from pushd.store import base, codec, postgres_cluster, sqlbase
from pushd.store.postgres_cluster import announce, announce_due
from pushd.store.postgres_schema import (
    SCHEMA_VERSION,
    Q,
    connect,
    migrate,
    transaction,
)
from pushd.store.urls import describe_url

__all__ = ["SCHEMA_VERSION", "PostgresStore", "connect", "migrate"]

POOL_MAX = 10
LOCK_API_QUEUES = 0x7075736A  # advisory lock key: saving and deleting API queues
#: What deleting an API queue drops with it: a queue made again under its name starts empty.
_DROP_QUEUE = ("drop_queue_tasks", "drop_queue_tombstones", "drop_queue_dead", "drop_queue_state")


def _task_columns(tasks: Sequence[models.Task]) -> list[list[Any]]:
    """``insert_tasks``' parameters: one list per column, in ``codec.task_params``' order
    (the order of the INSERT's columns)."""
    rows = codec.task_rows(tasks)
    return [list(column) for column in zip(*rows, strict=True)]


class PostgresStore(
    sqlbase.SqlStore, postgres_cluster.Cluster, base.Leasing, base.Claiming, base.Listing
):
    """:class:`~pushd.store.base.Store` (and :class:`~pushd.store.base.Shared`) over asyncpg."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        *,
        tombstone_retention_us: int,
        dead_letter_retention_us: int,
    ) -> None:
        super().__init__(tombstone_retention_us, dead_letter_retention_us)
        self._pool = pool
        self._dsn = dsn
        self._listener: asyncpg.Connection | None = None
        self._on_change: Callable[[base.Change], None] | None = None

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        tombstone_retention_us: int = 9 * 86400 * 1_000_000,
        dead_letter_retention_us: int = 7 * 86400 * 1_000_000,
        migrate_schema: bool = True,
    ) -> PostgresStore:
        conn = await connect(dsn)
        try:
            if migrate_schema:
                await migrate(conn)
            else:
                await conn.execute(Q["meta_table"])
                version = int(await conn.fetchval(Q["schema_version"]))
                if version != SCHEMA_VERSION:
                    raise errors.PushdError(
                        f"database {describe_url(dsn)} has pushd schema {version}, this pushd needs "
                        f"{SCHEMA_VERSION}: run `pushdctl migrate --db ...` first"
                    )
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=POOL_MAX)
        return cls(
            pool,
            dsn,
            tombstone_retention_us=tombstone_retention_us,
            dead_letter_retention_us=dead_letter_retention_us,
        )

    async def server_version(self) -> str:
        """The server's version, e.g. ``15.14``."""
        async with self._pool.acquire() as conn:
            version = conn.get_server_version()
        return f"{version.major}.{version.minor}"

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        await self._pool.close()

    # ---- helpers
    def _tx(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        return transaction(self._pool)

    async def _all(self, query: str, *params: Any) -> list[Any]:
        async with self._tx() as conn:
            return list(await conn.fetch(Q[query], *params))

    async def _one(self, query: str, *params: Any) -> Any:
        async with self._tx() as conn:
            return await conn.fetchrow(Q[query], *params)

    def _names_param(self, names: Sequence[str]) -> Any:
        return list(names)

    def _stranded_params(self, modes: Mapping[str, models.QueueMode]) -> tuple[Any, ...]:
        names = list(modes)
        return names, [modes[q] is models.QueueMode.PUSH for q in names]

    def _matching_params(
        self, queue: str, after: str, prefix: str, tag: bytes | None, limit: int
    ) -> tuple[Any, ...]:
        return (queue, after, len(prefix), prefix, tag, limit)

    @staticmethod
    async def _tombstone(
        conn: asyncpg.Connection, queue: str, names: Sequence[str], now_us: int
    ) -> None:
        if names:
            await conn.execute(Q["tombstone_many"], [queue] * len(names), list(names), now_us)

    # ---- producers
    async def add(self, tasks: Sequence[models.Task], *, now_us: int) -> list[models.AddResult]:
        live_after = now_us - self.tombstone_retention_us
        by_queue: dict[str, list[str]] = {}
        for t in tasks:
            by_queue.setdefault(t.queue, []).append(t.name)
        async with self._tx() as conn:
            tombstoned: set[tuple[str, str]] = set()
            for queue, names in by_queue.items():
                found = await conn.fetch(Q["tombstoned_names"], queue, live_after, names)
                tombstoned.update((queue, r[0]) for r in found)
            wanted = _first_of_each(tasks, tombstoned)
            inserted: set[tuple[str, str]] = set()
            if wanted:
                rows = await conn.fetch(Q["insert_tasks"], *_task_columns(wanted))
                inserted = {(r[0], r[1]) for r in rows}
            await _undo_late(conn, by_queue, live_after, inserted, tombstoned)
            new = [t for t in wanted if (t.queue, t.name) in inserted and not t.is_pull]
            await announce_due(conn, [(t.queue, t.eta_us) for t in new])
        return _add_results(tasks, tombstoned, inserted)

    # ---- producers
    async def delete(
        self, queue: str, names: Sequence[str], *, now_us: int, pull: bool = False
    ) -> list[bool]:
        async with self._tx() as conn:
            deleted = {r[0] for r in await conn.fetch(Q["delete_names"], queue, list(names))}
            await self._tombstone(conn, queue, sorted(deleted), now_us)
            if deleted:
                await announce(conn, base.Change("forget", queue, names=tuple(deleted)))
        done = []
        for name in names:
            done.append(name in deleted)
            deleted.discard(name)  # a repeated name was deleted once
        return done

    async def purge(self, queue: str, *, now_us: int) -> int:
        async with self._tx() as conn:
            await conn.execute(Q["purge_tombstones"], now_us, queue)
            status = await conn.execute(Q["purge_tasks"], queue)
            await announce(conn, base.Change("forget", queue))
        return int(status.split()[-1])

    async def run_now(self, queue: str, name: str, *, now_us: int) -> models.Task | None:
        async with self._tx() as conn:
            row = await conn.fetchrow(Q["get_task_for_update"], queue, name)
            if row is None:
                return None
            task = codec.task_from_row(row)
            base.check_runnable(task, now_us)
            await conn.execute(Q["set_eta"], now_us, queue, name)
            if not task.is_pull:
                await announce(conn, base.Change("due", queue, eta_us=now_us))
        return dataclasses.replace(task, eta_us=now_us)

    # ---- push delivery
    async def _claim_due(self, ask: base.ClaimAsk) -> list[base.Claimed]:
        queue, now_us, limit, lease_us, slack_us, deadlines = ask.terms()
        rows = await self._all("claim_due", queue, now_us, limit, lease_us, deadlines, slack_us)
        rows.sort(key=lambda r: (r["due_eta_us"], r["name"]))
        return [
            base.Claimed(
                dataclasses.replace(codec.task_from_row(r), eta_us=r["due_eta_us"]), r["eta_us"]
            )
            for r in rows
        ]

    async def step_back(
        self, queue: str, *, now_us: int, was_us: int, held: Collection[str]
    ) -> int:
        async with self._tx() as conn:
            status = await conn.execute(
                Q["step_back"], was_us - now_us, queue, now_us, was_us, sorted(held)
            )
        return int(status.split()[-1])

    async def finish(self, outcomes: Sequence[base.Outcome], *, now_us: int) -> None:
        if not outcomes:
            return
        done, retries, dead = sqlbase.split_outcomes(outcomes)
        async with self._tx() as conn:
            if done:
                keys = [[o.queue for o in done], [o.name for o in done]]
                await conn.execute(Q["finish_done"], *keys, [o.lease_eta_us for o in done], now_us)
            if retries:
                # As retry_row, the key first: one list per column.
                rows = [(*row[6:], *row[:6]) for row in map(sqlbase.retry_row, retries)]
                await conn.execute(Q["finish_retry"], *map(list, zip(*rows, strict=True)))
            # Another daemon may own the queue by now (handed over while these were out): tell
            # it when they are due, or it sleeps until the claims it saw would have ended.
            await announce_due(conn, [(o.queue, o.eta_us) for o in retries])
            for d in dead:
                await self._dead_letter(conn, d, now_us)

    async def _dead_letter(self, conn: asyncpg.Connection, d: base.DeadLetter, now_us: int) -> None:
        row = await conn.fetchrow(Q["get_leased"], d.queue, d.name, d.lease_eta_us)
        if row is None:
            return
        dead_task = base.as_dead(codec.task_from_row(row), d)
        await conn.execute(
            Q["insert_dead"], d.queue, d.name, now_us, d.reason, codec.dump_task(dead_task)
        )
        await conn.execute(Q["delete_ids"], [row["id"]])
        await self._tombstone(conn, d.queue, [d.name], now_us)

    # ---- pull queues
    async def _lease(self, ask: base.LeaseAsk) -> tuple[list[models.Task], list[base.DeadTask]]:
        lease = sqlbase.LeaseRound(ask)
        async with self._tx() as conn:
            if lease.needs_tag:
                name, params = lease.first_query()
                first = await conn.fetchrow(Q[name], *params)
                if first is None:
                    return [], []
                lease.choose_tag(first)
            # Rows locked by another daemon's lease are skipped, so two workers never hold the
            # same task.
            while (query := lease.query()) is not None:
                name, params = query
                gone_ids, _, taken = lease.take(await conn.fetch(Q[name], *params))
                if not gone_ids and not taken:
                    break
                if gone_ids:
                    await conn.execute(Q["delete_ids"], gone_ids)
                if taken:
                    await conn.execute(Q["lease_ids"], ask.lease_eta_us, taken)
            await self._lease_dead(conn, ask.queue, lease.dead, ask.now_us)
        return lease.leased, lease.dead

    async def _lease_dead(
        self, conn: asyncpg.Connection, queue: str, dead: list[base.DeadTask], now_us: int
    ) -> None:
        """Pull tasks over their lease limit (already deleted): into the dead letters, names
        tombstoned."""
        if not dead:
            return
        await conn.executemany(
            Q["insert_dead"],
            [(queue, d.task.name, now_us, d.reason, codec.dump_task(d.task)) for d in dead],
        )
        await self._tombstone(conn, queue, [d.task.name for d in dead], now_us)

    async def modify_lease(
        self, queue: str, name: str, *, current_eta_us: int, lease_us: int, now_us: int
    ) -> models.Task:
        live_after = now_us - self.tombstone_retention_us
        async with self._tx() as conn:
            row = await conn.fetchrow(Q["get_task_for_update"], queue, name)
            if row is None:
                if await conn.fetchrow(Q["live_tombstone"], queue, name, live_after):
                    raise errors.TombstonedTaskError(f"task {name!r} was deleted or has run")
                raise errors.UnknownTaskError(f"task {name!r} does not exist in queue {queue!r}")
            base.check_lease(
                name, eta_us=row["eta_us"], current_eta_us=current_eta_us, now_us=now_us
            )
            await conn.execute(Q["set_eta"], now_us + lease_us, queue, name)
        return dataclasses.replace(codec.task_from_row(row), eta_us=now_us + lease_us)

    # ---- queue state
    async def set_paused(self, queue: str, paused: bool) -> None:
        async with self._tx() as conn:
            await conn.execute(Q["set_paused"], queue, paused)
            await announce(conn, base.Change("paused", queue, paused=paused))

    # ---- OIDC signing keys (reads: sqlbase)
    async def add_signing_key(self, key: models.SigningKey, *, rotate: bool) -> None:
        async with self._tx() as conn:
            if rotate:
                await conn.execute(Q["retire_signing_key"], key.created_us)
            await conn.execute(Q["insert_signing_key"], key.kid, key.pem, key.created_us)

    async def drop_signing_keys(self, *, retired_before_us: int) -> int:
        async with self._tx() as conn:
            status = await conn.execute(Q["drop_signing_keys"], retired_before_us)
        return int(status.split()[-1])

    async def counts(self, queue: str) -> base.QueueCounts:
        tasks, oldest, size, dead = await self._one("counts", queue)
        return base.QueueCounts(tasks=tasks, oldest_eta_us=oldest, dead_letters=dead, bytes=size)

    # ---- queues created through the Cloud Tasks API
    async def save_api_queue(
        self, queue: models.ApiQueue, *, create: bool, now_us: int
    ) -> models.QueueSave:
        async with self._tx() as conn:
            # Two daemons creating one name at once: one creates it, the other finds it.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_API_QUEUES)
            row = await conn.fetchrow(Q["find_api_queue"], queue.name)
            found = None if row is None else (row[0], row[1])
            outcome, created_us = base.api_queue_save(found, create=create, now_us=now_us)
            if outcome in (models.QueueSave.CREATED, models.QueueSave.UPDATED):
                spec = codec.dump_api_queue(queue)
                await conn.execute(Q["put_api_queue"], queue.name, spec, created_us)
                await announce(conn, base.Change("queues", queue.name))
        return outcome

    async def delete_api_queue(self, name: str, *, now_us: int) -> bool:
        async with self._tx() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_API_QUEUES)
            status = await conn.execute(Q["delete_api_queue"], now_us, name)
            if status == "UPDATE 0":
                return False
            for query in _DROP_QUEUE:
                await conn.execute(Q[query], name)
            await announce(conn, base.Change("forget", name))
            await announce(conn, base.Change("paused", name, paused=False))
            await announce(conn, base.Change("queues", name))
        return True

    # ---- dead letters
    async def redrive(self, queue: str, name: str, *, now_us: int) -> models.Task | None:
        async with self._tx() as conn:
            row = await conn.fetchrow(Q["get_dead"], queue, name)
            if row is None:
                return None
            task = base.redriven(codec.load_task(row["task"]), now_us)
            if not await conn.fetch(Q["insert_tasks"], *_task_columns([task])):
                return None  # a live task took the name meanwhile
            await conn.execute(Q["delete_dead"], queue, name)
            await conn.execute(Q["clear_tombstone"], queue, name)
            if not task.is_pull:
                await announce(conn, base.Change("due", queue, eta_us=now_us))
        return task

    async def delete_dead(self, queue: str, name: str) -> bool:
        async with self._tx() as conn:
            status = await conn.execute(Q["delete_dead"], queue, name)
        return bool(status != "DELETE 0")

    # ---- housekeeping
    async def expire(self, *, now_us: int) -> int:
        async with self._tx() as conn:
            a = await conn.execute(Q["expire_tombstones"], now_us - self.tombstone_retention_us)
            b = await conn.execute(Q["expire_dead"], now_us - self.dead_letter_retention_us)
            c = await conn.execute(Q["expire_api_queues"], now_us - models.API_QUEUE_TOMBSTONE_US)
        return int(a.split()[-1]) + int(b.split()[-1]) + int(c.split()[-1])


def _first_of_each(
    tasks: Sequence[models.Task], tombstoned: set[tuple[str, str]]
) -> list[models.Task]:
    """The tasks to insert: the first of each name, none whose name is tombstoned."""
    wanted: list[models.Task] = []
    seen: set[tuple[str, str]] = set()
    for task in tasks:
        key = (task.queue, task.name)
        if key not in tombstoned and key not in seen:
            seen.add(key)
            wanted.append(task)
    return wanted


async def _undo_late(
    conn: asyncpg.Connection,
    by_queue: Mapping[str, list[str]],
    live_after: int,
    inserted: set[tuple[str, str]],
    tombstoned: set[tuple[str, str]],
) -> None:
    """An insert that waited for another transaction deleting the same name (a delivery
    recorded done, a delete, a dead letter) went through once that one committed, after the
    tombstone check: look again, now that its tombstone is visible, and undo."""
    for queue in by_queue:
        names = [n for q, n in inserted if q == queue]
        if not names:
            continue
        found = await conn.fetch(Q["tombstoned_names"], queue, live_after, names)
        late = [r[0] for r in found]
        if late:
            await conn.execute(Q["delete_names"], queue, late)
            tombstoned.update((queue, n) for n in late)
            inserted.difference_update((queue, n) for n in late)


def _add_results(
    tasks: Sequence[models.Task],
    tombstoned: set[tuple[str, str]],
    inserted: set[tuple[str, str]],
) -> list[models.AddResult]:
    results = []
    for task in tasks:
        key = (task.queue, task.name)
        if key in tombstoned:
            results.append(models.AddResult(task, errors.TombstonedTaskError))
        elif key in inserted:
            inserted.discard(key)  # a repeat of the name in this batch already exists
            results.append(models.AddResult(task))
        else:
            results.append(models.AddResult(task, errors.TaskAlreadyExistsError))
    return results
