"""Time as an injected dependency.

pushd measures every instant as an ``int`` of microseconds since the Unix epoch (App Engine's
``eta_usec``), so ETAs, backoffs and token-bucket deadlines are exact and comparable. Nothing else
in pushd reads the time or sleeps: it holds a :class:`Clock` (a ruff banned-API rule enforces it).

A clock has two readings. The wall clock (:meth:`Clock.now_us`) is what ETAs, leases in the store
and tombstones are written in: it is shared with clients and other daemons, and it can be
stepped (NTP, a VM resumed, an operator's ``date``). The monotonic clock
(:meth:`Clock.monotonic_us`) only ever moves forward at the rate of real time: a living daemon
measures its durations on it (token buckets, pacing, dispatch deadlines, how long its claims
last), so a step of the wall clock neither stalls a bucket nor ends a claim under it. Its zero
is arbitrary; only differences mean anything.

Sleeping until a wall-clock instant re-reads the wall clock at least every
:data:`WALL_RECHECK_US`: a forward step wakes the sleeper within that, a backward step makes it
sleep on until the (new) wall clock reaches its deadline.

:class:`SystemClock` is the real one. :class:`FakeClock` is for tests: time stands still until the
test moves it with :meth:`FakeClock.advance` (or, with ``autojump=True``, until every task is
waiting on the clock, when it jumps straight to the earliest deadline, as trio's ``MockClock``
does); :meth:`FakeClock.step_wall` steps its wall clock alone, either way. Autojump decides
"everyone is waiting" by letting the event loop run a number of empty passes; it is therefore
meant for tests whose only waits are on the clock, not on threads or sockets.
"""

from __future__ import annotations

import asyncio
import datetime
import heapq
import itertools
import time
from typing import Protocol

US_PER_SECOND = 1_000_000
#: The epoch of every ``*_us`` time: microseconds count from here (the one copy of it).
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
#: The longest delay pushd schedules (backoffs, Retry-After): a century, far inside SQLite's
#: 64-bit microseconds.
MAX_DELAY_S = 100 * 365 * 86400.0
#: How many empty event-loop passes FakeClock's autojump waits before it decides all tasks sleep.
AUTOJUMP_IDLE_PASSES = 50
#: A sleep until a wall-clock instant looks at the wall clock again at least this often, so a
#: forward step of the wall clock wakes it within this much.
WALL_RECHECK_US = 1 * US_PER_SECOND


def seconds_to_us(seconds: float) -> int:
    """Seconds (possibly fractional) to whole microseconds, rounded to nearest (App Engine's rule)."""
    return round(seconds * US_PER_SECOND)


def us_to_datetime(us: int) -> datetime.datetime:
    """µs since :data:`EPOCH` as an aware UTC datetime, exact to the microsecond."""
    return EPOCH + datetime.timedelta(microseconds=us)


def datetime_to_us(when: datetime.datetime) -> int:
    """An aware datetime as µs since :data:`EPOCH`, exact (a naive one is taken as UTC)."""
    aware = when if when.utcoffset() is not None else when.replace(tzinfo=datetime.UTC)
    return (aware - EPOCH) // datetime.timedelta(microseconds=1)


def us_to_seconds(us: int) -> float:
    return us / US_PER_SECOND


class Clock(Protocol):
    """The source of time for everything in pushd."""

    def now_us(self) -> int:
        """Wall-clock time in microseconds since the epoch (may be stepped either way)."""
        ...

    def monotonic_us(self) -> int:
        """Microseconds on a clock that never steps (arbitrary zero): for durations."""
        ...

    async def sleep_until(self, deadline_us: int) -> None:
        """Return once ``now_us() >= deadline_us`` (at once if it already is); a forward step
        of the wall clock past the deadline wakes it within :data:`WALL_RECHECK_US`."""
        ...

    async def sleep_until_monotonic(self, deadline_us: int) -> None:
        """Return once ``monotonic_us() >= deadline_us`` (at once if it already is)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of this clock's (monotonic) time."""
        ...


