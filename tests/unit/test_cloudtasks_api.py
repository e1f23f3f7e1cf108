"""The Cloud Tasks API driven by Google's official client, unchanged, over each transport
(asyncio gRPC, sync gRPC, sync REST) against the API app in process, on a FakeClock: every
timestamp is exact. The daemon-level tests are tests/integration/test_cloudtasks.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.api_core import exceptions
from google.auth.exceptions import InvalidOperation

from pushd import models, settings
from pushd.cloudtasks import rpc
from pushd.store import base
from tests.unit.cloudtasks_env import PARENT, QUEUE, T0, TRANSPORTS, Env, S, running

ADMIN = "admin-token-0123456789"
PRODUCER = "producer-token-0123456789"
TOKENS = (
    settings.ApiToken(name="ops", token=ADMIN, role="admin"),
    settings.ApiToken(name="web", token=PRODUCER, role="producer"),
)


@pytest.fixture(params=TRANSPORTS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    async with running() as started:
        started.transport = request.param
        yield started


async def failure(env: Env, name: str, request: dict[str, Any]) -> exceptions.GoogleAPICallError:
    with pytest.raises(exceptions.GoogleAPICallError) as caught:
        await env.call(name, request)
    return caught.value


def assert_failed(exc: exceptions.GoogleAPICallError, http_status: int, message: str) -> None:
    """Both transports: the HTTP status the code maps to, and the server's message."""
    assert exc.code == http_status, exc
    assert message in str(exc.message), exc.message


def seconds(stamp: Any) -> float:
    """A Timestamp (gRPC: protobuf) or datetime (proto-plus) as POSIX seconds."""
    if hasattr(stamp, "timestamp"):
        return float(stamp.timestamp())
    return float(stamp.seconds + stamp.nanos / 1e9)


def task_request(name: str | None = None, **task: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"app_engine_http_request": {"relative_uri": "/work"}, **task}
    if name is not None:
        body["name"] = f"{QUEUE}/tasks/{name}"
    return {"parent": QUEUE, "task": body}


# ------------------------------------------------------------------ queues


async def test_queue_yaml_queues_with_their_settings(env: Env) -> None:
    fast = await env.call("get_queue", {"name": QUEUE})
    assert fast.name == QUEUE
    assert fast.rate_limits.max_dispatches_per_second == 10.0
    assert fast.rate_limits.max_burst_size == 3
    assert fast.rate_limits.max_concurrent_dispatches == 0  # queue.yaml sets no limit
    retry = fast.retry_config
    assert retry.max_attempts == 5  # task_retry_limit 4: five attempts
    assert retry.min_backoff.total_seconds() == 2.0
    assert retry.max_backoff.total_seconds() == 3600.0
    assert retry.max_doublings == 16
    assert fast.state == 1  # RUNNING
    slow = await env.call("get_queue", {"name": f"{PARENT}/queues/slow"})
    assert slow.retry_config.max_attempts == -1  # unlimited
    assert slow.rate_limits.max_concurrent_dispatches == 2
    routing = slow.app_engine_routing_override
    assert (routing.service, routing.version) == ("worker", "v1")


async def test_list_queues_pages_and_filters(env: Env) -> None:
    seen, token = [], ""
    for _ in range(4):
        pager = await env.call(
            "list_queues", {"parent": PARENT, "page_size": 1, "page_token": token}
        )
        seen += [q.name.rpartition("/")[2] for q in pager.queues]
        token = pager.next_page_token
        if not token:
            break
    assert seen == ["default", "fast", "slow"]  # the pull queue is not in the v2 API
    await env.call("pause_queue", {"name": QUEUE})
    pager = await env.call("list_queues", {"parent": PARENT, "filter": "state: PAUSED"})
    assert [q.name for q in pager.queues] == [QUEUE]
    bad = await failure(env, "list_queues", {"parent": PARENT, "filter": "name: x"})
    assert_failed(bad, 400, "filter 'name: x' is not supported")


