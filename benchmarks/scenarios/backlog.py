"""Scenario 3: the delivery of scenario 2, beside a large backlog of tasks due in a day.

Measured in one run against one receiver:

* **fill**: a fresh daemon (SQLite, ``durability: full``, ``max_connections`` 64, queue at
  ``rate: 100000/s``), queue paused, gets B future tasks (``countdown`` one day) through the
  HTTP API in batches of 100 from 8 posters (the add rate, tasks/s), then N due tasks;
  its spawn → ``listening`` time on an empty database and its peak RSS while adding;
* **restart**: the daemon is stopped (SIGTERM; the time it takes is reported) and started
  again on the same database: start-up is spawn → ``listening`` (the target) and spawn →
  first delivery (the queue, paused across the restart, is resumed right after
  ``listening``); RSS just after start with B + N stored;
* **large backlog**: the N due tasks delivered beside the B future ones: deliveries/s first to
  last arrival, duplicates, RSS sampled every 50 ms while delivering; none of the B future
  tasks may arrive (checked at the receiver and by the queue's ``stats.tasks`` staying B);
* **idle**: with B stored and nothing due, a 1 s settle then a 5 s window (0.2 s and 0.5 s in
  smoke runs): the daemon's CPU from ``/proc/PID/stat`` (10 ms ticks) and from its threads'
  ``schedstat`` (ns), wake-ups/s; peak RSS (``VmHWM``) of the restarted daemon over start-up,
  delivery and idle;
* the database's size on disk (main file, ``-wal`` and ``-shm``) with B stored.

Baseline: the same N due tasks delivered by a fresh daemon with no backlog, from the delivery
scenario of the same run when it ran with the same N (``ctx.shared["delivery"]``), else measured
here with :func:`benchmarks.scenarios.delivery.pushd_delivery`.

Targets: large ÷ small backlog throughput >= 0.9; peak RSS <= 200 MB; start-up <= 3 s; idle
CPU < 1 % of one core; no future task delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import harness
from benchmarks.harness import Progress, cpu_s, memory_kib, post_json, rate, say, span_rate
from benchmarks.scenarios import Context, Result, Target
from benchmarks.scenarios.delivery import CONCURRENCY, DELIVERY_TIMEOUT_S, pushd_delivery

if TYPE_CHECKING:
    import aiohttp

COUNTDOWN_S = 86_400  # the backlog is due in one day
BATCH = 100  # tasks per add call: App Engine's (and pushd's) maximum
POSTERS = 8
ADD_TIMEOUT_S = 1_200.0  # adding the whole backlog (1M at full scale takes a minute or two)
SETTLE_TIMEOUT_S = 30.0  # after the last due delivery, until stats.tasks is back to B
MB = 1_000_000
RSS_TARGET_MIB = 200 * MB / 2**20  # 200 MB = 190.7 MiB
START_TARGET_S = 3.0
IDLE_TARGET_PCT = 1.0
RATIO_TARGET = 0.9


def _batches(prefix: str, n: int, countdown: int | None) -> Iterator[list[dict[str, Any]]]:
    """Add bodies for ``n`` tasks, ``BATCH`` at a time, made lazily (1M dicts would be ~400 MB)."""
    for start in range(0, n, BATCH):
        chunk = []
        for i in range(start, min(start + BATCH, n)):
            task: dict[str, Any] = {"name": f"{prefix}-{i}", "url": f"/{prefix}/{i}"}
            if countdown is not None:
                task["countdown"] = countdown
            chunk.append(task)
        yield chunk


async def _add(
    session: aiohttp.ClientSession, api: str, prefix: str, n: int, countdown: int | None
) -> dict[str, Any]:
    """Add ``n`` tasks with ``POSTERS`` posters and a progress bar; the rate they were added at."""
    bodies = _batches(prefix, n, countdown)  # streamed: each poster takes the next batch
    with Progress(f"backlog: adding {prefix}", n) as bar:
        start = time.monotonic()
        added = await asyncio.wait_for(
            harness.add_chunks(session, api, bodies, posters=POSTERS, progress=bar), ADD_TIMEOUT_S
        )
        elapsed = time.monotonic() - start
    return {
        "added": added,
        "seconds": round(elapsed, 2),
        "tasks_per_s": round(rate(added, elapsed)),
    }


def _schedstat(pid: int) -> tuple[int, int]:
    """CPU nanoseconds and timeslices (roughly: wake-ups) of all of ``pid``'s threads so far."""
    ns = slices = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a thread ended
            run_ns, _, count = (task / "schedstat").read_text().split()[:3]
            ns, slices = ns + int(run_ns), slices + int(count)
    return ns, slices


