"""Scenario 8: pull-queue workers leasing and deleting, cycles/s and tasks/s per API.

One fresh daemon (SQLite, ``durability: full``) with a ``mode: pull`` queue per API; just
before an API runs, its queue is filled with N tasks (32-byte payloads) in batches of 100 by 8
posters over the native API (timed on its own, reported apart). Then 8 concurrent workers each
loop: lease up to 10 tasks for 60 s, delete the ones they got, until a lease comes back empty.
A *cycle* is one lease that got tasks plus its deletes; cycles/s and tasks/s run from the
first lease to the last delete answer (after a warm-up that opens each worker's connection).
The APIs, each on its own queue, as their users call them:

* **native**: ``POST /api/v1/queues/{q}/lease`` then one ``POST .../delete`` of the names:
  2 requests per cycle;
* **v1beta2**: ``POST .../taskqueues/{q}/tasks/lease?numTasks=10&leaseSecs=60`` then one
  ``DELETE .../tasks/{id}`` per task, as google-api-python-client users do: 11 per cycle;
* **RPC**: ``/rpc_http`` ``QueryAndOwnTasks`` then one ``Delete`` of the names (App Engine's
  ``Queue.delete_tasks``), pushd's own protobuf classes: 2 per cycle.

Baseline, in the same run: the raw aiohttp ceiling: 8 workers over one keep-alive session
sending the very same requests per cycle (same methods, bodies and number of round trips) to
the receiver, for N/10 cycles. Ratio: pushd cycles/s ÷ ceiling cycles/s of the same request
shape (the native shape is the issue's "2 requests per cycle"; ``vs_native_ceiling`` in the data
compares every API with it too). Target (issue 18): the native API's cycles >= 0.5 of
that ceiling (0.18 when the issue was filed).

Checks (a failure fails the scenario): every task was leased exactly once (no name handed out
twice, none left, none unknown; each lease's ``retry_count`` is 1), every delete answered that
the task was deleted, and the queue is empty at the end (``stats.tasks == 0``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from benchmarks import harness
from benchmarks.harness import Progress, cpu_s, percentile, queue_stats, say
from benchmarks.scenarios import Context, Result, Target

PROJECT = "bench"
WORKERS = 8
LEASE_SECONDS = 60
MAX_TASKS = 10
FILL_BATCH = 100
FILL_POSTERS = 8
PHASE_TIMEOUT_S = 300.0  # the fill, the workers' run, or the ceiling
REQUEST_TIMEOUT_S = 60.0
JSON = "application/json"
PROTOBUF = "application/octet-stream"
TARGET_NATIVE_RATIO = 0.5  # issue 18: native lease + delete cycles ÷ their HTTP ceiling


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # appended to the daemon's (or the receiver's) base URL
    body: bytes | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Api:
    """One way to lease and delete: the requests of a cycle and how to read their answers."""

    key: str
    queue: str  # the pull queue it works on
    label: str
    lease: Request
    deletes: Callable[[list[str]], list[Request]]
    #: (status, answer) of a lease -> [(name, retry_count)]; raises if the answer is an error
    leased: Callable[[int, bytes], list[tuple[str, int]]]
    #: (status, answer, names in that request) -> how many of them it reports deleted
    deleted: Callable[[int, bytes, list[str]], int]


def _ok(status: int, answer: bytes, what: str, wanted: int = 200) -> None:
    if status != wanted:
        raise RuntimeError(f"{what} answered HTTP {status}: {answer[:300]!r}")


# ------------------------------------------------------------------ the three APIs


def native_api(queue: str) -> Api:
    base = f"/api/v1/queues/{queue}"

    def leased(status: int, answer: bytes) -> list[tuple[str, int]]:
        _ok(status, answer, "native lease")
        return [(t["name"], t["retry_count"]) for t in orjson.loads(answer)["tasks"]]

    def deleted(status: int, answer: bytes, names: list[str]) -> int:
        _ok(status, answer, "native delete")
        found = orjson.loads(answer)["tasks"]
        return sum(1 for t, n in zip(found, names, strict=True) if t["deleted"] and t["name"] == n)

    body = orjson.dumps({"lease_seconds": LEASE_SECONDS, "max_tasks": MAX_TASKS})
    return Api(
        "native",
        queue,
        "native API: lease + batch delete",
        Request("POST", f"{base}/lease", body, JSON),
        lambda names: [Request("POST", f"{base}/delete", orjson.dumps({"names": names}), JSON)],
        leased,
        deleted,
    )


def v1beta2_api(queue: str) -> Api:
    base = f"/taskqueue/v1beta2/projects/{PROJECT}/taskqueues/{queue}/tasks"

    def leased(status: int, answer: bytes) -> list[tuple[str, int]]:
        _ok(status, answer, "v1beta2 lease")
        return [(t["id"], t["retry_count"]) for t in orjson.loads(answer).get("items", [])]

    def deleted(status: int, answer: bytes, names: list[str]) -> int:
        _ok(status, answer, "v1beta2 delete", 204)
        return 1

    return Api(
        "v1beta2",
        queue,
        "v1beta2: lease + DELETE per task",
        Request("POST", f"{base}/lease?numTasks={MAX_TASKS}&leaseSecs={LEASE_SECONDS}"),
        lambda names: [Request("DELETE", f"{base}/{name}") for name in names],
        leased,
        deleted,
    )


def rpc_api(queue: str) -> Api:
    from pushd.proto import remote_api_pb2 as remote
    from pushd.proto import taskqueue_service_pb2 as pb

    def envelope(method: str, request: Any) -> Request:
        wrapped = remote.Request(
            service_name="taskqueue", method=method, request=request.SerializeToString()
        )
        return Request("POST", "/rpc_http", wrapped.SerializeToString(), PROTOBUF)

    def unwrap(status: int, answer: bytes, what: str) -> bytes:
        _ok(status, answer, what)
        response = remote.Response()
        response.ParseFromString(answer)
        if not response.HasField("response"):
            raise RuntimeError(f"{what} failed: {str(response)[:300]}")
        return response.response

    def leased(status: int, answer: bytes) -> list[tuple[str, int]]:
        parsed = pb.TaskQueueQueryAndOwnTasksResponse()
        parsed.ParseFromString(unwrap(status, answer, "QueryAndOwnTasks"))
        return [(t.task_name.decode(), t.retry_count) for t in parsed.task]

    def deleted(status: int, answer: bytes, names: list[str]) -> int:
        parsed = pb.TaskQueueDeleteResponse()
        parsed.ParseFromString(unwrap(status, answer, "Delete"))
        return sum(1 for r in parsed.result if r == pb.TaskQueueServiceError.OK)

    lease = pb.TaskQueueQueryAndOwnTasksRequest(
        queue_name=queue.encode(), lease_seconds=LEASE_SECONDS, max_tasks=MAX_TASKS
    )
    return Api(
        "rpc",
        queue,
        "RPC: QueryAndOwnTasks + Delete",
        envelope("QueryAndOwnTasks", lease),
        lambda names: [
            envelope(
                "Delete",
                pb.TaskQueueDeleteRequest(
                    queue_name=queue.encode(), task_name=[n.encode() for n in names]
                ),
            )
        ],
        leased,
        deleted,
    )


# ------------------------------------------------------------------ HTTP


async def send(session: aiohttp.ClientSession, base: str, req: Request) -> tuple[int, bytes]:
    headers = {"Content-Type": req.content_type} if req.content_type else None
    async with session.request(req.method, base + req.path, data=req.body, headers=headers) as r:
        return r.status, await r.read()


def _session() -> aiohttp.ClientSession:
    """One keep-alive session for the 8 workers, as :func:`harness.raw_posts` uses."""
    connector = aiohttp.TCPConnector(limit=WORKERS, limit_per_host=0)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    )


async def _warm(session: aiohttp.ClientSession, url: str) -> None:
    async def one() -> None:
        async with session.get(url) as resp:
            await resp.read()

    await asyncio.gather(*(one() for _ in range(WORKERS)))


def _name(i: int) -> str:
    return f"pull-{i}"


# ------------------------------------------------------------------ the ceiling


async def ceiling(ctx: Context, api: Api, n: int) -> dict[str, Any]:
    """The same requests per cycle, N/10 cycles by 8 workers, against the receiver."""
    base = f"{ctx.receiver.url}/pull-ceiling/{api.key}"
    cycles = -(-n // MAX_TASKS)
    counter = iter(range(cycles))
    statuses: set[int] = set()
    requests = 0
    done = 0
    await ctx.receiver.reset()

    async def worker(session: aiohttp.ClientSession, bar: Progress) -> None:
        nonlocal requests, done
        for cycle in counter:
            first = cycle * MAX_TASKS
            names = [_name(i) for i in range(first, min(first + MAX_TASKS, n))]
            for req in [api.lease, *api.deletes(names)]:
                status, _ = await send(session, base, req)
                statuses.add(status)
                requests += 1
            done += len(names)
            bar.update(done)

    async with _session() as session:
        await _warm(session, base + "/warm")
        with Progress(f"{api.key}: HTTP ceiling", n) as bar:
            cpu, start = time.process_time(), time.monotonic()
            await asyncio.wait_for(
                asyncio.gather(*(worker(session, bar) for _ in range(WORKERS))), PHASE_TIMEOUT_S
            )
            wall, cpu = time.monotonic() - start, time.process_time() - cpu
    await ctx.receiver.reset()
    if statuses != {200}:
        raise RuntimeError(f"the receiver answered the {api.key} ceiling with {sorted(statuses)}")
    return {
        "cycles": cycles,
        "requests": requests,
        "wall_s": round(wall, 3),
        "cycles_per_s": round(harness.rate(cycles, wall), 1),
        "tasks_per_s": round(harness.rate(n, wall), 1),
        "requests_per_s": round(harness.rate(requests, wall), 1),
        "client_cpu_pct": round(100 * cpu / max(wall, 1e-9), 1),
    }


# ------------------------------------------------------------------ pushd


@dataclass
class Worker:
    leased: list[tuple[str, int]] = field(default_factory=list)
    cycles: int = 0
    empty_leases: int = 0
    requests: int = 0
    deleted: int = 0
    lease_ms: list[float] = field(default_factory=list)
    delete_ms: list[float] = field(default_factory=list)  # all of one cycle's deletes
    last_answer: float = 0.0


async def fill(ctx: Context, api_url: str, queue: str, n: int) -> dict[str, Any]:
    tasks = [{"name": _name(i), "payload": harness.PAYLOAD} for i in range(n)]
    with Progress(f"{queue}: filling", n) as bar:
        start = time.monotonic()
        added = await asyncio.wait_for(
            harness.add_tasks(
                ctx.session,
                api_url,
                tasks,
                queue=queue,
                posters=FILL_POSTERS,
                batch=FILL_BATCH,
                progress=bar,
            ),
            PHASE_TIMEOUT_S,
        )
        wall = time.monotonic() - start
    stored = (await queue_stats(ctx.session, api_url, queue))["tasks"]
    if added != n or stored != n:
        raise RuntimeError(f"{queue}: filled {added} tasks, the queue holds {stored}; wanted {n}")
    return {"tasks": n, "wall_s": round(wall, 3), "tasks_per_s": round(harness.rate(n, wall), 1)}


async def workers(api: Api, base: str, bar: Progress) -> tuple[list[Worker], float]:
    """8 workers lease and delete until a lease comes back empty; (workers, wall seconds)."""
    found = [Worker() for _ in range(WORKERS)]
    total = 0

    async def work(session: aiohttp.ClientSession, me: Worker) -> None:
        nonlocal total
        while True:
            t0 = time.monotonic()
            got = api.leased(*await send(session, base, api.lease))
            t1 = time.monotonic()
            me.requests += 1
            if not got:
                me.empty_leases += 1
                return
            names = [name for name, _ in got]
            for req in api.deletes(names):
                status, answer = await send(session, base, req)
                me.requests += 1
                me.deleted += api.deleted(status, answer, names)
            me.last_answer = time.monotonic()
            me.leased += got
            me.cycles += 1
            me.lease_ms.append(1000 * (t1 - t0))
            me.delete_ms.append(1000 * (me.last_answer - t1))
            total += len(got)
            bar.update(total)

    async with _session() as session:
        await _warm(session, base + "/healthz")
        start = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*(work(session, me) for me in found)), PHASE_TIMEOUT_S
        )
    end = max((w.last_answer for w in found if w.cycles), default=start)
    return found, end - start


def _check(api: Api, n: int, found: list[Worker], left: int) -> dict[str, int]:
    names = [name for w in found for name, _ in w.leased]
    distinct = set(names)
    expected = {_name(i) for i in range(n)}
    checks = {
        "leased": len(names),
        "leased_twice": len(names) - len(distinct),
        "never_leased": len(expected - distinct),
        "unknown_leased": len(distinct - expected),
        "retry_count_not_1": sum(1 for w in found for _, rc in w.leased if rc != 1),
        "not_deleted": len(names) - sum(w.deleted for w in found),
        "left_in_queue": left,
    }
    wrong = {k: v for k, v in checks.items() if k != "leased" and v}
    if wrong:
        raise RuntimeError(f"{api.label}: pull queue correctness failed: {wrong}")
    return checks


async def pushd_pull(ctx: Context, daemon: harness.Child, api: Api, n: int) -> dict[str, Any]:
    """Fill ``api.queue`` with ``n`` tasks, then 8 workers lease and delete them all."""
    filled = await fill(ctx, daemon.url, api.queue, n)
    daemon_cpu = cpu_s(daemon.pid)
    with Progress(f"{api.queue}: lease+delete", n) as bar:
        found, wall = await workers(api, daemon.url, bar)
    used = cpu_s(daemon.pid) - daemon_cpu
    left = (await queue_stats(ctx.session, daemon.url, api.queue))["tasks"]
    checks = _check(api, n, found, left)
    cycles = sum(w.cycles for w in found)
    lease_ms = [ms for w in found for ms in w.lease_ms]
    delete_ms = [ms for w in found for ms in w.delete_ms]
    result = {
        "api": api.key,
        "label": api.label,
        "tasks": n,
        "cycles": cycles,
        "requests": sum(w.requests for w in found),
        "empty_leases": sum(w.empty_leases for w in found),
        "wall_s": round(wall, 3),
        "cycles_per_s": round(harness.rate(cycles, wall), 1),
        "tasks_per_s": round(harness.rate(n, wall), 1),
        "daemon_cpu_us_per_cycle": round(1e6 * used / max(cycles, 1), 1),
        "daemon_cpu_pct": round(100 * used / max(wall, 1e-9), 1),
        "lease_ms_p50": round(percentile(lease_ms, 50), 2),
        "lease_ms_p99": round(percentile(lease_ms, 99), 2),
        "deletes_ms_p50": round(percentile(delete_ms, 50), 2),
        "deletes_ms_p99": round(percentile(delete_ms, 99), 2),
        "cycles_per_worker": [w.cycles for w in found],
        "fill": filled,
        "checks": checks,
    }
    say(
        f"{api.label}: {result['cycles_per_s']:,.0f} cycles/s, {result['tasks_per_s']:,.0f} "
        f"tasks/s; lease p50 {result['lease_ms_p50']} ms, deletes p50 "
        f"{result['deletes_ms_p50']} ms; every task leased once, queue empty"
    )
    return result


# ------------------------------------------------------------------ the scenario


async def run(ctx: Context) -> Result:
    from benchmarks import charts  # matplotlib loads only when drawing

    load_start = os.getloadavg()
    n = ctx.n(full=20_000, quick=5_000, smoke=200)
    apis = [native_api("pull-native"), v1beta2_api("pull-v1beta2"), rpc_api("pull-rpc")]
    queue_yaml = "queue:\n" + "".join(f"- name: {api.queue}\n  mode: pull\n" for api in apis)
    measured: dict[str, dict[str, Any]] = {}
    async with ctx.pushd(
        "pushd-pull", queue_yaml=queue_yaml, settings_yaml=harness.settings_yaml(durability="full")
    ) as daemon:
        for api in apis:
            raw = await ceiling(ctx, api, n)
            ours = await pushd_pull(ctx, daemon, api, n)
            ours["ceiling"] = raw
            ours["pushd/ceiling"] = round(ours["cycles_per_s"] / max(raw["cycles_per_s"], 1e-9), 4)
            measured[api.key] = ours
    native_ceiling = measured["native"]["ceiling"]["cycles_per_s"]
    for ours in measured.values():
        ours["vs_native_ceiling"] = round(ours["cycles_per_s"] / max(native_ceiling, 1e-9), 4)

    rows = [
        [
            "API",
            "tasks",
            "requests/cycle",
            "pushd cycles/s",
            "pushd tasks/s",
            "ceiling cycles/s",
            "pushd ÷ ceiling",
            "lease p50 ms",
            "delete(s) p50 ms",
            "daemon CPU µs/cycle",
            "checked",
        ]
    ]
    for ours in measured.values():
        per_cycle = ours["ceiling"]["requests"] / max(ours["ceiling"]["cycles"], 1)
        rows.append(
            [
                ours["label"],
                f"{ours['tasks']:,}",
                f"{per_cycle:.0f}",
                f"{ours['cycles_per_s']:,.0f}",
                f"{ours['tasks_per_s']:,.0f}",
                f"{ours['ceiling']['cycles_per_s']:,.0f}",
                f"{ours['pushd/ceiling']:.3f}",
                f"{ours['lease_ms_p50']:.1f}",
                f"{ours['deletes_ms_p50']:.1f}",
                f"{ours['daemon_cpu_us_per_cycle']:,.0f}",
                "each leased once, empty",
            ]
        )
    ratios = {f"{k} pushd/ceiling": v["pushd/ceiling"] for k, v in measured.items()}
    chart = charts.bars(
        ctx.chart("pull", "throughput"),
        f"Pull: {WORKERS} workers leasing {MAX_TASKS} (60 s) and deleting them",
        "tasks/s, first lease to last delete (in brackets: pushd ÷ ceiling cycles/s)",
        [
            (f"{v['label']}\n[÷ ceiling {v['pushd/ceiling']:.3f}]", v["tasks_per_s"])
            for v in measured.values()
        ],
        note=ctx.note,
    )
    notes = [
        f"one fresh daemon (SQLite, durability full), a pull queue per API, filled just before "
        f"that API runs with {n:,} tasks by {FILL_POSTERS} posters in batches of {FILL_BATCH} (fill tasks/s: "
        + ", ".join(f"{k} {v['fill']['tasks_per_s']:,.0f}" for k, v in measured.items())
        + ")",
        f"a cycle: one lease of up to {MAX_TASKS} tasks for {LEASE_SECONDS} s, then its deletes; "
        "each worker stops at its first empty lease (not counted as a cycle)",
        f"ceiling: the raw aiohttp client, {WORKERS} workers, the same requests per cycle "
        f"against the {ctx.receiver.kind} receiver (which answers at once and parses nothing)",
        "checked: every task leased exactly once (retry_count 1), every delete confirmed, "
        "the queue empty at the end",
    ]
    return Result(
        "pull",
        rows,
        data={
            "n": n,
            "workers": WORKERS,
            "max_tasks": MAX_TASKS,
            "apis": measured,
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
        ratios=ratios,
        targets=[
            Target(
                f"native API, lease {MAX_TASKS} + delete cycles ÷ their HTTP ceiling",
                measured["native"]["pushd/ceiling"],
                TARGET_NATIVE_RATIO,
            )
        ],
        charts=[chart],
        notes=notes,
    )