async def test_pause_resume_purge(env: Env) -> None:
    await env.call("create_task", task_request("a"))
    paused = await env.call("pause_queue", {"name": QUEUE})
    assert paused.state == 2  # PAUSED
    assert "fast" in await env.store.paused_queues()
    resumed = await env.call("resume_queue", {"name": QUEUE})
    assert resumed.state == 1
    env.clock.advance(S // 2)
    purged = await env.call("purge_queue", {"name": QUEUE})
    assert seconds(purged.purge_time) == (T0 + S // 2) / S
    assert await env.store.get("fast", "a") is None
    assert ("pause", "fast") in env.engine.calls
    assert ("forget", "fast") in env.engine.calls


async def test_queue_yaml_stays_definitive(env: Env) -> None:
    exists = await failure(env, "create_queue", {"parent": PARENT, "queue": {"name": QUEUE}})
    assert_failed(exists, 409, rpc.QUEUE_ALREADY_EXISTS)
    update = await failure(env, "update_queue", {"queue": {"name": QUEUE}})
    assert_failed(update, 400, "queue 'fast' is defined by queue.yaml")
    delete = await failure(env, "delete_queue", {"name": QUEUE})
    assert_failed(delete, 400, "remove it there")
    assert await env.store.api_queues() == []  # nothing stored for a queue.yaml name
    unknown = await failure(env, "delete_queue", {"name": f"{PARENT}/queues/nope"})
    assert_failed(unknown, 404, rpc.NOT_FOUND)
    missing = await failure(env, "get_queue", {"name": f"{PARENT}/queues/nope"})
    assert_failed(missing, 404, rpc.QUEUE_NOT_FOUND)
    pull = await failure(env, "get_queue", {"name": f"{PARENT}/queues/work"})
    assert_failed(pull, 400, "is a pull queue")
    if env.transport != "rest-sync":  # the REST client checks names against the binding
        malformed = await failure(env, "get_queue", {"name": "projects/p/queues/fast"})
        assert_failed(malformed, 400, "Queue name must be formatted")


async def test_iam_and_locations(env: Env) -> None:
    policy = await env.call("get_iam_policy", {"resource": QUEUE})
    assert list(policy.bindings) == []
    refused = await failure(env, "set_iam_policy", {"resource": QUEUE, "policy": {}})
    assert_failed(refused, 400, "auth_tokens")
    wanted = ["cloudtasks.tasks.create", "cloudtasks.queues.pause", "not.a.permission"]
    granted = await env.call("test_iam_permissions", {"resource": QUEUE, "permissions": wanted})
    assert list(granted.permissions) == wanted[:2]  # no tokens: anything pushd knows
    unknown = f"{PARENT}/queues/nope"
    none = await env.call("test_iam_permissions", {"resource": unknown, "permissions": wanted})
    assert list(none.permissions) == []
    locations = await env.call("list_locations", {"name": "projects/p"})
    assert [loc.name for loc in locations.locations] == ["projects/p/locations/local"]
    location = await env.call("get_location", {"name": PARENT})
    assert (location.name, location.location_id) == (PARENT, "l")


# ------------------------------------------------------------------ tasks


async def test_create_task_and_read_it_back(env: Env) -> None:
    env.clock.advance(S // 4)
    now_us = T0 + S // 4
    created = await env.call(
        "create_task",
        task_request(
            "t1",
            app_engine_http_request={
                "http_method": 4,  # PUT
                "relative_uri": "/work?x=1",
                "headers": {"X-Mixed-Case": "v"},
                "body": b"hello",
                "app_engine_routing": {"service": "worker", "version": "v2"},
            },
            schedule_time={"seconds": (T0 + 90 * S) // S, "nanos": 500_000_000},
            dispatch_deadline={"seconds": 30, "nanos": 123_456_789},
        ),
    )
    assert created.name == f"{QUEUE}/tasks/t1"
    assert seconds(created.schedule_time) == T0 / S + 90.5
    assert seconds(created.create_time) == T0 / S  # truncated to the second
    assert created.dispatch_deadline.total_seconds() == 30.123  # truncated to milliseconds
    request = created.app_engine_http_request
    assert (request.http_method, request.relative_uri) == (4, "/work?x=1")
    assert request.headers["X-Mixed-Case"] == "v"
    assert request.body == b""  # BASIC view
    assert (request.app_engine_routing.service, request.app_engine_routing.version) == (
        "worker",
        "v2",
    )
    assert created.view == 1
    stored = await env.store.get("fast", "t1")
    assert stored is not None
    assert (stored.method, stored.url, stored.payload) == (models.Method.PUT, "/work?x=1", b"hello")
    assert (stored.eta_us, stored.created_us) == (T0 + 90 * S + S // 2, now_us)
    assert (stored.target, stored.dispatch_deadline_us) == ("v2.worker", 30_123_000)
    full = await env.call("get_task", {"name": created.name, "response_view": 2})
    assert full.app_engine_http_request.body == b"hello"
    assert full.view == 2
    listed = await env.call("list_tasks", {"parent": QUEUE})
    assert [t.name for t in listed.tasks] == [created.name]
    assert listed.tasks[0].app_engine_http_request.body == b""


async def test_unnamed_task_in_the_past_runs_now(env: Env) -> None:
    created = await env.call(
        "create_task", task_request(schedule_time={"seconds": (T0 - 3600 * S) // S})
    )
    task_id = created.name.rpartition("/tasks/")[2]
    assert len(task_id) == 32
    assert seconds(created.schedule_time) == T0 / S  # the past means now
    assert ("fast", T0) in env.engine.notified


async def test_names_already_exist_while_live_and_tombstoned(env: Env) -> None:
    await env.call("create_task", task_request("dup"))
    again = await failure(env, "create_task", task_request("dup"))
    assert_failed(again, 409, rpc.ALREADY_EXISTS)
    await env.call("delete_task", {"name": f"{QUEUE}/tasks/dup"})
    tombstoned = await failure(env, "create_task", task_request("dup"))
    assert_failed(tombstoned, 409, rpc.ALREADY_EXISTS)
    # within its tombstone: the real service's "existed recently", not the plain NOT_FOUND
    gone = await failure(env, "get_task", {"name": f"{QUEUE}/tasks/dup"})
    assert_failed(gone, 404, rpc.TASK_EXISTED_RECENTLY)
    deleted = await failure(env, "delete_task", {"name": f"{QUEUE}/tasks/dup"})
    assert_failed(deleted, 404, rpc.TASK_EXISTED_RECENTLY)
    never = await failure(env, "get_task", {"name": f"{QUEUE}/tasks/never"})
    assert_failed(never, 404, rpc.NOT_FOUND)
    assert rpc.TASK_EXISTED_RECENTLY not in str(never.message)


async def test_task_errors_carry_the_real_messages(env: Env) -> None:
    bad_id = await failure(env, "create_task", task_request("not valid"))
    assert_failed(bad_id, 400, 'Task ID "not valid" can contain only letters ([A-Za-z])')
    other = task_request()
    other["task"]["name"] = f"{QUEUE}-other/tasks/x"
    elsewhere = await failure(env, "create_task", other)
    assert_failed(
        elsewhere,
        400,
        f"The queue name from request ('{QUEUE}') must be the same as the queue name in the "
        f"named task ('{QUEUE}-other').",
    )
    far = await failure(
        env, "create_task", task_request(schedule_time={"seconds": T0 // S + 2_600_000})
    )
    assert_failed(far, 400, "is too far in the future. Schedule time must be no more than 720h")
    unknown = dict(task_request(), parent=f"{PARENT}/queues/nope")
    assert_failed(await failure(env, "create_task", unknown), 404, rpc.QUEUE_NOT_FOUND)
    short = task_request(dispatch_deadline={"seconds": 5})
    assert_failed(await failure(env, "create_task", short), 400, "dispatch_deadline must be")
    body_on_get = task_request(app_engine_http_request={"http_method": 2, "body": b"x"})
    assert_failed(await failure(env, "create_task", body_on_get), 400, "payload can only")
    patch = task_request(app_engine_http_request={"http_method": 6})
    assert_failed(await failure(env, "create_task", patch), 400, "http_method PATCH")
    http = {"parent": QUEUE, "task": {"http_request": {"url": "http://127.0.0.1:9/"}}}
    assert_failed(await failure(env, "create_task", http), 400, "http_targets")
    missing = await failure(env, "get_task", {"name": f"{QUEUE}/tasks/none"})
    assert_failed(missing, 404, rpc.NOT_FOUND)


async def test_list_tasks_pages(env: Env) -> None:
    for name in ("c", "a", "b"):
        await env.call("create_task", task_request(name))
    seen, token = [], ""
    for _ in range(4):
        pager = await env.call("list_tasks", {"parent": QUEUE, "page_size": 2, "page_token": token})
        seen.append([t.name.rpartition("/")[2] for t in pager.tasks])
        token = pager.next_page_token
        if not token:
            break
    assert seen == [["a", "b"], ["c"]]
    bad = await failure(env, "list_tasks", {"parent": QUEUE, "page_token": "%%%"})
    assert_failed(bad, 400, "page_token")


async def test_run_task_makes_it_due_now(env: Env) -> None:
    await env.call("create_task", task_request("later", schedule_time={"seconds": T0 // S + 600}))
    env.clock.advance(S)
    ran = await env.call("run_task", {"name": f"{QUEUE}/tasks/later"})
    assert seconds(ran.schedule_time) == T0 / S + 1
    assert env.engine.notified[-1] == ("fast", T0 + S)
    missing = await failure(env, "run_task", {"name": f"{QUEUE}/tasks/none"})
    assert_failed(missing, 404, rpc.NOT_FOUND)


# ------------------------------------------------------------------ tokens


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tokens_guard_every_transport(transport: str) -> None:
    async with running(tokens=TOKENS) as env:
        env.transport = transport
        if transport == "rest-sync":  # on 401 the client refreshes its credentials first
            with pytest.raises(InvalidOperation, match="Anonymous credentials cannot be"):
                await env.call("get_queue", {"name": QUEUE})
            async with env.http.get(f"/v2/{QUEUE}") as response:
                assert response.status == 401
                error = (await response.json())["error"]
                assert (error["code"], error["status"]) == (401, "UNAUTHENTICATED")
        else:
            anonymous = await failure(env, "get_queue", {"name": QUEUE})
            assert_failed(anonymous, 401, "needs 'authorization: Bearer <token>' metadata")
        env.token = PRODUCER
        env._clients.clear()  # the REST client carries its token in its credentials
        created = await env.call("create_task", task_request("by-producer"))
        assert created.name.endswith("/by-producer")
        refused = await failure(env, "pause_queue", {"name": QUEUE})
        assert_failed(refused, 403, "token 'web' has role 'producer', which may not")
        granted = await env.call(
            "test_iam_permissions",
            {"resource": QUEUE, "permissions": ["cloudtasks.tasks.create", "cloudtasks.tasks.run"]},
        )
        assert list(granted.permissions) == ["cloudtasks.tasks.create"]
        env.token = ADMIN
        env._clients.clear()
        assert (await env.call("pause_queue", {"name": QUEUE})).state == 2


async def test_a_queue_removed_from_queue_yaml_is_disabled() -> None:
    async with running(removed=("gone",)) as env:
        gone = f"{PARENT}/queues/gone"
        await env.store.add(
            [models.Task(queue="gone", name="left", url="/left", eta_us=T0, created_us=T0)],
            now_us=T0,
        )
        queue = await env.call("get_queue", {"name": gone})
        assert queue.state == 3  # DISABLED
        pager = await env.call("list_queues", {"parent": PARENT, "filter": "state: DISABLED"})
        assert [q.name for q in pager.queues] == [gone]
        listed = await env.call("list_tasks", {"parent": gone})
        assert [t.name for t in listed.tasks] == [f"{gone}/tasks/left"]
        for name, request in (
            ("resume_queue", {"name": gone}),
            ("run_task", {"name": f"{gone}/tasks/left"}),
            ("create_task", dict(task_request(), parent=gone)),
            ("delete_queue", {"name": gone}),
        ):
            refused = await failure(env, name, request)
            assert_failed(refused, 400, "was removed from queue.yaml (DISABLED)")
        await env.call("delete_task", {"name": f"{gone}/tasks/left"})


async def test_last_attempt_of_a_waiting_task(env: Env) -> None:
    await env.call("create_task", task_request("flaky"))
    [claimed] = await env.store.claim_due("fast", now_us=T0, limit=1, lease_us=60 * S)
    attempt = models.LastAttempt(
        time_us=T0 + 2 * S, status=502, error=None, message="HTTP 502", url="http://x/work"
    )
    retry = base.Retry(
        queue="fast",
        name="flaky",
        lease_eta_us=claimed.lease_eta_us,
        eta_us=T0 + 10 * S,
        retry_count=1,
        execution_count=1,
        first_try_us=T0 + S,
        last_status=502,
        last_attempt=attempt,
    )
    await env.store.finish([retry], now_us=T0 + 2 * S)
    task = await env.call("get_task", {"name": f"{QUEUE}/tasks/flaky"})
    assert (task.dispatch_count, task.response_count) == (1, 1)
    assert seconds(task.first_attempt.dispatch_time) == T0 / S + 1
    assert seconds(task.last_attempt.response_time) == T0 / S + 2
    status = task.last_attempt.response_status
    assert (status.code, status.message) == (13, "HTTP status code 502")  # INTERNAL
    assert seconds(task.schedule_time) == T0 / S + 10
