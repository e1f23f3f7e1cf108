"""Scenario 1: durable enqueue, tasks/s through each of pushd's four ways in.

One fresh daemon (SQLite, ``durability: full``) with the push queue ``bench`` paused (nothing
is delivered meanwhile) and a pull queue ``bench-pull``. Each path adds its own uniquely named
tasks (32-byte payloads), timed from the first request to the last answer, after a warm-up that
opens every connection:

* **native, single**: ``POST /api/v1/queues/bench/tasks`` with one task object, 32 clients;
* **native, batch**: the same route with ``{"tasks": [100 tasks]}``, 8 posters;
* **Python client, single / batch**: ``pushd.taskqueue.Queue("bench").add(Task)`` and
  ``.add([100 Task])`` from 32 / 8 threads of their own (the client is blocking: the threads
  keep the event loop free); the ``Task`` objects are built (and validated) before timing;
* **v1beta2 insert**: ``POST /taskqueue/v1beta2/projects/bench/taskqueues/bench-pull/tasks``,
  one task each, 32 clients, into the pull queue;
* **RPC BulkAdd**: ``POST /rpc_http``, a remote API ``Request`` wrapping a
  ``TaskQueueBulkAddRequest`` of 100 tasks (pushd's own protobuf classes), 8 posters.

Baseline, in the same run and just before each path: the raw aiohttp client (one keep-alive
session, the same concurrency) POSTing the very same request bodies, with the same content
type, to the receiver at ``/enqueue-ceiling/<path>``: the HTTP ceiling of that request shape.
The aiohttp paths use that very client loop against pushd too (bodies serialized before
timing, answers checked after), so pushd ÷ ceiling is the cost of the daemon alone; the Python
client rows also pay for ``http.client`` and threads in the benchmark's process.

Checks: every add answered OK (and every Python ``Task`` was enqueued), and after each path the
queue holds exactly the tasks added so far (``stats.tasks``).

Targets (issue 18, the native API): batches of 100 >= 30,000 tasks/s, single adds >= 4,000
tasks/s. Absolute rates say as much about the (shared) machine as about pushd, so each is also
judged as a ratio to the same run's HTTP ceiling of the single add (the raw client's requests/s
of that 1-task POST: how fast this machine moves a request right now), scaled by the one such
ceiling the issue was measured beside (5,781 requests/s): batches >= 30,000 / 5,781 = 5.19 x
that ceiling, single adds >= 4,000 / 5,781 = 0.69 x it. Both forms print met or MISSED.
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from benchmarks import harness
from benchmarks.harness import Progress, cpu_s, post_json, queue_stats, say
from benchmarks.scenarios import Context, Result, Target

QUEUE = harness.QUEUE  # the push queue, paused
PULL_QUEUE = "bench-pull"
PROJECT = "bench"
BATCH = 100
SINGLE_CLIENTS = 32
BATCH_POSTERS = 8
PHASE_TIMEOUT_S = 300.0  # any one timed phase (ceiling or pushd) of any path
REQUEST_TIMEOUT_S = 60.0
THREAD_START_TIMEOUT_S = 30.0  # the Python client's threads must all be warm by then
JSON = "application/json"
PROTOBUF = "application/octet-stream"
TARGET_BATCH = 30_000.0
TARGET_SINGLE = 4_000.0
#: The single add's HTTP ceiling beside which the issue's targets were set (README, 2026-11-21).
ISSUE_SINGLE_CEILING = 5_781.0


# ------------------------------------------------------------------ the HTTP client loop


@dataclass
class Timed:
    wall_s: float
    client_cpu_s: float
    statuses: list[int]
    bodies: list[bytes]  # the answers, when kept


async def post_bodies(
    url: str,
    bodies: Sequence[bytes],
    concurrency: int,
    *,
    content_type: str,
    warm_url: str,
    per_body: int = 1,
    progress: Progress | None = None,
    keep: bool = False,
) -> Timed:
    """POST every body to ``url``, ``concurrency`` in flight over one keep-alive session.

    A warm-up of ``concurrency`` GETs to ``warm_url`` opens the connections first; the wall
    time runs from the first POST to the last answer. Answers are read whole; their statuses
    (and bodies, if ``keep``) are returned in the order of ``bodies`` and checked by the caller
    after timing, so the loop does the same work against pushd and against the receiver.
    """
    statuses = [0] * len(bodies)
    answers: list[bytes] = [b""] * len(bodies) if keep else []
    headers = {"Content-Type": content_type}
    counter = iter(range(len(bodies)))
    done = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        for i in counter:
            async with session.post(url, data=bodies[i], headers=headers) as resp:
                data = await resp.read()
                statuses[i] = resp.status
            if keep:
                answers[i] = data
            done += per_body
            if progress is not None:
                progress.update(done)

    async def warm(session: aiohttp.ClientSession) -> None:
        async with session.get(warm_url) as resp:
            await resp.read()

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(warm(session) for _ in range(concurrency)))
        cpu, start = time.process_time(), time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*(worker(session) for _ in range(concurrency))), PHASE_TIMEOUT_S
        )
        return Timed(time.monotonic() - start, time.process_time() - cpu, statuses, answers)


def _rate(count: int, seconds: float) -> float:
    return round(harness.rate(count, seconds), 1)


# ------------------------------------------------------------------ the Python client's threads


async def in_threads(
    count: int,
    warm: Callable[[], object],
    jobs: Sequence[Callable[[], int]],
    progress: Progress,
) -> tuple[float, float]:
    """Run ``jobs`` (each answers how many tasks it added) on ``count`` threads of their own.

    Each thread first runs ``warm`` (its own keep-alive connection opens), then all start
    together; the event loop only polls for progress. Returns (wall seconds from the start to
    the last job, client CPU seconds of the whole process meanwhile). A job that raises stops
    every thread and is raised here; so is the phase outliving ``PHASE_TIMEOUT_S``.
    """
    lock = threading.Lock()
    pending = iter(jobs)
    stop = threading.Event()
    failures: list[BaseException] = []
    starts: list[tuple[float, float]] = []
    ends: list[float] = []
    added = 0

    def started() -> None:
        starts.append((time.monotonic(), time.process_time()))

    barrier = threading.Barrier(count, action=started, timeout=THREAD_START_TIMEOUT_S)

    def thread() -> None:
        nonlocal added
        try:
            warm()
            barrier.wait()
            while not stop.is_set():
                with lock:
                    job = next(pending, None)
                if job is None:
                    break
                got = job()
                with lock:
                    added += got
        except BaseException as exc:
            failures.append(exc)
            stop.set()
            barrier.abort()
        finally:
            with lock:
                ends.append(time.monotonic())

    threads = [
        threading.Thread(target=thread, name=f"enqueue-client-{i}", daemon=True)
        for i in range(count)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + PHASE_TIMEOUT_S + THREAD_START_TIMEOUT_S
    while any(t.is_alive() for t in threads):
        progress.update(added)
        if time.monotonic() > deadline:
            stop.set()
            raise TimeoutError(f"the Python client's threads ran past {PHASE_TIMEOUT_S:g}s")
        await asyncio.sleep(0.05)
    cpu_end = time.process_time()
    progress.update(added)
    if failures:
        raise failures[0]
    start, cpu_start = starts[0]
    return max(ends) - start, cpu_end - cpu_start


# ------------------------------------------------------------------ request shapes


@dataclass
class Shape:
    """One way to add tasks over HTTP: the bodies, where they go and how to read an answer."""

    key: str  # short id, e.g. "native-single"
    label: str  # a row of the table
    path: str  # pushd's route
    content_type: str
    per_body: int  # tasks per request
    concurrency: int
    bodies: list[bytes]
    check: Callable[[int, bytes], str | None]  # (status, answer) -> what is wrong, or None
    queue: str = QUEUE


def _task(key: str, i: int) -> dict[str, Any]:
    return {"name": f"{key}-{i}", "url": f"/enqueue/{key}/{i}", "payload": harness.PAYLOAD}


def _check_native(per_body: int) -> Callable[[int, bytes], str | None]:
    def check(status: int, answer: bytes) -> str | None:
        if status != 200:
            return f"HTTP {status}: {answer[:200]!r}"
        results = [t.get("result") for t in orjson.loads(answer)["tasks"]]
        if len(results) != per_body or any(r != "OK" for r in results):
            bad = [r for r in results if r != "OK"]
            return f"{len(results)} results, {len(bad)} not OK, e.g. {bad[:1]}"
        return None

    return check


def native_single(n: int) -> Shape:
    key = "native-single"
    return Shape(
        key,
        "native API, 1 task/POST",
        f"/api/v1/queues/{QUEUE}/tasks",
        JSON,
        1,
        SINGLE_CLIENTS,
        [orjson.dumps(_task(key, i)) for i in range(n)],
        _check_native(1),
    )


def native_batch(n: int) -> Shape:
    key = "native-batch"
    tasks = [_task(key, i) for i in range(n)]
    return Shape(
        key,
        f"native API, {BATCH} tasks/POST",
        f"/api/v1/queues/{QUEUE}/tasks",
        JSON,
        BATCH,
        BATCH_POSTERS,
        [orjson.dumps({"tasks": tasks[i : i + BATCH]}) for i in range(0, n, BATCH)],
        _check_native(BATCH),
    )


def v1beta2_insert(n: int) -> Shape:
    key = "v1beta2"
    payload = base64.urlsafe_b64encode(harness.PAYLOAD.encode()).decode()

    def check(status: int, answer: bytes) -> str | None:
        if status != 200:
            return f"HTTP {status}: {answer[:200]!r}"
        if not orjson.loads(answer).get("id", "").startswith(f"{key}-"):
            return f"unexpected answer {answer[:200]!r}"
        return None

    return Shape(
        key,
        "v1beta2 insert, 1 task/POST",
        f"/taskqueue/v1beta2/projects/{PROJECT}/taskqueues/{PULL_QUEUE}/tasks",
        JSON,
        1,
        SINGLE_CLIENTS,
        [
            orjson.dumps({"queueName": PULL_QUEUE, "id": f"{key}-{i}", "payloadBase64": payload})
            for i in range(n)
        ],
        check,
        queue=PULL_QUEUE,
    )


def rpc_bulk_add(n: int) -> Shape:
    from pushd.proto import remote_api_pb2 as remote
    from pushd.proto import taskqueue_service_pb2 as pb

    key = "rpc"
    eta_us = int(time.time() * 1_000_000)
    payload = harness.PAYLOAD.encode()

    def body(first: int) -> bytes:
        bulk = pb.TaskQueueBulkAddRequest(
            add_request=[
                pb.TaskQueueAddRequest(
                    queue_name=QUEUE.encode(),
                    task_name=f"{key}-{i}".encode(),
                    eta_usec=eta_us,
                    url=f"/enqueue/{key}/{i}".encode(),
                    body=payload,
                )
                for i in range(first, min(first + BATCH, n))
            ]
        )
        request = remote.Request(
            service_name="taskqueue", method="BulkAdd", request=bulk.SerializeToString()
        )
        return request.SerializeToString()

    def check(status: int, answer: bytes) -> str | None:
        if status != 200:
            return f"HTTP {status}: {answer[:200]!r}"
        envelope = remote.Response()
        envelope.ParseFromString(answer)
        if not envelope.HasField("response"):
            return f"no response: {str(envelope)[:300]}"
        parsed = pb.TaskQueueBulkAddResponse()
        parsed.ParseFromString(envelope.response)
        results = [r.result for r in parsed.taskresult]
        if len(results) != BATCH or any(r != pb.TaskQueueServiceError.OK for r in results):
            return f"{len(results)} results: {sorted(set(results))}"
        return None

    return Shape(
        key,
        f"RPC BulkAdd, {BATCH} tasks/call",
        "/rpc_http",
        PROTOBUF,
        BATCH,
        BATCH_POSTERS,
        [body(i) for i in range(0, n, BATCH)],
        check,
    )


# ------------------------------------------------------------------ measuring


@dataclass
class Run:
    """What one path added, into which queue, and how the stored count must change."""

    row: dict[str, Any]
    queue: str
    added: int


async def ceiling(
    ctx: Context, key: str, bodies: Sequence[bytes], content_type: str, concurrency: int, per: int
) -> dict[str, Any]:
    """The raw aiohttp client POSTing ``bodies`` to the receiver: that shape's HTTP ceiling."""
    url = f"{ctx.receiver.url}/enqueue-ceiling/{key}"
    await ctx.receiver.reset()
    with Progress(f"{key}: HTTP ceiling", len(bodies) * per) as bar:
        timed = await post_bodies(
            url,
            bodies,
            concurrency,
            content_type=content_type,
            warm_url=url + "/warm",
            per_body=per,
            progress=bar,
        )
    await ctx.receiver.reset()  # forget the hits: nothing here needs them
    bad = [s for s in timed.statuses if s != 200]
    if bad:
        raise RuntimeError(f"the receiver answered {len(bad)} ceiling POSTs with {bad[0]}")
    tasks = len(bodies) * per
    return {
        "requests": len(bodies),
        "wall_s": round(timed.wall_s, 3),
        "tasks_per_s": _rate(tasks, timed.wall_s),
        "requests_per_s": _rate(len(bodies), timed.wall_s),
        "client_cpu_pct": round(100 * timed.client_cpu_s / max(timed.wall_s, 1e-9), 1),
    }


