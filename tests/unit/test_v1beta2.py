"""TaskQueue REST API v1beta2 (SPEC 7) in-process: a MemoryStore, a FakeClock, exact timestamps."""

from __future__ import annotations

import asyncio
import base64
import io
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import hypothesis
import jsonschema
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pushd import errors, settings, wire
from pushd.store import base, memory
from tests.unit.test_api import T0, Env, running

S = 1_000_000
QUEUE_YAML = """
queue:
- name: fast
  rate: 10/s
- name: work
  mode: pull
- name: limited
  mode: pull
  retry_parameters:
    task_retry_limit: 2
  acl:
  - user_email: worker@example.com
  - writer_email: web@example.com
  - user_email: both@example.com
  - writer_email: both@example.com
"""
Q = "/taskqueue/v1beta2/projects/s~myapp/taskqueues"
ADMIN = "admin-token-0123456789"
PRODUCER = "producer-token-0123456789"
CONSUMER = "consumer-token-0123456789"
OUTSIDER = "outsider-token-0123456789"
TOKENS = (
    settings.ApiToken(name="ops", token=ADMIN, role="admin"),
    settings.ApiToken(name="web", token=PRODUCER, role="producer", identity="web@example.com"),
    settings.ApiToken(
        name="worker", token=CONSUMER, role="consumer", identity="worker@example.com"
    ),
    settings.ApiToken(
        name="stranger", token=OUTSIDER, role="consumer", identity="stranger@example.com"
    ),
)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running(QUEUE_YAML) as started:
        yield started


async def rest(
    env: Env, method: str, path: str, *, token: str | None = None, **kw: Any
) -> tuple[int, Any]:
    """Call ``Q + path``; a 204 answers (204, None) and must have no body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with env.client.request(method, Q + path, headers=headers, **kw) as response:
        if response.status == 204:
            assert await response.read() == b""
            return 204, None
        assert response.content_type == "application/json"
        return response.status, await response.json()


def assert_error(status: int, body: Any, http_status: int, reason: str, text: str = "") -> None:
    """Google's envelope, exactly."""
    assert status == http_status, body
    message = body["error"]["message"]
    assert body == {
        "error": {
            "errors": [{"domain": "global", "reason": reason, "message": message}],
            "code": http_status,
            "message": message,
        }
    }
    assert text in message, message
    assert "Traceback" not in message


async def insert(env: Env, queue: str = "work", **fields: Any) -> dict[str, Any]:
    body = {"queueName": queue, "payloadBase64": "aGk=", **fields}
    status, answer = await rest(env, "POST", f"/{queue}/tasks", json=body)
    assert status == 200, answer
    return answer  # type: ignore[no-any-return]


async def lease(env: Env, queue: str = "work", **params: Any) -> tuple[int, Any]:
    query = {"numTasks": 10, "leaseSecs": 60, **params}
    return await rest(env, "POST", f"/{queue}/tasks/lease?{urllib.parse.urlencode(query)}")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


# ------------------------------------------------------------------ taskqueues.get


async def test_taskqueue_get_shape_maxleases_and_acl(env: Env) -> None:
    assert await rest(env, "GET", "/work") == (
        200,
        {
            "kind": "taskqueues#taskqueue",
            "id": "work",
            "acl": {"adminEmails": [], "consumerEmails": [], "producerEmails": []},
        },
    )
    assert await rest(env, "GET", "/limited?getStats=false") == (
        200,
        {
            "kind": "taskqueues#taskqueue",
            "id": "limited",
            "maxLeases": 2,
            "acl": {
                "adminEmails": [],
                "consumerEmails": ["worker@example.com", "both@example.com"],
                "producerEmails": ["web@example.com", "both@example.com"],
            },
        },
    )


