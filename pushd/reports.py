"""What the daemon logs about its queues at start and after a reload.

Queues removed from queue.yaml that still hold tasks (``queue_removed``), queues holding tasks
their mode cannot run (``queue_stranded``), and where each push queue's tasks go
(``queue_targets``, ``target_unmapped``). Reports only: none of them changes a queue, and a
report cut short by a store hiccup is simply made again at the next start.
"""

from __future__ import annotations

import dataclasses
import logging
import types
from collections.abc import Mapping, Sequence

import anyio

from pushd import errors, logs, models, settings
from pushd.queue_yaml import config
from pushd.store import base

#: Queues the start-up report of stranded tasks counts per store read.
STRANDED_BATCH = 100
#: ``queue_removed`` lines logged between two turns of the event loop.
REMOVED_LOG_CHUNK = 100


async def report_stranded(store: base.Store, queues: config.QueuesConfig) -> None:
    """At start: log each queue holding tasks its mode cannot run (its mode changed while
    pushd was stopped, or under an older pushd). They stay listed and deletable, and never
    keep a queue's loop awake. Counted a few queues at a time, so reads still get a turn."""
    modes = {name: cfg.mode for name, cfg in queues.queues.items()}
    names = sorted(modes)
    for i in range(0, len(names), STRANDED_BATCH):
        try:
            found = await store.stranded({n: modes[n] for n in names[i : i + STRANDED_BATCH]})
        except errors.TransientError:
            return  # only a report: the next start tries again
        for name, count in sorted(found.items()):
            logs.event(
                "queue_stranded",
                logging.WARNING,
                queue=name,
                tasks=count,
                problem=stranding(name, modes[name], count),
            )


def with_removed(
    queues: config.QueuesConfig, held: Mapping[str, base.Holding]
) -> config.QueuesConfig:
    """``queues`` with the queues in ``held`` (missing from the file) shown as removed."""
    removed = {name: config.removed_queue(name, pull=h.pull) for name, h in held.items()}
    return dataclasses.replace(queues, removed=types.MappingProxyType(removed))


async def log_removed(names: Sequence[str], held: Mapping[str, base.Holding]) -> None:
    """``queue_removed`` for each of ``names`` with what it holds (a warning if tasks wait),
    a turn of the event loop every ``REMOVED_LOG_CHUNK`` lines (thousands may go at once)."""
    for i, name in enumerate(names, 1):
        holding = held.get(name, base.Holding())
        logs.event(
            "queue_removed",
            logging.WARNING if holding.tasks else logging.INFO,
            queue=name,
            tasks=holding.tasks,
            dead_letters=holding.dead_letters,
        )
        if i % REMOVED_LOG_CHUNK == 0:
            await anyio.lowlevel.checkpoint()


def stranding(queue: str, mode: models.QueueMode, count: int) -> str:
    other = "pull" if mode is models.QueueMode.PUSH else "push"
    return (
        f"queue {queue}: holds {count} {other} task(s) a {mode} queue cannot run; keep mode "
        f"{other} until they are done, or delete or purge them first"
    )


def log_routes(
    queues: config.QueuesConfig, cfg: settings.Settings, *, unmapped_only: bool = False
) -> None:
    """Where the push queues' tasks go: one ``queue_targets`` line per base URL and queue
    target (the queues in file order), and a ``target_unmapped`` warning for each queue whose
    ``target`` has no mapping in ``targets:`` (its tasks go to ``default_target``)."""
    routes = queues.routes(cfg.targets, cfg.default_target)
    if not unmapped_only:
        groups: dict[tuple[str, str | None], list[str]] = {}
        for r in routes:
            groups.setdefault((r.url, r.target), []).append(r.queue)
        for (url, target), names in groups.items():
            logs.event("queue_targets", url=url, target=target or "-", queues=",".join(names))
    for r in routes:
        if not r.mapped:
            logs.event(
                "target_unmapped",
                logging.WARNING,
                queue=r.queue,
                target=r.target,
                url=r.url,
                fix="map it under targets: in the settings, or correct the queue's target",
            )
