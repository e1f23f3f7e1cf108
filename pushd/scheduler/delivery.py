"""One delivery: a slot, the queue's pace, a connection, the webhook, then its outcome.

A delivery takes its queue's token at claim time (:mod:`pushd.scheduler.loops`), then a
``max_concurrent_requests`` slot, its turn in the bucket's pace, one of the daemon's
connections, sends the webhook (:mod:`pushd.dispatch`) and hands the outcome
(:mod:`pushd.scheduler.outcomes`) to the flusher.

A request that never left because the machine ran out of something (open files, memory, local
ports: ``Attempt.local``) is not an attempt of the task: it is given back unchanged, due again
``LOCAL_FAILURE_RETRY_US`` later, and can never be dead-lettered for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Protocol

from pushd import clock, dispatch, logs, metrics, models
from pushd.scheduler import outcomes
from pushd.scheduler.holds import LEASE_SLACK_US, Hold, wait_until
from pushd.scheduler.queue import Connections
from pushd.store import base

if TYPE_CHECKING:
    from pushd.queue_yaml import config
    from pushd.scheduler.admission import Admission
    from pushd.scheduler.flusher import Flusher
    from pushd.scheduler.queue import QueueState


#: A task whose request never left (out of files, memory, ports) is due again this much later.
LOCAL_FAILURE_RETRY_US = 1 * clock.US_PER_SECOND


class Deliver(Protocol):
    """Sends one attempt of ``task`` to its queue's target (:func:`pushd.dispatch.deliver`
    bound to a session, or a test's fake)."""

    async def __call__(
        self, task: models.Task, queue: config.QueueConfig, *, deadline_s: float, now_us: int
    ) -> dispatch.Attempt: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Parts:
    """What the scheduler hands its deliveries and its queue loops alike: built once by
    :class:`~pushd.scheduler.core.Scheduler`, so the two cannot be wired apart."""

    store: base.Store
    clock: clock.Clock
    metrics: metrics.Metrics
    admission: Admission
    flusher: Flusher
    stop: asyncio.Event
    default_deadline_us: int


