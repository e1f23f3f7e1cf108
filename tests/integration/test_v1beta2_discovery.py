"""Google's own API client, built from the v1beta2 discovery document, against ``pushdctl serve``.

``googleapiclient`` builds every method from the discovery document alone (paths, HTTP methods,
parameter names and types, int64 as strings), so this checks pushd against the document rather
than against our reading of it. The client is synchronous: its calls run in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httplib2
import pytest
from googleapiclient import discovery
from googleapiclient.errors import HttpError

if TYPE_CHECKING:
    from tests.integration.conftest import StartDaemon

ROOT = Path(__file__).resolve().parents[2]
DISCOVERY = ROOT / "tests" / "data" / "taskqueue-v1beta2-discovery.json"  # see tests/data/README.md
QUEUE_YAML = """
queue:
- name: hooks
  rate: 5/s
- name: pull-q
  mode: pull
  retry_parameters:
    task_retry_limit: 5
  acl:
  - user_email: worker@example.com
  - writer_email: web@example.com
"""
PROJECT = "s~myapp"
Q = {"project": PROJECT, "taskqueue": "pull-q"}


def payload(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


async def call(request: Any) -> Any:
    """Execute a googleapiclient request off the event loop (it blocks on httplib2)."""
    return await asyncio.to_thread(request.execute)


@pytest.fixture
async def client(start_daemon: StartDaemon) -> AsyncIterator[Any]:
    assert DISCOVERY.is_file(), f"{DISCOVERY} is missing (tests/data/README.md)"
    daemon = await start_daemon(QUEUE_YAML)
    http = httplib2.Http(timeout=30)
    yield discovery.build_from_document(
        DISCOVERY.read_text(encoding="utf-8"),
        http=http,
        client_options={"api_endpoint": daemon.url + "/taskqueue/v1beta2/projects/"},
    )
    http.close()  # its keep-alive connections


async def test_every_method_through_googles_client(client: Any) -> None:
    tasks = client.tasks()
    queue = await call(client.taskqueues().get(getStats=True, **Q))
    assert queue["kind"] == "taskqueues#taskqueue"
    assert (queue["id"], queue["maxLeases"]) == ("pull-q", 5)
    assert queue["acl"]["consumerEmails"] == ["worker@example.com"]
    assert queue["acl"]["producerEmails"] == ["web@example.com"]
    assert queue["stats"]["totalTasks"] == 0
    assert queue["stats"]["leasedLastMinute"] == "0"

    body = {"queueName": "pull-q", "payloadBase64": payload("first"), "tag": "a", "id": "t1"}
    inserted = await call(tasks.insert(body=body, **Q))
    assert (inserted["id"], inserted["retry_count"], inserted["tag"]) == ("t1", 0, "a")
    assert inserted["leaseTimestamp"] == inserted["enqueueTimestamp"]  # never leased: its ETA
    second = await call(
        tasks.insert(body={"queueName": "pull-q", "payloadBase64": payload("second")}, **Q)
    )
    await call(
        tasks.insert(body={"queueName": "pull-q", "payloadBase64": "dGhpcmQ", "tag": "b"}, **Q)
    )

    got = await call(tasks.get(task="t1", **Q))
    assert base64.urlsafe_b64decode(got["payloadBase64"]) == b"first"
    listed = await call(tasks.list(**Q))
    assert listed["kind"] == "taskqueues#tasks"
    assert len(listed["items"]) == 3
    assert all("payloadBase64" not in item for item in listed["items"])

    # group by tag: the oldest task's tag ("a"), then an explicit tag
    leased = await call(tasks.lease(numTasks=10, leaseSecs=60, groupByTag=True, **Q))
    assert leased["kind"] == "taskqueue#tasks"
    assert [t["id"] for t in leased["items"]] == ["t1"]
    [t1] = leased["items"]
    assert t1["retry_count"] == 1
    assert int(t1["leaseTimestamp"]) > int(t1["enqueueTimestamp"]) + 59_000_000  # µs
    leased = await call(tasks.lease(numTasks=10, leaseSecs=60, groupByTag=True, tag="b", **Q))
    assert [base64.urlsafe_b64decode(t["payloadBase64"]) for t in leased["items"]] == [b"third"]
    leased = await call(tasks.lease(numTasks=10, leaseSecs=30, **Q))
    assert [t["id"] for t in leased["items"]] == [second["id"]]
    assert "items" not in await call(tasks.lease(numTasks=10, leaseSecs=30, **Q))

    # renew: update echoes the leased task; patch sends only what it must
    updated = await call(tasks.update(task="t1", newLeaseSeconds=300, body=t1, **Q))
    assert int(updated["leaseTimestamp"]) > int(t1["leaseTimestamp"])
    assert updated["retry_count"] == 1
    patched = await call(
        tasks.patch(task="t1", newLeaseSeconds=600, body={"queueName": "pull-q"}, **Q)
    )
    assert int(patched["leaseTimestamp"]) > int(updated["leaseTimestamp"])

    # a stale lease is refused
    with pytest.raises(HttpError) as stale:
        await call(tasks.update(task="t1", newLeaseSeconds=5, body=t1, **Q))
    assert stale.value.resp.status == 400
    assert "expired" in stale.value.reason

    stats = (await call(client.taskqueues().get(getStats=True, **Q)))["stats"]
    assert (stats["totalTasks"], stats["leasedLastMinute"], stats["leasedLastHour"]) == (
        3,
        "3",
        "3",
    )
    assert int(stats["oldestTask"]) < int(patched["leaseTimestamp"]) // 1_000_000  # seconds

    assert await call(tasks.delete(task="t1", **Q)) in ("", {}, None)
    with pytest.raises(HttpError) as gone:
        await call(tasks.get(task="t1", **Q))
    assert gone.value.resp.status == 404
    assert len((await call(tasks.list(**Q)))["items"]) == 2


async def test_errors_reach_the_client_as_http_errors(client: Any) -> None:
    cases: list[tuple[Callable[[], Any], int, str]] = [
        (lambda: client.taskqueues().get(project=PROJECT, taskqueue="nope"), 404, "'nope'"),
        (lambda: client.taskqueues().get(project=PROJECT, taskqueue="hooks"), 400, "push queue"),
        (lambda: client.tasks().get(task="missing", **Q), 404, "'missing'"),
        (lambda: client.tasks().delete(task="missing", **Q), 404, "'missing'"),
        (lambda: client.tasks().lease(numTasks=0, leaseSecs=1, **Q), 400, "numTasks"),
        (lambda: client.tasks().lease(numTasks=1, leaseSecs=604801, **Q), 400, "leaseSecs"),
        (
            lambda: client.tasks().insert(body={"queueName": "pull-q"}, **Q),
            400,
            "payloadBase64 is required",
        ),
    ]
    for build, status, text in cases:
        with pytest.raises(HttpError) as raised:
            await call(build())
        error = raised.value
        assert error.resp.status == status, error
        assert text in error.reason
        [detail] = error.error_details
        assert detail["domain"] == "global"
        assert detail["message"] == error.reason
        assert json.loads(error.content)["error"]["code"] == status

    body = {"queueName": "pull-q", "payloadBase64": "", "id": "dup"}
    await call(client.tasks().insert(body=body, **Q))
    with pytest.raises(HttpError) as duplicate:
        await call(client.tasks().insert(body=body, **Q))
    assert duplicate.value.resp.status == 400
    assert duplicate.value.error_details[0]["reason"] == "alreadyExists"
