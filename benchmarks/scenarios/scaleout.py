"""Scenario 9: scale-out, the same backlog on SQLite, on PostgreSQL, and on two daemons sharing
one PostgreSQL database.

Measured in one run against one receiver, three configurations, each on a fresh database (a
SQLite file in its own run dir; a ``CREATE DATABASE`` of its own on one throwaway PostgreSQL
server, :mod:`tests.pgserver`, with PostgreSQL's durable defaults: ``fsync`` and
``synchronous_commit`` on), every daemon with ``max_connections`` 64 and ``durability: full``:

* **SQLite, 1 daemon**: the baseline;
* **PostgreSQL, 1 daemon**;
* **PostgreSQL, 2 daemons** on the same database (run dirs of their own, the same ``--db``),
  started one after the other and waited for until the five push queues (the four below and
  the implicit ``default``) are shared out 3 and 2 with two of the four benchmark queues each,
  from their ``queue_owned`` / ``queue_given_up`` log lines. (pushd hands out queues in name
  order: ``default`` sorts between the benchmark queues' names, so whichever daemon gets the
  larger share, each holds two of them.)

In each: four unthrottled push queues (``rate: 100000/s``, ``bucket_size: 10000``) are paused,
N tasks are added to them (N/4 each) in batches of 100 by 8 posters through the native API, as
:func:`benchmarks.harness.add_tasks` does (with two daemons, batch k goes through daemon k mod
2): **adds/s** from the first request to the last answer. The queues are then resumed (through
the last daemon, so with two the pause and the resume reach the owners by LISTEN/NOTIFY) and
the backlog delivered: **deliveries/s** from the first to the last arrival at the receiver,
every task delivered (distinct task names at the receiver == N), duplicates, nothing delivered
while paused, the queues empty at the end and nothing arriving in a quiet second after. Also the
daemons' CPU per delivery and per add, and the PostgreSQL server's CPU (the postmaster, its
live children and the children it reaped) per 1,000 deliveries and per 1,000 adds, the warnings
and errors in the daemons' logs and ERROR/FATAL lines in PostgreSQL's.

Ratios, deliveries/s and adds/s: PostgreSQL 1 daemon ÷ SQLite, PostgreSQL 2 daemons ÷ SQLite,
PostgreSQL 2 daemons ÷ PostgreSQL 1 daemon. Targets: correctness only (every task delivered, no
duplicate). Without PostgreSQL installed the PostgreSQL rows are skipped (under ``CI=true`` the
scenario fails instead, like the tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import harness
from benchmarks.harness import Progress, cpu_s, post_json, rate, say, span_rate
from benchmarks.scenarios import Context, Result, Target
from tests import pgserver

if TYPE_CHECKING:
    from benchmarks.harness import Child
    from benchmarks.receivers import Hit

# "default" (implicit) sorts between the first two and the last two: see the module docstring.
QUEUES = ("a-bench", "b-bench", "x-bench", "y-bench")
ALL_QUEUES = frozenset({*QUEUES, "default"})
CONCURRENCY = 64  # max_connections of every daemon
BATCH = 100
POSTERS = 8
ADD_TIMEOUT_S = 300.0
DELIVERY_TIMEOUT_S = 300.0
SHARE_TIMEOUT_S = 30.0  # a second daemon takes its share within a few renewals (1 s each)
EMPTY_TIMEOUT_S = 30.0
PROBLEM = re.compile(r"^(?:\S+Z )?(warning|error|critical)\b|Traceback")  # after the time
PG_PROBLEM = re.compile(r"\b(ERROR|FATAL|PANIC):")


@dataclass(frozen=True)
class Config:
    key: str  # in labels, task names and paths
    label: str  # in the table and the chart
    daemons: int
    postgres: bool


SQLITE = Config("sqlite", "SQLite, 1 daemon", 1, False)
PG1 = Config("postgres-1", "PostgreSQL, 1 daemon", 1, True)
PG2 = Config("postgres-2", "PostgreSQL, 2 daemons", 2, True)
CONFIGS = (SQLITE, PG1, PG2)


def queue_yaml() -> str:
    return "queue:\n" + "".join(harness.push_queue_yaml(q) for q in QUEUES)


# ------------------------------------------------------------------ processes and logs


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its children: its own and its reaped children's (utime,
    stime, cutime, cstime), plus its live children's (a PostgreSQL server: the postmaster, the
    backends and background workers, and the backends that exited)."""

    def fields(p: int) -> list[str]:
        stat = Path(f"/proc/{p}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()

    def total(f: list[str]) -> float:
        return sum(int(x) for x in f[11:15]) / harness.CLK_TCK

    used = total(fields(pid))
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            f = fields(int(stat.parent.name))
            if int(f[1]) == pid:
                used += total(f)
    return used


def holding(daemon: Child) -> set[str]:
    """The queues ``daemon`` dispatches now, from its queue_owned and queue_given_up lines."""
    held: set[str] = set()
    for event, queue in ownership_events(daemon):
        (held.add if event == "queue_owned" else held.discard)(queue)
    return held


def ownership_events(daemon: Child) -> list[tuple[str, str]]:
    found = []
    for line in harness.tail(daemon.log, 10**7).splitlines():
        # TIME LEVEL EVENT key=value...: the event is the third word
        event = line.split()[2:3]
        queue = re.search(r"\bqueue=(\S+)", line)
        if queue and event in (["queue_owned"], ["queue_given_up"]):
            found.append((event[0], queue.group(1)))
    return found


async def wait_shared(daemons: list[Child]) -> float:
    """Seconds until every push queue has one owner and each daemon holds its equal part of
    :data:`QUEUES`; raises after :data:`SHARE_TIMEOUT_S` with what each one held."""
    start = time.monotonic()
    each = len(QUEUES) // len(daemons)
    while True:
        held = [holding(d) for d in daemons]
        if (
            all(len(h & set(QUEUES)) == each for h in held)
            and set().union(*held) == ALL_QUEUES
            and sum(len(h) for h in held) == len(ALL_QUEUES)
        ):
            return time.monotonic() - start
        if time.monotonic() - start > SHARE_TIMEOUT_S:
            logs = "\n".join(f"{d.name}:\n{harness.tail(d.log)}" for d in daemons)
            raise RuntimeError(
                f"the queues were not shared out within {SHARE_TIMEOUT_S:g}s: "
                f"{[sorted(h) for h in held]}\n{logs}"
            )
        await asyncio.sleep(0.05)


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU of the machine so far, from ``/proc/stat``: whatever
    runs on it, this benchmark's processes or not."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values[:8]) - idle, sum(values[:8])  # without guest time (counted in user)


def problems(log: Path, pattern: re.Pattern[str]) -> list[str]:
    """The lines of ``log`` that ``pattern`` finds (warnings, errors, tracebacks)."""
    return [line for line in harness.tail(log, 10**7).splitlines() if pattern.search(line)]


# ------------------------------------------------------------------ one configuration


def batches(key: str, n: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """N tasks in batches of 100 for one queue each, the queues taking turns; task i goes to
    queue i mod 4 and is named ``<key>-<i>``."""
    per_queue: list[list[dict[str, Any]]] = [[] for _ in QUEUES]
    for i in range(n):
        k = i % len(QUEUES)
        per_queue[k].append({"name": f"{key}-{i}", "url": f"/scaleout/{key}/{QUEUES[k]}/{i}"})
    chunks = [
        [(QUEUES[k], tasks[j : j + BATCH]) for j in range(0, len(tasks), BATCH)]
        for k, tasks in enumerate(per_queue)
    ]
    return [c for row in itertools.zip_longest(*chunks) for c in row if c is not None]


async def add_spread(
    ctx: Context,
    apis: list[str],
    chunks: list[tuple[str, list[dict[str, Any]]]],
    progress: Progress,
) -> int:
    """POST each (queue, batch), batch k through ``apis[k % len(apis)]``, with 8 posters
    sharing the list (as :func:`benchmarks.harness.add_chunks` does); how many were added."""
    work = iter(enumerate(chunks))
    added = 0

    async def poster() -> None:
        nonlocal added
        for k, (queue, chunk) in work:
            url = f"{apis[k % len(apis)]}/api/v1/queues/{queue}/tasks"
            answer = await post_json(ctx.session, url, {"tasks": chunk})
            bad = [t["result"] for t in answer["tasks"] if t["result"] != "OK"]
            if bad:
                raise RuntimeError(f"add refused {len(bad)} tasks, e.g. {bad[0]}")
            added += len(chunk)
            progress.update(added)

    await asyncio.wait_for(asyncio.gather(*(poster() for _ in range(POSTERS))), ADD_TIMEOUT_S)
    return added


def _daemons_cpu_s(daemons: list[Child]) -> float:
    return sum(cpu_s(d.pid) for d in daemons)


async def measure(
    ctx: Context, cfg: Config, n: int, quiet_s: float, server: pgserver.PgServer | None
) -> dict[str, Any]:
    """One configuration on a fresh database: add N to the paused queues, resume, deliver."""
    db = await fresh_database(server, cfg.key) if server is not None else None
    settings = harness.settings_yaml(CONCURRENCY, "full")

    def pg_cpu() -> float:
        return tree_cpu_s(server.pid) if server is not None else 0.0

    def pg_problems() -> list[str]:
        return problems(server.log, PG_PROBLEM) if server is not None else []

    pg_problems_before = len(pg_problems())  # the server's log is shared by the configurations
    logs: list[Path] = []
    async with contextlib.AsyncExitStack() as stack:
        daemons: list[Child] = []
        for i in range(cfg.daemons):
            label = f"scaleout-{cfg.key}-{i + 1}"
            daemon = await stack.enter_async_context(
                ctx.pushd(label, queue_yaml=queue_yaml(), settings_yaml=settings, db=db)
            )
            daemons.append(daemon)
            logs.append(daemon.log)
        shared_s = await wait_shared(daemons) if cfg.postgres else 0.0
        held = [sorted(holding(d)) for d in daemons] if cfg.postgres else []
        if len(daemons) > 1:
            say(f"{cfg.key}: queues shared out after {shared_s:.1f}s: {held}")
        events_before = [len(ownership_events(d)) for d in daemons]
        first, last = daemons[0].url, daemons[-1].url
        await asyncio.gather(
            *(post_json(ctx.session, f"{first}/api/v1/queues/{q}/pause") for q in QUEUES)
        )
        await ctx.receiver.reset()
        chunks = batches(cfg.key, n)
        cpu, pg = _daemons_cpu_s(daemons), pg_cpu()
        with Progress(f"{cfg.key}: adding", n) as bar:
            start = time.monotonic()
            added = await add_spread(ctx, [d.url for d in daemons], chunks, bar)
            add_s = time.monotonic() - start
        add_cpu, add_pg = _daemons_cpu_s(daemons) - cpu, pg_cpu() - pg
        while_paused = await ctx.receiver.count()
        cpu, pg, busy = _daemons_cpu_s(daemons), pg_cpu(), machine_cpu()
        resumed_at = time.time()
        await asyncio.gather(  # together: the queues start as close together as they can
            *(post_json(ctx.session, f"{last}/api/v1/queues/{q}/resume") for q in QUEUES)
        )
        resume_ms = 1000 * (time.time() - resumed_at)
        with Progress(f"{cfg.key}: delivering", n) as bar:
            await ctx.receiver.wait_count(n, DELIVERY_TIMEOUT_S, bar.update)
        deliver_cpu, deliver_pg = _daemons_cpu_s(daemons) - cpu, pg_cpu() - pg
        busy_after = machine_cpu()
        machine_busy = (busy_after[0] - busy[0]) / max(busy_after[1] - busy[1], 1)
        for q in QUEUES:
            await harness.wait_empty(ctx.session, first, EMPTY_TIMEOUT_S, queue=q)
        count = await ctx.receiver.count()
        await asyncio.sleep(quiet_s)  # a task delivered again shows here
        after_empty = await ctx.receiver.count() - count
        hits = await ctx.receiver.hits()
        changes = [
            ownership_events(d)[before:] for d, before in zip(daemons, events_before, strict=True)
        ]
        pg_new = pg_problems()[pg_problems_before:]
    # The logs once every daemon has stopped: a shutdown's warnings count too.
    daemon_problems = [line for log in logs for line in problems(log, PROBLEM)]
    return summarise(
        cfg,
        n,
        hits,
        added=added,
        add_s=add_s,
        add_cpu=add_cpu,
        add_pg=add_pg,
        deliver_cpu=deliver_cpu,
        deliver_pg=deliver_pg,
        resumed_at=resumed_at,
        extra={
            "resume_of_the_4_queues_ms": round(resume_ms, 1),
            "machine_cpu_busy_pct_while_delivering": round(100 * machine_busy, 1),
            "delivered_while_paused": while_paused,
            "arrived_after_empty": after_empty,
            "shared_out_after_s": round(shared_s, 2),
            "queues_held": held,
            "ownership_changes_during_run": [c for c in changes if c],
            "daemon_log_problems": len(daemon_problems),
            "daemon_log_problem_examples": daemon_problems[:5],
            "postgres_log_problems": len(pg_new),
            "postgres_log_problem_examples": pg_new[:5],
        },
    )


def summarise(
    cfg: Config,
    n: int,
    hits: list[Hit],
    *,
    added: int,
    add_s: float,
    add_cpu: float,
    add_pg: float,
    deliver_cpu: float,
    deliver_pg: float,
    resumed_at: float,
    extra: dict[str, Any],
) -> dict[str, Any]:
    mine = [h for h in hits if h.path.startswith(f"/scaleout/{cfg.key}/")]
    names = {h.name for h in mine}
    per_queue = {q: sum(1 for h in mine if h.queue == q) for q in QUEUES}
    # Each queue's first and last arrival, in ms after the resume was sent: with two daemons,
    # whether both delivered side by side, and how soon a resume reached the other daemon.
    spans = {
        q: [round(1000 * (t - resumed_at)) for t in (min(times), max(times))]
        for q in QUEUES
        if (times := [h.t for h in mine if h.queue == q])
    }
    result: dict[str, Any] = {
        "config": cfg.key,
        "label": cfg.label,
        "daemons": cfg.daemons,
        "database": "PostgreSQL" if cfg.postgres else "SQLite",
        "n": n,
        "added": added,
        "adds_per_s": round(rate(added, add_s), 1),
        "deliveries_per_s": round(span_rate([h.t for h in mine]), 1),
        "delivered": len(names),
        "deliveries": len(mine),
        "duplicates": len(mine) - len(names),
        "deliveries_per_queue": per_queue,
        "queue_first_last_arrival_ms_after_resume": spans,
        "queues_started_within_ms": max(s[0] for s in spans.values())
        - min(s[0] for s in spans.values())
        if spans
        else 0,
        "daemon_cpu_us_per_add": round(1e6 * add_cpu / max(added, 1), 1),
        "daemon_cpu_us_per_delivery": round(1e6 * deliver_cpu / max(len(mine), 1), 1),
        **extra,
    }
    if cfg.postgres:
        result["postgres_cpu_s_per_1000_adds"] = round(1000 * add_pg / max(added, 1), 3)
        result["postgres_cpu_s_per_1000_deliveries"] = round(
            1000 * deliver_pg / max(len(mine), 1), 3
        )
    say(
        f"{cfg.key}: {result['adds_per_s']:,.0f} adds/s, {result['deliveries_per_s']:,.0f} "
        f"deliveries/s, {result['delivered']:,} of {n:,} delivered, duplicates "
        f"{result['duplicates']}, {result['daemon_log_problems']} warnings in the daemon logs"
    )
    return result


# ------------------------------------------------------------------ PostgreSQL


def start_postgres(ctx: Context) -> tuple[pgserver.PgServer | None, str]:
    """A throwaway server, or (None, why not); under CI=true PostgreSQL must be there.

    Started on the event loop's thread on purpose: its PR_SET_PDEATHSIG is bound to the thread
    that started it, and an executor's thread may exit before the run ends.
    """
    try:
        return pgserver.start(ctx.run_dir("scaleout-postgres")), ""
    except pgserver.PgUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"{exc}; CI=true: the scale-out benchmark needs it") from exc
        return None, str(exc)


async def fresh_database(server: pgserver.PgServer, name: str) -> str:
    """``CREATE DATABASE`` on ``server``: the new database's ``postgresql://`` URL."""
    return await server.create_database("bench_" + re.sub(r"\W", "_", name))


async def server_settings(server: pgserver.PgServer) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(server.dsn)
    try:
        names = ("server_version", "fsync", "synchronous_commit", "shared_buffers")
        return {name: str(await conn.fetchval(f"SHOW {name}")) for name in names}
    finally:
        await conn.close()


# ------------------------------------------------------------------ the scenario


def _ratios(runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    found = {}
    pairs = [(PG1, SQLITE), (PG2, SQLITE), (PG2, PG1)]
    for metric in ("deliveries_per_s", "adds_per_s"):
        for top, bottom in pairs:
            if top.key in runs and bottom.key in runs:
                value = runs[top.key][metric] / max(runs[bottom.key][metric], 1e-9)
                found[f"{top.key}/{bottom.key} {metric}"] = round(value, 3)
    return found


def _row(r: dict[str, Any], base: dict[str, Any]) -> list[str]:
    per_1000 = r.get("postgres_cpu_s_per_1000_deliveries")
    return [
        r["label"],
        f"{r['n']:,}",
        f"{r['adds_per_s']:,.0f}",
        f"{r['adds_per_s'] / max(base['adds_per_s'], 1e-9):.2f}",
        f"{r['deliveries_per_s']:,.0f}",
        f"{r['deliveries_per_s'] / max(base['deliveries_per_s'], 1e-9):.2f}",
        f"{r['delivered']:,}",
        f"{r['duplicates']}",
        f"{r['daemon_cpu_us_per_delivery']:.0f}",
        f"{per_1000:.2f}" if per_1000 is not None else "",
        f"{r['daemon_log_problems']}",
    ]


async def run(ctx: Context) -> Result:
    from benchmarks import charts  # matplotlib loads only when drawing

    load = [round(x, 2) for x in os.getloadavg()]  # the machine is shared: noise shows here
    n = ctx.n(full=50_000, quick=10_000, smoke=300)
    quiet_s = 1.0 if ctx.scale != "smoke" else 0.3
    runs: dict[str, dict[str, Any]] = {}
    runs[SQLITE.key] = await measure(ctx, SQLITE, n, quiet_s, None)
    server, skipped = start_postgres(ctx)
    settings: dict[str, str] = {}
    if server is not None:
        try:
            settings = await server_settings(server)
            say(f"PostgreSQL {settings['server_version']} at {server.dsn}")
            for cfg in (PG1, PG2):
                runs[cfg.key] = await measure(ctx, cfg, n, quiet_s, server)
        finally:
            server.stop()
    else:
        say(f"scaleout: PostgreSQL skipped: {skipped}")

    base = runs[SQLITE.key]
    rows = [
        [
            "configuration",
            "tasks",
            "adds/s",
            "÷ SQLite",
            "deliveries/s",
            "÷ SQLite",
            "delivered",
            "dups",
            "daemon CPU µs/delivery",
            "PG CPU s/1,000 deliveries",
            "log warnings",
        ]
    ]
    rows += [_row(r, base) for r in runs.values()]
    if server is None:
        rows += [[c.label, *[""] * 9, "skipped (see the note)"] for c in (PG1, PG2)]
    targets = []
    notes = []
    for r in runs.values():
        targets.append(Target(f"{r['label']}: tasks delivered (of {n:,})", r["delivered"], n))
        targets.append(Target(f"{r['label']}: duplicates", r["duplicates"], 0, False))
        targets.append(
            Target(f"{r['label']}: delivered while paused", r["delivered_while_paused"], 0, False)
        )
        if r["arrived_after_empty"]:
            notes.append(
                f"{r['label']}: {r['arrived_after_empty']} arrived after the queues emptied"
            )
        if r["daemon_log_problems"]:
            notes.append(
                f"{r['label']}: {r['daemon_log_problems']} warnings/errors in the daemon logs, "
                f"e.g. {r['daemon_log_problem_examples'][:2]}"
            )
        if r.get("postgres_log_problems"):
            notes.append(
                f"{r['label']}: {r['postgres_log_problems']} ERROR/FATAL lines in PostgreSQL's "
                f"log, e.g. {r['postgres_log_problem_examples'][:2]}"
            )
        if r.get("ownership_changes_during_run"):
            notes.append(
                f"{r['label']}: queue ownership changed during the run: "
                f"{r['ownership_changes_during_run']}"
            )
    if server is None:
        notes.append(f"PostgreSQL skipped: {skipped}")
    else:
        notes.append(
            f"PostgreSQL {settings.get('server_version')} (fsync {settings.get('fsync')}, "
            f"synchronous_commit {settings.get('synchronous_commit')}, shared_buffers "
            f"{settings.get('shared_buffers')}) on the same machine as the daemons and the "
            f"receiver; two daemons have {2 * CONCURRENCY} connections to the receiver in all"
        )
    notes.append(
        "the four resumes took "
        + ", ".join(f"{r['resume_of_the_4_queues_ms']:.0f}" for r in runs.values())
        + " ms and the queues' first deliveries came within "
        + ", ".join(f"{r['queues_started_within_ms']}" for r in runs.values())
        + " ms of each other (in the table's order); the spans include that; the machine's CPUs "
        "were "
        + ", ".join(f"{r['machine_cpu_busy_pct_while_delivering']:.0f}" for r in runs.values())
        + " % busy while delivering"
    )
    notes.append(f"load average at the start {load}: a shared machine, compare ratios only")
    bars = [(r["label"], r["deliveries_per_s"]) for r in runs.values()]
    chart = charts.bars(
        ctx.chart("scaleout", "throughput"),
        f"Scale-out: {n:,} due tasks over {len(QUEUES)} unthrottled queues",
        "deliveries/s (first to last arrival)",
        bars,
        baseline=SQLITE.label,
        note=ctx.note,
    )
    enqueue_chart = charts.bars(
        ctx.chart("scaleout", "enqueue"),
        f"Scale-out: {n:,} adds in batches of {BATCH}, {POSTERS} posters",
        "tasks added/s (first request to last answer)",
        [(r["label"], r["adds_per_s"]) for r in runs.values()],
        baseline=SQLITE.label,
        note=ctx.note,
    )
    return Result(
        "scaleout",
        rows,
        data={
            "loadavg_at_start": load,
            "queues": list(QUEUES),
            "concurrency_per_daemon": CONCURRENCY,
            "postgres": settings,
            "skipped": skipped or None,
            "runs": runs,
        },
        ratios=_ratios(runs),
        targets=targets,
        charts=[chart, enqueue_chart],
        notes=notes,
    )
