"""Pull queues over the native API: lease, modify lease, batch delete, pause, mode, acl."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pushd import settings
from pushd.api import keys
from pushd.service import leases
from tests.unit.test_api import T0, Env, S, assert_error, running

QUEUE_YAML = """
queue:
- name: push
  rate: 5/s
- name: work
  mode: pull
- name: limited
  mode: pull
  retry_parameters:
    task_retry_limit: 2
- name: guarded
  mode: pull
  acl:
  - user_email: worker@example.com
  - writer_email: web@example.com
"""
Q = "/api/v1/queues"


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running(QUEUE_YAML) as started:
        yield started


async def add(env: Env, queue: str, *tasks: dict[str, Any]) -> list[str]:
    status, body = await env.add(queue, {"tasks": [{"payload": "x", **t} for t in tasks]})
    assert status == 200, body
    return [r["name"] for r in body["tasks"]]


async def lease(env: Env, queue: str, **body: Any) -> tuple[int, Any]:
    body.setdefault("lease_seconds", 60)
    body.setdefault("max_tasks", 10)
    return await env.call("POST", f"{Q}/{queue}/lease", json=body)


async def leased_names(env: Env, queue: str, **body: Any) -> list[str]:
    status, answer = await lease(env, queue, **body)
    assert status == 200, answer
    return [t["name"] for t in answer["tasks"]]


async def test_lease_in_eta_order_with_payload_and_counters(env: Env) -> None:
    await add(
        env,
        "work",
        {"name": "late", "payload": "l", "countdown": 2},
        {"name": "early", "payload": "e", "countdown": 1},
        {"name": "future", "payload": "f", "countdown": 3600},
    )
    env.clock.advance(5 * S)
    status, body = await lease(env, "work", lease_seconds=30.5, max_tasks=10)
    assert status == 200
    tasks = body["tasks"]
    assert [t["name"] for t in tasks] == ["early", "late"]
    assert [t["payload_base64"] for t in tasks] == ["ZQ==", "bA=="]
    assert {t["eta_us"] for t in tasks} == {T0 + 5 * S + 30_500_000}
    assert {t["retry_count"] for t in tasks} == {1}
    assert {t["method"] for t in tasks} == {"PULL"}
    # leased tasks are not available again until the lease runs out
    assert await leased_names(env, "work") == []
    env.clock.advance(31 * S)
    assert [t["retry_count"] for t in (await lease(env, "work"))[1]["tasks"]] == [2, 2]


async def test_lease_max_tasks_and_empty_queue(env: Env) -> None:
    assert await leased_names(env, "work") == []
    await add(env, "work", *({"name": f"t{i}", "countdown": i / 10} for i in range(5)))
    env.clock.advance(S)
    assert await leased_names(env, "work", max_tasks=2) == ["t0", "t1"]
    assert await leased_names(env, "work", max_tasks=1000) == ["t2", "t3", "t4"]


async def test_lease_by_tag(env: Env) -> None:
    await add(
        env,
        "work",
        {"name": "u1", "countdown": 0.1},
        {"name": "a1", "tag": "a", "countdown": 0.2},
        {"name": "b1", "tag": "b", "countdown": 0.3},
        {"name": "a2", "tag": "a", "countdown": 0.4},
        {"name": "u2", "countdown": 0.5},
    )
    env.clock.advance(S)
    assert await leased_names(env, "work", group_by_tag=True, tag="a") == ["a1", "a2"]
    # no tag: the earliest task decides; an untagged earliest task means untagged tasks only
    assert await leased_names(env, "work", group_by_tag=True) == ["u1", "u2"]
    assert await leased_names(env, "work", group_by_tag=True) == ["b1"]
    status, body = await lease(env, "work", group_by_tag=True, tag_base64="Yg")
    assert (status, body["tasks"]) == (200, [])


async def test_an_empty_tag_means_the_earliest_tasks_tag(env: Env) -> None:
    # Found in review: "" became b"", which no stored task has (empty tags are stored as none).
    await add(env, "work", {"name": "a1", "tag": "a"}, {"name": "u1"})
    assert await leased_names(env, "work", group_by_tag=True, tag="") == ["a1"]


async def test_task_retry_limit_is_a_lease_limit(env: Env) -> None:
    await add(env, "limited", {"name": "t"})
    for expected in (1, 2):
        _, body = await lease(env, "limited", lease_seconds=0)
        assert [t["retry_count"] for t in body["tasks"]] == [expected]
    assert await leased_names(env, "limited", lease_seconds=0) == []
    # deleted and tombstoned instead of leased a third time
    _, body = await env.add("limited", {"name": "t", "payload": "x"})
    assert body["tasks"][0]["result"] == "TOMBSTONED_TASK"


async def test_modify_lease_renews_releases_and_refuses_stale_etas(env: Env) -> None:
    await add(env, "work", {"name": "t"})
    [task] = (await lease(env, "work", lease_seconds=60))[1]["tasks"]
    env.clock.advance(10 * S)
    path = f"{Q}/work/tasks/t/lease"
    status, renewed = await env.call(
        "POST", path, json={"eta_us": task["eta_us"], "lease_seconds": 120}
    )
    assert status == 200
    assert renewed["eta_us"] == T0 + 130 * S
    assert renewed["retry_count"] == 1  # renewing is not another lease
    status, body = await env.call("POST", path, json={"eta_us": task["eta_us"], "lease_seconds": 5})
    assert_error(status, body, 400, "TASK_LEASE_EXPIRED", "expired")
    status, released = await env.call(
        "POST", path, json={"eta_us": renewed["eta_us"], "lease_seconds": 0}
    )
    assert released["eta_us"] == T0 + 10 * S
    assert await leased_names(env, "work") == ["t"]


async def test_modify_lease_after_expiry_unknown_and_tombstoned(env: Env) -> None:
    await add(env, "work", {"name": "t"})
    [task] = (await lease(env, "work", lease_seconds=1))[1]["tasks"]
    env.clock.advance(2 * S)
    body = {"eta_us": task["eta_us"], "lease_seconds": 5}
    status, answer = await env.call("POST", f"{Q}/work/tasks/t/lease", json=body)
    assert_error(status, answer, 400, "TASK_LEASE_EXPIRED")
    status, answer = await env.call("POST", f"{Q}/work/tasks/nope/lease", json=body)
    assert_error(status, answer, 404, "UNKNOWN_TASK")
    await env.call("DELETE", f"{Q}/work/tasks/t")
    status, answer = await env.call("POST", f"{Q}/work/tasks/t/lease", json=body)
    assert_error(status, answer, 409, "TOMBSTONED_TASK")


@pytest.mark.parametrize(
    ("body", "name", "text"),
    [
        ({"lease_seconds": -1, "max_tasks": 1}, "INVALID_REQUEST", "between 0 and 604800"),
        ({"lease_seconds": 604801, "max_tasks": 1}, "INVALID_REQUEST", "7 days"),
        ({"lease_seconds": "60", "max_tasks": 1}, "INVALID_REQUEST", "number of seconds"),
        ({"max_tasks": 1}, "INVALID_REQUEST", "lease_seconds is required"),
        ({"lease_seconds": 1, "max_tasks": 0}, "INVALID_REQUEST", "between 1 and 1000"),
        ({"lease_seconds": 1, "max_tasks": 1001}, "INVALID_REQUEST", "between 1 and 1000"),
        ({"lease_seconds": 1, "max_tasks": 1.5}, "INVALID_REQUEST", "whole number"),
        ({"lease_seconds": 1, "max_tasks": 1, "tag": "a"}, "INVALID_REQUEST", "group_by_tag"),
        (
            {"lease_seconds": 1, "max_tasks": 1, "group_by_tag": True, "tag": "x" * 501},
            "INVALID_TAG",
            "500",
        ),
        ({"lease_seconds": 1, "max_tasks": 1, "nope": 1}, "INVALID_REQUEST", "nope"),
        ([], "INVALID_REQUEST", "JSON object"),
    ],
)
async def test_lease_refuses_bad_requests(env: Env, body: Any, name: str, text: str) -> None:
    status, answer = await env.call("POST", f"{Q}/work/lease", json=body)
    assert_error(status, answer, 400, name, text)


async def test_lease_errors_name_the_sdk_exception(env: Env) -> None:
    _, answer = await lease(env, "work", lease_seconds=-1)
    assert answer["error"]["exception"] == "InvalidLeaseTimeError"
    _, answer = await lease(env, "work", max_tasks=0)
    assert answer["error"]["exception"] == "InvalidMaxTasksError"


async def test_pull_operations_on_a_push_queue_are_invalid_queue_mode(env: Env) -> None:
    status, body = await lease(env, "push")
    assert_error(status, body, 400, "INVALID_QUEUE_MODE", "push queue")
    status, body = await env.call(
        "POST", f"{Q}/push/tasks/t/lease", json={"eta_us": T0, "lease_seconds": 1}
    )
    assert_error(status, body, 400, "INVALID_QUEUE_MODE")
    status, body = await env.add("push", {"method": "PULL", "payload": "x"})
    assert_error(status, body, 400, "INVALID_QUEUE_MODE")


async def test_a_paused_pull_queue_refuses_leases(env: Env) -> None:
    await add(env, "work", {"name": "t"})
    [task] = (await lease(env, "work", lease_seconds=60))[1]["tasks"]
    await env.call("POST", f"{Q}/work/pause")
    status, body = await lease(env, "work")
    assert_error(status, body, 400, "QUEUE_PAUSED", "pushdctl resume work")
    status, body = await env.call(
        "POST", f"{Q}/work/tasks/t/lease", json={"eta_us": task["eta_us"], "lease_seconds": 1}
    )
    assert_error(status, body, 400, "QUEUE_PAUSED")
    await env.call("POST", f"{Q}/work/resume")
    assert (await lease(env, "work"))[0] == 200


async def test_batch_delete_reports_each_name(env: Env) -> None:
    await add(env, "work", {"name": "a"}, {"name": "b"})
    await leased_names(env, "work", max_tasks=1)  # leased tasks can be deleted too
    status, body = await env.call("POST", f"{Q}/work/delete", json={"names": ["a", "x", "b"]})
    assert status == 200
    assert body == {
        "tasks": [
            {"name": "a", "deleted": True},
            {"name": "x", "deleted": False},
            {"name": "b", "deleted": True},
        ]
    }
    status, body = await env.call("POST", f"{Q}/work/delete", json={"names": ["a"]})
    assert body["tasks"] == [{"name": "a", "deleted": False}]  # tombstoned: not an error


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"names": ["a", "a"]}, "DUPLICATE_TASK_NAME"),
        ({"names": []}, "INVALID_REQUEST"),
        ({"names": ["bad name"]}, "INVALID_TASK_NAME"),
        ({"names": "a"}, "INVALID_REQUEST"),
        ({"names": ["a"] * 1001}, "INVALID_REQUEST"),
    ],
)
async def test_batch_delete_refuses_bad_requests(env: Env, body: Any, name: str) -> None:
    status, answer = await env.call("POST", f"{Q}/work/delete", json=body)
    assert_error(status, answer, 400, name)


async def test_pull_queue_stats_count_leases_in_the_last_minute(env: Env) -> None:
    await add(env, "work", *({"name": f"t{i}"} for i in range(3)))
    await leased_names(env, "work", max_tasks=2)
    _, body = await env.call("GET", f"{Q}/work")
    assert body["stats"]["executed_last_minute"] == 2
    assert body["stats"]["tasks"] == 3
    env.clock.advance(61 * S)
    _, body = await env.call("GET", f"{Q}/work")
    assert body["stats"]["executed_last_minute"] == 0


def test_lease_meter_windows_and_bounded_memory() -> None:
    meter = leases.LeaseMeter()
    for second in range(7200):
        meter.record("q", 2, T0 + second * S)
    now = T0 + 7199 * S
    assert meter.last_minute("q", now) == 120
    assert meter.last_hour("q", now) == 7200
    assert meter.last_hour("other", now) == 0
    assert len(meter._queues["q"].seconds) <= 3600
    meter.record("q", 0, now)
    assert meter.last_minute("q", now + 3601 * S) == 0


# ------------------------------------------------------------------ acl

ADMIN, WORKER, WEB, STRANGER, ANON = (f"{n}-token-0123456789" for n in "awxsn")
TOKENS = (
    settings.ApiToken(name="ops", token=ADMIN, role="admin"),
    settings.ApiToken(name="w", token=WORKER, role="consumer", identity="worker@example.com"),
    settings.ApiToken(name="p", token=WEB, role="producer", identity="web@example.com"),
    settings.ApiToken(name="s", token=STRANGER, role="consumer", identity="who@example.com"),
    settings.ApiToken(name="n", token=ANON, role="producer"),
)


@contextlib.asynccontextmanager
async def secured() -> AsyncIterator[Env]:
    async with running(QUEUE_YAML, tokens=TOKENS) as started:
        yield started


async def test_acl_of_a_pull_queue_applies_to_token_identities() -> None:
    async with secured() as env:
        path = f"{Q}/guarded/tasks"
        assert (await env.call("POST", path, token=WEB, json={"name": "t", "payload": "x"}))[
            0
        ] == 200
        status, body = await env.call("POST", path, token=ANON, json={"name": "u", "payload": "x"})
        assert_error(status, body, 403, "PERMISSION_DENIED", "writer_email")
        lease_body = {"lease_seconds": 1, "max_tasks": 1}
        status, body = await env.call("POST", f"{Q}/guarded/lease", token=WORKER, json=lease_body)
        assert (status, [t["name"] for t in body["tasks"]]) == (200, ["t"])
        for method, route in [
            ("POST", "lease"),
            ("GET", "tasks"),
            ("GET", "tasks/t"),
            ("DELETE", "tasks/t"),
            ("GET", ""),
        ]:
            url = f"{Q}/guarded/{route}".rstrip("/")
            status, body = await env.call(method, url, token=STRANGER, json=lease_body)
            assert_error(status, body, 403, "PERMISSION_DENIED", "'who@example.com'")
        # the writer may not lease: user_email and writer_email are separate lists
        status, body = await env.call("GET", f"{Q}/guarded", token=WEB)
        assert_error(status, body, 403, "PERMISSION_DENIED", "user_email")
        # admins and queues without an acl are not restricted by it
        assert (await env.call("GET", f"{Q}/guarded/tasks", token=ADMIN))[0] == 200
        status, body = await env.call("POST", f"{Q}/work/lease", token=STRANGER, json=lease_body)
        assert status == 200
        # an unknown queue is still a 404, not a 403
        status, body = await env.call("POST", f"{Q}/nope/lease", token=STRANGER, json=lease_body)
        assert_error(status, body, 404, "UNKNOWN_QUEUE")


async def test_listing_queues_hides_pull_queues_whose_acl_excludes_the_token() -> None:
    # Found in review: GET /api/v1/queues showed counts of queues the token may not read.
    async with secured() as env:
        names = {
            token: [q["name"] for q in (await env.call("GET", Q, token=token))[1]["queues"]]
            for token in (ADMIN, WORKER, STRANGER)
        }
    assert "guarded" in names[ADMIN]
    assert "guarded" in names[WORKER]
    assert "guarded" not in names[STRANGER]
    assert "work" in names[STRANGER]


async def test_metrics_hide_pull_queues_whose_acl_excludes_the_token() -> None:
    """/metrics follows the listings' rule: a token the acl excludes sees neither the queue's
    gauges nor its counters (it used to see both, names and counts)."""
    async with secured() as env:
        status, _ = await env.add("guarded", {"name": "t", "payload": "x"}, token=ADMIN)
        assert status == 200
        env.client.app[keys.SERVICE].metrics.record_leased("guarded", 1)
        seen = {}
        for token in (ADMIN, WORKER, STRANGER):
            async with env.client.get(
                "/metrics", headers={"Authorization": f"Bearer {token}"}
            ) as response:
                assert response.status == 200
                seen[token] = await response.text()
    for token in (ADMIN, WORKER):
        assert 'pushd_tasks_waiting{queue="guarded"} 1.0' in seen[token]
        assert 'pushd_tasks_leased_total{queue="guarded"} 1.0' in seen[token]
    assert 'queue="guarded"' not in seen[STRANGER]
    assert 'pushd_tasks_waiting{queue="work"} 0.0' in seen[STRANGER]
    assert "# TYPE pushd_tasks_leased_total counter" in seen[STRANGER]


# ------------------------------------------------------------------ browsers, without tokens


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),
        ({"Host": "localhost:8460"}, True),
        ({"Host": "127.0.0.1"}, True),
        ({"Host": "[::1]:8460"}, True),
        ({"Origin": "SELF"}, True),  # pushd's own pages (the console)
        # Found in review: another web app on this machine (a dev server on localhost:3000)
        # could post forms to a tokenless daemon.
        ({"Origin": "http://localhost:3000"}, False),
        ({"Origin": "http://127.0.0.1:8460", "Host": "127.0.0.1:8461"}, False),
        ({"Host": "evil.example:8460"}, False),  # DNS rebinding
        ({"Host": "127.0.0.1.evil.example"}, False),
        ({"Origin": "https://evil.example"}, False),  # a cross-site "simple" request
        ({"Origin": "http://localhost.evil.example"}, False),
        ({"Origin": "null"}, False),
    ],
)
async def test_without_tokens_browsers_cannot_reach_the_api(
    env: Env, headers: dict[str, str], allowed: bool
) -> None:
    # Found in review: a text/plain or form POST from any web page reached a tokenless daemon.
    if headers.get("Origin") == "SELF":
        headers = {"Origin": f"http://{env.client.host}:{env.client.port}"}
    async with env.client.post(
        f"{Q}/work/tasks", data=b'{"payload": "x"}', headers=headers
    ) as response:
        body = await response.json()
    if allowed:
        assert response.status == 200, body
    else:
        assert_error(response.status, body, 403, "PERMISSION_DENIED", "without auth_tokens")
    assert len(await env.store.list_tasks("work")) == (1 if allowed else 0)
