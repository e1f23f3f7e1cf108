"""Operator events: stops that wait, and queues removed from queue.yaml (issue 16).

The real daemon on a real SQLite file delivering to a real receiver. The faults:

- a stop with a delivery that hangs said nothing for up to ``shutdown_grace_s`` (30 s by
  default), and a second SIGTERM or Ctrl-C did nothing: the operator's only way out was
  ``kill -9``. Now it logs ``shutdown in_flight=N remaining_s=S`` every ``shutdown_report_s``,
  and a second signal ends it at once, exit code 128 + the signal, the hung task given back
  (due at once at the next start, no attempt counted);
- a queue removed from queue.yaml kept its tasks, but vanished from the queue listing, the
  console and /metrics, and every request about it answered "not configured": its tasks
  could be neither seen nor deleted. Now it is shown as removed (paused), its tasks
  listable, deletable and purgeable, and each removal is logged with its task count;
- a reload removing thousands of queues at once must keep the API answering: a client asks
  ``/healthz`` every 10 ms during it (figures in docs/RELIABILITY.md, "Operator events: stops
  and removed queues").
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.harness import Daemon, Receiver, api
from tests.reliability.conftest import scale
from tests.reliability.probes import healthz_watch

if TYPE_CHECKING:
    import aiohttp

    from tests.integration.conftest import StartDaemon

REPORT_S = 0.3  # shutdown_report_s of these daemons
#: Most time from a second signal to the exit of the daemon: it waits for nothing (the old
#: main ignored the signal and waited out the 60 s grace). A bound well above the figure in
#: docs/RELIABILITY.md, as the machine is shared and noisy.
FORCED_EXIT_MAX_S = 10.0
#: Slowest /healthz answer allowed while a reload removes thousands of queues (measured
#: figure in docs/RELIABILITY.md; a bound well above it).
RELOAD_BLOCK_MAX_S = 0.5
SHUTDOWN = re.compile(r"\bshutdown in_flight=(\d+) remaining_s=(\d+)")


def _settings(tmp_path: Path) -> list[str]:
    path = tmp_path / "pushd.yaml"
    path.write_text(f"shutdown_grace_s: 60\nshutdown_report_s: {REPORT_S}\n")
    return ["--settings", str(path)]


async def _add(
    session: aiohttp.ClientSession, d: Daemon, queue: str, *tasks: dict[str, object]
) -> None:
    status, body = await api(
        session, d, "POST", f"/api/v1/queues/{queue}/tasks", json={"tasks": list(tasks)}
    )
    assert status == 200, body


async def _reload(d: Daemon, tmp_path: Path, queue_yaml: str) -> None:
    (tmp_path / "queue.yaml").write_text(queue_yaml)
    reloaded = len(d.events("config_reloaded"))
    await d.signal(signal.SIGHUP)
    await d.wait_event("config_reloaded", reloaded + 1, timeout_s=60)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
async def test_a_hung_stop_reports_progress_and_a_second_signal_ends_it_at_once(
    start_daemon: StartDaemon,
    receiver: Receiver,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    sig: signal.Signals,
    code: int,
) -> None:
    yaml = "queue:\n- name: q\n  rate: 10/s\n"
    d = await start_daemon(yaml, extra_args=_settings(tmp_path))
    receiver.delay_s = 3600  # the receiver takes the request and never answers
    await _add(session, d, "q", {"name": "hung"})
    await receiver.wait_started(1)
    await d.signal(sig)
    lines = await d.wait_event("shutdown", 3)  # the first at once, then one per REPORT_S
    reported = [SHUTDOWN.search(line) for line in lines]
    assert all(m is not None for m in reported), lines
    assert [int(m.group(1)) for m in reported if m] == [1, 1, 1], lines
    remaining = [int(m.group(2)) for m in reported if m]
    assert remaining == sorted(remaining, reverse=True), lines
    assert 0 < remaining[-1] <= 60, lines
    assert d.proc is not None
    assert d.proc.returncode is None  # still waiting for "hung"
    forced_at = time.monotonic()
    await d.signal(sig)
    assert await d.wait(timeout_s=30) == code
    exit_s = time.monotonic() - forced_at
    [forced] = d.events("shutdown_forced")
    assert f"signal={sig.name} in_flight=1 exit_code={code}" in forced, forced
    assert not [line for line in d.log if "Traceback" in line], "\n".join(d.log)
    # The next start sends it at once: its claim was given back at the forced stop, so there
    # is no claim left for the start to give back; no attempt was counted.
    receiver.delay_s = 0
    started_at = time.monotonic()
    d2 = await start_daemon(yaml, extra_args=_settings(tmp_path))
    [delivery] = await receiver.wait_for(1)
    again_s = time.monotonic() - started_at
    print(
        f"{sig.name}: {len(lines)} progress lines; exit {exit_s:.3f} s after the second signal;"
        f" hung task sent {again_s:.3f} s after the next start"
    )
    assert delivery.headers["X-AppEngine-TaskName"] == "hung"
    assert delivery.headers["X-AppEngine-TaskRetryCount"] == "0"
    assert not d2.events("claims_given_back"), "\n".join(d2.log)
    assert exit_s < FORCED_EXIT_MAX_S, f"the daemon took {exit_s:.1f} s to exit"


async def _pushd(d: Daemon, *argv: str) -> tuple[int, str]:
    """``python -m pushd ARGV`` against ``d``: exit code and standard output."""
    env = {k: v for k, v in os.environ.items() if k != "PUSHD_TOKEN"} | {"PUSHD_URL": d.url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pushd",
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def _shown_as_removed(
    session: aiohttp.ClientSession, d: Daemon, tasks: int, dead: int
) -> None:
    """``gone`` is removed and paused in the API, the ``queues`` command, the console and
    /metrics, with ``tasks`` tasks and ``dead`` dead letters."""
    _, body = await api(session, d, "GET", "/api/v1/queues")
    [gone] = [q for q in body["queues"] if q["name"] == "gone"]
    stats = gone["stats"]
    assert (stats["removed"], stats["paused"], stats["tasks"], stats["dead_letters"]) == (
        True,
        True,
        tasks,
        dead,
    ), gone
    code, out = await _pushd(d, "queues")
    [row] = [line.split() for line in out.splitlines() if line.startswith("gone ")]
    assert (code, row[1], row[2]) == (0, "push", "removed"), out
    async with session.get(d.url + "/") as resp:
        page = await resp.text()
    assert re.search(r'id="queue-gone">.*?<span class="paused"[^>]*>removed</span>', page, re.S)
    async with session.get(d.url + "/console/queues/gone") as resp:
        assert resp.status == 200
        page = await resp.text()
    assert 'id="state">removed<' in page, page
    assert 'id="removed"' in page, page
    async with session.get(d.url + "/metrics") as resp:
        metrics = await resp.text()
    for line in (
        'pushd_queue_removed{queue="gone"} 1.0',
        'pushd_queue_paused{queue="gone"} 1.0',
        f'pushd_tasks_waiting{{queue="gone"}} {float(tasks)}',
        'pushd_queue_removed{queue="kept"} 0.0',
    ):
        assert line in metrics, line


async def _dead_letter_stored(
    session: aiohttp.ClientSession, d: Daemon, queue: str, name: str
) -> None:
    """Wait (20 ms steps, 10 s at most) until ``name`` is a stored dead letter of ``queue``:
    ``task_dead_lettered`` is logged when the outcome is decided, and the flusher writes it a
    moment later (a reload in between counted the task as waiting: seen once under CI load)."""
    deadline = time.monotonic() + 10
    while True:
        status, _ = await api(session, d, "GET", f"/api/v1/queues/{queue}/dead/{name}")
        if status == 200:
            return
        assert time.monotonic() < deadline, f"dead letter {queue}/{name} never stored ({status})"
        await asyncio.sleep(0.02)


async def test_a_removed_queue_is_shown_as_removed_and_its_tasks_stay_manageable(
    start_daemon: StartDaemon,
    receiver: Receiver,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    count = scale(5, 200)
    kept = "- name: kept\n  rate: 50/s\n"
    gone = "- name: gone\n  rate: 50/s\n  retry_parameters:\n    task_retry_limit: 0\n"
    receiver.respond = lambda request, i: 500  # "dies" fails once: a dead letter
    d = await start_daemon("queue:\n" + kept + gone)
    await _add(session, d, "gone", {"name": "dies"})
    later = [{"name": f"t{i}", "countdown": 3600} for i in range(count)]
    for i in range(0, count, 100):  # a batch holds at most 100 tasks
        await _add(session, d, "gone", *later[i : i + 100])
    await d.wait_event("task_dead_lettered")
    await _dead_letter_stored(session, d, "gone", "dies")  # the log line comes before the write
    await _reload(d, tmp_path, "queue:\n" + kept)
    [removed] = d.events("queue_removed")
    assert f"queue=gone tasks={count} dead_letters=1" in removed, removed
    await _shown_as_removed(session, d, count, 1)
    # Listable, deletable, purgeable; adding stays refused and says why.
    status, listed = await api(session, d, "GET", "/api/v1/queues/gone/tasks?limit=2")
    assert (status, [t["name"] for t in listed["tasks"]]) == (200, ["t0", "t1"]), listed
    code, out = await _pushd(d, "tasks", "gone", "--all")
    assert code == 0, out
    assert "t1" in out, out
    status, body = await api(session, d, "DELETE", "/api/v1/queues/gone/tasks/t0")
    assert status == 200, body
    code, out = await _pushd(d, "purge", "gone", "--yes")
    assert code == 0, out
    status, body = await api(session, d, "POST", "/api/v1/queues/gone/tasks", json={"name": "x"})
    assert status == 404, body
    assert "removed from queue.yaml" in body["error"]["message"], body
    await _shown_as_removed(session, d, 0, 1)
    # A restart finds it again from the store (its dead letter), and logs it.
    assert await d.stop() == 0
    d = await start_daemon("queue:\n" + kept)
    [removed] = d.events("queue_removed")
    assert "queue=gone tasks=0 dead_letters=1" in removed, removed
    await _shown_as_removed(session, d, 0, 1)
    # Back in queue.yaml: a queue again, running, taking tasks.
    receiver.respond = lambda request, i: 200
    await _reload(d, tmp_path, "queue:\n" + kept + gone)
    status, info = await api(session, d, "GET", "/api/v1/queues/gone")
    assert (info["stats"]["removed"], info["stats"]["paused"], info["rate"]) == (
        False,
        False,
        "50/s",
    ), info
    await _add(session, d, "gone", {"name": "back"})
    got = await receiver.wait_until(
        lambda got: any(g.headers["X-AppEngine-TaskName"] == "back" for g in got)
    )
    [delivery] = [g for g in got if g.headers["X-AppEngine-TaskName"] == "back"]
    assert delivery.headers["X-AppEngine-QueueName"] == "gone"
    assert not [line for line in d.log if "Traceback" in line], "\n".join(d.log)


async def test_a_reload_removing_thousands_of_queues_keeps_the_api_answering(
    start_daemon: StartDaemon, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Every queue but one, each holding a task, removed by one reload while /healthz is
    asked every 10 ms; then the first page of the queue listing, removed queues included."""
    count = scale(300, 5000)
    names = [f"q{i:05d}" for i in range(count)]
    entries = "".join(f"- name: {n}\n  rate: 1/s\n" for n in names)
    d = await start_daemon("queue:\n- name: kept\n" + entries)
    gate = asyncio.Semaphore(16)

    async def one(name: str) -> None:
        async with gate:
            await _add(session, d, name, {"name": "t", "countdown": 3600})

    await asyncio.gather(*(one(n) for n in names))
    async with healthz_watch(d) as stall:
        started = time.monotonic()
        await _reload(d, tmp_path, "queue:\n- name: kept\n")
        took = time.monotonic() - started
    slowest = stall.slowest_s
    assert len(d.events("queue_removed")) == count
    started = time.monotonic()
    status, body = await api(session, d, "GET", "/api/v1/queues?limit=1000")
    page_s = time.monotonic() - started
    assert status == 200
    shown = [(q["name"], q["stats"]["removed"]) for q in body["queues"]]
    expected = [("default", False), ("kept", False)] + [(n, True) for n in names]
    assert shown == expected[:1000], shown[:3]
    print(
        f"reload removing {count} queues: {took:.2f} s; slowest /healthz meanwhile "
        f"{slowest:.3f} s; first page of 1000 queues {page_s:.3f} s"
    )
    assert slowest < RELOAD_BLOCK_MAX_S, f"the loop was held {slowest:.3f} s"
