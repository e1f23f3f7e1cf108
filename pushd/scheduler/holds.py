"""Time and the claims this daemon holds.

ETAs are wall-clock (the store's, shared with clients); everything else is a duration on the
monotonic clock. A claim is written as a wall-clock lease, and a forward step can end it in the
store while its request is still out: the next claim then hands the task back to this daemon,
which recognises its own claim (:func:`kept`) and sends nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

import anyio

from pushd import clock, logs

if TYPE_CHECKING:
    from pushd.store import base

LEASE_SLACK_US = 5 * clock.US_PER_SECOND  # a claim lasts CLAIM_DEADLINES deadlines plus this
#: A claim lasts two dispatch deadlines (plus slack): one for waiting for a free slot or
#: connection (tasks are claimed ahead of them), one for the request itself. It is also how
#: soon the tasks a crashed daemon had claimed run again.
CLAIM_DEADLINES = 2
#: After a write the store refused (disk full, read-only disk), try again this much later.
STORE_RETRY_US = 1 * clock.US_PER_SECOND


@dataclasses.dataclass(eq=False, slots=True)  # one per delivery: slots build faster
class Hold:
    """A claim this daemon holds: its lease in the store (wall clock) and when it ends for this
    daemon (monotonic). The lease changes if the store hands the task back (see :func:`kept`);
    outcomes are written with the current one."""

    lease_eta_us: int
    ends_mono_us: int
    recorded: bool = False  # an outcome was queued for it: the flusher lets it go

    @classmethod
    def of(cls, claimed: base.Claimed, now_us: int, mono_us: int) -> Hold:
        return cls(claimed.lease_eta_us, mono_us + claimed.lease_eta_us - now_us)


def kept(held: dict[str, Hold], claimed: base.Claimed, now: int, mono: int) -> bool:
    """Whether ``claimed`` is a claim this daemon already holds, handed back because the
    wall clock stepped past its lease while it was out: the new lease is kept, nothing is
    sent again. (A held name with another ETA is a new claim: its outcome was written.)"""
    hold = held.get(claimed.task.name)
    if hold is None or hold.lease_eta_us != claimed.task.eta_us:
        return False
    hold.lease_eta_us = claimed.lease_eta_us
    hold.ends_mono_us = mono + claimed.lease_eta_us - now
    logs.event("claim_kept", logging.WARNING, queue=claimed.task.queue, task=claimed.task.name)
    return True


async def wait_until(
    clk: clock.Clock, deadline_us: int | None, event: asyncio.Event, *, mono_us: int | None = None
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
            await clk.sleep_until(at_us)
            tg.cancel_scope.cancel()

        async def mono_sleeper(at_us: int) -> None:
            await clk.sleep_until_monotonic(at_us)
            tg.cancel_scope.cancel()

        async def waiter() -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        if deadline_us is not None:
            tg.start_soon(wall_sleeper, deadline_us)
        if mono_us is not None:
            tg.start_soon(mono_sleeper, mono_us)
        tg.start_soon(waiter)
