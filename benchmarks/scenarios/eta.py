"""Scenario 4: ETA precision, 1,000 tasks/s with countdowns spread over 20 s.

Measured in one run against one receiver, for the same ETA schedule (N ETAs spread uniformly
over a window W, 1,000 per second at full size):

* **pushd**: a fresh daemon (SQLite, ``durability: full``, ``max_connections`` 64), an
  unthrottled push queue (``rate: 100000/s``, ``bucket_size: 10000``); 64 tasks due at once
  first open its connections to the receiver (as a running daemon's would be); then N tasks
  added in batches of 100 by 8 posters (in ETA order), each with an absolute ``eta`` (epoch
  seconds, whole µs) spread uniformly from start + S to start + S + W, where the lead
  S = 0.5 s + N / 2,000 s leaves time to add them all first. The add answers are checked
  (``eta_us`` as sent; when each batch was acknowledged, against its ETAs);
* **baseline**: the floor a Python scheduler can reach: in the benchmark process, one asyncio
  timer per task (``loop.call_at``) firing a raw aiohttp POST (one keep-alive session, 64
  connections, opened first by 64 POSTs at once) at the same ETA schedule (first ETA 0.5 s
  ahead), with the ``X-AppEngine-TaskETA`` header pushd would send. A timer that fires before
  its ETA by the wall clock is re-armed, so the baseline never delivers early either.

Sizes: N = 20,000 over W = 20 s (full), 5,000 over 5 s (quick), 200 over 1 s (smoke).

Lateness of each delivery = arrival at the receiver − the task's ETA (the ETA that was set;
the ``X-AppEngine-TaskETA`` header is checked to carry the same value). Reported for both:
p50, p99, max (ms), deliveries, duplicates, and early deliveries (lateness below the receiver's
clock resolution: −1 ms for nginx, whose arrival times are whole milliseconds taken when its
event loop wakes; −0.001 ms for the aiohttp receiver, µs). pushd must never deliver early.

Targets: pushd p99 <= 20 ms; no early delivery. Ratio: pushd p99 ÷ baseline p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from benchmarks import harness
from benchmarks.harness import Progress, cpu_s, percentile, post_json, say
from benchmarks.scenarios import Context, Result, Target

if TYPE_CHECKING:
    from benchmarks.receivers import Hit

CONNECTIONS = 64  # pushd's max_connections and the baseline's connection limit
POSTERS = 8
WARM = CONNECTIONS  # requests sent at once before the schedule, to open the connections
BATCH = 100
TARGET_P99_MS = 20.0
EARLY_TOLERANCE_MS = {"nginx": 1.0, "aiohttp": 0.001}  # the receiver's arrival-time resolution
BASELINE_LEAD_S = 0.5  # the baseline has nothing to add: its first ETA is this far ahead
SETTLE_TIMEOUT_S = 60.0  # after the last ETA, how long every delivery may still take
HEADER_SLACK_S = 1.5e-6  # X-AppEngine-TaskETA has 6 decimals: equal within float parsing


def run_wait_s(pid: int) -> tuple[float, float]:
    """Seconds ``pid``'s threads ran and waited runnable for a CPU (``/proc/*/schedstat``).

    The wait tells machine noise from pushd: a daemon that waits for a CPU as long as it runs
    is starved by other processes, not slow on its own.
    """
    run = wait = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            fields = (task / "schedstat").read_text().split()
            run, wait = run + int(fields[0]), wait + int(fields[1])
    return run / 1e9, wait / 1e9


def schedule(n: int, window_s: float) -> list[float]:
    """ETA offsets (s): ``n`` spread uniformly over ``window_s``, whole microseconds."""
    return [round(i * window_s / n, 6) for i in range(n)]


def lead_s(n: int) -> float:
    """Time before the first ETA: adding must be done by then (at >= 2,000 adds/s, + 0.5 s)."""
    return round(0.5 + n / 2000, 1)


def summary(lateness_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(lateness_ms, 50), 3),
        "p90_ms": round(percentile(lateness_ms, 90), 3),
        "p99_ms": round(percentile(lateness_ms, 99), 3),
        "p99_9_ms": round(percentile(lateness_ms, 99.9), 3),
        "max_ms": round(max(lateness_ms, default=0.0), 3),
        "min_ms": round(min(lateness_ms, default=0.0), 3),
        "mean_ms": round(sum(lateness_ms) / len(lateness_ms), 3) if lateness_ms else 0.0,
    }


def _quarters(pairs: list[tuple[float, float]]) -> Iterator[list[float]]:
    """Lateness in four groups by ETA order: does it drift over the window?"""
    ordered = [late for _, late in sorted(pairs)]
    size = -(-len(ordered) // 4)
    for i in range(0, len(ordered), max(size, 1)):
        yield ordered[i : i + size]


def analyse(
    hits: list[Hit], prefix: str, etas: dict[str, float], tolerance_ms: float
) -> dict[str, Any]:
    """Lateness of the hits whose path starts with ``prefix``, against the ETAs that were set."""
    mine = [h for h in hits if h.path.startswith(prefix)]
    seen: set[str] = set()
    duplicates = unknown = header_mismatch = 0
    pairs: list[tuple[float, float]] = []  # (eta, lateness ms), first delivery of each task
    worst_header = 0.0
    for h in mine:
        eta = etas.get(h.name)
        if eta is None:
            unknown += 1
            continue
        if h.name in seen:
            duplicates += 1
            continue
        seen.add(h.name)
        off = abs((h.eta if h.eta is not None else float("inf")) - eta)
        if off > HEADER_SLACK_S:
            header_mismatch += 1
            worst_header = max(worst_header, off)
        pairs.append((eta, (h.t - eta) * 1000))
    lateness = [late for _, late in pairs]
    early = sorted(late for late in lateness if late < -tolerance_ms)
    return {
        "delivered": len(pairs),
        "missing": len(etas) - len(pairs),
        "duplicates": duplicates,
        "unknown_names": unknown,
        "header_eta_mismatches": header_mismatch,
        "header_eta_worst_diff_s": worst_header,
        "early": len(early),
        "early_worst_ms": round(early[0], 3) if early else None,
        "early_tolerance_ms": tolerance_ms,
        "at_or_below_0_ms": sum(1 for late in lateness if late <= 0),
        **summary(lateness),
        "by_quarter": [
            {
                "n": len(q),
                "p50_ms": round(percentile(q, 50), 3),
                "p99_ms": round(percentile(q, 99), 3),
            }
            for q in _quarters(pairs)
        ],
        "lateness_ms": lateness,  # popped before the result is saved
    }


# ------------------------------------------------------------------ pushd


async def _add(
    session: aiohttp.ClientSession, api: str, tasks: list[dict[str, Any]], bar: Progress
) -> dict[str, Any]:
    """Add ``tasks`` in batches (in order) with ``POSTERS`` in parallel; check every answer.

    Unlike :func:`harness.add_tasks` it notes when each batch was acknowledged, so an ETA that
    had passed by then shows, and checks the ``eta_us`` pushd answered against the one sent.
    """
    url = f"{api}/api/v1/queues/{harness.QUEUE}/tasks"
    chunks = iter([tasks[i : i + BATCH] for i in range(0, len(tasks), BATCH)])
    added = passed = eta_us_mismatch = 0
    worst_passed_ms = 0.0

    async def poster() -> None:
        nonlocal added, passed, eta_us_mismatch, worst_passed_ms
        for chunk in chunks:
            answer = await post_json(session, url, {"tasks": chunk})
            acked = time.time()
            bad = [t["result"] for t in answer["tasks"] if t["result"] != "OK"]
            if bad:
                raise RuntimeError(f"add refused {len(bad)} tasks, e.g. {bad[0]}")
            for sent, got in zip(chunk, answer["tasks"], strict=True):
                if got["eta_us"] != round(sent["eta"] * 1_000_000):
                    eta_us_mismatch += 1
                if sent["eta"] <= acked:
                    passed += 1
                    worst_passed_ms = max(worst_passed_ms, (acked - sent["eta"]) * 1000)
            added += len(chunk)
            bar.update(added)

    await asyncio.gather(*(poster() for _ in range(POSTERS)))
    return {
        "added": added,
        "eta_passed_at_ack": passed,
        "eta_passed_worst_ms": round(worst_passed_ms, 3),
        "eta_us_answer_mismatches": eta_us_mismatch,
    }


async def pushd_eta(ctx: Context, offsets: list[float], lead: float) -> dict[str, Any]:
    n, window = len(offsets), offsets[-1] if offsets else 0.0
    label = "pushd-eta"
    queue_yaml = "queue:\n" + harness.push_queue_yaml()
    settings = harness.settings_yaml(CONNECTIONS, "full")
    async with ctx.pushd(label, queue_yaml=queue_yaml, settings_yaml=settings) as daemon:
        # Warm-up: WARM tasks due now open pushd's connections to the receiver, as a running
        # daemon's would be; the baseline opens as many before its first ETA.
        await ctx.receiver.reset()
        warm = [{"name": f"warm-{i}", "url": f"/eta-warm/{i}"} for i in range(WARM)]
        await post_json(
            ctx.session, f"{daemon.url}/api/v1/queues/{harness.QUEUE}/tasks", {"tasks": warm}
        )
        await ctx.receiver.wait_count(WARM, 30.0)
        await harness.wait_empty(ctx.session, daemon.url, 30.0)
        await ctx.receiver.reset()
        start = time.time()
        etas = {f"eta-{i}": round(start + lead + o, 6) for i, o in enumerate(offsets)}
        tasks = [{"name": name, "url": f"/eta/{name}", "eta": eta} for name, eta in etas.items()]
        with Progress(f"{label}: adding", n) as bar:
            added = await _add(ctx.session, daemon.url, tasks, bar)
        add_s = time.time() - start
        say(
            f"{label}: added {n:,} in {add_s:.2f} s (first ETA at +{lead:g} s); "
            f"ETAs passed at ack: {added['eta_passed_at_ack']}"
        )
        timeout = max(lead + window - (time.time() - start), 0.0) + SETTLE_TIMEOUT_S
        cpu, (ran, waited) = cpu_s(daemon.pid), run_wait_s(daemon.pid)  # idle until the 1st ETA
        with Progress(f"{label}: delivering", n) as bar:
            hits = await ctx.receiver.wait_count(n, timeout, bar.update)
        used = cpu_s(daemon.pid) - cpu
        ran_after, waited_after = run_wait_s(daemon.pid)
        busy = time.time() - (start + lead)  # first ETA to last arrival
        await asyncio.sleep(0.2)  # a duplicate right behind the last delivery would still show
        hits = await ctx.receiver.hits()
        await harness.wait_empty(ctx.session, daemon.url, 30.0)
    tolerance = EARLY_TOLERANCE_MS.get(ctx.receiver.kind, 1.0)
    result = analyse(hits, "/eta/", etas, tolerance)
    result.update(system="pushd", n=n, window_s=window, lead_s=lead, add_s=round(add_s, 3))
    result.update(
        daemon_cpu_us_per_delivery=round(1e6 * used / max(n, 1), 1),
        daemon_cpu_pct=round(100 * used / busy, 1) if busy > 0 else 0.0,
        daemon_ran_s=round(ran_after - ran, 3),
        daemon_waited_for_cpu_s=round(waited_after - waited, 3),
    )
    result.update(added)
    return result


# ------------------------------------------------------------------ baseline


async def timer_baseline(ctx: Context, offsets: list[float]) -> dict[str, Any]:
    """asyncio timers in this process firing raw aiohttp POSTs at the same ETA schedule."""
    n, window = len(offsets), offsets[-1] if offsets else 0.0
    url = ctx.receiver.url + "/eta-raw/"
    loop = asyncio.get_running_loop()
    await ctx.receiver.reset()
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, limit_per_host=0)
    failed = rearmed = 0
    done = 0
    finished = asyncio.Event()
    pending: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector) as session:

        async def warm_up(i: int) -> None:
            async with session.post(f"{ctx.receiver.url}/eta-warm/{i}", data=harness.PAYLOAD) as r:
                await r.read()

        await asyncio.wait_for(asyncio.gather(*(warm_up(i) for i in range(WARM))), 30.0)
        await ctx.receiver.wait_count(WARM, 30.0)
        await ctx.receiver.reset()
        base = time.time() + BASELINE_LEAD_S
        etas = {f"raw-{i}": round(base + o, 6) for i, o in enumerate(offsets)}
        names = list(etas)

        async def post(name: str) -> None:
            nonlocal failed, done
            headers = {
                "X-AppEngine-TaskName": name,
                "X-AppEngine-QueueName": "raw",
                "X-AppEngine-TaskETA": f"{etas[name]:.6f}",
            }
            try:
                async with session.post(url + name, data=harness.PAYLOAD, headers=headers) as r:
                    await r.read()
            except (aiohttp.ClientError, TimeoutError):
                failed += 1
            done += 1
            if done == n:
                finished.set()

        def fire(name: str) -> None:
            nonlocal rearmed
            early = etas[name] - time.time()
            if early > 0:  # the monotonic clock ran ahead of the wall clock: never early
                rearmed += 1
                loop.call_at(loop.time() + early, fire, name)
                return
            task = loop.create_task(post(name))
            pending.add(task)
            task.add_done_callback(pending.discard)

        offset = time.time() - loop.time()  # wall = loop time + offset
        handles = [loop.call_at(etas[name] - offset, fire, name) for name in names]
        deadline = time.monotonic() + BASELINE_LEAD_S + window + SETTLE_TIMEOUT_S
        try:
            with Progress("baseline timers: delivering", n) as bar:
                while not finished.is_set() and n:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"baseline: {done} of {n} POSTs done in time")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(finished.wait(), 0.5)
                    bar.update(done)
        finally:
            for handle in handles:
                handle.cancel()
            for task in list(pending):
                task.cancel()
    hits = await ctx.receiver.wait_count(n - failed, 30.0)
    tolerance = EARLY_TOLERANCE_MS.get(ctx.receiver.kind, 1.0)
    result = analyse(hits, "/eta-raw/", etas, tolerance)
    result.update(
        system="asyncio timers + raw aiohttp",
        n=n,
        window_s=window,
        lead_s=BASELINE_LEAD_S,
        failed_posts=failed,
        timers_rearmed=rearmed,
    )
    return result


# ------------------------------------------------------------------ the scenario


def _row(r: dict[str, Any]) -> list[str]:
    return [
        r["system"],
        f"{r['delivered']:,}/{r['n']:,}",
        f"{r['p50_ms']:.1f}",
        f"{r['p99_ms']:.1f}",
        f"{r['max_ms']:.1f}",
        f"{r['min_ms']:.1f}",
        f"{r['early']}",
        f"{r['duplicates']}",
        f"{r['header_eta_mismatches']}",
    ]


async def run(ctx: Context) -> Result:
    from benchmarks import charts  # matplotlib loads only when drawing

    n = ctx.n(full=20_000, quick=5_000, smoke=200)
    window = ctx.n(full=20, quick=5, smoke=1)
    offsets = schedule(n, window)
    lead = lead_s(n)
    ours = await pushd_eta(ctx, offsets, lead)
    say(
        f"pushd: lateness p50 {ours['p50_ms']:.1f} ms, p99 {ours['p99_ms']:.1f} ms, "
        f"max {ours['max_ms']:.1f} ms, early {ours['early']}"
    )
    floor = await timer_baseline(ctx, offsets)
    say(
        f"baseline: lateness p50 {floor['p50_ms']:.1f} ms, p99 {floor['p99_ms']:.1f} ms, "
        f"max {floor['max_ms']:.1f} ms, early {floor['early']}"
    )
    tolerance = EARLY_TOLERANCE_MS.get(ctx.receiver.kind, 1.0)
    ours_late, floor_late = ours.pop("lateness_ms"), floor.pop("lateness_ms")
    ratio = ours["p99_ms"] / floor["p99_ms"] if floor["p99_ms"] > 0 else float("inf")
    rows = [
        [
            "system",
            "delivered",
            "p50 ms",
            "p99 ms",
            "max ms",
            "min ms",
            f"early (< -{tolerance:g} ms)",
            "dups",
            "ETA header ≠ set",
        ],
        _row(ours),
        _row(floor),
    ]
    notes = [
        f"{n:,} ETAs uniform over {window:g} s ({n / window:,.0f}/s); pushd's first ETA "
        f"{lead:g} s after the adds began, which took {ours['add_s']:.2f} s; "
        f"{ours['eta_passed_at_ack']} ETAs had passed when their add was acknowledged"
        + (
            f" (worst by {ours['eta_passed_worst_ms']:.1f} ms)" if ours["eta_passed_at_ack"] else ""
        ),
        f"pushd used {ours['daemon_cpu_pct']:.0f} % of a CPU from the first ETA to the last "
        f"arrival ({ours['daemon_cpu_us_per_delivery']:.0f} µs per delivery) and waited "
        f"{ours['daemon_waited_for_cpu_s']:.2f} s for a CPU while it ran "
        f"{ours['daemon_ran_s']:.2f} s (other processes); load average "
        f"{os.getloadavg()[0]:.1f} at the end",
        f"receiver {ctx.receiver.kind}: arrival times "
        + (
            "are whole ms (nginx's cached time when its event loop woke), so a lateness is "
            "up to 1 ms lower than the truth and down to -1 ms counts as on time"
            if ctx.receiver.kind == "nginx"
            else "have µs resolution (time.time() in the aiohttp handler)"
        ),
        "lateness by quarter of the window, p50/p99 ms, pushd: "
        + ", ".join(f"{q['p50_ms']:.1f}/{q['p99_ms']:.1f}" for q in ours["by_quarter"])
        + "; baseline: "
        + ", ".join(f"{q['p50_ms']:.1f}/{q['p99_ms']:.1f}" for q in floor["by_quarter"]),
    ]
    for r in (ours, floor):
        problems = [
            f"{r[key]} {what}"
            for key, what in (
                ("missing", "never delivered"),
                ("duplicates", "delivered twice"),
                ("header_eta_mismatches", "with X-AppEngine-TaskETA ≠ the ETA set"),
                ("unknown_names", "with an unknown task name"),
                ("eta_us_answer_mismatches", "answered with another eta_us than sent"),
            )
            if r.get(key)
        ]
        if r["early"]:
            problems.append(f"{r['early']} delivered early (worst {r['early_worst_ms']} ms)")
        if problems:
            notes.append(f"{r['system']}: " + "; ".join(problems))
    charts_made = [
        charts.lateness(
            ctx.chart("eta", "lateness"),
            ours_late,
            target_p99_ms=TARGET_P99_MS,
            title=f"pushd ETA lateness, {ctx.receiver.kind} receiver",
        ),
        charts.lateness(
            ctx.chart("eta", "lateness-baseline"),
            floor_late,
            target_p99_ms=TARGET_P99_MS,
            title=f"Baseline (asyncio timers + aiohttp) lateness, {ctx.receiver.kind} receiver",
        ),
    ]
    return Result(
        "eta",
        rows,
        data={"pushd": ours, "baseline": floor, "receiver_kind": ctx.receiver.kind},
        ratios={"pushd p99 / baseline p99": round(ratio, 3)},
        targets=[
            Target("pushd lateness p99 (ms)", ours["p99_ms"], TARGET_P99_MS, at_least=False),
            Target(f"pushd early deliveries (< -{tolerance:g} ms)", ours["early"], 0, False),
        ],
        charts=charts_made,
        notes=notes,
    )
