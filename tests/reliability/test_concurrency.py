"""Campaign 5: concurrency. Many clients add the same named tasks and lease the same tasks at once.

Against a real daemon (``pushd serve`` subprocess, SQLite file, receiver on 127.0.0.1):

* **Named adds**: 50 clients (separate sessions, one connection each) add the same names at the
  same moment (a barrier per block of 100 names), each in its own order and shape: single adds
  and batches of up to 100, through the native API, ``/rpc_http`` (BulkAdd and Add) and, for the
  pull queue, REST v1beta2 ``tasks.insert``. For every name exactly one add answers OK and every
  other TASK_ALREADY_EXISTS (or TOMBSTONED_TASK once the task ran or was deleted, and only
  then); the store holds each name once; a push queue delivers each name exactly once.
* **Leases**: 16 to 32 workers lease the same pull queue through the native API, v1beta2 and
  ``QueryAndOwnTasks``, with and without ``group_by_tag``/``tag``. With a lease that cannot
  expire during the test no task goes to two workers. With 1 s leases and workers that never
  delete, a task comes back only after its lease's expiry (by the daemon's ETAs and by the
  clients' clocks), its ETA and ``retry_count`` going up by one lease at a time, until the
  queue's ``task_retry_limit`` deletes it.
* **Races**: workers lease, renew (some just around their lease's expiry), release and delete
  the tasks that deleters delete and a runner makes due now ("run", which must refuse a leased
  task) at the same time: no 5xx, no two workers holding one task at once (each worker's lease,
  extended by its renewals, ends before the next one starts), no lease, renewal or run granted
  on a call sent after a delete of the task was acknowledged, exactly one delete wins per task.

A push queue is paused during the first round of adds, then resumed; during the second it is
paused and resumed again and again while tasks are claimed ahead of its
``max_concurrent_requests`` slots (claims given back unsent must not be sent twice).

Each test records figures in a summary printed at the end of the module (and written as JSON to
``$PUSHD_CHAOS_REPORT_CONCURRENCY`` when set). ``PUSHD_CHAOS=full`` runs more clients, names and
rounds; ``PUSHD_CHAOS_SEED`` fixes the clients' random choices (the interleavings stay the
scheduler's).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import itertools
import json
import os
import random
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from google.protobuf import message as pb_message

from pushd.proto import remote_api_pb2 as remote
from pushd.proto import taskqueue_service_pb2 as pb
from tests.integration.harness import Daemon, Receiver
from tests.reliability.conftest import FULL, scale

SEED = int(os.environ.get("PUSHD_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
REPORT_ENV = "PUSHD_CHAOS_REPORT_CONCURRENCY"

ADD_CLIENTS = scale(50, 100)
PUSH_NAMES = scale(100, 1000)  # per phase (paused, then live)
PULL_NAMES = scale(200, 1000)
BLOCK = 100  # names the clients race on at once (one barrier per block)
LEASE_TASKS = scale(1000, 10000)
LEASE_WORKERS = scale(16, 32)
EXPIRY_TASKS = scale(60, 300)
EXPIRY_WORKERS = scale(16, 32)
EXPIRY_LEASES = scale(3, 5)  # the queue's task_retry_limit: leases per task before it is deleted
RACE_TASKS = scale(300, 1000)
RACE_ROUNDS = scale(1, 4)
RACE_LEASERS = scale(12, 24)
RACE_DELETERS = scale(4, 8)
RACE_RUNNERS = scale(1, 2)
RUN_EVERY_S = 0.005
RACE_ROUND_S = scale(4, 8)  # how long the deleters take to delete every task of a round
LONG_LEASE_S = 600  # cannot expire during a test
POLL_S = 0.05  # how often an idle pull worker (or a monitor) asks again: pull queues are polled
CLOCK_SLACK_US = 2_000  # the daemon's and the clients' clocks are the same wall clock
TAGS = ("red", "green", None)
#: The receiver answers after this: with max_concurrent_requests, tasks are claimed ahead and
#: wait for a slot, so pausing the queue gives claims back unsent.
RECEIVER_DELAY_S = 0.005

QUEUE_YAML = f"""
queue:
- name: push-race
  rate: 2000/s
  bucket_size: 500
  max_concurrent_requests: 16
- name: pull-race
  mode: pull
- name: pull-lease
  mode: pull
- name: pull-expiry
  mode: pull
  retry_parameters:
    task_retry_limit: {EXPIRY_LEASES}
- name: pull-delete
  mode: pull
"""
V1 = "/taskqueue/v1beta2/projects/s~concurrency/taskqueues"
E = pb.TaskQueueServiceError.ErrorCode
SERVER_FAULT_CODES = {E.INTERNAL_ERROR, E.TRANSIENT_ERROR}
M = TypeVar("M", bound=pb_message.Message)


def wall_us() -> int:
    """The wall clock in µs: the daemon's clock (``SystemClock``) on the same machine."""
    return time.time_ns() // 1000


def code_name(code: int) -> str:
    return pb.TaskQueueServiceError.ErrorCode.Name(code)


# ------------------------------------------------------------------ summary


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Figures of every test of the module, printed (and written as JSON) at its end."""
    figures: dict[str, Any] = {"seed": SEED, "full": FULL}
    yield figures
    totals = collections.Counter[str]()
    for section in figures.values():
        if isinstance(section, dict):
            totals.update({k: v for k, v in section.items() if isinstance(v, int)})
    figures["totals"] = {
        "clients": max(
            (sec.get("clients", 0) for sec in figures.values() if isinstance(sec, dict)), default=0
        ),
        **{
            key: totals[key]
            for key in (
                "names",
                "adds",
                "winners",
                "duplicates",
                "leases",
                "granted",
                "double_leases",
                "leased_after_delete",
                "delivered_twice",
                "server_errors",
            )
        },
    }
    lines = [f"concurrency campaign (seed {SEED}, {'full' if FULL else 'short'}):"]
    for name, section in figures.items():
        if isinstance(section, dict):
            shown = ", ".join(f"{k}={v}" for k, v in section.items())
            lines.append(f"  {name}: {shown}")
    text = "\n".join(lines)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print("\n" + text)
    else:
        print(text)
    if target := os.environ.get(REPORT_ENV):
        Path(target).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------------ clients


@dataclasses.dataclass
class Faults:
    """What no client should ever see: 5xx (and their RPC equivalents), and other surprises."""

    server: list[str] = dataclasses.field(default_factory=list)
    unexpected: list[str] = dataclasses.field(default_factory=list)

    def check(self) -> None:
        assert not self.server, f"{len(self.server)} server errors: {self.server[:10]}"
        assert not self.unexpected, f"{len(self.unexpected)} unexpected: {self.unexpected[:10]}"


@dataclasses.dataclass(frozen=True)
class RpcFailure:
    kind: str  # "app" (application_error), "rpc" (rpc_error) or "http"
    code: int
    detail: str


@dataclasses.dataclass(frozen=True)
class AddAnswer:
    name: str
    client: int
    transport: str
    result: str  # OK, TASK_ALREADY_EXISTS, TOMBSTONED_TASK or what else came
    sent_us: int
    recv_us: int
    recv_mono: float


@dataclasses.dataclass(frozen=True)
class Grant:
    """One task handed out by a lease call."""

    name: str
    worker: int
    api: str
    mode: str
    call: int  # which lease call (per test)
    eta_us: int
    retry_count: int
    tag: str | None
    lease_us: int
    sent_us: int
    recv_us: int

    @property
    def start_us(self) -> int:
        """When the daemon granted it: its ETA is the daemon's ``now`` plus the lease."""
        return self.eta_us - self.lease_us


