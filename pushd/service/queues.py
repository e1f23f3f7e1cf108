"""Queues: which exist, their statistics, and the operator's verbs on a whole queue (pause,
resume, purge)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from pushd import clock, logs, metrics, models
from pushd.service import parts

if TYPE_CHECKING:
    from pushd.queue_yaml import config
    from pushd.store import base


class Queues:
    """The queues of the current queue.yaml, and those removed from it that still hold tasks."""

    def __init__(self, parts_: parts.Parts) -> None:
        self._p = parts_

    def current(self) -> config.QueuesConfig:
        """The queue.yaml in force now (a reload applies at once)."""
        return self._p.queues()

    def queue(self, name: str) -> config.QueueConfig:
        """The queue of queue.yaml named ``name`` (adding, leasing, pausing, running tasks), or
        :class:`errors.UnknownQueueError`."""
        return self._p.queues().queue(name)

    def held(self, name: str) -> config.QueueConfig:
        """The queue named ``name``, also one removed from queue.yaml (reading, deleting and
        purging its tasks and dead letters)."""
        return self._p.queues().held(name)

    def page(
        self, *, limit: int, after: str | None, visible: Callable[[config.QueueConfig], bool]
    ) -> parts.Page[config.QueueConfig]:
        """The first ``limit`` queues named after ``after`` that ``visible`` lets the caller see,
        in name order. Every listing pages, so a request's work stays bounded at any queue count.
        Queues removed from queue.yaml that still hold tasks are listed among the others."""
        queues = self._p.queues()
        configured, removed = queues.queues, queues.removed
        found: list[config.QueueConfig] = []
        names = itertools.chain(configured, removed)
        for name in sorted(n for n in names if after is None or n > after):
            cfg = configured.get(name) or removed[name]
            if visible(cfg):
                found.append(cfg)
                if len(found) > limit:
                    break
        return parts.page_of(found, limit, lambda cfg: cfg.name)

    async def paused(self) -> set[str]:
        """The queues paused in the store (by an operator, through any API)."""
        return await self._p.store.paused_queues()

    async def counts(self, queue: str) -> base.QueueCounts:
        """What the store holds of ``queue``: tasks, the oldest ETA, dead letters."""
        return await self._p.store.counts(queue)

    async def stats(self, cfg: config.QueueConfig, paused: set[str]) -> models.QueueStats:
        """The statistics of ``cfg``; ``paused`` holds the queues paused in the store
        (:meth:`paused`, read once for a listing). A queue removed from queue.yaml is paused
        (nothing runs its tasks)."""
        p = self._p
        removed = cfg.name not in p.queues().queues
        counts = await p.store.counts(cfg.name)
        live = p.engine.live(cfg.name)
        executed = live.executed_last_minute
        if cfg.mode is models.QueueMode.PULL:  # App Engine counts leases for pull queues
            executed = p.leases.last_minute(cfg.name, p.clock.now_us())
        return models.QueueStats(
            queue=cfg.name,
            tasks=counts.tasks,
            oldest_eta_us=counts.oldest_eta_us,
            executed_last_minute=executed,
            in_flight=live.in_flight,
            enforced_rate=live.enforced_rate,
            paused=live.paused or cfg.paused or cfg.name in paused or removed,
            dead_letters=counts.dead_letters,
            removed=removed,
        )

    async def stats_of(self, queues: Iterable[config.QueueConfig]) -> list[models.QueueStats]:
        """The statistics of each of ``queues``, one queue at a time."""
        paused = await self.paused()
        return [await self.stats(cfg, paused) for cfg in queues]

    async def gauges(self, queues: Iterable[config.QueueConfig]) -> dict[str, metrics.QueueGauges]:
        """The Prometheus gauges of ``queues``, as their statistics say now (read one queue at a
        time, each read awaited, so thousands of queues never hold the event loop for long)."""
        now_us = self._p.clock.now_us()
        paused = await self.paused()
        found = {}
        for cfg in queues:
            found[cfg.name] = gauges_of(cfg, await self.stats(cfg, paused), now_us)
        return found

    def history(self, queue: str) -> list[metrics.Step]:
        """What the metrics remember of ``queue`` over the last minutes (the console's charts)."""
        return self._p.metrics.history(queue)

    async def pause(self, queue: str) -> None:
        """Stop sending (or leasing) the tasks of ``queue`` until :meth:`resume`."""
        await self._p.engine.pause(queue)

    async def resume(self, queue: str) -> None:
        await self._p.engine.resume(queue)

    async def purge(self, queue: str) -> int:
        """Drop every task of ``queue``; those already claimed and waiting to go are not sent."""
        purged = await self._p.store.purge(queue, now_us=self._p.clock.now_us())
        self._p.engine.forget(queue)
        logs.event("queue_purged", queue=queue, tasks=purged)
        return purged


def gauges_of(
    cfg: config.QueueConfig, stats: models.QueueStats, now_us: int
) -> metrics.QueueGauges:
    """The gauges of one queue from its statistics."""
    oldest = stats.oldest_eta_us
    return metrics.QueueGauges(
        waiting=stats.tasks,
        in_flight=stats.in_flight,
        enforced_rate=stats.enforced_rate if cfg.mode is models.QueueMode.PUSH else 0.0,
        oldest_eta_age_s=0.0 if oldest is None else max(0, now_us - oldest) / clock.US_PER_SECOND,
        paused=stats.paused,
        dead_letters=stats.dead_letters,
        removed=stats.removed,
    )
