"""Campaign 4, bad input over HTTP: schemathesis against a real ``pushd serve``, and oversized bodies.

The OpenAPI document is built in-process from the same router the daemon serves (and the test
checks that the daemon serves exactly that document), so schemathesis can parametrize one test
per operation at collection time. Every generated request (positive and negative data, the
coverage cases and the random fuzzing) goes to a real daemon subprocess on 127.0.0.1 with a few
push and pull queues, and every answer must be:

* never a 5xx (``not_a_server_error``);
* a documented status, content type and body (``status_code_conformance``,
  ``content_type_conformance``, ``response_schema_conformance``);
* for every 4xx, a JSON error envelope: pushd's own ``{"error": {"code", "status", "message"}}``,
  or Google's ``{"error": {"errors": [...], "code", "message"}}`` under ``/taskqueue/v1beta2``;
  ``/rpc_http`` always answers 200 with a protocol buffer (:mod:`test_rpc_garbage` goes deeper);
  the web console, whose paths document their errors as ``text/html``, answers an HTML page
  that names the status (browsers show it; a JSON body would be an unreadable page).

Path parameters are steered two times in three to the configured queues and to task names that
exist (seeded before every operation), so the cases reach the handlers instead of stopping at
``404 UNKNOWN_QUEUE``. Schemathesis' ``negative_data_rejection``/``positive_data_acceptance``
are not used: the document describes JSON shapes, not every value rule of App Engine (a task
name is a string in the schema; ``"a b"`` is still refused with 400, as it should be).

Oversized bodies are sent over raw sockets, slowly, to see when the 413 arrives and what the
daemon's memory does meanwhile.

Short run (``make test``): about 12 generated cases per operation plus schemathesis' coverage
cases; ``PUSHD_CHAOS=full``: 300 per operation.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks as st_checks
from schemathesis.specs.openapi import checks as oas_checks

from pushd import api, service
from pushd import settings as pushd_settings
from pushd.api import openapi
from pushd.cloudtasks import rest as cloudtasks_rest
from pushd.cloudtasks import rpc as cloudtasks_rpc
from pushd.errors import ErrorCode
from pushd.proto import remote_api_pb2 as remote
from tests.conftest import fresh_database
from tests.reliability.conftest import FULL, scale

START_TIMEOUT_S = 30.0
LISTENING = re.compile(r"\blistening\b.*\burl=(\S+)")
#: Connection refused at once: pushed tasks fail fast and retry (or die) without a receiver.
DEAD_TARGET = "http://127.0.0.1:9"
QUEUE_YAML = """\
queue:
- name: push-a
  rate: 20/s
  bucket_size: 5
  retry_parameters:
    min_backoff_seconds: 30
- name: push-dead
  rate: 50/s
  bucket_size: 10
  max_concurrent_requests: 5
  retry_parameters:
    task_retry_limit: 0
- name: pull-a
  mode: pull
- name: pull-limited
  mode: pull
  retry_parameters:
    task_retry_limit: 2
"""
PUSH_QUEUES = ("push-a", "push-dead", "default")
PULL_QUEUES = ("pull-a", "pull-limited")
SEED_NAMES = ("seed-0", "seed-1", "seed-2")
DEAD_NAMES = ("dead-0", "dead-1")
#: Values path parameters are steered to (half of the generated cases).
KNOWN_PATH_VALUES: dict[str, tuple[str, ...]] = {
    "queue": (*PUSH_QUEUES, *PULL_QUEUES),
    "name": (*SEED_NAMES, *DEAD_NAMES),
    "task": SEED_NAMES,
    "project": ("s~app", "app"),
}
#: Cloud Tasks resource names (parent, queue, task) the Cloud Tasks routes are steered to.
CLOUD_PARENT = "projects/p/locations/l"
CLOUD_NAMES = (
    CLOUD_PARENT,
    *(f"{CLOUD_PARENT}/queues/{q}" for q in (*PUSH_QUEUES, *PULL_QUEUES)),
    *(f"{CLOUD_PARENT}/queues/{q}/tasks/{n}" for q in ("push-a", "pull-a") for n in SEED_NAMES),
)
CLOUD_KEYS = ("parent", "name", "resource", "queue_name")
V1BETA2_PREFIX = "/taskqueue/v1beta2/"
EXAMPLES_PER_OPERATION = scale(12, 300)
#: Lines of the daemon's log that mean a request broke something inside pushd.
BROKEN = re.compile(r"api_internal_error|Traceback|delivery_failed")


# ------------------------------------------------------------------ the daemon, synchronously


@dataclass
class LiveDaemon:
    """A ``pushd serve`` subprocess driven from synchronous code (schemathesis uses requests).

    A thread drains the daemon's stderr into :attr:`log`, so a chatty daemon never blocks on a
    full pipe.
    """

    proc: subprocess.Popen[str]
    url: str = ""
    log: list[str] = field(default_factory=list)
    session: requests.Session = field(default_factory=requests.Session)
    _ready: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, tmp: Path, queue_yaml: str, db: str | None = None, **env: str) -> LiveDaemon:
        (tmp / "queue.yaml").write_text(queue_yaml)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pushd",
                "serve",
                "--config",
                str(tmp / "queue.yaml"),
                "--db",
                db or str(tmp / "pushd.sqlite3"),
                "--port",
                "0",
                "--default-target",
                DEAD_TARGET,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
        daemon = cls(proc)
        daemon._reader = threading.Thread(target=daemon._read, daemon=True)
        daemon._reader.start()
        if not daemon._ready.wait(START_TIMEOUT_S) or not daemon.url:
            daemon.stop()
            raise AssertionError("pushd did not start:\n" + "\n".join(daemon.log))
        return daemon

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.rstrip("\n")
            self.log.append(line)
            if not self.url and (m := LISTENING.search(line)):
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def memory_kib(self, key: str = "VmRSS") -> int:
        """``VmRSS`` (now) or ``VmHWM`` (peak so far) of the daemon, in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {key} in /proc/{self.proc.pid}/status")

    def broken_lines(self) -> list[str]:
        return [line for line in self.log if BROKEN.search(line)]

    def stop(self) -> int:
        self.session.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode

    def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        response = self.session.request(method, self.url + path, timeout=10, **kw)
        return response.status_code, response.json() if response.content else None


