"""The daemon's queue configuration at run time: SIGHUP reloads of queue.yaml and the
queues created through the Cloud Tasks API, applied together (:class:`pushd.daemon.Daemon`
inherits them).

A reload is all or nothing: the SIGHUP handler only raises a flag; a task of the daemon reads
and validates the file in a thread, refuses a mode change that would strand stored tasks, then
applies the whole file (scheduler in chunks, cluster ownership, API view) and logs
``config_reloaded`` or ``config_rejected`` once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Iterator
from pathlib import Path

import anyio

from pushd import clock, cluster, errors, logs, models, reports, scheduler, settings
from pushd.queue_yaml import config
from pushd.service import api_queues
from pushd.store import base, health


class Reloading:
    """The reload and API-queue half of :class:`pushd.daemon.Daemon` (which sets these)."""

    settings: settings.Settings
    queue_yaml: Path
    clock: clock.Clock
    queues: config.QueuesConfig
    _file: config.QueuesConfig
    _api: list[models.ApiQueue]
    _applying: asyncio.Lock
    _api_wanted: asyncio.Event
    _reload_wanted: asyncio.Event

    def request_reload(self) -> None:
        """The SIGHUP handler: a flag, nothing more. Work started from a signal handler runs
        outside every task: a new queue's loop could not start there, which stopped the
        reload half-way with a traceback (issue 15)."""
        self._reload_wanted.set()

    async def _reloader(
        self, sched: scheduler.Scheduler, store: base.Store, peers: cluster.Cluster | None
    ) -> None:
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()  # a SIGHUP from here on makes one more reload
            try:
                await self.reload(sched, store, peers)
            except Exception as exc:  # a bug in a reload must not take the daemon down
                self._reject(f"internal error: {exc!r}", exc_info=True)

    async def reload(
        self,
        sched: scheduler.Scheduler,
        store: base.Store,
        peers: cluster.Cluster | None = None,
    ) -> bool:
        """Read queue.yaml again and apply all of it, or none of it; log the outcome once."""
        with _collector_paused():
            try:
                new = await anyio.to_thread.run_sync(config.load_file, self.queue_yaml)
            except errors.ConfigError as exc:
                first = str(exc.issues[0]) if exc.issues else ""
                self._reject(first, problems=len(exc.issues))
                return False
            async with self._applying:
                file, new = new, api_queues.merged(new, self._api)
                if (problem := await self._mode_problem(new, store)) is not None:
                    self._reject(*problem)
                    return False
                try:
                    held = await store.unlisted(new.queues)
                    paused = await store.paused_queues()
                except errors.TransientError as exc:
                    self._reject(f"cannot read which queues the store holds tasks of: {exc}")
                    return False
                await sched.reconfigure_in_chunks(new, paused=paused)
                self._file = file
                old, self.queues = self.queues, reports.with_removed(new, held)  # API's view, now
        await reports.log_removed(sorted(old.queues.keys() - new.queues.keys()), held)
        if peers is not None:
            peers.renew_soon()  # new push queues get an owner now, not at the next renewal
        logs.event("config_reloaded", file=str(self.queue_yaml), queues=len(file.queues))
        reports.log_routes(new, self.settings, unmapped_only=True)
        return True

    async def apply_api_queues(
        self,
        sched: scheduler.Scheduler,
        store: base.Store,
        peers: cluster.Cluster | None = None,
    ) -> None:
        """Read the API queues from the store and run them with queue.yaml's, as a reload
        applies a file: a new one starts (paused if its flag is stored), a changed one takes
        its new settings, a deleted one stops (nothing of it is left to send)."""
        async with self._applying:
            found = await store.api_queues()
            if found == self._api:
                return
            new = api_queues.merged(self._file, found)
            held = await store.unlisted(new.queues)
            paused = await store.paused_queues()
            await sched.reconfigure_in_chunks(new, paused=paused)
            for queue in {q.name for q in found} | {q.name for q in self._api}:
                sched.set_paused(queue, queue in paused)  # a queue made again starts running
            self._api, self.queues = found, reports.with_removed(new, held)
        if peers is not None:
            peers.renew_soon()  # a new push queue gets an owner now, not at the next renewal

    async def _api_queue_refresher(
        self, sched: scheduler.Scheduler, store: base.Store, peers: cluster.Cluster | None
    ) -> None:
        """PostgreSQL: apply the API queue changes other daemons announce."""
        while True:
            await self._api_wanted.wait()
            self._api_wanted.clear()
            try:
                await self.apply_api_queues(sched, store, peers)
            except errors.TransientError as exc:
                health.report("reading the API queues", exc)
                self._api_wanted.set()  # again at the next change or resync
                await self.clock.sleep(1.0)

    async def _mode_problem(
        self, new: config.QueuesConfig, store: base.Store
    ) -> tuple[str, int] | None:
        """Why ``new`` may not apply because of stored tasks (the first problem and how many
        queues have one), or None.

        App Engine never changed a queue's mode under its tasks: a push queue cannot run pull
        tasks nor a pull queue push ones, so such a change is refused. Only queues whose mode
        changes, or that come back to the file, are looked at (their tasks are counted).
        """
        old = self.queues.queues
        looked = {
            name: cfg.mode
            for name, cfg in new.queues.items()
            if name not in old or old[name].mode is not cfg.mode
        }
        try:
            stranded = await store.stranded(looked)
        except errors.TransientError as exc:
            return f"cannot count the tasks of the queues whose mode changes: {exc}", 1
        if not stranded:
            return None
        name = min(stranded)
        return reports.stranding(name, looked[name], stranded[name]), len(stranded)

    def _reject(self, first: str, problems: int = 1, *, exc_info: bool = False) -> None:
        logs.event(
            "config_rejected",
            logging.ERROR,
            exc_info=exc_info,
            file=str(self.queue_yaml),
            problems=problems,
            first=first,
        )


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection during a reload, then what it kept frozen (``gc.freeze``).

    Parsing 5,000 queues makes hundreds of thousands of objects: the full collections they
    set off held the GIL, so the event loop, for ~100 ms each while the parsing thread ran,
    and the objects the reload kept would have made every later full collection longer.
    Frozen objects are never collected; a reload's objects are freed by reference counts.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
