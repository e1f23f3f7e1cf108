"""Scenario 5: rate accuracy, queues at 1/s, 50/s and 500/s with small and large buckets.

One fresh daemon (SQLite, ``durability: full``, ``max_connections`` 64) serves six push queues
at once, each rate with a small and a large bucket:

=========  ======  ======
queue      rate    bucket
=========  ======  ======
r1-b1      1/s     1
r1-b10     1/s     10
r50-b5     50/s    5
r50-b100   50/s    100
r500-b10   500/s   10
r500-b500  500/s   500
=========  ======  ======

Each queue is paused, filled with B + R·D tasks (B its bucket, R its rate, D = 30 s full, 10 s
quick, 1 s smoke), then all six are resumed together. A token bucket that starts full delivers
B tasks at once and then R per second, so each queue should take D seconds. Before that, 64
tasks of an unthrottled seventh queue open the daemon's connections to the receiver, so the
first arrivals, which the rate is measured from, pay no connect.

Measured per queue from the receiver's arrivals (``X-AppEngine-QueueName`` tells which):

* **delivered rate** = (count − B) / (last − first arrival); **rate error** = |delivered −
  configured| ÷ configured. The baseline is the configured rate: ratio delivered ÷ configured;
* **largest burst**: the most arrivals in any window of width w (10 ms, 100 ms, 1 s) against
  what a token bucket allows, B + R·w, plus one arrival for timing (nginx logs whole
  milliseconds, and arrivals jitter against dispatches); reported as burst ÷ (B + R·w + 1);
* **cumulative excess**: how far the arrivals ever got ahead of a bucket full at resume,
  max over k of (k − R·(t_k − resume)) − B, again allowing one (arrival delays cannot hide a
  violation of this one, while they can make a window look busier);
* duplicates: tasks delivered more than once.

Targets: rate error <= 2 % for every queue; no burst above what the bucket allows (burst ÷
allowed <= 1 for every queue and window); no duplicate.
"""

from __future__ import annotations

import asyncio
import os
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmarks import harness
from benchmarks.harness import Progress, cpu_s, post_json, say
from benchmarks.scenarios import Context, Result, Target
from benchmarks.scenarios.eta import run_wait_s

if TYPE_CHECKING:
    from benchmarks.receivers import Hit

CONNECTIONS = 64
WARM_QUEUE = "rate-warm"  # an unthrottled queue that opens the connections first
TARGET_ERROR_PCT = 2.0
WINDOWS_S = (0.01, 0.1, 1.0)
TIMING_ALLOWANCE = 1  # extra arrivals allowed in a window for timing resolution and jitter
SETTLE_TIMEOUT_S = 30.0  # beyond the expected D seconds


@dataclass(frozen=True)
class RateQueue:
    name: str
    rate: float  # tasks per second
    bucket: int

    def tasks(self, duration_s: float) -> int:
        return self.bucket + round(self.rate * duration_s)


QUEUES = (
    RateQueue("r1-b1", 1, 1),
    RateQueue("r1-b10", 1, 10),
    RateQueue("r50-b5", 50, 5),
    RateQueue("r50-b100", 50, 100),
    RateQueue("r500-b10", 500, 10),
    RateQueue("r500-b500", 500, 500),
)


def largest_burst(times: list[float], window_s: float) -> tuple[int, int]:
    """The most of the sorted ``times`` in any closed window ``[t, t + window_s]``, and its index."""
    best, at = 0, 0
    for i, t in enumerate(times):
        count = bisect_right(times, t + window_s + 1e-9) - i
        if count > best:
            best, at = count, i
    return best, at


def cumulative_excess(times: list[float], q: RateQueue, start: float) -> float:
    """max over k of (k + 1 − R·(t_k − start)) − B: arrivals ahead of a bucket full at start."""
    return max((k + 1 - q.rate * (t - start) for k, t in enumerate(times)), default=0.0) - q.bucket


def _silence_ms(times: list[float], t: float) -> float | None:
    """How long before ``t`` the last of the sorted ``times`` earlier than ``t`` arrived."""
    i = bisect_left(times, t)
    return round((t - times[i - 1]) * 1000, 1) if i > 0 else None


