"""Issue 19's "Done when" scenario: Google's official ``google-cloud-tasks`` client, unchanged,
against real daemons delivering to a real receiver on 127.0.0.1, once per store:

* ``sqlite``: one daemon on a SQLite file, called over gRPC (side A) and REST (side B), then
  stopped and started again on the same file;
* ``postgres``: two daemons on one PostgreSQL database, side A over gRPC to the first and side
  B over REST to the second, so every step writes through one daemon and checks through the
  other; then the first stops and the second carries on alone.

The steps: CreateQueue, and a task delivered from that queue; ListQueues paged; a schedule time honoured (never early, late only within a
generous bound: speed figures belong to the ETA benchmark); retries answered 503, 404, 200
with App Engine's headers per attempt (CLOUDTASKS.md 1.5); dedup and the tombstone answers;
pause, ListTasks paged, run on a paused queue, purge, resume, run; an ``http_request`` task to
the receiver (allowed by ``http_targets``) answered 503, 404, 200 with the X-CloudTasks-* headers
per attempt and an ``oidc_token`` that google-auth verifies against /oauth2/v1/certs (on
PostgreSQL against each daemon's: they share one key); persistence (a restart, or the other
daemon), with a paused queue kept paused; every task that succeeded was delivered exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.auth.transport import requests as google_requests
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.oauth2 import id_token

from tests.conftest import fresh_database
from tests.integration.test_cloudtasks_http import check_http_attempts

if TYPE_CHECKING:
    from pathlib import Path

    from aiohttp import web

    from tests.integration.conftest import StartDaemon
    from tests.integration.harness import Daemon, Delivery, Receiver

QUEUE_YAML = """
queue:
- name: ct-sched
  rate: 50/s
- name: ct-retry
  rate: 50/s
  retry_parameters:
    task_retry_limit: 4
    min_backoff_seconds: 0.1
    max_backoff_seconds: 0.2
- name: ct-hold
  rate: 50/s
- name: ct-durable
  rate: 50/s
"""
#: Every queue ListQueues shows: queue.yaml's, its implicit default, and one created through the API.
QUEUE_IDS = ["ct-api", "ct-durable", "ct-hold", "ct-retry", "ct-sched", "default"]
PARENT = "projects/scenario/locations/us-central1"
GRPC = re.compile(r"\bgrpc=(\S+)")
HOUR_S = 3600
LATE_BOUND_S = 5.0  # generous: a busy 2-core machine; the ETA benchmark measures the real figure
EARLY_SLACK_S = 0.001  # the receiver's wall time is derived from its monotonic clock
POLL_S = 10.0
EXISTED_RECENTLY = "existed recently"
NOT_FOUND = re.escape("Requested entity was not found.")
ALREADY_EXISTS = "Requested entity already exists"
APP_ENGINE_UA = "AppEngine-Google; (+http://code.google.com/appengine)"
HTTP_PATH = "/ct-http/hook"  # under http_targets (the receiver's /ct-http/ only)
SERVICE_ACCOUNT = "tasks@scenario.iam.gserviceaccount.com"


def queue(queue_id: str) -> str:
    return f"{PARENT}/queues/{queue_id}"


def task_name(queue_id: str, task_id: str) -> str:
    return f"{queue(queue_id)}/tasks/{task_id}"


def retry_reason(previous_status: int) -> str:
    """``X-AppEngine-TaskRetryReason`` after an attempt answered ``previous_status``: Google's
    "App Error" whatever the status (CLOUDTASKS.md 1.5, recorded from production)."""
    return "App Error"


@dataclass
class Side:
    """One official client pointed at one daemon; blocking calls run off the receiver's loop."""

    client: tasks_v2.CloudTasksClient

    async def __call__(self, method: str, **kw: Any) -> Any:
        return await asyncio.to_thread(getattr(self.client, method), **kw)

    async def pages(self, method: str, field: str, **request: Any) -> list[list[str]]:
        """Every page of a List call (``field`` holds a page's items), as the last segment of
        each name."""

        def run() -> list[list[str]]:
            pager = getattr(self.client, method)(request=request)
            return [[x.name.rpartition("/")[2] for x in getattr(p, field)] for p in pager.pages]

        return await asyncio.to_thread(run)

    async def refused(self, error: type[Exception], match: str, method: str, **kw: Any) -> None:
        """The call fails with ``error`` whose message matches ``match``."""
        with pytest.raises(error, match=match):
            await self(method, **kw)

    def close(self) -> None:
        self.client.transport.close()


