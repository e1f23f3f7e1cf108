"""An in-memory :class:`~pushd.store.base.Store`: the reference semantics, for unit tests.

It keeps nothing across restarts, so the daemon never uses it. Each queue keeps a heap of
``(eta_us, name)`` entries next to a dict of tasks; stale heap entries (deleted or re-timed
tasks) are skipped lazily, so claims cost O(log n) like the SQL indexes.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Collection, Mapping, Sequence

from pushd import errors, models
from pushd.store import base


@dataclasses.dataclass
class _Queue:
    tasks: dict[str, models.Task] = dataclasses.field(default_factory=dict)
    heap: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    push_heap: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # push tasks only
    tombstones: dict[str, int] = dataclasses.field(default_factory=dict)  # name -> when
    dead: dict[str, base.DeadTask] = dataclasses.field(default_factory=dict)
    paused: bool = False

    def put(self, task: models.Task) -> None:
        self.tasks[task.name] = task
        heapq.heappush(self.heap, (task.eta_us, task.name))
        if not task.is_pull:
            heapq.heappush(self.push_heap, (task.eta_us, task.name))

    def earliest(self, *, push: bool = False) -> models.Task | None:
        """The earliest task (``push``: the earliest push task, as claims see them)."""
        heap = self.push_heap if push else self.heap
        while heap:
            eta, name = heap[0]
            task = self.tasks.get(name)
            if task is not None and task.eta_us == eta and not (push and task.is_pull):
                return task
            heapq.heappop(heap)
        return None

    def by_eta(self) -> list[models.Task]:
        return sorted(self.tasks.values(), key=lambda t: (t.eta_us, t.name))


class MemoryStore(base.Leasing, base.Claiming, base.Listing):
    """Reference implementation of the store contract, held in dicts and heaps."""

    def __init__(
        self,
        *,
        tombstone_retention_us: int = 9 * 86400 * 1_000_000,
        dead_letter_retention_us: int = 7 * 86400 * 1_000_000,
    ) -> None:
        self._queues: dict[str, _Queue] = {}
        # API queues: name -> (queue, deleted_us or None while it exists)
        self._api: dict[str, tuple[models.ApiQueue, int | None]] = {}
        self._keys: list[models.SigningKey] = []  # oldest first
        self.tombstone_retention_us = tombstone_retention_us
        self.dead_letter_retention_us = dead_letter_retention_us

    def _q(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _Queue()
        return q

    def _tombstoned(self, q: _Queue, name: str, now_us: int) -> bool:
        at = q.tombstones.get(name)
        return at is not None and now_us - at < self.tombstone_retention_us

    def _remove(self, q: _Queue, name: str, now_us: int) -> models.Task | None:
        task = q.tasks.pop(name, None)
        if task is not None:
            q.tombstones[name] = now_us
        return task

    # ---- producers
    async def add(self, tasks: Sequence[models.Task], *, now_us: int) -> list[models.AddResult]:
        results = []
        for task in tasks:
            q = self._q(task.queue)
            if task.name in q.tasks:
                results.append(models.AddResult(task, errors.TaskAlreadyExistsError))
            elif self._tombstoned(q, task.name, now_us):
                results.append(models.AddResult(task, errors.TombstonedTaskError))
            else:
                q.tombstones.pop(task.name, None)
                q.put(task)
                results.append(models.AddResult(task))
        return results

    async def get(self, queue: str, name: str) -> models.Task | None:
        return self._q(queue).tasks.get(name)

    async def tombstoned(self, queue: str, name: str, *, now_us: int) -> bool:
        q = self._q(queue)
        return name not in q.tasks and self._tombstoned(q, name, now_us)

    async def _list_tasks(self, ask: base.ListAsk) -> list[models.Task]:
        tasks = self._q(ask.queue).tasks
        names = sorted(
            n
            for n, t in tasks.items()
            if (ask.after_name is None or n > ask.after_name)
            and n.startswith(ask.prefix)
            and (ask.tag is None or t.tag == ask.tag)
        )
        return [tasks[n] for n in names[: ask.limit]]

    async def delete(
        self, queue: str, names: Sequence[str], *, now_us: int, pull: bool = False
    ) -> list[bool]:
        q = self._q(queue)
        return [self._remove(q, name, now_us) is not None for name in names]

    async def purge(self, queue: str, *, now_us: int) -> int:
        q = self._q(queue)
        names = list(q.tasks)
        for name in names:
            self._remove(q, name, now_us)
        q.heap.clear()
        q.push_heap.clear()
        return len(names)

    async def run_now(self, queue: str, name: str, *, now_us: int) -> models.Task | None:
        q = self._q(queue)
        task = q.tasks.get(name)
        if task is None:
            return None
        base.check_runnable(task, now_us)
        task = dataclasses.replace(task, eta_us=now_us)
        q.put(task)
        return task

    # ---- push delivery
    async def _claim_due(self, ask: base.ClaimAsk) -> list[base.Claimed]:
        queue, now_us, limit, lease_us, slack_us, deadlines = ask.terms()
        q = self._q(queue)
        claimed: list[base.Claimed] = []
        while len(claimed) < limit:
            task = q.earliest(push=True)
            if task is None or task.eta_us > now_us:
                break
            lease_eta = now_us + base.lease_for(
                task, lease_us=lease_us, slack_us=slack_us, deadlines=deadlines
            )
            q.put(dataclasses.replace(task, eta_us=lease_eta))
            claimed.append(base.Claimed(task, lease_eta))
        return claimed

    async def step_back(
        self, queue: str, *, now_us: int, was_us: int, held: Collection[str]
    ) -> int:
        q = self._q(queue)
        moved = [
            t
            for t in q.tasks.values()
            if now_us < t.eta_us <= was_us and not t.is_pull and t.name not in held
        ]
        for t in moved:
            q.put(dataclasses.replace(t, eta_us=t.eta_us - (was_us - now_us)))
        return len(moved)

    async def next_eta(self, queue: str) -> int | None:
        task = self._q(queue).earliest(push=True)
        return None if task is None else task.eta_us

    async def stranded(self, modes: Mapping[str, models.QueueMode]) -> dict[str, int]:
        found = {}
        for name, mode in modes.items():
            q = self._queues.get(name)
            pull = mode is models.QueueMode.PULL
            n = 0 if q is None else sum(t.is_pull != pull for t in q.tasks.values())
            if n:
                found[name] = n
        return found

    async def unlisted(self, known: Collection[str]) -> dict[str, base.Holding]:
        found = {}
        for name in sorted(set(self._queues) - set(known)):
            q = self._queues[name]
            if q.tasks or q.dead:
                earliest = q.earliest()
                found[name] = base.Holding(
                    tasks=len(q.tasks),
                    dead_letters=len(q.dead),
                    pull=earliest is not None and earliest.is_pull,
                )
        return found

    async def finish(self, outcomes: Sequence[base.Outcome], *, now_us: int) -> None:
        for outcome in outcomes:
            q = self._q(outcome.queue)
            task = q.tasks.get(outcome.name)
            if task is None or task.eta_us != outcome.lease_eta_us:
                continue  # deleted, purged or re-claimed meanwhile
            if isinstance(outcome, base.Done):
                self._remove(q, outcome.name, now_us)
            elif isinstance(outcome, base.Retry):
                q.put(base.retried(task, outcome))
            else:
                self._remove(q, outcome.name, now_us)
                q.dead[outcome.name] = base.DeadTask(
                    task=base.as_dead(task, outcome),
                    dead_us=now_us,
                    reason=outcome.reason,
                )

    # ---- pull queues
    async def _lease(self, ask: base.LeaseAsk) -> tuple[list[models.Task], list[base.DeadTask]]:
        q = self._q(ask.queue)
        available = [t for t in q.by_eta() if t.eta_us <= ask.now_us and t.is_pull]
        if ask.group_by_tag:
            tag = ask.tag if ask.tag is not None or not available else available[0].tag
            available = [t for t in available if t.tag == tag]
        leased: list[models.Task] = []
        dead: list[base.DeadTask] = []
        for task in available:
            if len(leased) >= ask.max_tasks:
                break
            if (gone := ask.dead(task)) is not None:
                self._remove(q, task.name, ask.now_us)
                q.dead[task.name] = gone
                dead.append(gone)
                continue
            task = base.leased(task, ask.lease_eta_us)
            q.put(task)
            leased.append(task)
        return leased, dead

    async def modify_lease(
        self, queue: str, name: str, *, current_eta_us: int, lease_us: int, now_us: int
    ) -> models.Task:
        q = self._q(queue)
        task = q.tasks.get(name)
        if task is None:
            if self._tombstoned(q, name, now_us):
                raise errors.TombstonedTaskError(f"task {name!r} was deleted or has run")
            raise errors.UnknownTaskError(f"task {name!r} does not exist in queue {queue!r}")
        base.check_lease(name, eta_us=task.eta_us, current_eta_us=current_eta_us, now_us=now_us)
        task = dataclasses.replace(task, eta_us=now_us + lease_us)
        q.put(task)
        return task

    # ---- queue state
    async def set_paused(self, queue: str, paused: bool) -> None:
        self._q(queue).paused = paused

    # ---- OIDC signing keys
    async def signing_keys(self) -> list[models.SigningKey]:
        return list(self._keys)

    async def add_signing_key(self, key: models.SigningKey, *, rotate: bool) -> None:
        current = [k for k in self._keys if k.retired_us is None]
        if current and not rotate:
            return
        self._keys = [
            dataclasses.replace(k, retired_us=key.created_us) if k.retired_us is None else k
            for k in self._keys
        ]
        self._keys.append(key)

    async def drop_signing_keys(self, *, retired_before_us: int) -> int:
        kept = [k for k in self._keys if k.retired_us is None or k.retired_us >= retired_before_us]
        dropped = len(self._keys) - len(kept)
        self._keys = kept
        return dropped

    async def paused_queues(self) -> set[str]:
        return {name for name, q in self._queues.items() if q.paused}

    async def counts(self, queue: str) -> base.QueueCounts:
        q = self._q(queue)
        oldest = q.earliest()
        return base.QueueCounts(
            tasks=len(q.tasks),
            oldest_eta_us=None if oldest is None else oldest.eta_us,
            dead_letters=len(q.dead),
            bytes=sum(t.size for t in q.tasks.values()),
        )

    async def total_bytes(self) -> int:
        return sum(t.size for q in self._queues.values() for t in q.tasks.values())

    # ---- queues created through the Cloud Tasks API
    async def api_queues(self) -> list[models.ApiQueue]:
        return [q for name, (q, deleted) in sorted(self._api.items()) if deleted is None]

    async def save_api_queue(
        self, queue: models.ApiQueue, *, create: bool, now_us: int
    ) -> models.QueueSave:
        row = self._api.get(queue.name)
        found = None if row is None else (row[0].created_us, row[1])
        outcome, created_us = base.api_queue_save(found, create=create, now_us=now_us)
        if outcome in (models.QueueSave.CREATED, models.QueueSave.UPDATED):
            self._api[queue.name] = (dataclasses.replace(queue, created_us=created_us), None)
        return outcome

    async def delete_api_queue(self, name: str, *, now_us: int) -> bool:
        row = self._api.get(name)
        if row is None or row[1] is not None:
            return False
        self._api[name] = (row[0], now_us)
        self._queues.pop(name, None)  # tasks, tombstones, dead letters, paused flag
        return True

    # ---- dead letters
    async def list_dead(
        self, queue: str, *, limit: int = 100, after_name: str | None = None
    ) -> list[base.DeadTask]:
        dead = self._q(queue).dead
        names = sorted(n for n in dead if after_name is None or n > after_name)
        return [dead[n] for n in names[:limit]]

    async def get_dead(self, queue: str, name: str) -> base.DeadTask | None:
        return self._q(queue).dead.get(name)

    async def redrive(self, queue: str, name: str, *, now_us: int) -> models.Task | None:
        q = self._q(queue)
        dead = q.dead.get(name)
        if dead is None or name in q.tasks:
            return None
        del q.dead[name]
        q.tombstones.pop(name, None)
        task = base.redriven(dead.task, now_us)
        q.put(task)
        return task

    async def delete_dead(self, queue: str, name: str) -> bool:
        return self._q(queue).dead.pop(name, None) is not None

    # ---- housekeeping
    async def expire(self, *, now_us: int) -> int:
        dropped = 0
        for q in self._queues.values():
            for name, at in list(q.tombstones.items()):
                if now_us - at >= self.tombstone_retention_us:
                    del q.tombstones[name]
                    dropped += 1
            for name, dead in list(q.dead.items()):
                if now_us - dead.dead_us >= self.dead_letter_retention_us:
                    del q.dead[name]
                    dropped += 1
        for name, (_, deleted) in list(self._api.items()):
            if deleted is not None and now_us - deleted >= models.API_QUEUE_TOMBSTONE_US:
                del self._api[name]
                dropped += 1
        return dropped

    async def close(self) -> None:
        return None
