"""Pull queues: lease tasks, renew or release a lease (SPEC 6).

Every API that leases (native, TaskQueue REST v1beta2, ``/rpc_http``) decodes its own request
shape and comes here, so the rules (queue mode, paused queues, the retry limit as a lease
limit, lease statistics) live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pushd import errors, models

if TYPE_CHECKING:
    from pushd.queue_yaml import config
    from pushd.service import parts
    from pushd.store import base


@dataclass(frozen=True, slots=True)
class Leased:
    """How many tasks a pull queue leased in the last minute and the last hour."""

    last_minute: int
    last_hour: int


def require_pull(cfg: config.QueueConfig, operation: str) -> None:
    """Pull operations on a push queue fail with :class:`errors.InvalidQueueModeError`."""
    if cfg.mode is not models.QueueMode.PULL:
        raise errors.InvalidQueueModeError(
            f"cannot {operation} on queue {cfg.name!r}: it is a push queue; "
            "only pull queues (mode: pull in queue.yaml) hold leasable tasks"
        )


class Pull:
    """The leases of pull tasks."""

    def __init__(self, parts_: parts.Parts) -> None:
        self._p = parts_

    async def _require_running(self, cfg: config.QueueConfig) -> None:
        if cfg.name in await self._p.store.paused_queues():
            raise errors.QueuePausedError(
                f"queue {cfg.name!r} is paused; resume it (pushdctl resume {cfg.name}) to lease "
                "its tasks"
            )

    async def lease(
        self,
        cfg: config.QueueConfig,
        *,
        lease_us: int,
        max_tasks: int,
        group_by_tag: bool = False,
        tag: bytes | None = None,
    ) -> list[models.Task]:
        """Lease up to ``max_tasks`` available tasks of a pull queue for ``lease_us``.

        Tasks over their lease limit met on the way become dead letters (App Engine deleted them
        silently: to its API they are gone either way)."""
        require_pull(cfg, "lease tasks")
        await self._require_running(cfg)
        p, now_us = self._p, self._p.clock.now_us()
        dead: list[base.DeadTask] = []
        leased = await p.store.lease(
            cfg.name,
            now_us=now_us,
            lease_us=lease_us,
            max_tasks=max_tasks,
            group_by_tag=group_by_tag,
            tag=tag,
            queue_retry_limit=cfg.retry.task_retry_limit,
            dead_lettered=dead,
        )
        for d in dead:
            p.leases.record_dead(d)
        p.leases.record(cfg.name, len(leased), now_us)
        return leased

    async def renew(
        self, cfg: config.QueueConfig, name: str, *, current_eta_us: int, lease_us: int
    ) -> models.Task:
        """Renew (or with 0 µs, release) the lease a worker holds on ``name``: the lease it
        holds is the one that set the task's ETA to ``current_eta_us``."""
        require_pull(cfg, "modify a task lease")
        await self._require_running(cfg)
        return await self._p.store.modify_lease(
            cfg.name,
            name,
            current_eta_us=current_eta_us,
            lease_us=lease_us,
            now_us=self._p.clock.now_us(),
        )

    def leased(self, queue: str) -> Leased:
        """How many tasks ``queue`` leased lately (App Engine's statistics of a pull queue)."""
        now_us, meter = self._p.clock.now_us(), self._p.leases
        return Leased(meter.last_minute(queue, now_us), meter.last_hour(queue, now_us))
