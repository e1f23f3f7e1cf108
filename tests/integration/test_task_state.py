"""State a person can see, on the real daemon: a task's last attempt (API, `task` CLI, kept
across a restart), pull tasks out of leases kept as dead letters, and where each push queue's
tasks go (the start-up log and its warning for an unmapped target)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.integration.harness import Daemon, api
from tests.integration.test_cli import pushd

if TYPE_CHECKING:
    import aiohttp

    from tests.integration.conftest import StartDaemon

QUEUE_YAML = """
queue:
- name: down
  rate: 100/s
  target: down
  retry_parameters:
    min_backoff_seconds: 3600
- name: typo
  rate: 1/s
  target: v2.wrker
- name: anywhere
  rate: 1/s
- name: pulled
  mode: pull
  retry_parameters:
    task_retry_limit: 1
"""
POLL_S = 0.05


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed): connections to it
    are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_file(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "pushd.yaml"
    path.write_text(f"targets:\n  down: http://127.0.0.1:{port}\n")
    return path


async def wait_for(check: Any, timeout_s: float = 30.0) -> Any:
    """Poll ``check()`` (a coroutine function) until it returns something truthy: the outcome
    of an attempt is written after the attempt's log line, and no event says when."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"nothing after {timeout_s}s")


def fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


async def test_a_refused_connection_shows_its_last_attempt_in_the_api_and_the_cli(
    start_daemon: StartDaemon, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    port = closed_port()
    conf = settings_file(tmp_path, port)
    d = await start_daemon(QUEUE_YAML, extra_args=["--settings", str(conf)])
    before_us = time.time_ns() // 1000
    added = await pushd("add", "down", "--name", "t1", "--url", "/hook", daemon=d)
    assert added.code == 0, added.err

    async def tried() -> Any:
        status, body = await api(session, d, "GET", "/api/v1/queues/down/tasks/t1")
        assert status == 200
        return body if body["last_attempt"] else None

    task = await wait_for(tried)
    after_us = time.time_ns() // 1000
    last = task["last_attempt"]
    assert (last["status"], last["error"]) == (None, "refused")
    assert last["url"] == f"http://127.0.0.1:{port}/hook"
    # The transport's own words (h1: "ConnectionRefusedError: cannot connect to HOST:PORT: ...";
    # aiohttp: "ClientConnectorError: Cannot connect to host HOST:PORT ..."), naming the address.
    assert f"127.0.0.1:{port}" in last["message"], last["message"]
    assert "refused" in last["message"].lower(), last["message"]
    assert before_us <= last["time_us"] <= after_us
    assert last["time"] == last["time_us"] / 1e6
    assert (task["retry_count"], task["execution_count"], task["last_status"]) == (1, 0, None)

    shown, listed = await asyncio.gather(
        pushd("task", "down", "t1", daemon=d), pushd("tasks", "down", daemon=d)
    )
    assert shown.code == 0, shown.err
    pairs = [line.partition(":") for line in shown.out.splitlines()]
    details = {key.strip(): value.strip() for key, _, value in pairs}
    assert details["last attempt"].endswith(": refused")
    assert details["message"] == last["message"]
    assert details["sent to"] == last["url"]
    header, row = listed.out.splitlines()
    assert header.split()[-2:] == ["LAST_STATUS", "PAYLOAD_BYTES"]
    assert row.split()[-2] == "refused"

    # Kept with the task: the same after a restart.
    assert await d.stop() == 0
    again = await start_daemon(QUEUE_YAML, extra_args=["--settings", str(conf)])
    status, body = await api(session, again, "GET", "/api/v1/queues/down/tasks/t1")
    assert status == 200
    assert body["last_attempt"] == last


async def test_the_start_shows_where_each_queue_goes_and_warns_of_an_unmapped_target(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    port = closed_port()
    d = await start_daemon(
        QUEUE_YAML, extra_args=["--settings", str(settings_file(tmp_path, port))]
    )
    await d.wait_event("target_unmapped")
    assert " listening " in f" {d.log[0]} "  # still the first line
    routes = [fields(line) for line in d.events("queue_targets")]
    assert routes == [
        {"url": f"http://127.0.0.1:{port}", "target": "down", "queues": "down"},
        {"url": d.default_target, "target": "v2.wrker", "queues": "typo"},
        {"url": d.default_target, "target": "-", "queues": "anywhere,default"},
    ]
    [warning] = d.events("target_unmapped")
    words = warning.split()
    assert words[words.index("target_unmapped") - 1] == "warning"
    assert (fields(warning)["queue"], fields(warning)["target"], fields(warning)["url"]) == (
        "typo",
        "v2.wrker",
        d.default_target,
    )


async def test_a_pull_task_out_of_leases_is_a_dead_letter_that_can_be_redriven(
    start_daemon: StartDaemon, session: aiohttp.ClientSession
) -> None:
    d: Daemon = await start_daemon(QUEUE_YAML)
    added = await pushd("add", "pulled", "--name", "job", "--payload", "hi", daemon=d)
    assert added.code == 0, added.err
    first = await pushd("lease", "pulled", "--seconds", "0", "--json", daemon=d)
    assert [t["name"] for t in first.json()["tasks"]] == ["job"]
    second = await pushd("lease", "pulled", "--seconds", "0", "--json", daemon=d)
    assert second.json()["tasks"] == []  # over task_retry_limit 1: not leased again
    [line] = await d.wait_event("task_dead_lettered")
    assert "task=job" in line

    status, page = await api(session, d, "GET", "/api/v1/queues/pulled/dead")
    assert status == 200
    [dead] = page["tasks"]
    assert (dead["name"], dead["method"], dead["attempts"]) == ("job", "PULL", 1)
    assert dead["reason"].startswith("task_retry_limit reached: leased 1 times")
    status, stats = await api(session, d, "GET", "/api/v1/queues/pulled")
    assert (stats["stats"]["tasks"], stats["stats"]["dead_letters"]) == (0, 1)
    listed = await pushd("dead", "pulled", daemon=d)
    assert listed.out.splitlines()[1].split()[0] == "job"

    redriven = await pushd("redrive", "pulled", "job", daemon=d)
    assert redriven.code == 0, redriven.err
    third = await pushd("lease", "pulled", "--seconds", "60", "--json", daemon=d)
    [leased] = third.json()["tasks"]
    assert (leased["name"], leased["retry_count"], json.dumps(leased["payload_base64"])) == (
        "job",
        1,
        '"aGk="',
    )
