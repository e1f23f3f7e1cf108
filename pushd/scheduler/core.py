"""The push scheduler: the control surface over the queue loops, deliveries and flusher.

Shutdown: stop claiming, give in-flight deliveries ``grace_us`` to finish, cancel the rest.
Claimed tasks not yet sent are given back (due again at once, no attempt counted); a delivery
cancelled while its request was out writes nothing: its claim expires and the task runs again.
A forced stop (:meth:`Scheduler.abandon`, a second SIGTERM) ends the grace at once and gives
back every claim, sent or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from pushd import clock, errors, logs, metrics, models, throttle
from pushd.scheduler import holds
from pushd.scheduler.admission import Admission
from pushd.scheduler.delivery import Deliver, Deliveries, Parts
from pushd.scheduler.flusher import Flusher
from pushd.scheduler.loops import QueueLoops
from pushd.scheduler.queue import AWAKE, QueueState
from pushd.store import base, health

if TYPE_CHECKING:
    from pushd.queue_yaml import config
    from pushd.scheduler.holds import Hold

HOUSEKEEPING_INTERVAL_US = 600 * clock.US_PER_SECOND  # how often expired tombstones are dropped
RECONFIGURE_CHUNK = 50  # queues a reload applies between two turns of the event loop


class Scheduler:
    """Delivers the push queues of one daemon (see :mod:`pushd.scheduler`)."""

    def __init__(
        self,
        *,
        store: base.Store,
        clock: clock.Clock,
        queues: config.QueuesConfig,
        deliver: Deliver,
        default_deadline_us: int = models.DEFAULT_DISPATCH_DEADLINE_US,
        max_connections: int = 256,
        paused: set[str] | frozenset[str] = frozenset(),
        grace_us: int = 30 * clock.US_PER_SECOND,
        owned: frozenset[str] | None = None,
        metrics_: metrics.Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics_ or metrics.Metrics(clock)
        self.clock = clock
        self.grace_us = grace_us
        self._queues: dict[str, QueueState] = {}
        self._stop = asyncio.Event()
        self._admission = Admission(max_connections)
        self._flusher = Flusher(
            store,
            clock,
            written=self._written,
            closing=lambda: self._stop.is_set() and not self._delivering,
        )
        parts = Parts(
            store=store,
            clock=clock,
            metrics=self.metrics,
            admission=self._admission,
            flusher=self._flusher,
            stop=self._stop,
            default_deadline_us=default_deadline_us,
        )
        self._deliveries = Deliveries(parts, deliver=deliver, max_connections=max_connections)
        self._loop = QueueLoops(parts, self._deliveries)
        self._loops: anyio.abc.TaskGroup | None = None
        self._delivering = False  # between start and the end of the shutdown grace
        # With a store shared by several daemons: the push queues this one dispatches (None:
        # all of them), and what the other daemons report of theirs.
        self._owned = owned
        self._others: Mapping[str, models.LiveStats] = {}
        now = clock.monotonic_us()
        for cfg in queues.queues.values():
            if cfg.mode is models.QueueMode.PUSH:
                self._queues[cfg.name] = self._new_queue(cfg, now, cfg.name in paused)

    def _new_queue(self, cfg: config.QueueConfig, mono_us: int, paused: bool) -> QueueState:
        rt = QueueState(
            cfg=cfg,
            limits=throttle.QueueThrottle(
                cfg.rate, cfg.bucket_size, cfg.max_concurrent_requests, mono_us
            ),
        )
        rt.operator_paused = paused
        rt.elsewhere = self._owned is not None and cfg.name not in self._owned
        return rt

    # ------------------------------------------------------------------ control surface
    def notify(self, queue: str, eta_us: int) -> None:
        """A task of ``queue`` became due at ``eta_us`` (added, redriven, run now)."""
        rt = self._queues.get(queue)
        if rt is None:
            return
        planned = rt.planned_us
        if planned is None or planned == AWAKE or eta_us < planned:
            rt.wake.set()

    def forget(self, queue: str, names: Iterable[str] | None = None) -> None:
        """Tasks of ``queue`` were deleted (``names``) or all purged (None): those claimed and
        still waiting for a slot or a connection are not sent."""
        rt = self._queues.get(queue)
        if rt is None:
            return
        rt.dropped |= set(rt.unsent) if names is None else rt.unsent.intersection(names)

    def has_queue(self, queue: str) -> bool:
        return queue in self._queues

    async def pause(self, queue: str) -> None:
        await self.store.set_paused(queue, True)
        self.set_paused(queue, True)
        logs.event("queue_paused", queue=queue)

    async def resume(self, queue: str) -> None:
        await self.store.set_paused(queue, False)
        self.set_paused(queue, False)
        logs.event("queue_resumed", queue=queue)

    def set_paused(self, queue: str, paused: bool) -> None:
        """The operator's pause flag of ``queue``, already stored (here or by another daemon)."""
        if rt := self._queues.get(queue):
            rt.operator_paused = paused
            rt.limits.paused = rt.halted
            rt.wake.set()

    def set_ownership(self, owned: frozenset[str], others: Mapping[str, models.LiveStats]) -> None:
        """Dispatch exactly the push queues in ``owned`` (the others' daemons report
        ``others``). A queue given up keeps its claims unsent: they are released (due again at
        once, no attempt counted) as they come up."""
        self._owned = owned
        self._others = others
        for name, rt in self._queues.items():
            elsewhere = name not in owned
            if elsewhere != rt.elsewhere:
                rt.elsewhere = elsewhere
                rt.limits.paused = rt.halted
                rt.wake.set()

    @property
    def in_flight(self) -> int:
        """Deliveries this daemon has claimed and not finished (sending or about to)."""
        return self._admission.in_flight

    def wake_all(self) -> None:
        """Every queue looks at the store again (changes may have been missed)."""
        for rt in self._queues.values():
            rt.wake.set()

    def live_all(self) -> dict[str, models.LiveStats]:
        """:meth:`live` of every push queue this daemon dispatches."""
        return {name: self.live(name) for name, rt in self._queues.items() if not rt.elsewhere}

    def live(self, queue: str) -> models.LiveStats:
        rt = self._queues.get(queue)
        if rt is None:
            return models.LiveStats()
        if rt.elsewhere:
            return self._others.get(queue, models.LiveStats(paused=rt.paused))
        now = self.clock.monotonic_us()
        executed = rt.count_executed(now)
        rt.recover(now)  # an idle queue recovers too: its loop may be asleep
        return models.LiveStats(
            in_flight=rt.limits.gate.in_flight,
            executed_last_minute=executed,
            enforced_rate=float(rt.enforced_rate()),
            paused=rt.paused,
        )

    def reconfigure(self, queues: config.QueuesConfig) -> None:
        """Apply a reloaded queue.yaml at once: rates, buckets, limits, retry parameters.

        Tokens already in a bucket are kept; a queue gone from the file is paused, not dropped.
        """
        for _ in self._reconfigure_steps(queues):
            pass

    async def reconfigure_in_chunks(
        self,
        queues: config.QueuesConfig,
        chunk: int = RECONFIGURE_CHUNK,
        *,
        paused: Collection[str] = frozenset(),
    ) -> None:
        """:meth:`reconfigure`, giving the event loop a turn every ``chunk`` queues: thousands
        of queues in one go held the loop for tens of milliseconds (issue 15). A queue new to
        this scheduler starts paused if it is in ``paused`` (the operator's flags, stored)."""
        for i, _ in enumerate(self._reconfigure_steps(queues, paused), 1):
            if i % chunk == 0:
                await anyio.lowlevel.checkpoint()

    def _reconfigure_steps(
        self, queues: config.QueuesConfig, paused: Collection[str] = frozenset()
    ) -> Iterator[None]:
        """Apply ``queues`` one queue at a time (a step per queue, for the caller to pace).

        Must run in a task of the daemon (not a signal handler): a new queue's loop is
        started in the scheduler's task group.
        """
        wanted = {n: c for n, c in queues.queues.items() if c.mode is models.QueueMode.PUSH}
        for name, rt in list(self._queues.items()):
            if name not in wanted and not rt.removed:
                rt.removed = True
                rt.limits.paused = True
                rt.wake.set()
                yield  # thousands of loops woken at once held the event loop (issue 16)
        for name, cfg in wanted.items():
            now = self.clock.monotonic_us()
            rt_or_none = self._queues.get(name)
            if rt_or_none is None:
                rt = self._queues[name] = self._new_queue(cfg, now, name in paused)
                rt.limits.paused = rt.halted
                if self._loops is not None:
                    self._loops.start_soon(self._loop.run, rt, name=f"pushd-queue-{name}")
                yield
                continue
            rt = rt_or_none
            rt.cfg = cfg
            rt.removed = False
            rt.limits.reconfigure(rt.enforced_rate(), cfg.bucket_size, now)
            rt.limits.gate.limit = cfg.max_concurrent_requests
            rt.hand_slots()
            rt.limits.paused = rt.halted
            rt.repace(now)
            rt.wake.set()
            yield

    def stop(self) -> None:
        """Stop claiming; :meth:`run` returns once in-flight deliveries end or the grace ends."""
        self._stop.set()
        for rt in self._queues.values():
            rt.wake.set()
            rt.repaced.set()  # sends waiting for their pace are given back now

    def abandon(self) -> None:
        """Stop now (a second SIGTERM): the grace ends at once and every delivery is cut off
        and given back, due again at once with no attempt counted, even one whose request
        was out: its answer will never be read, and at least once allows a second send."""
        self._deliveries.abandoned.set()
        self.stop()

    # ------------------------------------------------------------------ main loop
    async def run(self) -> None:
        for rt in self._queues.values():
            rt.limits.paused = rt.halted
        async with anyio.create_task_group() as outer:
            outer.start_soon(self._flusher.run, name="pushd-flusher")
            outer.start_soon(self._housekeeper, name="pushd-housekeeper")
            self._delivering = True
            try:
                async with anyio.create_task_group() as loops:
                    self._loops = loops
                    for rt in list(self._queues.values()):
                        loops.start_soon(self._loop.run, rt, name=f"pushd-queue-{rt.name}")
                self._loops = None
                await self._drain()
            finally:
                await self._deliveries.cancel_all()  # a cancelled delivery writes nothing
                self._delivering = False  # only now: every outcome is queued for the flusher
            self._flusher.wake.set()
            await self._flusher.flushed.wait()
            outer.cancel_scope.cancel()

    async def _drain(self) -> None:
        """Until the deliveries in flight end, the grace ends, or :meth:`abandon`."""
        async with anyio.create_task_group() as tg:

            async def on_abandon() -> None:
                await self._deliveries.abandoned.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(on_abandon)
            grace_end = self.clock.monotonic_us() + self.grace_us
            idle = self._admission.idle_event()
            await holds.wait_until(self.clock, None, idle, mono_us=grace_end)
            tg.cancel_scope.cancel()

    def _written(self, outcome: base.Outcome, hold: Hold) -> None:
        """``outcome`` is written: its claim is no longer held; a retry wakes its queue."""
        rt = self._queues.get(outcome.queue)
        if rt is not None and rt.held.get(outcome.name) is hold:
            del rt.held[outcome.name]
        if isinstance(outcome, base.Retry):
            self.notify(outcome.queue, outcome.eta_us)

    async def _housekeeper(self) -> None:
        while not self._stop.is_set():
            try:
                await self.store.expire(now_us=self.clock.now_us())
            except errors.TransientError as exc:
                health.report("dropping expired tombstones and dead letters", exc)
            next_at = self.clock.monotonic_us() + HOUSEKEEPING_INTERVAL_US
            await holds.wait_until(self.clock, None, self._stop, mono_us=next_at)