def analyse(
    q: RateQueue, n: int, mine: list[Hit], everyone: list[float], resume: float
) -> dict[str, Any]:
    """Rate and bursts of one queue from its hits (sorted by arrival), ``resume`` the resume time.

    ``everyone`` is every arrival of every queue (sorted): a silence of all queues before a
    burst points at a stall (of the receiver or of the whole machine) rather than at one queue.
    """
    times = [h.t for h in mine]
    firsts: list[float] = []
    seen: set[str] = set()
    for h in mine:
        if h.name not in seen:
            seen.add(h.name)
            firsts.append(h.t)
    span = firsts[-1] - firsts[0] if len(firsts) > 1 else 0.0
    delivered = (len(firsts) - q.bucket) / span if span > 0 else 0.0
    bursts: dict[str, dict[str, Any]] = {}
    ratios: list[float] = []
    for w in WINDOWS_S:
        most, at = largest_burst(times, w)
        ratio = round(most / (q.bucket + q.rate * w + TIMING_ALLOWANCE), 3)
        ratios.append(ratio)
        bursts[f"{w * 1000:g}ms"] = {
            "max": most,
            "bucket_allows": round(q.bucket + q.rate * w, 2),
            "ratio": ratio,
            "at_s": round(times[at] - resume, 4) if times else None,
            "queue_silent_before_ms": _silence_ms(times, times[at]) if times else None,
            "all_silent_before_ms": _silence_ms(everyone, times[at]) if times else None,
        }
    return {
        "queue": q.name,
        "rate_per_s": q.rate,
        "bucket_size": q.bucket,
        "tasks": n,
        "arrivals": len(times),
        "delivered": len(firsts),
        "missing": n - len(firsts),
        "duplicates": len(times) - len(firsts),
        "first_after_resume_ms": round((firsts[0] - resume) * 1000, 1) if firsts else None,
        "last_after_resume_s": round(firsts[-1] - resume, 3) if firsts else None,
        "span_s": round(span, 4),
        "expected_span_s": round((n - q.bucket) / q.rate, 4),
        "delivered_per_s": round(delivered, 4),
        "delivered_over_configured": round(delivered / q.rate, 4),
        "rate_error_pct": round(100 * abs(delivered - q.rate) / q.rate, 3),
        "bursts": bursts,
        "worst_burst_ratio": max(ratios),
        "cumulative_excess": round(cumulative_excess(times, q, resume), 2),
    }


async def deliver(ctx: Context, duration: float) -> dict[str, Any]:
    """One daemon, the six queues paused and filled, resumed together; every arrival."""
    counts = {q.name: q.tasks(duration) for q in QUEUES}
    total = sum(counts.values())
    label = "pushd-rate"
    queue_yaml = "queue:\n" + "".join(
        harness.push_queue_yaml(q.name, rate=f"{q.rate:g}/s", bucket_size=q.bucket) for q in QUEUES
    )
    queue_yaml += harness.push_queue_yaml(WARM_QUEUE)  # unthrottled
    settings = harness.settings_yaml(CONNECTIONS, "full")
    async with ctx.pushd(label, queue_yaml=queue_yaml, settings_yaml=settings) as daemon:
        api = daemon.url
        await asyncio.gather(
            *(post_json(ctx.session, f"{api}/api/v1/queues/{q.name}/pause") for q in QUEUES)
        )
        # Warm-up: open pushd's connections to the receiver, as a running daemon's would be, so
        # the first arrivals (which the delivered rate is measured from) pay no connect.
        await ctx.receiver.reset()
        warm = [{"name": f"warm-{i}", "url": f"/warm/{i}"} for i in range(CONNECTIONS)]
        await harness.add_tasks(ctx.session, api, warm, queue=WARM_QUEUE)
        await ctx.receiver.wait_count(len(warm), 30.0)
        for q in QUEUES:
            tasks = [
                {"name": f"{q.name}-{i}", "url": f"/rate/{q.name}/{i}"}
                for i in range(counts[q.name])
            ]
            with Progress(f"{label}: adding to {q.name}", len(tasks)) as bar:
                await harness.add_tasks(ctx.session, api, tasks, queue=q.name, progress=bar)
        await ctx.receiver.reset()
        cpu, (ran, waited) = cpu_s(daemon.pid), run_wait_s(daemon.pid)
        resume = time.time()
        await asyncio.gather(
            *(post_json(ctx.session, f"{api}/api/v1/queues/{q.name}/resume") for q in QUEUES)
        )
        resumed_in = time.time() - resume
        say(
            f"{label}: {total:,} tasks in {len(QUEUES)} queues resumed in {resumed_in * 1000:.0f} ms"
        )
        with Progress(f"{label}: delivering", total) as bar:
            await ctx.receiver.wait_count(total, 2 * duration + SETTLE_TIMEOUT_S, bar.update)
        elapsed = time.time() - resume
        used = cpu_s(daemon.pid) - cpu
        ran_after, waited_after = run_wait_s(daemon.pid)
        await asyncio.sleep(0.5)  # a duplicate right behind the last delivery would still show
        hits = [h for h in await ctx.receiver.hits() if h.path.startswith("/rate/")]
        for q in QUEUES:
            await harness.wait_empty(ctx.session, api, 10.0, queue=q.name)
    return {
        "counts": counts,
        "hits": hits,
        "resume": resume,
        "resumed_in_s": round(resumed_in, 4),
        "daemon_cpu_pct": round(100 * used / elapsed, 1) if elapsed > 0 else 0.0,
        "delivery_s": round(elapsed, 3),
        "daemon_ran_s": round(ran_after - ran, 3),
        "daemon_waited_for_cpu_s": round(waited_after - waited, 3),
        "loadavg_at_end": os.getloadavg(),
    }


