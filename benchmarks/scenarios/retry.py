"""Scenario 6: a retry storm, the receiver failing 30 % of requests at random.

Measured in one run against one receiver (``/fail/30/<i>`` answers 500 to 30 % at random):

* **pushd**: a fresh daemon (SQLite, ``durability: full``, ``max_connections`` 64), one queue
  at ``rate: 100000/s, bucket_size: 10000`` with ``retry_parameters`` ``min_backoff_seconds:
  0.1, max_backoff_seconds: 1`` (``max_doublings`` 16 by default) and no retry limit; paused,
  N tasks added in batches of 100, resumed; waited for until ``stats.tasks == 0``, then a
  quiet second (0.3 s in smoke runs) in which nothing may arrive. From the receiver's hits:
  successes/s (first to last success), attempts and attempts/s (first to last attempt), the
  failure share, and per task the correctness of its attempts in arrival order:
  ``X-AppEngine-TaskRetryCount`` is exactly 0, 1, ..., k, the first k answered 500 and the last
  200 (one success, never repeated); and each retry came no sooner than App Engine's backoff
  after the failed attempt (``min(max, min × 2^min(n−1, max_doublings) × max(1, n −
  max_doublings))`` for the n-th retry; 5 ms allowed for the receiver's timestamps, which
  nginx logs in ms);
* **raw aiohttp**: the baseline, the raw aiohttp client doing the same job: N tasks, 64 in
  flight, one keep-alive session, re-POSTing a task immediately after a 500 until it gets a
  200; successes/s and attempts/s from the receiver's hits in the same way.

Ratio: pushd ÷ raw successes/s (no target: pushd waits out a backoff the raw client skips).
Targets: no wrong retry-count sequence, no repeated success, no retry before its backoff, and a
failure share within 4 standard deviations of 30 %.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import aiohttp

from benchmarks import harness
from benchmarks.harness import Progress, post_json, rate, say, span_rate
from benchmarks.scenarios import Context, Result, Target

if TYPE_CHECKING:
    from benchmarks.receivers import Hit

FAIL_PCT = 30
CONCURRENCY = 64
MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 1.0
MAX_DOUBLINGS = 16  # App Engine's default
TIMESTAMP_SLACK_S = 0.005  # nginx logs arrival in ms (msec − request_time): ±2 ms, and some
DELIVERY_TIMEOUT_S = 300.0


def backoff_s(n: int) -> float:
    """App Engine's wait before the n-th retry (n = 1 after the first failure), SPEC 4.2."""
    e = min(n - 1, MAX_DOUBLINGS)
    return min(MAX_BACKOFF_S, MIN_BACKOFF_S * 2**e * max(1, n - e))


def queue_yaml() -> str:
    extra = (
        "  retry_parameters:\n"
        f"    min_backoff_seconds: {MIN_BACKOFF_S}\n"
        f"    max_backoff_seconds: {MAX_BACKOFF_S}\n"
    )
    return "queue:\n" + harness.push_queue_yaml(extra=extra)