class SystemClock:
    """The real clocks: ``time.time_ns`` for the wall, the event loop's monotonic clock."""

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic_us(self) -> int:
        return time.monotonic_ns() // 1000

    async def sleep_until(self, deadline_us: int) -> None:
        # Loop because the wall clock may be stepped while we sleep; never return early, and
        # never sleep long at a time, so a forward step is noticed within WALL_RECHECK_US.
        while True:
            remaining = deadline_us - self.now_us()
            if remaining <= 0:
                return
            await _sleep_us(min(remaining, WALL_RECHECK_US))

    async def sleep_until_monotonic(self, deadline_us: int) -> None:
        while True:
            remaining = deadline_us - self.monotonic_us()
            if remaining <= 0:
                return
            await _sleep_us(remaining)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


async def _sleep_us(us: int) -> None:
    # Whole milliseconds, rounded up: uvloop's timers have millisecond resolution and would
    # otherwise wake early and spin on the remainder.
    await asyncio.sleep(-(-us // 1000) / 1000)


class FakeClock:
    """A clock that only moves when told to (or, with ``autojump``, when everyone waits on it).

    Its monotonic clock starts at ``start_us`` and moves only with :meth:`advance` (the wall
    clock moves along); :meth:`step_wall` steps the wall clock alone, forwards or backwards.
    A wall-clock sleeper whose deadline a step passes wakes at once (the real clock takes up to
    :data:`WALL_RECHECK_US`).
    """

    def __init__(self, start_us: int = 1_700_000_000_000_000, *, autojump: bool = False) -> None:
        self._mono = start_us
        self._offset = 0  # wall minus monotonic: what step_wall changes
        # Two heaps of (deadline, seq, future): wall-clock deadlines and monotonic ones.
        self._wall_sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._mono_sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.autojump = autojump
        self._jumper: asyncio.Task[None] | None = None

    def now_us(self) -> int:
        return self._mono + self._offset

    def monotonic_us(self) -> int:
        return self._mono

    @property
    def deadlines(self) -> list[int]:
        """Deadlines of the tasks currently sleeping, as wall-clock µs, earliest first."""
        wall = [d for d, _, fut in self._wall_sleepers if not fut.done()]
        mono = [d + self._offset for d, _, fut in self._mono_sleepers if not fut.done()]
        return sorted(wall + mono)

    def advance(self, us: int) -> None:
        """Move time forward by ``us`` microseconds and wake every sleeper now due."""
        if us < 0:
            raise ValueError("FakeClock cannot go backwards")
        self._mono += us
        self._wake()

    def advance_seconds(self, seconds: float) -> None:
        self.advance(seconds_to_us(seconds))

    def set(self, now_us: int) -> None:
        """Advance until the wall clock reads ``now_us``."""
        if now_us < self.now_us():
            raise ValueError("FakeClock cannot go backwards")
        self.advance(now_us - self.now_us())

    def step_wall(self, us: int) -> None:
        """Step the wall clock alone by ``us`` (negative: back), as NTP or ``date`` would;
        monotonic time does not move."""
        self._offset += us
        self._wake()

    def _wake(self) -> None:
        for heap, now in ((self._wall_sleepers, self.now_us()), (self._mono_sleepers, self._mono)):
            while heap and heap[0][0] <= now:
                _, _, fut = heapq.heappop(heap)
                if not fut.done():
                    fut.set_result(None)

    async def _sleep_on(self, heap: list[tuple[int, int, asyncio.Future[None]]], at: int) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(heap, (at, next(self._seq), fut))
        if self.autojump:
            self._ensure_jumper()
        try:
            await fut
        finally:
            if not fut.done():  # cancelled: forget the sleeper
                fut.cancel()

    async def sleep_until(self, deadline_us: int) -> None:
        if deadline_us <= self.now_us():
            await asyncio.sleep(0)
            return
        await self._sleep_on(self._wall_sleepers, deadline_us)

    async def sleep_until_monotonic(self, deadline_us: int) -> None:
        if deadline_us <= self._mono:
            await asyncio.sleep(0)
            return
        await self._sleep_on(self._mono_sleepers, deadline_us)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until_monotonic(self._mono + max(0, seconds_to_us(seconds)))

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
            self.set(max(live[0], self.now_us()))
