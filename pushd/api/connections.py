"""The API port's connections, capped below the process's open-file limit.

1,000 half-open request heads once took every file descriptor of the daemon: the API stopped
answering and deliveries failed with "Too many open files". :class:`Guard` is the listening
socket's protocol factory; it holds at most :func:`connection_cap` connections, which leaves
room for ``max_connections`` deliveries and the database. A new connection at the cap closes
the connection whose client has been quiet longest while it waits for a request (see
:meth:`Guard._victim`); only if none qualifies (every connection is running a handler or was
active a moment ago) is the new one refused: 503 with ``Retry-After: 1``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from aiohttp import typedefs, web, web_protocol

from pushd import logs

#: The fewest API connections allowed, whatever the open-file limit says.
MIN_API_CONNECTIONS = 8
#: Files kept for everything but API and delivery connections: the database and its journal,
#: the listening socket, the event loop, logs, idle kept-alive delivery connections.
RESERVED_FILES = 64
#: A connection is closed for a new one only once its client has been quiet this long: the
#: loop may accept a burst of connections before it reads any (a legitimate client's among
#: them), and a request whose head just arrived waits a loop pass for its handler.
QUIET_GRACE_US = 100_000
_BUSY_BODY = b'{"error": {"code": 503, "status": "TRANSIENT_ERROR", "message": "too many connections; try again"}}\n'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_BUSY_BODY), _BUSY_BODY)
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How much the API port grants its clients."""

    #: How long a client may take to send a request head (from connecting or from its previous
    #: answer), and then its body.
    read_timeout_s: float = 30.0
    max_connections: int = 1000
    #: Open files kept for the daemon's deliveries (its ``max_connections`` setting).
    delivery_files: int = 256


def connection_cap(limits: Limits) -> int:
    """The most API connections held now: ``limits.max_connections``, lowered to fit the
    open-file limit (read again each time, so a limit changed at run time applies)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limits.max_connections
    room = soft - limits.delivery_files - RESERVED_FILES
    return max(MIN_API_CONNECTIONS, min(limits.max_connections, room))


class _Refused(asyncio.Protocol):
    """A connection beyond the cap: answered 503 and closed at once, freeing its file."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast("asyncio.WriteTransport", transport).write(_BUSY)
        transport.close()


class _Connection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with what the guard needs to know of it: when
    its client last sent something, and whether it sent anything at all."""

    def __init__(self, guard: Guard, handler: web_protocol.RequestHandler) -> None:
        self.guard, self.handler = guard, handler
        self.transport: asyncio.Transport | None = None  # None until the loop has made it
        self.received = 0  # bytes
        #: When the client last sent something, or connected (µs).
        self.last_data = guard.now_us()
        # Counted from now: the loop may accept a burst before it makes any of them.
        guard.live[self] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast("asyncio.Transport", transport)
        self.handler.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.live.pop(self, None)
        self.handler.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.last_data = self.guard.now_us()
        self.handler.data_received(data)

    def eof_received(self) -> None:
        self.handler.eof_received()

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    @property
    def open(self) -> bool:
        return self.transport is None or not self.transport.is_closing()

    @property
    def in_handler(self) -> bool:
        """A request is being handled (aiohttp's flag; True if that flag ever goes away, so
        that a connection is then never closed for another)."""
        return bool(getattr(self.handler, "_request_in_progress", True))


class Guard:
    """The listening socket's protocol factory: aiohttp's own, under the connection cap."""

    def __init__(self, limits: Limits, now_us: Callable[[], int]) -> None:
        self.server: web.Server | None = None  # aiohttp's, once its runner is set up
        self.limits = limits
        self.now_us = now_us
        self.live: dict[_Connection, None] = {}  # in the order they were made
        #: aiohttp's protocols whose handler is waiting for the request body.
        self.reading_body: set[asyncio.BaseProtocol] = set()
        self._log_full = logs.Limited("api_connections_full", logging.WARNING, now_us)

    def __call__(self) -> asyncio.Protocol:
        server = self.server
        assert server is not None
        cap = connection_cap(self.limits)
        live = [c for c in self.live if c.open]
        if len(live) >= cap:
            victim = self._victim(live)
            if victim is None:
                self._log_full(limit=cap, closed="new (503)")
                return _Refused()
            assert victim.transport is not None
            victim.transport.close()
            self._log_full(limit=cap, closed="quietest")
        return _Connection(self, server())

    def _victim(self, live: list[_Connection]) -> _Connection | None:
        """The connection to close for a new one: of those waiting for their client (for a
        request head, a body, or the next request), the one whose client has been quiet the
        longest, if at least ``QUIET_GRACE_US``. A legitimate client sends its request at
        once; a slow one (slowloris) is always the quietest."""
        quiet_since = self.now_us() - QUIET_GRACE_US
        waiting = [
            c
            for c in live
            if c.transport is not None
            and c.last_data <= quiet_since
            and (not c.in_handler or c.handler in self.reading_body)
        ]
        return min(waiting, key=lambda c: c.last_data) if waiting else None

    def middleware(self) -> typedefs.Middleware:
        """Reads the request body within ``read_timeout_s``, before the handler runs (408)."""
        timeout_s = self.limits.read_timeout_s

        @web.middleware
        async def read_body_in_time(
            request: web.Request, handler: typedefs.Handler
        ) -> web.StreamResponse:
            # A body that came whole with its head (most requests) has nothing left to wait
            # for: the timer cost ~10 us a request (a quarter of a v1beta2 insert's CPU).
            if request.body_exists and not request.content.is_eof():
                protocol = request.protocol
                self.reading_body.add(protocol)
                try:
                    async with asyncio.timeout(timeout_s):
                        await request.read()
                except TimeoutError:
                    raise web.HTTPRequestTimeout(
                        text=f"the request body did not arrive within {timeout_s:g}s"
                    ) from None
                finally:
                    self.reading_body.discard(protocol)
            return await handler(request)

        return read_body_in_time
