"""The real daemon as a subprocess, a real receiver on 127.0.0.1, a real SQLite file.

Nothing here sleeps to wait: the receiver signals each request it records, and the daemon's
readiness is its ``listening`` log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

START_TIMEOUT_S = 30.0
LISTENING = re.compile(r"\blistening\b.*\burl=(\S+)")


@dataclass
class Delivery:
    at: float  # time.monotonic() when it was answered
    started_at: float  # time.monotonic() when the request arrived
    method: str
    path: str
    headers: dict[str, str]
    all_headers: list[tuple[str, str]]
    body: bytes
    status: int
    peer_port: int = 0  # the sender's local port: which process sent it (see local_ports)


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of process ``pid``'s sockets (from /proc): which deliveries it sent."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = row.split()
                if cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


Responder = Callable[[web.Request, int], Any]  # (request, index) -> status or (status, headers)


@dataclass
class Receiver:
    """A webhook receiver that records deliveries and answers as told."""

    respond: Responder = field(default=lambda request, i: 200)
    delay_s: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)
    in_flight: int = 0
    started: int = 0
    max_in_flight: int = 0
    url: str = ""
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        started_at = time.monotonic()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        body = await request.read()
        index = len(self.deliveries)
        self.in_flight += 1
        self.started += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        async with self._changed:
            self._changed.notify_all()
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)  # the receiver is slow on purpose
            answer = self.respond(request, index)
        finally:
            self.in_flight -= 1
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        self.deliveries.append(
            Delivery(
                at=time.monotonic(),
                started_at=started_at,
                method=request.method,
                path=request.path_qs,
                headers=dict(request.headers),
                all_headers=list(request.headers.items()),
                body=body,
                status=status,
                peer_port=int(peer[1]) if peer else 0,
            )
        )
        async with self._changed:
            self._changed.notify_all()
        return web.Response(status=status, headers=headers, text="ok")

    async def wait_started(self, count: int = 1, timeout_s: float = 30.0) -> None:
        """Wait until ``count`` requests have arrived (answered or not)."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.started >= count)

        await asyncio.wait_for(enough(), timeout_s)

    async def wait_until(
        self, done: Callable[[list[Delivery]], bool], timeout_s: float = 30.0
    ) -> list[Delivery]:
        """Wait until ``done(deliveries)`` holds, woken by each delivery; the deliveries."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: done(self.deliveries))

        with contextlib.suppress(TimeoutError):  # the caller asserts on what arrived
            await asyncio.wait_for(enough(), timeout_s)
        return self.deliveries

    async def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Delivery]:
        """Wait until ``count`` deliveries arrived; fail with what did arrive otherwise."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.deliveries) >= count)

        try:
            await asyncio.wait_for(enough(), timeout_s)
        except TimeoutError:
            got = [(d.method, d.path, d.status) for d in self.deliveries]
            raise AssertionError(
                f"expected {count} deliveries within {timeout_s}s, got {got}"
            ) from None
        return self.deliveries


@dataclass
class Daemon:
    """A ``pushd serve`` subprocess."""

    tmp: Path
    queue_yaml: str
    default_target: str
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    db: Path | None = None  # the SQLite file (default: tmp/pushd.sqlite3), unless db_url
    db_url: str | None = None  # another database: postgresql://...
    url: str = ""
    proc: asyncio.subprocess.Process | None = None
    log: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None
    _logged: asyncio.Condition = field(default_factory=asyncio.Condition)

    def __post_init__(self) -> None:
        self.db = self.db or self.tmp / "pushd.sqlite3"
        (self.tmp / "queue.yaml").write_text(self.queue_yaml)

    async def start(self) -> Daemon:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pushd",
            "serve",
            "--config",
            str(self.tmp / "queue.yaml"),
            "--db",
            self.db_url or str(self.db),
            "--port",
            "0",
            "--default-target",
            self.default_target,
            *self.extra_args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(ready))
        try:
            self.url = await asyncio.wait_for(ready, START_TIMEOUT_S)
        except (TimeoutError, EOFError):
            await self.kill()
            raise AssertionError("pushd did not start:\n" + "\n".join(self.log)) from None
        return self

    async def _read(self, ready: asyncio.Future[str]) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            async with self._logged:
                self._logged.notify_all()
            if not ready.done() and (m := LISTENING.search(line)):
                ready.set_result(m.group(1))
        if not ready.done():
            ready.set_exception(EOFError())

    async def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        if self._reader is not None:
            await self._reader
        return code

    async def stop(self) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else 0
        await self.signal(signal.SIGTERM)
        return await self.wait()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader

    async def wait_event(self, name: str, count: int = 1, timeout_s: float = 30.0) -> list[str]:
        """Wait until the daemon has logged event ``name`` ``count`` times."""

        async def enough() -> None:
            async with self._logged:
                await self._logged.wait_for(lambda: len(self.events(name)) >= count)

        try:
            await asyncio.wait_for(enough(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"no {name!r} event:\n" + "\n".join(self.log)) from None
        return self.events(name)

    def events(self, name: str) -> list[str]:
        return [line for line in self.log if f" {name} " in f" {line} "]


async def wait_logs(
    daemons: list[Daemon], done: Callable[[], bool], timeout_s: float = 30.0
) -> None:
    """Wait until ``done()`` holds, checking again each time any of ``daemons`` logs a line."""

    async def next_line(d: Daemon, seen: int) -> None:
        async with d._logged:
            await d._logged.wait_for(lambda: len(d.log) > seen)

    async def loop() -> None:
        while not done():
            waiters = [asyncio.ensure_future(next_line(d, len(d.log))) for d in daemons]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    try:
        await asyncio.wait_for(loop(), timeout_s)
    except TimeoutError:
        logs = "\n\n".join("\n".join(d.log) for d in daemons)
        raise AssertionError(f"not done within {timeout_s}s; the daemons logged:\n{logs}") from None


async def api(
    session: aiohttp.ClientSession, daemon: Daemon, method: str, path: str, **kw: Any
) -> tuple[int, Any]:
    async with session.request(method, daemon.url + path, **kw) as resp:
        body = await resp.json(content_type=None) if resp.content_length != 0 else None
        return resp.status, body
