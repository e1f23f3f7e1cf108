"""Time as an injected dependency.

pushd measures every instant as an ``int`` of microseconds since the Unix epoch (App Engine's
``eta_usec``), so ETAs, backoffs and token-bucket deadlines are exact and comparable. Nothing else
in pushd reads the time or sleeps: it holds a :class:`Clock` (a ruff banned-API rule enforces it).

:class:`SystemClock` is the real one. :class:`FakeClock` is for tests: time stands still until the
test moves it with :meth:`FakeClock.advance` (or, with ``autojump=True``, until every task is
waiting on the clock, when it jumps straight to the earliest deadline, as trio's ``MockClock``
does). Autojump decides "everyone is waiting" by letting the event loop run a number of empty
passes; it is therefore meant for tests whose only waits are on the clock, not on threads or
sockets.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

US_PER_SECOND = 1_000_000
#: The longest delay pushd schedules (backoffs, Retry-After): a century, far inside SQLite's
#: 64-bit microseconds.
MAX_DELAY_S = 100 * 365 * 86400.0
#: How many empty event-loop passes FakeClock's autojump waits before it decides all tasks sleep.
AUTOJUMP_IDLE_PASSES = 50


def seconds_to_us(seconds: float) -> int:
    """Seconds (possibly fractional) to whole microseconds, rounded to nearest (App Engine's rule)."""
    return round(seconds * US_PER_SECOND)


def us_to_seconds(us: int) -> float:
    return us / US_PER_SECOND


class Clock(Protocol):
    """The source of time for everything in pushd."""

    def now_us(self) -> int:
        """Wall-clock time in microseconds since the epoch."""
        ...

    async def sleep_until(self, deadline_us: int) -> None:
        """Return once ``now_us() >= deadline_us`` (at once if it already is)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real wall clock."""

    def now_us(self) -> int:
        return time.time_ns() // 1000

    async def sleep_until(self, deadline_us: int) -> None:
        # Loop because the wall clock may be stepped while we sleep; never return early.
        while True:
            remaining = deadline_us - self.now_us()
            if remaining <= 0:
                return
            # Whole milliseconds, rounded up: uvloop's timers have millisecond resolution and
            # would otherwise wake early and spin on the remainder.
            await asyncio.sleep(-(-remaining // 1000) / 1000)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to (or, with ``autojump``, when everyone waits on it)."""

    def __init__(self, start_us: int = 1_700_000_000_000_000, *, autojump: bool = False) -> None:
        self._now = start_us
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.autojump = autojump
        self._jumper: asyncio.Task[None] | None = None

    def now_us(self) -> int:
        return self._now

    @property
    def deadlines(self) -> list[int]:
        """Deadlines (µs) of the tasks currently sleeping, earliest first."""
        return sorted(d for d, _, fut in self._sleepers if not fut.done())

    def advance(self, us: int) -> None:
        """Move time forward by ``us`` microseconds and wake every sleeper now due."""
        if us < 0:
            raise ValueError("FakeClock cannot go backwards")
        self.set(self._now + us)

    def advance_seconds(self, seconds: float) -> None:
        self.advance(seconds_to_us(seconds))

    def set(self, now_us: int) -> None:
        if now_us < self._now:
            raise ValueError("FakeClock cannot go backwards")
        self._now = now_us
        while self._sleepers and self._sleepers[0][0] <= now_us:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def sleep_until(self, deadline_us: int) -> None:
        if deadline_us <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline_us, next(self._seq), fut))
        if self.autojump:
            self._ensure_jumper()
        try:
            await fut
        finally:
            if not fut.done():  # cancelled: forget the sleeper
                fut.cancel()

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + max(0, seconds_to_us(seconds)))

    async def settle(self, passes: int = AUTOJUMP_IDLE_PASSES) -> None:
        """Let every runnable task run until it blocks (a number of empty loop passes)."""
        for _ in range(passes):
            await asyncio.sleep(0)

    def _ensure_jumper(self) -> None:
        if self._jumper is None or self._jumper.done():
            self._jumper = asyncio.get_running_loop().create_task(self._autojump())

    async def _autojump(self) -> None:
        while True:
            await self.settle()
            live = self.deadlines
            if not live:
                return
            self.set(max(live[0], self._now))