@dataclasses.dataclass(frozen=True)
class Leased:
    name: str
    eta_us: int
    retry_count: int
    tag: str | None


class Client:
    """One client: its own session and a single connection, requests one at a time."""

    def __init__(self, url: str, faults: Faults, ident: int = 0) -> None:
        self.url = url
        self.faults = faults
        self.ident = ident
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))

    async def close(self) -> None:
        await self.session.close()

    async def http(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        async with self.session.request(
            method, self.url + path, json=json_body, params=params, data=data, headers=headers
        ) as resp:
            raw = await resp.read()
        if resp.status >= 500:
            self.faults.server.append(f"{method} {path} -> HTTP {resp.status}: {raw[:300]!r}")
        return resp.status, raw

    async def get_json(self, path: str) -> Any:
        status, raw = await self.http("GET", path)
        assert status == 200, (path, status, raw[:300])
        return json.loads(raw)

    def surprise(self, what: str) -> None:
        self.faults.unexpected.append(what)

    async def rpc(
        self, method: str, request: pb_message.Message, response_cls: type[M]
    ) -> M | RpcFailure:
        envelope = remote.Request(
            service_name="taskqueue",
            method=method,
            request=request.SerializeToString(),
            request_id="ticket",
        )
        status, raw = await self.http(
            "POST",
            "/rpc_http",
            data=envelope.SerializeToString(),
            headers={"Content-Type": "application/octet-stream"},
        )
        if status != 200:
            self.surprise(f"/rpc_http {method} -> HTTP {status}: {raw[:300]!r}")
            return RpcFailure("http", status, raw[:300].decode(errors="replace"))
        answer = remote.Response()
        answer.ParseFromString(raw)
        if answer.HasField("rpc_error"):
            self.faults.server.append(f"/rpc_http {method} -> rpc_error {answer.rpc_error}")
            return RpcFailure("rpc", answer.rpc_error.code, answer.rpc_error.detail)
        if answer.HasField("application_error"):
            error = answer.application_error
            if error.code in SERVER_FAULT_CODES:
                self.faults.server.append(
                    f"/rpc_http {method} -> {code_name(error.code)}: {error.detail}"
                )
            return RpcFailure("app", error.code, error.detail)
        parsed = response_cls()
        parsed.ParseFromString(answer.response)
        return parsed

    # ---- adds
    async def add(
        self,
        queue: str,
        names: Sequence[str],
        transport: str,
        *,
        pull: bool,
        tags: dict[str, str | None],
    ) -> list[AddAnswer]:
        sent = wall_us()
        if transport == "native":
            results = await self._add_native(queue, names, pull=pull, tags=tags)
        elif transport in ("rpc-bulk", "rpc-add"):
            results = await self._add_rpc(
                queue, names, single=transport == "rpc-add", pull=pull, tags=tags
            )
        else:
            assert transport == "v1beta2"
            assert len(names) == 1
            assert pull
            results = [await self._insert_v1beta2(queue, names[0], tags.get(names[0]))]
        recv, mono = wall_us(), time.monotonic()
        return [
            AddAnswer(name, self.ident, transport, result, sent, recv, mono)
            for name, result in zip(names, results, strict=True)
        ]

    async def _add_native(
        self, queue: str, names: Sequence[str], *, pull: bool, tags: dict[str, str | None]
    ) -> list[str]:
        def task(name: str) -> dict[str, Any]:
            out: dict[str, Any] = {"name": name, "payload": f"payload of {name}"}
            if pull:
                if (tag := tags.get(name)) is not None:
                    out["tag"] = tag
            else:
                out["url"] = "/race"
            return out

        # a single add is the task object itself; a batch is {"tasks": [...]}
        body = task(names[0]) if len(names) == 1 else {"tasks": [task(n) for n in names]}
        status, raw = await self.http("POST", f"/api/v1/queues/{queue}/tasks", json_body=body)
        if status != 200:
            self.surprise(f"native add of {len(names)} -> HTTP {status}: {raw[:300]!r}")
            return [f"HTTP {status}"] * len(names)
        answered = json.loads(raw)["tasks"]
        if [t["name"] for t in answered] != list(names):
            self.surprise(f"native add answered other names: {answered[:3]}")
        return [t["result"] for t in answered]

    async def _add_rpc(
        self,
        queue: str,
        names: Sequence[str],
        *,
        single: bool,
        pull: bool,
        tags: dict[str, str | None],
    ) -> list[str]:
        def add(name: str) -> pb.TaskQueueAddRequest:
            request = pb.TaskQueueAddRequest(
                queue_name=queue.encode(),
                task_name=name.encode(),
                eta_usec=wall_us(),
                body=f"payload of {name}".encode(),
            )
            if pull:
                request.mode = pb.TaskQueueMode.PULL
                if (tag := tags.get(name)) is not None:
                    request.tag = tag.encode()
            else:
                request.url = b"/race"
                request.method = pb.TaskQueueAddRequest.RequestMethod.POST
            return request

        if single:
            assert len(names) == 1
            answer = await self.rpc("Add", add(names[0]), pb.TaskQueueAddResponse)
            if isinstance(answer, RpcFailure):
                return [
                    code_name(answer.code)
                    if answer.kind == "app"
                    else f"{answer.kind} {answer.code}"
                ]
            return ["OK"]
        bulk = pb.TaskQueueBulkAddRequest(add_request=[add(n) for n in names])
        answer_bulk = await self.rpc("BulkAdd", bulk, pb.TaskQueueBulkAddResponse)
        if isinstance(answer_bulk, RpcFailure):
            self.surprise(f"BulkAdd of {len(names)} failed: {answer_bulk}")
            return [f"{answer_bulk.kind} {answer_bulk.code}"] * len(names)
        return [code_name(r.result) for r in answer_bulk.taskresult]

    async def _insert_v1beta2(self, queue: str, name: str, tag: str | None) -> str:
        body: dict[str, Any] = {
            "queueName": queue,
            "id": name,
            "payloadBase64": base64.urlsafe_b64encode(f"payload of {name}".encode()).decode(),
        }
        if tag is not None:
            body["tag"] = tag
        status, raw = await self.http("POST", f"{V1}/{queue}/tasks", json_body=body)
        if status == 200:
            return "OK"
        error = json.loads(raw).get("error", {}) if raw else {}
        reasons = [e.get("reason") for e in error.get("errors", [])]
        if status == 400 and reasons == ["alreadyExists"]:
            # v1beta2 answers both with 400 alreadyExists (SPEC 7.6); the message tells them apart
            return (
                "TOMBSTONED_TASK" if "used recently" in error["message"] else "TASK_ALREADY_EXISTS"
            )
        return f"HTTP {status} {reasons}"

    # ---- leases
    async def lease(
        self, queue: str, api: str, *, lease_s: int, max_tasks: int, mode: str, tag: str | None
    ) -> list[Leased] | None:
        """Lease through ``api``; ``mode`` is plain, by_tag (the earliest task's tag) or tag."""
        group = mode != "plain"
        if api == "native":
            body: dict[str, Any] = {
                "lease_seconds": lease_s,
                "max_tasks": max_tasks,
                "group_by_tag": group,
            }
            if mode == "tag":
                body["tag"] = tag
            status, raw = await self.http("POST", f"/api/v1/queues/{queue}/lease", json_body=body)
            if status != 200:
                self.surprise(f"native lease {body} -> HTTP {status}: {raw[:300]!r}")
                return None
            return [
                Leased(t["name"], t["eta_us"], t["retry_count"], t["tag"])
                for t in json.loads(raw)["tasks"]
            ]
        if api == "v1beta2":
            params = {"leaseSecs": str(lease_s), "numTasks": str(max_tasks)}
            if group:
                params["groupByTag"] = "true"
            if mode == "tag":
                assert tag is not None
                params["tag"] = tag
            status, raw = await self.http("POST", f"{V1}/{queue}/tasks/lease", params=params)
            if status != 200:
                self.surprise(f"v1beta2 lease {params} -> HTTP {status}: {raw[:300]!r}")
                return None
            items = json.loads(raw).get("items", [])
            return [
                Leased(t["id"], int(t["leaseTimestamp"]), t["retry_count"], t.get("tag"))
                for t in items
            ]
        request = pb.TaskQueueQueryAndOwnTasksRequest(
            queue_name=queue.encode(),
            lease_seconds=lease_s,
            max_tasks=max_tasks,
            group_by_tag=group,
        )
        if mode == "tag":
            assert tag is not None
            request.tag = tag.encode()
        answer = await self.rpc("QueryAndOwnTasks", request, pb.TaskQueueQueryAndOwnTasksResponse)
        if isinstance(answer, RpcFailure):
            self.surprise(f"QueryAndOwnTasks -> {answer}")
            return None
        return [
            Leased(
                t.task_name.decode(),
                t.eta_usec,
                t.retry_count,
                t.tag.decode() if t.HasField("tag") else None,
            )
            for t in answer.task
        ]

    async def modify_lease(
        self, queue: str, api: str, name: str, eta_us: int, lease_s: int
    ) -> tuple[str, int]:
        """("ok", new ETA), ("expired", 0) or ("gone", 0) (unknown or deleted)."""
        if api == "native":
            body = {"eta_us": eta_us, "lease_seconds": lease_s}
            status, raw = await self.http(
                "POST", f"/api/v1/queues/{queue}/tasks/{name}/lease", json_body=body
            )
            if status == 200:
                return "ok", json.loads(raw)["eta_us"]
            kind = json.loads(raw).get("error", {}).get("status") if raw else None
            verdict = {
                "TASK_LEASE_EXPIRED": "expired",
                "UNKNOWN_TASK": "gone",
                "TOMBSTONED_TASK": "gone",
            }
            if kind in verdict:
                return verdict[kind], 0
            self.surprise(f"native modify lease {name} -> HTTP {status}: {raw[:300]!r}")
            return f"HTTP {status}", 0
        if api == "v1beta2":
            status, raw = await self.http(
                "POST",
                f"{V1}/{queue}/tasks/{name}",
                params={"newLeaseSeconds": str(lease_s)},
                json_body={"leaseTimestamp": str(eta_us)},
            )
            if status == 200:
                return "ok", int(json.loads(raw)["leaseTimestamp"])
            message = json.loads(raw).get("error", {}).get("message", "") if raw else ""
            if status == 400 and "expired" in message:
                return "expired", 0
            if status == 404:
                return "gone", 0
            self.surprise(f"v1beta2 update {name} -> HTTP {status}: {raw[:300]!r}")
            return f"HTTP {status}", 0
        request = pb.TaskQueueModifyTaskLeaseRequest(
            queue_name=queue.encode(),
            task_name=name.encode(),
            eta_usec=eta_us,
            lease_seconds=lease_s,
        )
        answer = await self.rpc("ModifyTaskLease", request, pb.TaskQueueModifyTaskLeaseResponse)
        if not isinstance(answer, RpcFailure):
            return "ok", answer.updated_eta_usec
        if answer.kind == "app" and answer.code == E.TASK_LEASE_EXPIRED:
            return "expired", 0
        if answer.kind == "app" and answer.code in (E.UNKNOWN_TASK, E.TOMBSTONED_TASK):
            return "gone", 0
        self.surprise(f"ModifyTaskLease {name} -> {answer}")
        return f"{answer.kind} {answer.code}", 0

    async def run(self, queue: str, api: str, name: str) -> str:
        """Make a task due now: "ok", "refused" (under a running lease) or "gone"."""
        if api == "native":
            status, raw = await self.http("POST", f"/api/v1/queues/{queue}/tasks/{name}/run")
            if status == 200:
                return "ok"
            if status == 404:
                return "gone"
            if status == 400 and b"leased by a worker" in raw:
                return "refused"
            self.surprise(f"native run {name} -> HTTP {status}: {raw[:300]!r}")
            return f"HTTP {status}"
        request = pb.TaskQueueForceRunRequest(queue_name=queue.encode(), task_name=name.encode())
        answer = await self.rpc("ForceRun", request, pb.TaskQueueForceRunResponse)
        if isinstance(answer, RpcFailure):
            self.surprise(f"ForceRun {name} -> {answer}")
            return f"{answer.kind} {answer.code}"
        verdict = {E.OK: "ok", E.UNKNOWN_TASK: "gone", E.INVALID_REQUEST: "refused"}
        if answer.result in verdict:
            return verdict[answer.result]
        self.surprise(f"ForceRun {name} -> {code_name(answer.result)}")
        return code_name(answer.result)

    async def delete(self, queue: str, api: str, names: Sequence[str]) -> list[bool | None]:
        """Whether each task was deleted by this call (None: an unexpected answer)."""
        if api == "native-one":
            assert len(names) == 1
            status, raw = await self.http("DELETE", f"/api/v1/queues/{queue}/tasks/{names[0]}")
            if status in (200, 404):
                return [status == 200]
        elif api == "native-batch":
            status, raw = await self.http(
                "POST", f"/api/v1/queues/{queue}/delete", json_body={"names": list(names)}
            )
            if status == 200:
                return [t["deleted"] for t in json.loads(raw)["tasks"]]
        elif api == "v1beta2":
            assert len(names) == 1
            status, raw = await self.http("DELETE", f"{V1}/{queue}/tasks/{names[0]}")
            if status in (204, 404):
                return [status == 204]
        else:
            request = pb.TaskQueueDeleteRequest(
                queue_name=queue.encode(), task_name=[n.encode() for n in names]
            )
            answer = await self.rpc("Delete", request, pb.TaskQueueDeleteResponse)
            if not isinstance(answer, RpcFailure):
                return [r == E.OK for r in answer.result]
            status, raw = 200, str(answer).encode()
        self.surprise(f"{api} delete of {len(names)} -> {status}: {raw[:300]!r}")
        return [None] * len(names)


# ------------------------------------------------------------------ the daemon


@dataclasses.dataclass
class Rig:
    daemon: Daemon
    receiver: Receiver
    faults: Faults
    admin: Client


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    receiver = await Receiver(delay_s=RECEIVER_DELAY_S).start()
    daemon = await Daemon(tmp_path, QUEUE_YAML, receiver.url).start()
    faults = Faults()
    admin = Client(daemon.url, faults, -1)
    try:
        yield Rig(daemon, receiver, faults, admin)
    finally:
        await admin.close()
        await daemon.kill()
        await receiver.stop()
        print("daemon log (last 30 lines):\n" + "\n".join(daemon.log[-30:]))


async def stats(client: Client, queue: str) -> dict[str, Any]:
    answer: dict[str, Any] = (await client.get_json(f"/api/v1/queues/{queue}"))["stats"]
    return answer


async def stored_names(client: Client, queue: str) -> list[str]:
    """Every stored task's name, page by page (1,000 at a time)."""
    found: list[str] = []
    after = ""
    for _ in range(10_000):
        page = await client.get_json(f"/api/v1/queues/{queue}/tasks?limit=1000&after={after}")
        found += [t["name"] for t in page["tasks"]]
        if not page["next"]:
            return found
        after = page["next"]
    raise AssertionError("the task listing never ended")


async def until(what: str, check: Callable[[], Any], within_s: float) -> None:
    """Poll ``check`` (a coroutine function) until it is true: the daemon's stored state has no
    notification to await."""
    deadline = time.monotonic() + within_s
    for _ in range(int(within_s / POLL_S) + 2):
        if await check():
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"{what}: not within {within_s} s")


