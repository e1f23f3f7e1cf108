"""One loop per push queue: claim due tasks when the queue may send, else sleep until it may.

Each pass: if the queue may dispatch now (not paused, a token in its bucket, a free
``max_concurrent_requests`` slot, room under the daemon's cap), claim that many due tasks and
start a delivery for each; otherwise sleep until the earliest of the next ETA, the next token
and a wake-up (a new task added, a delivery finished, a resume or a reload). It never polls.

Waiting for the next ETA re-reads the wall clock every second (a forward step makes overdue
tasks due within a second); a step back keeps what was due then due (:meth:`_stepped_back`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from pushd import clock, errors, logs
from pushd.scheduler import holds
from pushd.scheduler.holds import CLAIM_DEADLINES, LEASE_SLACK_US, STORE_RETRY_US
from pushd.scheduler.queue import AWAKE, CLAIM_BATCH, QueueState
from pushd.store import health

if TYPE_CHECKING:
    from pushd.scheduler.delivery import Deliveries, Parts


class QueueLoops:
    """The loops of a scheduler's push queues (each runs :meth:`run` for one queue)."""

    def __init__(self, parts: Parts, deliveries: Deliveries) -> None:
        self._p = parts
        self._deliveries = deliveries
        self._lease_us = CLAIM_DEADLINES * parts.default_deadline_us + LEASE_SLACK_US

    async def run(self, rt: QueueState) -> None:
        while not self._p.stop.is_set():
            rt.planned_us = AWAKE
            rt.wake.clear()  # before looking: a notification from here on is not lost
            rt.recover(self._p.clock.monotonic_us())
            if self._held_back(rt):
                rt.planned_us = None
                # A halted queue's back-off still recovers with time (it may be resumed).
                step_at = rt.adaptive.next_step_us() if rt.halted else None
                await holds.wait_until(self._p.clock, None, rt.wake, mono_us=step_at)
                continue
            now = self._p.clock.now_us()
            mono = self._p.clock.monotonic_us()
            if now < rt.wall_us:
                await self._stepped_back(rt, now)
            rt.wall_us = now
            more = await self._claim(rt, self._wanted(rt, mono), now, mono)
            if more is None:
                retry_at = self._p.clock.monotonic_us() + STORE_RETRY_US
                await holds.wait_until(self._p.clock, None, self._p.stop, mono_us=retry_at)
            elif more:
                await anyio.lowlevel.checkpoint()
            else:
                await self._rest(rt, now, mono)

    def _held_back(self, rt: QueueState) -> bool:
        """Whether ``rt`` may not claim now: halted, waiting in line for room under the
        daemon's cap (first come, first served), or a batch already waits for its slots."""
        if rt.halted:
            self._p.admission.leave_line(rt)
            return True
        if self._p.admission.must_wait(rt):
            return True
        own = rt.claim_room()
        return own is not None and own[0] < own[1]

    def _wanted(self, rt: QueueState, mono: int) -> int:
        """How many tasks to claim: tokens, room, slots, one batch at most."""
        own = rt.claim_room()
        return min(
            rt.limits.bucket.available(mono),
            CLAIM_BATCH,
            self._p.admission.room(),
            CLAIM_BATCH if own is None else own[0],
        )

    async def _claim(self, rt: QueueState, n: int, now: int, mono: int) -> bool | None:
        """Claim up to ``n`` due tasks and start their deliveries: True if all ``n`` came
        (look again at once), False if fewer (rest), None if the store refused."""
        if n <= 0:
            return False
        self._p.admission.claiming += n  # other queues' loops see this room taken meanwhile
        try:
            claimed = await self._p.store.claim_due(
                rt.name,
                now_us=now,
                limit=n,
                lease_us=self._lease_us,
                slack_us=LEASE_SLACK_US,
                deadlines=CLAIM_DEADLINES,
            )
        except errors.TransientError as exc:
            health.report(f"claiming tasks of queue {rt.name}", exc)
            return None
        finally:
            self._p.admission.claiming -= n
            self._p.admission.wake_line()  # whatever the claim did not take is room for others
        started = 0
        for c in claimed:
            if holds.kept(rt.held, c, now, mono):
                continue  # its own claim, handed back after a wall-clock step
            self._deliveries.start(rt, c, now, mono)
            started += 1
        # The tokens were there when the claim began; a pause or a smaller bucket since then
        # is honoured at send time (paused: the claim is released).
        rt.limits.take_claimed(mono, started)
        return len(claimed) == n

    async def _rest(self, rt: QueueState, now: int, mono: int) -> None:
        """Sleep until the queue's next token (monotonic) and its next ETA (wall clock) are
        both there, or a wake-up."""
        try:
            next_eta = await self._p.store.next_eta(rt.name)
        except errors.TransientError as exc:  # a damaged file: back off, never crash
            health.report(f"reading the next ETA of queue {rt.name}", exc)
            retry_at = self._p.clock.monotonic_us() + STORE_RETRY_US
            await holds.wait_until(self._p.clock, None, self._p.stop, mono_us=retry_at)
            return
        token_at = rt.limits.ready_at(mono)
        step_at = rt.adaptive.next_step_us()  # the back-off recovers while the queue sleeps
        if token_at is None or next_eta is None:
            rt.planned_us = None
            await holds.wait_until(self._p.clock, None, rt.wake, mono_us=step_at)
        elif token_at > mono:
            rt.planned_us = max(next_eta, now + token_at - mono)
            wake_at = token_at if step_at is None else min(token_at, step_at)
            await holds.wait_until(self._p.clock, None, rt.wake, mono_us=wake_at)
        elif next_eta > now:
            rt.planned_us = next_eta
            await holds.wait_until(self._p.clock, next_eta, rt.wake, mono_us=step_at)
        # else: something became possible while we looked

    async def _stepped_back(self, rt: QueueState, now: int) -> None:
        """The wall clock went back since this queue last looked: what was due then stays due
        (its ETAs move back by the step), apart from the claims this daemon holds."""
        try:
            moved = await self._p.store.step_back(
                rt.name, now_us=now, was_us=rt.wall_us, held=list(rt.held)
            )
        except errors.TransientError as exc:
            health.report(f"keeping the due tasks of queue {rt.name} due", exc)
            return
        logs.event(
            "clock_stepped_back",
            logging.WARNING,
            queue=rt.name,
            step_s=f"{(rt.wall_us - now) / clock.US_PER_SECOND:g}",
            tasks=moved,
        )
