"""Campaign: slow and hostile clients and receivers (docs/RELIABILITY.md, "Operator events").

The real daemon, its open-file limit lowered with ``prlimit`` once it runs, against:

- a slowloris: ``ATTACKERS`` connections to the API port that send half a request head and
  wait, reconnecting whenever the daemon closes them, while a legitimate client adds tasks and
  reads its queue, and tasks come due;
- a shortage of open files in the middle of deliveries (a slow receiver holds every file the
  limit leaves), which must not be charged to the tasks;
- a receiver streaming ``HTTP/1.1 100 Continue`` answers without end, under which the daemon's
  peak memory (``VmHWM``) must stay small;
- malformed HTTP on the API port, which must not flood the log with tracebacks.

Figures (latencies, connections, files, memory) are printed; see docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import statistics
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.integration.harness import Daemon, Receiver, api
from tests.reliability.conftest import scale

pytestmark = pytest.mark.timeout(scale(60, 600))

ATTACKERS = scale(1000, 1000)
ATTACK_S = scale(4.0, 60.0)  # how long the slowloris lasts
FILE_LIMIT = 512  # the daemon's open files during the slowloris (soft and hard)
READ_TIMEOUT_S = 2.0  # api_read_timeout_s: how long a half-open head may stay
HALF_HEAD = b"POST /api/v1/queues/work/tasks HTTP/1.1\r\nHost: pushd\r\nX-Slow: "
QUEUE_YAML = """
queue:
- name: work
  rate: 500/s
  bucket_size: 100
  retry_parameters:
    task_retry_limit: 2
    min_backoff_seconds: 0.1
    max_backoff_seconds: 0.2