def analyse(hits: list[Hit], backoff: bool = True) -> dict[str, Any]:
    """Attempts, successes and their correctness per task (hits grouped by path, by arrival).

    With ``backoff``, each retry's gap after the failed attempt is checked against
    :func:`backoff_s` (the raw client has none).
    """
    by_task: dict[str, list[Hit]] = defaultdict(list)
    for h in hits:  # in arrival order already
        by_task[h.path].append(h)
    successes = [h.t for h in hits if h.status == 200]
    failures = sum(1 for h in hits if h.status != 200)
    wrong: list[dict[str, Any]] = []
    repeated = unsucceeded = early = most_failures = 0
    late_ms: list[float] = []  # how long after its backoff each retry came
    worst_early: dict[str, Any] | None = None
    for path, attempts in by_task.items():
        statuses = [h.status for h in attempts]
        ok = statuses.count(200)
        repeated += max(ok - 1, 0)
        unsucceeded += ok == 0
        most_failures = max(most_failures, statuses.index(200) if ok else len(statuses))
        retries = [h.retry for h in attempts]
        if retries != list(range(len(attempts))) or statuses[-1] != 200 or ok != 1:
            wrong.append({"path": path, "retry_counts": retries, "statuses": statuses})
        if not backoff:
            continue
        for k in range(1, len(attempts)):
            if attempts[k - 1].status == 200:
                continue  # an attempt after a success: counted in ``repeated``
            gap, wait = attempts[k].t - attempts[k - 1].t, backoff_s(k)
            late_ms.append(1000 * (gap - wait))
            if gap < wait - TIMESTAMP_SLACK_S:
                early += 1
                if worst_early is None or gap - wait < worst_early["gap_s"] - worst_early["wait_s"]:
                    worst_early = {"path": path, "retry": k, "gap_s": gap, "wait_s": wait}
    total = len(hits)
    first = hits[0].t if hits else 0.0
    to_99 = successes[max(0, -(-99 * len(successes) // 100) - 1)] - first if successes else 0.0
    result: dict[str, Any] = {
        "tasks_seen": len(by_task),
        "attempts": total,
        "successes": len(successes),
        "failures": failures,
        "retries": total - len(by_task),
        "failure_share": round(failures / total, 4) if total else 0.0,
        "successes_per_s": round(span_rate(successes), 1),
        "attempts_per_s": round(span_rate([h.t for h in hits]), 1),
        "success_span_s": round(max(successes) - min(successes), 3) if successes else 0.0,
        "first_attempt_to_99pct_successes_s": round(to_99, 3),
        "most_failures_of_a_task": most_failures,
        "wrong_sequences": len(wrong),
        "wrong_sequence_examples": wrong[:5],
        "repeated_successes": repeated,
        "tasks_without_success": unsucceeded,
    }
    if backoff:
        result |= {
            "retries_before_backoff": early,
            "worst_early_retry": worst_early,
            "retry_after_backoff_ms_p50": round(harness.percentile(late_ms, 50), 1),
            "retry_after_backoff_ms_p99": round(harness.percentile(late_ms, 99), 1),
        }
    return result


async def pushd_retry(ctx: Context, n: int, quiet_s: float) -> dict[str, Any]:
    """A fresh daemon delivers ``n`` tasks to ``/fail/30/``, retrying with backoff."""
    label = "retry"
    settings = harness.settings_yaml(CONCURRENCY, "full")
    async with ctx.pushd(label, queue_yaml=queue_yaml(), settings_yaml=settings) as daemon:
        api = daemon.url
        await post_json(ctx.session, f"{api}/api/v1/queues/{harness.QUEUE}/pause")
        tasks = [{"name": f"retry-{i}", "url": f"/fail/{FAIL_PCT}/{i}"} for i in range(n)]
        with Progress("retry: adding", n) as bar:
            await harness.add_tasks(ctx.session, api, tasks, progress=bar)
        await ctx.receiver.reset()
        cpu = harness.cpu_s(daemon.pid)
        await post_json(ctx.session, f"{api}/api/v1/queues/{harness.QUEUE}/resume")
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        with Progress("retry: tasks succeeded", n) as bar:
            while (left := (await harness.queue_stats(ctx.session, api))["tasks"]) > 0:
                bar.update(n - left)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{left} of {n} tasks left after {DELIVERY_TIMEOUT_S:g}s")
                await asyncio.sleep(0.05)
            bar.update(n)
        used = harness.cpu_s(daemon.pid) - cpu
        count = await ctx.receiver.count()
        await asyncio.sleep(quiet_s)  # a success delivered again, or a stray retry, shows here
        after_empty = await ctx.receiver.count() - count
        stats = await harness.queue_stats(ctx.session, api)
    hits = [h for h in await ctx.receiver.hits() if h.name.startswith("retry-")]
    result = {
        "system": "pushd",
        "n": n,
        "concurrency": CONCURRENCY,
        **analyse(hits),
        "arrived_after_empty": after_empty,
        "dead_letters": stats.get("dead_letters"),
        "daemon_cpu_us_per_attempt": round(1e6 * used / max(len(hits), 1), 1),
    }
    say(
        f"retry: pushd {result['successes_per_s']:,.0f} successes/s, {result['attempts']:,} "
        f"attempts, wrong sequences {result['wrong_sequences']}, early retries "
        f"{result['retries_before_backoff']}"
    )
    return result


async def raw_retry(ctx: Context, n: int, concurrency: int = CONCURRENCY) -> dict[str, Any]:
    """The raw aiohttp client: ``n`` tasks, re-POSTed at once after a 500 until a 200."""
    base = ctx.receiver.url
    await ctx.receiver.reset()
    counter = itertools.count()
    done = 0
    body = harness.PAYLOAD.encode()
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    with Progress("retry: raw aiohttp", n) as bar:

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal done
            while (i := next(counter)) < n:
                for attempt in itertools.count():
                    headers = {
                        "X-AppEngine-TaskName": f"raw-{i}",
                        "X-AppEngine-TaskRetryCount": str(attempt),
                    }
                    url = f"{base}/fail/{FAIL_PCT}/raw-{i}"
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status == 200:
                            break
                        if resp.status != 500:
                            raise RuntimeError(f"the receiver answered {resp.status} to {url}")
                done += 1
                bar.update(done)

        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            warm = [session.get(f"{base}/warm/{i}") for i in range(concurrency)]
            for resp in await asyncio.gather(*warm):  # open the connections first
                resp.release()
            cpu, start = time.process_time(), time.monotonic()
            await asyncio.wait_for(
                asyncio.gather(*(worker(session) for _ in range(concurrency))),
                DELIVERY_TIMEOUT_S,
            )
            wall, cpu = time.monotonic() - start, time.process_time() - cpu
    hits = [h for h in await ctx.receiver.hits() if h.name.startswith("raw-")]
    result = {
        "system": "raw aiohttp",
        "n": n,
        "concurrency": concurrency,
        **analyse(hits, backoff=False),
        "client_cpu_pct": round(100 * rate(cpu, wall), 1),
    }
    say(
        f"retry: raw aiohttp {result['successes_per_s']:,.0f} successes/s, "
        f"{result['attempts']:,} attempts"
    )
    return result


def _share_tolerance(attempts: int) -> float:
    """4 standard deviations of the failure share over ``attempts`` Bernoulli(0.3) draws."""
    p = FAIL_PCT / 100
    return 4 * math.sqrt(p * (1 - p) / max(attempts, 1))


async def run(ctx: Context) -> Result:
    from benchmarks import charts  # matplotlib loads only when drawing

    load = [round(x, 2) for x in os.getloadavg()]  # the machine is shared: noise shows here

    n = ctx.n(full=20_000, quick=5_000, smoke=200)
    raw = await raw_retry(ctx, n)
    quiet_s = 1.0 if ctx.scale != "smoke" else 0.3  # after the queue emptied: nothing may come
    ours = await pushd_retry(ctx, n, quiet_s)
    ratio = ours["successes_per_s"] / max(raw["successes_per_s"], 1e-9)
    rows = [
        [
            "system",
            "tasks",
            "successes/s",
            "attempts",
            "attempts/s",
            "retries",
            "failed %",
            "most failures",
            "wrong retry seqs",
            "repeated successes",
            "retries early",
        ]
    ]
    for r in (raw, ours):
        rows.append(
            [
                r["system"],
                f"{r['n']:,}",
                f"{r['successes_per_s']:,.0f}",
                f"{r['attempts']:,}",
                f"{r['attempts_per_s']:,.0f}",
                f"{r['retries']:,}",
                f"{100 * r['failure_share']:.1f}",
                f"{r['most_failures_of_a_task']}",
                f"{r['wrong_sequences']}",
                f"{r['repeated_successes']}",
                f"{r['retries_before_backoff']}"
                if "retries_before_backoff" in r
                else "(no backoff)",
            ]
        )
    deviation = abs(ours["failure_share"] - FAIL_PCT / 100)
    tolerance = _share_tolerance(ours["attempts"])
    targets = [
        Target("pushd tasks with a wrong retry-count sequence", ours["wrong_sequences"], 0, False),
        Target("pushd successes repeated", ours["repeated_successes"], 0, False),
        Target("pushd retries before their backoff", ours["retries_before_backoff"], 0, False),
        Target("pushd arrivals after the queue emptied", ours["arrived_after_empty"], 0, False),
        Target(
            f"|failure share − {FAIL_PCT}%| (4σ over the attempts)", deviation, tolerance, False
        ),
    ]
    notes = [
        f"pushd waits min_backoff {MIN_BACKOFF_S:g}s doubling to {MAX_BACKOFF_S:g}s before a "
        "retry, the raw client none: the slowest task's chain of backoffs bounds pushd's "
        f"success span ({ours['success_span_s']:g} s, most failures of a task "
        f"{ours['most_failures_of_a_task']})",
        f"pushd retries came {ours['retry_after_backoff_ms_p50']:g} ms (p50) and "
        f"{ours['retry_after_backoff_ms_p99']:g} ms (p99) after their backoff: a retry is due "
        "after the tasks due before it, so it waits for the first wave to be delivered",
        f"99% of the tasks had succeeded {ours['first_attempt_to_99pct_successes_s']:g} s after "
        f"pushd's first attempt ({raw['first_attempt_to_99pct_successes_s']:g} s raw)",
    ]
    if ours["worst_early_retry"]:
        notes.append(f"earliest retry: {ours['worst_early_retry']}")
    if ours["wrong_sequence_examples"]:
        notes.append(f"wrong sequences, e.g. {ours['wrong_sequence_examples'][:2]}")
    if ours["tasks_seen"] != n or ours["tasks_without_success"]:
        notes.append(
            f"pushd: {ours['tasks_seen']} of {n} tasks seen, "
            f"{ours['tasks_without_success']} without a success"
        )
    chart = charts.bars(
        ctx.chart("retry", "throughput"),
        f"Retry storm: {n:,} tasks, receiver fails {FAIL_PCT}% at random",
        "successes/s (first to last success)",
        [
            ("raw aiohttp, immediate retry", raw["successes_per_s"]),
            ("pushd", ours["successes_per_s"]),
        ],
        baseline="raw aiohttp, immediate retry",
        note=ctx.note,
    )
    return Result(
        "retry",
        rows,
        data={"loadavg_at_start": load, "raw": raw, "pushd": ours},
        ratios={"pushd/raw successes_per_s": round(ratio, 3)},
        targets=targets,
        charts=[chart],
        notes=notes,
    )