class Deliveries:
    """The deliveries in flight: started by the queue loops, each a plain asyncio task."""

    def __init__(self, parts: Parts, *, deliver: Deliver, max_connections: int) -> None:
        self._p = parts
        self.deliver = deliver
        self._connections = Connections(max_connections)
        self.abandoned = asyncio.Event()  # a forced stop: every claim is given back
        self._tasks: set[asyncio.Task[None]] = set()  # plain tasks: cheaper per delivery
        self._log_local_failure = logs.Limited(
            "delivery_local_failure", logging.WARNING, parts.clock.monotonic_us
        )

    def start(self, rt: QueueState, claimed: base.Claimed, now: int, mono: int) -> None:
        self._p.admission.started()
        rt.outstanding += 1
        rt.unsent.add(claimed.task.name)
        hold = rt.held[claimed.task.name] = Hold.of(claimed, now, mono)
        # Dropped from _tasks by the delivery itself as it ends (a done callback cost one more
        # turn of the event loop per delivery).
        self._tasks.add(
            asyncio.get_running_loop().create_task(self._deliver_or_log(rt, claimed, hold))
        )

    async def cancel_all(self) -> None:
        """Cut off every delivery; one cancelled while its request was out writes nothing."""
        running = list(self._tasks)
        self._tasks.clear()  # one cancelled before it ever ran never drops itself
        for delivery in running:
            delivery.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    def _release(self, claimed: base.Claimed, hold: Hold, eta_us: int | None = None) -> None:
        self._p.flusher.record(outcomes.given_back(claimed, eta_us), hold)

    async def _deliver_or_log(self, rt: QueueState, claimed: base.Claimed, hold: Hold) -> None:
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
            self._tasks.discard(asyncio.current_task())

    async def _deliver(self, rt: QueueState, claimed: base.Claimed, hold: Hold) -> None:
        task = claimed.task
        slot = sent = False
        try:
            # In this order: the slot, then the bucket's pace, so tasks that waited for slots
            # never leave together beyond the bucket; then whether the task may still go.
            await rt.acquire_slot()  # immediate without max_concurrent_requests; counts in_flight
            slot = True
            if not await self._paced(rt, hold):
                self._release(claimed, hold)  # its pace falls after its claim: given back
                return
            await self._connections.acquire()
            try:
                rt.unsent.discard(task.name)
                if task.name in rt.dropped:  # deleted or purged while it waited: gone
                    rt.dropped.discard(task.name)
                    return
                started = self._p.clock.now_us()
                started_mono = self._p.clock.monotonic_us()
                deadline_s = self._deadline_s(rt, claimed, hold, started_mono)
                if deadline_s is None:
                    return
                sent = True
                attempt = await self.deliver(task, rt.cfg, deadline_s=deadline_s, now_us=started)
            finally:
                self._connections.release()
        except asyncio.CancelledError:
            # Cut off at the end of the shutdown grace before it was sent, or by a forced stop.
            if not sent or self.abandoned.is_set():
                self._release(claimed, hold)
            raise
        finally:
            rt.outstanding -= 1
            rt.unsent.discard(task.name)
            self._p.admission.finished()  # wakes a queue waiting in line for the daemon's room
            rt.claim_ended()
            if slot:
                rt.release_slot()
        self._answered(rt, claimed, hold, attempt, started, started_mono)

    def _deadline_s(
        self, rt: QueueState, claimed: base.Claimed, hold: Hold, started_mono: int
    ) -> float | None:
        """The request's deadline, or None if the task may not be sent now (then its claim is
        given back, or left to expire)."""
        # Paused (or rate 0, removed, owned elsewhere) while it waited, or the daemon is
        # stopping: given back unsent, due again at once (here or at another daemon) instead
        # of when its claim ends.
        if rt.halted or self._p.stop.is_set():
            self._release(claimed, hold)
            return None
        # A task claimed ahead waited for a slot or a connection: its request must end
        # before its claim does (a claim lasts CLAIM_DEADLINES deadlines), or a second
        # claim could send it again meanwhile.
        budget_us = hold.ends_mono_us - started_mono - LEASE_SLACK_US
        if budget_us <= 0:
            return None  # its claim is over (an overloaded daemon): it runs again later
        deadline_us = claimed.task.dispatch_deadline_us or self._p.default_deadline_us
        return min(deadline_us, budget_us) / clock.US_PER_SECOND

    def _answered(
        self,
        rt: QueueState,
        claimed: base.Claimed,
        hold: Hold,
        attempt: dispatch.Attempt,
        started: int,
        started_mono: int,
    ) -> None:
        now = self._p.clock.now_us()
        if attempt.local:
            self._local_failure(rt, claimed, hold, attempt, now)
            return
        mono = self._p.clock.monotonic_us()
        rt.executed.append(mono)
        rt.count_executed(mono)  # bounded by one minute of deliveries, read or not
        self._p.metrics.record_attempt(
            rt.name,
            status=attempt.status,
            ok=attempt.ok,
            latency_s=(mono - started_mono) / clock.US_PER_SECOND,
            lateness_s=(started - claimed.task.eta_us) / clock.US_PER_SECOND,
        )
        self._adapt(rt, attempt, mono)
        outcome = outcomes.decide(claimed, attempt, rt.cfg.retry, started_us=started, now_us=now)
        self._report(outcome, attempt, started, now)
        self._p.flusher.record(outcome, hold)

    def _report(
        self, outcome: base.Outcome, attempt: dispatch.Attempt, started: int, now: int
    ) -> None:
        """Log and count ``outcome`` (one line per delivered task only at DEBUG: too many at
        thousands per second)."""
        queue, task = outcome.queue, outcome.name
        if isinstance(outcome, base.Done):
            if logs.enabled(logging.DEBUG):  # else nothing is built: thousands per second
                logs.event(
                    "task_delivered",
                    logging.DEBUG,
                    queue=queue,
                    task=task,
                    status=attempt.status,
                    ms=(now - started) // 1000,
                )
        elif isinstance(outcome, base.DeadLetter):
            logs.event(
                "task_dead_lettered", logging.WARNING, queue=queue, task=task, reason=outcome.reason
            )
            self._p.metrics.record_dead(queue)
        elif isinstance(outcome, base.Retry):
            self._p.metrics.record_retry(queue)
            delay_us = outcome.eta_us - now
            logs.event(
                "task_retry",
                queue=queue,
                task=task,
                error=attempt.error,
                retry=outcome.retry_count,
                delay_s=f"{delay_us / clock.US_PER_SECOND:g}",
            )

    async def _paced(self, rt: QueueState, hold: Hold) -> bool:
        """Wait for this send's turn in the queue's pace (booked again whenever the rate or
        bucket changes, and cut short by a stop). False if the turn falls after the claim
        ends: the claim is better given back than held, a slot taken, for nothing."""
        while True:
            mono = self._p.clock.monotonic_us()
            send_at = rt.limits.send_at(mono)
            if send_at <= mono or self._p.stop.is_set():
                return True
            if send_at > hold.ends_mono_us - LEASE_SLACK_US:
                rt.limits.wire.refund(mono)
                return False
            repaced = rt.repaced
            rt.pacing += 1
            try:
                await wait_until(self._p.clock, None, repaced, mono_us=send_at)
            finally:
                rt.pacing -= 1
            if not repaced.is_set():
                return True  # its turn came

    def _local_failure(
        self,
        rt: QueueState,
        claimed: base.Claimed,
        hold: Hold,
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

    def _adapt(self, rt: QueueState, attempt: dispatch.Attempt, now_us: int) -> None:
        """A 503 or 429 slows the queue (adaptive back-off); time alone brings it back."""
        rt.recover(now_us)  # the steps due before this answer, first
        if attempt.throttled and rt.adaptive.on_throttled(now_us):
            rt.limits.reconfigure(rt.enforced_rate(), rt.cfg.bucket_size, now_us)
            logs.event(
                "queue_throttled",
                logging.WARNING,
                queue=rt.name,
                enforced_rate=f"{float(rt.enforced_rate()):g}",
            )
