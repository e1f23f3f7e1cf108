"""What every benchmark scenario shares: child processes, progress lines, HTTP helpers, tables.

Children are started with ``PR_SET_PDEATHSIG`` so they die with the benchmark even when it is
killed without cleaning up; :func:`running` stops them (SIGTERM, then SIGKILL) on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

# Re-exported: scenarios call harness.free_port() (and tests patch it there).
from tests.processes import die_with_parent as die_with_parent
from tests.processes import free_port as free_port
from tests.processes import tail as tail

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0  # a subprocess must be listening by then
STOP_TIMEOUT_S = 10.0  # SIGTERM, then SIGKILL after this
CLK_TCK = os.sysconf("SC_CLK_TCK")
LISTENING = re.compile(r"\blistening\b.*\burl=(\S+)")

T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {message}", flush=True)


# ------------------------------------------------------------------ processes


def cpu_s(pid: int) -> float:
    """User + system CPU seconds used by ``pid`` so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


@dataclass
class Child:
    """A subprocess started by the benchmark, killed by :meth:`stop` whatever happens."""

    name: str
    proc: asyncio.subprocess.Process
    log: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            say(f"{self.name} ignored SIGTERM for {STOP_TIMEOUT_S:g}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def spawn(name: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> Child:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            preexec_fn=die_with_parent,
        )
    return Child(name, proc, log)


async def _wait_listening(child: Child) -> str:
    """The ``url=`` of the child's ``listening`` line; the log is a file, so nothing blocks."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in child.log.read_text(errors="replace").splitlines():
            if m := LISTENING.search(line):
                return m.group(1)
        if child.proc.returncode is not None:
            break
        await asyncio.sleep(0.02)
    tail = child.log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{child.name} did not start within {START_TIMEOUT_S:g}s:\n{tail}")


@contextlib.asynccontextmanager
async def running(
    name: str, args: list[str], log: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Child]:
    child = await spawn(name, args, log, env)
    try:
        child.url = await _wait_listening(child)
        yield child
    finally:
        await child.stop()


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as resp:
        resp.raise_for_status()
        return await resp.json()


async def post_json(session: aiohttp.ClientSession, url: str, body: object = None) -> Any:
    async with session.post(url, json=body) as resp:
        text = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"POST {url} answered {resp.status}: {text[:500]}")
        return json.loads(text)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ------------------------------------------------------------------ progress


class Progress:
    """A progress bar on a terminal (one line, redrawn), else a line every few seconds.

    ``with Progress("delivering", total=50_000) as bar: bar.update(done)``; anything that may
    take more than a few seconds shows one, so a long run never looks hung.
    """

    WIDTH = 30
    LINE_EVERY_S = 5.0

    def __init__(self, label: str, total: int, unit: str = "tasks") -> None:
        self.label, self.total, self.unit = label, max(total, 1), unit
        self.done = 0
        self._tty = sys.stderr.isatty()
        self._start = time.monotonic()
        self._last_line = self._start

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self._tty:
            self._draw(now, end="\r")
        elif now - self._last_line >= self.LINE_EVERY_S:
            self._last_line = now
            self._draw(now, end="\n")

    def _draw(self, now: float, end: str) -> None:
        share = min(self.done / self.total, 1.0)
        filled = int(share * self.WIDTH)
        elapsed = now - self._start
        speed = self.done / elapsed if elapsed > 0 else 0.0
        bar = "#" * filled + "." * (self.WIDTH - filled)
        sys.stderr.write(
            f"  {self.label} [{bar}] {self.done:,}/{self.total:,} {self.unit} "
            f"{100 * share:5.1f}% {speed:,.0f}/s {elapsed:5.1f}s  {end}"
        )
        sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tty:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


# ------------------------------------------------------------------ pushd daemons

QUEUE = "bench"
PAYLOAD = "x" * 32  # the body of every request and task: small on purpose


def pushd_args(run_dir: Path, target: str, db: str | None = None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pushd",
        "serve",
        "--config",
        str(run_dir / "queue.yaml"),
        "--settings",
        str(run_dir / "pushd.yaml"),
        "--db",
        db or str(run_dir / "pushd.sqlite3"),
        "--port",
        "0",
        "--default-target",
        target,
    ]


def pushd(
    run_dir: Path,
    *,
    queue_yaml: str,
    settings_yaml: str,
    target: str,
    label: str = "pushd",
    db: str | None = None,
) -> contextlib.AbstractAsyncContextManager[Child]:
    """A ``pushd serve`` on a SQLite file in ``run_dir`` (reused if it exists: a restart), or
    on ``db`` (a ``postgresql://`` URL, which several daemons with run dirs of their own may
    share)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "queue.yaml").write_text(queue_yaml)
    (run_dir / "pushd.yaml").write_text(settings_yaml)
    log = run_dir / f"{label}-{int(time.monotonic() * 1000)}.log"
    return running(label, pushd_args(run_dir, target, db), log)