async def http_path(ctx: Context, daemon: harness.Child, shape: Shape) -> Run:
    tasks = len(shape.bodies) * shape.per_body
    raw = await ceiling(
        ctx, shape.key, shape.bodies, shape.content_type, shape.concurrency, shape.per_body
    )
    daemon_cpu = cpu_s(daemon.pid)
    with Progress(f"{shape.key}: pushd", tasks) as bar:
        timed = await post_bodies(
            daemon.url + shape.path,
            shape.bodies,
            shape.concurrency,
            content_type=shape.content_type,
            warm_url=daemon.url + "/healthz",
            per_body=shape.per_body,
            progress=bar,
            keep=True,
        )
    used = cpu_s(daemon.pid) - daemon_cpu
    problems = [
        (i, wrong)
        for i, (status, answer) in enumerate(zip(timed.statuses, timed.bodies, strict=True))
        if (wrong := shape.check(status, answer)) is not None
    ]
    if problems:
        i, wrong = problems[0]
        raise RuntimeError(
            f"{shape.label}: {len(problems)} of {len(shape.bodies)} requests not OK; "
            f"request {i}: {wrong}"
        )
    return Run(
        _row(shape.key, shape.label, tasks, shape.per_body, shape.concurrency, timed, used, raw),
        shape.queue,
        tasks,
    )


