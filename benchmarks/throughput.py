"""pushd throughput against a raw aiohttp baseline, in one run, against one receiver.

Phases (each prints progress lines; the end prints a table and the ratios, and writes
``benchmarks/results/latest.json``):

1. baseline  the raw aiohttp client (one ClientSession, keep-alive, a connection limit equal to
             the concurrency) POSTs ``--n`` small requests to the receiver with 64 and 256 in
             flight: the ceiling a Python dispatcher can reach on this machine.
2. pushd     per variant, a fresh ``pushd serve`` on a temp SQLite file, with one queue at
             ``rate: 100000/s, bucket_size: 10000`` and ``max_connections`` equal to the
             concurrency: pause the queue, add ``--n`` tasks in batches of 100 (half from one
             poster, half from 8 concurrent posters: the enqueue rates), resume, and time first
             to last delivery at the receiver (deliveries/s) and resume to ``stats.tasks == 0``
             (end to end).
3. idle      a fresh daemon fills up with tasks due in one day (batches of 100, 8 posters); at
             10k and at 200k queued tasks it measures the daemon's CPU time over a 5 s idle
             window (/proc/PID/stat) and its resident memory (/proc/PID/status VmRSS).

The receiver (:mod:`benchmarks.receiver`) runs in its own process so it never shares the
interpreter of the client being measured. Everything listens on 127.0.0.1 only, every count
and wait is bounded, and every subprocess is killed on the way out, even after an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite

from benchmarks.harness import (
    T0,
    Child,
    cpu_s,
    get_json,
    memory_kib,
    post_json,
    rate,
    running,
    say,
    table,
)

EPILOG = """\
examples:
  make bench                                        # the full run (~1.5 min here, 3 at most)
  .venv/bin/python -m benchmarks.throughput         # the same
  .venv/bin/python -m benchmarks.throughput --quick # a smoke run in ~30 s: small N, small backlog
  .venv/bin/python -m benchmarks.throughput --n 50000 --skip-idle
  .venv/bin/python -m benchmarks.throughput --concurrency 64 --variants c64,c64-mcr64
  .venv/bin/python -m benchmarks.throughput --idle-backlog 50000 --json /tmp/bench.json
  .venv/bin/python -m benchmarks.throughput --skip-baseline --skip-pushd --budget-s 400
                                                    # idle phase only, time to reach 200k
  make bench BENCH_ARGS="--quick --skip-idle"
