"""The scale-out store: one PostgreSQL database shared by several pushd daemons (asyncpg).

Every verb is one transaction on a pooled connection. Claims and leases take rows with
``FOR UPDATE SKIP LOCKED`` and lease them in the same statement (claim-as-lease, as in SQLite):
two daemons never take the same task, and a dead daemon's claims become due again when their
lease runs out. Names, tombstones, pull leases, pauses and statistics live in the database, so
they are the same whichever daemon answers.

Changes another daemon must act on (a task added or made due, a pause, a delete or purge) are
announced with ``NOTIFY`` in the transaction that makes them, so they arrive only once committed;
:meth:`PostgresStore.watch` turns them into :class:`~pushd.store.base.Change` calls.

Which daemon dispatches each push queue is decided here too (:meth:`PostgresStore.own_queues`),
see :mod:`pushd.cluster`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import asyncpg
import orjson

from pushd import errors, models
from pushd.store import base, codec, describe_url, sql

Q = sql.queries("postgres.sql")
CHANNEL = "pushd_changes"
#: pg_notify refuses payloads of 8,000 bytes or more: names to forget go in chunks below that.
NOTIFY_MAX_BYTES = 7000
LOCK_MIGRATE = 0x70757368  # advisory lock keys ("push" and "pushd_owners")
LOCK_OWNERS = 0x70757369
POOL_MAX = 10
#: Errors that mean "the database is not reachable or not writable right now": the caller
#: answers 503 and tries again, as with a full disk under SQLite.
_TRANSIENT = (
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


def _task_columns(tasks: Sequence[models.Task]) -> list[list[Any]]:
    """``insert_tasks``' parameters: one list per column, in ``codec.task_params``' order
    (the order of the INSERT's columns)."""
    rows = [codec.task_params(t).values() for t in tasks]
    return [list(column) for column in zip(*rows, strict=True)]


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


def _notify_payloads(change: base.Change) -> list[str]:
    """``change`` as NOTIFY payloads (several when it names many tasks)."""
    head: dict[str, Any] = {"k": change.kind, "q": change.queue}
    if change.eta_us is not None:
        head["e"] = change.eta_us
    if change.paused is not None:
        head["p"] = change.paused
    if change.names is None:
        return [orjson.dumps(head).decode()]
    payloads: list[str] = []
    chunk: list[str] = []
    size = len(change.queue) + 40
    for name in change.names:
        if chunk and size + len(name) + 3 > NOTIFY_MAX_BYTES:
            payloads.append(orjson.dumps({**head, "n": chunk}).decode())
            chunk, size = [], len(change.queue) + 40
        chunk.append(name)
        size += len(name.encode()) + 3
    if chunk:
        payloads.append(orjson.dumps({**head, "n": chunk}).decode())
    return payloads


def _parse_change(payload: str) -> base.Change | None:
    try:
        data = orjson.loads(payload)
        names = data.get("n")
        return base.Change(
            kind=data["k"],
            queue=data["q"],
            eta_us=data.get("e"),
            paused=data.get("p"),
            names=None if names is None else tuple(names),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None  # not ours (someone else NOTIFYing on the channel)


def _live_blob(stats: models.LiveStats) -> bytes:
    return orjson.dumps(dataclasses.asdict(stats))


def _live_from(blob: bytes | None) -> models.LiveStats:
    if blob is None:
        return models.LiveStats()
    return models.LiveStats(**orjson.loads(blob))


class PostgresStore:
    """:class:`~pushd.store.base.Store` (and :class:`~pushd.store.base.Shared`) over asyncpg."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        *,
        tombstone_retention_us: int,
        dead_letter_retention_us: int,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._listener: asyncpg.Connection | None = None
        self._on_change: Callable[[base.Change], None] | None = None
        self.tombstone_retention_us = tombstone_retention_us
        self.dead_letter_retention_us = dead_letter_retention_us

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
    @contextlib.asynccontextmanager
    async def _tx(self) -> Any:
        """A connection in a transaction; unreachable-database errors become TransientError."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield conn
        except _TRANSIENT as exc:
            raise errors.TransientError(
                f"the PostgreSQL database is unavailable ({type(exc).__name__}: {exc}); "
                "nothing was changed; try again"
            ) from None
        except asyncpg.exceptions.DataError as exc:
            # A value PostgreSQL cannot hold (a NUL character in a text cursor, ...): the
            # request's fault, and nothing was changed. SQLite takes such values.
            raise errors.Error(f"a value PostgreSQL cannot take: {exc}") from None

    async def _fetch(self, query: str, *params: Any) -> list[Any]:
        async with self._tx() as conn:
            return list(await conn.fetch(Q[query], *params))

    async def _fetchrow(self, query: str, *params: Any) -> Any:
        async with self._tx() as conn:
            return await conn.fetchrow(Q[query], *params)

    @staticmethod
    async def _announce(conn: asyncpg.Connection, change: base.Change) -> None:
        for payload in _notify_payloads(change):
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

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
                rows = await conn.fetch(Q["tombstoned_names"], queue, live_after, names)
                tombstoned.update((queue, r[0]) for r in rows)
            wanted: list[models.Task] = []
            seen: set[tuple[str, str]] = set()
            for task in tasks:
                key = (task.queue, task.name)
                if key not in tombstoned and key not in seen:
                    seen.add(key)
                    wanted.append(task)
            inserted: set[tuple[str, str]] = set()
            if wanted:
                rows = await conn.fetch(Q["insert_tasks"], *_task_columns(wanted))
                inserted = {(r[0], r[1]) for r in rows}
            # An insert that waited for another transaction deleting the same name (a delivery
            # recorded done, a delete, a dead letter) went through once that one committed,
            # after the check above: look again, now that its tombstone is visible, and undo.
            for queue in by_queue:
                names = [n for q, n in inserted if q == queue]
                if not names:
                    continue
                late = [
                    r[0] for r in await conn.fetch(Q["tombstoned_names"], queue, live_after, names)
                ]
                if late:
                    await conn.execute(Q["delete_names"], queue, late)
                    tombstoned.update((queue, n) for n in late)
                    inserted.difference_update((queue, n) for n in late)
            earliest: dict[str, int] = {}
            for task in wanted:
                if (task.queue, task.name) in inserted and not task.is_pull:
                    earliest[task.queue] = min(task.eta_us, earliest.get(task.queue, task.eta_us))
            for queue, eta in earliest.items():
                await self._announce(conn, base.Change("due", queue, eta_us=eta))
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

    async def get(self, queue: str, name: str) -> models.Task | None:
        row = await self._fetchrow("get_task", queue, name)
        return None if row is None else codec.task_from_row(row)

    async def list_tasks(
        self,
        queue: str,
        *,
        limit: int = 100,
        after_name: str | None = None,
        prefix: str = "",
        tag: bytes | None = None,
    ) -> list[models.Task]:
        after = after_name or ""
        if prefix or tag is not None:
            params = (queue, after, len(prefix), prefix, tag, limit)
            rows = await self._fetch("list_tasks_matching", *params)
        else:
            rows = await self._fetch("list_tasks", queue, after, limit)
        return [codec.task_from_row(r) for r in rows]

    async def delete(self, queue: str, names: Sequence[str], *, now_us: int) -> list[bool]:
        async with self._tx() as conn:
            deleted = {r[0] for r in await conn.fetch(Q["delete_names"], queue, list(names))}
            await self._tombstone(conn, queue, sorted(deleted), now_us)
            if deleted:
                await self._announce(conn, base.Change("forget", queue, names=tuple(deleted)))
        done = []
        for name in names:
            done.append(name in deleted)
            deleted.discard(name)  # a repeated name was deleted once
        return done

    async def purge(self, queue: str, *, now_us: int) -> int:
        async with self._tx() as conn:
            await conn.execute(Q["purge_tombstones"], now_us, queue)
            status = await conn.execute(Q["purge_tasks"], queue)
            await self._announce(conn, base.Change("forget", queue))
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
                await self._announce(conn, base.Change("due", queue, eta_us=now_us))
        return dataclasses.replace(task, eta_us=now_us)

    # ---- push delivery
    async def claim_due(
        self,
        queue: str,
        *,
        now_us: int,
        limit: int,
        lease_us: int,
        slack_us: int = 0,
        deadlines: int = 1,
    ) -> list[base.Claimed]:
        rows = await self._fetch("claim_due", queue, now_us, limit, lease_us, deadlines, slack_us)
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

    async def next_eta(self, queue: str) -> int | None:
        row = await self._fetchrow("next_eta", queue)
        return None if row is None else row[0]

    async def stranded(self, modes: Mapping[str, models.QueueMode]) -> dict[str, int]:
        if not modes:
            return {}
        names = list(modes)
        push = [modes[q] is models.QueueMode.PUSH for q in names]
        return {row[0]: row[1] for row in await self._fetch("stranded", names, push)}

    async def unlisted(self, known: Collection[str]) -> dict[str, base.Holding]:
        rows = await self._fetch("unlisted", list(known))
        return {
            q: base.Holding(tasks=tasks, pull=pull, dead_letters=dead)
            for q, tasks, pull, dead in rows
        }

    async def finish(self, outcomes: Sequence[base.Outcome], *, now_us: int) -> None:
        if not outcomes:
            return
        done = [o for o in outcomes if isinstance(o, base.Done)]
        retries = [o for o in outcomes if isinstance(o, base.Retry)]
        dead = [o for o in outcomes if isinstance(o, base.DeadLetter)]
        async with self._tx() as conn:
            if done:
                await conn.execute(
                    Q["finish_done"],
                    [o.queue for o in done],
                    [o.name for o in done],
                    [o.lease_eta_us for o in done],
                    now_us,
                )
            if retries:
                await conn.execute(
                    Q["finish_retry"],
                    *(
                        list(column)
                        for column in zip(
                            *(
                                (
                                    o.queue,
                                    o.name,
                                    o.lease_eta_us,
                                    o.eta_us,
                                    o.retry_count,
                                    o.execution_count,
                                    o.first_try_us,
                                    o.last_status,
                                    codec.dump_attempt(o.last_attempt),
                                )
                                for o in retries
                            ),
                            strict=True,
                        )
                    ),
                )
            # Another daemon may own the queue by now (handed over while these were out): tell
            # it when they are due, or it sleeps until the claims it saw would have ended.
            due: dict[str, int] = {}
            for o in retries:
                due[o.queue] = min(o.eta_us, due.get(o.queue, o.eta_us))
            for queue, eta in due.items():
                await self._announce(conn, base.Change("due", queue, eta_us=eta))
            for d in dead:
                row = await conn.fetchrow(Q["get_leased"], d.queue, d.name, d.lease_eta_us)
                if row is None:
                    continue
                dead_task = base.as_dead(codec.task_from_row(row), d)
                await conn.execute(
                    Q["insert_dead"], d.queue, d.name, now_us, d.reason, codec.dump_task(dead_task)
                )
                await conn.execute(Q["delete_ids"], [row["id"]])
                await self._tombstone(conn, d.queue, [d.name], now_us)

    # ---- pull queues
    async def lease(
        self,
        queue: str,
        *,
        now_us: int,
        lease_us: int,
        max_tasks: int,
        group_by_tag: bool = False,
        tag: bytes | None = None,
        queue_retry_limit: int | None = None,
        dead_lettered: list[base.DeadTask] | None = None,
    ) -> list[models.Task]:
        lease_eta = now_us + lease_us
        dead: list[base.DeadTask] = []
        async with self._tx() as conn:
            chosen_tag = tag
            if group_by_tag and chosen_tag is None:
                first = await conn.fetchrow(Q["due_pull"], queue, now_us, 1)
                if first is None:
                    return []
                chosen_tag = first["tag"]
            leased: list[models.Task] = []
            seen: set[int] = set()
            # As in SQLite: query again when tasks over their retry limit were dead-lettered, never
            # leasing a row twice (a 0 s lease leaves it due at once). Rows locked by another
            # daemon's lease are skipped, so two workers never hold the same task.
            while len(leased) < max_tasks:
                limit = max_tasks - len(leased) + len(seen)
                params: tuple[Any, ...] = (queue, now_us, limit)
                if not group_by_tag:
                    query = "due_pull"
                elif chosen_tag is None:
                    query = "due_pull_untagged"
                else:
                    query, params = "due_pull_tagged", (*params, chosen_tag)
                rows = [r for r in await conn.fetch(Q[query], *params) if r["id"] not in seen]
                if not rows:
                    break
                gone, taken = [], []
                for row in rows[: max_tasks - len(leased)]:
                    seen.add(row["id"])
                    task = codec.task_from_row(row)
                    if base.over_lease_limit(task, queue_retry_limit):
                        reason = base.lease_dead_reason(task, queue_retry_limit)
                        gone.append(row["id"])
                        dead.append(base.DeadTask(task=task, dead_us=now_us, reason=reason))
                        continue
                    taken.append(row["id"])
                    leased.append(base.leased(task, lease_eta))
                if gone:
                    await conn.execute(Q["delete_ids"], gone)
                if taken:
                    await conn.execute(Q["lease_ids"], lease_eta, taken)
            await self._lease_dead(conn, queue, dead, now_us)
        if dead_lettered is not None:
            dead_lettered.extend(dead)
        return leased

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
            await self._announce(conn, base.Change("paused", queue, paused=paused))

    async def paused_queues(self) -> set[str]:
        return {r[0] for r in await self._fetch("paused_queues")}

    async def counts(self, queue: str) -> base.QueueCounts:
        tasks, oldest, size, dead = await self._fetchrow("counts", queue)
        return base.QueueCounts(tasks=tasks, oldest_eta_us=oldest, dead_letters=dead, bytes=size)

    async def total_bytes(self) -> int:
        row = await self._fetchrow("total_bytes")
        return int(row[0])

    # ---- dead letters
    async def list_dead(
        self, queue: str, *, limit: int = 100, after_name: str | None = None
    ) -> list[base.DeadTask]:
        rows = await self._fetch("list_dead", queue, after_name or "", limit)
        return [codec.dead_from_row(r) for r in rows]

    async def get_dead(self, queue: str, name: str) -> base.DeadTask | None:
        row = await self._fetchrow("get_dead", queue, name)
        return None if row is None else codec.dead_from_row(row)

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
                await self._announce(conn, base.Change("due", queue, eta_us=now_us))
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
        return int(a.split()[-1]) + int(b.split()[-1])

    # ---- several daemons (base.Shared)
    async def watch(self, on_change: Callable[[base.Change], None]) -> None:
        """Call ``on_change`` for every change committed by any daemon (this one included)."""
        self._on_change = on_change
        await self._listen()

    async def rewatch(self) -> bool:
        """Listen again if the listening connection was lost (the server restarted, a network
        cut); True when it was, as changes may have been missed meanwhile."""
        if self._on_change is None or (
            self._listener is not None and not self._listener.is_closed()
        ):
            return False
        await self._listen()
        return True

    async def _listen(self) -> None:
        def received(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            if self._on_change is not None and (change := _parse_change(payload)) is not None:
                self._on_change(change)

        try:
            conn = await asyncpg.connect(self._dsn)
        except _TRANSIENT as exc:
            raise errors.TransientError(f"cannot listen for changes: {exc}") from None
        try:
            await conn.add_listener(CHANNEL, received)
        except _TRANSIENT as exc:
            await conn.close()
            raise errors.TransientError(f"cannot listen for changes: {exc}") from None
        self._listener = conn

    async def own_queues(
        self,
        daemon: str,
        queues: Sequence[str],
        live: Mapping[str, models.LiveStats],
        *,
        ttl_us: int,
        take: bool = True,
    ) -> base.Ownership:
        """Heartbeat, then hold this daemon's fair share of ``queues`` for ``ttl_us`` more
        (without ``take``, only renew what it holds: it is stopping).

        Serialised between daemons by an advisory lock. A daemon keeps the queues it holds up to
        its share (``queues // live daemons``, plus one for the first ``queues % live daemons``
        daemons by id), gives back the rest, and takes queues nobody holds (never held, given
        back, or whose owner stopped renewing) up to its share.
        Times are the database's clock, so the daemons' clocks need not agree.
        """
        async with self._tx() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_OWNERS)
            now = int(await conn.fetchval(Q["db_now_us"]))
            about = f"{socket.gethostname()} pid {os.getpid()}"
            await conn.execute(Q["heartbeat"], daemon, now, about)
            await conn.execute(Q["forget_daemons"], now - ttl_us, [])
            ranks = [r[0] for r in await conn.fetch(Q["live_daemons"])]
            daemons = len(ranks)
            owners = {r["queue"]: r for r in await conn.fetch(Q["owners"])}
            # Shares that add up to the queues: n // d each, one more for the first n % d
            # daemons in id order, so every daemon converges on its share and no queue is left.
            share = len(queues) // daemons + (ranks.index(daemon) < len(queues) % daemons)
            mine = sorted(
                q for q in queues if (r := owners.get(q)) is not None and r["owner"] == daemon
            )
            free = sorted(
                q
                for q in queues
                if (r := owners.get(q)) is None or (r["owner"] != daemon and r["until_us"] <= now)
            )
            keep, give_back = mine[:share], mine[share:]
            held = keep + (free[: max(0, share - len(keep))] if take else [])
            for q in held:
                await conn.execute(
                    Q["set_owner"], q, daemon, now + ttl_us, _live_blob(live.get(q, _IDLE))
                )
            for q in give_back:
                await conn.execute(Q["release_owner"], q, daemon)
            others = {
                q: _live_from(r["live"])
                for q, r in owners.items()
                if r["owner"] != daemon and r["until_us"] > now
            }
        return base.Ownership(owned=frozenset(held), others=others, daemons=daemons)

    async def leave(self, daemon: str) -> None:
        """This daemon stops: its queues are free for the others at once."""
        async with self._tx() as conn:
            await conn.execute(Q["release_all"], daemon)
            await conn.execute(Q["forget_daemons"], 0, [daemon])

    async def secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        """A secret shared by every daemon of this database (made by the first to ask)."""
        async with self._tx() as conn:
            await conn.execute(Q["put_secret"], name, make())
            return bytes(await conn.fetchval(Q["get_secret"], name))


_IDLE = models.LiveStats()