async def seed_tasks(
    client: Client, queue: str, names: Sequence[str], tags: dict[str, str | None]
) -> None:
    for i in range(0, len(names), 100):
        chunk = names[i : i + 100]
        answers = await client.add(queue, chunk, "native", pull=True, tags=tags)
        assert [a.result for a in answers] == ["OK"] * len(chunk), answers[:3]


# ------------------------------------------------------------------ named adds


def plan_block(rng: random.Random, block: Sequence[str]) -> list[list[str]]:
    """How one client adds one block: one batch, single adds, or chunks of mixed sizes; each
    client in its own order."""
    names = rng.sample(list(block), len(block))
    style = rng.random()
    if style < 0.35:
        return [names]
    if style < 0.6:
        return [[n] for n in names]
    chunks: list[list[str]] = []
    while names:
        size = rng.choice([1, 1, 1, rng.randint(2, 40)])
        chunks.append(names[:size])
        names = names[size:]
    return chunks


async def race_adds(
    rig: Rig,
    queue: str,
    names: Sequence[str],
    *,
    pull: bool,
    tags: dict[str, str | None] | None = None,
    clients: int = ADD_CLIENTS,
) -> list[AddAnswer]:
    """``clients`` clients add every name of ``names``, block by block, all starting each block
    together."""
    singles = ["native", "rpc-bulk", "rpc-add"] + (["v1beta2", "v1beta2"] if pull else [])
    batches = ["native", "rpc-bulk"]
    blocks = [names[i : i + BLOCK] for i in range(0, len(names), BLOCK)]
    barrier = asyncio.Barrier(clients)
    answers: list[AddAnswer] = []
    tags = tags or {}

    async def client(i: int) -> None:
        rng = random.Random(f"{SEED}-{queue}-{names[0]}-{i}")
        c = Client(rig.daemon.url, rig.faults, i)
        try:
            status, _ = await c.http("GET", "/healthz")  # the connection is open before the race
            assert status == 200
            for block in blocks:
                plan = plan_block(rng, block)
                await barrier.wait()
                for chunk in plan:
                    transport = rng.choice(singles if len(chunk) == 1 else batches)
                    answers.extend(await c.add(queue, chunk, transport, pull=pull, tags=tags))
        finally:
            await c.close()

    async with asyncio.TaskGroup() as group:
        for i in range(clients):
            group.create_task(client(i))
    return answers


