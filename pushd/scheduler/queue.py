"""One push queue as its loop sees it: limits, slots, what it has claimed and holds.

A queue's ``max_concurrent_requests`` slots are handed out first come first served, and so are
the daemon's connections (:class:`Connections`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from fractions import Fraction
from typing import TYPE_CHECKING

from pushd import clock, logs, throttle

if TYPE_CHECKING:
    from pushd.queue_yaml import config
    from pushd.scheduler.holds import Hold

CLAIM_BATCH = 256  # most tasks one claim takes from the store
#: Most tasks a queue with ``max_concurrent_requests`` holds claimed beyond its slots (two
#: batches, as the daemon-wide cap allows: ``admission.PREFETCH_BATCHES``).
CLAIM_AHEAD = 2 * CLAIM_BATCH
EXECUTED_WINDOW_US = 60 * clock.US_PER_SECOND  # deliveries counted in executed_last_minute
AWAKE = -1  # a queue loop that is running (not waiting): every notification wakes it


@dataclasses.dataclass(eq=False)
class QueueState:
    cfg: config.QueueConfig
    limits: throttle.QueueThrottle
    adaptive: throttle.AdaptiveRate = dataclasses.field(default_factory=throttle.AdaptiveRate)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    planned_us: int | None = AWAKE  # when the loop will wake by itself; None: only when woken
    executed: deque[int] = dataclasses.field(default_factory=deque)
    operator_paused: bool = False
    removed: bool = False  # gone from queue.yaml: paused, never dropped
    elsewhere: bool = False  # another daemon sharing the store dispatches it (pushd.cluster)
    outstanding: int = 0  # claimed, not finished (in flight or waiting for a slot)
    unsent: set[str] = dataclasses.field(default_factory=set)  # claimed, not yet sent
    dropped: set[str] = dataclasses.field(default_factory=set)  # of those, deleted since
    slot_waiters: deque[asyncio.Future[None]] = dataclasses.field(default_factory=deque)
    held: dict[str, Hold] = dataclasses.field(default_factory=dict)  # claims, by task name
    wall_us: int = 0  # the wall clock when the loop last looked for due tasks
    #: Set (and replaced) when the rate, bucket or limits change: paced sends book again.
    repaced: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    pacing: int = 0  # sends waiting for their booked turn

    @property
    def name(self) -> str:
        return self.cfg.name

    def claim_room(self) -> tuple[int, int] | None:
        """With ``max_concurrent_requests``: (tasks this queue may still claim, the least worth
        a claim). As many tasks as there are slots (up to ``CLAIM_AHEAD``, at least one batch)
        wait beyond the slots, so freed slots never wait for a claim: against a slow receiver
        the answers come back in waves, and with one batch of 256 ahead of 500 slots, half of
        each wave's slots waited for a claim to commit."""
        limit = self.limits.gate.limit
        if limit is None:
            return None
        batch = min(CLAIM_BATCH, limit)
        ahead = max(batch, min(limit, CLAIM_AHEAD))
        return limit + ahead - self.outstanding, batch

    def claim_ended(self) -> None:
        """One of this queue's claims ended (sent and answered, given back, dropped): its loop
        is woken only if it waits for its own room and a claim's worth is free now. Waking it
        on every ended claim cost a turn of the loop per delivery that found nothing to do:
        the daemon's room wakes it through :class:`~pushd.scheduler.admission.Admission`, a
        retry through its outcome, anything else through its own wake-up."""
        own = self.claim_room()
        if own is not None and own[0] >= own[1]:
            self.wake.set()

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

    def recover(self, mono_us: int) -> None:
        """Take the back-off's recovery steps due by ``mono_us``, each at its own instant (the
        buckets earn at each rate for its own span, however late this looks), and log
        ``queue_recovered`` once, when the configured rate is back."""
        back = stepped = False
        while (at := self.adaptive.next_step_us()) is not None and at <= mono_us:
            back = self.adaptive.step()
            self.limits.reconfigure(self.enforced_rate(), self.cfg.bucket_size, at)
            stepped = True
        if not stepped:
            return
        self.repace(mono_us)  # sends booked at the slower pace book again at the faster one
        if back:
            rate = f"{float(self.enforced_rate()):g}"
            logs.event("queue_recovered", queue=self.name, enforced_rate=rate)

    def count_executed(self, mono_us: int) -> int:
        """Deliveries in the last minute (the window is trimmed, read or not)."""
        while self.executed and self.executed[0] <= mono_us - EXECUTED_WINDOW_US:
            self.executed.popleft()
        return len(self.executed)


class Connections:
    """The daemon's ``max_connections`` requests at once, first come first served.

    asyncio's Semaphore asks ``locked()`` on every acquire, which walks every waiter while
    any wait: with hundreds of deliveries queued for a connection (a slow receiver) that was
    a walk of hundreds per delivery. Here a freed connection is handed to the first waiter
    directly, O(1) either way (as :meth:`QueueState.acquire_slot` hands out slots)."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by release, which passed its connection on to us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a connection while being cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                waiter.set_result(None)
                return
        self.free += 1