"""

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
QUEUE = "bench"
BATCH = 100  # tasks per add call: App Engine's (and pushd's) maximum
POSTERS = 8  # concurrent batch posters for the "concurrent" enqueue rate and the idle backlog
PAYLOAD = "x" * 32  # the body of every request and task: small on purpose
DELIVERY_TIMEOUT_S = 120.0  # the most one pushd variant may take to deliver --n tasks
DRAIN_TIMEOUT_S = 30.0  # after the last delivery, the most until stats.tasks reaches 0
POLL_S = 0.05  # how often the receiver's and the daemon's stats are read while waiting
SETTLE_S = 1.0  # quiet time after adding the idle backlog, before the CPU window
COUNTDOWN_S = 86400  # the idle backlog's tasks are due in one day
DEFAULT_BUDGET_S = 180.0  # the idle phase stops adding backlog when the run nears this


def receiver(tmp: Path) -> contextlib.AbstractAsyncContextManager[Child]:
    args = [sys.executable, "-m", "benchmarks.receiver", "--port", "0"]
    return running("receiver", args, tmp / "receiver.log")


@dataclass(frozen=True)
class Variant:
    """One pushd configuration measured in phase 2."""

    label: str
    max_connections: int
    max_concurrent_requests: int | None = None
    durability: str = "full"

    def queue_yaml(self) -> str:
        lines = ["queue:", f"- name: {QUEUE}", "  rate: 100000/s", "  bucket_size: 10000"]
        if self.max_concurrent_requests is not None:
            lines.append(f"  max_concurrent_requests: {self.max_concurrent_requests}")
        return "\n".join(lines) + "\n"

    def settings_yaml(self) -> str:
        return f"max_connections: {self.max_connections}\ndurability: {self.durability}\n"


def daemon(
    tmp: Path, variant: Variant, target: str
) -> contextlib.AbstractAsyncContextManager[Child]:
    run_dir = tmp / variant.label
    run_dir.mkdir()
    (run_dir / "queue.yaml").write_text(variant.queue_yaml())
    (run_dir / "pushd.yaml").write_text(variant.settings_yaml())
    args = [
        sys.executable,
        "-m",
        "pushd",
        "serve",
        "--config",
        str(run_dir / "queue.yaml"),
        "--settings",
        str(run_dir / "pushd.yaml"),
        "--db",
        str(run_dir / "pushd.sqlite3"),
        "--port",
        "0",
        "--default-target",
        target,
    ]
    return running(f"pushd[{variant.label}]", args, run_dir / "pushd.log")


# ------------------------------------------------------------------ HTTP helpers


async def reset_receiver(session: aiohttp.ClientSession, sink: Child) -> None:
    await post_json(session, sink.url + "/_reset")


async def wait_received(
    session: aiohttp.ClientSession, sink: Child, count: int, timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        stats: dict[str, Any] = await get_json(session, sink.url + "/stats")
        if stats["count"] >= count:
            return stats
        if time.monotonic() > deadline:
            raise RuntimeError(f"the receiver got {stats['count']} of {count} in {timeout_s:g}s")
        await asyncio.sleep(POLL_S)


def span_rate(stats: dict[str, Any]) -> float:
    """Requests per second at the receiver, first to last arrival."""
    if stats["count"] < 2 or stats["first"] is None:
        return 0.0
    return rate(stats["count"] - 1, stats["last"] - stats["first"])


# ------------------------------------------------------------------ calibration


async def thread_hop_us(rounds: int = 2000) -> dict[str, float]:
    """Round trips of ``SELECT 1`` through aiosqlite (event loop -> its thread -> loop), in µs.

    pushd's SQLite store pays one such hop per statement, and what one costs depends on how
    fast an idle vCPU wakes up, which on a shared VM varies several-fold between runs; this
    number travels with the results so runs can be told apart.
    """
    async with aiosqlite.connect(":memory:") as conn:
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            await conn.execute("SELECT 1")
            samples.append(time.perf_counter() - start)
    samples.sort()
    return {
        "p50": round(1e6 * samples[len(samples) // 2], 1),
        "p90": round(1e6 * samples[len(samples) * 9 // 10], 1),
    }


# ------------------------------------------------------------------ phase 1: baseline


async def baseline(sink: Child, n: int, concurrency: int) -> dict[str, Any]:
    """Raw aiohttp: ``n`` POSTs with ``concurrency`` in flight over one keep-alive session."""
    counter = itertools.count()
    url = sink.url + "/baseline"

    async def worker(session: aiohttp.ClientSession, total: int) -> None:
        while (i := next(counter)) < total:
            headers = {"X-AppEngine-TaskName": f"raw-{i}", "X-AppEngine-QueueName": QUEUE}
            async with session.post(url, data=PAYLOAD, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"the receiver answered {resp.status}")

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm up: open the connections (and let the receiver's loop settle), then measure.
        warmup = min(n, max(2 * concurrency, 1000))
        await asyncio.gather(*(worker(session, warmup) for _ in range(concurrency)))
        await reset_receiver(session, sink)
        counter = itertools.count()
        sink_cpu, own_cpu, start = cpu_s(sink.pid), time.process_time(), time.monotonic()
        await asyncio.gather(*(worker(session, n) for _ in range(concurrency)))
        wall = time.monotonic() - start
        own = time.process_time() - own_cpu
        sink_used = cpu_s(sink.pid) - sink_cpu
        stats = await wait_received(session, sink, n, 10.0)
    result = {
        "concurrency": concurrency,
        "n": n,
        "client_wall_s": round(wall, 3),
        "client_req_per_s": round(rate(n, wall), 1),
        "receiver_req_per_s": round(span_rate(stats), 1),
        "received": stats["count"],
        "client_cpu_pct": round(100 * rate(own, wall), 1),
        "receiver_cpu_pct": round(100 * rate(sink_used, wall), 1),
    }
    say(
        f"baseline c={concurrency}: {result['receiver_req_per_s']:,.0f} req/s at the receiver "
        f"({result['client_req_per_s']:,.0f}/s client wall), client CPU "
        f"{result['client_cpu_pct']}%, receiver CPU {result['receiver_cpu_pct']}%"
    )
    return result


# ------------------------------------------------------------------ adding tasks


def batches(prefix: str, start: int, stop: int, countdown_s: float | None) -> Iterator[Any]:
    for first in range(start, stop, BATCH):
        tasks = []
        for i in range(first, min(first + BATCH, stop)):
            task: dict[str, Any] = {"name": f"{prefix}-{i}", "payload": PAYLOAD}
            if countdown_s is not None:
                task["countdown"] = countdown_s
            tasks.append(task)
        yield {"tasks": tasks}


async def enqueue(
    session: aiohttp.ClientSession,
    api: str,
    bodies: Iterator[Any],
    *,
    posters: int,
    deadline: float | None = None,
) -> int:
    """POST every batch with ``posters`` concurrent posters; the number of tasks accepted.

    With a ``deadline`` (a ``time.monotonic()`` value) posters stop taking new batches then.
    """
    url = f"{api}/api/v1/queues/{QUEUE}/tasks"
    accepted = 0

    async def poster() -> None:
        nonlocal accepted
        for body in bodies:  # one shared iterator: each batch is posted once
            answer = await post_json(session, url, body)
            results = [t["result"] for t in answer["tasks"]]
            bad = [r for r in results if r != "OK"]
            if bad:
                raise RuntimeError(f"add refused {len(bad)} tasks, e.g. {bad[0]}")
            accepted += len(results)
            if deadline is not None and time.monotonic() > deadline:
                return

    await asyncio.gather(*(poster() for _ in range(posters)))
    return accepted


async def queue_tasks(session: aiohttp.ClientSession, api: str) -> int:
    stats = await get_json(session, f"{api}/api/v1/queues/{QUEUE}")
    return int(stats["stats"]["tasks"])


# ------------------------------------------------------------------ phase 2: pushd


async def pushd_run(
    session: aiohttp.ClientSession, tmp: Path, sink: Child, variant: Variant, n: int
) -> dict[str, Any]:
    async with daemon(tmp, variant, sink.url) as pushd:
        api = pushd.url
        await post_json(session, f"{api}/api/v1/queues/{QUEUE}/pause")
        half = n // 2
        start = time.monotonic()
        added = await enqueue(session, api, batches(variant.label, 0, half, None), posters=1)
        sequential_s = time.monotonic() - start
        start = time.monotonic()
        added += await enqueue(session, api, batches(variant.label, half, n, None), posters=POSTERS)
        concurrent_s = time.monotonic() - start
        queued = await queue_tasks(session, api)
        if added != n or queued != n:
            raise RuntimeError(f"{variant.label}: added {added}, queued {queued}, wanted {n}")
        say(
            f"pushd[{variant.label}] enqueued {n:,}: "
            f"{rate(half, sequential_s):,.0f} tasks/s sequential, "
            f"{rate(n - half, concurrent_s):,.0f} tasks/s with {POSTERS} posters"
        )
        await reset_receiver(session, sink)
        daemon_cpu, sink_cpu = cpu_s(pushd.pid), cpu_s(sink.pid)
        resumed = time.monotonic()
        await post_json(session, f"{api}/api/v1/queues/{QUEUE}/resume")
        stats = await wait_received(session, sink, n, DELIVERY_TIMEOUT_S)
        delivered_at = time.monotonic()
        daemon_used, sink_used = cpu_s(pushd.pid) - daemon_cpu, cpu_s(sink.pid) - sink_cpu
        while (left := await queue_tasks(session, api)) > 0:
            if time.monotonic() - delivered_at > DRAIN_TIMEOUT_S:
                raise RuntimeError(f"{variant.label}: {left} tasks still queued after delivery")
            await asyncio.sleep(POLL_S)
        drained = time.monotonic()
        await asyncio.sleep(2 * POLL_S)  # any late duplicate shows in the final count
        final = await get_json(session, sink.url + "/stats")
        memory = memory_kib(pushd.pid)
        deliver_s = delivered_at - resumed
    result = {
        "label": variant.label,
        "max_connections": variant.max_connections,
        "max_concurrent_requests": variant.max_concurrent_requests,
        "durability": variant.durability,
        "n": n,
        "enqueue_sequential_tasks_per_s": round(rate(half, sequential_s), 1),
        "enqueue_concurrent_tasks_per_s": round(rate(n - half, concurrent_s), 1),
        "deliveries_per_s": round(span_rate(stats), 1),
        "first_delivery_after_resume_s": round(stats["first"] - resumed, 4),
        "end_to_end_s": round(drained - resumed, 3),
        "end_to_end_tasks_per_s": round(rate(n, drained - resumed), 1),
        "received": final["count"],
        "distinct": final["distinct"],
        "duplicates": final["count"] - final["distinct"],
        "daemon_cpu_pct": round(100 * rate(daemon_used, deliver_s), 1),
        "receiver_cpu_pct": round(100 * rate(sink_used, deliver_s), 1),
        "daemon_peak_rss_mib": round(memory.get("VmHWM", 0) / 1024, 1),
    }
    say(
        f"pushd[{variant.label}] delivered {n:,}: {result['deliveries_per_s']:,.0f}/s first to "
        f"last, resume to empty {result['end_to_end_s']}s "
        f"({result['end_to_end_tasks_per_s']:,.0f}/s); daemon CPU {result['daemon_cpu_pct']}%, "
        f"receiver CPU {result['receiver_cpu_pct']}%; duplicates {result['duplicates']}"
    )
    return result


# ------------------------------------------------------------------ phase 3: idle


def schedstat(pid: int) -> tuple[int, int]:
    """CPU nanoseconds and timeslices (roughly: wake-ups) of all of ``pid``'s threads so far."""
    ns = slices = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread may end meanwhile
            run_ns, _, count = (task / "schedstat").read_text().split()[:3]
            ns, slices = ns + int(run_ns), slices + int(count)
    return ns, slices


