"""Tasks: add a batch, read, list, delete, run now.

Adding follows App Engine (SPEC 1.13-1.15): the whole batch is validated first and nothing is
stored if any task is invalid; then each task is inserted on its own, so a name clash fails only
that task and is reported in its :class:`models.AddResult`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pushd import errors, models
from pushd import tasks as task_rules
from pushd.service import parts

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pushd.queue_yaml import config
    from pushd.store import base


def unknown(queue: str, name: str) -> errors.UnknownTaskError:
    return errors.UnknownTaskError(f"queue {queue!r} has no task {name!r}")


async def check_storage_limit(
    store: base.Store, queues: config.QueuesConfig, batch: Sequence[models.Task]
) -> None:
    """Refuse tasks that would take the store past queue.yaml's ``total_storage_limit``."""
    limit = queues.total_storage_limit_bytes
    if limit is None:
        return
    used, adding = await store.total_bytes(), sum(task.size for task in batch)
    if used + adding > limit:
        raise errors.StorageLimitExceededError(
            f"total_storage_limit is {limit} bytes; {used} are stored and "
            f"this request adds {adding}"
        )


class Tasks:
    """The live tasks of every queue."""

    def __init__(self, parts_: parts.Parts) -> None:
        self._p = parts_

    async def add(
        self, cfg: config.QueueConfig, requests: Sequence[task_rules.TaskRequest]
    ) -> list[models.AddResult]:
        """Validate the whole batch for ``cfg`` (any invalid task fails it all), then store it
        as :meth:`store` does."""
        now_us = self._p.clock.now_us()
        batch = task_rules.validate_batch(requests, queue=cfg.name, mode=cfg.mode, now_us=now_us)
        return await self.store(batch, now_us=now_us)

    async def store(self, batch: Sequence[models.Task], *, now_us: int) -> list[models.AddResult]:
        """Insert tasks already validated at ``now_us`` within the storage limit, then wake the
        scheduler for each push task stored: every API adds through here."""
        p = self._p
        await check_storage_limit(p.store, p.queues(), batch)
        results = await p.store.add(batch, now_us=now_us)
        # Per queue, not per task: how many were stored, and the earliest push task's ETA (the
        # one wake-up that matters: the scheduler wakes for an ETA before the one it plans for).
        added: dict[str, int] = {}
        earliest: dict[str, models.Task] = {}
        for result in results:
            if result.ok:
                task = result.task
                added[task.queue] = added.get(task.queue, 0) + 1
                if not task.is_pull:
                    first = earliest.get(task.queue)
                    if first is None or task.eta_us < first.eta_us:
                        earliest[task.queue] = task
        for task in earliest.values():
            p.notify(task)
        for queue, count in added.items():
            p.metrics.record_added(queue, count)
        return results

    async def find(self, queue: str, name: str) -> models.Task | None:
        """The live task ``name`` of ``queue``, if there is one."""
        return await self._p.store.get(queue, name)

    async def tombstoned(self, queue: str, name: str) -> bool:
        """Whether ``name`` is gone from ``queue`` but its name is still reserved (it ran,
        was deleted or purged within the tombstone retention): Cloud Tasks tells that apart
        from a name that never existed."""
        return await self._p.store.tombstoned(queue, name, now_us=self._p.clock.now_us())

    async def get(self, queue: str, name: str) -> models.Task:
        """The live task ``name`` of ``queue``, or :class:`errors.UnknownTaskError`."""
        task = await self.find(queue, name)
        if task is None:
            raise unknown(queue, name)
        return task

    async def page(
        self,
        queue: str,
        *,
        limit: int,
        after: str | None = None,
        prefix: str = "",
        tag: bytes | None = None,
    ) -> parts.Page[models.Task]:
        """Up to ``limit`` tasks of ``queue`` named after ``after``, in name order; ``prefix``
        and ``tag`` narrow the search (the store does it, page by page)."""
        found = await self._p.store.list_tasks(
            queue, limit=limit + 1, after_name=after, prefix=prefix, tag=tag
        )
        return parts.page_of(found, limit, lambda task: task.name)

    async def delete(self, queue: str, names: Sequence[str]) -> list[bool]:
        """Delete tasks by name (whether each was live); claimed ones waiting to go are not
        sent. Every API deletes through here."""
        cfg = self._p.queues().queues.get(queue)
        pull = cfg is not None and cfg.mode is models.QueueMode.PULL
        deleted = await self._p.store.delete(queue, names, now_us=self._p.clock.now_us(), pull=pull)
        self._p.engine.forget(queue, [n for n, gone in zip(names, deleted, strict=True) if gone])
        return deleted

    async def delete_one(self, queue: str, name: str) -> None:
        """Delete one live task, as :meth:`delete` does, or :class:`errors.UnknownTaskError`."""
        [deleted] = await self.delete(queue, [name])
        if not deleted:
            raise unknown(queue, name)

    async def run_now(self, queue: str, name: str) -> models.Task:
        """Make a stored task due now and wake the scheduler; every API runs tasks through here."""
        task = await self._p.store.run_now(queue, name, now_us=self._p.clock.now_us())
        if task is None:
            raise unknown(queue, name)
        self._p.notify(task)
        return task
