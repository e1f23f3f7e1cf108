"""What the two SQL stores share: the reads, once, over each backend's way to run a query.

:class:`SqliteStore <pushd.store.sqlite.SqliteStore>` and
:class:`PostgresStore <pushd.store.postgres.PostgresStore>` run named queries of the same
names (``sql/sqlite.sql``, ``sql/postgres.sql``) returning rows of the same shape; a backend
supplies :meth:`SqlStore._one` and :meth:`SqlStore._all`, and the parameters where the two
dialects differ (SQLite takes lists as JSON text, PostgreSQL as arrays).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pushd.store import base, codec

if TYPE_CHECKING:
    from pushd import models


class SqlStore:
    """The reads of :class:`~pushd.store.base.Store` over named SQL queries."""

    def __init__(self, tombstone_retention_us: int, dead_letter_retention_us: int) -> None:
        """How long a deleted task's name stays tombstoned, and a dead letter is kept."""
        self.tombstone_retention_us = tombstone_retention_us
        self.dead_letter_retention_us = dead_letter_retention_us

    async def _one(self, query: str, *params: Any) -> Any:
        """The first row of the named query (None if none)."""
        raise NotImplementedError

    async def _all(self, query: str, *params: Any) -> list[Any]:
        """Every row of the named query."""
        raise NotImplementedError

    def _names_param(self, names: Sequence[str]) -> Any:
        """A list of names as the dialect takes it."""
        raise NotImplementedError

    def _stranded_params(self, modes: Mapping[str, models.QueueMode]) -> tuple[Any, ...]:
        raise NotImplementedError

    def _matching_params(
        self, queue: str, after: str, prefix: str, tag: bytes | None, limit: int
    ) -> tuple[Any, ...]:
        raise NotImplementedError

    async def get(self, queue: str, name: str) -> models.Task | None:
        row = await self._one("get_task", queue, name)
        return None if row is None else codec.task_from_row(row)

    async def tombstoned(self, queue: str, name: str, *, now_us: int) -> bool:
        live_after = now_us - self.tombstone_retention_us
        return await self._one("live_tombstone", queue, name, live_after) is not None

    async def _list_tasks(self, ask: base.ListAsk) -> list[models.Task]:
        after = ask.after_name or ""
        if ask.prefix or ask.tag is not None:
            params = self._matching_params(ask.queue, after, ask.prefix, ask.tag, ask.limit)
            rows = await self._all("list_tasks_matching", *params)
        else:
            rows = await self._all("list_tasks", ask.queue, after, ask.limit)
        return [codec.task_from_row(r) for r in rows]

    async def next_eta(self, queue: str) -> int | None:
        row = await self._one("next_eta", queue)
        return None if row is None else int(row[0])

    async def stranded(self, modes: Mapping[str, models.QueueMode]) -> dict[str, int]:
        if not modes:
            return {}
        rows = await self._all("stranded", *self._stranded_params(modes))
        return {row[0]: row[1] for row in rows}

    async def unlisted(self, known: Collection[str]) -> dict[str, base.Holding]:
        rows = await self._all("unlisted", self._names_param(list(known)))
        return {
            q: base.Holding(tasks=tasks, pull=bool(pull), dead_letters=dead)
            for q, tasks, pull, dead in rows
        }

    async def signing_keys(self) -> list[models.SigningKey]:
        return [codec.signing_key_from_row(row) for row in await self._all("signing_keys")]

    async def paused_queues(self) -> set[str]:
        return {row[0] for row in await self._all("paused_queues")}

    async def api_queues(self) -> list[models.ApiQueue]:
        rows = await self._all("api_queues")
        return [codec.load_api_queue(name, spec, created) for name, spec, created in rows]

    async def total_bytes(self) -> int:
        row = await self._one("total_bytes")
        return int(row[0])

    async def list_dead(
        self, queue: str, *, limit: int = 100, after_name: str | None = None
    ) -> list[base.DeadTask]:
        rows = await self._all("list_dead", queue, after_name or "", limit)
        return [codec.dead_from_row(r) for r in rows]

    async def get_dead(self, queue: str, name: str) -> base.DeadTask | None:
        row = await self._one("get_dead", queue, name)
        return None if row is None else codec.dead_from_row(row)


def split_outcomes(
    outcomes: Sequence[base.Outcome],
) -> tuple[list[base.Done], list[base.Retry], list[base.DeadLetter]]:
    """``outcomes`` by kind, each in its order."""
    done = [o for o in outcomes if isinstance(o, base.Done)]
    retries = [o for o in outcomes if isinstance(o, base.Retry)]
    dead = [o for o in outcomes if isinstance(o, base.DeadLetter)]
    return done, retries, dead


def retry_row(o: base.Retry) -> tuple[Any, ...]:
    """A retry's new values, then its key (queue, name, the lease it was written with)."""
    attempt = codec.dump_attempt(o.last_attempt)
    values = (o.eta_us, o.retry_count, o.execution_count, o.first_try_us, o.last_status, attempt)
    return (*values, o.queue, o.name, o.lease_eta_us)


class LeaseRound:
    """One lease over SQL rows, the same whatever runs the queries (SPEC 6).

    A backend asks :meth:`query` for the next named query and its parameters, fetches the rows
    and hands them to :meth:`take`, which says which rows to delete (over their lease limit: dead
    letters) and which to lease; it queries again while dead letters shrank the answer. A lease
    of 0 s leaves a task due at once, so rows leased by this very lease can come back: each query
    fetches that many more and they are skipped, never leasing a task twice.
    """

    def __init__(self, ask: base.LeaseAsk) -> None:
        self.ask = ask
        self.leased: list[models.Task] = []
        self.dead: list[base.DeadTask] = []
        self._tag = ask.tag
        self._seen: set[int] = set()

    @property
    def needs_tag(self) -> bool:
        """Grouping by tag with none given: the earliest due task (``first_query``) decides."""
        return self.ask.group_by_tag and self._tag is None

    def first_query(self) -> tuple[str, tuple[Any, ...]]:
        return "due_pull", (self.ask.queue, self.ask.now_us, 1)

    def choose_tag(self, first: Any) -> None:
        self._tag = first["tag"]

    def query(self) -> tuple[str, tuple[Any, ...]] | None:
        """The next query (parameters: queue, now, limit, and the tag where it takes one), or
        None when the lease holds all it asked for."""
        ask = self.ask
        if len(self.leased) >= ask.max_tasks:
            return None
        limit = ask.max_tasks - len(self.leased) + len(self._seen)
        params: tuple[Any, ...] = (ask.queue, ask.now_us, limit)
        if not ask.group_by_tag:
            return "due_pull", params
        if self._tag is None:
            return "due_pull_untagged", params
        return "due_pull_tagged", (*params, self._tag)

    def take(self, found: Sequence[Any]) -> tuple[list[Any], list[base.DeadTask], list[Any]]:
        """Of the rows ``found``: those to delete with their dead letters, and the ids to lease.
        Nothing to take (every row already seen) ends the lease: all three come back empty."""
        rows = [row for row in found if row["id"] not in self._seen]
        gone_ids: list[Any] = []
        gone: list[base.DeadTask] = []
        taken: list[Any] = []
        for row in rows[: self.ask.max_tasks - len(self.leased)]:
            self._seen.add(row["id"])
            task = codec.task_from_row(row)
            if (dead := self.ask.dead(task)) is not None:
                gone_ids.append(row["id"])
                gone.append(dead)
                continue
            taken.append(row["id"])
            self.leased.append(base.leased(task, self.ask.lease_eta_us))
        self.dead.extend(gone)
        return gone_ids, gone, taken