async def run(ctx: Context) -> Result:
    duration = ctx.n(full=30, quick=10, smoke=1)
    outcome = await deliver(ctx, duration)
    hits, resume = outcome.pop("hits"), outcome["resume"]
    everyone = [h.t for h in hits]
    results = [
        analyse(
            q, outcome["counts"][q.name], [h for h in hits if h.queue == q.name], everyone, resume
        )
        for q in QUEUES
    ]
    return report(ctx, results, duration, hits, outcome)


def report(
    ctx: Context,
    results: list[dict[str, Any]],
    duration: float,
    hits: list[Hit],
    run: dict[str, Any],
) -> Result:
    from benchmarks import charts  # matplotlib loads only when drawing

    rows = [
        [
            "queue",
            "rate/s",
            "bucket",
            "tasks",
            "delivered",
            "dups",
            "delivered/s",
            "÷ configured",
            "error %",
            *(f"burst {k} (max/B+Rw)" for k in results[0]["bursts"]),
            "worst burst ratio",
            "cum. excess",
        ]
    ]
    for r in results:
        rows.append(
            [
                r["queue"],
                f"{r['rate_per_s']:g}",
                f"{r['bucket_size']}",
                f"{r['tasks']:,}",
                f"{r['delivered']:,}",
                f"{r['duplicates']}",
                f"{r['delivered_per_s']:.3f}",
                f"{r['delivered_over_configured']:.4f}",
                f"{r['rate_error_pct']:.2f}",
                *(f"{b['max']}/{b['bucket_allows']:g}" for b in r["bursts"].values()),
                f"{r['worst_burst_ratio']:.2f}",
                f"{r['cumulative_excess']:.1f}",
            ]
        )
    targets = []
    for r in results:
        targets.append(
            Target(f"{r['queue']} rate error %", r["rate_error_pct"], TARGET_ERROR_PCT, False)
        )
    for r in results:
        targets.append(
            Target(f"{r['queue']} largest burst ÷ allowed", r["worst_burst_ratio"], 1.0, False)
        )
    duplicates = sum(r["duplicates"] for r in results)
    targets.append(Target("tasks delivered twice", duplicates, 0, at_least=False))
    notes = [
        f"each queue paused, filled with bucket + rate × {duration:g} s tasks, all resumed "
        f"together (6 resume calls in {run['resumed_in_s'] * 1000:.0f} ms); delivered rate = "
        "(count − bucket) / (last − first arrival); the daemon used "
        f"{run['daemon_cpu_pct']:.0f} % of a CPU over the {run['delivery_s']:.1f} s of delivery "
        f"and waited {run['daemon_waited_for_cpu_s']:.2f} s for a CPU while it ran "
        f"{run['daemon_ran_s']:.2f} s (other processes); load average "
        f"{run['loadavg_at_end'][0]:.1f} at the end",
        f"a burst is the most arrivals in a closed window of w; allowed = bucket + rate × w + "
        f"{TIMING_ALLOWANCE} (timing resolution and jitter); cumulative excess = max over k of "
        "(k − rate × (t_k − resume)) − bucket, should stay <= 1",
        f"receiver {ctx.receiver.kind}: arrival times "
        + ("are whole milliseconds" if ctx.receiver.kind == "nginx" else "have µs resolution"),
    ]
    for r in results:
        if r["missing"]:
            notes.append(f"{r['queue']}: {r['missing']} tasks never delivered")
        for w, b in r["bursts"].items():
            if b["ratio"] > 1:
                notes.append(
                    f"{r['queue']}: {b['max']} arrivals within {w} at +{b['at_s']:.3f} s, the "
                    f"bucket allows {b['bucket_allows']:g}; silence before: this queue "
                    f"{b['queue_silent_before_ms']} ms, every queue {b['all_silent_before_ms']} ms"
                )
        if r["cumulative_excess"] > TIMING_ALLOWANCE:
            notes.append(
                f"{r['queue']}: arrivals got {r['cumulative_excess']:.1f} tasks ahead of a "
                "token bucket full at resume"
            )
    window = 1.0 if duration >= 5 else 0.25
    series = [
        charts.RateSeries(
            r["queue"],
            r["rate_per_s"],
            r["bucket_size"],
            [h.t - run["resume"] for h in hits if h.queue == r["queue"]],
        )
        for r in results
    ]
    chart = charts.rate_over_time(
        ctx.chart("rate", "rate-over-time"),
        series,
        window_s=window,
        title=f"Delivered rate, 6 queues resumed together ({ctx.receiver.kind} receiver)",
    )
    return Result(
        "rate",
        rows,
        data={
            "duration_s": duration,
            "receiver_kind": ctx.receiver.kind,
            **{k: v for k, v in run.items() if k != "resume"},
            "queues": results,
        },
        ratios={
            f"{r['queue']} delivered/configured": r["delivered_over_configured"] for r in results
        },
        targets=targets,
        charts=[chart],
        notes=notes,
    )
