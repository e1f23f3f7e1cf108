"""The Cloud Tasks API of a real daemon (subprocess, SQLite file, ``--grpc-port 0``) driven by
Google's official ``google-cloud-tasks`` client, unchanged (CLOUDTASKS.md 3.4), delivering to
a real receiver on 127.0.0.1: over gRPC (sync and asyncio) and over REST (sync; the client has
no asyncio REST transport)."""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import (
    CloudTasksGrpcAsyncIOTransport,
    CloudTasksGrpcTransport,
)

if TYPE_CHECKING:
    from tests.integration.conftest import StartDaemon
    from tests.integration.harness import Daemon, Receiver

QUEUE_YAML = """
queue:
- name: jobs
  rate: 50/s
  bucket_size: 10
  retry_parameters:
    task_retry_limit: 2
    min_backoff_seconds: 1
"""
PARENT = "projects/my-project/locations/us-central1"
QUEUE = f"{PARENT}/queues/jobs"
GRPC = re.compile(r"\bgrpc=(\S+)")
HOUR_S = 3600


async def start(start_daemon: StartDaemon, *args: str) -> tuple[Daemon, str]:
    daemon = await start_daemon(QUEUE_YAML, extra_args=["--grpc-port", "0", *args])
    [line] = daemon.events("listening")
    match = GRPC.search(line)
    assert match, line
    return daemon, match.group(1)


def sync_client(daemon: Daemon, grpc_address: str, transport: str) -> tasks_v2.CloudTasksClient:
    if transport == "grpc":
        channel = grpc.insecure_channel(grpc_address)
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    return tasks_v2.CloudTasksClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=daemon.url),
    )


async def off_loop(fn: Callable[[], Any]) -> Any:
    """A blocking client call, off the loop the receiver answers on."""
    return await asyncio.to_thread(fn)


@pytest.mark.parametrize("transport", ["grpc", "rest"])
async def test_sync_client_creates_runs_and_dedups_tasks(
    start_daemon: StartDaemon, receiver: Receiver, transport: str
) -> None:
    daemon, grpc_address = await start(start_daemon)
    client = sync_client(daemon, grpc_address, transport)
    queue = await off_loop(lambda: client.get_queue(name=QUEUE))
    assert (queue.rate_limits.max_dispatches_per_second, queue.retry_config.max_attempts) == (
        50.0,
        3,
    )
    task = {
        "name": f"{QUEUE}/tasks/now-1",
        "app_engine_http_request": {
            "relative_uri": "/work?x=1",
            "http_method": tasks_v2.HttpMethod.PUT,
            "headers": {"Content-Type": "application/json", "X-Mixed-Case": "kept"},
            "body": b'{"a": 1}',
        },
    }
    created = await off_loop(lambda: client.create_task(parent=QUEUE, task=task))
    assert created.name == f"{QUEUE}/tasks/now-1"
    [delivery] = await receiver.wait_for(1)
    assert (delivery.method, delivery.path, delivery.body) == ("PUT", "/work?x=1", b'{"a": 1}')
    headers = delivery.headers
    assert headers["X-AppEngine-QueueName"] == "jobs"
    assert headers["X-AppEngine-TaskName"] == "now-1"
    assert headers["X-AppEngine-TaskRetryCount"] == "0"
    assert headers["X-Mixed-Case"] == "kept"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("AppEngine-Google; (+http://code.google.com/appengine)")
    # Delivered: the name is tombstoned, so a second create is refused as Google refuses it.
    with pytest.raises(exceptions.Conflict, match="Requested entity already exists"):
        await off_loop(lambda: client.create_task(parent=QUEUE, task=task))
    with pytest.raises(exceptions.NotFound, match="existed recently"):
        await off_loop(lambda: client.get_task(name=created.name))
    with pytest.raises(exceptions.NotFound, match=re.escape("Requested entity was not found.")):
        await off_loop(lambda: client.get_task(name=f"{QUEUE}/tasks/never-used"))

    later = {
        "name": f"{QUEUE}/tasks/later-1",
        "app_engine_http_request": {"relative_uri": "/later"},
        "schedule_time": {"seconds": int(time.time()) + HOUR_S},
    }
    await off_loop(lambda: client.create_task(parent=QUEUE, task=later))
    listed = await off_loop(lambda: list(client.list_tasks(parent=QUEUE)))
    assert [t.name for t in listed] == [f"{QUEUE}/tasks/later-1"]
    await off_loop(lambda: client.run_task(name=f"{QUEUE}/tasks/later-1"))
    deliveries = await receiver.wait_for(2)
    assert deliveries[1].path == "/later"
    client.transport.close()