async def idle_window(pid: int, window_s: float) -> dict[str, float]:
    """What ``pid`` used over ``window_s`` of wall time: share of one core, and wake-ups.

    ``cpu_pct`` comes from utime + stime (/proc/PID/stat, 10 ms ticks: over 5 s its resolution
    is 0.2 %); ``cpu_pct_ns`` from the threads' schedstat run time (nanoseconds);
    ``wakeups_per_s`` from their timeslice counts, which a polling loop would drive up.
    """
    before, (ns_before, slices_before), start = cpu_s(pid), schedstat(pid), time.monotonic()
    await asyncio.sleep(window_s)
    wall = time.monotonic() - start
    ns_after, slices_after = schedstat(pid)
    return {
        "cpu_pct": round(100 * rate(cpu_s(pid) - before, wall), 2),
        "cpu_pct_ns": round(100 * rate((ns_after - ns_before) / 1e9, wall), 4),
        "wakeups_per_s": round(rate(slices_after - slices_before, wall), 2),
    }


def _cpu_text(cpu: dict[str, float], window_s: float) -> str:
    return (
        f"CPU over {window_s:g}s {cpu['cpu_pct']:.2f}% (stat), {cpu['cpu_pct_ns']:.4f}% "
        f"(schedstat), {cpu['wakeups_per_s']:g} wake-ups/s"
    )