async def test_taskqueue_stats_count_tasks_oldest_eta_and_leases(env: Env) -> None:
    _, queue = await rest(env, "GET", "/work?getStats=true")
    assert queue["stats"] == {"totalTasks": 0, "leasedLastMinute": "0", "leasedLastHour": "0"}

    await insert(env, id="later", leaseTimestamp=str(T0 + 90 * S + 999_999))
    await insert(env, id="now")
    env.clock.advance(5 * S)
    assert (await lease(env, numTasks=1))[0] == 200  # leases "now": ETA -> T0 + 65 s
    _, queue = await rest(env, "GET", "/work?getStats=1")
    assert queue["stats"] == {
        "totalTasks": 2,
        "oldestTask": str(T0 // S + 65),  # seconds, the smallest ETA (SPEC 7.5, Q9)
        "leasedLastMinute": "1",
        "leasedLastHour": "1",
    }
    env.clock.advance(61 * S)
    _, queue = await rest(env, "GET", "/work?getStats=true")
    assert (queue["stats"]["leasedLastMinute"], queue["stats"]["leasedLastHour"]) == ("0", "1")
    env.clock.advance(3600 * S)
    _, queue = await rest(env, "GET", "/work?getStats=true")
    assert (queue["stats"]["leasedLastMinute"], queue["stats"]["leasedLastHour"]) == ("0", "0")


async def test_taskqueue_get_errors(env: Env) -> None:
    assert_error(*await rest(env, "GET", "/nope"), 404, "notFound", "'nope'")
    assert_error(*await rest(env, "GET", "/fast"), 400, "badRequest", "push queue")
    assert_error(*await rest(env, "GET", "/work?getStats=maybe"), 400, "badRequest", "getStats")
    assert_error(*await rest(env, "GET", "/work?alt=proto"), 400, "badRequest", "alt")
    # the other common parameters are accepted and ignored
    status, _ = await rest(env, "GET", "/work?alt=json&prettyPrint=false&fields=id&key=k")
    assert status == 200


@pytest.mark.parametrize("project", ["s~myapp", "e~my-app", "myapp", "p", "Some.Project"])
async def test_any_project_with_or_without_a_partition_prefix(env: Env, project: str) -> None:
    path = f"/taskqueue/v1beta2/projects/{project}/taskqueues/work"
    async with env.client.get(path) as response:
        assert response.status == 200
        assert (await response.json())["id"] == "work"


# ------------------------------------------------------------------ tasks.insert


async def test_insert_minimal_task(env: Env) -> None:
    task = await insert(env)
    assert task == {
        "kind": "taskqueues#task",
        "id": task["id"],
        "queueName": "work",
        "payloadBase64": "aGk=",
        "enqueueTimestamp": str(T0),  # µs, as a string (int64)
        "leaseTimestamp": str(T0),  # never leased: its ETA, now (Q17)
        "retry_count": 0,
    }
    assert len(task["id"]) == 32
    stored = await env.store.get("work", task["id"])
    assert stored is not None
    assert (stored.payload, stored.method.value, stored.eta_us) == (b"hi", "PULL", T0)


async def test_insert_with_every_field(env: Env) -> None:
    env.clock.advance(7)
    task = await insert(
        env,
        kind="taskqueues#task",
        id="t-1_x",
        queueName="projects/s~myapp/taskqueues/work",  # the long form is accepted
        tag="reports",
        leaseTimestamp=str(T0 + 30 * S),
        enqueueTimestamp="123",  # ignored
        retry_count=9,  # ignored
    )
    assert task == {
        "kind": "taskqueues#task",
        "id": "t-1_x",
        "queueName": "work",
        "payloadBase64": "aGk=",
        "enqueueTimestamp": str(T0 + 7),
        "leaseTimestamp": str(T0 + 30 * S),
        "retry_count": 0,
        "tag": "reports",
    }
    assert (await lease(env))[1] == {"kind": "taskqueue#tasks"}  # not leasable before its time
    env.clock.set(T0 + 30 * S)
    assert [t["id"] for t in (await lease(env))[1]["items"]] == ["t-1_x"]


@pytest.mark.parametrize("value", [T0 + 5, str(T0 + 5)])
async def test_insert_lease_timestamp_as_number_or_string(env: Env, value: object) -> None:
    assert (await insert(env, leaseTimestamp=value))["leaseTimestamp"] == str(T0 + 5)


@pytest.mark.parametrize("value", [0, "0", None])
async def test_insert_lease_timestamp_zero_or_null_means_now(env: Env, value: object) -> None:
    assert (await insert(env, leaseTimestamp=value))["leaseTimestamp"] == str(T0)


@pytest.mark.parametrize(
    ("given", "payload"),
    [
        ("-__-", b"\xfb\xff\xfe"),  # URL-safe
        ("+//+", b"\xfb\xff\xfe"),  # standard
        ("aGk", b"hi"),  # no padding
        ("aGk=", b"hi"),
        ("", b""),
        ("AA", b"\x00"),
    ],
)
async def test_payload_base64_alphabets_and_padding(env: Env, given: str, payload: bytes) -> None:
    task = await insert(env, payloadBase64=given)
    assert task["payloadBase64"] == b64(payload)  # out: URL-safe, padded (Q11)
    stored = await env.store.get("work", task["id"])
    assert stored is not None
    assert stored.payload == payload


async def test_tasks_are_shared_with_the_native_api(env: Env) -> None:
    status, _ = await env.add("work", {"name": "nat", "payload_base64": "+//+", "tag": "t"})
    assert status == 200
    _, task = await rest(env, "GET", "/work/tasks/nat")
    assert (task["payloadBase64"], task["tag"]) == ("-__-", "t")
    await insert(env, id="rest", payloadBase64="-__-")
    status, native = await env.call("GET", "/api/v1/queues/work/tasks/rest")
    assert (status, native["payload_base64"], native["method"]) == (200, "+//+", "PULL")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"payloadBase64": "aGk="}, "queueName is required"),
        ({"queueName": "other", "payloadBase64": "aGk="}, "does not match"),
        ({"queueName": "projects/p/taskqueues/other", "payloadBase64": "aGk="}, "match"),
        ({"queueName": "work"}, "payloadBase64 is required"),
        ({"queueName": "work", "payloadBase64": "a"}, "base64"),
        ({"queueName": "work", "payloadBase64": "a*b="}, "base64"),
        ({"queueName": "work", "payloadBase64": 5}, "payloadBase64 must be a string"),
        ({"queueName": "work", "payloadBase64": "", "payload": "x"}, "no field 'payload'"),
        ({"queueName": "work", "payloadBase64": "", "id": "a b"}, "task name"),
        ({"queueName": "work", "payloadBase64": "", "id": 7}, "id must be a string"),
        ({"queueName": "work", "payloadBase64": "", "tag": "x" * 501}, "tag"),
        ({"queueName": "work", "payloadBase64": "", "leaseTimestamp": "soon"}, "int64"),
        ({"queueName": "work", "payloadBase64": "", "leaseTimestamp": 1.5}, "int64"),
        ({"queueName": "work", "payloadBase64": "", "leaseTimestamp": True}, "int64"),
        ({"queueName": "work", "payloadBase64": "", "leaseTimestamp": str(2**63)}, "int64"),
        ({"queueName": "work", "payloadBase64": "", "leaseTimestamp": "-1"}, "epoch"),
        (
            {"queueName": "work", "payloadBase64": "", "leaseTimestamp": str(T0 + 31 * 86400 * S)},
            "30 days",
        ),
        (
            {"queueName": "work", "payloadBase64": "", "leaseTimestamp": str(2**62)},
            "out of range",
        ),
        ([], "must be a Task JSON object"),
        ("x", "must be a Task JSON object"),
    ],
)
async def test_insert_refuses_bad_tasks_with_400(env: Env, body: object, text: str) -> None:
    assert_error(*await rest(env, "POST", "/work/tasks", json=body), 400, "badRequest", text)
    assert await env.store.list_tasks("work") == []


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff", b"null"])
async def test_insert_refuses_malformed_bodies_with_400(env: Env, raw: bytes) -> None:
    assert_error(*await rest(env, "POST", "/work/tasks", data=raw), 400, "badRequest")


