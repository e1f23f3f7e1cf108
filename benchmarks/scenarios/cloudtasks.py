"""Scenario: the Cloud Tasks API, driven by Google's official ``google-cloud-tasks`` client.

One fresh daemon (SQLite, ``durability: full``, ``cloud_tasks: {grpc_port: 0}``) with the
push queue ``bench`` paused through the API (``pause_queue``). Then N ``create_task`` calls of
``app_engine_http_request`` tasks (32-byte bodies, relative URL ``/ct-<transport>/<i>``) per
transport, the way gcloud-tasks-emulator's run adds its tasks (:mod:`benchmarks.peers`): half
from one thread, half from 8 threads sharing the client (the client blocks; the threads keep
the event loop free):

* **gRPC**: ``CloudTasksClient`` over a plaintext channel to the gRPC port;
* **REST**: ``CloudTasksClient(transport="rest")`` against the API port (``/v2/``).

Then ``resume_queue`` releases all 2N and the receiver counts them: deliveries/s from the
first to the last arrival (the queue runs at 100,000/s, so the daemon is the limit). Then the
same again with N ``http_request`` tasks over gRPC (absolute URLs to the receiver, allowed by
``http_targets``: each attempt resolves and checks the address and sends the X-CloudTasks-*
headers), the kind of task the emulator delivers.

Peer, in the same run: gcloud-tasks-emulator 0.6.2 (in memory, gRPC only) with its own
``create_task`` calls (``http_request`` tasks: it has no App Engine routing) and its delivery.
Ratios: pushd gRPC ÷ REST adds, pushd ÷ the emulator (adds over gRPC, ``http_request``
deliveries: like for like), pushd's ``http_request`` ÷ ``app_engine_http_request`` deliveries.
"""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks import harness
from benchmarks.harness import rate, say
from benchmarks.scenarios import Context, Result, Target

QUEUE = harness.QUEUE
PARENT = "projects/bench/locations/here"
QUEUE_PATH = f"{PARENT}/queues/{QUEUE}"
THREADS = 8
BODY = b"x" * 32
RPC_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_S = 300.0
GRPC_ADDRESS = re.compile(r"\bgrpc=(\S+)")
TRANSPORTS = ("grpc", "rest")


def _client(transport: str, *, url: str, grpc_address: str) -> Any:
    import grpc
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    if transport == "grpc":
        channel = grpc.insecure_channel(grpc_address)
        grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    return tasks_v2.CloudTasksClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=url),
    )


def _app_engine_task(transport: str, i: int) -> dict[str, Any]:
    return {"app_engine_http_request": {"relative_uri": f"/ct-{transport}/{i}", "body": BODY}}


def _create(
    client: Any, transport: str, n: int, task_of: Any = _app_engine_task
) -> dict[str, float]:
    """N create_task calls: half from this thread, half from THREADS threads; ``task_of(
    transport, i)`` builds each task."""

    def create(i: int) -> None:
        client.create_task(parent=QUEUE_PATH, task=task_of(transport, i), timeout=RPC_TIMEOUT_S)

    create(-1)  # warm-up: the connection opens (this task is delivered too)
    half = n // 2
    t0 = time.perf_counter()
    for i in range(half):
        create(i)
    t1 = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        for _ in pool.map(create, range(half, n)):
            pass
    t2 = time.perf_counter()
    return {
        "creates_per_s": rate(n, t2 - t0),
        "seq_per_s": rate(half, t1 - t0),
        f"x{THREADS}_per_s": rate(n - half, t2 - t1),
    }


async def _released(ctx: Context, client: Any, total: int) -> dict[str, Any]:
    """Resume the queue and wait for ``total`` deliveries: their rate from the first to the
    last arrival."""
    if await ctx.receiver.count():
        raise RuntimeError("pushd delivered while its queue was paused")
    released = time.time()
    await asyncio.to_thread(client.resume_queue, name=QUEUE_PATH)
    hits = await ctx.receiver.wait_count(total, DELIVERY_TIMEOUT_S)
    first, last = hits[0].t, hits[-1].t
    return {
        "delivered": len(hits),
        "distinct": len({h.path for h in hits}),
        "deliveries_per_s": rate(len(hits) - 1, last - first),
        "release_to_first_s": first - released,
    }


async def _http_tasks(ctx: Context, client: Any, n: int) -> dict[str, Any]:
    """The same N create_task calls over gRPC, of ``http_request`` tasks to the receiver (an
    absolute URL under ``http_targets``: every attempt resolves and checks its address, and
    carries the X-CloudTasks-* headers), then their delivery."""
    await ctx.receiver.reset()
    await asyncio.to_thread(client.pause_queue, name=QUEUE_PATH)

    def http_task(transport: str, i: int) -> dict[str, Any]:
        url = f"{ctx.receiver.url}/ct-{transport}/{i}"
        return {"http_request": {"url": url, "body": BODY}}

    say(f"cloudtasks: pushd, {n:,} create_task of http_request tasks over gRPC")
    figures = await asyncio.to_thread(_create, client, "http", n, http_task)
    return {**figures, **await _released(ctx, client, n + 1)}