async def idle_phase(
    session: aiohttp.ClientSession,
    tmp: Path,
    sink: Child,
    marks: list[int],
    window_s: float,
    budget_s: float,
) -> dict[str, Any]:
    variant = Variant("idle", max_connections=256)
    points: list[dict[str, Any]] = []
    async with daemon(tmp, variant, sink.url) as pushd:
        api = pushd.url
        await asyncio.sleep(SETTLE_S)
        cpu = await idle_window(pushd.pid, window_s)
        memory = memory_kib(pushd.pid)
        points.append({"backlog": 0, "rss_mib": round(memory["VmRSS"] / 1024, 1), **cpu})
        say(f"idle: empty daemon RSS {points[-1]['rss_mib']} MiB, {_cpu_text(cpu, window_s)}")
        have = 0
        # Past the first mark, adding stops in time for the run to end within its budget.
        add_deadline = T0 + budget_s - (2 * SETTLE_S + window_s)
        add_s = 0.0
        for mark in marks:
            start = time.monotonic()
            bodies = batches("idle", have, mark, COUNTDOWN_S)
            deadline = add_deadline if have else None
            have += await enqueue(session, api, bodies, posters=POSTERS, deadline=deadline)
            add_s += time.monotonic() - start
            queued = await queue_tasks(session, api)
            await asyncio.sleep(SETTLE_S)
            cpu = await idle_window(pushd.pid, window_s)
            memory = memory_kib(pushd.pid)
            points.append(
                {
                    "backlog": queued,
                    "rss_mib": round(memory["VmRSS"] / 1024, 1),
                    "peak_rss_mib": round(memory["VmHWM"] / 1024, 1),
                    **cpu,
                }
            )
            say(
                f"idle: backlog {queued:,} (adding at {rate(have, add_s):,.0f} tasks/s): RSS "
                f"{points[-1]['rss_mib']} MiB (peak {points[-1]['peak_rss_mib']}), "
                f"{_cpu_text(cpu, window_s)}"
            )
            if have < mark:
                say(f"idle: stopped adding at {have:,} to end within --budget-s {budget_s:g}")
                break
        delivered = (await get_json(session, sink.url + "/stats"))["count"]
    small, large = points[1] if len(points) > 1 else points[0], points[-1]
    return {
        "window_s": window_s,
        "points": points,
        "enqueue_tasks_per_s": round(rate(have, add_s), 1),
        "rss_ratio": round(large["rss_mib"] / small["rss_mib"], 3),
        "max_idle_cpu_pct": max(p["cpu_pct"] for p in points),
        "max_idle_cpu_pct_ns": max(p["cpu_pct_ns"] for p in points),
        "max_idle_wakeups_per_s": max(p["wakeups_per_s"] for p in points),
        "delivered_during_idle": delivered,
    }


