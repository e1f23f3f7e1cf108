"""Cloud Tasks v2beta2's pull methods and v2beta3's BatchCreateTasks on a real daemon
(subprocess, SQLite file, ``--grpc-port 0``) with a pull queue from queue.yaml, driven by
Google's official clients unchanged (``tasks_v2beta2``, ``tasks_v2beta3``) over gRPC and REST;
a lease survives a restart. Exact lease times are checked in process on a FakeClock
(tests/unit/test_cloudtasks_pull.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import tasks_v2beta2, tasks_v2beta3
from google.protobuf import duration_pb2

if TYPE_CHECKING:
    from tests.integration.conftest import StartDaemon
    from tests.integration.harness import Daemon, Receiver

QUEUE_YAML = """
queue:
- name: jobs
  rate: 50/s
- name: work
  mode: pull
  retry_parameters:
    task_retry_limit: 5
"""
PARENT = "projects/my-project/locations/us-central1"
JOBS = f"{PARENT}/queues/jobs"
WORK = f"{PARENT}/queues/work"
GRPC = re.compile(r"\bgrpc=(\S+)")


async def start(start_daemon: StartDaemon) -> tuple[Daemon, str]:
    daemon = await start_daemon(QUEUE_YAML, extra_args=["--grpc-port", "0"])
    [line] = daemon.events("listening")
    match = GRPC.search(line)
    assert match, line
    return daemon, match.group(1)


def client(module: Any, daemon: Daemon, grpc_address: str, transport: str) -> Any:
    if transport == "grpc":
        transports = module.services.cloud_tasks.transports
        channel = grpc.insecure_channel(grpc_address)
        return module.CloudTasksClient(
            transport=transports.CloudTasksGrpcTransport(channel=channel)
        )
    return module.CloudTasksClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=daemon.url),
    )


async def off_loop(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


def seconds(n: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=n)


def short(task: Any) -> str:
    return str(task.name).rpartition("/")[2]


@pytest.mark.parametrize("transport", ["grpc", "rest"])
async def test_lease_renew_cancel_acknowledge_with_tags(
    start_daemon: StartDaemon, transport: str
) -> None:
    daemon, grpc_address = await start(start_daemon)
    tasks = client(tasks_v2beta2, daemon, grpc_address, transport)
    queues = await off_loop(lambda: list(tasks.list_queues(parent=PARENT)))
    work = next(q for q in queues if q.name == WORK)
    assert "pull_target" in work
    assert work.retry_config.max_attempts == 5  # five leases
    for name, tag in (("a1", "a"), ("b1", "b"), ("a2", "a")):
        task = {
            "name": f"{WORK}/tasks/{name}",
            "pull_message": {"payload": b"p-" + name.encode(), "tag": tag},
        }
        await off_loop(lambda task=task: tasks.create_task(parent=WORK, task=task))

    def lease(**request: Any) -> list[Any]:
        answer = tasks.lease_tasks(
            request={"parent": WORK, "max_tasks": 10, "lease_duration": seconds(60), **request}
        )
        return list(answer.tasks)

    oldest = await off_loop(lambda: lease(filter="tag_function=oldest_tag()", response_view=2))
    assert [short(t) for t in oldest] == ["a1", "a2"]
    assert oldest[0].pull_message.payload == b"p-a1"
    assert await off_loop(lambda: lease(filter="tag=a")) == []  # both held
    [b1] = await off_loop(lambda: lease(filter="tag=b"))
    a1, a2 = oldest
    renewed = await off_loop(
        lambda: tasks.renew_lease(
            name=a1.name, schedule_time=a1.schedule_time, lease_duration=seconds(600)
        )
    )
    assert renewed.schedule_time > a1.schedule_time
    with pytest.raises(exceptions.GoogleAPICallError, match="is not the end of its current lease"):
        await off_loop(lambda: tasks.acknowledge_task(name=a1.name, schedule_time=a1.schedule_time))
    await off_loop(
        lambda: tasks.acknowledge_task(name=a1.name, schedule_time=renewed.schedule_time)
    )
    with pytest.raises(exceptions.NotFound, match="existed recently"):
        await off_loop(lambda: tasks.get_task(name=a1.name))
    await off_loop(lambda: tasks.cancel_lease(name=a2.name, schedule_time=a2.schedule_time))
    [again] = await off_loop(lambda: lease(filter="tag=a"))
    assert short(again) == "a2"
    assert again.status.attempt_dispatch_count == 2
    await off_loop(lambda: tasks.acknowledge_task(name=b1.name, schedule_time=b1.schedule_time))
    listed = await off_loop(lambda: [short(t) for t in tasks.list_tasks(parent=WORK)])
    assert listed == ["a2"]
    paused = await off_loop(lambda: tasks.pause_queue(name=WORK))
    assert paused.state == tasks_v2beta2.Queue.State.PAUSED
    with pytest.raises(exceptions.GoogleAPICallError, match="is PAUSED"):
        await off_loop(lambda: lease())
    tasks.transport.close()


async def test_a_lease_survives_a_restart(start_daemon: StartDaemon) -> None:
    daemon, grpc_address = await start(start_daemon)
    tasks = client(tasks_v2beta2, daemon, grpc_address, "grpc")
    task = {"name": f"{WORK}/tasks/kept", "pull_message": {"payload": b"durable", "tag": "t"}}
    await off_loop(lambda: tasks.create_task(parent=WORK, task=task))
    leased = await off_loop(
        lambda: tasks.lease_tasks(
            request={"parent": WORK, "max_tasks": 1, "lease_duration": seconds(3600)}
        )
    )
    [held] = leased.tasks
    tasks.transport.close()
    assert await daemon.stop() == 0

    daemon, grpc_address = await start(start_daemon)  # the same SQLite file
    tasks = client(tasks_v2beta2, daemon, grpc_address, "grpc")
    again = await off_loop(
        lambda: tasks.lease_tasks(
            request={"parent": WORK, "max_tasks": 1, "lease_duration": seconds(60)}
        )
    )
    assert list(again.tasks) == []  # still held
    await off_loop(lambda: tasks.acknowledge_task(name=held.name, schedule_time=held.schedule_time))
    assert await off_loop(lambda: list(tasks.list_tasks(parent=WORK))) == []
    tasks.transport.close()


@pytest.mark.parametrize("transport", ["grpc", "rest"])
async def test_batch_create_tasks_delivers_them(
    start_daemon: StartDaemon, receiver: Receiver, transport: str
) -> None:
    daemon, grpc_address = await start(start_daemon)
    tasks = client(tasks_v2beta3, daemon, grpc_address, transport)
    requests = [
        {"parent": JOBS, "task": {"app_engine_http_request": {"relative_uri": f"/batch/{i}"}}}
        for i in range(5)
    ]
    bad = [
        *requests[:2],
        {"parent": JOBS, "task": {"app_engine_http_request": {"relative_uri": "x"}}},
    ]
    with pytest.raises(exceptions.BadRequest, match=re.escape("requests[2]")):
        await off_loop(lambda: tasks.batch_create_tasks(parent=JOBS, requests=bad))
    operation = await off_loop(lambda: tasks.batch_create_tasks(parent=JOBS, requests=requests))
    result = await off_loop(operation.result)
    assert len(result.tasks) == 5
    deliveries = await receiver.wait_for(5)
    assert sorted(d.path for d in deliveries) == [f"/batch/{i}" for i in range(5)]
    tasks.transport.close()