def _seed(daemon: LiveDaemon) -> None:
    """Tasks that exist, under the names path parameters are steered to.

    Tombstones expire at once (``PUSHD_TOMBSTONE_RETENTION_S=0``), so a name the previous
    operation deleted can be added again; an existing one answers ``TASK_ALREADY_EXISTS``.
    """
    for queue in PUSH_QUEUES:
        batch = [
            {"name": n, "url": "/seed", "payload": "s", "countdown": 86400} for n in SEED_NAMES
        ]
        status, _ = daemon.call("POST", f"/api/v1/queues/{queue}/tasks", json={"tasks": batch})
        assert status == 200
    for queue in PULL_QUEUES:
        batch = [{"name": n, "payload": "p", "tag": "t"} for n in SEED_NAMES]
        status, _ = daemon.call("POST", f"/api/v1/queues/{queue}/tasks", json={"tasks": batch})
        assert status == 200
    # push-dead gives up after one failed attempt: these become dead letters within a moment
    batch = [{"name": n, "url": "/dies"} for n in DEAD_NAMES]
    daemon.call("POST", "/api/v1/queues/push-dead/resume")
    daemon.call("POST", "/api/v1/queues/push-dead/tasks", json={"tasks": batch})


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveDaemon]:
    """The daemon under fuzzing, on each backend (PostgreSQL refuses values SQLite takes)."""
    db = None
    if request.param == "postgres":
        db = asyncio.run(fresh_database(request.getfixturevalue("pg_server")))
    daemon = LiveDaemon.start(
        tmp_path_factory.mktemp("fuzz"),
        QUEUE_YAML,
        db,
        PUSHD_TOMBSTONE_RETENTION_S="0",
        PUSHD_DURABILITY="normal",
    )
    try:
        _seed(daemon)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait for the dead letters to exist
            _, page = daemon.call("GET", "/api/v1/queues/push-dead/dead")
            if {t["name"] for t in page["tasks"]} >= set(DEAD_NAMES):
                break
            time.sleep(0.05)
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def seeded(live: LiveDaemon) -> LiveDaemon:
    _seed(live)
    return live


# ------------------------------------------------------------------ the schema


def _document() -> dict[str, Any]:
    """The OpenAPI document of the daemon's router, built without a daemon.

    The handlers' dependencies are never called: only the routes are read.
    """
    domain = service.Service(
        store=None,  # type: ignore[arg-type]
        clock=None,  # type: ignore[arg-type]
        queues=None,  # type: ignore[arg-type]
        engine=None,  # type: ignore[arg-type]
    )
    app = api.create_app(service=domain, settings=pushd_settings.Settings())
    cloudtasks_rest.add_routes(app)  # as the daemon mounts them
    return openapi.document(app)


DOCUMENT = _document()
#: v2beta3 shares v2's handlers (tests/unit/test_cloudtasks_rest.py), so fuzzing v2 covers it
#: but for its own BatchCreateTasks; v2beta2 has its own handlers (pull queues, leases).
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT).exclude(
    path_regex="^/v2beta3/(?!.*:batchCreate$)"
)
#: (operation label, status) -> responses seen, for the summary.
SEEN: collections.Counter[tuple[str, int]] = collections.Counter()


