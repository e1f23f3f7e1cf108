"""Scenario 7: a slow receiver (200 ms per request) and 500 requests allowed in flight.

Measured in one run against one receiver (``/slow/200/<i>`` answers after 200 ms):

* **ideal**: concurrency ÷ latency = 500 ÷ 0.2 s = 2,500 deliveries/s;
* **pushd**: a fresh daemon (SQLite, ``durability: full``, ``max_connections`` 500), one queue
  at ``rate: 100000/s, bucket_size: 10000, max_concurrent_requests: 500``; paused, N tasks
  added in batches of 100, resumed; deliveries/s = N ÷ (first arrival → last answer), an answer
  being its arrival + 200 ms (so N tasks in whole waves of 500 give exactly the ideal);
* **raw aiohttp**: the baseline, the raw aiohttp client (one keep-alive session, 500 in flight,
  its connections opened by a warm-up first) POSTing the same N requests, timed the same way.

Peak concurrency: the most requests in the receiver at once, each counted from its arrival for
the 200 ms it is held (from the hits; nginx logs arrivals in ms). Ratios: each ÷ the ideal, and
pushd ÷ raw. Target: pushd >= 90 % of the ideal.

500 connections need file descriptors: the soft ``RLIMIT_NOFILE`` of the benchmark process is
raised (up to the hard limit) when under :data:`FDS_WANTED`, before the daemon is started, so
the daemon inherits it; a note says so. The receiver, started earlier, keeps its own.
"""

from __future__ import annotations

import os
import resource
from typing import TYPE_CHECKING, Any

from benchmarks import harness
from benchmarks.harness import Progress, cpu_s, memory_kib, post_json, rate, say
from benchmarks.scenarios import Context, Result, Target

if TYPE_CHECKING:
    from benchmarks.receivers import Hit

CONCURRENCY = 500
LATENCY_MS = 200
LATENCY_S = LATENCY_MS / 1000
IDEAL = CONCURRENCY / LATENCY_S
TARGET_SHARE = 0.9
FDS_WANTED = 4 * CONCURRENCY + 256  # pushd's 500 connections, the raw client's, and slack