async def test_insert_refuses_a_payload_over_1_mib_with_400(env: Env) -> None:
    body = {"queueName": "work", "payloadBase64": b64(b"x" * (1024 * 1024))}
    raw = io.BytesIO(wire.dumps(body))  # a large bytes body would warn
    assert_error(*await rest(env, "POST", "/work/tasks", data=raw), 400, "badRequest", "size")


async def test_insert_duplicate_or_tombstoned_id_is_400_already_exists(env: Env) -> None:
    await insert(env, id="dup")
    body = {"queueName": "work", "payloadBase64": "", "id": "dup"}
    status, answer = await rest(env, "POST", "/work/tasks", json=body)
    assert_error(status, answer, 400, "alreadyExists", "already has a task 'dup'")
    assert await rest(env, "DELETE", "/work/tasks/dup") == (204, None)
    status, answer = await rest(env, "POST", "/work/tasks", json=body)
    assert_error(status, answer, 400, "alreadyExists", "used recently")


async def test_insert_into_a_push_or_unknown_queue(env: Env) -> None:
    body = {"queueName": "fast", "payloadBase64": ""}
    assert_error(*await rest(env, "POST", "/fast/tasks", json=body), 400, "badRequest", "push")
    body = {"queueName": "nope", "payloadBase64": ""}
    assert_error(*await rest(env, "POST", "/nope/tasks", json=body), 404, "notFound", "'nope'")


async def test_insert_enforces_total_storage_limit() -> None:
    async with running(QUEUE_YAML + "total_storage_limit: 60B\n") as env:
        await insert(env, payloadBase64=b64(b"x" * 10))
        body = {"queueName": "work", "payloadBase64": b64(b"x" * 10)}
        status, answer = await rest(env, "POST", "/work/tasks", json=body)
        assert_error(status, answer, 507, "quotaExceeded", "total_storage_limit")


# ------------------------------------------------------------------ tasks.get, list, delete


async def test_get_task(env: Env) -> None:
    inserted = await insert(env, id="g", tag="t")
    assert await rest(env, "GET", "/work/tasks/g") == (200, inserted)
    assert_error(*await rest(env, "GET", "/work/tasks/nope"), 404, "notFound", "'nope'")
    assert_error(*await rest(env, "GET", "/work/tasks/a%20b"), 400, "badRequest", "task name")
    assert_error(*await rest(env, "GET", "/fast/tasks/g"), 400, "badRequest", "push")
    assert_error(*await rest(env, "GET", "/nope/tasks/g"), 404, "notFound")


async def test_list_tasks_has_no_payloads_and_leaves_out_empty_items(env: Env) -> None:
    assert await rest(env, "GET", "/work/tasks") == (200, {"kind": "taskqueues#tasks"})
    await insert(env, id="b")
    env.clock.advance(1)
    await insert(env, id="a", tag="x")
    await lease(env, numTasks=1)  # the oldest, b; a leased task is listed too
    status, listed = await rest(env, "GET", "/work/tasks")
    assert status == 200
    assert listed == {
        "kind": "taskqueues#tasks",
        "items": [
            {
                "kind": "taskqueues#task",
                "id": "a",
                "queueName": "work",
                "enqueueTimestamp": str(T0 + 1),
                "leaseTimestamp": str(T0 + 1),
                "retry_count": 0,
                "tag": "x",
            },
            {
                "kind": "taskqueues#task",
                "id": "b",
                "queueName": "work",
                "enqueueTimestamp": str(T0),
                "leaseTimestamp": str(T0 + 1 + 60 * S),
                "retry_count": 1,
            },
        ],
    }