"""


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")


def _limit_files(d: Daemon, limit: int) -> None:
    assert d.proc is not None
    resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))


async def _start(tmp: Path, target: str, **env: str) -> Daemon:
    env = {"PUSHD_API_READ_TIMEOUT_S": str(READ_TIMEOUT_S), **env}
    return await Daemon(tmp, QUEUE_YAML, default_target=target, env=env).start()


async def _add(
    session: aiohttp.ClientSession, d: Daemon, names: list[str], countdown: float = 0
) -> int:
    tasks = [{"name": n, "url": "/hook", "countdown": countdown} for n in names]
    status, body = await api(session, d, "POST", "/api/v1/queues/work/tasks", json={"tasks": tasks})
    assert status == 200, body
    return status


async def _patiently(
    session: aiohttp.ClientSession,
    d: Daemon,
    method: str,
    path: str,
    refused: Counter[str],
    **kw: object,
) -> int:
    """An API call by a client that tries again after a 503 ``Retry-After`` (the daemon
    refused the connection at its cap) or a connection closed before the answer (the daemon
    took it for the quietest slow client in a burst); its final status."""
    status = 0
    for _ in range(10):
        try:
            status, body = await api(session, d, method, path, **kw)
        except aiohttp.ClientConnectionError:
            refused["closed"] += 1
            continue
        if status != 503:
            return status
        assert "too many connections" in str(body), body
        refused["503"] += 1
        await asyncio.sleep(1.0)  # Retry-After: 1
    return status


class Slowloris:
    """``count`` connections holding half a request head open, each reconnecting a second
    after the daemon closes it, until :meth:`stop`."""

    def __init__(self, url: str, count: int) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.count = count
        self.stats: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._tried = 0
        #: Set once every connection has been tried once (opened, or failed to).
        self.established = asyncio.Event()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._hold()) for _ in range(self.count)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _tried_once(self, first: bool) -> None:
        if first:
            self._tried += 1
            if self._tried == self.count:
                self.established.set()

    async def _hold(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), 5.0
                )
            except (OSError, TimeoutError):
                self.stats["connect_failed"] += 1
                self._tried_once(first)
                first = False
                await self._pause(1.0)
                continue
            self.stats["opened"] += 1
            self._tried_once(first)
            first = False
            writer.write(HALF_HEAD)
            read = asyncio.ensure_future(reader.read(65536))
            stop = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if read.done():
                self.stats["closed_by_daemon"] += 1
                with contextlib.suppress(Exception):
                    if read.result().startswith(b"HTTP/1.1 503"):
                        self.stats["refused_503"] += 1
            else:
                read.cancel()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            await self._pause(random.uniform(0.5, 1.5))


@pytest.mark.usefixtures("each_transport")  # deliveries: on h1 and on aiohttp
async def test_half_open_heads_keep_neither_the_api_nor_deliveries_waiting(
    tmp_path: Path, receiver: Receiver
) -> None:
    """1,000 half-open heads on a daemon limited to 512 open files: every API call of a
    legitimate client is answered, every due task is delivered on its first attempt."""
    d = await _start(tmp_path, receiver.url)
    try:
        _limit_files(d, FILE_LIMIT)
        early = [f"early-{i}" for i in range(scale(50, 200))]
        async with aiohttp.ClientSession() as s:
            await _add(s, d, early, countdown=1.5)  # due while the attack runs
        attack = Slowloris(d.url, ATTACKERS)
        latencies: list[float] = []
        files: list[int] = []
        late: list[str] = []
        refused: Counter[str] = Counter()  # 503 answers the client waited out
        attack.start()
        try:
            await asyncio.wait_for(attack.established.wait(), 30)
            ends = time.monotonic() + ATTACK_S
            while time.monotonic() < ends:
                files.append(_open_files(d.proc.pid))  # type: ignore[union-attr]
                names = [f"late-{len(late)}"]
                began = time.monotonic()
                # A new client each time: it must get a connection, not reuse one.
                timeout = aiohttp.ClientTimeout(total=20)
                tasks = [{"name": n, "url": "/hook"} for n in names]
                async with aiohttp.ClientSession(timeout=timeout) as s:
                    add = "/api/v1/queues/work/tasks"
                    status = await _patiently(s, d, "POST", add, refused, json={"tasks": tasks})
                    assert status == 200
                    status = await _patiently(s, d, "GET", "/api/v1/queues/work", refused)
                    assert status == 200
                latencies.append(time.monotonic() - began)
                late += names
        finally:
            await attack.stop()
        delivered = await receiver.wait_for(len(early) + len(late))
        latencies.sort()
        print(
            f"\nslowloris: {ATTACKERS} attackers, {attack.stats}, daemon files max "
            f"{max(files)} of {FILE_LIMIT}; {len(latencies)} client rounds (add + get), "
            f"latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms, "
            f"max {latencies[-1] * 1000:.0f} ms; calls tried again: {dict(refused)}"
        )
        retry_counts = Counter(x.headers["X-AppEngine-TaskRetryCount"] for x in delivered)
        assert retry_counts == Counter({"0": len(early) + len(late)})
        assert sorted(x.headers["X-AppEngine-TaskName"] for x in delivered) == sorted(early + late)
        assert attack.stats["closed_by_daemon"] > 0  # half-open heads do not stay
        assert d.events("api_connections_full")  # the cap was reached, not a larger limit
        assert not d.events("task_retry")
        assert not d.events("task_dead_lettered")
        assert not [line for line in d.log if "Too many open files" in line]
    finally:
        await d.kill()


@pytest.mark.usefixtures("each_transport")  # deliveries: on h1 and on aiohttp
async def test_running_out_of_files_is_not_charged_to_tasks(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Deliveries that fail with EMFILE never left: the tasks are delivered later, each once,
    with retry count 0, never dead-lettered (their retry limit is 2)."""
    receiver.delay_s = 0.3  # each delivery holds its connection (and file) a while
    d = await _start(tmp_path, receiver.url)
    try:
        names = [f"t{i}" for i in range(scale(40, 400))]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            await _add(s, d, names, countdown=1.0)
            assert d.proc is not None
            # Room for a few deliveries at once; the rest hit the limit (EMFILE).
            _limit_files(d, _open_files(d.proc.pid) + 8)
            delivered = await receiver.wait_for(len(names), timeout_s=scale(40, 200))
        print(
            f"\nout of files: {len(names)} tasks, {len(d.events('delivery_local_failure'))} "
            f"local-failure lines logged, peak in flight {receiver.max_in_flight}"
        )
        assert d.events("delivery_local_failure")  # the limit was hit
        assert Counter(x.headers["X-AppEngine-TaskRetryCount"] for x in delivered) == Counter(
            {"0": len(names)}
        )
        assert sorted(x.headers["X-AppEngine-TaskName"] for x in delivered) == sorted(names)
        assert not d.events("task_dead_lettered")
    finally:
        await d.kill()