def _row(
    key: str,
    label: str,
    tasks: int,
    per: int,
    concurrency: int,
    timed: Timed,
    daemon_cpu_s: float,
    raw: dict[str, Any],
) -> dict[str, Any]:
    row = {
        "key": key,
        "path": label,
        "tasks": tasks,
        "tasks_per_request": per,
        "concurrency": concurrency,
        "wall_s": round(timed.wall_s, 3),
        "tasks_per_s": _rate(tasks, timed.wall_s),
        "requests_per_s": _rate(-(-tasks // per), timed.wall_s),
        "daemon_cpu_us_per_task": round(1e6 * daemon_cpu_s / max(tasks, 1), 1),
        "daemon_cpu_pct": round(100 * daemon_cpu_s / max(timed.wall_s, 1e-9), 1),
        "client_cpu_pct": round(100 * timed.client_cpu_s / max(timed.wall_s, 1e-9), 1),
        "ceiling": raw,
    }
    row["pushd/ceiling"] = round(row["tasks_per_s"] / max(raw["tasks_per_s"], 1e-9), 4)
    say(
        f"{label}: {row['tasks_per_s']:,.0f} tasks/s (ceiling {raw['tasks_per_s']:,.0f}, "
        f"×{row['pushd/ceiling']:.3f}), {row['daemon_cpu_us_per_task']:.0f} µs daemon CPU/task"
    )
    return row


async def python_client_path(
    ctx: Context, daemon: harness.Child, n: int, per: int, threads: int
) -> Run:
    """``Queue.add`` of ``per`` Task objects per call (a bare Task when 1) from ``threads``."""
    from pushd import taskqueue, wire
    from pushd.taskqueue import plans

    key = f"python-{'single' if per == 1 else 'batch'}"
    label = f"Python client, {'1 Task' if per == 1 else f'{per} Tasks'}/add()"

    def build(prefix: str) -> list[list[taskqueue.Task]]:
        made = []
        with Progress(f"{key}: building Task objects", n) as bar:
            for i in range(n):
                made.append(
                    taskqueue.Task(
                        payload=harness.PAYLOAD, name=f"{prefix}-{i}", url=f"/enqueue/{key}/{i}"
                    )
                )
                if i % 1000 == 999:
                    bar.update(i + 1)
        return [made[i : i + per] for i in range(0, n, per)]

    building = time.process_time()
    chunks = build(key)
    build_us = 1e6 * (time.process_time() - building) / max(n, 1)
    # The ceiling's bodies: what Queue.add sends for tasks like these (named apart); the
    # client's own encoder of a Task, so the shape is exactly the one pushd gets.
    bodies = [
        wire.dumps({"tasks": [plans.task_json(t, QUEUE) for t in chunk]})
        for chunk in build(f"{key}-ceiling")
    ]
    raw = await ceiling(ctx, key, bodies, JSON, threads, per)

    queue = taskqueue.Queue(QUEUE, url=daemon.url)
    # Opens each thread's connection (the client keeps one per thread) on a queue that is
    # still empty: statistics of a queue cost a scan of its tasks.
    warm = taskqueue.Queue(PULL_QUEUE, url=daemon.url).fetch_statistics

    def job(chunk: list[taskqueue.Task]) -> Callable[[], int]:
        def add() -> int:
            queue.add(chunk[0] if per == 1 else chunk)
            missed = [t.name for t in chunk if not t.was_enqueued]
            if missed:
                raise RuntimeError(f"{label}: {len(missed)} tasks not enqueued, e.g. {missed[0]}")
            return len(chunk)

        return add

    daemon_cpu = cpu_s(daemon.pid)
    with Progress(f"{key}: pushd", n) as bar:
        wall, client_cpu = await in_threads(threads, warm, [job(c) for c in chunks], bar)
    used = cpu_s(daemon.pid) - daemon_cpu
    timed = Timed(wall, client_cpu, [], [])
    row = _row(key, label, n, per, threads, timed, used, raw)
    row["task_build_us"] = round(build_us, 1)
    return Run(row, QUEUE, n)


async def _check_stored(ctx: Context, api: str, expected: dict[str, int]) -> dict[str, int]:
    stored = {}
    for queue, wanted in expected.items():
        stored[queue] = (await queue_stats(ctx.session, api, queue))["tasks"]
        if stored[queue] != wanted:
            raise RuntimeError(f"queue {queue} holds {stored[queue]} tasks; {wanted} were added")
    return stored


# ------------------------------------------------------------------ the scenario


def issue_targets(by_key: dict[str, dict[str, Any]]) -> list[Target]:
    """Issue 18's two enqueue targets, as tasks/s and as multiples of this run's HTTP ceiling
    of the single add (see the module's docstring)."""
    yardstick = by_key["native-single"]["ceiling"]["requests_per_s"]
    batch = by_key["native-batch"]["tasks_per_s"]
    single = by_key["native-single"]["tasks_per_s"]
    return [
        Target(f"native API, batches of {BATCH}: tasks/s", batch, TARGET_BATCH),
        Target(
            f"native API, batches of {BATCH}: tasks/s ÷ single-add HTTP ceiling",
            round(batch / max(yardstick, 1e-9), 3),
            round(TARGET_BATCH / ISSUE_SINGLE_CEILING, 3),
        ),
        Target("native API, single adds: tasks/s", single, TARGET_SINGLE),
        Target(
            "native API, single adds: tasks/s ÷ their HTTP ceiling",
            round(single / max(yardstick, 1e-9), 3),
            round(TARGET_SINGLE / ISSUE_SINGLE_CEILING, 3),
        ),
    ]


async def run(ctx: Context) -> Result:
    from benchmarks import charts  # matplotlib loads only when drawing

    load_start = os.getloadavg()
    batch_n = ctx.n(full=50_000, quick=10_000, smoke=200)
    single_n = ctx.n(full=10_000, quick=3_000, smoke=100)
    queue_yaml = "queue:\n" + harness.push_queue_yaml() + f"- name: {PULL_QUEUE}\n  mode: pull\n"
    settings = harness.settings_yaml(durability="full")
    runs: list[Run] = []
    expected = {QUEUE: 0, PULL_QUEUE: 0}
    async with ctx.pushd("pushd-enqueue", queue_yaml=queue_yaml, settings_yaml=settings) as daemon:
        await post_json(ctx.session, f"{daemon.url}/api/v1/queues/{QUEUE}/pause")
        steps: list[Callable[[], Any]] = [
            lambda: http_path(ctx, daemon, native_single(single_n)),
            lambda: http_path(ctx, daemon, native_batch(batch_n)),
            lambda: python_client_path(ctx, daemon, single_n, 1, SINGLE_CLIENTS),
            lambda: python_client_path(ctx, daemon, batch_n, BATCH, BATCH_POSTERS),
            lambda: http_path(ctx, daemon, v1beta2_insert(single_n)),
            lambda: http_path(ctx, daemon, rpc_bulk_add(batch_n)),
        ]
        for step in steps:
            done: Run = await step()
            expected[done.queue] += done.added
            done.row["stored_after"] = await _check_stored(ctx, daemon.url, expected)
            runs.append(done)
        stats = {q: await queue_stats(ctx.session, daemon.url, q) for q in expected}
        memory = harness.memory_kib(daemon.pid)

    rows = [
        [
            "path",
            "tasks",
            "concurrency",
            "pushd tasks/s",
            "HTTP ceiling tasks/s",
            "pushd ÷ ceiling",
            "daemon CPU µs/task",
            "checked",
        ]
    ]
    for r in runs:
        d = r.row
        rows.append(
            [
                d["path"],
                f"{d['tasks']:,}",
                str(d["concurrency"]),
                f"{d['tasks_per_s']:,.0f}",
                f"{d['ceiling']['tasks_per_s']:,.0f}",
                f"{d['pushd/ceiling']:.3f}",
                f"{d['daemon_cpu_us_per_task']:.0f}",
                "all OK, count exact",
            ]
        )
    by_key = {r.row["key"]: r.row for r in runs}
    ratios = {f"{k} pushd/ceiling": d["pushd/ceiling"] for k, d in by_key.items()}
    targets = issue_targets(by_key)
    chart = charts.bars(
        ctx.chart("enqueue", "throughput"),
        "Enqueue: durable adds (SQLite, durability full)",
        "tasks/s, first request to last answer (in brackets: pushd ÷ HTTP ceiling)",
        [
            (f"{d['path']}\n[÷ ceiling {d['pushd/ceiling']:.3f}]", d["tasks_per_s"])
            for d in by_key.values()
        ],
        note=ctx.note,
    )
    python = by_key["python-batch"]
    notes = [
        f"every path: uniquely named tasks with a {len(harness.PAYLOAD)}-byte payload; the "
        f"queues held exactly the tasks added after each path ({QUEUE}: "
        f"{stats[QUEUE]['tasks']:,}, {PULL_QUEUE}: {stats[PULL_QUEUE]['tasks']:,})",
        "ceiling: the raw aiohttp client POSTing the same bodies with the same concurrency to "
        f"the {ctx.receiver.kind} receiver; the Python client rows' ceiling is that aiohttp "
        "loop too (it measures what http.client and the threads cost on top)",
        f"Python client: Task objects built before timing ({python['task_build_us']:.0f} µs "
        "each, validation included)",
        "the client and the daemon share the machine's CPUs: see client_cpu_pct in the data",
    ]
    return Result(
        "enqueue",
        rows,
        data={
            "paths": by_key,
            "batch_n": batch_n,
            "single_n": single_n,
            "final_stats": stats,
            "daemon_peak_rss_mib": round(memory.get("VmHWM", 0) / 1024, 1),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
        ratios=ratios,
        targets=targets,
        charts=[chart],
        notes=notes,
    )
