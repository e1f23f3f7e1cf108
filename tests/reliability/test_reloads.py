"""Operator events: reloads (SIGHUP) and mode changes under stored tasks (issue 15).

The real daemon on a real SQLite file delivering to a real receiver. Three faults:

- a reload that adds push queues (new, or pull turned push) left them without a scheduler loop,
  stopped half-way (later queues kept their old rate) and logged a traceback instead of
  ``config_reloaded``;
- pull tasks stranded in a push queue made its loop spin at 100 % of a core, even after a
  restart: the daemon's CPU time over a few idle seconds is measured from /proc;
- a reload of 5,000 queues held the event loop for about a second: a client asks ``/healthz``
  every 10 ms during the reload and the slowest answer is recorded (figures in
  docs/RELIABILITY.md, "Operator events: reloads").
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tests.integration.harness import Daemon, Receiver, api
from tests.reliability.conftest import scale
from tests.reliability.probes import healthz_watch

if TYPE_CHECKING:
    import aiohttp

    from tests.integration.conftest import StartDaemon

#: The daemon's CPU time while idle over IDLE_S: a spinning loop uses all of it.
IDLE_S = 3.0
#: Most CPU an idle daemon may use over IDLE_S (a spinning one used ~2.9 s of 3 s).
IDLE_CPU_MAX_S = 0.5
#: Slowest /healthz answer allowed during a reload of 5,000 queues: the old main blocked the
#: loop ~1.3 s here; the figure measured after the change is in docs/RELIABILITY.md. A bound
#: well above it, as the machine is shared and noisy.
RELOAD_BLOCK_MAX_S = 0.5


def _yaml(*entries: str) -> str:
    return "queue:\n" + "".join(entries)


def _push(name: str, rate: str = "50/s") -> str:
    return f"- name: {name}\n  rate: {rate}\n"


def _pull(name: str) -> str:
    return f"- name: {name}\n  mode: pull\n"


async def _add(
    session: aiohttp.ClientSession, d: Daemon, queue: str, *tasks: dict[str, object]
) -> None:
    status, body = await api(
        session, d, "POST", f"/api/v1/queues/{queue}/tasks", json={"tasks": list(tasks)}
    )
    assert status == 200, body


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _idle_cpu_s(d: Daemon) -> float:
    assert d.proc is not None
    before = _cpu_s(d.proc.pid)
    await asyncio.sleep(IDLE_S)  # measuring idleness: the window is the measurement itself
    return _cpu_s(d.proc.pid) - before


async def _settled(session: aiohttp.ClientSession, d: Daemon) -> None:
    """Until the start-up of thousands of queue loops (a first look at the store each) is
    over: 20 answers in a row within 20 ms. No event tells it; bounded by 30 s."""
    deadline = time.monotonic() + 30
    fast = 0
    while fast < 20:
        assert time.monotonic() < deadline, "the daemon never settled after its start"
        started = time.monotonic()
        await api(session, d, "GET", "/healthz")
        fast = fast + 1 if time.monotonic() - started < 0.02 else 0


async def test_a_reload_adding_push_queues_applies_in_full_and_they_deliver_at_once(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Each round adds brand-new push queues and turns an empty pull queue into a push queue
    (both listed before a paused queue whose rate the same reload raises), with several
    SIGHUPs at once. Every queue delivers; the later queue's rate applies; one clean log."""
    rounds = scale(2, 8)
    entries = [_pull("flip0"), _push("zz", "0")]
    d = await start_daemon(_yaml(*entries))
    expected = 0
    for r in range(rounds):
        await _add(session, d, "zz", {"name": f"held{r}"})  # zz is paused (rate 0) for now
        fresh = [f"new{r}x{i}" for i in range(3)]
        entries = [e for e in entries if not e.startswith("- name: zz")]
        entries = [
            e.replace("mode: pull", "rate: 50/s") if f"flip{r}\n" in e else e for e in entries
        ]
        entries += [_push(n) for n in fresh] + [_pull(f"flip{r + 1}"), _push("zz", "50/s")]
        (tmp_path / "queue.yaml").write_text(_yaml(*entries))
        reloaded = len(d.events("config_reloaded"))
        for _ in range(3):  # coalesced: one or two reloads, never a half-applied one
            await d.signal(signal.SIGHUP)
        await d.wait_event("config_reloaded", reloaded + 1)
        for queue in [*fresh, f"flip{r}"]:
            await _add(session, d, queue, {"name": f"{queue}-t"})
        expected += len(fresh) + 2
        got = await receiver.wait_for(expected)
        assert {g.headers["X-AppEngine-TaskName"] for g in got} >= {f"held{r}", f"flip{r}-t"}
        status, info = await api(session, d, "GET", "/api/v1/queues/zz")
        assert (status, info["rate"]) == (200, "50/s")
        # Pause zz again for the next round (a reload back to rate 0).
        entries = [e for e in entries if not e.startswith("- name: zz")] + [_push("zz", "0")]
        (tmp_path / "queue.yaml").write_text(_yaml(*entries))
        reloaded = len(d.events("config_reloaded"))
        await d.signal(signal.SIGHUP)
        await d.wait_event("config_reloaded", reloaded + 1)
    assert not d.events("config_rejected")
    assert not [line for line in d.log if "Traceback" in line], "\n".join(d.log)


