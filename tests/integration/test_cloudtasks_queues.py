"""Queues created through the Cloud Tasks API on real daemons (subprocesses, ``--grpc-port 0``)
driven by Google's official ``google-cloud-tasks`` client, unchanged, delivering to a real
receiver on 127.0.0.1: on a SQLite file (created, delivered from, changed, kept by a restart,
deleted with its 1-hour tombstone; seen by the native API, /metrics and a reload), and on one
PostgreSQL with two daemons (created on one, delivered through the other, deleted there, gone
on the first)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import grpc
import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport

from tests.integration.harness import Daemon
from tests.integration.test_cloudtasks import GRPC, PARENT, QUEUE_YAML, start

if TYPE_CHECKING:
    from tests.integration.conftest import StartDaemon
    from tests.integration.harness import Receiver

NEW = f"{PARENT}/queues/made"
T = TypeVar("T")
POLL_S = 15.0  # another daemon hears of a change by NOTIFY: bounded, no event to await


def client_of(grpc_address: str) -> tasks_v2.CloudTasksAsyncClient:
    channel = grpc.aio.insecure_channel(grpc_address)
    return tasks_v2.CloudTasksAsyncClient(transport=CloudTasksGrpcAsyncIOTransport(channel=channel))


def grpc_address(daemon: Daemon) -> str:
    [line] = daemon.events("listening")
    match = GRPC.search(line)
    assert match, line
    return match.group(1)


async def until(check: Callable[[], Awaitable[T]], what: str) -> T:
    """``check()`` once it stops raising, polled for at most :data:`POLL_S`."""
    deadline = time.monotonic() + POLL_S
    while True:
        try:
            return await check()
        except (AssertionError, exceptions.GoogleAPICallError):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {POLL_S}s") from None
            await asyncio.sleep(0.05)


def task(relative_uri: str, **fields: Any) -> dict[str, Any]:
    return {"app_engine_http_request": {"relative_uri": relative_uri}, **fields}


async def get_text(daemon: Daemon, path: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(daemon.url + path) as response:
        assert response.status == 200
        return await response.text()


async def test_an_api_queue_on_sqlite_runs_changes_survives_a_restart_and_is_deleted(
    start_daemon: StartDaemon, receiver: Receiver, tmp_path: Path
) -> None:
    daemon, address = await start(start_daemon)
    client = client_of(address)
    made = await client.create_queue(
        parent=PARENT,
        queue={"name": NEW, "rate_limits": {"max_dispatches_per_second": 20}},
    )
    assert made.retry_config.max_attempts == 100  # Cloud Tasks' default
    for i in range(3):
        await client.create_task(parent=NEW, task=task(f"/made/{i}"))
    delivered = await receiver.wait_for(3)
    assert sorted(d.path for d in delivered) == ["/made/0", "/made/1", "/made/2"]
    assert {d.headers["X-AppEngine-QueueName"] for d in delivered} == {"made"}
    changed = await client.update_queue(
        queue={"name": NEW, "rate_limits": {"max_dispatches_per_second": 5}},
        update_mask={"paths": ["rate_limits.max_dispatches_per_second"]},
    )
    assert changed.rate_limits.max_dispatches_per_second == 5
    later = int(time.time()) + 3600
    kept = await client.create_task(
        parent=NEW, task=task("/later", name=f"{NEW}/tasks/kept", schedule_time={"seconds": later})
    )
    # Everywhere a queue appears: the native API, /metrics; a reload of queue.yaml keeps it.
    assert '"made"' in await get_text(daemon, "/api/v1/queues")
    assert 'queue="made"' in await get_text(daemon, "/metrics")
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGHUP)
    await daemon.wait_event("config_reloaded")
    assert (await client.get_queue(name=NEW)).rate_limits.max_dispatches_per_second == 5
    await client.transport.close()
    assert await daemon.stop() == 0

    daemon, address = await start(start_daemon)  # the same SQLite file
    client = client_of(address)
    again = await client.get_queue(name=NEW)
    assert again.rate_limits.max_dispatches_per_second == 5
    assert again.state == tasks_v2.Queue.State.RUNNING
    assert (await client.get_task(name=kept.name)).schedule_time.timestamp() == later
    await client.delete_queue(name=NEW)
    with pytest.raises(exceptions.NotFound, match="Queue does not exist"):
        await client.get_queue(name=NEW)
    with pytest.raises(exceptions.FailedPrecondition, match="existed too recently"):
        await client.create_queue(parent=PARENT, queue={"name": NEW})
    assert '"made"' not in await get_text(daemon, "/api/v1/queues")
    await client.transport.close()
    assert len(receiver.deliveries) == 3  # the task kept for later went with its queue


async def test_two_daemons_on_postgresql_share_the_api_queues(
    tmp_path: Path, receiver: Receiver, pg_url: str
) -> None:
    started: list[Daemon] = []
    try:
        for _ in range(2):
            d = Daemon(
                tmp_path,
                QUEUE_YAML,
                default_target=receiver.url,
                db_url=pg_url,
                extra_args=["--grpc-port", "0"],
            )
            started.append(await d.start())
        a, b = (client_of(grpc_address(d)) for d in started)
        await a.create_queue(parent=PARENT, queue={"name": NEW})
        seen = await until(lambda: b.get_queue(name=NEW), "B sees the queue A created")
        assert seen.rate_limits.max_dispatches_per_second == 500
        for i in range(4):
            await b.create_task(parent=NEW, task=task(f"/shared/{i}"))
        delivered = await receiver.wait_for(4)
        assert sorted(d.path for d in delivered) == [f"/shared/{i}" for i in range(4)]
        await b.update_queue(queue={"name": NEW, "retry_config": {"max_attempts": 7}})

        async def a_sees_the_change() -> None:
            assert (await a.get_queue(name=NEW)).retry_config.max_attempts == 7

        await until(a_sees_the_change, "A sees B's update")
        await b.create_task(
            parent=NEW, task=task("/never", schedule_time={"seconds": int(time.time()) + 3600})
        )
        await b.delete_queue(name=NEW)

        async def a_finds_it_gone() -> None:
            try:
                await a.get_queue(name=NEW)
            except exceptions.NotFound:
                return
            raise AssertionError("still there")

        await until(a_finds_it_gone, "A sees B's delete")
        with pytest.raises(exceptions.FailedPrecondition, match="existed too recently"):
            await a.create_queue(parent=PARENT, queue={"name": NEW})
        await a.transport.close()
        await b.transport.close()
    finally:
        for d in started:
            await d.kill()
