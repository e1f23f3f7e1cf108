"""The SQLite store's pull queues (SPEC 6): leasing, dead-lettering over the retry limit, and
changing a lease, each in one job of the writer (:class:`~pushd.store.sqlite.SqliteStore`)."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from typing import Any

from pushd import errors, models
from pushd.store import base, codec, sql, sqlbase, writer

Q = sql.queries("sqlite.sql")


def first_row(conn: sqlite3.Connection, query: str, *params: Any) -> Any:
    return conn.execute(Q[query], params).fetchone()


class SqliteLeasing(base.Leasing):
    """:class:`~pushd.store.sqlite.SqliteStore`'s pull-queue verbs, over its writer."""

    _writer: writer.Writer
    tombstone_retention_us: int

    @staticmethod
    def _tombstone_many(
        conn: sqlite3.Connection, queue: str, names: Sequence[str], now_us: int
    ) -> None:
        conn.executemany(Q["tombstone"], [(queue, n, now_us) for n in names])

    async def _lease(self, ask: base.LeaseAsk) -> tuple[list[models.Task], list[base.DeadTask]]:
        def job(conn: sqlite3.Connection) -> tuple[list[models.Task], list[base.DeadTask]]:
            lease = sqlbase.LeaseRound(ask)  # a job the writer runs again starts afresh
            if lease.needs_tag:
                name, params = lease.first_query()
                first = first_row(conn, name, *params)
                if first is None:
                    return [], []
                lease.choose_tag(first)
            while (query := lease.query()) is not None:
                name, params = query
                gone_ids, gone, taken = lease.take(conn.execute(Q[name], params).fetchall())
                if not gone_ids and not taken:
                    break
                # One hop each for the whole answer, not one per task.
                if gone:
                    self._lease_dead(conn, ask.queue, gone, ask.now_us)
                if taken:
                    conn.executemany(Q["lease_task"], [(ask.lease_eta_us, i) for i in taken])
            return lease.leased, lease.dead

        # Lost to a power cut, a lease leaves its tasks leasable again (and a dead-lettering
        # leaves the task live): nothing is lost, so no fsync (see writer).
        return await self._writer.submit(job, sync=False)

    def _lease_dead(
        self, conn: sqlite3.Connection, queue: str, gone: list[base.DeadTask], now_us: int
    ) -> None:
        """Pull tasks over their lease limit: into the dead letters, names tombstoned."""
        conn.executemany(
            Q["insert_dead"],
            [(queue, d.task.name, now_us, d.reason, codec.dump_task(d.task)) for d in gone],
        )
        conn.executemany(Q["delete_task"], [(queue, d.task.name) for d in gone])
        self._tombstone_many(conn, queue, [d.task.name for d in gone], now_us)

    async def modify_lease(
        self, queue: str, name: str, *, current_eta_us: int, lease_us: int, now_us: int
    ) -> models.Task:
        live_after = now_us - self.tombstone_retention_us

        def job(conn: sqlite3.Connection) -> models.Task:
            row = first_row(conn, "get_task", queue, name)
            if row is None:
                if first_row(conn, "live_tombstone", queue, name, live_after) is not None:
                    raise errors.TombstonedTaskError(f"task {name!r} was deleted or has run")
                raise errors.UnknownTaskError(f"task {name!r} does not exist in queue {queue!r}")
            base.check_lease(
                name, eta_us=row["eta_us"], current_eta_us=current_eta_us, now_us=now_us
            )
            conn.execute(Q["set_eta"], (now_us + lease_us, queue, name))
            task = codec.task_from_row(row)
            return dataclasses.replace(
                task,
                eta_us=now_us + lease_us,
            )

        return await self._writer.submit(job, sync=False)  # a lease's change, as _lease