async def test_list_shows_at_most_100_tasks(env: Env) -> None:
    await env.add("work", {"tasks": [{"name": f"t{i:03}", "payload": ""} for i in range(100)]})
    await env.add("work", {"tasks": [{"name": f"u{i:03}", "payload": ""} for i in range(5)]})
    _, listed = await rest(env, "GET", "/work/tasks")
    assert [t["id"] for t in listed["items"]] == [f"t{i:03}" for i in range(100)]


async def test_delete_task_answers_204_then_404(env: Env) -> None:
    await insert(env, id="d")
    await lease(env)  # a leased task can be deleted
    assert await rest(env, "DELETE", "/work/tasks/d") == (204, None)
    assert_error(*await rest(env, "DELETE", "/work/tasks/d"), 404, "notFound", "'d'")
    assert_error(*await rest(env, "GET", "/work/tasks/d"), 404, "notFound")
    assert_error(*await rest(env, "DELETE", "/work/tasks/never"), 404, "notFound")
    assert_error(*await rest(env, "DELETE", "/fast/tasks/d"), 400, "badRequest", "push")


# ------------------------------------------------------------------ tasks.lease


async def test_lease_answers_leased_tasks_with_payload_and_new_lease(env: Env) -> None:
    assert await lease(env) == (200, {"kind": "taskqueue#tasks"})  # empty: no items (Q12)
    await insert(env, id="one", payloadBase64="-__-")
    env.clock.advance(3)
    await insert(env, id="two")
    env.clock.advance(10)
    status, leased = await lease(env, numTasks=1, leaseSecs=30)
    assert (status, leased) == (
        200,
        {
            "kind": "taskqueue#tasks",  # sic (Q8)
            "items": [
                {
                    "kind": "taskqueues#task",
                    "id": "one",
                    "queueName": "work",
                    "payloadBase64": "-__-",
                    "enqueueTimestamp": str(T0),
                    "leaseTimestamp": str(T0 + 13 + 30 * S),
                    "retry_count": 1,
                }
            ],
        },
    )
    _, leased = await lease(env)
    assert [(t["id"], t["leaseTimestamp"]) for t in leased["items"]] == [
        ("two", str(T0 + 13 + 60 * S))
    ]
    assert await lease(env) == (200, {"kind": "taskqueue#tasks"})  # both leased now
    env.clock.set(T0 + 13 + 30 * S)  # the first lease runs out
    _, leased = await lease(env, leaseSecs=0)
    assert [(t["id"], t["retry_count"]) for t in leased["items"]] == [("one", 2)]


async def test_lease_parameters_may_come_in_a_form_body(env: Env) -> None:
    await insert(env, id="f")
    form = {"numTasks": "5", "leaseSecs": "45", "groupByTag": "false"}
    status, leased = await rest(env, "POST", "/work/tasks/lease", data=form)
    assert status == 200
    assert leased["items"][0]["leaseTimestamp"] == str(T0 + 45 * S)


async def test_lease_query_parameters_win_over_the_form_body(env: Env) -> None:
    await insert(env, id="f")
    status, leased = await rest(
        env, "POST", "/work/tasks/lease?leaseSecs=10", data={"numTasks": "1", "leaseSecs": "99"}
    )
    assert status == 200
    assert leased["items"][0]["leaseTimestamp"] == str(T0 + 10 * S)


async def test_lease_ignores_a_json_body(env: Env) -> None:
    await insert(env, id="f")
    status, leased = await rest(
        env, "POST", "/work/tasks/lease?leaseSecs=1&numTasks=1", json={"numTasks": "x"}
    )
    assert (status, len(leased["items"])) == (200, 1)


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"numTasks": "1"}, "leaseSecs is missing"),
        ({"leaseSecs": "1"}, "numTasks is missing"),
        ({"numTasks": "1", "leaseSecs": "1.5"}, "leaseSecs must be a 32-bit whole number"),
        ({"numTasks": "1", "leaseSecs": "abc"}, "leaseSecs"),
        ({"numTasks": "1", "leaseSecs": ""}, "leaseSecs"),
        ({"numTasks": "1", "leaseSecs": "99999999999999999999"}, "leaseSecs"),
        ({"numTasks": "1", "leaseSecs": "2147483648"}, "32-bit"),
        ({"numTasks": "1", "leaseSecs": "-1"}, "between 0 and 604800"),
        ({"numTasks": "1", "leaseSecs": "604801"}, "between 0 and 604800"),
        ({"numTasks": "0", "leaseSecs": "1"}, "numTasks must be between 1 and 1000"),
        ({"numTasks": "1001", "leaseSecs": "1"}, "between 1 and 1000"),
        ({"numTasks": "x", "leaseSecs": "1"}, "numTasks"),
        ({"numTasks": "1", "leaseSecs": "1", "groupByTag": "yes"}, "groupByTag"),
        ({"numTasks": "1", "leaseSecs": "1", "tag": "t"}, "groupByTag=true"),
        ({"numTasks": "1", "leaseSecs": "1", "groupByTag": "true", "tag": "t" * 501}, "tag"),
    ],
)
async def test_lease_refuses_bad_parameters_with_400(
    env: Env, params: dict[str, str], text: str
) -> None:
    await insert(env, id="kept")
    path = f"/work/tasks/lease?{urllib.parse.urlencode(params)}"
    assert_error(*await rest(env, "POST", path), 400, "badRequest", text)
    task = await env.store.get("work", "kept")
    assert task is not None
    assert task.retry_count == 0