def judge_adds(
    answers: Sequence[AddAnswer], names: Sequence[str], allowed: set[str]
) -> tuple[list[str], dict[str, int]]:
    """Problems (exactly one OK per name, the others ``allowed``, no loser answered before its
    winner was sent) and figures."""
    by_name: dict[str, list[AddAnswer]] = collections.defaultdict(list)
    for a in answers:
        by_name[a.name].append(a)
    problems: list[str] = []
    duplicates = 0
    for name in names:
        got = by_name.get(name, [])
        winners = [a for a in got if a.result == "OK"]
        if len(winners) != 1:
            duplicates += max(0, len(winners) - 1)
            problems.append(f"{name}: {len(winners)} adds answered OK: {winners[:4]}")
        others = [a for a in got if a.result != "OK"]
        problems += [f"{name}: answered {a.result}: {a}" for a in others if a.result not in allowed]
        if winners:
            first_sent = min(w.sent_us for w in winners)
            problems += [
                f"{name}: {a.result} answered before the winning add was sent: {a}"
                for a in others
                if a.recv_us < first_sent
            ]
    results = collections.Counter(a.result for a in answers)
    transports = collections.Counter(a.transport for a in answers)
    figures = {
        "names": len(names),
        "adds": len(answers),
        "winners": results["OK"],
        "duplicates": duplicates,
        "already_exists": results["TASK_ALREADY_EXISTS"],
        "tombstoned": results["TOMBSTONED_TASK"],
        **{f"via_{t.replace('-', '_')}": n for t, n in sorted(transports.items())},
    }
    return problems, figures


def assert_no_problems(problems: Sequence[str], what: str) -> None:
    assert not problems, f"{what}: {len(problems)} problems, first ones:\n" + "\n".join(
        problems[:15]
    )


async def wait_push_drained(rig: Rig, expected: int) -> None:
    await rig.receiver.wait_for(expected, timeout_s=scale(30, 120))

    async def drained() -> bool:
        s = await stats(rig.admin, "push-race")
        return bool(s["tasks"] == 0 and s["in_flight"] == 0)

    await until("push-race drained", drained, scale(30, 120))


def delivered_names(rig: Rig) -> collections.Counter[str]:
    return collections.Counter(
        d.headers.get("X-AppEngine-TaskName", "") for d in rig.receiver.deliveries
    )


