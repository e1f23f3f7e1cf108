"""The real daemon delivering to a real receiver: headers, retries, throttles, durability."""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.harness import Daemon, Receiver, api

#: Every delivery test runs on each transport that keeps the delivery rules.
pytestmark = pytest.mark.usefixtures("each_transport")

if TYPE_CHECKING:
    import aiohttp

    from tests.integration.conftest import StartDaemon

FAST_RETRY = """
queue:
- name: work
  rate: 100/s
  bucket_size: 50
  retry_parameters:
    min_backoff_seconds: 0.2
    max_backoff_seconds: 1
    max_doublings: 2
    task_retry_limit: 3
"""


async def add(
    session: aiohttp.ClientSession, d: Daemon, queue: str, *tasks: dict[str, object]
) -> list[dict[str, object]]:
    status, body = await api(
        session, d, "POST", f"/api/v1/queues/{queue}/tasks", json={"tasks": list(tasks)}
    )
    assert status == 200, body
    return body["tasks"]  # type: ignore[no-any-return]


async def test_headers_across_retries(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    """A task failing twice (500, then no response) carries App Engine's headers each time."""
    receiver.respond = lambda request, i: [500, 404, 200][i]
    d = await start_daemon(FAST_RETRY)
    [added] = await add(
        session,
        d,
        "work",
        {"name": "h1", "url": "/hook", "payload": "hi", "headers": {"X-Mine": ["a", "b"]}},
    )
    assert added["result"] == "OK"
    first, second, third = await receiver.wait_for(3)
    for delivery in (first, second, third):
        h = delivery.headers
        assert (delivery.method, delivery.path, delivery.body) == ("POST", "/hook", b"hi")
        assert h["X-AppEngine-QueueName"] == "work"
        assert h["X-AppEngine-TaskName"] == "h1"
        assert [v for k, v in delivery.all_headers if k == "X-Mine"] == ["a", "b"]
        assert h["Content-Type"] == "text/plain; charset=utf-8"
        assert float(h["X-AppEngine-TaskETA"]) > 1.6e9
        assert len(h["X-AppEngine-TaskETA"].split(".")[1]) == 6
    assert [d.headers["X-AppEngine-TaskRetryCount"] for d in (first, second, third)] == [
        "0",
        "1",
        "2",
    ]
    assert [d.headers["X-AppEngine-TaskExecutionCount"] for d in (first, second, third)] == [
        "0",
        "1",
        "2",
    ]
    assert "X-AppEngine-TaskPreviousResponse" not in first.headers
    assert second.headers["X-AppEngine-TaskPreviousResponse"] == "500"
    assert third.headers["X-AppEngine-TaskPreviousResponse"] == "404"
    assert second.headers["X-AppEngine-TaskRetryReason"] == "App Error"
    # The ETA header moves with each retry.
    etas = [float(d.headers["X-AppEngine-TaskETA"]) for d in (first, second, third)]
    assert etas[0] < etas[1] < etas[2]


async def test_retry_schedule_follows_the_policy_then_dead_letters_and_redrives(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.respond = lambda request, i: 503 if i < 4 else 200
    d = await start_daemon(
        FAST_RETRY.replace("rate: 100/s", "rate: 100/s\n  max_concurrent_requests: 5")
    )
    await add(session, d, "work", {"name": "doomed"})
    deliveries = await receiver.wait_for(4)
    gaps = [b.at - a.at for a, b in itertools.pairwise(deliveries)]
    # backoff(1..3) = 0.2, 0.4, 0.8 s (max_doublings 2, cap 1 s); a 503 also halves the queue's
    # rate, which at 100/s is far above this pace. Retry times are never early.
    for gap, backoff in zip(gaps, [0.2, 0.4, 0.8], strict=True):
        assert gap >= backoff - 0.02, gaps
    # task_retry_limit 3: four attempts, then the task is a dead letter.
    status, dead = await _wait_dead(session, d, "work", "doomed")
    assert status == 200
    assert dead["last_status"] == 503
    assert dead["retry_count"] == 4
    status, body = await api(
        session, d, "POST", "/api/v1/queues/work/tasks", json={"name": "doomed"}
    )
    assert body["tasks"][0]["result"] == "TOMBSTONED_TASK"
    status, _ = await api(session, d, "POST", "/api/v1/queues/work/dead/doomed/redrive")
    assert status == 200
    [*_, redriven] = await receiver.wait_for(5)
    assert redriven.headers["X-AppEngine-TaskName"] == "doomed"
    assert redriven.headers["X-AppEngine-TaskRetryCount"] == "0"


async def _wait_dead(
    session: aiohttp.ClientSession, d: Daemon, queue: str, name: str
) -> tuple[int, dict[str, object]]:
    # The dead letter is written right after the last answer; the API is the only window on
    # it from another process, so ask until it shows (each ask is a real round trip).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, body = await api(session, d, "GET", f"/api/v1/queues/{queue}/dead/{name}")
        if status == 200:
            return status, body
    raise AssertionError(f"{name} never became a dead letter")


async def test_named_tasks_dedup_and_tombstones(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    d = await start_daemon("queue:\n- name: work\n  rate: 0\n")  # paused: nothing runs
    [a] = await add(session, d, "work", {"name": "once"})
    [b] = await add(session, d, "work", {"name": "once"})
    assert (a["result"], b["result"]) == ("OK", "TASK_ALREADY_EXISTS")
    status, _ = await api(session, d, "DELETE", "/api/v1/queues/work/tasks/once")
    assert status in (200, 204)
    [c] = await add(session, d, "work", {"name": "once"})
    assert c["result"] == "TOMBSTONED_TASK"
    results = await add(session, d, "work", {"name": "fresh"}, {"name": "once"}, {})
    assert [r["result"] for r in results] == ["OK", "TOMBSTONED_TASK", "OK"]
    assert receiver.deliveries == []


async def test_countdown_and_eta_are_honoured(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    d = await start_daemon("queue:\n- name: work\n  rate: 50/s\n")
    t0 = time.monotonic()
    await add(
        session,
        d,
        "work",
        {"name": "later", "countdown": 1.0},
        {"name": "at", "eta": time.time() + 0.5},
    )
    deliveries = await receiver.wait_for(2)
    by_name = {x.headers["X-AppEngine-TaskName"]: x.at - t0 for x in deliveries}
    assert by_name["at"] >= 0.45
    assert by_name["later"] >= 0.95


async def test_pause_resume_and_purge(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    d = await start_daemon("queue:\n- name: work\n  rate: 50/s\n")
    status, _ = await api(session, d, "POST", "/api/v1/queues/work/pause")
    assert status == 200
    await add(session, d, "work", {"name": "p1"}, {"name": "p2"})
    status, info = await api(session, d, "GET", "/api/v1/queues/work")
    assert info["stats"]["paused"] is True
    assert info["stats"]["tasks"] == 2
    assert receiver.deliveries == []
    await api(session, d, "POST", "/api/v1/queues/work/resume")
    await receiver.wait_for(2)
    await api(session, d, "POST", "/api/v1/queues/work/pause")
    await add(session, d, "work", {"name": "p3"}, {"name": "p4"})
    status, _body = await api(session, d, "POST", "/api/v1/queues/work/purge")
    assert status == 200
    status, info = await api(session, d, "GET", "/api/v1/queues/work")
    assert info["stats"]["tasks"] == 0
    [again] = await add(session, d, "work", {"name": "p3"})
    assert again["result"] == "TOMBSTONED_TASK"


async def test_rate_5_bucket_2_never_sends_a_task_before_its_token(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    """Through the real daemon, only what a busy machine cannot break: the bucket holds two
    tokens at the resume and one more comes every 200 ms, so the n-th request (n >= 3) cannot
    arrive before (n - 2) * 200 ms after the resume was asked for. The exact schedule (two at
    once, then one every 200 ms to the microsecond) is the FakeClock twin's, in
    tests/unit/test_scheduler.py."""
    d = await start_daemon("queue:\n- name: work\n  rate: 5/s\n  bucket_size: 2\n")
    await api(session, d, "POST", "/api/v1/queues/work/pause")
    await add(session, d, "work", *({"name": f"r{i}"} for i in range(7)))
    resumed_at = time.monotonic()  # before the daemon resumes: its tokens are all later
    await api(session, d, "POST", "/api/v1/queues/work/resume")
    deliveries = await receiver.wait_for(7)
    assert sorted(x.headers["X-AppEngine-TaskName"] for x in deliveries) == [
        f"r{i}" for i in range(7)
    ]
    arrived = sorted(x.started_at - resumed_at for x in deliveries)
    for n in range(3, 8):  # 1 ms for the bucket's microsecond rounding
        assert arrived[n - 1] >= (n - 2) * 0.2 - 0.001, arrived


async def test_max_concurrent_requests_holds_against_a_slow_receiver(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.delay_s = 0.2
    d = await start_daemon(
        "queue:\n- name: work\n  rate: 500/s\n  bucket_size: 100\n  max_concurrent_requests: 3\n"
    )
    await add(session, d, "work", *({"name": f"c{i}"} for i in range(12)))
    await receiver.wait_for(12)
    assert receiver.max_in_flight == 3


async def test_retry_after_is_respected(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.respond = lambda request, i: (429, {"Retry-After": "2"}) if i == 0 else 200
    d = await start_daemon(FAST_RETRY)
    await add(session, d, "work", {"name": "ra"})
    first, second = await receiver.wait_for(2)
    assert second.at - first.at >= 1.95


async def test_graceful_shutdown_lets_in_flight_deliveries_finish(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.delay_s = 1.0
    d = await start_daemon("queue:\n- name: work\n  rate: 50/s\n")
    await add(session, d, "work", {"name": "g1"})
    await receiver.wait_started(1)
    await d.signal(signal.SIGTERM)
    assert await d.wait() == 0
    assert [x.status for x in receiver.deliveries] == [200]
    assert d.events("shutdown")  # logged before exit; the reader drained stderr in wait()


@pytest.mark.timeout(120)
async def test_kill_9_mid_delivery_then_restart_delivers_every_task(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    receiver.delay_s = 0.5
    yaml = "queue:\n- name: work\n  rate: 100/s\n  bucket_size: 20\n"
    d = await start_daemon(yaml, extra_args=["--settings", str(_short_deadline(tmp_path))])
    names = [f"k{i}" for i in range(20)]
    await add(session, d, "work", *({"name": n} for n in names))
    await receiver.wait_started(1)
    await d.kill()  # SIGKILL: nothing is flushed, claims are left in the database
    receiver.delay_s = 0.0
    restarted = time.monotonic()
    d2 = await start_daemon(yaml, extra_args=["--settings", str(_short_deadline(tmp_path))])

    def redelivered() -> set[str]:
        return {
            x.headers["X-AppEngine-TaskName"]
            for x in receiver.deliveries
            if x.status == 200 and x.started_at > restarted
        }

    # Answers the killed daemon never read do not count: every task must come again.
    while redelivered() != set(names):
        await receiver.wait_for(len(receiver.deliveries) + 1, timeout_s=60)
    deadline = time.monotonic() + 30
    while True:  # the outcomes reach the database right after the answers
        _status, info = await api(session, d2, "GET", "/api/v1/queues/work")
        if info["stats"]["tasks"] == 0:
            break
        assert time.monotonic() < deadline, info


def _short_deadline(tmp_path: Path) -> Path:
    """Settings whose default dispatch deadline (and so the claim lease) is 2 s."""
    path = tmp_path / "pushd.yaml"
    path.write_text("default_dispatch_deadline_s: 2\nshutdown_grace_s: 5\n")
    return path


async def test_sighup_reloads_queue_yaml_and_a_removed_queue_is_paused_not_dropped(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    d = await start_daemon("queue:\n- name: work\n  rate: 0\n- name: gone\n  rate: 0\n")
    await add(session, d, "work", {"name": "w1"})
    await add(session, d, "gone", {"name": "g1"})
    assert receiver.deliveries == []
    # Un-pause `work` by rate, drop `gone` from the file, add a bad file first: it is refused.
    (tmp_path / "queue.yaml").write_text("queue:\n- name: work\n  rate: fast\n")
    await d.signal(signal.SIGHUP)
    await d.wait_event("config_rejected")
    status, info = await api(session, d, "GET", "/api/v1/queues/work")
    (tmp_path / "queue.yaml").write_text("queue:\n- name: work\n  rate: 50/s\n")
    await d.signal(signal.SIGHUP)
    await d.wait_event("config_reloaded")
    [delivery] = await receiver.wait_for(1)
    assert delivery.headers["X-AppEngine-TaskName"] == "w1"
    assert status == 200
    assert info["rate"] == "0"
    # `gone` is no longer configured, but its task is kept, and shown (issue 16).
    status, info = await api(session, d, "GET", "/api/v1/queues/gone")
    assert status == 200
    assert (info["stats"]["removed"], info["stats"]["paused"], info["stats"]["tasks"]) == (
        True,
        True,
        1,
    )
    (tmp_path / "queue.yaml").write_text(
        "queue:\n- name: work\n  rate: 50/s\n- name: gone\n  rate: 5/s\n"
    )
    await d.signal(signal.SIGHUP)
    [_, again] = await receiver.wait_for(2)
    assert again.headers["X-AppEngine-TaskName"] == "g1"


async def test_the_listening_line_shows_even_when_only_errors_are_logged(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    d = await start_daemon("queue:\n- name: work\n  rate: 5/s\n", env={"PUSHD_LOG_LEVEL": "error"})
    status, body = await api(session, d, "GET", "/healthz")
    assert (status, body) == (200, {"status": "ok"})
    await add(session, d, "work", {"name": "quiet"})
    await receiver.wait_for(1)
    assert d.events("listening")
    assert not d.events("task_delivered")
