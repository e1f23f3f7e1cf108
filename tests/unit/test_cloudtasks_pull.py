"""Cloud Tasks v2beta2 (pull queues) and v2beta3's BatchCreateTasks driven by Google's official
clients, unchanged (``tasks_v2beta2``, ``tasks_v2beta3``), over asyncio gRPC, sync gRPC and
sync REST against the API app in process, on a FakeClock: every lease end is exact. The daemon
run is tests/integration/test_cloudtasks_pull.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import tasks_v2beta2, tasks_v2beta3
from google.protobuf import duration_pb2, timestamp_pb2

from pushd.cloudtasks import rpc
from tests.unit.cloudtasks_env import PARENT, QUEUE, T0, TRANSPORTS, Env, S, running

WORK = f"{PARENT}/queues/work"


class Clients:
    """One version's official client over one transport, pointed at ``env``."""

    def __init__(self, env: Env, module: Any, transport: str) -> None:
        self.env, self.transport = env, transport
        service = module.services.cloud_tasks
        if transport == "grpc-async":
            channel = grpc.aio.insecure_channel(env.grpc_address)
            self.client = module.CloudTasksAsyncClient(
                transport=service.transports.CloudTasksGrpcAsyncIOTransport(channel=channel)
            )
        elif transport == "grpc-sync":
            channel = grpc.insecure_channel(env.grpc_address)
            self.client = module.CloudTasksClient(
                transport=service.transports.CloudTasksGrpcTransport(channel=channel)
            )
        else:
            endpoint = str(env.http.make_url("")).rstrip("/")
            self.client = module.CloudTasksClient(
                transport="rest",
                credentials=AnonymousCredentials(),
                client_options=ClientOptions(api_endpoint=endpoint),
            )

    async def call(self, name: str, request: dict[str, Any]) -> Any:
        method = getattr(self.client, name)
        if self.transport == "grpc-async":
            return await method(request=request)
        return await asyncio.to_thread(lambda: method(request=request))

    async def fails(self, name: str, request: dict[str, Any]) -> exceptions.GoogleAPICallError:
        with pytest.raises(exceptions.GoogleAPICallError) as caught:
            await self.call(name, request)
        return caught.value

    async def close(self) -> None:
        if self.transport == "grpc-async":
            await self.client.transport.close()
        else:
            self.client.transport.close()


@pytest.fixture(params=TRANSPORTS)
async def beta2(request: pytest.FixtureRequest) -> AsyncIterator[Clients]:
    async with running() as env:
        clients = Clients(env, tasks_v2beta2, request.param)
        try:
            yield clients
        finally:
            await clients.close()


def us(stamp: Any) -> int:
    """A Timestamp (gRPC: protobuf) or datetime (proto-plus) as µs since the epoch."""
    if hasattr(stamp, "timestamp"):
        return round(stamp.timestamp() * S)
    return int(stamp.seconds) * S + int(stamp.nanos) // 1000