def push_queue_yaml(
    name: str = QUEUE,
    *,
    rate: str = "100000/s",
    bucket_size: int = 10000,
    max_concurrent_requests: int | None = None,
    extra: str = "",
) -> str:
    """One ``- name:`` entry of queue.yaml (without the ``queue:`` line)."""
    lines = [f"- name: {name}", f"  rate: {rate}", f"  bucket_size: {bucket_size}"]
    if max_concurrent_requests is not None:
        lines.append(f"  max_concurrent_requests: {max_concurrent_requests}")
    return "\n".join(lines) + "\n" + extra


def settings_yaml(
    max_connections: int = 64, durability: str = "full", transport: str | None = None
) -> str:
    """A daemon's settings; ``transport`` None: pushd's default (the first of TRANSPORTS)."""
    from pushd import settings  # the daemon's own list, so a new default is measured

    chosen = transport or settings.TRANSPORTS[0]
    return f"max_connections: {max_connections}\ndurability: {durability}\ntransport: {chosen}\n"


async def add_tasks(
    session: aiohttp.ClientSession,
    api: str,
    tasks: list[dict[str, Any]],
    *,
    queue: str = QUEUE,
    posters: int = 8,
    batch: int = 100,
    progress: Progress | None = None,
    deadline: float | None = None,
) -> int:
    """Add ``tasks`` (native API bodies) in batches with ``posters`` in parallel; how many added.

    With a ``deadline`` (``time.monotonic()``), posters take no new batch after it.
    """
    chunks = (tasks[i : i + batch] for i in range(0, len(tasks), batch))
    return await add_chunks(
        session, api, chunks, queue=queue, posters=posters, progress=progress, deadline=deadline
    )


async def add_chunks(
    session: aiohttp.ClientSession,
    api: str,
    chunks: Iterator[list[dict[str, Any]]],
    *,
    queue: str = QUEUE,
    posters: int = 8,
    progress: Progress | None = None,
    deadline: float | None = None,
) -> int:
    """POST each chunk of tasks (one add call each) with ``posters`` sharing the iterator, so
    a generator can stream a million tasks without holding them; how many were added."""
    url = f"{api}/api/v1/queues/{queue}/tasks"
    added = 0

    async def poster() -> None:
        nonlocal added
        for chunk in chunks:
            answer = await post_json(session, url, {"tasks": chunk})
            bad = [t["result"] for t in answer["tasks"] if t["result"] != "OK"]
            if bad:
                raise RuntimeError(f"add refused {len(bad)} tasks, e.g. {bad[0]}")
            added += len(chunk)
            if progress is not None:
                progress.update(added)
            if deadline is not None and time.monotonic() > deadline:
                return

    await asyncio.gather(*(poster() for _ in range(posters)))
    return added


async def queue_stats(session: aiohttp.ClientSession, api: str, queue: str = QUEUE) -> Any:
    return (await get_json(session, f"{api}/api/v1/queues/{queue}"))["stats"]


async def wait_empty(
    session: aiohttp.ClientSession, api: str, timeout_s: float, queue: str = QUEUE
) -> None:
    deadline = time.monotonic() + timeout_s
    while (left := (await queue_stats(session, api, queue))["tasks"]) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{left} tasks still stored in {queue} after {timeout_s:g}s")
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ the raw aiohttp ceiling


async def raw_posts(
    url_for: Any,
    n: int,
    concurrency: int,
    *,
    body: bytes = PAYLOAD.encode(),
    headers_for: Any = None,
    progress: Progress | None = None,
) -> tuple[float, float]:
    """The ceiling: ``n`` POSTs, ``concurrency`` in flight, one keep-alive session.

    ``url_for(i)`` and ``headers_for(i)`` build each request. Returns (wall seconds, client CPU
    seconds). A warm-up of ``concurrency`` requests opens the connections first.
    """
    counter = iter(range(n))
    warm = itertools.count()

    async def worker(session: aiohttp.ClientSession, numbers: Any, total: int | None) -> None:
        for i in numbers:
            if total is not None and i >= total:
                return
            headers = headers_for(i) if headers_for else None
            async with session.post(url_for(i), data=body, headers=headers) as resp:
                await resp.read()
            if progress is not None and total is None:
                progress.update(i + 1)

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, warm, concurrency) for _ in range(concurrency)))
        cpu, start = time.process_time(), time.monotonic()
        await asyncio.gather(*(worker(session, counter, None) for _ in range(concurrency)))
        return time.monotonic() - start, time.process_time() - cpu


def span_rate(times: list[float]) -> float:
    """Arrivals per second from the first to the last of ``times``."""
    if len(times) < 2:
        return 0.0
    return rate(len(times) - 1, max(times) - min(times))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[min(int(rank), len(ordered)) - 1]