@pytest.mark.timeout(scale(60, 900))
async def test_push_named_adds_have_one_winner_and_run_once(
    rig: Rig, report: dict[str, Any]
) -> None:
    admin = rig.admin
    # Phase 1: the queue is paused during the adds; nothing runs, so every loser must be
    # TASK_ALREADY_EXISTS and the store must hold each name once.
    paused_names = [f"push-p-{i:05d}" for i in range(PUSH_NAMES)]
    status, _ = await admin.http("POST", "/api/v1/queues/push-race/pause")
    assert status == 200
    answers = await race_adds(rig, "push-race", paused_names, pull=False)
    problems, figures = judge_adds(answers, paused_names, {"TASK_ALREADY_EXISTS"})
    stored = collections.Counter(await stored_names(admin, "push-race"))
    problems += [f"{n} stored {k} times" for n, k in stored.items() if k != 1]
    problems += [f"{n} not stored" for n in set(paused_names) - set(stored)]
    problems += [f"{n} stored but never added" for n in set(stored) - set(paused_names)]
    problems += [f"the paused queue delivered {d.path}" for d in rig.receiver.deliveries]
    status, _ = await admin.http("POST", "/api/v1/queues/push-race/resume")
    assert status == 200
    await wait_push_drained(rig, len(paused_names))
    delivered = delivered_names(rig)
    problems += [f"{n} delivered {k} times" for n, k in delivered.items() if k != 1]
    problems += [f"{n} never delivered" for n in set(paused_names) - set(delivered)]
    if rig.receiver.started != len(rig.receiver.deliveries):
        problems.append(f"{rig.receiver.started} requests arrived, {len(delivered)} answered")
    # every name has run: adding any of them again is TOMBSTONED_TASK, whatever the API
    again: list[AddAnswer] = []
    for i in range(0, len(paused_names), 100):
        transport = "native" if i % 200 == 0 else "rpc-bulk"
        again += await admin.add(
            "push-race", paused_names[i : i + 100], transport, pull=False, tags={}
        )
    problems += [f"re-add after it ran: {a}" for a in again if a.result != "TOMBSTONED_TASK"]
    report["push_paused"] = {
        **figures,
        "clients": ADD_CLIENTS,
        "delivered": len(rig.receiver.deliveries),
        "delivered_twice": sum(k > 1 for k in delivered.values()),
        "server_errors": len(rig.faults.server),
    }
    rig.faults.check()
    assert_no_problems(problems, "paused push queue")

    # Phase 2: the queue runs while the clients add: a name may run before the last clients add
    # it, so losers may be TOMBSTONED_TASK, but only once the name's delivery has started.
    live_names = [f"push-l-{i:05d}" for i in range(PUSH_NAMES)]
    before = len(rig.receiver.deliveries)
    adding = asyncio.Event()
    pauses = 0

    async def toggle() -> None:
        """Pause and resume the queue while the clients add and pushd delivers."""
        nonlocal pauses
        while not adding.is_set():
            with contextlib.suppress(TimeoutError):
                await rig.receiver.wait_started(rig.receiver.started + 25, timeout_s=0.5)
            status, _ = await admin.http("POST", "/api/v1/queues/push-race/pause")
            assert status == 200
            pauses += 1
            await asyncio.sleep(POLL_S)  # paused for a moment: nothing to wait for
            status, _ = await admin.http("POST", "/api/v1/queues/push-race/resume")
            assert status == 200

    async def add_all() -> list[AddAnswer]:
        try:
            return await race_adds(rig, "push-race", live_names, pull=False)
        finally:
            adding.set()

    async with asyncio.TaskGroup() as group:
        adds = group.create_task(add_all())
        group.create_task(toggle())
    answers = adds.result()
    problems, figures = judge_adds(answers, live_names, {"TASK_ALREADY_EXISTS", "TOMBSTONED_TASK"})
    await wait_push_drained(rig, before + len(live_names))
    delivered = delivered_names(rig)
    problems += [f"{n} delivered {k} times" for n, k in delivered.items() if k != 1]
    problems += [f"{n} never delivered" for n in set(live_names) - set(delivered)]
    started = {
        d.headers.get("X-AppEngine-TaskName"): d.started_at
        for d in rig.receiver.deliveries[before:]
    }
    problems += [
        f"{a.name}: TOMBSTONED_TASK answered before its delivery started"
        for a in answers
        if a.result == "TOMBSTONED_TASK" and a.recv_mono < started.get(a.name, float("inf"))
    ]
    if rig.receiver.started != len(rig.receiver.deliveries):
        problems.append(f"{rig.receiver.started} requests arrived, {len(delivered)} answered")
    report["push_live"] = {
        **figures,
        "pauses": pauses,
        "clients": ADD_CLIENTS,
        "delivered": len(rig.receiver.deliveries) - before,
        "delivered_twice": sum(k > 1 for n, k in delivered.items() if n in set(live_names)),
        "server_errors": len(rig.faults.server),
    }
    rig.faults.check()
    assert_no_problems(problems, "running push queue")


@pytest.mark.timeout(scale(60, 900))
async def test_pull_named_adds_have_one_winner(rig: Rig, report: dict[str, Any]) -> None:
    """Adds through the native API, /rpc_http and v1beta2 insert race while a consumer leases
    and deletes: TOMBSTONED_TASK only after the name's delete was sent."""
    admin = rig.admin
    rng = random.Random(f"{SEED}-pull-adds")
    names = [f"pull-{i:05d}" for i in range(PULL_NAMES)]
    tags = {n: rng.choice(TAGS) for n in names}
    delete_sent: dict[str, int] = {}
    deleted: list[str] = []
    adds_done = asyncio.Event()

    async def consumer() -> None:
        """Leases a few tasks at a time while the adds go on and deletes about half of them."""
        c = Client(rig.daemon.url, rig.faults, 10_000)
        try:
            for i in range(1_000_000):
                if adds_done.is_set():
                    break
                leased = await c.lease(
                    "pull-race",
                    ["native", "v1beta2", "rpc"][i % 3],
                    lease_s=LONG_LEASE_S,
                    max_tasks=5,
                    mode="plain",
                    tag=None,
                )
                chosen = [t.name for t in leased or [] if rng.random() < 0.5]
                if not chosen:
                    await asyncio.sleep(POLL_S)  # an idle pull worker polls
                    continue
                sent = wall_us()
                for name in chosen:
                    delete_sent[name] = sent
                gone = await c.delete("pull-race", "native-batch", chosen)
                deleted.extend(n for n, ok in zip(chosen, gone, strict=True) if ok)
        finally:
            await c.close()

    async def add_all() -> list[AddAnswer]:
        try:
            return await race_adds(rig, "pull-race", names, pull=True, tags=tags)
        finally:
            adds_done.set()

    async with asyncio.TaskGroup() as group:
        adds = group.create_task(add_all())
        group.create_task(consumer())
    answers = adds.result()
    problems, figures = judge_adds(answers, names, {"TASK_ALREADY_EXISTS", "TOMBSTONED_TASK"})
    problems += [
        f"{a.name}: TOMBSTONED_TASK though its delete was not sent before the answer: {a}"
        for a in answers
        if a.result == "TOMBSTONED_TASK" and a.recv_us < delete_sent.get(a.name, 2**62)
    ]
    stored = collections.Counter(await stored_names(admin, "pull-race"))
    expected = set(names) - set(deleted)
    problems += [f"{n} stored {k} times" for n, k in stored.items() if k != 1]
    problems += [f"{n} not stored" for n in expected - set(stored)]
    problems += [f"{n} stored after its delete" for n in set(stored) - expected]
    report["pull_adds"] = {
        **figures,
        "clients": ADD_CLIENTS,
        "deleted_during_adds": len(deleted),
        "server_errors": len(rig.faults.server),
    }
    rig.faults.check()
    assert_no_problems(problems, "pull queue adds")


