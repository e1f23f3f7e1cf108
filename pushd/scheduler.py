"""The push scheduler: one loop per push queue, deliveries in flight, outcomes applied in bulk.

Each queue's loop repeats: if the queue may dispatch now (not paused, a token in its bucket, a
free ``max_concurrent_requests`` slot), claim that many due tasks from the store and start a
delivery for each; otherwise sleep until the earliest of the next ETA, the next token and a
wake-up (a new task added, a delivery finished, a resume or a reload). It never polls: an idle
daemon with a million future tasks sleeps until the first of them is due.

A delivery takes its queue's token and slot at claim time, then one of the daemon's global
connection slots, sends the webhook (:mod:`pushd.dispatch`), and turns the answer into a store
outcome with the App Engine retry policy (:mod:`pushd.retry`). Outcomes are collected and
written by one flusher, so under load many share a commit.

A request that never left because the machine ran out of something (open files, memory, local
ports: ``Attempt.local``) is not an attempt of the task: it is given back unchanged, due again
``LOCAL_FAILURE_RETRY_US`` later, and can never be dead-lettered for it.

Shutdown: stop claiming, give in-flight deliveries ``grace_us`` to finish, cancel the rest.
Claimed tasks not yet sent are given back (due again at once, no attempt counted); a delivery
cancelled while its request was out writes nothing: its claim expires and the task runs again.
A forced stop (:meth:`Scheduler.abandon`, a second SIGTERM) ends the grace at once and gives
back every claim, sent or not.

Time: ETAs are wall-clock (the store's, shared with clients), so waiting for the next ETA
re-reads the wall clock every second (a forward step makes overdue tasks due within a second).
Everything else is a duration on the monotonic clock: the buckets, pacing, the grace, and how
long this daemon's claims last. The store writes a claim as a wall-clock lease (so a dead
daemon's tasks come back), and a forward step can end it there while its request is still
out: the next claim then hands the task back to this daemon, which recognises its own claim
(the task's ETA is the lease it holds), keeps the new lease and sends nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from fractions import Fraction

import anyio
import anyio.abc

from pushd import clock, config, dispatch, errors, logs, metrics, models, retry, throttle
from pushd.store import base, health

CLAIM_BATCH = 256  # most tasks one claim takes from the store
#: Claimed tasks the daemon may hold beyond its connections, waiting for one to free up, in
#: claim batches: the next tasks are in memory when a connection frees, so the sockets never
#: idle while a claim commits. A loop held back by this refills only once a whole batch is
#: free (hysteresis): one claim of many tasks, not one claim per finished delivery.
PREFETCH_BATCHES = 2
LEASE_SLACK_US = 5 * clock.US_PER_SECOND  # a claim lasts CLAIM_DEADLINES deadlines plus this
#: A claim lasts two dispatch deadlines (plus slack): one for waiting for a free slot or
#: connection (tasks are claimed ahead of them), one for the request itself. It is also how
#: soon the tasks a crashed daemon had claimed run again.
CLAIM_DEADLINES = 2
HOUSEKEEPING_INTERVAL_US = 600 * clock.US_PER_SECOND  # how often expired tombstones are dropped
#: After a write the store refused (disk full, read-only disk), try again this much later.
STORE_RETRY_US = 1 * clock.US_PER_SECOND
EXECUTED_WINDOW_US = 60 * clock.US_PER_SECOND
RECONFIGURE_CHUNK = 50  # queues a reload applies between two turns of the event loop
#: A task whose request never left (out of files, memory, ports) is due again this much later.
LOCAL_FAILURE_RETRY_US = 1 * clock.US_PER_SECOND
_AWAKE = -1  # a queue loop that is running (not waiting): every notification wakes it


@dataclasses.dataclass(eq=False)
class _Hold:
    """A claim this daemon holds: its lease in the store (wall clock) and when it ends for this
    daemon (monotonic). The lease changes if the store hands the task back (see the module
    docstring); outcomes are written with the current one."""

    lease_eta_us: int
    ends_mono_us: int
    recorded: bool = False  # an outcome was queued for it: the flusher lets it go


#: ``deliver(task, queue_config, deadline_s=..., now_us=...)`` sends one attempt.
Deliver = Callable[..., Awaitable[dispatch.Attempt]]


@dataclasses.dataclass(eq=False)
class _Queue:
    cfg: config.QueueConfig
    limits: throttle.QueueThrottle
    adaptive: throttle.AdaptiveRate = dataclasses.field(default_factory=throttle.AdaptiveRate)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    planned_us: int | None = _AWAKE  # when the loop will wake by itself; None: only when woken
    executed: deque[int] = dataclasses.field(default_factory=deque)
    operator_paused: bool = False
    removed: bool = False  # gone from queue.yaml: paused, never dropped
    elsewhere: bool = False  # another daemon sharing the store dispatches it (pushd.cluster)
    outstanding: int = 0  # claimed, not finished (in flight or waiting for a slot)
    unsent: set[str] = dataclasses.field(default_factory=set)  # claimed, not yet sent
    dropped: set[str] = dataclasses.field(default_factory=set)  # of those, deleted since
    slot_waiters: deque[asyncio.Future[None]] = dataclasses.field(default_factory=deque)
    held: dict[str, _Hold] = dataclasses.field(default_factory=dict)  # claims, by task name
    wall_us: int = 0  # the wall clock when the loop last looked for due tasks
    #: Set (and replaced) when the rate, bucket or limits change: paced sends book again.
    repaced: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    pacing: int = 0  # sends waiting for their booked turn

    @property
    def name(self) -> str:
        return self.cfg.name

    def claim_room(self) -> tuple[int, int] | None:
        """With ``max_concurrent_requests``: (tasks this queue may still claim, the least worth
        a claim). One batch waits beyond the slots, so a freed slot never waits for a claim."""
        limit = self.limits.gate.limit
        if limit is None:
            return None
        batch = min(CLAIM_BATCH, limit)
        return limit + batch - self.outstanding, batch

    async def acquire_slot(self) -> None:
        """A ``max_concurrent_requests`` slot, first come first served."""
        gate = self.limits.gate
        if not self.slot_waiters and gate.can_start():
            gate.start()
            return
        waiter = asyncio.get_running_loop().create_future()
        self.slot_waiters.append(waiter)
        try:
            await waiter  # resolved by release_slot, which started the slot for us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release_slot()  # handed a slot while being cancelled: pass it on
            raise

    def release_slot(self) -> None:
        self.limits.gate.finish()
        self.hand_slots()

    def hand_slots(self) -> None:
        """Give free slots to waiters in order (after a finish, or a larger limit)."""
        gate = self.limits.gate
        while self.slot_waiters and gate.can_start():
            waiter = self.slot_waiters.popleft()
            if not waiter.done():
                gate.start()
                waiter.set_result(None)

    @property
    def paused(self) -> bool:
        return self.operator_paused or self.removed or self.cfg.rate == 0

    @property
    def halted(self) -> bool:
        """Whether this daemon may not send its tasks now (paused, or dispatched elsewhere)."""
        return self.paused or self.elsewhere

    def enforced_rate(self) -> Fraction:
        return self.adaptive.enforced(self.cfg.rate)

    def repace(self, mono_us: int) -> None:
        """The rate, bucket or limits changed: sends waiting for their pace book again under
        the new ones (a cut and restore leaves nothing booked hours ahead)."""
        self.limits.wire.refund(mono_us, self.pacing)
        self.repaced.set()
        self.repaced = asyncio.Event()


class Scheduler:
    """Delivers the push queues of one daemon (see the module docstring)."""

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
        self.deliver = deliver
        self.default_deadline_us = default_deadline_us
        self.grace_us = grace_us
        self._limiter = asyncio.Semaphore(max_connections)
        self._refill_batch = min(CLAIM_BATCH, max_connections)
        self._max_outstanding = max_connections + PREFETCH_BATCHES * self._refill_batch
        self._starved: dict[_Queue, None] = {}  # loops waiting for room, first come first
        self._claiming = 0  # room reserved by claims still in the store
        self._queues: dict[str, _Queue] = {}
        self._outcomes: list[tuple[base.Outcome, _Hold]] = []
        self._flush_wake = asyncio.Event()
        self._flushed = asyncio.Event()
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._abandoned = asyncio.Event()  # a forced stop (see abandon)
        self._in_flight = 0
        self._loops: anyio.abc.TaskGroup | None = None
        self._deliveries: set[asyncio.Task[None]] = set()  # plain tasks: cheaper per delivery
        self._delivering = False  # between start and the end of the shutdown grace
        self._log_local_failure = logs.Limited(
            "delivery_local_failure", logging.WARNING, clock.monotonic_us
        )
        # With a store shared by several daemons: the push queues this one dispatches (None:
        # all of them), and what the other daemons report of theirs.
        self._owned = owned
        self._others: Mapping[str, models.LiveStats] = {}
        now = clock.monotonic_us()
        for cfg in queues.queues.values():
            if cfg.mode is models.QueueMode.PUSH:
                self._queues[cfg.name] = self._new_queue(cfg, now, cfg.name in paused)

    def _new_queue(self, cfg: config.QueueConfig, mono_us: int, paused: bool) -> _Queue:
        rt = _Queue(
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
        if planned is None or planned == _AWAKE or eta_us < planned:
            rt.wake.set()

    def forget(self, queue: str, names: Iterable[str] | None = None) -> None:
        """Tasks of ``queue`` were deleted (``names``) or all purged (None): those claimed and
        still waiting for a slot or a connection are not sent."""
        rt = self._queues.get(queue)
        if rt is None:
            return
        rt.dropped |= set(rt.unsent) if names is None else rt.unsent.intersection(names)

    def _store_trouble(self, what: str, exc: errors.TransientError) -> None:
        """A write the store refused (disk full, read-only): logged; the caller tries again."""
        health.report(what, exc)

    def _wake_line(self) -> None:
        """Wake the first queue waiting in line for room, once a whole batch of room is free."""
        room = self._max_outstanding - self._in_flight - self._claiming
        if self._starved and room >= self._refill_batch:
            next(iter(self._starved)).wake.set()

    def _leave_line(self, rt: _Queue) -> None:
        """``rt`` no longer waits for room (served, paused): the next in line may go."""
        if self._starved.pop(rt, 0) is None:
            self._wake_line()

    def _release(self, claimed: base.Claimed, hold: _Hold, eta_us: int | None = None) -> None:
        """Give back a claim unsent (its queue was paused): due again at its own ETA (or at
        ``eta_us``), no attempt counted."""
        task = claimed.task
        outcome = base.Retry(
            queue=task.queue,
            name=task.name,
            lease_eta_us=claimed.lease_eta_us,
            eta_us=task.eta_us if eta_us is None else eta_us,
            retry_count=task.retry_count,
            execution_count=task.execution_count,
            first_try_us=task.first_try_us,
            last_status=task.last_status,
            last_attempt=task.last_attempt,
        )
        self._record(outcome, hold)

    def _record(self, outcome: base.Outcome, hold: _Hold) -> None:
        """Queue ``outcome`` for the flusher, which writes it with the hold's current lease."""
        hold.recorded = True
        self._outcomes.append((outcome, hold))
        self._flush_wake.set()

    def _let_go(self, outcome: base.Outcome, hold: _Hold) -> None:
        """``outcome`` is written: its claim is no longer held."""
        rt = self._queues.get(outcome.queue)
        if rt is not None and rt.held.get(outcome.name) is hold:
            del rt.held[outcome.name]

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
        return self._in_flight

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
        _trim(rt.executed, now)
        self._recover(rt, now)  # an idle queue recovers too: its loop may be asleep
        return models.LiveStats(
            in_flight=rt.limits.gate.in_flight,
            executed_last_minute=len(rt.executed),
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
                    self._loops.start_soon(self._queue_loop, rt, name=f"pushd-queue-{name}")
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
        self._abandoned.set()
        self.stop()

    # ------------------------------------------------------------------ main loop
    async def run(self) -> None:
        for rt in self._queues.values():
            rt.limits.paused = rt.halted
        async with anyio.create_task_group() as outer:
            outer.start_soon(self._flusher, name="pushd-flusher")
            outer.start_soon(self._housekeeper, name="pushd-housekeeper")
            self._delivering = True
            try:
                async with anyio.create_task_group() as loops:
                    self._loops = loops
                    for rt in list(self._queues.values()):
                        loops.start_soon(self._queue_loop, rt, name=f"pushd-queue-{rt.name}")
                self._loops = None
                await self._drain()
            finally:
                for running in self._deliveries:
                    running.cancel()  # a cancelled delivery writes nothing: its claim expires
                if self._deliveries:
                    await asyncio.gather(*self._deliveries, return_exceptions=True)
                self._delivering = False  # only now: every outcome is queued for the flusher
            self._flush_wake.set()
            await self._flushed.wait()
            outer.cancel_scope.cancel()

    async def _drain(self) -> None:
        """Until the deliveries in flight end, the grace ends, or :meth:`abandon`."""
        async with anyio.create_task_group() as tg:

            async def on_abandon() -> None:
                await self._abandoned.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(on_abandon)
            grace_end = self.clock.monotonic_us() + self.grace_us
            await self._wait_until(None, self._idle_event(), mono_us=grace_end)
            tg.cancel_scope.cancel()

    def _idle_event(self) -> asyncio.Event:
        if self._in_flight == 0:
            self._idle.set()
        return self._idle

    async def _wait_until(
        self, deadline_us: int | None, event: asyncio.Event, *, mono_us: int | None = None
    ) -> None:
        """Return when ``event`` is set, the wall clock reaches ``deadline_us`` or the
        monotonic clock reaches ``mono_us`` (either None: no such deadline)."""
        if event.is_set():
            return
        if deadline_us is None and mono_us is None:
            await event.wait()
            return
        async with anyio.create_task_group() as tg:

            async def wall_sleeper(at_us: int) -> None:
                await self.clock.sleep_until(at_us)
                tg.cancel_scope.cancel()

            async def mono_sleeper(at_us: int) -> None:
                await self.clock.sleep_until_monotonic(at_us)
                tg.cancel_scope.cancel()

            async def waiter() -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            if deadline_us is not None:
                tg.start_soon(wall_sleeper, deadline_us)
            if mono_us is not None:
                tg.start_soon(mono_sleeper, mono_us)
            tg.start_soon(waiter)

    async def _queue_loop(self, rt: _Queue) -> None:
        while not self._stop.is_set():
            rt.planned_us = _AWAKE
            rt.wake.clear()  # before looking: a notification from here on is not lost
            self._recover(rt, self.clock.monotonic_us())
            if rt.halted:
                self._leave_line(rt)
                rt.planned_us = None
                await self._wait_until(None, rt.wake, mono_us=rt.adaptive.next_step_us())
                continue
            # Enough claimed and waiting for connections, or other queues came first: wait in
            # line (first come, first served) until a whole batch of room is free.
            room = self._max_outstanding - self._in_flight - self._claiming
            if room < self._refill_batch or next(iter(self._starved), rt) is not rt:
                self._starved[rt] = None
                rt.planned_us = None
                await rt.wake.wait()
                continue
            self._leave_line(rt)
            own = rt.claim_room()
            if own is not None and own[0] < own[1]:  # a batch waits for this queue's slots
                rt.planned_us = None
                await rt.wake.wait()
                continue
            now = self.clock.now_us()
            mono = self.clock.monotonic_us()
            if now < rt.wall_us:
                await self._stepped_back(rt, now)
            rt.wall_us = now
            n = min(
                rt.limits.bucket.available(mono),
                CLAIM_BATCH,
                room,
                CLAIM_BATCH if own is None else own[0],
            )
            if n > 0:
                self._claiming += n  # other queues' loops see this room taken meanwhile
                try:
                    claimed = await self.store.claim_due(
                        rt.name,
                        now_us=now,
                        limit=n,
                        lease_us=CLAIM_DEADLINES * self.default_deadline_us + LEASE_SLACK_US,
                        slack_us=LEASE_SLACK_US,
                        deadlines=CLAIM_DEADLINES,
                    )
                except errors.TransientError as exc:
                    self._store_trouble(f"claiming tasks of queue {rt.name}", exc)
                    retry_at = self.clock.monotonic_us() + STORE_RETRY_US
                    await self._wait_until(None, self._stop, mono_us=retry_at)
                    continue
                finally:
                    self._claiming -= n
                    self._wake_line()  # whatever the claim did not take is room for others
                for c in claimed:
                    if self._kept(rt, c, now, mono):
                        continue  # its own claim, handed back after a wall-clock step
                    # The tokens were there when the claim began; a pause or a smaller bucket
                    # since then is honoured at send time (paused: the claim is released).
                    rt.limits.try_take(mono)
                    self._start_delivery(rt, c, now, mono)
                if len(claimed) == n:
                    await anyio.lowlevel.checkpoint()
                    continue
            await self._rest(rt, now, mono)

    async def _rest(self, rt: _Queue, now: int, mono: int) -> None:
        """Sleep until the queue's next token (monotonic) and its next ETA (wall clock) are
        both there, or a wake-up."""
        try:
            next_eta = await self.store.next_eta(rt.name)
        except errors.TransientError as exc:  # a damaged file: back off, never crash
            self._store_trouble(f"reading the next ETA of queue {rt.name}", exc)
            retry_at = self.clock.monotonic_us() + STORE_RETRY_US
            await self._wait_until(None, self._stop, mono_us=retry_at)
            return
        token_at = rt.limits.ready_at(mono)
        step_at = rt.adaptive.next_step_us()  # the back-off recovers while the queue sleeps
        if token_at is None or next_eta is None:
            rt.planned_us = None
            await self._wait_until(None, rt.wake, mono_us=step_at)
        elif token_at > mono:
            rt.planned_us = max(next_eta, now + token_at - mono)
            wake_at = token_at if step_at is None else min(token_at, step_at)
            await self._wait_until(None, rt.wake, mono_us=wake_at)
        elif next_eta > now:
            rt.planned_us = next_eta
            await self._wait_until(next_eta, rt.wake, mono_us=step_at)
        # else: something became possible while we looked

    async def _stepped_back(self, rt: _Queue, now: int) -> None:
        """The wall clock went back since this queue last looked: what was due then stays due
        (its ETAs move back by the step), apart from the claims this daemon holds."""
        try:
            moved = await self.store.step_back(
                rt.name, now_us=now, was_us=rt.wall_us, held=list(rt.held)
            )
        except errors.TransientError as exc:
            self._store_trouble(f"keeping the due tasks of queue {rt.name} due", exc)
            return
        logs.event(
            "clock_stepped_back",
            logging.WARNING,
            queue=rt.name,
            step_s=f"{(rt.wall_us - now) / clock.US_PER_SECOND:g}",
            tasks=moved,
        )

    def _kept(self, rt: _Queue, claimed: base.Claimed, now: int, mono: int) -> bool:
        """Whether ``claimed`` is a claim this daemon already holds, handed back because the
        wall clock stepped past its lease while it was out: the new lease is kept, nothing is
        sent again. (A held name with another ETA is a new claim: its outcome was written.)"""
        hold = rt.held.get(claimed.task.name)
        if hold is None or hold.lease_eta_us != claimed.task.eta_us:
            return False
        hold.lease_eta_us = claimed.lease_eta_us
        hold.ends_mono_us = mono + claimed.lease_eta_us - now
        logs.event("claim_kept", logging.WARNING, queue=rt.name, task=claimed.task.name)
        return True

    def _start_delivery(self, rt: _Queue, claimed: base.Claimed, now: int, mono: int) -> None:
        self._in_flight += 1
        rt.outstanding += 1
        rt.unsent.add(claimed.task.name)
        hold = _Hold(claimed.lease_eta_us, mono + claimed.lease_eta_us - now)
        rt.held[claimed.task.name] = hold
        self._idle.clear()
        delivery = asyncio.get_running_loop().create_task(self._deliver_or_log(rt, claimed, hold))
        self._deliveries.add(delivery)
        delivery.add_done_callback(self._deliveries.discard)

    async def _deliver_or_log(self, rt: _Queue, claimed: base.Claimed, hold: _Hold) -> None:
        """One delivery; a bug in it fails that delivery alone, never the daemon.

        Nothing is written for it: its claim expires and the task runs again (at least once).
        """
        try:
            await self._deliver(rt, claimed, hold)
        except Exception:
            logs.event(
                "delivery_failed",
                logging.ERROR,
                exc_info=True,
                queue=rt.name,
                task=claimed.task.name,
                retry_at=hold.lease_eta_us,
            )
        finally:
            if not hold.recorded and rt.held.get(claimed.task.name) is hold:
                del rt.held[claimed.task.name]  # nothing to write: no longer held

    async def _deliver(self, rt: _Queue, claimed: base.Claimed, hold: _Hold) -> None:
        task = claimed.task
        deadline_us = task.dispatch_deadline_us or self.default_deadline_us
        slot = sent = False
        try:
            # In this order: the slot, then the bucket's pace, so tasks that waited for slots
            # never leave together beyond the bucket; then whether the task may still go.
            await rt.acquire_slot()  # immediate without max_concurrent_requests; counts in_flight
            slot = True
            if not await self._paced(rt, hold):
                self._release(claimed, hold)  # its pace falls after its claim: given back
                return
            async with self._limiter:
                rt.unsent.discard(task.name)
                if task.name in rt.dropped:  # deleted or purged while it waited: gone
                    rt.dropped.discard(task.name)
                    return
                started = self.clock.now_us()
                started_mono = self.clock.monotonic_us()
                # Paused (or rate 0, removed, owned elsewhere) while it waited, or the daemon
                # is stopping: given back unsent, due again at once (here or at another daemon)
                # instead of when its claim ends.
                if rt.halted or self._stop.is_set():
                    self._release(claimed, hold)
                    return
                # A task claimed ahead waited for a slot or a connection: its request must end
                # before its claim does (a claim lasts CLAIM_DEADLINES deadlines), or a second
                # claim could send it again meanwhile.
                budget_us = hold.ends_mono_us - started_mono - LEASE_SLACK_US
                if budget_us <= 0:
                    return  # its claim is over (an overloaded daemon): it runs again later
                sent = True
                attempt = await self.deliver(
                    task,
                    rt.cfg,
                    deadline_s=min(deadline_us, budget_us) / clock.US_PER_SECOND,
                    now_us=started,
                )
        except asyncio.CancelledError:
            # Cut off at the end of the shutdown grace before it was sent, or by a forced stop.
            if not sent or self._abandoned.is_set():
                self._release(claimed, hold)
            raise
        finally:
            rt.outstanding -= 1
            rt.unsent.discard(task.name)
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
            self._wake_line()
            rt.wake.set()
            if slot:
                rt.release_slot()
        now = self.clock.now_us()
        if attempt.local:
            self._local_failure(rt, claimed, hold, attempt, now)
            return
        mono = self.clock.monotonic_us()
        rt.executed.append(mono)
        _trim(rt.executed, mono)  # bounded by one minute of deliveries, read or not
        self.metrics.record_attempt(
            rt.name,
            status=attempt.status,
            ok=attempt.ok,
            latency_s=(mono - started_mono) / clock.US_PER_SECOND,
            lateness_s=(started - task.eta_us) / clock.US_PER_SECOND,
        )
        self._adapt(rt, attempt, mono)
        self._record(self._decide(rt, claimed, attempt, started, now), hold)

    async def _paced(self, rt: _Queue, hold: _Hold) -> bool:
        """Wait for this send's turn in the queue's pace (booked again whenever the rate or
        bucket changes, and cut short by a stop). False if the turn falls after the claim
        ends: the claim is better given back than held, a slot taken, for nothing."""
        while True:
            mono = self.clock.monotonic_us()
            send_at = rt.limits.send_at(mono)
            if send_at <= mono or self._stop.is_set():
                return True
            if send_at > hold.ends_mono_us - LEASE_SLACK_US:
                rt.limits.wire.refund(mono)
                return False
            repaced = rt.repaced
            rt.pacing += 1
            try:
                await self._wait_until(None, repaced, mono_us=send_at)
            finally:
                rt.pacing -= 1
            if not repaced.is_set():
                return True  # its turn came

    def _local_failure(
        self,
        rt: _Queue,
        claimed: base.Claimed,
        hold: _Hold,
        attempt: dispatch.Attempt,
        now_us: int,
    ) -> None:
        """The request never left: this machine ran out of files, memory or ports. Charging
        it to the task once dead-lettered every due task of a daemon out of open files; it is
        given back with its counts unchanged, due again shortly."""
        self._log_local_failure(
            queue=rt.name,
            task=claimed.task.name,
            error=attempt.error,
            retry_in_s=f"{LOCAL_FAILURE_RETRY_US / clock.US_PER_SECOND:g}",
        )
        self._release(claimed, hold, now_us + LOCAL_FAILURE_RETRY_US)

    def _adapt(self, rt: _Queue, attempt: dispatch.Attempt, now_us: int) -> None:
        """A 503 or 429 slows the queue (adaptive back-off); time alone brings it back."""
        self._recover(rt, now_us)  # the steps due before this answer, first
        if attempt.throttled and rt.adaptive.on_throttled(now_us):
            rt.limits.reconfigure(rt.enforced_rate(), rt.cfg.bucket_size, now_us)
            logs.event(
                "queue_throttled",
                logging.WARNING,
                queue=rt.name,
                enforced_rate=f"{float(rt.enforced_rate()):g}",
            )

    def _recover(self, rt: _Queue, mono_us: int) -> None:
        """Take the back-off's recovery steps due by ``mono_us``, each at its own instant (the
        buckets earn at each rate for its own span, however late this looks), and log
        ``queue_recovered`` once, when the configured rate is back."""
        back = stepped = False
        while (at := rt.adaptive.next_step_us()) is not None and at <= mono_us:
            back = rt.adaptive.step()
            rt.limits.reconfigure(rt.enforced_rate(), rt.cfg.bucket_size, at)
            stepped = True
        if not stepped:
            return
        rt.repace(mono_us)  # sends booked at the slower pace book again at the faster one
        if back:
            logs.event(
                "queue_recovered", queue=rt.name, enforced_rate=f"{float(rt.enforced_rate()):g}"
            )

    def _decide(
        self,
        rt: _Queue,
        claimed: base.Claimed,
        attempt: dispatch.Attempt,
        started_us: int,
        now_us: int,
    ) -> base.Outcome:
        task = claimed.task
        if attempt.ok:
            logs.event(
                "task_delivered",
                logging.DEBUG,  # one line per task is too many at thousands per second
                queue=rt.name,
                task=task.name,
                status=attempt.status,
                ms=(now_us - started_us) // 1000,
            )
            return base.Done(queue=rt.name, name=task.name, lease_eta_us=claimed.lease_eta_us)
        first_try = task.first_try_us if task.first_try_us is not None else started_us
        retry_count = task.retry_count + 1
        # SPEC Q7: an attempt counts as an execution only if it got an HTTP response.
        execution_count = task.execution_count + (attempt.status is not None)
        policy = retry.effective_policy(rt.cfg.retry, task.retry_options)
        decision = retry.next_delay(
            policy, retry_number=retry_count, first_try_us=first_try, now_us=now_us
        )
        if isinstance(decision, retry.GiveUp):
            reason = f"{decision.reason}; last attempt: {attempt.error}"
            logs.event(
                "task_dead_lettered", logging.WARNING, queue=rt.name, task=task.name, reason=reason
            )
            self.metrics.record_dead(rt.name)
            return base.DeadLetter(
                queue=rt.name,
                name=task.name,
                lease_eta_us=claimed.lease_eta_us,
                retry_count=retry_count,
                execution_count=execution_count,
                first_try_us=first_try,
                last_status=attempt.status,
                reason=reason,
                last_attempt=attempt.last(started_us),
            )
        delay = max(decision, attempt.retry_after_us or 0)
        self.metrics.record_retry(rt.name)
        logs.event(
            "task_retry",
            queue=rt.name,
            task=task.name,
            error=attempt.error,
            retry=retry_count,
            delay_s=f"{delay / clock.US_PER_SECOND:g}",
        )
        return base.Retry(
            queue=rt.name,
            name=task.name,
            lease_eta_us=claimed.lease_eta_us,
            eta_us=now_us + delay,
            retry_count=retry_count,
            execution_count=execution_count,
            first_try_us=first_try,
            last_status=attempt.status,
            last_attempt=attempt.last(started_us),
        )

    async def _flusher(self) -> None:
        while True:
            await self._flush_wake.wait()
            self._flush_wake.clear()
            while self._outcomes:
                pending, self._outcomes = self._outcomes, []
                batch = [_with_lease(outcome, hold.lease_eta_us) for outcome, hold in pending]
                try:
                    await self.store.finish(batch, now_us=self.clock.now_us())
                except errors.TransientError as exc:
                    if self._stop.is_set() and not self._delivering:
                        # Stopping with the store down: the claims of these tasks expire and
                        # they run again (at least once), as after a crash.
                        self._store_trouble(f"recording {len(batch)} outcomes (given up)", exc)
                        break
                    self._store_trouble(f"recording {len(batch)} outcomes", exc)
                    self._outcomes[:0] = pending  # kept, in order, for the next try
                    await self.clock.sleep(STORE_RETRY_US / clock.US_PER_SECOND)
                    continue
                for (outcome, hold), written in zip(pending, batch, strict=True):
                    if hold.lease_eta_us != written.lease_eta_us:
                        # Handed back to this daemon while being written: the store ignored
                        # the old lease; written again with the new one.
                        self._outcomes.append((outcome, hold))
                        continue
                    self._let_go(outcome, hold)
                    if isinstance(outcome, base.Retry):
                        self.notify(outcome.queue, outcome.eta_us)
            if not self._delivering and self._stop.is_set():
                self._flushed.set()
                return

    async def _housekeeper(self) -> None:
        while not self._stop.is_set():
            try:
                await self.store.expire(now_us=self.clock.now_us())
            except errors.TransientError as exc:
                self._store_trouble("dropping expired tombstones and dead letters", exc)
            next_at = self.clock.monotonic_us() + HOUSEKEEPING_INTERVAL_US
            await self._wait_until(None, self._stop, mono_us=next_at)


def _with_lease(outcome: base.Outcome, lease_eta_us: int) -> base.Outcome:
    if outcome.lease_eta_us == lease_eta_us:
        return outcome
    return dataclasses.replace(outcome, lease_eta_us=lease_eta_us)


def _trim(executed: deque[int], now_us: int) -> None:
    while executed and executed[0] <= now_us - EXECUTED_WINDOW_US:
        executed.popleft()
