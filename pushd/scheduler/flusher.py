"""Outcomes are collected and written by one flusher, so under load many share a commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pushd import clock, errors
from pushd.scheduler import outcomes
from pushd.scheduler.holds import STORE_RETRY_US, Hold
from pushd.store import base, health


class Flusher:
    """Writes the outcomes :meth:`record` collects, each with its claim's current lease.

    ``written(outcome, hold)`` is called for each outcome the store took; ``closing()`` says
    whether the deliveries are over (no outcome will follow): the flusher then writes what is
    left, or gives it up if the store refuses it, and returns.
    """

    def __init__(
        self,
        store: base.Store,
        clk: clock.Clock,
        *,
        written: Callable[[base.Outcome, Hold], None],
        closing: Callable[[], bool],
    ) -> None:
        self._store = store
        self._clock = clk
        self._written = written
        self._closing = closing
        self._outcomes: list[tuple[base.Outcome, Hold]] = []
        self.wake = asyncio.Event()
        self.flushed = asyncio.Event()

    def record(self, outcome: base.Outcome, hold: Hold) -> None:
        """Queue ``outcome``: it is written with the hold's lease at that time."""
        hold.recorded = True
        self._outcomes.append((outcome, hold))
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self._outcomes:
                if not await self._write_pending():
                    break
            if self._closing():
                self.flushed.set()
                return

    async def _write_pending(self) -> bool:
        """Write the outcomes collected so far; False if they were given up."""
        pending, self._outcomes = self._outcomes, []
        batch = [outcomes.with_lease(outcome, hold.lease_eta_us) for outcome, hold in pending]
        try:
            await self._store.finish(batch, now_us=self._clock.now_us())
        except errors.TransientError as exc:
            if self._closing():
                # Stopping with the store down: the claims of these tasks expire and
                # they run again (at least once), as after a crash.
                health.report(f"recording {len(batch)} outcomes (given up)", exc)
                return False
            health.report(f"recording {len(batch)} outcomes", exc)
            self._outcomes[:0] = pending  # kept, in order, for the next try
            await self._clock.sleep(STORE_RETRY_US / clock.US_PER_SECOND)
            return True
        for (outcome, hold), written in zip(pending, batch, strict=True):
            if hold.lease_eta_us != written.lease_eta_us:
                # Handed back to this daemon while being written: the store ignored
                # the old lease; written again with the new one.
                self._outcomes.append((outcome, hold))
                continue
            self._written(outcome, hold)
        return True