def _steer(case: schemathesis.Case) -> None:
    """Two cases in three get known queues and names instead of random text.

    Chosen from a checksum of the generated values, so that a case replays identically (the
    coverage phase's explicit cases never pass through generation hooks, hence not a hook).
    """
    params = case.path_parameters
    if not params:
        return
    digest = zlib.crc32(json.dumps(params, sort_keys=True, default=str).encode())
    if digest % 3 == 0:
        return
    cloud = case.path.startswith(("/v2/", "/v2beta2/", "/v2beta3/"))
    for index, key in enumerate(sorted(params)):
        if cloud and key in CLOUD_KEYS:
            params[key] = CLOUD_NAMES[(digest >> (4 * index)) % len(CLOUD_NAMES)]
        elif key in KNOWN_PATH_VALUES:
            known = KNOWN_PATH_VALUES[key]
            params[key] = known[(digest >> (4 * index)) % len(known)]


def _header(response: schemathesis.Response, name: str) -> str:
    for key, values in response.headers.items():
        if key.lower() == name.lower():
            return values[0] if isinstance(values, list) else str(values)
    return ""


def _html_errors(path: str) -> bool:
    """Whether the operations of ``path`` document their errors as HTML pages (the console);
    any method of the path, since the router answers an undocumented one (405) the same way."""
    return any(
        "text/html" in answer.get("content", {})
        for operation in DOCUMENT["paths"].get(path, {}).values()
        for status, answer in operation["responses"].items()
        if status.startswith("4")
    )


