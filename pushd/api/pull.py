"""Pull-queue operations shared by the native API and TaskQueue REST v1beta2 (SPEC 6).

Both APIs decode their own request shapes, then call :func:`lease` and :func:`modify_lease`
here, so the rules (queue mode, paused queues, retry limit as a lease limit, lease statistics)
live in one place.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pushd import clock, config, errors, logs, metrics, models, wire

if TYPE_CHECKING:
    from pushd.store import base

_BUCKET_US = clock.US_PER_SECOND
_MINUTE_US = 60 * clock.US_PER_SECOND
_HOUR_US = 3600 * clock.US_PER_SECOND


@dataclass(slots=True)
class _Buckets:
    # (second, tasks leased in that second), oldest first, at most an hour of them
    seconds: collections.deque[tuple[int, int]] = field(default_factory=collections.deque)


class LeaseMeter:
    """How many tasks each pull queue leased recently, in one-second buckets over an hour.

    Memory is bounded by 3600 buckets per queue whatever the lease rate.
    """

    def __init__(self, metrics_: metrics.Metrics | None = None) -> None:
        self._queues: dict[str, _Buckets] = {}
        self._metrics = metrics_

    def record(self, queue: str, count: int, now_us: int) -> None:
        if count <= 0:
            return
        if self._metrics is not None:
            self._metrics.record_leased(queue, count)
        buckets = self._queues.setdefault(queue, _Buckets()).seconds
        second = now_us // _BUCKET_US
        if buckets and buckets[-1][0] == second:
            buckets[-1] = (second, buckets[-1][1] + count)
        else:
            buckets.append((second, count))
        self._prune(buckets, now_us)

    def record_dead(self, dead: base.DeadTask) -> None:
        """A pull task over its lease limit moved to the dead letters."""
        logs.event(
            "task_dead_lettered",
            logging.WARNING,
            queue=dead.task.queue,
            task=dead.task.name,
            reason=dead.reason,
        )
        if self._metrics is not None:
            self._metrics.record_dead(dead.task.queue)

    def leased(self, queue: str, now_us: int, *, window_us: int) -> int:
        """Tasks leased from ``queue`` in the ``window_us`` before ``now_us`` (at most an hour)."""
        found = self._queues.get(queue)
        if found is None:
            return 0
        self._prune(found.seconds, now_us)
        first = (now_us - window_us) // _BUCKET_US
        return sum(count for second, count in found.seconds if second > first)

    def last_minute(self, queue: str, now_us: int) -> int:
        return self.leased(queue, now_us, window_us=_MINUTE_US)

    def last_hour(self, queue: str, now_us: int) -> int:
        return self.leased(queue, now_us, window_us=_HOUR_US)

    @staticmethod
    def _prune(buckets: collections.deque[tuple[int, int]], now_us: int) -> None:
        oldest = (now_us - _HOUR_US) // _BUCKET_US
        while buckets and buckets[0][0] <= oldest:
            buckets.popleft()


def require_pull(cfg: config.QueueConfig, operation: str) -> None:
    """Pull operations on a push queue fail with :class:`errors.InvalidQueueModeError`."""
    if cfg.mode is not models.QueueMode.PULL:
        raise errors.InvalidQueueModeError(
            f"cannot {operation} on queue {cfg.name!r}: it is a push queue; "
            "only pull queues (mode: pull in queue.yaml) hold leasable tasks"
        )


async def require_running(store: base.Store, cfg: config.QueueConfig) -> None:
    if cfg.name in await store.paused_queues():
        raise errors.QueuePausedError(
            f"queue {cfg.name!r} is paused; resume it (pushdctl resume {cfg.name}) to lease its tasks"
        )


async def lease(
    store: base.Store,
    meter: LeaseMeter,
    cfg: config.QueueConfig,
    request: wire.LeaseRequest,
    *,
    now_us: int,
) -> list[models.Task]:
    """Lease up to ``request.max_tasks`` available tasks of a pull queue (SPEC 6).

    Tasks over their lease limit met on the way become dead letters (App Engine deleted them
    silently: to its API they are gone either way)."""
    require_pull(cfg, "lease tasks")
    await require_running(store, cfg)
    dead: list[base.DeadTask] = []
    leased = await store.lease(
        cfg.name,
        now_us=now_us,
        lease_us=request.lease_us,
        max_tasks=request.max_tasks,
        group_by_tag=request.group_by_tag,
        tag=request.tag,
        queue_retry_limit=cfg.retry.task_retry_limit,
        dead_lettered=dead,
    )
    for d in dead:
        meter.record_dead(d)
    meter.record(cfg.name, len(leased), now_us)
    return leased


async def modify_lease(
    store: base.Store,
    cfg: config.QueueConfig,
    name: str,
    *,
    current_eta_us: int,
    lease_us: int,
    now_us: int,
) -> models.Task:
    """Renew (or with 0 s, release) the lease a worker holds on ``name`` (SPEC 6)."""
    require_pull(cfg, "modify a task lease")
    await require_running(store, cfg)
    return await store.modify_lease(
        cfg.name, name, current_eta_us=current_eta_us, lease_us=lease_us, now_us=now_us
    )
