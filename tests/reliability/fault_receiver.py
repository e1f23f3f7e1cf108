"""A webhook receiver on 127.0.0.1 that misbehaves on purpose, one planned fault per attempt.

It is a raw ``asyncio`` HTTP/1.1 server (no framework in the way), so it can do what real
receivers do when they break: answer 5xx, 429 or 503 with ``Retry-After``, redirect, reset the
connection before answering or half-way through the status line and headers, never answer,
trickle the headers or the body byte by byte. Keep-alive is supported, as pushd's client pools
connections.

What happens to a request is chosen per task: the test registers a *plan* for each task name (a
list of :class:`Action`, one per attempt) and the receiver plays the n-th action on the n-th
request it sees carrying that ``X-AppEngine-TaskName``. It counts attempts itself, so a wrong
``X-AppEngine-TaskRetryCount`` cannot shift the plan. Every request is recorded as an
:class:`Arrival` with wall-clock times (pushd schedules on the wall clock) for the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from dataclasses import dataclass, field

#: Paths under which a request is a followed redirect (the test asserts there are none).
REDIRECTED = "/redirected/"
#: How long a ``hang`` waits for the client to give up before the receiver gives up itself.
MAX_HANG_S = 60.0
#: How long a request head may take to arrive once its first byte has (a hung client).
HEAD_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Action:
    """What the receiver does with one attempt.

    ``kind``:
      ``status``        answer ``status`` after ``delay_s`` (0: at once), keeping the connection
      ``redirect``      answer ``status`` (3xx) with a ``Location`` back to this receiver
      ``retry_after``   answer ``status`` (429/503) with ``Retry-After: <retry_after_s>``
      ``retry_after_date``  the same with an HTTP date ``retry_after_s`` seconds ahead
      ``reset_before``  read the request, then reset the connection without a byte of answer
      ``reset_mid``     write half of a status line and headers, then reset the connection
      ``hang``          never answer; wait until the client closes the connection
      ``slow_headers``  trickle the status line and headers, one piece every ``interval_s``
      ``trickle``       answer ``status`` at once, then trickle the body for ``body_s`` seconds
    """

    kind: str
    status: int | None = None
    retry_after_s: int = 0
    interval_s: float = 0.2
    body_s: float = 0.0
    delay_s: float = 0.0

    @property
    def answers(self) -> bool:
        """Whether pushd gets a complete status line and headers (an HTTP response)."""
        return self.kind in ("status", "redirect", "retry_after", "retry_after_date", "trickle")

    @property
    def ok(self) -> bool:
        return self.answers and self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        return self.kind if self.status is None else f"{self.kind}:{self.status}"


OK = Action("status", 200)


@dataclass(slots=True)
class Arrival:
    """One request as the receiver saw it."""

    task: str
    index: int  # the receiver's own count of earlier requests for this task
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    action: Action
    started: float  # time.time() when the first byte of the request arrived
    ended: float = 0.0  # when the answer was written, the reset done, or the client left
    #: When the daemon had all it needed to decide: the status line, headers and first byte of
    #: the body written (a trickled body goes on after it), or else ``ended``.
    decided: float = 0.0
    not_before: float | None = None  # Retry-After: the earliest the next attempt may come
    client_left_early: bool = False  # the client closed before the answer was complete
    fresh_connection: bool = True  # the first request on its connection


@dataclass
class FaultReceiver:
    """The server; ``plans`` maps task names to the action of each attempt."""

    plans: dict[str, list[Action]] = field(default_factory=dict)
    arrivals: dict[str, list[Arrival]] = field(default_factory=dict)
    redirect_hits: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)  # requests without a task name
    beyond_plan: list[str] = field(default_factory=list)  # tasks asked more than planned
    connections: int = 0
    max_connections: int = 0
    total_connections: int = 0
    requests: int = 0
    url: str = ""
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _idle: set[asyncio.StreamWriter] = field(default_factory=set)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> FaultReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        for t in list(self._handlers):
            t.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def close_idle(self) -> int:
        """Close every keep-alive connection waiting for its next request; how many."""
        idle = list(self._idle)
        for w in idle:
            w.close()
        return len(idle)

    def attempts(self, task: str) -> list[Arrival]:
        return self.arrivals.get(task, [])

    # ------------------------------------------------------------------ the server
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        self.total_connections += 1
        self.max_connections = max(self.max_connections, self.connections)
        fresh = True
        try:
            while True:
                self._idle.add(writer)
                try:
                    first = await reader.readexactly(1)
                finally:
                    self._idle.discard(writer)
                first_at = time.time()
                head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
                keep = await self._request(reader, writer, head, fresh, first_at)
                fresh = False
                if not keep:
                    break
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            TimeoutError,
            ValueError,
        ):
            pass
        finally:
            self.connections -= 1
            self._writers.discard(writer)
            self._handlers.discard(task)
            if not writer.transport.is_closing():
                writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _request(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: bytes,
        fresh: bool,
        started: float,
    ) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif n := int(headers.get("content-length", "0")):
            await reader.readexactly(n)
        self.requests += 1
        keep_alive = headers.get("connection", "").lower() != "close"
        name = headers.get("x-appengine-taskname")
        if path.startswith(REDIRECTED):
            self.redirect_hits.append(path)
            return await _answer(writer, 200, keep_alive=keep_alive)
        if name is None:
            self.strays.append(f"{method} {path}")
            return await _answer(writer, 200, keep_alive=keep_alive)
        seen = self.arrivals.setdefault(name, [])
        plan = self.plans.get(name, [])
        if len(seen) < len(plan):
            action = plan[len(seen)]
        else:
            self.beyond_plan.append(name)
            action = OK
        arrival = Arrival(
            task=name,
            index=len(seen),
            method=method,
            path=path,
            headers=headers,
            action=action,
            started=started,
            fresh_connection=fresh,
        )
        seen.append(arrival)
        try:
            return await self._play(reader, writer, arrival, keep_alive)
        finally:
            if not arrival.ended:
                arrival.ended = time.time()
            if not arrival.decided:
                arrival.decided = arrival.ended

    async def _play(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        arrival: Arrival,
        keep_alive: bool,
    ) -> bool:
        action = arrival.action
        kind = action.kind
        assert action.status is not None or kind in (
            "reset_before",
            "reset_mid",
            "hang",
            "slow_headers",
        )
        if kind == "status":
            assert action.status is not None
            if action.delay_s:
                await asyncio.sleep(action.delay_s)  # a slow handler
            return await _answer(writer, action.status, keep_alive=keep_alive)
        if kind == "redirect":
            assert action.status is not None
            location = f"{self.url}{REDIRECTED}{arrival.task}"
            return await _answer(
                writer, action.status, {"Location": location}, keep_alive=keep_alive
            )
        if kind in ("retry_after", "retry_after_date"):
            assert action.status is not None
            now = time.time()
            if kind == "retry_after":
                value = str(action.retry_after_s)
                arrival.not_before = now + action.retry_after_s
            else:
                when = int(now) + action.retry_after_s  # HTTP dates have whole seconds
                value = email.utils.formatdate(when, usegmt=True)
                arrival.not_before = float(when)
            return await _answer(
                writer, action.status, {"Retry-After": value}, keep_alive=keep_alive
            )
        if kind == "reset_before":
            writer.transport.abort()
            arrival.ended = time.time()
            return False
        if kind == "reset_mid":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/pl")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.transport.abort()
            arrival.ended = time.time()
            return False
        if kind == "hang":
            arrival.client_left_early = await _client_leaves(reader, MAX_HANG_S)
            arrival.ended = time.time()
            writer.transport.abort()
            return False
        if kind == "slow_headers":
            raw = _response_bytes(200, {}, keep_alive=False)
            for i in range(len(raw)):
                writer.write(raw[i : i + 1])
                try:
                    await writer.drain()
                except ConnectionError:
                    arrival.client_left_early = True
                    break
                if await _client_leaves(reader, action.interval_s):
                    arrival.client_left_early = True
                    break
            arrival.ended = time.time()
            writer.transport.abort()
            return False
        if kind == "trickle":
            assert action.status is not None
            chunks = max(1, round(action.body_s / action.interval_s))
            body = b"x" * chunks
            writer.write(_response_bytes(action.status, {}, keep_alive=False, length=len(body)))
            for i in range(chunks):
                writer.write(body[i : i + 1])
                try:
                    await writer.drain()
                except ConnectionError:
                    arrival.client_left_early = True
                    break
                if i == 0:
                    arrival.decided = time.time()
                if i < chunks - 1 and await _client_leaves(reader, action.interval_s):
                    arrival.client_left_early = True
                    break
            arrival.ended = time.time()
            writer.close()
            return False
        raise AssertionError(f"unknown action {action!r}")


async def _client_leaves(reader: asyncio.StreamReader, within_s: float) -> bool:
    """Wait up to ``within_s`` for the client to close its side; whether it did."""
    try:
        return await asyncio.wait_for(reader.read(1), within_s) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def _response_bytes(
    status: int, headers: dict[str, str], *, keep_alive: bool, length: int | None = None
) -> bytes:
    if status in (204, 304):  # no body, no length (RFC 9110 15.3.5, 15.4.5)
        body, lines = b"", [f"HTTP/1.1 {status} X"]
    else:
        body = b"" if length is not None else b"fault receiver\n"
        size = len(body) if length is None else length
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {size}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _answer(
    writer: asyncio.StreamWriter,
    status: int,
    headers: dict[str, str] | None = None,
    *,
    keep_alive: bool,
) -> bool:
    writer.write(_response_bytes(status, headers or {}, keep_alive=keep_alive))
    await writer.drain()
    return keep_alive