def grpc_side(daemon: Daemon) -> Side:
    [line] = daemon.events("listening")
    address = GRPC.search(line)
    assert address, line
    channel = grpc.insecure_channel(address.group(1))
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    return Side(client)


def rest_side(daemon: Daemon) -> Side:
    client = tasks_v2.CloudTasksClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=daemon.url),
    )
    return Side(client)


@dataclass
class Script:
    """The receiver's answers: the statuses listed for a path, in order, then 200."""

    plan: dict[str, list[int]]

    def __call__(self, request: web.Request, index: int) -> int:
        statuses = self.plan.get(request.path)
        return statuses.pop(0) if statuses else 200


@dataclass
class Cluster:
    """The daemons of one param, and the two sides calling them."""

    daemons: list[Daemon]
    start: Callable[[], Awaitable[Daemon]]
    a: Side = field(init=False)
    b: Side = field(init=False)

    def __post_init__(self) -> None:
        self.connect()

    def connect(self) -> None:
        """Side A over gRPC to the first daemon, side B over REST to the last."""
        self.a, self.b = grpc_side(self.daemons[0]), rest_side(self.daemons[-1])

    def close(self) -> None:
        self.a.close()
        self.b.close()


async def eventually_gone(side: Side, name: str) -> None:
    """GetTask answers the tombstone's NOT_FOUND: the receiver sees the last answer a moment
    before the daemon records it, and nothing signals that commit (bounded poll)."""
    deadline = time.monotonic() + POLL_S
    while True:
        try:
            await side("get_task", name=name)
        except exceptions.NotFound:
            break
        assert time.monotonic() < deadline, f"{name} still live after {POLL_S}s"
        await asyncio.sleep(0.05)
    await side.refused(exceptions.NotFound, EXISTED_RECENTLY, "get_task", name=name)


def on(path: str) -> Callable[[list[Delivery]], bool]:
    return lambda deliveries: any(d.path == path and d.status == 200 for d in deliveries)


async def step_api_queue(c: Cluster, receiver: Receiver) -> None:
    """CreateQueue through A: B knows the queue (on PostgreSQL once NOTIFY reaches it: a
    bounded poll) and a task created through B is delivered from it."""
    created = await c.a(
        "create_queue",
        parent=PARENT,
        queue={
            "name": queue("ct-api"),
            "rate_limits": {"max_dispatches_per_second": 20},
            "retry_config": {"max_attempts": 3},
        },
    )
    assert created.state == tasks_v2.Queue.State.RUNNING
    deadline = time.monotonic() + POLL_S
    while True:
        try:
            seen = await c.b("get_queue", name=queue("ct-api"))
            break
        except exceptions.NotFound:
            assert time.monotonic() < deadline, f"B never saw ct-api within {POLL_S}s"
            await asyncio.sleep(0.05)
    assert seen.rate_limits.max_dispatches_per_second == 20
    assert seen.retry_config.max_attempts == 3
    task = {
        "name": task_name("ct-api", "made"),
        "app_engine_http_request": {"relative_uri": "/api"},
    }
    await c.b("create_task", parent=queue("ct-api"), task=task)
    await receiver.wait_until(on("/api"), timeout_s=30)


async def step_list_queues(c: Cluster) -> None:
    pages = await c.a.pages("list_queues", "queues", parent=PARENT, page_size=2)
    assert pages == [QUEUE_IDS[0:2], QUEUE_IDS[2:4], QUEUE_IDS[4:]], pages
    got = await c.b("get_queue", name=queue("ct-retry"))
    assert got.retry_config.max_attempts == 5  # task_retry_limit 4 + the first attempt
    assert got.state == tasks_v2.Queue.State.RUNNING


