"""Queues created through the Cloud Tasks API, driven by Google's official client over each
transport against the API app in process (MemoryStore, FakeClock): Cloud Tasks' defaults,
UpdateQueue's field masks, DeleteQueue with its one-hour tombstone, the bounds refused naming
the field, queue.yaml's names kept. The daemon-level runs (SQLite, restart, PostgreSQL with two
daemons) are in tests/integration/test_cloudtasks_queues.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.protobuf import field_mask_pb2

from pushd import models
from pushd.cloudtasks import rpc
from tests.unit.cloudtasks_env import PARENT, T0, TRANSPORTS, Env, S, running
from tests.unit.test_cloudtasks_api import assert_failed, failure

NEW = f"{PARENT}/queues/made"
HOUR = 3600 * S


@pytest.fixture(params=TRANSPORTS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    async with running() as started:
        started.transport = request.param
        yield started


def duration_s(value: Any) -> float:
    """A Duration (gRPC: protobuf) or timedelta (proto-plus) in seconds."""
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    return float(value.seconds + value.nanos / 1e9)


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


async def test_a_created_queue_has_cloud_tasks_defaults_and_runs_tasks(env: Env) -> None:
    made = await env.call("create_queue", {"parent": PARENT, "queue": {"name": NEW}})
    assert made.name == NEW
    assert made.state == 1  # RUNNING
    limits, retry = made.rate_limits, made.retry_config
    assert limits.max_dispatches_per_second == 500
    assert limits.max_burst_size == 100
    assert limits.max_concurrent_dispatches == 1000
    assert retry.max_attempts == 100
    assert duration_s(retry.min_backoff) == 0.1
    assert duration_s(retry.max_backoff) == 3600
    assert retry.max_doublings == 16
    assert duration_s(retry.max_retry_duration) == 0
    assert [q.name for q in (await env.call("list_queues", {"parent": PARENT})).queues] == [
        f"{PARENT}/queues/default",
        f"{PARENT}/queues/fast",
        NEW,
        f"{PARENT}/queues/slow",
    ]
    task = {"app_engine_http_request": {"relative_uri": "/go"}}
    added = await env.call("create_task", {"parent": NEW, "task": task})
    assert added.name.startswith(f"{NEW}/tasks/")
    assert [t.queue for t in await env.store.list_tasks("made")] == ["made"]
    [stored] = await env.store.api_queues()
    assert stored == models.ApiQueue(name="made", created_us=T0)


async def test_create_takes_the_given_settings_and_refuses_a_taken_name(env: Env) -> None:
    queue = {
        "name": NEW,
        "rate_limits": {"max_dispatches_per_second": 2.5, "max_concurrent_dispatches": 7},
        "retry_config": {"max_attempts": -1, "min_backoff": {"seconds": 1}, "max_doublings": 0},
        "app_engine_routing_override": {"service": "worker", "version": "v2"},
    }
    made = await env.call("create_queue", {"parent": PARENT, "queue": queue})
    assert made.rate_limits.max_dispatches_per_second == 2.5
    assert made.rate_limits.max_burst_size == 3
    assert made.rate_limits.max_concurrent_dispatches == 7
    assert made.retry_config.max_attempts == -1
    assert duration_s(made.retry_config.min_backoff) == 1
    assert made.retry_config.max_doublings == 16  # 0 is "not given" without a mask
    assert made.app_engine_routing_override.service == "worker"
    assert made.app_engine_routing_override.version == "v2"
    again = await failure(env, "create_queue", {"parent": PARENT, "queue": {"name": NEW}})
    assert_failed(again, 409, rpc.QUEUE_ALREADY_EXISTS)
    got = await env.call("get_queue", {"name": NEW})
    assert got.rate_limits.max_dispatches_per_second == 2.5


async def test_update_changes_the_masked_fields_only(env: Env) -> None:
    await env.call("create_queue", {"parent": PARENT, "queue": {"name": NEW}})
    change = {
        "name": NEW,
        "rate_limits": {"max_dispatches_per_second": 3, "max_concurrent_dispatches": 9},
        "retry_config": {"max_doublings": 0, "max_attempts": 5},
    }
    masked = await env.call(
        "update_queue",
        {
            "queue": change,
            "update_mask": mask(
                "rate_limits.max_dispatches_per_second", "retry_config.max_doublings"
            ),
        },
    )
    assert masked.rate_limits.max_dispatches_per_second == 3
    assert masked.rate_limits.max_concurrent_dispatches == 1000  # not in the mask
    assert masked.retry_config.max_doublings == 0  # in the mask: zero is a value
    assert masked.retry_config.max_attempts == 100
    unmasked = await env.call("update_queue", {"queue": change})
    assert unmasked.rate_limits.max_concurrent_dispatches == 9  # every field given
    assert unmasked.retry_config.max_attempts == 5
    assert unmasked.retry_config.max_doublings == 0  # not given (zero): kept
    whole = await env.call(
        "update_queue", {"queue": {"name": NEW}, "update_mask": mask("rate_limits")}
    )
    assert whole.rate_limits.max_dispatches_per_second == 500  # zero: the default again
    assert whole.retry_config.max_attempts == 5
    [stored] = await env.store.api_queues()
    assert stored.created_us == T0


async def test_update_of_a_missing_queue_creates_it(env: Env) -> None:
    env.clock.advance(S)
    made = await env.call(
        "update_queue",
        {"queue": {"name": NEW, "rate_limits": {"max_dispatches_per_second": 4}}},
    )
    assert made.rate_limits.max_dispatches_per_second == 4
    assert made.retry_config.max_attempts == 100
    [stored] = await env.store.api_queues()
    assert stored == models.ApiQueue(name="made", rate=4.0, created_us=T0 + S)


async def test_bad_values_are_refused_naming_the_field(env: Env) -> None:
    cases = [
        ({"rate_limits": {"max_dispatches_per_second": 501}}, "max_dispatches_per_second"),
        ({"rate_limits": {"max_dispatches_per_second": -1}}, "max_dispatches_per_second"),
        ({"rate_limits": {"max_concurrent_dispatches": 5001}}, "max_concurrent_dispatches"),
        ({"retry_config": {"max_attempts": -2}}, "max_attempts"),
        ({"retry_config": {"max_doublings": -1}}, "max_doublings"),
        ({"retry_config": {"min_backoff": {"seconds": -1}}}, "min_backoff"),
        ({"retry_config": {"max_retry_duration": {"seconds": -5}}}, "max_retry_duration"),
        (
            {"retry_config": {"min_backoff": {"seconds": 20}, "max_backoff": {"seconds": 10}}},
            "min_backoff (20s) must not exceed",
        ),
    ]
    for fields, named in cases:
        refused = await failure(
            env, "create_queue", {"parent": PARENT, "queue": {"name": NEW, **fields}}
        )
        assert_failed(refused, 400, named)
    assert await env.store.api_queues() == []
    await env.call("create_queue", {"parent": PARENT, "queue": {"name": NEW}})
    for paths, named in [(("rate_limits.nope",), "'rate_limits.nope'"), (("state",), "state")]:
        refused = await failure(
            env, "update_queue", {"queue": {"name": NEW}, "update_mask": mask(*paths)}
        )
        assert_failed(refused, 400, named)


async def test_delete_takes_the_tasks_and_keeps_the_name_an_hour(env: Env) -> None:
    await env.call("create_queue", {"parent": PARENT, "queue": {"name": NEW}})
    task = {"name": f"{NEW}/tasks/t1", "app_engine_http_request": {"relative_uri": "/go"}}
    await env.call("create_task", {"parent": NEW, "task": task})
    await env.call("pause_queue", {"name": NEW})
    await env.call("delete_queue", {"name": NEW})
    assert ("forget", "made") in env.engine.calls
    assert await env.store.get("made", "t1") is None
    for rpc_name, request in [
        ("get_queue", {"name": NEW}),
        ("pause_queue", {"name": NEW}),
        ("purge_queue", {"name": NEW}),
        ("create_task", {"parent": NEW, "task": task}),
    ]:
        gone = await failure(env, rpc_name, request)
        assert_failed(gone, 404, rpc.QUEUE_NOT_FOUND)
    assert_failed(await failure(env, "delete_queue", {"name": NEW}), 404, rpc.NOT_FOUND)
    env.clock.advance(HOUR - 1)
    for rpc_name, request in [
        ("create_queue", {"parent": PARENT, "queue": {"name": NEW}}),
        ("update_queue", {"queue": {"name": NEW}}),
    ]:
        refused = await failure(env, rpc_name, request)
        assert_failed(refused, 400, rpc.QUEUE_RECENTLY_DELETED)
    env.clock.advance(1)
    back = await env.call("create_queue", {"parent": PARENT, "queue": {"name": NEW}})
    assert back.state == 1  # the old paused flag went with the queue
    again = await env.call("create_task", {"parent": NEW, "task": task})  # a fresh queue
    assert again.name == task["name"]


async def test_rest_masks_in_camel_case_and_v2beta_versions() -> None:
    """REST sends ``updateMask`` in camelCase; v2beta3 takes the routing in its own place;
    v2beta2 (pull queues, another Queue shape) sends creates to v2 or v2beta3."""
    async with running() as env:
        made = f"/v2beta3/{PARENT}/queues"
        routed = {
            "name": NEW,
            "appEngineHttpQueue": {"appEngineRoutingOverride": {"service": "w"}},
        }
        async with env.http.post(made, json=routed) as response:
            assert response.status == 200, await response.text()
        path = f"/v2/{NEW}?updateMask=rateLimits.maxConcurrentDispatches"
        body = {
            "name": NEW,
            "rateLimits": {"maxConcurrentDispatches": 3, "maxDispatchesPerSecond": 9},
        }
        async with env.http.patch(path, json=body) as response:
            queue = await response.json()
            assert response.status == 200, queue
        assert queue["rateLimits"]["maxConcurrentDispatches"] == 3
        assert queue["rateLimits"]["maxDispatchesPerSecond"] == 500
        assert queue["appEngineRoutingOverride"]["service"] == "w"
        beta2 = {"name": f"{PARENT}/queues/other"}
        async with env.http.post(f"/v2beta2/{PARENT}/queues", json=beta2) as response:
            error = (await response.json())["error"]
            assert (response.status, error["status"]) == (400, "FAILED_PRECONDITION"), error
        assert "through v2 and v2beta3" in error["message"]