async def test_lease_limits_are_inclusive(env: Env) -> None:
    await insert(env, id="x")
    assert (await lease(env, numTasks=1000, leaseSecs=604800))[0] == 200
    _, task = await rest(env, "GET", "/work/tasks/x")
    assert task["leaseTimestamp"] == str(T0 + 604800 * S)


async def test_lease_on_push_unknown_or_paused_queues(env: Env) -> None:
    assert_error(*await lease(env, "fast"), 400, "badRequest", "push queue")
    assert_error(*await lease(env, "nope"), 404, "notFound", "'nope'")
    assert (await env.call("POST", "/api/v1/queues/work/pause"))[0] == 200
    assert_error(*await lease(env), 400, "badRequest", "paused")


async def test_lease_group_by_tag(env: Env) -> None:
    for name, tag in [("a", "x"), ("b", None), ("c", "y"), ("d", "x"), ("e", None)]:
        await insert(env, id=name, **({"tag": tag} if tag else {}))
        env.clock.advance(1)

    async def ids(**params: Any) -> list[str]:
        status, leased = await lease(env, leaseSecs=600, **params)
        assert status == 200, leased
        return [t["id"] for t in leased.get("items", [])]

    assert await ids(groupByTag="true", tag="y") == ["c"]
    assert await ids(groupByTag="true") == ["a", "d"]  # the oldest task's tag
    assert await ids(groupByTag="true", tag="") == ["b", "e"]  # oldest now untagged: untagged
    assert await ids(groupByTag="true", tag="x") == []


async def test_lease_group_by_tag_false_leases_every_tag(env: Env) -> None:
    await insert(env, id="a", tag="x")
    await insert(env, id="b")
    _, leased = await lease(env, groupByTag="false")
    assert sorted(t["id"] for t in leased["items"]) == ["a", "b"]


async def test_max_leases_deletes_the_task_instead_of_leasing_it_again(env: Env) -> None:
    await insert(env, "limited", id="m")
    for count in (1, 2):
        _, leased = await lease(env, "limited", leaseSecs=1)
        assert [(t["id"], t["retry_count"]) for t in leased["items"]] == [("m", count)]
        env.clock.advance(2 * S)
    assert await lease(env, "limited") == (200, {"kind": "taskqueue#tasks"})
    assert_error(*await rest(env, "GET", "/limited/tasks/m"), 404, "notFound")
    body = {"queueName": "limited", "payloadBase64": "", "id": "m"}
    assert_error(*await rest(env, "POST", "/limited/tasks", json=body), 400, "alreadyExists")
    _, queue = await rest(env, "GET", "/limited?getStats=true")
    assert (queue["maxLeases"], queue["stats"]["leasedLastMinute"]) == (2, "2")


# ------------------------------------------------------------------ tasks.update and patch


async def leased_task(env: Env, name: str = "u", lease_secs: int = 60) -> dict[str, Any]:
    await insert(env, id=name)
    _, leased = await lease(env, numTasks=1, leaseSecs=lease_secs)
    [task] = leased["items"]
    return task  # type: ignore[no-any-return]


async def test_update_renews_the_lease_from_now(env: Env) -> None:
    task = await leased_task(env)
    env.clock.advance(10 * S)
    status, renewed = await rest(
        env,
        "POST",
        "/work/tasks/u?newLeaseSeconds=30",
        json=task,  # the leased task, echoed
    )
    assert (status, renewed) == (
        200,
        {**task, "leaseTimestamp": str(T0 + 40 * S), "retry_count": 1},
    )
    stored = await env.store.get("work", "u")
    assert stored is not None
    assert (stored.eta_us, stored.retry_count) == (T0 + 40 * S, 1)


async def test_update_needs_only_the_lease_timestamp(env: Env) -> None:
    task = await leased_task(env)
    body = {"leaseTimestamp": task["leaseTimestamp"]}
    status, renewed = await rest(env, "POST", "/work/tasks/u?newLeaseSeconds=5", json=body)
    assert (status, renewed["leaseTimestamp"]) == (200, str(T0 + 5 * S))


async def test_update_with_zero_seconds_releases_the_task(env: Env) -> None:
    task = await leased_task(env)
    env.clock.advance(S)
    status, renewed = await rest(env, "POST", "/work/tasks/u?newLeaseSeconds=0", json=task)
    assert (status, renewed["leaseTimestamp"]) == (200, str(T0 + S))
    _, leased = await lease(env)
    assert [(t["id"], t["retry_count"]) for t in leased["items"]] == [("u", 2)]