async def step_schedule(c: Cluster) -> int:
    """Create a task 1-2 s ahead on A and see it on B before it is due; its schedule time."""
    eta_s = math.ceil(time.time()) + 2
    name = task_name("ct-sched", "at-eta")
    await c.a(
        "create_task",
        parent=queue("ct-sched"),
        task={
            "name": name,
            "app_engine_http_request": {"relative_uri": "/sched", "body": b"on time"},
            "schedule_time": {"seconds": eta_s},
        },
    )
    seen = await c.b("get_task", request={"name": name, "response_view": tasks_v2.Task.View.FULL})
    assert seen.schedule_time.timestamp() == eta_s
    assert seen.app_engine_http_request.body == b"on time"
    return eta_s


def check_on_time(delivery: Delivery, eta_s: int, wall_offset: float) -> None:
    """Delivered at its schedule time: never early, late only within a generous bound."""
    arrived = delivery.started_at + wall_offset
    assert arrived >= eta_s - EARLY_SLACK_S, f"{eta_s - arrived:.6f} s early"
    assert arrived - eta_s < LATE_BOUND_S, f"{arrived - eta_s:.3f} s late"
    assert delivery.headers["X-AppEngine-TaskETA"] == f"{eta_s:.6f}"
    assert delivery.body == b"on time"


def check_retries(attempts: list[Delivery]) -> None:
    """503, 404, 200: App Engine's headers per attempt, as the real service sends them."""
    assert [d.status for d in attempts] == [503, 404, 200]
    headers = [d.headers for d in attempts]
    assert [h["X-AppEngine-TaskRetryCount"] for h in headers] == ["0", "1", "2"]
    assert [h["X-AppEngine-TaskExecutionCount"] for h in headers] == ["0", "1", "2"]
    assert [h.get("X-AppEngine-TaskPreviousResponse") for h in headers] == [None, "503", "404"]
    assert [h.get("X-AppEngine-TaskRetryReason") for h in headers] == [
        None,
        retry_reason(503),
        retry_reason(404),
    ]
    assert all(h["X-AppEngine-QueueName"] == "ct-retry" for h in headers)
    assert all(h["X-AppEngine-TaskName"] == "thrice" for h in headers)
    assert all(h["User-Agent"].startswith(APP_ENGINE_UA) for h in headers)


async def check_schedule(c: Cluster, receiver: Receiver, eta_s: int, wall_offset: float) -> None:
    deliveries = await receiver.wait_until(on("/sched"), timeout_s=eta_s - time.time() + 30)
    [hit] = [d for d in deliveries if d.path == "/sched"]
    check_on_time(hit, eta_s, wall_offset)
    await eventually_gone(c.a, task_name("ct-sched", "at-eta"))


async def step_retries(c: Cluster, receiver: Receiver) -> None:
    """Created through B, retried by whichever daemon holds the queue, gone through A."""
    name = task_name("ct-retry", "thrice")
    task = {"name": name, "app_engine_http_request": {"relative_uri": "/retry"}}
    await c.b("create_task", parent=queue("ct-retry"), task=task)
    deliveries = await receiver.wait_until(on("/retry"), timeout_s=30)
    check_retries([d for d in deliveries if d.path == "/retry"])
    await eventually_gone(c.a, name)
    await c.b.refused(
        exceptions.Conflict, ALREADY_EXISTS, "create_task", parent=queue("ct-retry"), task=task
    )


async def step_dedup(c: Cluster) -> None:
    """A name is taken while live and while tombstoned; each answer as Google words it."""
    name = task_name("ct-hold", "dup")
    task = {"name": name, "app_engine_http_request": {"relative_uri": "/hold/dup"}}
    await c.a("create_task", parent=queue("ct-hold"), task=task)
    await c.b.refused(
        exceptions.Conflict, ALREADY_EXISTS, "create_task", parent=queue("ct-hold"), task=task
    )
    await c.b("delete_task", name=name)
    await c.a.refused(exceptions.NotFound, EXISTED_RECENTLY, "get_task", name=name)
    await c.b.refused(exceptions.NotFound, EXISTED_RECENTLY, "delete_task", name=name)
    await c.a.refused(
        exceptions.Conflict, ALREADY_EXISTS, "create_task", parent=queue("ct-hold"), task=task
    )
    never = task_name("ct-hold", "never-used")
    await c.b.refused(exceptions.NotFound, NOT_FOUND, "get_task", name=never)
    await c.a.refused(exceptions.NotFound, NOT_FOUND, "run_task", name=never)


