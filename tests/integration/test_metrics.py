"""``GET /metrics`` after a known workload: the daemon as a subprocess, a real receiver, and
Prometheus' own parser reading the answer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Receiver, api

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web

    from tests.integration.conftest import StartDaemon

QUEUE_YAML = """\
queue:
- name: ok
  rate: 100/s
- name: bad
  rate: 100/s
  retry_parameters:
    task_retry_limit: 1
    min_backoff_seconds: 0.1
- name: jobs
  mode: pull
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text answer."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def one(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def test_metrics_count_a_known_workload(
    tmp_path: Path,
    start_daemon: StartDaemon,
    receiver: Receiver,
    session: aiohttp.ClientSession,
) -> None:
    def respond(request: web.Request, i: int) -> int:
        return 500 if request.path.startswith("/bad/") else 200

    receiver.respond = respond
    d = await start_daemon(QUEUE_YAML)
    status, _ = await api(
        session,
        d,
        "POST",
        "/api/v1/queues/ok/tasks",
        json={"tasks": [{"url": f"/ok/{i}"} for i in range(10)]},
    )
    assert status == 200
    status, _ = await api(
        session,
        d,
        "POST",
        "/api/v1/queues/bad/tasks",
        json={"tasks": [{"url": f"/bad/{i}"} for i in range(3)]},
    )
    assert status == 200
    status, _ = await api(
        session,
        d,
        "POST",
        "/api/v1/queues/jobs/tasks",
        json={"tasks": [{"payload": "x"} for _ in range(4)]},
    )
    assert status == 200
    # Each bad task: attempt, 500, retry, attempt, 500, dead (task_retry_limit 1).
    await receiver.wait_for(10 + 3 * 2)
    status, leased = await api(
        session, d, "POST", "/api/v1/queues/jobs/lease", json={"lease_seconds": 60, "max_tasks": 3}
    )
    assert status == 200
    assert len(leased["tasks"]) == 3
    await d.wait_event("task_dead_lettered", count=3)
    for _ in range(1000):  # the outcomes are written a moment after the event is logged
        status, bad = await api(session, d, "GET", "/api/v1/queues/bad")
        if bad["stats"]["dead_letters"] == 3:
            break
    assert bad["stats"]["dead_letters"] == 3
    assert (await api(session, d, "POST", "/api/v1/queues/ok/pause"))[0] == 200

    async with session.get(f"{d.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        found = samples(await resp.text())

    assert one(found, "pushd_tasks_added_total", queue="ok") == 10
    assert one(found, "pushd_tasks_added_total", queue="bad") == 3
    assert one(found, "pushd_tasks_added_total", queue="jobs") == 4
    assert one(found, "pushd_tasks_delivered_total", queue="ok") == 10
    assert one(found, "pushd_attempts_failed_total", queue="bad", status_class="5xx") == 6
    assert one(found, "pushd_tasks_retried_total", queue="bad") == 3
    assert one(found, "pushd_tasks_dead_lettered_total", queue="bad") == 3
    assert one(found, "pushd_tasks_leased_total", queue="jobs") == 3
    assert one(found, "pushd_delivery_latency_seconds_count", queue="ok") == 10
    assert one(found, "pushd_delivery_latency_seconds_count", queue="bad") == 6
    assert one(found, "pushd_eta_lateness_seconds_count", queue="ok") == 10
    # Gauges, read at the scrape.
    assert one(found, "pushd_tasks_waiting", queue="ok") == 0
    assert one(found, "pushd_tasks_waiting", queue="jobs") == 4
    assert one(found, "pushd_dead_letters", queue="bad") == 3
    assert one(found, "pushd_queue_paused", queue="ok") == 1
    assert one(found, "pushd_queue_paused", queue="bad") == 0
    assert one(found, "pushd_enforced_rate", queue="bad") == 100
    assert one(found, "pushd_tasks_in_flight", queue="ok") == 0
    assert one(found, "pushd_oldest_eta_age_seconds", queue="ok") == 0
    assert one(found, "pushd_tasks_waiting", queue="default") == 0  # every configured queue