# ------------------------------------------------------------------ report


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    by_c = {b["concurrency"]: b["receiver_req_per_s"] for b in results["baseline"]}
    out: dict[str, Any] = {"delivery_vs_raw_aiohttp": {}, "enqueue_tasks_per_s": {}}
    for r in results["pushd"]:
        raw = by_c.get(r["max_connections"])
        if raw:
            out["delivery_vs_raw_aiohttp"][r["label"]] = round(r["deliveries_per_s"] / raw, 3)
        out["enqueue_tasks_per_s"][r["label"]] = {
            "sequential": r["enqueue_sequential_tasks_per_s"],
            f"{POSTERS}_posters": r["enqueue_concurrent_tasks_per_s"],
        }
    if idle := results.get("idle"):
        out["idle_cpu_pct_max"] = idle["max_idle_cpu_pct"]
        out["idle_cpu_pct_ns_max"] = idle["max_idle_cpu_pct_ns"]
        out["idle_wakeups_per_s_max"] = idle["max_idle_wakeups_per_s"]
        out["rss_ratio_large_over_small_backlog"] = idle["rss_ratio"]
    return out


def report(results: dict[str, Any]) -> None:
    rows = [["baseline", "conc", "req/s (receiver)", "req/s (client)", "client CPU", "rcv CPU"]]
    for b in results["baseline"]:
        rows.append(
            [
                "raw aiohttp",
                str(b["concurrency"]),
                f"{b['receiver_req_per_s']:,.0f}",
                f"{b['client_req_per_s']:,.0f}",
                f"{b['client_cpu_pct']:.0f}%",
                f"{b['receiver_cpu_pct']:.0f}%",
            ]
        )
    if results["baseline"]:
        print()
        print(table(rows))
    if results["pushd"]:
        print()
        rows = [
            [
                "pushd",
                "conns",
                "mcr",
                "durab.",
                "enq seq/s",
                f"enq x{POSTERS}/s",
                "deliv/s",
                "e2e s",
                "e2e/s",
                "÷ raw",
                "pushd CPU",
                "rcv CPU",
                "dups",
            ]
        ]
        ratio = results["ratios"]["delivery_vs_raw_aiohttp"]
        for r in results["pushd"]:
            rows.append(
                [
                    r["label"],
                    str(r["max_connections"]),
                    str(r["max_concurrent_requests"] or "-"),
                    r["durability"],
                    f"{r['enqueue_sequential_tasks_per_s']:,.0f}",
                    f"{r['enqueue_concurrent_tasks_per_s']:,.0f}",
                    f"{r['deliveries_per_s']:,.0f}",
                    f"{r['end_to_end_s']:.2f}",
                    f"{r['end_to_end_tasks_per_s']:,.0f}",
                    f"{ratio.get(r['label'], 0):.2f}",
                    f"{r['daemon_cpu_pct']:.0f}%",
                    f"{r['receiver_cpu_pct']:.0f}%",
                    str(r["duplicates"]),
                ]
            )
        print(table(rows))
    if idle := results.get("idle"):
        print()
        window = f"{idle['window_s']:g}s"
        rows = [["idle backlog", "RSS MiB", f"CPU % /{window} (stat)", "(schedstat)", "wake-ups/s"]]
        for p in idle["points"]:
            rows.append(
                [
                    f"{p['backlog']:,}",
                    f"{p['rss_mib']:.1f}",
                    f"{p['cpu_pct']:.2f}",
                    f"{p['cpu_pct_ns']:.4f}",
                    f"{p['wakeups_per_s']:g}",
                ]
            )
        print(table(rows))
    hop = results["thread_hop_us"]
    print(f"\naiosqlite round trip (µs, start / end of run): {hop['start']} / {hop['end']}")
    print("\nRATIOS")
    for label, value in results["ratios"]["delivery_vs_raw_aiohttp"].items():
        print(f"  pushd[{label}] deliveries/s ÷ raw aiohttp req/s at the same concurrency: {value}")
    for label, value in results["ratios"]["enqueue_tasks_per_s"].items():
        print(f"  pushd[{label}] enqueue tasks/s: {value}")
    if idle:
        print(
            f"  idle CPU (max over the windows): {idle['max_idle_cpu_pct']}% of one core by "
            f"/proc/PID/stat, {idle['max_idle_cpu_pct_ns']}% by schedstat; at most "
            f"{idle['max_idle_wakeups_per_s']} wake-ups/s"
        )
        first, last = idle["points"][1 if len(idle["points"]) > 1 else 0], idle["points"][-1]
        print(
            f"  RSS @{last['backlog']:,} ÷ RSS @{first['backlog']:,}: {idle['rss_ratio']} "
            f"({last['rss_mib']} / {first['rss_mib']} MiB)"
        )