async def step_hold(c: Cluster, receiver: Receiver) -> None:
    """Pause, ListTasks in pages, RunTask on a paused queue (held), purge, resume, run."""
    paused = await c.a("pause_queue", name=queue("ct-hold"))
    assert paused.state == tasks_v2.Queue.State.PAUSED
    assert (await c.b("get_queue", name=queue("ct-hold"))).state == tasks_v2.Queue.State.PAUSED
    await step_dedup(c)
    later = {"seconds": int(time.time()) + HOUR_S}
    for i in range(5):
        task = {
            "name": task_name("ct-hold", f"h{i}"),
            "app_engine_http_request": {"relative_uri": f"/hold/h{i}"},
            **({"schedule_time": later} if i == 4 else {}),
        }
        await c.b("create_task", parent=queue("ct-hold"), task=task)
    pages = await c.a.pages("list_tasks", "tasks", parent=queue("ct-hold"), page_size=2)
    assert pages == [["h0", "h1"], ["h2", "h3"], ["h4"]]
    ran = await c.b("run_task", name=task_name("ct-hold", "h4"))
    assert ran.name == task_name("ct-hold", "h4")
    purged = await c.a("purge_queue", name=queue("ct-hold"))
    assert purged.purge_time.timestamp() > 0
    assert await c.b.pages("list_tasks", "tasks", parent=queue("ct-hold"), page_size=2) == [[]]
    after = task_name("ct-hold", "after-purge")
    await c.b(
        "create_task",
        parent=queue("ct-hold"),
        task={
            "name": after,
            "app_engine_http_request": {"relative_uri": "/hold/after-purge"},
            "schedule_time": later,
        },
    )
    resumed = await c.b("resume_queue", name=queue("ct-hold"))
    assert resumed.state == tasks_v2.Queue.State.RUNNING
    assert (await c.a("get_queue", name=queue("ct-hold"))).state == tasks_v2.Queue.State.RUNNING
    await c.a("run_task", name=after)
    await receiver.wait_until(on("/hold/after-purge"), timeout_s=30)
    await eventually_gone(c.b, after)


async def step_durable(c: Cluster, receiver: Receiver) -> None:
    """A task stored through A outlives A: the same daemon restarted on its SQLite file, or,
    on PostgreSQL, the other daemon, which takes the queue over."""
    name = task_name("ct-durable", "kept")
    eta_s = int(time.time()) + HOUR_S
    task = {
        "name": name,
        "app_engine_http_request": {"relative_uri": "/durable", "body": b"durable"},
        "schedule_time": {"seconds": eta_s, "nanos": 250_000_000},
    }
    await c.a("create_task", parent=queue("ct-durable"), task=task)
    paused = await c.a("pause_queue", name=queue("default"))  # a queue's state is kept too
    c.close()
    first = c.daemons.pop(0)
    assert await first.stop() == 0
    if not c.daemons:  # SQLite: start again on the same file
        c.daemons.append(await c.start())
    c.connect()
    assert (await c.a("get_queue", name=paused.name)).state == tasks_v2.Queue.State.PAUSED
    await c.a("resume_queue", name=paused.name)
    made = await c.b("get_queue", name=queue("ct-api"))  # API-created queues are stored too
    assert made.rate_limits.max_dispatches_per_second == 20
    again = await c.b("get_task", request={"name": name, "response_view": tasks_v2.Task.View.FULL})
    assert again.schedule_time.timestamp() == eta_s + 0.25
    assert again.app_engine_http_request.body == b"durable"
    await c.a.refused(
        exceptions.Conflict, ALREADY_EXISTS, "create_task", parent=queue("ct-durable"), task=task
    )
    await c.b("run_task", name=name)
    await receiver.wait_until(on("/durable"), timeout_s=30)
    await eventually_gone(c.a, name)


def verify_oidc(token: str, audience: str, certs_url: str) -> dict[str, Any]:
    claims: dict[str, Any] = id_token.verify_token(
        token, google_requests.Request(), audience=audience, certs_url=certs_url
    )
    return claims