def stamp(at_us: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromMicroseconds(at_us)
    return out


def seconds(n: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromMicroseconds(round(n * S))
    return out


def assert_failed(exc: exceptions.GoogleAPICallError, http_status: int, message: str) -> None:
    assert exc.code == http_status, exc
    assert message in str(exc.message), exc.message


async def add_pull(c: Clients, name: str, tag: str = "", payload: bytes = b"p") -> Any:
    task = {"name": f"{WORK}/tasks/{name}", "pull_message": {"payload": payload, "tag": tag}}
    return await c.call("create_task", {"parent": WORK, "task": task})


async def lease(c: Clients, lease_s: float = 30, max_tasks: int = 10, **more: Any) -> list[Any]:
    request = {"parent": WORK, "max_tasks": max_tasks, "lease_duration": seconds(lease_s), **more}
    return list((await c.call("lease_tasks", request)).tasks)


def short(task: Any) -> str:
    return str(task.name).rpartition("/")[2]


# ------------------------------------------------------------------ queues and tasks


async def test_pull_and_push_queues_in_v2beta2_shapes(beta2: Clients) -> None:
    queues = (await beta2.call("list_queues", {"parent": PARENT})).queues
    by_name = {short(q): q for q in queues}
    assert sorted(by_name) == ["default", "fast", "slow", "work"]  # pull queues too
    work = by_name["work"]
    assert "pull_target" in work
    assert "app_engine_http_target" not in work
    assert work.rate_limits.max_concurrent_tasks == -1
    assert work.retry_config.unlimited_attempts
    slow = by_name["slow"]
    routing = slow.app_engine_http_target.app_engine_routing_override
    assert (routing.service, routing.version) == ("worker", "v1")
    assert slow.rate_limits.max_tasks_dispatched_per_second == 1.0
    assert slow.rate_limits.max_concurrent_tasks == 2
    fast = await beta2.call("get_queue", {"name": QUEUE})
    assert fast.retry_config.max_attempts == 5  # task_retry_limit 4: five attempts
    assert fast.rate_limits.max_burst_size == 3


async def test_create_push_and_pull_tasks(beta2: Clients) -> None:
    push = {"app_engine_http_request": {"relative_url": "/go", "payload": b"x"}}
    made = await beta2.call(
        "create_task",
        {"parent": QUEUE, "task": push, "response_view": tasks_v2beta2.Task.View.FULL},
    )
    assert made.app_engine_http_request.relative_url == "/go"
    assert made.app_engine_http_request.payload == b"x"
    stored = await beta2.env.store.get("fast", short(made))
    assert stored is not None
    assert (stored.url, stored.payload) == ("/go", b"x")
    pulled = await add_pull(beta2, "p1", tag="t", payload=b"data")
    assert pulled.pull_message.tag == "t"
    assert pulled.pull_message.payload == b""  # BASIC view: no payload
    assert us(pulled.schedule_time) == T0
    task = await beta2.env.store.get("work", "p1")
    assert task is not None
    assert (task.is_pull, task.tag, task.payload) == (True, b"t", b"data")
    wrong = await beta2.fails("create_task", {"parent": WORK, "task": push})
    assert_failed(wrong, 400, "Task.pull_message is required: queue 'work' is a pull queue")
    wrong = await beta2.fails(
        "create_task", {"parent": QUEUE, "task": {"pull_message": {"payload": b"x"}}}
    )
    assert_failed(wrong, 400, "Task.app_engine_http_request is required")
    run = await beta2.fails("run_task", {"name": f"{WORK}/tasks/p1"})
    assert_failed(run, 400, "RunTask cannot be called on a pull task")


# ------------------------------------------------------------------ leases


async def test_lease_renew_cancel_acknowledge(beta2: Clients) -> None:
    env = beta2.env
    await add_pull(beta2, "a1", tag="a", payload=b"one")
    await add_pull(beta2, "b1", tag="b")
    await add_pull(beta2, "a2", tag="a")
    leased = await lease(beta2, 30, filter="tag=a", response_view=tasks_v2beta2.Task.View.FULL)
    assert sorted(short(t) for t in leased) == ["a1", "a2"]
    first = next(t for t in leased if short(t) == "a1")
    assert first.pull_message.payload == b"one"
    assert us(first.schedule_time) == T0 + 30 * S  # the lease's end
    assert first.status.attempt_dispatch_count == 1
    assert await lease(beta2, 30, filter="tag=a") == []  # held

    env.clock.advance(10 * S)
    renewed = await beta2.call(
        "renew_lease",
        {"name": first.name, "schedule_time": first.schedule_time, "lease_duration": seconds(60.7)},
    )
    assert us(renewed.schedule_time) == T0 + 70 * S  # now + 60 s (truncated to the second)
    stale = await beta2.fails(
        "acknowledge_task", {"name": first.name, "schedule_time": first.schedule_time}
    )
    assert_failed(stale, 400, "schedule_time")
    assert stale.grpc_status_code in (None, grpc.StatusCode.FAILED_PRECONDITION)
    await beta2.call(
        "acknowledge_task", {"name": first.name, "schedule_time": renewed.schedule_time}
    )
    assert await env.store.get("work", "a1") is None
    gone = await beta2.fails("get_task", {"name": first.name})
    assert_failed(gone, 404, rpc.TASK_EXISTED_RECENTLY)

    second = next(t for t in leased if short(t) == "a2")
    cancelled = await beta2.call(
        "cancel_lease", {"name": second.name, "schedule_time": second.schedule_time}
    )
    assert us(cancelled.schedule_time) == T0 + 10 * S  # now: leasable again
    oldest = await lease(beta2, 5, filter="tag_function=oldest_tag()")
    assert [short(t) for t in oldest] == ["b1"]  # due since T0, the oldest
    again = await lease(beta2, 5, filter="tag_function=oldest_tag()")
    assert [short(t) for t in again] == ["a2"]  # due again since the cancel
    assert again[0].status.attempt_dispatch_count == 2


async def test_oldest_tag_and_max_tasks(beta2: Clients) -> None:
    for name, tag in (("x1", "x"), ("y1", "y"), ("x2", "x")):
        await add_pull(beta2, name, tag=tag)
        beta2.env.clock.advance(S)
    oldest = await lease(beta2, 30, filter="tag_function=oldest_tag()")
    assert [short(t) for t in oldest] == ["x1", "x2"]
    rest = await lease(beta2, 30)  # max_tasks 10, no filter
    assert [short(t) for t in rest] == ["y1"]
    await add_pull(beta2, "z1")
    await add_pull(beta2, "z2")
    one = await lease(beta2, 30, max_tasks=0)  # unset: one task
    assert len(one) == 1


async def test_an_expired_lease_cannot_be_acknowledged_and_is_leased_again(
    beta2: Clients,
) -> None:
    env = beta2.env
    await add_pull(beta2, "t")
    [held] = await lease(beta2, 10)
    env.clock.advance(10 * S)  # the lease ends exactly now
    late = await beta2.fails(
        "acknowledge_task", {"name": held.name, "schedule_time": held.schedule_time}
    )
    assert_failed(late, 400, "is not the end of its current lease")
    [again] = await lease(beta2, 20)
    assert us(again.schedule_time) == T0 + 30 * S
    assert again.status.attempt_dispatch_count == 2
    stale = await beta2.fails(
        "renew_lease",
        {"name": held.name, "schedule_time": held.schedule_time, "lease_duration": seconds(5)},
    )
    assert_failed(stale, 400, "another worker leased the task")
    assert (await env.store.get("work", "t")) is not None


async def test_lease_arguments_and_queue_states(beta2: Clients) -> None:
    await add_pull(beta2, "t")
    cases = [
        ({"max_tasks": 1001, "lease_duration": seconds(5)}, "max_tasks must be between 1 and 1000"),
        ({"max_tasks": 1}, "lease_duration is required"),
        ({"max_tasks": 1, "lease_duration": seconds(0.5)}, "lease_duration is required"),
        ({"max_tasks": 1, "lease_duration": seconds(604801)}, "lease_duration must be between"),
        ({"max_tasks": 1, "lease_duration": seconds(5), "filter": "x=1"}, "filter 'x=1'"),
        (
            {"max_tasks": 1, "lease_duration": seconds(5), "filter": "tag=" + "t" * 500},
            "less than 500 characters",
        ),
    ]
    for request, message in cases:
        failed = await beta2.fails("lease_tasks", {"parent": WORK, **request})
        assert_failed(failed, 400, message)
    push = await beta2.fails(
        "lease_tasks", {"parent": QUEUE, "max_tasks": 1, "lease_duration": seconds(5)}
    )
    assert_failed(push, 400, "is a push queue")
    await beta2.call("pause_queue", {"name": WORK})
    paused = await beta2.fails(
        "lease_tasks", {"parent": WORK, "max_tasks": 1, "lease_duration": seconds(5)}
    )
    assert_failed(paused, 400, "is PAUSED")
    assert paused.grpc_status_code in (None, grpc.StatusCode.FAILED_PRECONDITION)
    await beta2.call("resume_queue", {"name": WORK})
    assert len(await lease(beta2, 5)) == 1
    no_token = await beta2.fails("acknowledge_task", {"name": f"{WORK}/tasks/t"})
    assert_failed(no_token, 400, "schedule_time is required")
    unknown = await beta2.fails(
        "acknowledge_task", {"name": f"{WORK}/tasks/nope", "schedule_time": stamp(T0)}
    )
    assert_failed(unknown, 404, "")


async def test_a_removed_pull_queue_is_disabled() -> None:
    async with running(removed=("gone",)) as env:
        clients = Clients(env, tasks_v2beta2, "grpc-async")
        try:
            got = await clients.call("get_queue", {"name": f"{PARENT}/queues/gone"})
            assert got.state == tasks_v2beta2.Queue.State.DISABLED
        finally:
            await clients.close()


# ------------------------------------------------------------------ tombstones (v2 as well)


async def test_get_and_delete_tell_a_tombstone_from_a_name_never_used(beta2: Clients) -> None:
    await add_pull(beta2, "t")
    await beta2.call("delete_task", {"name": f"{WORK}/tasks/t"})
    for method in ("get_task", "delete_task"):
        recent = await beta2.fails(method, {"name": f"{WORK}/tasks/t"})
        assert_failed(recent, 404, rpc.TASK_EXISTED_RECENTLY)
        never = await beta2.fails(method, {"name": f"{WORK}/tasks/never"})
        assert_failed(never, 404, rpc.NOT_FOUND)


# ------------------------------------------------------------------ BatchCreateTasks (v2beta3)


def batch_of(*uris: str, names: tuple[str, ...] = ()) -> dict[str, Any]:
    requests = []
    for index, uri in enumerate(uris):
        task: dict[str, Any] = {"app_engine_http_request": {"relative_uri": uri}}
        if index < len(names):
            task["name"] = f"{QUEUE}/tasks/{names[index]}"
        requests.append({"parent": QUEUE, "task": task})
    return {"parent": QUEUE, "requests": requests}


async def batch_result(clients: Clients, request: dict[str, Any]) -> Any:
    operation = await clients.call("batch_create_tasks", request)
    if clients.transport == "grpc-async":
        return operation, await operation.result()
    return operation, await asyncio.to_thread(operation.result)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_batch_create_tasks(transport: str) -> None:
    async with running() as env:
        beta3 = Clients(env, tasks_v2beta3, transport)
        try:
            operation, result = await batch_result(beta3, batch_of("/a", "/b", names=("n1",)))
            assert [t.app_engine_http_request.relative_uri for t in result.tasks] == ["/a", "/b"]
            assert short(result.tasks[0]) == "n1"
            assert (
                operation.metadata.state == tasks_v2beta3.BatchCreateTasksMetadata.State.SUCCEEDED
            )
            assert len(env.store._q("fast").tasks) == 2

            bad = await beta3.fails("batch_create_tasks", batch_of("/c", "/d", "no-slash"))
            assert_failed(bad, 400, "requests[2]: Task.app_engine_http_request.relative_uri")
            twice = await beta3.fails("batch_create_tasks", batch_of("/c", "/d", names=("m", "m")))
            assert_failed(twice, 400, "requests[1].task.name 'm' repeats requests[0]'s")
            too_many = await beta3.fails("batch_create_tasks", batch_of(*["/x"] * 101))
            assert_failed(too_many, 400, "requests must hold 1 to 100")
            assert len(env.store._q("fast").tasks) == 2  # nothing of the refused batches

            operation, result = await batch_result(beta3, batch_of("/e", "/f", names=("x", "n1")))
            assert [short(t) for t in result.tasks] == ["x"]
            metadata = operation.metadata
            assert metadata.state == metadata.State.PARTIALLY_SUCCEEDED
            assert list(metadata.failed_requests) == [1]
            assert metadata.failed_requests[1].code == rpc.Code.ALREADY_EXISTS
            all_taken = await beta3.call("batch_create_tasks", batch_of("/g", names=("x",)))
            with pytest.raises(exceptions.GoogleAPICallError) as caught:
                await (
                    all_taken.result()
                    if transport == "grpc-async"
                    else asyncio.to_thread(all_taken.result)
                )
            assert caught.value.grpc_status_code in (None, grpc.StatusCode.ALREADY_EXISTS)
        finally:
            await beta3.close()
