"""Several daemons, one PostgreSQL: who dispatches which push queue, and hearing each other.

**One owner per queue.** Each push queue is dispatched by one daemon at a time, which holds it
by a lease in the database (``OWNER_TTL_US``, renewed every ``RENEW_US``). Its token bucket and
``max_concurrent_requests`` slots are then the queue's, exactly as with one daemon: rate limits
hold across all daemons with the single-daemon pacer's precision and cost no database round
trip per token. The queues are spread evenly: each daemon holds its share (``queues // live
daemons``, one more for some) and gives back the excess when another daemon joins. A daemon
that stops gives its queues back at once; one that dies stops renewing, and another takes its
queues within ``OWNER_TTL_US + RENEW_US``. The tasks it had claimed become due when their claims
expire (two dispatch deadlines plus a few seconds), like after a crash of a single daemon.

What the cost is: one queue's deliveries go through one daemon, so a single hot queue does not
scale out; many queues do. (Sharing tokens through the database instead would put a hot row in
every claim and take tokens at claim time rather than at send time; see the note of issue 8.)

**Changes** made through any daemon (tasks added or made due, pause and resume, deletes and
purges, queues created, changed or deleted through the Cloud Tasks API) arrive through
:meth:`pushd.store.base.Shared.watch` and are applied to this daemon's scheduler: the owner of
a queue wakes when another daemon's API adds to it.

If the connection listening for changes is lost (the server restarted), it is opened again at
the next renewal and every queue looks for due tasks, since changes may have been missed.

A daemon that cannot reach the database to renew stops dispatching its queues before its hold
can have run out (``OWNER_TTL_US - RENEW_US`` after its last renewal), so two daemons never
dispatch one queue because of a lost connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from pushd import clock, errors, logs, models, scheduler
from pushd.store import base

if TYPE_CHECKING:
    from pushd.queue_yaml import config

OWNER_TTL_US = 5 * clock.US_PER_SECOND
RENEW_US = 1 * clock.US_PER_SECOND


def daemon_id() -> str:
    """A name for this daemon, unique among those sharing a database."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def push_queues(queues: config.QueuesConfig) -> list[str]:
    return sorted(n for n, c in queues.queues.items() if c.mode is models.QueueMode.PUSH)