async def test_update_refuses_a_stale_or_expired_lease(env: Env) -> None:
    task = await leased_task(env, lease_secs=10)
    stale = {**task, "leaseTimestamp": str(int(task["leaseTimestamp"]) - 1)}
    path = "/work/tasks/u?newLeaseSeconds=30"
    assert_error(*await rest(env, "POST", path, json=stale), 400, "badRequest", "expired")
    env.clock.advance(10 * S + 1)  # the lease ran out
    assert_error(*await rest(env, "POST", path, json=task), 400, "badRequest", "expired")
    stored = await env.store.get("work", "u")
    assert stored is not None
    assert stored.eta_us == T0 + 10 * S


@pytest.mark.parametrize(
    ("path", "body", "text"),
    [
        ("/work/tasks/u", {"leaseTimestamp": "1"}, "newLeaseSeconds is missing"),
        ("/work/tasks/u?newLeaseSeconds=x", {"leaseTimestamp": "1"}, "newLeaseSeconds"),
        ("/work/tasks/u?newLeaseSeconds=-1", {"leaseTimestamp": "1"}, "between 0 and 604800"),
        ("/work/tasks/u?newLeaseSeconds=604801", {"leaseTimestamp": "1"}, "604800"),
        ("/work/tasks/u?newLeaseSeconds=1", {}, "leaseTimestamp is required"),
        ("/work/tasks/u?newLeaseSeconds=1", {"leaseTimestamp": "x"}, "int64"),
        ("/work/tasks/u?newLeaseSeconds=1", {"leaseTimestamp": "1", "id": "v"}, "does not match"),
        ("/work/tasks/u?newLeaseSeconds=1", {"leaseTimestamp": "1", "queueName": "x"}, "match"),
        ("/work/tasks/u?newLeaseSeconds=1", {"leaseTimestamp": "1", "extra": 1}, "no field"),
        ("/work/tasks/u?newLeaseSeconds=1", [], "Task JSON object"),
    ],
)
async def test_update_refuses_bad_requests_with_400(
    env: Env, path: str, body: object, text: str
) -> None:
    await leased_task(env)
    assert_error(*await rest(env, "POST", path, json=body), 400, "badRequest", text)


async def test_update_and_patch_of_unknown_or_deleted_tasks_are_404(env: Env) -> None:
    task = await leased_task(env)
    for method, body in [("POST", task), ("PATCH", {"queueName": "work"})]:
        path = "/work/tasks/zz?newLeaseSeconds=1"
        assert_error(*await rest(env, method, path, json={**body, "id": "zz"}), 404, "notFound")
    assert await rest(env, "DELETE", "/work/tasks/u") == (204, None)
    for method, body in [("POST", task), ("PATCH", {"queueName": "work"})]:
        path = "/work/tasks/u?newLeaseSeconds=1"
        assert_error(*await rest(env, method, path, json=body), 404, "notFound", "no task 'u'")


async def test_patch_renews_the_current_lease_without_a_lease_timestamp(env: Env) -> None:
    await leased_task(env)
    env.clock.advance(S)
    status, renewed = await rest(
        env, "PATCH", "/work/tasks/u?newLeaseSeconds=20", json={"queueName": "work"}
    )
    assert (status, renewed["leaseTimestamp"], renewed["retry_count"]) == (
        200,
        str(T0 + 21 * S),
        1,
    )


async def test_patch_checks_a_given_lease_timestamp(env: Env) -> None:
    task = await leased_task(env)
    path = "/work/tasks/u?newLeaseSeconds=20"
    body = {"queueName": "projects/s~myapp/taskqueues/work", "leaseTimestamp": "5"}
    assert_error(*await rest(env, "PATCH", path, json=body), 400, "badRequest", "expired")
    body["leaseTimestamp"] = task["leaseTimestamp"]
    status, renewed = await rest(env, "PATCH", path, json=body)
    assert (status, renewed["leaseTimestamp"]) == (200, str(T0 + 20 * S))


async def test_patch_refuses_an_expired_lease(env: Env) -> None:
    await leased_task(env, lease_secs=1)
    env.clock.advance(2 * S)
    path = "/work/tasks/u?newLeaseSeconds=20"
    status, body = await rest(env, "PATCH", path, json={"queueName": "work"})
    assert_error(status, body, 400, "badRequest", "expired")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({}, "queueName is required"),
        ({"queueName": "other"}, "does not match"),
        ({"queueName": "work", "id": "other"}, "does not match the task"),
        ({"queueName": 5}, "queueName must be a string"),
    ],
)
async def test_patch_refuses_bad_bodies_with_400(env: Env, body: object, text: str) -> None:
    await leased_task(env)
    path = "/work/tasks/u?newLeaseSeconds=20"
    assert_error(*await rest(env, "PATCH", path, json=body), 400, "badRequest", text)


async def test_update_and_patch_on_a_push_queue_are_400(env: Env) -> None:
    for method in ("POST", "PATCH"):
        path = "/fast/tasks/u?newLeaseSeconds=1"
        body = {"queueName": "fast", "leaseTimestamp": "1"}
        assert_error(*await rest(env, method, path, json=body), 400, "badRequest", "push")