async def _idle_window(pid: int, window_s: float) -> dict[str, float]:
    """What ``pid`` used over ``window_s``: % of one core (stat, schedstat) and wake-ups/s.

    ``cpu_pct`` from utime + stime (10 ms ticks: 0.2 %
    over 5 s), ``cpu_pct_ns`` from the threads' schedstat run time, ``wakeups_per_s`` from
    their timeslice counts (a polling loop drives it up).
    """
    before, (ns_before, slices_before), start = cpu_s(pid), _schedstat(pid), time.monotonic()
    await asyncio.sleep(window_s)
    wall = time.monotonic() - start
    ns_after, slices_after = _schedstat(pid)
    return {
        "window_s": round(wall, 2),
        "cpu_pct": round(100 * rate(cpu_s(pid) - before, wall), 2),
        "cpu_pct_ns": round(100 * rate((ns_after - ns_before) / 1e9, wall), 4),
        "wakeups_per_s": round(rate(slices_after - slices_before, wall), 2),
    }


async def _wait_stored(
    session: aiohttp.ClientSession, api: str, at_most: int, timeout_s: float
) -> dict[str, Any]:
    """Poll the queue's stats until ``tasks <= at_most`` and nothing in flight (or timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats: dict[str, Any] = await harness.queue_stats(session, api)
        if stats["tasks"] <= at_most and not stats.get("in_flight"):
            return stats
        if time.monotonic() > deadline:
            say(f"backlog: still {stats['tasks']:,} stored after {timeout_s:g}s (want {at_most:,})")
            return stats
        await asyncio.sleep(0.05)


def _db_bytes(run_dir: Path) -> dict[str, int]:
    sizes = {p.name: p.stat().st_size for p in run_dir.glob("pushd.sqlite3*")}
    return {"total": sum(sizes.values()), **sizes}


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


async def large_backlog(
    ctx: Context, n: int, backlog: int, idle_s: float, settle_s: float
) -> dict[str, Any]:
    """Fill, restart, deliver the ``n`` due tasks beside ``backlog`` future ones, then idle."""
    run_dir = ctx.run_dir("backlog")
    queue_yaml = "queue:\n" + harness.push_queue_yaml()
    settings = harness.settings_yaml(CONCURRENCY, "full")
    target = ctx.receiver.url
    pause = f"/api/v1/queues/{harness.QUEUE}/pause"
    resume = f"/api/v1/queues/{harness.QUEUE}/resume"

    # -- fill: a fresh daemon, paused, gets the future backlog and the due tasks
    await ctx.receiver.reset()
    spawned = time.monotonic()
    async with harness.pushd(
        run_dir, queue_yaml=queue_yaml, settings_yaml=settings, target=target, label="fill"
    ) as daemon:
        fresh_start_s = time.monotonic() - spawned
        api = daemon.url
        await post_json(ctx.session, api + pause)
        future = await _add(ctx.session, api, "future", backlog, COUNTDOWN_S)
        say(f"backlog: added {backlog:,} future tasks at {future['tasks_per_s']:,} tasks/s")
        due = await _add(ctx.session, api, "due", n, None)
        stored_after_fill = (await harness.queue_stats(ctx.session, api))["tasks"]
        fill_memory = memory_kib(daemon.pid)
        stopping = time.monotonic()
    stop_s = time.monotonic() - stopping
    delivered_while_filling = await ctx.receiver.count()
    db_after_fill = _db_bytes(run_dir)

    # -- restart on the same database; the queue stays paused across it
    await ctx.receiver.reset()
    spawned_epoch, spawned = time.time(), time.monotonic()
    async with harness.pushd(
        run_dir, queue_yaml=queue_yaml, settings_yaml=settings, target=target, label="restart"
    ) as daemon:
        start_s = time.monotonic() - spawned
        api = daemon.url
        memory_start = memory_kib(daemon.pid)
        stats_start = await harness.queue_stats(ctx.session, api)
        say(
            f"backlog: restarted with {stats_start['tasks']:,} stored in {start_s:.2f}s, "
            f"RSS {_mib(memory_start['VmRSS'])} MiB"
        )
        rss_during = [memory_start["VmRSS"]]

        def sample(done: int) -> None:
            bar.update(done)
            with contextlib.suppress(OSError):
                rss_during.append(memory_kib(daemon.pid)["VmRSS"])

        cpu_before = cpu_s(daemon.pid)
        resumed_epoch = time.time()
        await post_json(ctx.session, api + resume)
        with Progress("backlog: delivering beside the backlog", n) as bar:
            hits = await ctx.receiver.wait_count(n, DELIVERY_TIMEOUT_S, sample)
        used = cpu_s(daemon.pid) - cpu_before
        stats_after = await _wait_stored(ctx.session, api, backlog, SETTLE_TIMEOUT_S)
        await asyncio.sleep(settle_s)
        before_idle = await ctx.receiver.count()
        say(f"backlog: idle window of {idle_s:g}s with {backlog:,} stored")
        idle = await _idle_window(daemon.pid, idle_s)
        delivered_while_idle = await ctx.receiver.count() - before_idle
        stats_idle = await harness.queue_stats(ctx.session, api)
        memory_end = memory_kib(daemon.pid)
        hits = await ctx.receiver.hits()
    db_end = _db_bytes(run_dir)

    due_hits = [h for h in hits if h.path.startswith("/due/")]
    future_hits = [h for h in hits if h.path.startswith("/future/")]
    due_names = {h.name for h in due_hits}
    first = min((h.t for h in due_hits), default=float("nan"))
    result = {
        "backlog": backlog,
        "n": n,
        "countdown_s": COUNTDOWN_S,
        "add_future": future,
        "add_due": due,
        "stored_after_fill": stored_after_fill,
        "fill_daemon_start_s_empty_db": round(fresh_start_s, 3),
        "fill_daemon_rss_mib": _mib(fill_memory.get("VmRSS", 0)),
        "fill_daemon_peak_rss_mib": _mib(fill_memory.get("VmHWM", 0)),
        "stop_s": round(stop_s, 2),
        "delivered_while_filling": delivered_while_filling,
        "db_bytes_after_fill": db_after_fill,
        "db_bytes_end": db_end,
        "start_s": round(start_s, 3),
        "spawn_to_first_delivery_s": round(first - spawned_epoch, 3),
        "resume_to_first_delivery_s": round(first - resumed_epoch, 3),
        "stored_at_start": stats_start["tasks"],
        "paused_at_start": stats_start.get("paused"),
        "rss_after_start_mib": _mib(memory_start.get("VmRSS", 0)),
        "peak_rss_after_start_mib": _mib(memory_start.get("VmHWM", 0)),
        "max_rss_during_delivery_mib": _mib(max(rss_during)),
        "rss_end_mib": _mib(memory_end.get("VmRSS", 0)),
        "peak_rss_mib": _mib(memory_end.get("VmHWM", 0)),
        "deliveries_per_s": round(span_rate([h.t for h in due_hits]), 1),
        "delivered": len(due_hits),
        "duplicates": len(due_hits) - len(due_names),
        "daemon_cpu_us_per_delivery": round(1e6 * used / max(len(due_hits), 1), 1),
        "future_delivered": len(future_hits),
        "stored_after_delivery": stats_after["tasks"],
        "stored_after_idle": stats_idle["tasks"],
        "delivered_while_idle": delivered_while_idle,
        "idle": idle,
    }
    say(
        f"backlog: {result['deliveries_per_s']:,.0f} deliveries/s beside {backlog:,} future "
        f"tasks; future delivered {len(future_hits)}; peak RSS {result['peak_rss_mib']} MiB; "
        f"idle CPU {idle['cpu_pct_ns']:.3f}%"
    )
    return result


def _small_backlog(ctx: Context, n: int) -> dict[str, Any] | None:
    shared = ctx.shared.get("delivery")
    if isinstance(shared, dict) and shared.get("n") == n and shared.get("deliveries_per_s"):
        return shared
    return None


async def run(ctx: Context) -> Result:
    from benchmarks import charts  # matplotlib loads only when drawing

    load = [round(x, 2) for x in os.getloadavg()]  # the machine is shared: noise shows here

    backlog = ctx.n(full=1_000_000, quick=100_000, smoke=2_000)
    n = ctx.n(full=50_000, quick=10_000, smoke=200)
    idle_s = 0.5 if ctx.scale == "smoke" else 5.0
    settle_s = 0.2 if ctx.scale == "smoke" else 1.0  # quiet time before the idle window
    small = _small_backlog(ctx, n)
    reused = small is not None
    if small is None:
        small = await pushd_delivery(ctx, n, label="small-backlog")
    large = await large_backlog(ctx, n, backlog, idle_s, settle_s)

    ratio = large["deliveries_per_s"] / max(small["deliveries_per_s"], 1e-9)
    idle = large["idle"]
    db = large["db_bytes_end"]["total"]
    source = "delivery scenario, same run" if reused else "measured here"
    rows = [["measure", "value", "baseline / target"]]
    rows += [
        [f"deliveries/s, {n:,} due, no backlog", f"{small['deliveries_per_s']:,.0f}", source],
        [
            f"deliveries/s, {n:,} due, beside {backlog:,} future",
            f"{large['deliveries_per_s']:,.0f}",
            f"×{ratio:.2f} of no backlog (target >= {RATIO_TARGET})",
        ],
        [
            "future tasks delivered (due in 1 day)",
            f"{large['future_delivered'] + large['delivered_while_filling']}",
            "0",
        ],
        [
            f"add rate, {backlog:,} future, batches of {BATCH}, {POSTERS} posters",
            f"{large['add_future']['tasks_per_s']:,} tasks/s",
            f"{large['add_future']['seconds']:g} s",
        ],
        [
            f"start-up, spawn → listening, {backlog + n:,} stored",
            f"{large['start_s']:.2f} s",
            f"<= {START_TARGET_S:g} s; empty db {large['fill_daemon_start_s_empty_db']:.2f} s",
        ],
        [
            "start-up, spawn → first delivery",
            f"{large['spawn_to_first_delivery_s']:.2f} s",
            f"resume → first {large['resume_to_first_delivery_s']:.3f} s",
        ],
        [
            "RSS after start / max during delivery",
            f"{large['rss_after_start_mib']} / {large['max_rss_during_delivery_mib']} MiB",
            f"no backlog: peak {small.get('daemon_peak_rss_mib', '?')} MiB",
        ],
        [
            "peak RSS (VmHWM) after restart: start, delivery, idle",
            f"{large['peak_rss_mib']} MiB",
            f"<= {RSS_TARGET_MIB:.1f} MiB (200 MB)",
        ],
        [
            "peak RSS while adding the backlog",
            f"{large['fill_daemon_peak_rss_mib']} MiB",
            "first daemon, not a target",
        ],
        [
            f"idle CPU, {backlog:,} stored, {idle['window_s']:g} s window",
            f"{idle['cpu_pct_ns']:.3f}% of a core",
            f"< {IDLE_TARGET_PCT:g}%; stat {idle['cpu_pct']:.2f}%, "
            f"{idle['wakeups_per_s']:g} wake-ups/s",
        ],
        [
            "database on disk (with -wal, -shm)",
            f"{db / 2**20:,.1f} MiB",
            f"{db / max(backlog, 1):,.0f} bytes per stored task",
        ],
        ["stop (SIGTERM → exit) with the backlog", f"{large['stop_s']:.2f} s", ""],
    ]
    future_delivered = large["future_delivered"] + large["delivered_while_filling"]
    targets = [
        Target("large ÷ no backlog deliveries/s", ratio, RATIO_TARGET),
        Target("peak RSS MiB (200 MB)", large["peak_rss_mib"], RSS_TARGET_MIB, at_least=False),
        Target("start-up s, spawn → listening", large["start_s"], START_TARGET_S, at_least=False),
        Target("idle CPU % of a core", idle["cpu_pct_ns"], IDLE_TARGET_PCT, at_least=False),
        Target("future tasks delivered", future_delivered, 0, at_least=False),
    ]
    notes = []
    if large["duplicates"]:
        notes.append(f"{large['duplicates']} due tasks delivered twice")
    if large["delivered"] != n:
        notes.append(f"{large['delivered']} of {n} due tasks delivered")
    if large["stored_after_idle"] != backlog:
        notes.append(
            f"stats.tasks after the idle window is {large['stored_after_idle']:,}, "
            f"not the {backlog:,} future tasks"
        )
    if large["stored_after_fill"] != backlog + n:
        notes.append(f"{large['stored_after_fill']:,} stored after adding {backlog + n:,}")
    if large["paused_at_start"] is not True or large["stored_at_start"] != backlog + n:
        notes.append(
            f"after the restart: paused {large['paused_at_start']}, "
            f"{large['stored_at_start']:,} stored (want paused, {backlog + n:,})"
        )
    if large["delivered_while_idle"]:
        notes.append(f"{large['delivered_while_idle']} deliveries during the idle window")
    chart = charts.bars(
        ctx.chart("backlog", "throughput"),
        f"{n:,} due tasks delivered: no backlog vs beside {backlog:,} due in a day",
        "deliveries/s (first to last arrival)",
        [
            ("no backlog", small["deliveries_per_s"]),
            (f"{backlog:,} backlog", large["deliveries_per_s"]),
        ],
        baseline="no backlog",
        note=ctx.note,
    )
    return Result(
        "backlog",
        rows,
        data={
            "loadavg_at_start": load,
            "small_backlog": small,
            "small_backlog_reused": reused,
            "large_backlog": large,
        },
        ratios={"large/small backlog deliveries_per_s": round(ratio, 3)},
        targets=targets,
        charts=[chart],
        notes=notes,
    )