# ------------------------------------------------------------------ leases


def lease_shape_problems(mode: str, tag: str | None, leased: Sequence[Leased]) -> list[str]:
    """A lease by tag answers tasks of one tag: the one asked for, or the earliest task's."""
    if mode == "plain" or not leased:
        return []
    seen = {t.tag for t in leased}
    if mode == "tag" and seen != {tag}:
        return [f"lease by tag {tag!r} answered tags {seen}"]
    if len(seen) != 1:
        return [f"lease grouped by tag answered tags {seen}"]
    return []


@pytest.mark.timeout(scale(60, 900))
async def test_concurrent_long_leases_never_hand_a_task_to_two_workers(
    rig: Rig, report: dict[str, Any]
) -> None:
    rng = random.Random(f"{SEED}-leases")
    names = [f"lease-{i:05d}" for i in range(LEASE_TASKS)]
    tags = {n: rng.choice(TAGS) for n in names}
    await seed_tasks(rig.admin, "pull-lease", names, tags)
    grants: list[Grant] = []
    problems: list[str] = []
    calls = collections.Counter[str]()
    barrier = asyncio.Barrier(LEASE_WORKERS)
    call_ids = iter(range(10**9))

    async def worker(i: int) -> None:
        wrng = random.Random(f"{SEED}-leases-{i}")
        c = Client(rig.daemon.url, rig.faults, i)
        try:
            await c.http("GET", "/healthz")
            await barrier.wait()
            for _ in range(100_000):
                api = wrng.choice(["native", "v1beta2", "rpc"])
                mode = wrng.choice(["plain", "by_tag", "tag"])
                tag = wrng.choice(["red", "green"]) if mode == "tag" else None
                sent = wall_us()
                leased = await c.lease(
                    "pull-lease",
                    api,
                    lease_s=LONG_LEASE_S,
                    max_tasks=wrng.choice([*range(1, 21), 50, 100]),
                    mode=mode,
                    tag=tag,
                )
                recv = wall_us()
                call = next(call_ids)
                calls[f"{api}/{mode}"] += 1
                if leased is None:
                    continue
                problems.extend(lease_shape_problems(mode, tag, leased))
                grants.extend(
                    Grant(
                        t.name,
                        i,
                        api,
                        mode,
                        call,
                        t.eta_us,
                        t.retry_count,
                        t.tag,
                        LONG_LEASE_S * 10**6,
                        sent,
                        recv,
                    )
                    for t in leased
                )
                if not leased and mode == "plain":
                    return  # nothing left to lease: every task is held
        finally:
            await c.close()

    async with asyncio.TaskGroup() as group:
        for i in range(LEASE_WORKERS):
            group.create_task(worker(i))

    by_name: dict[str, list[Grant]] = collections.defaultdict(list)
    for g in grants:
        by_name[g.name].append(g)
    double = sum(len(got) - 1 for got in by_name.values() if len(got) > 1)
    problems += [
        f"{n} leased {len(got)} times: {got}" for n, got in by_name.items() if len(got) > 1
    ]
    problems += [f"{n} never leased" for n in set(names) - set(by_name)]
    problems += [
        f"first lease with retry_count {g.retry_count}: {g}" for g in grants if g.retry_count != 1
    ]
    problems += [
        f"lease granted outside its call: {g}"
        for g in grants
        if not g.sent_us - CLOCK_SLACK_US <= g.start_us <= g.recv_us + CLOCK_SLACK_US
    ]
    problems += [
        f"{g.name} came with tag {g.tag!r}, added with {tags[g.name]!r}"
        for g in grants
        if g.tag != tags[g.name]
    ]
    report["long_leases"] = {
        "tasks": len(names),
        "clients": LEASE_WORKERS,
        "leases": sum(calls.values()),
        "granted": len(grants),
        "double_leases": double,
        **{f"calls_{k.replace('/', '_')}": v for k, v in sorted(calls.items())},
        "server_errors": len(rig.faults.server),
    }
    rig.faults.check()
    assert_no_problems(problems, "long leases")


