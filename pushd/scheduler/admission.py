"""The daemon-wide cap on claimed tasks: connections plus a few claim batches waiting for them.

Queues that find no room wait in line, first come first served, and are woken one at a time
once a whole batch of room is free (hysteresis: one claim of many tasks, not one claim per
finished delivery).
"""

from __future__ import annotations

import asyncio

from pushd.scheduler.queue import CLAIM_BATCH, QueueState

#: Claimed tasks the daemon may hold beyond its connections, waiting for one to free up, in
#: claim batches: the next tasks are in memory when a connection frees, so the sockets never
#: idle while a claim commits. A loop held back by this refills only once a whole batch is
#: free (hysteresis): one claim of many tasks, not one claim per finished delivery.
PREFETCH_BATCHES = 2


class Admission:
    """How many tasks this daemon may still claim, and the line of queues waiting for room."""

    def __init__(self, max_connections: int) -> None:
        self.refill_batch = min(CLAIM_BATCH, max_connections)
        self.max_outstanding = max_connections + PREFETCH_BATCHES * self.refill_batch
        self.in_flight = 0  # claimed and not finished (sending or about to)
        self.claiming = 0  # room reserved by claims still in the store
        self.idle = asyncio.Event()  # set while nothing is in flight
        self._starved: dict[QueueState, None] = {}  # loops waiting for room, first come first

    def room(self) -> int:
        return self.max_outstanding - self.in_flight - self.claiming

    def must_wait(self, rt: QueueState) -> bool:
        """Whether ``rt`` waits in line: too little room, or other queues came first. If so it
        is in the line (and woken when its turn comes); if not it has left it."""
        if self.room() < self.refill_batch or next(iter(self._starved), rt) is not rt:
            self._starved[rt] = None
            return True
        self.leave_line(rt)
        return False

    def wake_line(self) -> None:
        """Wake the first queue waiting in line for room, once a whole batch of room is free."""
        if self._starved and self.room() >= self.refill_batch:
            next(iter(self._starved)).wake.set()

    def leave_line(self, rt: QueueState) -> None:
        """``rt`` no longer waits for room (served, paused): the next in line may go."""
        if self._starved.pop(rt, 0) is None:
            self.wake_line()

    def started(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()
        self.wake_line()

    def idle_event(self) -> asyncio.Event:
        if self.in_flight == 0:
            self.idle.set()
        return self.idle