@pytest.mark.parametrize("transport", ["grpc", "rest"])
async def test_pause_resume_purge_delete_and_errors(
    start_daemon: StartDaemon, receiver: Receiver, transport: str
) -> None:
    daemon, grpc_address = await start(start_daemon)
    client = sync_client(daemon, grpc_address, transport)
    paused = await off_loop(lambda: client.pause_queue(name=QUEUE))
    assert paused.state == tasks_v2.Queue.State.PAUSED
    for name in ("a", "b", "c"):
        task = {"name": f"{QUEUE}/tasks/{name}", "app_engine_http_request": {"relative_uri": "/p"}}
        await off_loop(lambda task=task: client.create_task(parent=QUEUE, task=task))
    await off_loop(lambda: client.delete_task(name=f"{QUEUE}/tasks/b"))
    pages = await off_loop(
        lambda: [
            [t.name.rpartition("/")[2] for t in page.tasks]
            for page in client.list_tasks(request={"parent": QUEUE, "page_size": 1}).pages
        ]
    )
    assert pages == [["a"], ["c"]]
    purged = await off_loop(lambda: client.purge_queue(name=QUEUE))
    assert purged.purge_time.timestamp() > 0
    assert await off_loop(lambda: list(client.list_tasks(parent=QUEUE))) == []
    resumed = await off_loop(lambda: client.resume_queue(name=QUEUE))
    assert resumed.state == tasks_v2.Queue.State.RUNNING
    with pytest.raises(exceptions.NotFound, match=re.escape("Queue does not exist.")):
        await off_loop(lambda: client.get_queue(name=f"{PARENT}/queues/nope"))
    bad = {"name": f"{QUEUE}/tasks/bad id", "app_engine_http_request": {}}
    with pytest.raises(exceptions.BadRequest, match=re.escape('Task ID "bad id" can contain')):
        await off_loop(lambda: client.create_task(parent=QUEUE, task=bad))
    again = {"name": f"{QUEUE}/tasks/b", "app_engine_http_request": {}}
    with pytest.raises(exceptions.Conflict, match="Requested entity already exists"):
        await off_loop(lambda: client.create_task(parent=QUEUE, task=again))
    assert receiver.deliveries == []  # purged while paused: nothing went out
    client.transport.close()


async def test_async_grpc_client_and_a_restart(
    start_daemon: StartDaemon, receiver: Receiver
) -> None:
    daemon, grpc_address = await start(start_daemon)
    channel = grpc.aio.insecure_channel(grpc_address)
    client = tasks_v2.CloudTasksAsyncClient(
        transport=CloudTasksGrpcAsyncIOTransport(channel=channel)
    )
    unnamed = await client.create_task(
        parent=QUEUE, task={"app_engine_http_request": {"relative_uri": "/async", "body": b"x"}}
    )
    [delivery] = await receiver.wait_for(1)
    assert delivery.headers["X-AppEngine-TaskName"] == unnamed.name.rpartition("/")[2]
    eta_s = int(time.time()) + HOUR_S
    kept = await client.create_task(
        parent=QUEUE,
        task={
            "name": f"{QUEUE}/tasks/kept",
            "app_engine_http_request": {"relative_uri": "/kept", "body": b"durable"},
            "schedule_time": {"seconds": eta_s, "nanos": 250_000_000},
        },
    )
    await client.transport.close()
    assert await daemon.stop() == 0

    daemon, grpc_address = await start(start_daemon)  # the same SQLite file
    channel = grpc.aio.insecure_channel(grpc_address)
    client = tasks_v2.CloudTasksAsyncClient(
        transport=CloudTasksGrpcAsyncIOTransport(channel=channel)
    )
    again = await client.get_task(
        request={"name": kept.name, "response_view": tasks_v2.Task.View.FULL}
    )
    assert again.schedule_time.timestamp() == eta_s + 0.25
    assert again.app_engine_http_request.body == b"durable"
    with pytest.raises(exceptions.AlreadyExists, match="Requested entity already exists"):
        await client.create_task(
            parent=QUEUE, task={"name": kept.name, "app_engine_http_request": {}}
        )
    await client.delete_task(name=kept.name)
    with pytest.raises(exceptions.NotFound):
        await client.get_task(name=kept.name)
    await client.transport.close()


def _scoped_calls(client: tasks_v2.CloudTasksClient, refused: type[Exception], tag: str) -> None:
    """In a thread: a task in the allowed parent, refusals outside it, the locations listed."""
    other = "projects/someone-else/locations/us-central1/queues/jobs"
    task = {"name": f"{QUEUE}/tasks/via-{tag}", "app_engine_http_request": {}}
    assert client.create_task(parent=QUEUE, task=task).name == f"{QUEUE}/tasks/via-{tag}"
    with pytest.raises(refused, match="Permission denied on resource project someone-else"):
        client.create_task(parent=other, task={})
    with pytest.raises(refused, match="Permission denied on resource project someone-else"):
        client.get_queue(name=other)
    with pytest.raises(refused, match=re.escape("its setting cloud_tasks.locations lists")):
        client.list_queues(parent="projects/my-project/locations/asia-east1")
    locations = client.list_locations(request={"name": "projects/my-project"})
    assert [loc.location_id for loc in locations.locations] == ["us-central1", "europe-west1"]


async def test_a_daemon_serving_one_project_refuses_the_others(
    start_daemon: StartDaemon, receiver: Receiver, tmp_path: Path
) -> None:
    """``cloud_tasks: {projects: [...], locations: [...]}``: the allowed parent works over
    both transports; another project or location is PERMISSION_DENIED (gRPC; REST 403) with
    Google's message, and only the allowed tasks are delivered."""
    settings = tmp_path / "pushd.yaml"
    settings.write_text(
        "cloud_tasks:\n  projects: [my-project]\n  locations: [us-central1, europe-west1]\n"
    )
    daemon, grpc_address = await start(start_daemon, "--settings", str(settings))
    for transport, refused in (
        ("grpc", exceptions.PermissionDenied),
        ("rest", exceptions.Forbidden),
    ):
        client = sync_client(daemon, grpc_address, transport)
        await off_loop(functools.partial(_scoped_calls, client, refused, transport))
        client.transport.close()
    deliveries = await receiver.wait_for(2)
    assert sorted(d.headers["X-AppEngine-TaskName"] for d in deliveries) == [
        "via-grpc",
        "via-rest",
    ]