@pytest.mark.timeout(scale(60, 900))
async def test_expired_leases_come_back_only_after_expiry(rig: Rig, report: dict[str, Any]) -> None:
    """1 s leases, workers that never delete: each task is leased exactly ``task_retry_limit``
    times, each lease starting after the previous one's expiry, then deleted by the queue."""
    rng = random.Random(f"{SEED}-expiry")
    names = [f"expiry-{i:05d}" for i in range(EXPIRY_TASKS)]
    tags = {n: rng.choice(TAGS) for n in names}
    await seed_tasks(rig.admin, "pull-expiry", names, tags)
    lease_us = 10**6
    grants: list[Grant] = []
    problems: list[str] = []
    calls = collections.Counter[str]()
    done = asyncio.Event()
    call_ids = iter(range(10**9))

    async def worker(i: int) -> None:
        wrng = random.Random(f"{SEED}-expiry-{i}")
        c = Client(rig.daemon.url, rig.faults, i)
        try:
            while not done.is_set():
                api = wrng.choice(["native", "v1beta2", "rpc"])
                mode = wrng.choice(["plain", "plain", "by_tag", "tag"])
                tag = wrng.choice(["red", "green"]) if mode == "tag" else None
                sent = wall_us()
                leased = await c.lease(
                    "pull-expiry", api, lease_s=1, max_tasks=wrng.randint(1, 10), mode=mode, tag=tag
                )
                recv = wall_us()
                call = next(call_ids)
                calls[api] += 1
                if leased is None:
                    continue
                problems.extend(lease_shape_problems(mode, tag, leased))
                grants.extend(
                    Grant(
                        t.name,
                        i,
                        api,
                        mode,
                        call,
                        t.eta_us,
                        t.retry_count,
                        t.tag,
                        lease_us,
                        sent,
                        recv,
                    )
                    for t in leased
                )
                if not leased:
                    await asyncio.sleep(POLL_S)  # an idle pull worker polls
        finally:
            await c.close()

    async def monitor() -> None:
        async def empty() -> bool:
            return bool((await stats(rig.admin, "pull-expiry"))["tasks"] == 0)

        try:
            await until("every task leased to its limit", empty, scale(40, 600))
        finally:
            done.set()

    async with asyncio.TaskGroup() as group:
        for i in range(EXPIRY_WORKERS):
            group.create_task(worker(i))
        group.create_task(monitor())

    by_name: dict[str, list[Grant]] = collections.defaultdict(list)
    for g in grants:
        by_name[g.name].append(g)
    early = 0
    comeback_ms: list[float] = []  # from a lease's expiry to the task's next lease (daemon time)
    for name in names:
        got = sorted(by_name.get(name, []), key=lambda g: g.eta_us)
        counts = [g.retry_count for g in got]
        if counts != list(range(1, EXPIRY_LEASES + 1)):
            problems.append(
                f"{name}: leases with retry_count {counts}, want 1..{EXPIRY_LEASES}: {got}"
            )
        for a, b in itertools.pairwise(got):
            comeback_ms.append((b.start_us - a.eta_us) / 1000)
            if b.start_us < a.eta_us or b.recv_us < a.eta_us:
                early += 1
                problems.append(
                    f"{name}: leased again {(a.eta_us - b.start_us) / 1000:.3f} ms before the lease "
                    f"it had ended (daemon), answered {(a.eta_us - b.recv_us) / 1000:.3f} ms before "
                    f"(client): {a} then {b}"
                )
            if b.eta_us <= a.eta_us or b.retry_count != a.retry_count + 1:
                problems.append(f"{name}: ETA or retry_count did not go up: {a} then {b}")
        problems += [
            f"lease granted outside its call: {g}"
            for g in got
            if not g.sent_us - CLOCK_SLACK_US <= g.start_us <= g.recv_us + CLOCK_SLACK_US
        ]
    # the queue deleted each task at its next lease after the limit: the names are tombstoned
    again: list[AddAnswer] = []
    for i in range(0, len(names), 100):
        again += await rig.admin.add(
            "pull-expiry", names[i : i + 100], "native", pull=True, tags=tags
        )
    problems += [
        f"re-add after the retry limit: {a}" for a in again if a.result != "TOMBSTONED_TASK"
    ]
    report["expiring_leases"] = {
        "tasks": len(names),
        "clients": EXPIRY_WORKERS,
        "leases_per_task": EXPIRY_LEASES,
        "leases": sum(calls.values()),
        "granted": len(grants),
        "double_leases": early,
        "comeback_ms_min": round(min(comeback_ms, default=0.0), 3),
        "comeback_ms_median": round(statistics.median(comeback_ms or [0.0]), 3),
        "comeback_ms_max": round(max(comeback_ms, default=0.0), 3),
        **{f"calls_{k}": v for k, v in sorted(calls.items())},
        "server_errors": len(rig.faults.server),
    }
    rig.faults.check()
    assert_no_problems(problems, "expiring leases")


# ------------------------------------------------------------------ delete / lease / modify races


@dataclasses.dataclass
class Hold:
    """One worker's lease on a task, from the lease to its last renewal (or release)."""

    name: str
    worker: int
    start_us: int  # the daemon's time of the lease
    end_us: int  # the ETA of the last grant (lease or renewal)
    grants: list[tuple[str, int, int, int]]  # (api, sent_us, recv_us, eta_us) of each grant


@dataclasses.dataclass
class DeleteAnswer:
    name: str
    deleted: bool
    api: str
    sent_us: int
    recv_us: int


@dataclasses.dataclass
class RaceLog:
    holds: list[Hold] = dataclasses.field(default_factory=list)
    deletes: list[DeleteAnswer] = dataclasses.field(default_factory=list)
    renewals: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    runs: list[tuple[str, str, int]] = dataclasses.field(
        default_factory=list
    )  # name, verdict, sent
    leases: int = 0
    granted: int = 0
    gone: set[str] = dataclasses.field(default_factory=set)  # deletes answered deleted


DELETE_APIS = ("native-one", "native-batch", "v1beta2", "rpc")


async def delete_some(c: Client, queue: str, api: str, names: Sequence[str], log: RaceLog) -> None:
    sent = wall_us()
    gone = await c.delete(queue, api, names)
    recv = wall_us()
    log.deletes += [
        DeleteAnswer(n, ok, api, sent, recv)
        for n, ok in zip(names, gone, strict=True)
        if ok is not None
    ]
    log.gone.update(n for n, ok in zip(names, gone, strict=True) if ok)