# ------------------------------------------------------------------ main


@dataclass
class Options:
    n: int
    concurrency: list[int]
    variants: list[str] | None
    skip_baseline: bool
    skip_pushd: bool
    skip_idle: bool
    idle_marks: list[int]
    idle_window_s: float
    budget_s: float
    json_path: Path
    tmp_dir: str | None
    keep_tmp: bool
    extra: dict[str, Any] = field(default_factory=dict)


def variants_for(opts: Options) -> list[Variant]:
    found = [Variant(f"c{c}", max_connections=c) for c in opts.concurrency]
    low, high = min(opts.concurrency), max(opts.concurrency)
    found.append(Variant(f"c{low}-mcr64", max_connections=low, max_concurrent_requests=64))
    found.append(Variant(f"c{high}-normal", max_connections=high, durability="normal"))
    if opts.variants is not None:
        unknown = set(opts.variants) - {v.label for v in found}
        if unknown:
            raise SystemExit(
                f"unknown variants {sorted(unknown)}; known: {[v.label for v in found]}"
            )
        found = [v for v in found if v.label in opts.variants]
    return found


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "aiohttp": aiohttp.__version__,
        "loadavg_at_start": os.getloadavg(),
        "note": "shared, noisy 2-core VM: compare ratios within one run, not absolute numbers",
    }


