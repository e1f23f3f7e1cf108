"""The h1 transport's keep-alive connections: at most ``max_connections`` sockets open.

Connections are kept per key (scheme, host, port, pinned address) and handed out last-in
first-out, so a steady load keeps reusing the same few warm ones while the rest age out after
:data:`IDLE_TIMEOUT_S` unused. The cap counts every socket, busy, idle and being opened, to
all targets together: at the cap, a new connection first closes the connection idle longest
(to any target), else one still reading the body of an answer already given, and only otherwise waits for a
socket to be released (rare: the scheduler's own limit of deliveries in flight is the same).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pushd.dispatch.h1_connection import Connection

#: How long a kept-alive connection stays open unused (aiohttp's default keep-alive, too).
IDLE_TIMEOUT_S = 15.0


class Pool:
    """Keep-alive connections by key, at most ``limit`` sockets open at once."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.limit = limit
        self._loop = loop
        self._open: set[Connection] = set()
        self._opening = 0
        self._idle: dict[Hashable, list[Connection]] = {}
        #: Answered, their body still being read to keep them: closed first when room is short.
        self._draining: set[Connection] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._sweep: asyncio.TimerHandle | None = None

    @property
    def size(self) -> int:
        """Sockets open or being opened."""
        return len(self._open) + self._opening

    @property
    def idle(self) -> int:
        """Connections kept open unused."""
        return sum(len(idle) for idle in self._idle.values())

    def take(self, key: Hashable) -> Connection | None:
        """The idle connection to ``key`` used last, if there is one."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.lost:
                return conn
        return None

    async def acquire(self, key: Hashable) -> Connection | None:
        """An idle connection to ``key``, or None once there is room to open one (the caller
        then opens it and calls :meth:`opened` or :meth:`not_opened`)."""
        while True:
            conn = self.take(key)
            if conn is not None:
                return conn
            if self.size < self.limit or self._evict_one():
                self._opening += 1
                return None
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # the room it was given goes to the next waiter
                raise

    def opened(self, conn: Connection) -> None:
        self._opening -= 1
        self._open.add(conn)

    def not_opened(self) -> None:
        self._opening -= 1
        self._wake()

    # ------------------------------------------------------------------ from the connections
    def draining(self, conn: Connection) -> None:
        """``conn`` was answered and reads the rest of its body: a connection to close for
        room before anyone waits (it no longer carries an attempt)."""
        self._draining.add(conn)
        self._wake()

    def done(self, conn: Connection, reusable: bool) -> None:
        """An exchange of ``conn`` is over; it goes back to the idle connections if reusable."""
        self._draining.discard(conn)
        if not reusable or conn.lost:
            conn.close()
            return
        self._idle.setdefault(conn.key, []).append(conn)
        if self._sweep is None:
            self._sweep = self._loop.call_at(conn.idle_since + IDLE_TIMEOUT_S, self._expire)
        self._wake()

    def lost(self, conn: Connection) -> None:
        """``conn`` is closed: it leaves the pool and its room goes to a waiter."""
        self._draining.discard(conn)
        if conn in self._open:
            self._open.discard(conn)
            idle = self._idle.get(conn.key)
            if idle and conn in idle:
                idle.remove(conn)
            self._wake()

    # ------------------------------------------------------------------ inside
    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _evict_one(self) -> bool:
        """Close the connection idle longest, to any target, else one reading the body of an
        answer already given; False if there is none."""
        oldest: list[Connection] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest[0].idle_since):
                oldest = idle
        if oldest is not None:
            oldest.pop(0).close()
            return True
        if self._draining:
            self._draining.pop().close()
            return True
        return False

    def _expire(self) -> None:
        """Close the connections idle for :data:`IDLE_TIMEOUT_S`; come back for the next."""
        self._sweep = None
        cutoff = self._loop.time() - IDLE_TIMEOUT_S
        next_at: float | None = None
        for key, idle in list(self._idle.items()):
            while idle and idle[0].idle_since <= cutoff:
                idle.pop(0).close()
            if not idle:
                del self._idle[key]
            elif next_at is None or idle[0].idle_since < next_at:
                next_at = idle[0].idle_since
        if next_at is not None:
            self._sweep = self._loop.call_at(next_at + IDLE_TIMEOUT_S, self._expire)

    def close(self) -> None:
        """Close every connection (the transport is closing)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
