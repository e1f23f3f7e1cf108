"""A probe of the daemon's event loop from outside: ``/healthz`` polled every 10 ms.

The campaigns that must not block the loop (reloads of thousands of queues, large listings,
/metrics) read the slowest answer seen while they ran: the only view of loop blocking a
client has. Figures go to docs/RELIABILITY.md; the asserted bounds are loose.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from tests.integration.harness import Daemon


@dataclasses.dataclass
class Stall:
    """The slowest /healthz answer so far, in seconds."""

    slowest_s: float = 0.0


@contextlib.asynccontextmanager
async def healthz_watch(d: Daemon) -> AsyncIterator[Stall]:
    """Poll ``d``'s /healthz every 10 ms (each answer must be 200) while the block runs."""
    stall = Stall()
    stop = asyncio.Event()

    async def poll() -> None:
        async with aiohttp.ClientSession() as client:
            while not stop.is_set():
                started = time.perf_counter()
                async with client.get(d.url + "/healthz") as response:
                    await response.read()
                    assert response.status == 200, response.status
                stall.slowest_s = max(stall.slowest_s, time.perf_counter() - started)
                await asyncio.sleep(0.01)  # the probe's own pace

    poller = asyncio.create_task(poll())
    await asyncio.sleep(0.05)  # polling before the block starts
    try:
        yield stall
    finally:
        stop.set()
        await poller