class EndlessContinue:
    """A receiver answering every request with ``100 Continue`` lines, without end."""

    CHUNK = b"HTTP/1.1 100 Continue\r\n\r\n" * 2048

    def __init__(self) -> None:
        self.url = ""
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> EndlessContinue:
        self._server = await asyncio.start_server(self._stream, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            while True:
                writer.write(self.CHUNK)
                await writer.drain()
        self._writers.discard(writer)
        writer.close()


@pytest.mark.usefixtures("each_transport")  # deliveries: on h1 and on aiohttp
async def test_endless_100_continue_keeps_memory_small(tmp_path: Path) -> None:
    """Every attempt against a receiver streaming ``100 Continue`` fails after a bounded read;
    the daemon's peak memory grows by less than 16 MiB over all of them."""
    rx = await EndlessContinue().start()
    tasks = scale(4, 20)
    env = {"PUSHD_DEFAULT_DISPATCH_DEADLINE_S": "2"}
    d = await _start(tmp_path, rx.url, **env)
    try:
        assert d.proc is not None
        before = _peak_rss_kib(d.proc.pid)
        async with aiohttp.ClientSession() as s:
            await _add(s, d, [f"c{i}" for i in range(tasks)])
        dead = await d.wait_event("task_dead_lettered", tasks, timeout_s=scale(40, 120))
        peak = _peak_rss_kib(d.proc.pid)
        print(
            f"\n100 Continue: {rx.requests} attempts, daemon peak RSS {before // 1024} -> "
            f"{peak // 1024} MiB"
        )
        assert rx.requests == tasks * 3  # task_retry_limit 2: three attempts each
        assert all("more than 65536 bytes" in line for line in dead), dead
        assert peak - before < 16 * 1024
    finally:
        await d.kill()
        await rx.stop()


async def test_malformed_http_is_logged_one_line_at_a_time_and_never_floods(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Hundreds of malformed requests: each answered 400, no traceback, at most ten
    ``http_bad_request`` lines per ten seconds."""
    d = await _start(tmp_path, receiver.url)
    try:
        host, port = d.url.removeprefix("http://").rsplit(":", 1)
        count = scale(200, 2000)
        began = time.monotonic()
        answers: Counter[bytes] = Counter()  # status codes
        for i in range(count):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: pushd\r\nNo colon here %d\r\n\r\n" % i)
            answers[(await reader.read(12))[9:]] += 1
            writer.close()
            await writer.wait_closed()
        elapsed = time.monotonic() - began
        # One event after the malformed ones: once it is read, every line before it is.
        async with aiohttp.ClientSession() as s:
            status, _ = await api(s, d, "POST", "/api/v1/queues/work/pause")
            assert status == 200
        await d.wait_event("queue_paused")
        bad = d.events("http_bad_request")
        print(f"\nmalformed HTTP: {count} requests in {elapsed:.1f} s, {len(bad)} lines logged")
        assert answers == Counter({b"400": count})
        assert not [line for line in d.log if "Traceback" in line or "Error handling" in line]
        assert 1 <= len(bad) <= 10 * (int(elapsed // 10) + 1)
        assert "peer=127.0.0.1" in bad[0]
        assert "error=" in bad[0]
    finally:
        await d.kill()