async def _pushd(ctx: Context, n: int) -> dict[str, Any]:
    queue_yaml = "queue:\n" + harness.push_queue_yaml()
    settings = (
        harness.settings_yaml()
        + "cloud_tasks:\n  grpc_port: 0\n"
        + f"http_targets:\n  - {ctx.receiver.url}/ct-http/\n"
    )
    await ctx.receiver.reset()
    async with ctx.pushd("cloudtasks", queue_yaml=queue_yaml, settings_yaml=settings) as child:
        match = GRPC_ADDRESS.search(child.log.read_text(errors="replace"))
        if match is None:
            raise RuntimeError(f"pushd named no grpc= address:\n{harness.tail(child.log)}")
        clients = {
            t: await asyncio.to_thread(_client, t, url=child.url, grpc_address=match.group(1))
            for t in TRANSPORTS
        }
        await asyncio.to_thread(clients["grpc"].pause_queue, name=QUEUE_PATH)
        row: dict[str, Any] = {"n": n}
        for transport in TRANSPORTS:
            say(f"cloudtasks: pushd, {n:,} create_task over {transport}")
            figures = await asyncio.to_thread(_create, clients[transport], transport, n)
            row[transport] = figures
        row.update(await _released(ctx, clients["grpc"], len(TRANSPORTS) * (n + 1)))
        row["http"] = await _http_tasks(ctx, clients["grpc"], n)
        for client in clients.values():
            client.transport.close()
    return row


async def _peer(ctx: Context, n: int) -> dict[str, Any] | None:
    if ctx.peers is not None and "gte" not in ctx.peers:
        return None
    from benchmarks import peers  # only when peers run

    [row] = await peers.run_all(
        ctx.receiver, n=n, tmp=ctx.run_dir("peers"), timeout_s=DELIVERY_TIMEOUT_S, only=["gte"]
    )
    return row


async def run(ctx: Context) -> Result:
    n = ctx.n(full=4_000, quick=1_000, smoke=40)
    ours = await _pushd(ctx, n)
    peer = await _peer(ctx, n)
    grpc_rate, rest_rate = ours["grpc"]["creates_per_s"], ours["rest"]["creates_per_s"]
    http = ours["http"]
    rows = [
        ["system", "create_task/s", "1 thread", f"{THREADS} threads", "deliveries/s"],
        [
            "pushd, gRPC",
            f"{grpc_rate:,.0f}",
            f"{ours['grpc']['seq_per_s']:,.0f}",
            f"{ours['grpc'][f'x{THREADS}_per_s']:,.0f}",
            f"{ours['deliveries_per_s']:,.0f}",
        ],
        [
            "pushd, REST",
            f"{rest_rate:,.0f}",
            f"{ours['rest']['seq_per_s']:,.0f}",
            f"{ours['rest'][f'x{THREADS}_per_s']:,.0f}",
            "(same run)",
        ],
        [
            "pushd, gRPC, http_request",
            f"{http['creates_per_s']:,.0f}",
            f"{http['seq_per_s']:,.0f}",
            f"{http[f'x{THREADS}_per_s']:,.0f}",
            f"{http['deliveries_per_s']:,.0f}",
        ],
    ]
    ratios = {
        "pushd gRPC/REST create_task": grpc_rate / max(rest_rate, 1e-9),
        "pushd http_request/app_engine deliveries": http["deliveries_per_s"]
        / max(ours["deliveries_per_s"], 1e-9),
    }
    targets: list[Target] = []
    if peer is not None and "skipped" not in peer:
        rows.append(
            [
                f"{peer['system']}, gRPC",
                f"{peer['enqueue_tasks_per_s']:,.0f}",
                f"{peer['enqueue_seq_per_s']:,.0f}",
                f"{peer.get(f'enqueue_x{THREADS}_per_s', 0):,.0f}",
                f"{peer.get('deliveries_per_s', 0):,.0f}",
            ]
        )
        ratios["pushd/gte create_task (gRPC)"] = grpc_rate / max(peer["enqueue_tasks_per_s"], 1e-9)
        ratios["pushd/gte http_request deliveries"] = http["deliveries_per_s"] / max(
            peer.get("deliveries_per_s", 0), 1e-9
        )
    elif peer is not None:
        rows.append([peer["system"], "", "", "", f"skipped: {peer['skipped']}"])
    if ours["distinct"] != len(TRANSPORTS) * (n + 1):
        raise RuntimeError(f"pushd delivered {ours['distinct']} distinct tasks of {2 * (n + 1)}")
    if http["distinct"] != n + 1:
        raise RuntimeError(f"pushd delivered {http['distinct']} distinct HTTP tasks of {n + 1}")
    return Result(
        scenario="cloudtasks",
        table=rows,
        data={"pushd": ours, "peer": peer},
        ratios=ratios,
        targets=targets,
        notes=[
            "pushd: every create_task is durable (fsync) before it is answered; the emulator "
            "keeps tasks in memory",
            "both deliver http_request tasks (pushd checks each attempt's address against "
            "http_targets and its SSRF rules, and sends the X-CloudTasks-* headers)",
        ],
    )