async def test_a_mode_change_under_tasks_is_refused(
    start_daemon: StartDaemon, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A reload turning a pull queue that holds tasks into a push queue is refused, naming
    the queue and its task count, and the old file applies in full; so does the way back."""
    stranded = scale(5, 200)
    d = await start_daemon(_yaml(_pull("work"), _push("jobs", "0")))
    await _add(session, d, "work", *({"name": f"p{i}", "payload": "x"} for i in range(stranded)))
    await _add(session, d, "jobs", {"name": "j1"})
    for n, changed in enumerate([_yaml(_push("work"), _push("jobs")), _yaml(_pull("jobs"))], 1):
        (tmp_path / "queue.yaml").write_text(changed)
        await d.signal(signal.SIGHUP)
        rejected = (await d.wait_event("config_rejected", n))[-1]
        queue, count, kind = ("work", stranded, "pull") if n == 1 else ("jobs", 1, "push")
        assert f"queue {queue}" in rejected, rejected
        assert f"holds {count} {kind} task" in rejected, rejected
        status, info = await api(session, d, "GET", "/api/v1/queues/work")
        assert (status, info["mode"]) == (200, "pull")  # the old file still applies, all of it
        status, info = await api(session, d, "GET", "/api/v1/queues/jobs")
        assert (status, info["rate"]) == (200, "0")
    assert not d.events("config_reloaded")
    assert not [line for line in d.log if "Traceback" in line], "\n".join(d.log)


async def test_stranded_tasks_are_reported_listed_deletable_and_never_spin(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A restart with a changed mode (not a reload: nothing refuses it) strands the tasks: they
    are reported, listed and deletable, push tasks still go, and the idle daemon uses ~0 %
    CPU (the old main spun at 100 % of a core)."""
    stranded = scale(5, 200)
    d = await start_daemon(_yaml(_pull("work")))
    await _add(session, d, "work", *({"name": f"p{i}", "payload": "x"} for i in range(stranded)))
    assert await d.stop() == 0
    d2 = await start_daemon(_yaml(_push("work")))
    cpu = await _idle_cpu_s(d2)
    print(f"idle CPU with {stranded} stranded pull tasks: {cpu:.2f} s over {IDLE_S} s")
    assert cpu < IDLE_CPU_MAX_S, f"an idle daemon used {cpu:.2f} s of CPU in {IDLE_S} s"
    [report] = await d2.wait_event("queue_stranded")
    assert "queue=work" in report, report
    assert f"tasks={stranded}" in report, report
    status, listed = await api(session, d2, "GET", "/api/v1/queues/work/tasks")
    assert status == 200, listed
    assert len(listed["tasks"]) == min(stranded, 100), listed
    status, body = await api(session, d2, "DELETE", "/api/v1/queues/work/tasks/p0")
    assert status == 200, body
    status, info = await api(session, d2, "GET", "/api/v1/queues/work")
    assert info["stats"]["tasks"] == stranded - 1, info
    await _add(session, d2, "work", {"name": "pushed"})  # push tasks still go
    [delivery] = await receiver.wait_for(1)
    assert delivery.headers["X-AppEngine-TaskName"] == "pushed"


async def test_a_reload_of_5000_queues_keeps_the_api_answering(
    start_daemon: StartDaemon, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """/healthz every 10 ms while the daemon reloads a file of 5,000 queues (every rate
    changed): the slowest answer is how long the reload held the event loop."""
    count = scale(5000, 5000)
    entries = [f"- name: q{i}\n  rate: 5/s\n  bucket_size: 10\n" for i in range(count)]
    d = await start_daemon(_yaml(*entries))
    (tmp_path / "queue.yaml").write_text(_yaml(*(e.replace("5/s", "7/s") for e in entries)))
    await _settled(session, d)
    async with healthz_watch(d) as stall:
        started = time.monotonic()
        await d.signal(signal.SIGHUP)
        await d.wait_event("config_reloaded", timeout_s=40)
        took = time.monotonic() - started
    slowest = stall.slowest_s
    print(f"reload of {count} queues: {took:.2f} s; slowest /healthz meanwhile {slowest:.3f} s")
    status, info = await api(session, d, "GET", f"/api/v1/queues/q{count - 1}")
    assert (status, info["rate"]) == (200, "7/s")
    assert slowest < RELOAD_BLOCK_MAX_S, f"the loop was held {slowest:.3f} s"