def error_envelope(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Every 4xx is JSON with the error envelope of its API (an HTML page for the console's
    paths); /rpc_http always answers 200."""
    status = response.status_code
    if case.path == "/rpc_http":
        assert status == 200, f"/rpc_http answered HTTP {status}; the SDK needs 200"
        answer = remote.Response()
        answer.ParseFromString(response.content)
        kinds = [f for f in ("response", "application_error", "rpc_error") if answer.HasField(f)]
        assert len(kinds) == 1, f"not exactly one of response/application_error/rpc_error: {kinds}"
        if answer.HasField("application_error"):
            assert answer.application_error.code != ErrorCode.INTERNAL_ERROR, answer
        return None
    if not 400 <= status < 500:
        return None
    media = _header(response, "Content-Type").split(";")[0].strip()
    if _html_errors(case.path):
        assert media == "text/html", f"{status} answered with Content-Type {media!r}"
        page = response.content.decode("utf-8")
        assert page.startswith("<!doctype html>"), page[:200]
        assert f"<h1>{status} " in page, page
        return None
    assert media == "application/json", f"{status} answered with Content-Type {media!r}"
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(
            f"{status} with a body that is not JSON: {response.content[:200]!r}"
        ) from exc
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == status, body
    assert isinstance(error["message"], str), body
    assert error["message"], body
    if case.path.startswith(cloudtasks_rest.prefixes()):  # Google's google.rpc envelope
        assert error["status"] in cloudtasks_rpc.Code.__members__, body
    elif case.path.startswith(V1BETA2_PREFIX):
        assert isinstance(error["errors"], list), body
        assert error["errors"], body
        for item in error["errors"]:
            assert {"domain", "reason", "message"} <= set(item), body
    else:
        assert error["status"] in ErrorCode.__members__, body
        assert error.get("exception") is None or isinstance(error["exception"], str), body
    return None


CHECKS = [
    st_checks.not_a_server_error,
    oas_checks.status_code_conformance,
    oas_checks.content_type_conformance,
    oas_checks.response_schema_conformance,
    error_envelope,
]


def test_the_fuzzed_document_is_the_served_one(live: LiveDaemon) -> None:
    status, served = live.call("GET", "/openapi.json")
    assert status == 200
    assert served == json.loads(json.dumps(DOCUMENT))
    assert sum(len(methods) for methods in DOCUMENT["paths"].values()) >= 28


@pytest.mark.timeout(scale(120, 1800))
@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not FULL,
)
def test_every_operation_answers_without_5xx_and_with_json_errors(
    case: schemathesis.Case, seeded: LiveDaemon
) -> None:
    _steer(case)
    response = case.call(base_url=seeded.url, session=seeded.session, timeout=10)
    SEEN[(case.operation.label, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS)


def test_the_daemon_survived_the_fuzz_without_an_internal_error(live: LiveDaemon) -> None:
    """Runs after the fuzz (file order): still up, healthy, and no traceback was logged."""
    assert live.alive()
    assert live.call("GET", "/healthz") == (200, {"status": "ok"})
    assert live.broken_lines() == []
    by_status = collections.Counter[int]()
    for (_, status), count in SEEN.items():
        by_status[status] += count
    operations = {label for label, _ in SEEN}
    print(
        f"\nfuzz: {sum(SEEN.values())} cases over {len(operations)} operations; "
        f"statuses {dict(sorted(by_status.items()))}"
    )


# ------------------------------------------------------------------ oversized bodies

MIB = 1 << 20
LIMIT = 32 * MIB  # wire.MAX_REQUEST_BYTES
HUGE = 200 * MIB


@dataclass
class Upload:
    status: int  # 0: no answer
    head: bytes
    body: bytes
    sent: int  # body bytes written before the answer came


def _answer(sock: socket.socket, timeout_s: float) -> tuple[int, bytes, bytes]:
    """Read one HTTP response (status, head, body by Content-Length) from ``sock``."""
    data = b""
    sock.settimeout(timeout_s)
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        while m and len(body) < int(m.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        return status, head, body
    return 0, data, b""


def _upload(
    daemon: LiveDaemon,
    path: str,
    *,
    chunked: bool,
    total: int = HUGE,
    chunk: int = MIB,
    pause_s: float = 0.002,
    content_type: str = "application/json",
    expect_continue: bool = False,
) -> Upload:
    """Stream a body of ``total`` bytes slowly, watching for an answer after every chunk."""
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    if expect_continue:
        head.append("Expect: 100-continue")
    piece = b"[" + b" " * (chunk - 1)  # JSON-ish: a handler would refuse it only after reading
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sent = 0
        while sent < total:
            readable, _, _ = select.select([sock], [], [], pause_s)
            if readable:
                break
            data = piece[: min(chunk, total - sent)]
            frame = f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data
            try:
                sock.sendall(frame)
            except OSError:  # the daemon closed the connection: the answer is waiting
                break
            sent += len(data)
            piece = b" " * chunk
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        status, raw_head, body = _answer(sock, 10)
    return Upload(status, raw_head, body, sent)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    """A daemon of its own, so that the fuzz's memory does not blur the measurements."""
    daemon = LiveDaemon.start(tmp_path_factory.mktemp("big"), QUEUE_YAML)
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("path", "envelope"),
    [
        ("/api/v1/queues/push-a/tasks", "native"),
        ("/api/v1/queues/pull-a/lease", "native"),
        ("/taskqueue/v1beta2/projects/s~app/taskqueues/pull-a/tasks", "google"),
    ],
)
def test_an_oversized_body_gets_413_long_before_it_is_all_sent(
    quiet: LiveDaemon, path: str, envelope: str, chunked: bool
) -> None:
    peak_before = quiet.memory_kib("VmHWM")
    upload = _upload(quiet, path, chunked=chunked)
    peak_after = quiet.memory_kib("VmHWM")
    assert upload.status == 413, upload.head
    error = json.loads(upload.body)["error"]
    assert error["code"] == 413
    if envelope == "native":
        assert error["status"] == "TASK_TOO_LARGE"
    else:
        assert error["errors"][0]["reason"] == "requestTooLarge"
    # the refusal comes at the limit, not at the end of the 200 MiB (the slack: what a loaded
    # machine lets the sender write, 1 MiB per 2 ms, before the 413 is read; 12 MiB was seen)
    assert upload.sent <= LIMIT + 16 * MIB, upload.sent
    # and the daemon's peak memory grows by (at most about twice) the limit, never by the body
    assert (peak_after - peak_before) * 1024 < 3 * LIMIT, (peak_before, peak_after)
    assert quiet.alive()
    assert quiet.call("GET", "/healthz") == (200, {"status": "ok"})


@pytest.mark.timeout(60)
def test_a_body_just_under_the_limit_is_read_and_judged_on_its_content(quiet: LiveDaemon) -> None:
    """Below 32 MiB the body is read: a task that large is then refused by the task rules."""
    payload = "x" * (LIMIT - 1024)
    status, body = quiet.call(
        "POST", "/api/v1/queues/push-a/tasks", data=json.dumps({"payload": payload})
    )
    assert status == 413
    assert body["error"]["status"] == "TASK_TOO_LARGE"
    assert "task size" in body["error"]["message"]


@pytest.mark.timeout(60)
def test_a_body_declared_over_the_limit_is_refused_before_it_is_sent(quiet: LiveDaemon) -> None:
    path = "/api/v1/queues/push-a/tasks"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {HUGE}\r\nExpect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", quiet.port), timeout=10) as sock:
        sock.sendall(head.encode())
        status, raw_head, _ = _answer(sock, 3)
    assert status == 413, raw_head