async def test_a_rest_lease_can_be_renewed_natively(env: Env) -> None:
    task = await leased_task(env)
    status, renewed = await env.call(
        "POST",
        "/api/v1/queues/work/tasks/u/lease",
        json={"eta_us": int(task["leaseTimestamp"]), "lease_seconds": 9},
    )
    assert (status, renewed["eta_us"]) == (200, T0 + 9 * S)


# ------------------------------------------------------------------ errors and routing


async def test_unknown_routes_and_methods_answer_the_google_envelope(env: Env) -> None:
    status, body = await rest(env, "GET", "/work/tasks/a/b")
    assert_error(status, body, 404, "notFound", "no such route")
    async with env.client.put(f"{Q}/work/tasks") as response:
        assert set(response.headers["Allow"].split(",")) == {"GET", "POST"}
        assert_error(response.status, await response.json(), 405, "methodNotAllowed", "PUT")
    async with env.client.get("/taskqueue/v1beta2/nope") as response:
        assert_error(response.status, await response.json(), 404, "notFound")


async def test_get_of_a_task_named_lease_is_not_the_lease_route(env: Env) -> None:
    await insert(env, id="lease")
    _, task = await rest(env, "GET", "/work/tasks/lease")
    assert task["id"] == "lease"
    assert await rest(env, "DELETE", "/work/tasks/lease") == (204, None)


async def test_native_paths_keep_the_native_envelope(env: Env) -> None:
    status, body = await env.call("GET", "/api/v1/queues/nope")
    assert status == 404
    assert set(body["error"]) == {"code", "status", "message", "exception"}


async def test_a_body_over_32_mib_is_413(env: Env) -> None:
    raw = io.BytesIO(b"x" * (wire.MAX_REQUEST_BYTES + 1))
    status, body = await rest(env, "POST", "/work/tasks", data=raw)
    assert_error(status, body, 413, "requestTooLarge")


async def test_unexpected_exceptions_are_500_without_a_traceback() -> None:
    class BrokenStore(memory.MemoryStore):
        async def list_tasks(
            self, queue: str, *, limit: int = 100, after_name: str | None = None
        ) -> list[Any]:
            raise RuntimeError("disk on fire")

        async def counts(self, queue: str) -> base.QueueCounts:
            raise errors.TransientError("database is locked")

    async with running(QUEUE_YAML, store=BrokenStore()) as env:
        status, body = await rest(env, "GET", "/work/tasks")
        assert_error(status, body, 500, "internalError", "internal server error")
        assert "disk on fire" not in body["error"]["message"]
        status, body = await rest(env, "GET", "/work?getStats=true")
        assert_error(status, body, 503, "backendError", "database is locked")


# ------------------------------------------------------------------ auth and acl


@pytest.fixture
async def secured() -> AsyncIterator[Env]:
    async with running(QUEUE_YAML, tokens=TOKENS) as started:
        yield started


async def test_auth_failures_answer_the_google_envelope(secured: Env) -> None:
    async with secured.client.get(f"{Q}/work") as response:
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="pushd"'
        assert_error(response.status, await response.json(), 401, "authError")
    status, body = await rest(
        secured, "POST", "/work/tasks/lease?numTasks=1&leaseSecs=1", token=PRODUCER
    )
    assert_error(status, body, 403, "forbidden", "may not lease tasks")


ROUTES = [
    ("GET", "", "read"),
    ("POST", "/tasks", "insert"),
    ("GET", "/tasks", "read"),
    ("GET", "/tasks/t", "read"),
    ("POST", "/tasks/lease?numTasks=1&leaseSecs=1", "read"),
    ("POST", "/tasks/t?newLeaseSeconds=1", "read"),
    ("PATCH", "/tasks/t?newLeaseSeconds=1", "read"),
    ("DELETE", "/tasks/t", "read"),
]


@pytest.mark.parametrize(
    ("token", "allowed"),
    [
        (ADMIN, {"insert", "read"}),
        (PRODUCER, {"insert"}),
        (CONSUMER, {"read"}),
        (OUTSIDER, set()),  # a consumer, but not in the queue's acl
    ],
)
async def test_roles_and_the_pull_queue_acl(secured: Env, token: str, allowed: set[str]) -> None:
    for method, path, kind in ROUTES:
        body = {"queueName": "limited", "payloadBase64": "", "id": "t", "leaseTimestamp": "1"}
        status, answer = await rest(secured, method, f"/limited{path}", token=token, json=body)
        if kind in allowed:
            assert status not in (401, 403), (method, path, answer)
        else:
            assert_error(status, answer, 403, "forbidden")


# ------------------------------------------------------------------ OpenAPI


def _validator(doc: dict[str, Any], path: str, method: str, status: int) -> Any:
    answer = doc["paths"][path][method.lower()]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