async def race_round(rig: Rig, round_no: int, log: RaceLog) -> list[str]:
    queue = "pull-delete"
    names = [f"race-{round_no}-{i:05d}" for i in range(RACE_TASKS)]
    rng = random.Random(f"{SEED}-race-{round_no}")
    tags = {n: rng.choice(TAGS) for n in names}
    # each task is deleted by two deleters (besides the leasers that delete what they leased)
    shares = {n: set(rng.sample(range(RACE_DELETERS), 2)) for n in names}
    await seed_tasks(rig.admin, queue, names, tags)
    deleters_done = asyncio.Event()
    barrier = asyncio.Barrier(RACE_LEASERS + RACE_DELETERS + RACE_RUNNERS)
    hot: collections.deque[str] = collections.deque(maxlen=64)  # the tasks leased last
    apis = ["native", "v1beta2", "rpc"]

    async def renew(c: Client, wrng: random.Random, hold: Hold, times: int) -> None:
        """Renew ``hold`` up to ``times`` times (a lease of 0 s releases it), each with the ETA
        the last grant gave."""
        for _ in range(times):
            new_s = wrng.choice([0, 1, 2])
            api = wrng.choice(apis)
            sent = wall_us()
            verdict, eta = await c.modify_lease(queue, api, hold.name, hold.end_us, new_s)
            recv = wall_us()
            log.renewals[verdict] += 1
            if verdict != "ok":
                return
            hold.end_us = eta
            hold.grants.append((f"renew-{api}-{new_s}s", sent, recv, eta))
            if new_s == 0:
                return

    async def leaser(i: int) -> None:
        wrng = random.Random(f"{SEED}-race-{round_no}-leaser-{i}")
        c = Client(rig.daemon.url, rig.faults, i)
        late: list[tuple[int, Hold]] = []  # holds to renew around their expiry: (when, hold)
        try:
            await c.http("GET", "/healthz")
            await barrier.wait()
            while True:
                now = wall_us()
                for hold in [h for at, h in late if at <= now]:
                    await renew(c, wrng, hold, 1)
                late = [(at, h) for at, h in late if at > now]
                finishing = deleters_done.is_set()
                lease_s = wrng.choice([1, 2])
                sent = wall_us()
                leased = await c.lease(
                    queue,
                    wrng.choice(apis),
                    lease_s=lease_s,
                    max_tasks=wrng.randint(1, 10),
                    mode=wrng.choice(["plain", "by_tag"]),
                    tag=None,
                )
                recv = wall_us()
                log.leases += 1
                if leased is None:
                    continue
                if not leased:
                    if finishing:
                        return  # every task is deleted
                    await asyncio.sleep(POLL_S)  # an idle pull worker polls
                    continue
                log.granted += len(leased)
                hot.extend(t.name for t in leased)
                for t in leased:
                    start = t.eta_us - lease_s * 10**6
                    hold = Hold(t.name, i, start, t.eta_us, [("lease", sent, recv, t.eta_us)])
                    log.holds.append(hold)
                    action = wrng.random()
                    if action < 0.35:  # renew once or twice, sometimes releasing at the end
                        await renew(c, wrng, hold, wrng.randint(1, 2))
                    elif action < 0.5:  # a slow worker: renews just before or after expiry
                        late.append((t.eta_us + wrng.randint(-300_000, 300_000), hold))
                    elif action < 0.75:  # done with it: delete
                        await delete_some(c, queue, wrng.choice(DELETE_APIS), [t.name], log)
                    # else: let the lease run out
        finally:
            await c.close()

    async def deleter(i: int) -> None:
        """Deletes its share of the round's tasks, in its own order, spread over
        ``RACE_ROUND_S`` so that deletes meet leases, renewals, releases and expiries all
        along; now and then it also deletes tasks leased a moment ago."""
        wrng = random.Random(f"{SEED}-race-{round_no}-deleter-{i}")
        c = Client(rig.daemon.url, rig.faults, 1000 + i)
        mine = [n for n in names if i in shares[n]]
        wrng.shuffle(mine)
        plan: list[tuple[str, list[str]]] = []
        while mine:
            api = wrng.choice(DELETE_APIS)
            size = 1 if api in ("native-one", "v1beta2") else wrng.randint(1, 20)
            plan.append((api, mine[:size]))
            mine = mine[size:]
        step = RACE_ROUND_S / len(plan)
        try:
            await c.http("GET", "/healthz")
            await barrier.wait()
            began = time.monotonic()
            for k, (api, chunk) in enumerate(plan):
                await asyncio.sleep(max(0.0, began + k * step - time.monotonic()))  # pacing
                await delete_some(c, queue, api, chunk, log)
                recent = [n for n in dict.fromkeys(hot) if n not in log.gone]
                if recent and wrng.random() < 0.3:  # tasks just leased, maybe being renewed
                    api = wrng.choice(DELETE_APIS)
                    size = 1 if api in ("native-one", "v1beta2") else wrng.randint(1, 3)
                    await delete_some(
                        c, queue, api, wrng.sample(recent, min(size, len(recent))), log
                    )
        finally:
            await c.close()

    async def deleters() -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for i in range(RACE_DELETERS):
                    group.create_task(deleter(i))
        finally:
            deleters_done.set()

    async def runner(i: int) -> None:
        """Makes tasks due now ("run"), mostly ones just leased: pushd must refuse those while
        their lease runs, or a second worker would lease them."""
        wrng = random.Random(f"{SEED}-race-{round_no}-runner-{i}")
        c = Client(rig.daemon.url, rig.faults, 2000 + i)
        try:
            await c.http("GET", "/healthz")
            await barrier.wait()
            while not deleters_done.is_set():
                recent = [n for n in dict.fromkeys(hot) if n not in log.gone]
                name = wrng.choice(recent) if recent and wrng.random() < 0.7 else wrng.choice(names)
                sent = wall_us()
                log.runs.append(
                    (name, await c.run(queue, wrng.choice(["native", "rpc"]), name), sent)
                )
                await asyncio.sleep(RUN_EVERY_S)  # pacing: a run every few ms
        finally:
            await c.close()

    async with asyncio.TaskGroup() as group:
        for i in range(RACE_LEASERS):
            group.create_task(leaser(i))
        for i in range(RACE_RUNNERS):
            group.create_task(runner(i))
        group.create_task(deleters())
    return names


@pytest.mark.timeout(scale(60, 900))
async def test_delete_lease_and_modify_lease_races(rig: Rig, report: dict[str, Any]) -> None:
    log = RaceLog()
    names: list[str] = []
    for round_no in range(RACE_ROUNDS):
        names += await race_round(rig, round_no, log)
    problems: list[str] = []
    holds: dict[str, list[Hold]] = collections.defaultdict(list)
    for h in log.holds:
        holds[h.name].append(h)
    deletes: dict[str, list[DeleteAnswer]] = collections.defaultdict(list)
    for d in log.deletes:
        deletes[d.name].append(d)
    double = after_delete = 0
    for name in names:
        # no two workers hold the task at once: each hold starts after the previous one ended
        ordered = sorted(holds.get(name, []), key=lambda h: (h.start_us, h.end_us))
        for a, b in itertools.pairwise(ordered):
            if b.start_us < a.end_us:
                double += 1
                problems.append(
                    f"{name}: worker {b.worker} leased it {(a.end_us - b.start_us) / 1000:.3f} ms before worker {a.worker}'s lease ended: {a} / {b}"
                )
        # exactly one delete wins; none answered before the winner was sent
        got = deletes.get(name, [])
        winners = [d for d in got if d.deleted]
        if len(winners) != 1:
            problems.append(f"{name}: {len(winners)} deletes answered deleted: {winners}")
            continue
        problems += [
            f"{name}: 'not deleted' answered before the winning delete was sent: {d}"
            for d in got
            if not d.deleted and d.recv_us < winners[0].sent_us
        ]
        # nothing granted after a delete was acknowledged
        acked = min(d.recv_us for d in got)
        for h in holds.get(name, []):
            for api, sent, _recv, eta in h.grants:
                if sent > acked:
                    after_delete += 1
                    problems.append(
                        f"{name}: {api} granted (ETA {eta}) on a call sent {(sent - acked) / 1000:.3f} ms after a delete was acknowledged: {h}"
                    )
    runs_after_delete = 0
    acked_at = {n: min(d.recv_us for d in got) for n, got in deletes.items()}
    for name, verdict, sent in log.runs:
        if verdict == "ok" and sent > acked_at.get(name, 2**62):
            runs_after_delete += 1
            problems.append(f"{name}: run succeeded on a call sent after a delete was acknowledged")
    left = await stored_names(rig.admin, "pull-delete")
    problems += [f"{n} still stored after every delete" for n in left]
    runs = collections.Counter(verdict for _, verdict, _ in log.runs)
    report["delete_lease_races"] = {
        "tasks": len(names),
        "rounds": RACE_ROUNDS,
        "clients": RACE_LEASERS + RACE_DELETERS + RACE_RUNNERS,
        "leasers": RACE_LEASERS,
        "deleters": RACE_DELETERS,
        "runners": RACE_RUNNERS,
        "leases": log.leases,
        "granted": log.granted,
        "renewals_ok": log.renewals["ok"],
        "renewals_expired": log.renewals["expired"],
        "renewals_gone": log.renewals["gone"],
        "runs_ok": runs["ok"],
        "runs_refused": runs["refused"],
        "runs_gone": runs["gone"],
        "deletes": len(log.deletes),
        "deletes_won": sum(d.deleted for d in log.deletes),
        "double_leases": double,
        "leased_after_delete": after_delete,
        "run_after_delete": runs_after_delete,
        "server_errors": len(rig.faults.server),
    }
    rig.faults.check()
    assert_no_problems(problems, "delete/lease/modify races")
