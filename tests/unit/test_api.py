"""The /api/v1 HTTP API on 127.0.0.1 with a MemoryStore, a FakeClock and a recording engine."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import io
import logging
import urllib.parse
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

import hypothesis
import pytest
from aiohttp import test_utils
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pushd import api, clock, errors, models, service, settings, wire
from pushd.queue_yaml import config
from pushd.store import base, memory

T0 = 1_700_000_000_000_000
S = 1_000_000
QUEUE_YAML = """
queue:
- name: fast
  rate: 10/s
  bucket_size: 3
  retry_parameters:
    task_retry_limit: 4
- name: work
  mode: pull
"""
ADMIN = "admin-token-0123456789"
PRODUCER = "producer-token-0123456789"
CONSUMER = "consumer-token-0123456789"
TOKENS = (
    settings.ApiToken(name="ops", token=ADMIN, role="admin"),
    settings.ApiToken(name="web", token=PRODUCER, role="producer"),
    settings.ApiToken(name="worker", token=CONSUMER, role="consumer"),
)


class FakeEngine:
    """Records what the API asks of the scheduler; pause state lives in the store, as there."""

    def __init__(self, store: base.Store) -> None:
        self.store = store
        self.notified: list[tuple[str, int]] = []
        self.calls: list[tuple[str, str]] = []
        self.paused: set[str] = set()

    def notify(self, queue: str, eta_us: int) -> None:
        self.notified.append((queue, eta_us))

    def forget(self, queue: str, names: Iterable[str] | None = None) -> None:
        self.calls.append(("forget", queue if names is None else f"{queue}:{','.join(names)}"))

    async def pause(self, queue: str) -> None:
        self.calls.append(("pause", queue))
        self.paused.add(queue)
        await self.store.set_paused(queue, True)

    async def resume(self, queue: str) -> None:
        self.calls.append(("resume", queue))
        self.paused.discard(queue)
        await self.store.set_paused(queue, False)

    def live(self, queue: str) -> models.LiveStats:
        return models.LiveStats(
            in_flight=1, executed_last_minute=7, enforced_rate=2.5, paused=queue in self.paused
        )


@dataclasses.dataclass
class Env:
    client: test_utils.TestClient[Any, Any]
    store: memory.MemoryStore
    clock: clock.FakeClock
    engine: FakeEngine
    queues: config.QueuesConfig

    async def call(
        self, method: str, path: str, *, token: str | None = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.client.request(method, path, headers=headers, **kw) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()

    async def add(self, queue: str, body: object, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", f"/api/v1/queues/{queue}/tasks", json=body, **kw)


@contextlib.asynccontextmanager
async def running(
    queue_yaml: str = QUEUE_YAML,
    tokens: tuple[settings.ApiToken, ...] = (),
    store: memory.MemoryStore | None = None,
) -> AsyncIterator[Env]:
    store = store or memory.MemoryStore()
    fake_clock = clock.FakeClock(T0)
    engine = FakeEngine(store)
    env_queues = config.load_text(queue_yaml)
    domain = service.Service(
        store=store, clock=fake_clock, queues=lambda: env.queues, engine=engine
    )
    app = api.create_app(service=domain, settings=settings.Settings(auth_tokens=tokens))
    async with test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1")) as client:
        env = Env(client, store, fake_clock, engine, env_queues)
        yield env


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running() as started:
        yield started


def assert_error(status: int, body: Any, http_status: int, name: str, text: str = "") -> None:
    assert status == http_status, body
    error = dict(body["error"])
    exception = error.pop("exception", None)
    assert error == {"code": http_status, "status": name, "message": error["message"]}
    assert text in error["message"]
    if exception is not None:  # pushd errors name their class, which carries the same code
        assert getattr(errors, exception).code.name == name


async def kill(env: Env, queue: str, name: str, *, status: int = 500) -> None:
    """Move a stored push task to the dead letters as the scheduler would."""
    [claimed] = await env.store.claim_due(queue, now_us=T0, limit=1, lease_us=60 * S)
    outcome = base.DeadLetter(
        queue=queue,
        name=name,
        lease_eta_us=claimed.lease_eta_us,
        retry_count=3,
        execution_count=3,
        first_try_us=T0,
        last_status=status,
        reason="task_retry_limit reached",
    )
    await env.store.finish([outcome], now_us=T0 + S)


# ------------------------------------------------------------------ health, routing


async def test_healthz(env: Env) -> None:
    assert await env.call("GET", "/healthz") == (200, {"status": "ok"})


async def test_unknown_route_is_a_json_404(env: Env) -> None:
    status, body = await env.call("GET", "/nope")
    assert_error(status, body, 404, "INVALID_REQUEST", "no such route")


async def test_wrong_method_is_a_json_405_with_allow(env: Env) -> None:
    async with env.client.put("/api/v1/queues/fast/tasks") as response:
        assert response.status == 405
        assert set(response.headers["Allow"].split(",")) == {"GET", "POST"}
        body = await response.json()
    assert_error(405, body, 405, "INVALID_REQUEST", "method PUT is not allowed")


async def test_unknown_queue_is_404_on_every_queue_route(env: Env) -> None:
    for method, path in [
        ("GET", "/api/v1/queues/nope"),
        ("POST", "/api/v1/queues/nope/pause"),
        ("POST", "/api/v1/queues/nope/resume"),
        ("POST", "/api/v1/queues/nope/purge"),
        ("POST", "/api/v1/queues/nope/tasks"),
        ("GET", "/api/v1/queues/nope/tasks"),
        ("GET", "/api/v1/queues/nope/tasks/a"),
        ("DELETE", "/api/v1/queues/nope/tasks/a"),
        ("POST", "/api/v1/queues/nope/tasks/a/run"),
        ("GET", "/api/v1/queues/nope/dead"),
        ("GET", "/api/v1/queues/nope/dead/a"),
        ("POST", "/api/v1/queues/nope/dead/a/redrive"),
        ("DELETE", "/api/v1/queues/nope/dead/a"),
        ("POST", "/api/v1/queues/nope/delete"),
        ("POST", "/api/v1/queues/nope/lease"),
        ("POST", "/api/v1/queues/nope/tasks/a/lease"),
    ]:
        status, body = await env.call(method, path, json={})
        assert_error(status, body, 404, "UNKNOWN_QUEUE", "'nope'")


async def test_unexpected_exceptions_are_logged_and_answered_500_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BrokenStore(memory.MemoryStore):
        async def counts(self, queue: str) -> base.QueueCounts:
            raise RuntimeError("disk on fire")

    async with running(store=BrokenStore()) as env:
        with caplog.at_level(logging.ERROR, logger="pushd"):
            status, body = await env.call("GET", "/api/v1/queues/fast")
    assert_error(status, body, 500, "INTERNAL_ERROR", "internal server error")
    assert "disk on fire" not in body["error"]["message"]
    [record] = [r for r in caplog.records if r.getMessage() == "api_internal_error"]
    assert record.exc_info is not None


# ------------------------------------------------------------------ add


async def test_add_one_push_task(env: Env) -> None:
    status, body = await env.add("fast", {"name": "t1", "payload": "hello", "countdown": 10})
    assert status == 200
    eta_us = T0 + 10 * S
    assert body == {
        "tasks": [
            {"name": "t1", "queue": "fast", "eta": eta_us / S, "eta_us": eta_us, "result": "OK"}
        ]
    }
    stored = await env.store.get("fast", "t1")
    assert stored is not None
    assert stored.method is models.Method.POST
    assert stored.payload == b"hello"
    assert stored.url == "/_ah/queue/fast"
    assert env.engine.notified == [("fast", eta_us)]


async def test_add_gives_unnamed_tasks_a_name(env: Env) -> None:
    status, body = await env.add("fast", {})
    assert status == 200
    [result] = body["tasks"]
    assert result["result"] == "OK"
    assert await env.store.get("fast", result["name"]) is not None


async def test_add_to_a_pull_queue_defaults_to_pull_and_does_not_notify(env: Env) -> None:
    status, body = await env.add("work", {"name": "p1", "payload": "x", "tag": "blue"})
    assert status == 200
    assert body["tasks"][0]["result"] == "OK"
    stored = await env.store.get("work", "p1")
    assert stored is not None
    assert stored.method is models.Method.PULL
    assert stored.tag == b"blue"
    assert env.engine.notified == []


async def test_add_with_every_field(env: Env) -> None:
    body = {
        "name": "full",
        "method": "PUT",
        "url": "/hook",
        "headers": {"X-A": ["1", "2"], "Content-Type": "application/octet-stream"},
        "payload_base64": base64.b64encode(b"\x00\xff").decode(),
        "params": {"a": [1, "b"]},
        "eta": "2023-11-14T22:13:30Z",
        "retry_options": {
            "task_retry_limit": 2,
            "task_age_limit": "2d",
            "min_backoff_seconds": 1,
            "max_backoff_seconds": 8,
            "max_doublings": 3,
        },
        "dispatch_deadline": 30,
        "target": "worker",
    }
    status, answer = await env.add("fast", body)
    assert status == 200, answer
    status, task = await env.call("GET", "/api/v1/queues/fast/tasks/full")
    assert status == 200
    assert task["method"] == "PUT"
    assert task["url"] == "/hook?a=1&a=b"
    assert ["X-A", "1"] in task["headers"]
    assert ["X-A", "2"] in task["headers"]
    assert base64.b64decode(task["payload_base64"]) == b"\x00\xff"
    assert task["eta_us"] == T0 + 10 * S
    assert task["retry_options"] == {
        "task_retry_limit": 2,
        "task_age_limit": 172800,
        "min_backoff_seconds": 1,
        "max_backoff_seconds": 8,
        "max_doublings": 3,
    }
    assert task["dispatch_deadline"] == 30.0
    assert task["target"] == "worker"


async def test_batch_name_clash_fails_only_that_task(env: Env) -> None:
    assert (await env.add("fast", {"name": "a"}))[0] == 200
    await env.store.delete("fast", ["a"], now_us=T0)  # tombstoned now
    assert (await env.add("fast", {"name": "b"}))[0] == 200
    env.engine.notified.clear()
    status, body = await env.add("fast", {"tasks": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    assert status == 200
    assert [(r["name"], r["result"]) for r in body["tasks"]] == [
        ("a", "TOMBSTONED_TASK"),
        ("b", "TASK_ALREADY_EXISTS"),
        ("c", "OK"),
    ]
    assert env.engine.notified == [("fast", T0)]
    assert await env.store.get("fast", "c") is not None


async def test_an_invalid_task_fails_the_batch_and_inserts_nothing(env: Env) -> None:
    batch = {"tasks": [{"name": "ok1"}, {"name": "bad name"}, {"name": "ok2"}]}
    status, body = await env.add("fast", batch)
    assert_error(status, body, 400, "INVALID_TASK_NAME", "bad name")
    assert await env.store.list_tasks("fast") == []
    assert env.engine.notified == []


@pytest.mark.parametrize(
    ("queue", "body", "http_status", "name", "text"),
    [
        ("fast", {"tasks": []}, 400, "INVALID_REQUEST", "at least one"),
        ("fast", {"tasks": [{}] * 101}, 400, "TOO_MANY_TASKS", "at most 100"),
        ("fast", {"nmae": "a"}, 400, "INVALID_REQUEST", "unknown field 'nmae'"),
        ("fast", {"payload": "a", "payload_base64": "YQ=="}, 400, "INVALID_REQUEST", "not both"),
        ("fast", {"tasks": [{"name": "a"}, {"name": "a"}]}, 400, "DUPLICATE_TASK_NAME", "'a'"),
        ("fast", {"method": "PULL", "payload": "x"}, 400, "INVALID_QUEUE_MODE", "pull tasks"),
        ("work", {"method": "POST"}, 400, "INVALID_QUEUE_MODE", "push tasks"),
        ("fast", {"url": "http://evil/x"}, 400, "INVALID_URL", ""),
        ("fast", {"countdown": 40 * 86400}, 400, "INVALID_ETA", "30 days"),
        ("fast", {"eta": "yesterday"}, 400, "INVALID_REQUEST", "RFC 3339"),
        ("fast", {"payload": "x" * 102401}, 413, "TASK_TOO_LARGE", "102400"),
        ("fast", {"dispatch_deadline": 1}, 400, "INVALID_DISPATCH_DEADLINE", ""),
        ("fast", {"retry_options": {"task_age_limit": "2w"}}, 400, "INVALID_RETRY_PARAMETERS", ""),
        ("work", {"payload": "x", "tag": "t" * 501}, 400, "INVALID_TAG", ""),
        ("fast", {"method": "BREW"}, 400, "INVALID_REQUEST", "Invalid method"),
    ],
)
async def test_add_refuses_bad_input(
    env: Env, queue: str, body: object, http_status: int, name: str, text: str
) -> None:
    status, answer = await env.add(queue, body)
    assert_error(status, answer, http_status, name, text)
    assert await env.store.list_tasks(queue) == []


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"not json", b"\xff\xfe", b"[1, 2", b'{"name": "a",}', b"\xef\xbb\xbf{}"]
)
async def test_add_refuses_malformed_json(env: Env, raw: bytes) -> None:
    status, body = await env.call("POST", "/api/v1/queues/fast/tasks", data=raw)
    assert_error(status, body, 400, "INVALID_REQUEST", "not valid JSON")


async def test_add_refuses_a_body_over_32_mib_with_413(env: Env) -> None:
    raw = io.BytesIO(b" " * (wire.MAX_REQUEST_BYTES + 1))
    status, body = await env.call("POST", "/api/v1/queues/fast/tasks", data=raw)
    # refused from its Content-Length, before the body is read into memory
    assert_error(status, body, 413, "TASK_TOO_LARGE", f"at most {wire.MAX_REQUEST_BYTES} are")


async def test_add_enforces_total_storage_limit(caplog: pytest.LogCaptureFixture) -> None:
    async with running(QUEUE_YAML + "total_storage_limit: 1K\n") as env:
        status, _ = await env.add("fast", {"name": "a", "payload": "x" * 900})
        assert status == 200
        status, body = await env.add("fast", {"name": "b", "payload": "x" * 200})
        assert_error(status, body, 507, "INVALID_REQUEST", "total_storage_limit is 1024 bytes")
        assert await env.store.get("fast", "b") is None
        assert "api_internal_error" not in caplog.text  # a full queue store is not a bug
        await env.store.delete("fast", ["a"], now_us=T0)
        assert (await env.add("fast", {"name": "b", "payload": "x" * 200}))[0] == 200


async def test_queues_are_read_on_every_request(env: Env) -> None:
    assert (await env.add("later", {}))[0] == 404
    env.queues = config.load_text(QUEUE_YAML + "- name: later\n  rate: 1/s\n")
    assert (await env.add("later", {}))[0] == 200


# ------------------------------------------------------------------ queues


async def test_queues_are_listed_a_page_at_a_time_in_name_order(env: Env) -> None:
    status, body = await env.call("GET", "/api/v1/queues?limit=2")
    assert (status, [q["name"] for q in body["queues"]], body["next"]) == (
        200,
        ["default", "fast"],
        "fast",
    )
    status, body = await env.call("GET", "/api/v1/queues?limit=2&after=fast")
    assert ([q["name"] for q in body["queues"]], body["next"]) == (["work"], None)
    status, body = await env.call("GET", "/api/v1/queues?limit=0")
    assert status == 400
    assert "limit must be a whole number" in body["error"]["message"]


async def test_a_removed_queue_is_listed_as_removed_and_its_tasks_stay_manageable(
    env: Env,
) -> None:
    """Issue 16: a queue gone from queue.yaml (its tasks kept) vanished from every listing and
    answered "not configured". It is listed as removed and paused; its tasks and dead letters
    are listable, deletable and purgeable; adding, pausing and running stay refused."""
    await env.add("fast", {"tasks": [{"name": n} for n in ("a", "b", "c", "d")]})
    await kill(env, "fast", "a")
    held = await env.store.unlisted(["work"])
    env.queues = dataclasses.replace(
        config.load_text("queue:\n- name: work\n  mode: pull\n"),
        removed={n: config.removed_queue(n, pull=h.pull) for n, h in held.items()},
    )
    status, body = await env.call("GET", "/api/v1/queues")
    assert [(q["name"], q["stats"]["removed"]) for q in body["queues"]] == [
        ("default", False),
        ("fast", True),
        ("work", False),
    ]
    status, fast = await env.call("GET", "/api/v1/queues/fast")
    assert (status, fast["mode"], fast["rate"]) == (200, "push", None)
    assert (fast["stats"]["tasks"], fast["stats"]["dead_letters"]) == (3, 1)
    assert (fast["stats"]["paused"], fast["stats"]["removed"]) == (True, True)
    status, listed = await env.call("GET", "/api/v1/queues/fast/tasks?limit=1")
    assert (status, [t["name"] for t in listed["tasks"]], listed["next"]) == (200, ["b"], "b")
    assert (await env.call("GET", "/api/v1/queues/fast/tasks/c"))[0] == 200
    assert (await env.call("DELETE", "/api/v1/queues/fast/tasks/b"))[0] == 200
    status, body = await env.call("POST", "/api/v1/queues/fast/delete", json={"names": ["c"]})
    assert (status, body["tasks"]) == (200, [{"name": "c", "deleted": True}])
    status, dead = await env.call("GET", "/api/v1/queues/fast/dead")
    assert (status, [d["name"] for d in dead["tasks"]]) == (200, ["a"])
    assert (await env.call("GET", "/api/v1/queues/fast/dead/a"))[0] == 200
    assert (await env.call("DELETE", "/api/v1/queues/fast/dead/a"))[0] == 200
    assert await env.call("POST", "/api/v1/queues/fast/purge") == (
        200,
        {"queue": "fast", "purged": 1},
    )
    for method, path, kw in [
        ("POST", "/api/v1/queues/fast/tasks", {"json": {"name": "new"}}),
        ("POST", "/api/v1/queues/fast/pause", {}),
        ("POST", "/api/v1/queues/fast/resume", {}),
        ("POST", "/api/v1/queues/fast/tasks/d/run", {}),
    ]:
        status, body = await env.call(method, path, **kw)
        assert_error(status, body, 404, "UNKNOWN_QUEUE", "'fast' was removed from queue.yaml")
    status, body = await env.call("GET", "/api/v1/queues/never")
    assert_error(status, body, 404, "UNKNOWN_QUEUE", "'never' is not configured")


async def test_list_and_get_queues(env: Env) -> None:
    await env.add("fast", {"tasks": [{"name": "a", "countdown": 5}, {"name": "b"}]})
    await env.add("fast", {"name": "gone"})
    await kill(env, "fast", "b")  # "b" and "gone" are both due; the claim takes "b" first
    status, body = await env.call("GET", "/api/v1/queues")
    assert status == 200
    assert [q["name"] for q in body["queues"]] == ["default", "fast", "work"]  # name order
    assert body["next"] is None
    status, fast = await env.call("GET", "/api/v1/queues/fast")
    assert status == 200
    assert fast == body["queues"][1]
    assert fast == {
        "name": "fast",
        "mode": "push",
        "rate": "10/s",
        "rate_per_second": 10.0,
        "bucket_size": 3,
        "max_concurrent_requests": None,
        "retry_parameters": {
            "task_retry_limit": 4,
            "task_age_limit": None,
            "min_backoff_seconds": None,
            "max_backoff_seconds": None,
            "max_doublings": None,
        },
        "target": None,
        "stats": {
            "tasks": 2,
            "oldest_eta": T0 / S,
            "oldest_eta_us": T0,
            "executed_last_minute": 7,
            "in_flight": 1,
            "enforced_rate": 2.5,
            "paused": False,
            "dead_letters": 1,
            "removed": False,
        },
    }
    status, work = await env.call("GET", "/api/v1/queues/work")
    assert work["mode"] == "pull"
    assert work["rate"] is None
    assert work["stats"]["tasks"] == 0
    assert work["stats"]["oldest_eta"] is None


async def test_pause_and_resume(env: Env) -> None:
    status, body = await env.call("POST", "/api/v1/queues/fast/pause")
    assert status == 200
    assert body["name"] == "fast"
    assert body["stats"]["paused"] is True
    status, body = await env.call("POST", "/api/v1/queues/fast/resume")
    assert status == 200
    assert body["stats"]["paused"] is False
    assert env.engine.calls == [("pause", "fast"), ("resume", "fast")]


async def test_a_paused_pull_queue_reports_paused_from_the_store(env: Env) -> None:
    await env.store.set_paused("work", True)
    _, body = await env.call("GET", "/api/v1/queues/work")
    assert body["stats"]["paused"] is True


async def test_a_push_queue_with_rate_zero_reports_paused() -> None:
    async with running("queue:\n- name: stopped\n  rate: 0\n") as env:
        _, body = await env.call("GET", "/api/v1/queues/stopped")
        assert body["stats"]["paused"] is True


async def test_purge_answers_the_count_and_tombstones(env: Env) -> None:
    await env.add("fast", {"tasks": [{"name": "a"}, {"name": "b"}]})
    assert await env.call("POST", "/api/v1/queues/fast/purge") == (
        200,
        {"queue": "fast", "purged": 2},
    )
    _, body = await env.add("fast", {"name": "a"})
    assert body["tasks"][0]["result"] == "TOMBSTONED_TASK"
    assert ("forget", "fast") in env.engine.calls  # claimed tasks waiting to go are not sent


# ------------------------------------------------------------------ tasks


async def test_list_tasks_pages_by_name(env: Env) -> None:
    await env.add("fast", {"tasks": [{"name": n} for n in "ecabd"]})
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query = "limit=2" + (f"&after={cursor}" if cursor else "")
        status, body = await env.call("GET", f"/api/v1/queues/fast/tasks?{query}")
        assert status == 200
        pages.append([t["name"] for t in body["tasks"]])
        assert all("payload_base64" not in t for t in body["tasks"])
        cursor = body["next"]
        if cursor is None:
            break
    assert pages == [["a", "b"], ["c", "d"], ["e"]]
    status, body = await env.call("GET", "/api/v1/queues/fast/tasks")
    assert [t["name"] for t in body["tasks"]] == ["a", "b", "c", "d", "e"]
    assert body["next"] is None
    status, body = await env.call("GET", "/api/v1/queues/fast/tasks?limit=4")
    assert body["next"] == "d"


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "", "1.5", "99999999999"])
async def test_list_tasks_refuses_a_bad_limit(env: Env, limit: str) -> None:
    status, body = await env.call("GET", f"/api/v1/queues/fast/tasks?limit={limit}")
    assert_error(status, body, 400, "INVALID_REQUEST", "limit must be")


async def test_get_task(env: Env) -> None:
    await env.add("fast", {"name": "a", "payload": "hi"})
    status, body = await env.call("GET", "/api/v1/queues/fast/tasks/a")
    assert status == 200
    assert body["name"] == "a"
    assert base64.b64decode(body["payload_base64"]) == b"hi"
    assert body["retry_count"] == 0
    assert body["execution_count"] == 0
    assert body["last_status"] is None
    assert body["eta_us"] == T0
    status, body = await env.call("GET", "/api/v1/queues/fast/tasks/b")
    assert_error(status, body, 404, "UNKNOWN_TASK", "'b'")
    status, body = await env.call("GET", "/api/v1/queues/fast/tasks/bad.name")
    assert_error(status, body, 400, "INVALID_TASK_NAME", "bad.name")


async def test_delete_task(env: Env) -> None:
    await env.add("fast", {"name": "a"})
    assert await env.call("DELETE", "/api/v1/queues/fast/tasks/a") == (
        200,
        {"queue": "fast", "name": "a", "deleted": True},
    )
    assert await env.store.get("fast", "a") is None
    assert ("forget", "fast:a") in env.engine.calls
    status, body = await env.call("DELETE", "/api/v1/queues/fast/tasks/a")
    assert_error(status, body, 404, "UNKNOWN_TASK")


async def test_run_task_now(env: Env) -> None:
    await env.add("fast", {"name": "a", "countdown": 60})
    env.engine.notified.clear()
    env.clock.advance(S)
    status, body = await env.call("POST", "/api/v1/queues/fast/tasks/a/run")
    assert status == 200
    assert body["eta_us"] == T0 + S
    assert env.engine.notified == [("fast", T0 + S)]
    status, body = await env.call("POST", "/api/v1/queues/fast/tasks/b/run")
    assert_error(status, body, 404, "UNKNOWN_TASK")


async def test_run_pull_task_does_not_notify(env: Env) -> None:
    await env.add("work", {"name": "p", "payload": "x", "countdown": 60})
    status, _ = await env.call("POST", "/api/v1/queues/work/tasks/p/run")
    assert status == 200
    assert env.engine.notified == []


# ------------------------------------------------------------------ dead letters


async def test_dead_letters_list_get_redrive_delete(env: Env) -> None:
    for name in ("d1", "d2", "d3"):
        await env.add("fast", {"name": name, "payload": name})
        await kill(env, "fast", name, status=503)
    status, body = await env.call("GET", "/api/v1/queues/fast/dead?limit=2")
    assert status == 200
    assert [d["name"] for d in body["tasks"]] == ["d1", "d2"]
    assert body["next"] == "d2"
    first = body["tasks"][0]
    assert first["reason"] == "task_retry_limit reached"
    assert first["dead_us"] == T0 + S
    assert first["last_status"] == 503
    assert first["attempts"] == 3
    assert "payload_base64" not in first
    status, body = await env.call("GET", "/api/v1/queues/fast/dead?after=d2")
    assert [d["name"] for d in body["tasks"]] == ["d3"]
    assert body["next"] is None

    status, body = await env.call("GET", "/api/v1/queues/fast/dead/d1")
    assert status == 200
    assert base64.b64decode(body["payload_base64"]) == b"d1"

    env.clock.advance(S)
    env.engine.notified.clear()
    status, body = await env.call("POST", "/api/v1/queues/fast/dead/d1/redrive")
    assert status == 200
    assert body["name"] == "d1"
    assert body["retry_count"] == 0
    assert env.engine.notified == [("fast", T0 + S)]
    assert await env.store.get("fast", "d1") is not None
    status, body = await env.call("POST", "/api/v1/queues/fast/dead/d1/redrive")
    assert_error(status, body, 404, "UNKNOWN_TASK", "dead letter")

    assert await env.call("DELETE", "/api/v1/queues/fast/dead/d2") == (
        200,
        {"queue": "fast", "name": "d2", "deleted": True},
    )
    status, body = await env.call("DELETE", "/api/v1/queues/fast/dead/d2")
    assert_error(status, body, 404, "UNKNOWN_TASK")
    status, body = await env.call("GET", "/api/v1/queues/fast/dead/d2")
    assert_error(status, body, 404, "UNKNOWN_TASK")


async def test_redrive_onto_a_live_name_is_409() -> None:
    class Stubborn(memory.MemoryStore):
        async def redrive(self, queue: str, name: str, *, now_us: int) -> models.Task | None:
            return None

    async with running(store=Stubborn()) as env:
        await env.add("fast", {"name": "d"})
        await kill(env, "fast", "d")
        status, body = await env.call("POST", "/api/v1/queues/fast/dead/d/redrive")
        assert_error(status, body, 409, "TASK_ALREADY_EXISTS")


# ------------------------------------------------------------------ auth


@pytest.fixture
async def secured() -> AsyncIterator[Env]:
    async with running(tokens=TOKENS) as started:
        yield started


async def test_auth_healthz_is_open(secured: Env) -> None:
    assert await secured.call("GET", "/healthz") == (200, {"status": "ok"})


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer nope", f"Basic {ADMIN}", f"Bearer {ADMIN}x"]
)
async def test_auth_without_a_known_token_is_401(secured: Env, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [("GET", "/api/v1/queues"), ("POST", "/api/v1/queues/fast/tasks")]:
        async with secured.client.request(method, path, headers=headers, json={}) as response:
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="pushd"'
            assert_error(response.status, await response.json(), 401, "PERMISSION_DENIED")
    assert await secured.store.list_tasks("fast") == []


async def test_auth_unknown_routes_need_a_token_first(secured: Env) -> None:
    assert (await secured.call("GET", "/nope"))[0] == 401
    assert (await secured.call("GET", "/nope", token=ADMIN))[0] == 404


ALL_ROUTES = [
    ("POST", "/api/v1/queues/fast/tasks", "add"),
    ("GET", "/api/v1/queues/fast/tasks", "read"),
    ("GET", "/api/v1/queues/fast/tasks/t", "read"),
    ("DELETE", "/api/v1/queues/fast/tasks/t", "delete"),
    ("POST", "/api/v1/queues/fast/tasks/t/run", "admin"),
    ("POST", "/api/v1/queues/fast/delete", "delete"),
    ("POST", "/api/v1/queues/fast/lease", "lease"),
    ("POST", "/api/v1/queues/fast/tasks/t/lease", "lease"),
    ("GET", "/api/v1/queues", "stats"),
    ("GET", "/api/v1/queues/fast", "stats"),
    ("POST", "/api/v1/queues/fast/pause", "admin"),
    ("POST", "/api/v1/queues/fast/resume", "admin"),
    ("POST", "/api/v1/queues/fast/purge", "admin"),
    ("GET", "/api/v1/queues/fast/dead", "admin"),
    ("GET", "/api/v1/queues/fast/dead/t", "admin"),
    ("POST", "/api/v1/queues/fast/dead/t/redrive", "admin"),
    ("DELETE", "/api/v1/queues/fast/dead/t", "admin"),
]
ALLOWED = {
    ADMIN: {"add", "read", "delete", "admin", "lease", "stats"},
    PRODUCER: {"add", "stats"},
    CONSUMER: {"read", "delete", "lease", "stats"},
}


@pytest.mark.parametrize("token", [ADMIN, PRODUCER, CONSUMER])
async def test_auth_roles(secured: Env, token: str) -> None:
    for method, path, kind in ALL_ROUTES:
        await secured.add("fast", {"name": "t"}, token=ADMIN)  # so reads and deletes find it
        status, body = await secured.call(method, path, token=token, json={})
        if kind in ALLOWED[token]:
            assert status not in (401, 403), (method, path, body)
        else:
            assert_error(status, body, 403, "PERMISSION_DENIED", "may not")


async def test_auth_lowercase_bearer_scheme_is_accepted(secured: Env) -> None:
    async with secured.client.get(
        "/api/v1/queues/fast/tasks", headers={"Authorization": f"bearer {CONSUMER}"}
    ) as response:
        assert response.status == 200


# ------------------------------------------------------------------ fuzz


def _json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**64 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=8,
    )


def _task_objects() -> st.SearchStrategy[dict[str, Any]]:
    anything = _json_values()
    numbers = st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats(
        allow_nan=False, allow_infinity=False
    )
    fields: dict[str, st.SearchStrategy[Any]] = {
        "name": st.from_regex(r"[a-zA-Z0-9_-]{1,12}", fullmatch=True) | anything,
        "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PULL", "post", "X"])
        | anything,
        "url": st.sampled_from(["/x", "/x?a=1", "http://h/x", "", "x", "/#f", "/ x"]) | anything,
        "headers": st.dictionaries(
            st.text(max_size=8), st.text(max_size=8) | st.lists(st.text(max_size=4), max_size=2)
        )
        | anything,
        "payload": st.text(max_size=20) | anything,
        "payload_base64": st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode())
        | anything,
        "params": st.dictionaries(st.text(max_size=5), st.text(max_size=5) | numbers) | anything,
        "countdown": numbers | anything,
        "eta": numbers
        | st.datetimes().map(lambda d: d.isoformat())
        | st.from_regex(
            r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,12}[Z+-]?[0-9:]{0,5}", fullmatch=True
        )
        | anything,
        "retry_options": st.dictionaries(
            st.sampled_from([*wire.RETRY_FIELDS, "bogus"]),
            numbers | st.from_regex(r"-?[0-9.]{1,5}[smhdw]?", fullmatch=True) | anything,
        )
        | anything,
        "dispatch_deadline": numbers | anything,
        "target": st.text(max_size=8) | anything,
        "tag": st.text(max_size=8) | anything,
        "namespace": st.text(max_size=8) | anything,
    }
    return st.fixed_dictionaries({}, optional=fields)


def _plausible_task_objects() -> st.SearchStrategy[dict[str, Any]]:
    """Tasks a producer might really send: right types, values near the limits."""
    small = st.text(st.characters(codec="utf-8"), max_size=10)
    fields: dict[str, st.SearchStrategy[Any]] = {
        "name": st.from_regex(r"[a-z]{1,3}", fullmatch=True),
        "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PULL"]),
        "url": st.sampled_from(["/x", "/x?a=1", "/a/b%20c"]),
        "headers": st.dictionaries(st.sampled_from(["X-A", "Content-Type", "Host"]), small),
        "payload": small,
        "params": st.dictionaries(
            small, small | st.integers(-(2**63), 2**63) | st.lists(small, max_size=2)
        ),
        "countdown": st.floats(-1e6, 4e6),
        "eta": st.floats(0, 2e9),
        "retry_options": st.fixed_dictionaries(
            {},
            optional={
                "task_retry_limit": st.integers(-1, 10),
                "task_age_limit": st.integers(0, 10) | st.sampled_from(["2d", "1.5h", "90s"]),
                "min_backoff_seconds": st.floats(0, 10),
                "max_backoff_seconds": st.floats(0, 100),
                "max_doublings": st.integers(0, 20),
            },
        ),
        "dispatch_deadline": st.floats(0, 1e5),
        "target": st.sampled_from(["worker", "v1.worker"]),
        "tag": small,
    }
    return st.fixed_dictionaries({}, optional=fields)


def _bodies() -> st.SearchStrategy[bytes]:
    task_objects = _task_objects() | _plausible_task_objects()
    tasks_json = task_objects | st.fixed_dictionaries(
        {"tasks": st.lists(task_objects, min_size=1, max_size=4)}
    )
    return (
        (tasks_json | _json_values()).map(wire.dumps)
        | st.binary(max_size=64)
        | st.sampled_from([b"", b"{", b"\x00", b"[]", b"null", b'{"tasks": null}'])
    )


def _check_answer(status: int, body: Any) -> None:
    assert status != 500, body
    hypothesis.event(f"{status} {body['error']['status'] if status != 200 else 'OK'}")
    if status == 200:
        assert isinstance(body["tasks"], list)
        assert all(
            r["result"] in {"OK", "TASK_ALREADY_EXISTS", "TOMBSTONED_TASK"} for r in body["tasks"]
        )
        return
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "status", "message", "exception"}
    assert getattr(errors, body["error"]["exception"]).code.name == body["error"]["status"]
    assert body["error"]["code"] == status
    assert body["error"]["status"] in errors.ErrorCode.__members__
    assert isinstance(body["error"]["message"], str)


Run = Callable[[Coroutine[Any, Any, tuple[int, Any]]], tuple[int, Any]]


def _run_fuzz(example: Callable[[Env, Run], None]) -> None:
    """Run a hypothesis-driven check against one server, on an event loop of the test's own.

    Hypothesis drives synchronous functions, so each example runs its requests to completion
    on this loop; the server lives across all examples.
    """
    with asyncio.Runner() as runner:
        manager = running()
        started = runner.run(manager.__aenter__())
        try:
            example(started, runner.run)
        finally:
            runner.run(manager.__aexit__(None, None, None))


def test_add_route_never_answers_500_whatever_the_body() -> None:
    """Random JSON, task-shaped objects and garbage bytes: always a JSON answer, never a 500."""

    def check_all(env: Env, run: Run) -> None:
        @hypothesis_settings(
            max_examples=300, deadline=None, suppress_health_check=list(HealthCheck)
        )
        @given(queue=st.sampled_from(["fast", "work"]), raw=_bodies())
        def check(queue: str, raw: bytes) -> None:
            status, body = run(env.call("POST", f"/api/v1/queues/{queue}/tasks", data=raw))
            _check_answer(status, body)

        check()

    _run_fuzz(check_all)


def test_path_and_query_input_never_answers_500() -> None:
    """Random task names, queue names and page parameters on the read routes."""

    def check_all(env: Env, run: Run) -> None:
        @hypothesis_settings(
            max_examples=200, deadline=None, suppress_health_check=list(HealthCheck)
        )
        @given(
            queue=st.sampled_from(["fast", "work"]) | st.text(min_size=1, max_size=8),
            name=st.text(min_size=1, max_size=12),
            limit=st.text(max_size=6),
            after=st.text(max_size=6),
            route=st.sampled_from(["tasks", "dead"]),
        )
        def check(queue: str, name: str, limit: str, after: str, route: str) -> None:
            q = urllib.parse.quote(queue, safe="")
            n = urllib.parse.quote(name, safe="")
            query = urllib.parse.urlencode({"limit": limit, "after": after})
            for method, path in [
                ("GET", f"/api/v1/queues/{q}/{route}?{query}"),
                ("GET", f"/api/v1/queues/{q}/{route}/{n}"),
                ("DELETE", f"/api/v1/queues/{q}/{route}/{n}"),
            ]:
                status, body = run(env.call(method, path))
                assert status != 500, body
                if status >= 400:
                    assert body["error"]["code"] == status

        check()

    _run_fuzz(check_all)


class BrokenStore(memory.MemoryStore):
    """A store whose file is damaged: every add fails, and it says so."""

    problem: str | None = None

    async def add(self, tasks: Any, *, now_us: int) -> Any:
        self.problem = "the database file is damaged (database disk image is malformed)"
        raise errors.StoreUnavailableError(self.problem)


async def test_an_unavailable_store_answers_503_and_healthz_names_the_cause(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pushd.store import health

    monkeypatch.setattr(health, "_reporter", health._Reporter())  # nothing logged before
    async with running(store=BrokenStore()) as env:
        assert await env.call("GET", "/healthz") == (200, {"status": "ok"})
        for _ in range(3):
            status, body = await env.add("fast", {"name": "a"})
            assert_error(status, body, 503, "TRANSIENT_ERROR", "database file is damaged")
        status, body = await env.call("GET", "/healthz")
        assert status == 503
        assert body == {"status": "unavailable", "error": env.store.problem}  # type: ignore[attr-defined]
    assert "api_internal_error" not in caplog.text  # no traceback: the store said what it was
    assert caplog.text.count("store_unavailable") == 1  # the same cause again is folded in
