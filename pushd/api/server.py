"""Serving an aiohttp application on a host and port, and learning the port it got.

The API port is open to anyone who reaches it (no token is needed to connect), so it defends
itself against slow and hostile clients:

- A client has ``read_timeout_s`` to send a request head, from connecting or from its previous
  answer (aiohttp's keep-alive timeout, which it also starts on connecting), and as long again
  to send the body (408). An idle kept-alive connection closes after it too.
- At most :func:`connections.connection_cap` connections are held, below the process's
  open-file limit with room kept for deliveries and the database (:mod:`pushd.api.connections`).
- Malformed HTTP is one ``http_bad_request`` line at info level, rate-limited, instead of
  aiohttp's traceback per request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import http_exceptions, web

from pushd import clock, logs
from pushd.api import connections
from pushd.api.connections import Limits

__all__ = ["Limits", "Server"]


class _HttpLog:
    """aiohttp's server logger: malformed HTTP is one rate-limited ``http_bad_request`` line
    (info) instead of an "Error handling request" traceback; any other failure of aiohttp's
    is ``http_server_error`` with its traceback, rate-limited too."""

    def __init__(self, now_us: Any) -> None:
        self._bad = logs.Limited("http_bad_request", logging.INFO, now_us)
        self._error = logs.Limited("http_server_error", logging.ERROR, now_us)

    def exception(self, msg: str, *args: object, exc_info: Any = None, **_: object) -> None:
        if isinstance(exc_info, http_exceptions.HttpProcessingError):
            peer = args[0] if args else None
            self._bad(peer=peer, error=_one_line(exc_info.message or str(exc_info)))
            return
        self._error(message=_format(msg, args), exc_info=exc_info or True)

    error = warning = exception

    def debug(self, msg: str, *args: object, exc_info: Any = None, **_: object) -> None:
        if isinstance(exc_info, http_exceptions.HttpProcessingError):
            return  # what aiohttp itself deems noise (non-HTTP bytes on the port)
        logs.event("http_server", logging.DEBUG, message=_format(msg, args))

    info = debug


def _format(msg: str, args: tuple[object, ...]) -> str:
    try:
        return msg % args if args else msg
    except (TypeError, ValueError):
        return f"{msg} {args!r}"


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class _GuardedSite(web.TCPSite):
    """aiohttp's TCP site with :class:`connections.Guard` as the protocol factory."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, guard: connections.Guard
    ) -> None:
        super().__init__(runner, host, port, reuse_address=True)
        self._guard = guard

    async def start(self) -> None:
        self._runner._reg_site(self)
        self._server = await asyncio.get_running_loop().create_server(
            self._guard, self._host, self._port, backlog=self._backlog, reuse_address=True
        )


class Server:
    """A started HTTP server; ``url`` is where it listens (port 0 picks a free one)."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self._runner = runner
        self.url = url
        self._stopped = False

    @classmethod
    async def start(
        cls,
        app: web.Application,
        host: str,
        port: int,
        *,
        shutdown_timeout_s: float = 5.0,
        limits: Limits | None = None,
        clock_: clock.Clock | None = None,
    ) -> Server:
        limits = limits or Limits()
        now_us = (clock_ or clock.SystemClock()).monotonic_us  # durations: never stepped
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=shutdown_timeout_s,
            keepalive_timeout=limits.read_timeout_s,
            logger=_HttpLog(now_us),
        )
        guard = connections.Guard(limits, now_us)
        if not app.frozen:
            app.middlewares.append(guard.middleware())
        await runner.setup()
        guard.server = runner.server
        try:
            site = _GuardedSite(runner, host, port, guard)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
        return cls(runner, f"http://{shown}:{bound[1]}")

    async def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            await self._runner.cleanup()