async def run(opts: Options) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "options": {k: str(v) for k, v in dataclasses.asdict(opts).items()},
        "baseline": [],
        "pushd": [],
    }
    tmp = Path(tempfile.mkdtemp(prefix="pushd-bench-", dir=opts.tmp_dir))
    say(f"temp dir {tmp}; n={opts.n:,}")
    results["thread_hop_us"] = {"start": await thread_hop_us()}
    say(f"aiosqlite round trip (one thread hop): {results['thread_hop_us']['start']} µs")
    try:
        async with receiver(tmp) as sink, aiohttp.ClientSession() as session:
            say(f"receiver pid {sink.pid} at {sink.url}")
            if not opts.skip_baseline:
                for c in opts.concurrency:
                    results["baseline"].append(await baseline(sink, opts.n, c))
            if not opts.skip_pushd:
                for variant in variants_for(opts):
                    results["pushd"].append(await pushd_run(session, tmp, sink, variant, opts.n))
            if not opts.skip_idle:
                results["idle"] = await idle_phase(
                    session, tmp, sink, opts.idle_marks, opts.idle_window_s, opts.budget_s
                )
    finally:
        if opts.keep_tmp:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["thread_hop_us"]["end"] = await thread_hop_us()
    say(f"aiosqlite round trip at the end: {results['thread_hop_us']['end']} µs")
    results["ratios"] = ratios(results)
    results["elapsed_s"] = round(time.monotonic() - T0, 1)
    return results


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, help="requests / tasks per measurement (default 15000)")
    parser.add_argument("--quick", action="store_true", help="small N and backlog: a smoke run")
    parser.add_argument(
        "--concurrency", default="64,256", help="comma-separated in-flight limits (default 64,256)"
    )
    parser.add_argument(
        "--variants", help="only these pushd variants, e.g. c64,c256-normal (default: all)"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="skip phase 1")
    parser.add_argument("--skip-pushd", action="store_true", help="skip phase 2")
    parser.add_argument("--skip-idle", action="store_true", help="skip phase 3 (idle cost)")
    parser.add_argument(
        "--idle-backlog",
        type=int,
        help="the large idle backlog (default 200000; the small one is 10000)",
    )
    parser.add_argument("--idle-window", type=float, help="seconds of idle CPU measured (5)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=DEFAULT_BUDGET_S,
        help="the idle phase stops growing its backlog so the run ends by then (default 180)",
    )
    parser.add_argument(
        "--json", type=Path, default=RESULTS, help="results file (benchmarks/results/latest.json)"
    )
    parser.add_argument("--tmp-dir", help="where the temp SQLite files go (default: $TMPDIR)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep databases and daemon logs")
    args = parser.parse_args(argv)
    n = args.n or (2000 if args.quick else 15000)
    large = args.idle_backlog or (20000 if args.quick else 200000)
    small = min(1000 if args.quick else 10000, large)
    if not 1 <= n <= 1_000_000 or not 1 <= large <= 2_000_000:
        parser.error("--n must be 1..1,000,000 and --idle-backlog 1..2,000,000")
    concurrency = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    if not concurrency or not all(1 <= c <= 4096 for c in concurrency):
        parser.error("--concurrency takes numbers from 1 to 4096")
    return Options(
        n=n,
        concurrency=concurrency,
        variants=args.variants.split(",") if args.variants else None,
        skip_baseline=args.skip_baseline,
        skip_pushd=args.skip_pushd,
        skip_idle=args.skip_idle,
        idle_marks=sorted({small, large}),
        idle_window_s=args.idle_window or (2.0 if args.quick else 5.0),
        budget_s=args.budget_s,
        json_path=args.json,
        tmp_dir=args.tmp_dir,
        keep_tmp=args.keep_tmp,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through every finally: subprocesses are stopped

    signal.signal(signal.SIGTERM, terminate)
    try:
        results = asyncio.run(run(opts))
    except KeyboardInterrupt:
        say("interrupted; subprocesses stopped")
        return 130
    report(results)
    opts.json_path.parent.mkdir(parents=True, exist_ok=True)
    opts.json_path.write_text(json.dumps(results, indent=2) + "\n")
    say(f"wrote {opts.json_path} ({results['elapsed_s']}s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