def raise_fd_limit(wanted: int = FDS_WANTED) -> str | None:
    """Raise the soft ``RLIMIT_NOFILE`` to ``wanted`` (at most the hard limit); what was done."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return None
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if new <= soft:
        return f"open files limit {soft} (hard {hard}) is below the {wanted} wanted"
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return f"raised the soft open files limit from {soft} to {new} (hard {hard}) in-process"


def measure(hits: list[Hit], n: int) -> dict[str, Any]:
    """Deliveries/s over first arrival → last answer, and the peak number held at once."""
    times = sorted(h.t for h in hits)
    if not times:
        return {"delivered": 0, "deliveries_per_s": 0.0, "peak_concurrency": 0}
    window = times[-1] + LATENCY_S - times[0]
    # Each request is held from its arrival for LATENCY_S: +1 at t, -1 at t + LATENCY_S
    # (answers sort before arrivals at the same instant).
    events = sorted([(t, 1) for t in times] + [(t + LATENCY_S, -1) for t in times])
    held = peak = 0
    low_s, last = 0.0, times[0]  # time with fewer than half the slots in use
    for at, step in events:
        if held < CONCURRENCY / 2:
            low_s += at - last
        last = at
        held += step
        peak = max(peak, held)
    statuses = [h.status for h in hits]
    return {
        "delivered": len(hits),
        "distinct": len({h.path for h in hits}),
        "not_200": sum(1 for s in statuses if s != 200),
        "window_s": round(window, 3),
        "deliveries_per_s": round(rate(len(hits), window), 1),
        "share_of_ideal": round(rate(len(hits), window) / IDEAL, 3),
        "peak_concurrency": peak,
        "mean_concurrency": round(rate(len(hits) * LATENCY_S, window), 1),
        "share_of_window_under_half_busy": round(rate(low_s, window), 3),
    }


async def raw_slow(ctx: Context, n: int) -> dict[str, Any]:
    """The raw aiohttp client, ``CONCURRENCY`` in flight, against the same slow path."""
    url = f"{ctx.receiver.url}/slow/{LATENCY_MS}/raw/"
    await ctx.receiver.reset()
    with Progress("slow: raw aiohttp", n, "requests") as bar:
        wall, cpu = await harness.raw_posts(
            lambda i: url + str(i),
            n,
            CONCURRENCY,
            headers_for=lambda i: {"X-AppEngine-TaskName": f"raw-{i}"},
            progress=bar,
        )
    hits = await ctx.receiver.wait_count(n + CONCURRENCY, 30.0)
    mine = [h for h in hits if h.path.startswith(f"/slow/{LATENCY_MS}/raw/")][-n:]  # no warm-up
    result = {
        "system": "raw aiohttp",
        "n": n,
        "concurrency": CONCURRENCY,
        **measure(mine, n),
        "client_cpu_pct": round(100 * rate(cpu, wall), 1),
    }
    say(f"slow: raw aiohttp {result['deliveries_per_s']:,.0f}/s with {CONCURRENCY} in flight")
    return result


async def pushd_slow(ctx: Context, n: int) -> dict[str, Any]:
    """A fresh daemon, 500 connections and max_concurrent_requests 500, delivers ``n``."""
    label = "slow"
    queue_yaml = "queue:\n" + harness.push_queue_yaml(max_concurrent_requests=CONCURRENCY)
    settings = harness.settings_yaml(max_connections=CONCURRENCY)
    timeout_s = 30.0 + 10 * n / IDEAL
    async with ctx.pushd(label, queue_yaml=queue_yaml, settings_yaml=settings) as daemon:
        api = daemon.url
        await post_json(ctx.session, f"{api}/api/v1/queues/{harness.QUEUE}/pause")
        tasks = [{"name": f"slow-{i}", "url": f"/slow/{LATENCY_MS}/{i}"} for i in range(n)]
        with Progress("slow: adding", n) as bar:
            await harness.add_tasks(ctx.session, api, tasks, progress=bar)
        await ctx.receiver.reset()
        before = cpu_s(daemon.pid)
        await post_json(ctx.session, f"{api}/api/v1/queues/{harness.QUEUE}/resume")
        with Progress("slow: delivering", n) as bar:
            hits = await ctx.receiver.wait_count(n, timeout_s, bar.update)
        await harness.wait_empty(ctx.session, api, 30.0)
        used = cpu_s(daemon.pid) - before
        memory = memory_kib(daemon.pid)
        hits = await ctx.receiver.hits()
    mine = [h for h in hits if h.name.startswith("slow-")]
    result = {
        "system": "pushd",
        "n": n,
        "concurrency": CONCURRENCY,
        **measure(mine, n),
        "duplicates": len(mine) - len({h.name for h in mine}),
        "daemon_cpu_us_per_delivery": round(1e6 * used / max(len(mine), 1), 1),
        "daemon_peak_rss_mib": round(memory.get("VmHWM", 0) / 1024, 1),
    }
    say(
        f"slow: pushd {result['deliveries_per_s']:,.0f}/s, peak {result['peak_concurrency']} "
        f"in flight, {result['daemon_cpu_us_per_delivery']:.0f} µs CPU each"
    )
    return result


async def run(ctx: Context) -> Result:
    from benchmarks import charts  # matplotlib loads only when drawing

    load = [round(x, 2) for x in os.getloadavg()]  # the machine is shared: noise shows here

    n = ctx.n(full=10_000, quick=5_000, smoke=500)
    notes = []
    if fds := raise_fd_limit():
        notes.append(fds)
        say(f"slow: {fds}")
    raw = await raw_slow(ctx, n)
    ours = await pushd_slow(ctx, n)
    rows = [
        [
            "system",
            "tasks",
            "in flight allowed",
            "deliveries/s",
            "÷ ideal",
            "peak in flight",
            "mean in flight",
            "time < 250 in flight",
            "notes",
        ],
        ["ideal: 500 ÷ 0.2 s", "", f"{CONCURRENCY}", f"{IDEAL:,.0f}", "1.00", "", "", "", ""],
    ]
    for r in (raw, ours):
        extra = (
            f"client CPU {r['client_cpu_pct']}%"
            if r is raw
            else f"{r['daemon_cpu_us_per_delivery']:.0f} µs CPU/delivery, "
            f"dups {r['duplicates']}, peak RSS {r['daemon_peak_rss_mib']} MiB"
        )
        rows.append(
            [
                r["system"],
                f"{r['n']:,}",
                f"{CONCURRENCY}",
                f"{r['deliveries_per_s']:,.0f}",
                f"{r['share_of_ideal']:.2f}",
                f"{r['peak_concurrency']}",
                f"{r['mean_concurrency']:g}",
                f"{100 * r['share_of_window_under_half_busy']:.0f}%",
                extra,
            ]
        )
    ratios = {
        "pushd/ideal": ours["share_of_ideal"],
        "raw/ideal": raw["share_of_ideal"],
        "pushd/raw": round(ours["deliveries_per_s"] / max(raw["deliveries_per_s"], 1e-9), 3),
    }
    targets = [Target("pushd ÷ concurrency/latency", ours["share_of_ideal"], TARGET_SHARE)]
    notes.append(
        "deliveries/s = N ÷ (first arrival → last arrival + 200 ms); in flight = requests held "
        "at the receiver, each for 200 ms from its arrival"
    )
    cpu_us = ours["daemon_cpu_us_per_delivery"]
    notes.append(
        f"pushd used {cpu_us:.0f} µs of CPU per delivery: one whole core allows at most "
        f"{1e6 / max(cpu_us, 1e-9):,.0f} deliveries/s (the ideal needs <= {1e6 / IDEAL:.0f} µs)"
    )
    notes.append(
        f"1-min load average at the start {load[0]:g} on {ctx.machine.get('cpus')} CPUs: on a "
        "busy machine the raw client falls short of the ideal too; compare pushd ÷ raw"
    )
    if ours["delivered"] != n or ours["duplicates"] or ours["not_200"]:
        notes.append(
            f"pushd: {ours['delivered']} arrivals for {n} tasks, {ours['duplicates']} "
            f"duplicates, {ours['not_200']} not answered 200"
        )
    chart = charts.bars(
        ctx.chart("slow", "throughput"),
        f"Slow receiver: {LATENCY_MS} ms per request, {CONCURRENCY} in flight, {n:,} tasks",
        "deliveries/s (first arrival to last answer)",
        [
            ("ideal (500 ÷ 0.2 s)", IDEAL),
            ("raw aiohttp", raw["deliveries_per_s"]),
            ("pushd", ours["deliveries_per_s"]),
        ],
        baseline="ideal (500 ÷ 0.2 s)",
        note=ctx.note,
    )
    return Result(
        "slow",
        rows,
        data={"loadavg_at_start": load, "ideal_per_s": IDEAL, "raw": raw, "pushd": ours},
        ratios=ratios,
        targets=targets,
        charts=[chart],
        notes=notes,
    )