async def test_answers_match_the_openapi_document(env: Env) -> None:
    status, doc = await env.call("GET", "/openapi.json")
    assert status == 200
    p = "/taskqueue/v1beta2/projects/{project}/taskqueues/{queue}"
    for method, template in [
        ("GET", p),
        ("POST", f"{p}/tasks/lease"),
        ("POST", f"{p}/tasks"),
        ("GET", f"{p}/tasks"),
        ("GET", f"{p}/tasks/{{task}}"),
        ("DELETE", f"{p}/tasks/{{task}}"),
        ("POST", f"{p}/tasks/{{task}}"),
        ("PATCH", f"{p}/tasks/{{task}}"),
    ]:
        assert method.lower() in doc["paths"][template]
    task = await insert(env, id="o", tag="t")
    _validator(doc, f"{p}/tasks", "POST", 200).validate(task)
    checks: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("GET", p, "/work?getStats=true", {}, 200),
        ("GET", p, "/work", {}, 200),
        ("GET", f"{p}/tasks", "/work/tasks", {}, 200),
        ("GET", f"{p}/tasks/{{task}}", "/work/tasks/o", {}, 200),
        ("POST", f"{p}/tasks/lease", "/work/tasks/lease?numTasks=5&leaseSecs=9", {}, 200),
        ("POST", f"{p}/tasks/lease", "/work/tasks/lease?numTasks=5&leaseSecs=9", {}, 200),
        (
            "PATCH",
            f"{p}/tasks/{{task}}",
            "/work/tasks/o?newLeaseSeconds=1",
            {"json": {"queueName": "work"}},
            200,
        ),
        ("POST", f"{p}/tasks/{{task}}", "/work/tasks/o?newLeaseSeconds=1", {"json": {}}, 400),
        ("GET", f"{p}/tasks/{{task}}", "/work/tasks/zz", {}, 404),
        ("POST", f"{p}/tasks", "/work/tasks", {"json": {}}, 400),
    ]
    for method, template, url, kw, want in checks:
        status, body = await rest(env, method, url, **kw)
        assert status == want, (url, body)
        _validator(doc, template, method, status).validate(body)
    assert await rest(env, "DELETE", "/work/tasks/o") == (204, None)


# ------------------------------------------------------------------ fuzz


def _check_answer(status: int, body: Any) -> None:
    assert status != 500, body
    if status >= 400:
        assert set(body) == {"error"}
        assert body["error"]["code"] == status
        [item] = body["error"]["errors"]
        assert item["domain"] == "global"
        assert item["message"] == body["error"]["message"]
    hypothesis.event(str(status))


def _json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**64 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=6,
    )


def _task_bodies() -> st.SearchStrategy[bytes]:
    anything = _json_values()
    fields = {
        "queueName": st.sampled_from(["work", "projects/p/taskqueues/work", "x"]) | anything,
        "payloadBase64": st.binary(max_size=6).map(b64) | st.text("AZaz09+/-_=", max_size=8),
        "id": st.from_regex(r"[a-z0-9_-]{1,6}", fullmatch=True) | anything,
        "leaseTimestamp": st.integers(min_value=-(2**64), max_value=2**64).map(str)
        | st.integers(min_value=T0 - S, max_value=T0 + 100 * S).map(str)
        | anything,
        "tag": st.text(max_size=4) | anything,
        "retry_count": anything,
        "kind": anything,
    }
    required = {k: fields[k] for k in ("queueName", "payloadBase64")}
    others = {k: v for k, v in fields.items() if k not in required}
    objects = st.fixed_dictionaries(required, optional=others) | st.fixed_dictionaries(
        {}, optional=fields
    )
    return objects.map(wire.dumps) | anything.map(wire.dumps) | st.binary(max_size=32)


def _parameters() -> st.SearchStrategy[dict[str, str]]:
    values = (
        st.sampled_from(["true", "false", "1", "0", ""])
        | st.integers(min_value=-5, max_value=1100).map(str)
        | st.text(max_size=6)
        | st.integers().map(str)
    )
    plausible = st.integers(min_value=1, max_value=100).map(str)
    names = ["numTasks", "leaseSecs", "groupByTag", "tag", "newLeaseSeconds", "alt"]
    return st.fixed_dictionaries(
        {"numTasks": plausible, "leaseSecs": plausible, "newLeaseSeconds": plausible},
        optional={"groupByTag": values, "tag": st.sampled_from(["", "x", "y"]) | values},
    ) | st.dictionaries(st.sampled_from(names), values)


def test_no_input_answers_500() -> None:
    """Random bodies on insert, update and patch; random parameters on lease."""
    with asyncio.Runner() as runner:
        manager = running(QUEUE_YAML)
        env = runner.run(manager.__aenter__())
        try:

            @hypothesis_settings(
                max_examples=300, deadline=None, suppress_health_check=list(HealthCheck)
            )
            @given(
                raw=_task_bodies(),
                method=st.sampled_from(["POST", "PATCH"]),
                route=st.sampled_from(["/work/tasks", "/work/tasks/t", "/limited/tasks/t"]),
                params=_parameters(),
                form=st.booleans(),
            )
            def check(
                raw: bytes, method: str, route: str, params: dict[str, str], form: bool
            ) -> None:
                query = urllib.parse.urlencode(params)
                status, body = runner.run(rest(env, method, f"{route}?{query}", data=raw))
                _check_answer(status, body)
                lease_kw: dict[str, Any] = (
                    {"data": params} if form else {"params": params, "data": raw}
                )
                status, body = runner.run(rest(env, "POST", "/work/tasks/lease", **lease_kw))
                _check_answer(status, body)

            check()
        finally:
            runner.run(manager.__aexit__(None, None, None))