async def step_http(c: Cluster, receiver: Receiver) -> None:
    """An ``http_request`` task created through B with an ``oidc_token``: three attempts with
    the real service's X-CloudTasks-* headers, each carrying an ID token that Google's
    verifier accepts against every daemon's /oauth2/v1/certs (the key is the store's, so on
    PostgreSQL a token minted by one daemon verifies against the other's certs)."""
    name = task_name("ct-retry", "http-thrice")
    url = receiver.url + HTTP_PATH
    task = {
        "name": name,
        "http_request": {
            "url": url,
            "headers": {"X-Scenario": "kept"},
            "oidc_token": {"service_account_email": SERVICE_ACCOUNT},
        },
    }
    created = await c.b("create_task", parent=queue("ct-retry"), task=task)
    assert created.http_request.oidc_token.service_account_email == SERVICE_ACCOUNT
    assert dict(created.http_request.headers) == {
        "X-Scenario": "kept",
        "User-Agent": "Google-Cloud-Tasks",
    }
    deliveries = await receiver.wait_until(on(HTTP_PATH), timeout_s=30)
    attempts = [d for d in deliveries if d.path == HTTP_PATH]
    check_http_attempts(attempts, queue="ct-retry", task="http-thrice")
    for attempt in attempts:
        assert attempt.headers["X-Scenario"] == "kept"
        scheme, _, token = attempt.headers["Authorization"].partition(" ")
        assert scheme == "Bearer"
        for daemon in c.daemons:
            certs = daemon.url + "/oauth2/v1/certs"
            claims = await asyncio.to_thread(verify_oidc, token, url, certs)
            assert (claims["email"], claims["aud"]) == (SERVICE_ACCOUNT, url)
    await eventually_gone(c.a, name)


def check_exactly_once(receiver: Receiver) -> None:
    """Each task that succeeded got one 200, and no purged or deleted task went out."""
    succeeded = collections.Counter(
        (
            d.headers.get("X-AppEngine-QueueName") or d.headers["X-CloudTasks-QueueName"],
            d.headers.get("X-AppEngine-TaskName") or d.headers["X-CloudTasks-TaskName"],
        )
        for d in receiver.deliveries
        if d.status == 200
    )
    assert succeeded == {
        ("ct-api", "made"): 1,
        ("ct-sched", "at-eta"): 1,
        ("ct-retry", "thrice"): 1,
        ("ct-retry", "http-thrice"): 1,
        ("ct-hold", "after-purge"): 1,
        ("ct-durable", "kept"): 1,
    }
    assert len(receiver.deliveries) == len(succeeded) + 4  # and the four failed attempts


async def start_cluster(
    store: str, start_daemon: StartDaemon, request: pytest.FixtureRequest, receiver: Receiver
) -> Cluster:
    """One daemon on SQLite, or two on a fresh PostgreSQL database (the fixture stops them);
    HTTP tasks may go to the receiver's /ct-http/ only."""
    db_url = (
        await fresh_database(request.getfixturevalue("pg_server")) if store == "postgres" else None
    )
    tmp_path: Path = request.getfixturevalue("tmp_path")
    settings = tmp_path / "scenario-pushd.yaml"
    settings.write_text(f"http_targets:\n- '{receiver.url}/ct-http/'\n")
    args = ["--grpc-port", "0", "--settings", str(settings)]

    def start() -> Awaitable[Daemon]:
        return start_daemon(QUEUE_YAML, extra_args=args, db_url=db_url)

    daemons = [await start() for _ in range(2 if db_url else 1)]
    return Cluster(daemons, start)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_official_client_scenario(
    store: str, start_daemon: StartDaemon, receiver: Receiver, request: pytest.FixtureRequest
) -> None:
    receiver.respond = Script({"/retry": [503, 404], HTTP_PATH: [503, 404]})
    wall_offset = time.time() - time.monotonic()
    c = await start_cluster(store, start_daemon, request, receiver)
    try:
        await step_api_queue(c, receiver)
        await step_list_queues(c)
        eta_s = await step_schedule(c)
        await step_retries(c, receiver)
        await step_http(c, receiver)
        await step_hold(c, receiver)
        await check_schedule(c, receiver, eta_s, wall_offset)
        await step_durable(c, receiver)
        check_exactly_once(receiver)
    finally:
        c.close()