@dataclasses.dataclass(eq=False)
class Cluster:
    """Keeps this daemon's share of the push queues and applies the other daemons' changes."""

    store: base.Shared
    sched: scheduler.Scheduler
    queues: Callable[[], config.QueuesConfig]
    clock: clock.Clock
    _: dataclasses.KW_ONLY
    daemon: str
    initial: dataclasses.InitVar[base.Ownership]
    #: The Cloud Tasks API's queues changed (or changes may have been missed): read them again.
    on_queues: Callable[[], None] = lambda: None
    owned: frozenset[str] = dataclasses.field(default=frozenset(), init=False)

    def __post_init__(self, initial: base.Ownership) -> None:
        # How long the hold on its queues lasts, measured here: on the monotonic clock.
        self._valid_until_us = self.clock.monotonic_us() + OWNER_TTL_US - RENEW_US
        self._stop = asyncio.Event()
        self._renew_now = asyncio.Event()
        self._draining = False
        # Changes made between the daemon reading the paused flags and listening are missed:
        # read them again once listening (and whenever the listener was lost).
        self._resync_due = True
        #: While a resync reads the paused flags: the queues whose flag a notification set
        #: meanwhile (newer than what the read may return, so the read must not undo them).
        self._paused_meanwhile: set[str] | None = None
        self._apply(initial)

    @classmethod
    async def join(
        cls, store: base.Shared, daemon: str, queues: config.QueuesConfig
    ) -> base.Ownership:
        """This daemon's first share, before its scheduler starts."""
        own = await store.own_queues(daemon, push_queues(queues), {}, ttl_us=OWNER_TTL_US)
        logs.event("cluster_joined", daemon=daemon, daemons=own.daemons, owned=len(own.owned))
        return own

    def on_change(self, change: base.Change) -> None:
        if change.kind == "due" and change.eta_us is not None:
            self.sched.notify(change.queue, change.eta_us)
        elif change.kind == "paused" and change.paused is not None:
            self.sched.set_paused(change.queue, change.paused)
            if self._paused_meanwhile is not None:
                self._paused_meanwhile.add(change.queue)
        elif change.kind == "forget":
            self.sched.forget(change.queue, change.names)
        elif change.kind == "queues":
            self.on_queues()

    def drain(self) -> None:
        """The daemon is stopping: keep renewing what it holds, take nothing new."""
        self._draining = True

    def stop(self) -> None:
        self._stop.set()

    def renew_soon(self) -> None:
        """Renew now, not at the end of the rest: a reload added push queues to share."""
        self._renew_now.set()

    async def run(self) -> None:
        """Renew and rebalance every ``RENEW_US`` until :meth:`stop`; then give the queues
        back."""
        await self.store.watch(self.on_change)
        try:
            while not self._stop.is_set():
                await self._renew()
                await self._rest()
        finally:
            with contextlib.suppress(errors.TransientError):
                await self.store.leave(self.daemon)

    async def _rest(self) -> None:
        """Until the next renewal is due, :meth:`renew_soon` or :meth:`stop`."""
        sleep = asyncio.ensure_future(self.clock.sleep(RENEW_US / clock.US_PER_SECOND))
        stop = asyncio.ensure_future(self._stop.wait())
        renew = asyncio.ensure_future(self._renew_now.wait())
        try:
            await asyncio.wait({sleep, stop, renew}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleep.cancel()
            stop.cancel()
            renew.cancel()
        self._renew_now.clear()

    async def _resync(self) -> None:
        """Read the paused flags and the API's queues again and have every queue look at the
        store."""
        self.on_queues()
        self._paused_meanwhile = set()
        try:
            paused = await self.store.paused_queues()
        finally:
            meanwhile, self._paused_meanwhile = self._paused_meanwhile, None
        # A pause or resume notified while the read ran is at least as new as what it read
        # (the read may have begun before that change committed): the notification stands.
        for queue in push_queues(self.queues()):
            if queue not in meanwhile:
                self.sched.set_paused(queue, queue in paused)
        self.sched.wake_all()

    async def _renew(self) -> None:
        started = self.clock.monotonic_us()
        try:
            if await self.store.rewatch():
                logs.event("changes_listening_again", logging.WARNING)
                self._resync_due = True
            if self._resync_due:
                await self._resync()
                self._resync_due = False
            # A renewal that hangs (a pool exhausted, a half-open connection) must not keep
            # this daemon dispatching past its hold: it gives up when the hold may end.
            budget_s = max(0.1, (self._valid_until_us - started) / clock.US_PER_SECOND)
            try:
                own = await asyncio.wait_for(
                    self.store.own_queues(
                        self.daemon,
                        push_queues(self.queues()),
                        self.sched.live_all(),
                        ttl_us=OWNER_TTL_US,
                        take=not self._draining,
                    ),
                    budget_s,
                )
            except TimeoutError:
                raise errors.TransientError(f"renewing took over {budget_s:.1f}s") from None
        except errors.TransientError as exc:
            if self.owned and self.clock.monotonic_us() >= self._valid_until_us:
                logs.event(
                    "queues_dropped", logging.WARNING, queues=len(self.owned), error=exc.message
                )
                self._apply(base.Ownership(frozenset(), {}, 0))
            else:
                logs.event(
                    "store_unavailable", logging.WARNING, during="renewing", error=exc.message
                )
            return
        self._valid_until_us = started + OWNER_TTL_US - RENEW_US
        self._apply(own)

    def _apply(self, own: base.Ownership) -> None:
        for queue in sorted(own.owned - self.owned):
            logs.event("queue_owned", queue=queue, daemons=own.daemons)
        for queue in sorted(self.owned - own.owned):
            logs.event("queue_given_up", queue=queue, daemons=own.daemons)
        self.owned = own.owned
        self.sched.set_ownership(own.owned, own.others)
