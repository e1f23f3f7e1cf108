"""Campaign 6: a steady load (500 tasks/s for an hour in ``make chaos``; seconds in ``make test``).

A producer adds tasks at a steady rate while the daemon delivers them to a receiver on
127.0.0.1. The daemon's resident memory, open file descriptors and database size are sampled
throughout; after a warm-up memory must not grow (the last third of the run stays within a
margin of the first third), open files stay within the daemon's own plus one per connection,
and the database holds only what it may (live tasks and the tombstones' retention window are what the database is
allowed to hold, and both are steady under a steady load). Everything added is delivered.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.reliability.conftest import FULL, scale

if TYPE_CHECKING:
    import aiohttp

    from tests.integration.conftest import StartDaemon
    from tests.integration.harness import Daemon, Receiver

QUEUE_YAML = "queue:\n- name: soak\n  rate: 2000/s\n  bucket_size: 200\n"
BATCH = 50
CONNECTIONS = 32  # the daemon's max_connections: bounds the sockets to the receiver


def sample(d: Daemon, db: Path) -> dict[str, float]:
    assert d.proc is not None
    status = Path(f"/proc/{d.proc.pid}/status").read_text()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.exists())
    return {
        "rss_mib": rss_kib / 1024,
        "fds": len(os.listdir(f"/proc/{d.proc.pid}/fd")),
        "db_mib": size / 2**20,
    }


def write_report(path: Path, report: dict[str, object]) -> None:
    path.write_text(json.dumps(report, indent=1))


@pytest.mark.timeout(scale(120, 4200))
async def test_a_steady_load_grows_neither_memory_nor_files(
    tmp_path: Path,
    start_daemon: StartDaemon,
    receiver: Receiver,
    session: aiohttp.ClientSession,
) -> None:
    rate = scale(300, 500)
    duration_s = scale(12, 3600)
    settings = tmp_path / "pushd.yaml"
    settings.write_text(f"max_connections: {CONNECTIONS}\n")
    d = await start_daemon(QUEUE_YAML, extra_args=["--settings", str(settings)])
    assert d.db is not None
    idle = sample(d, d.db)
    url = f"{d.url}/api/v1/queues/soak/tasks"
    added = 0
    samples: list[dict[str, float]] = []
    start = time.monotonic()
    next_sample = start
    # A batch every BATCH / rate seconds, paced against the start so the rate does not drift.
    while (elapsed := time.monotonic() - start) < duration_s:
        due = start + (added + BATCH) / rate
        body = {"tasks": [{"url": f"/soak/{added + i}"} for i in range(BATCH)]}
        async with session.post(url, json=body) as resp:
            answer = await resp.json()
            assert resp.status == 200, answer
        added += BATCH
        if time.monotonic() >= next_sample:
            samples.append({"t": round(elapsed, 1), **sample(d, d.db)})
            next_sample += max(1.0, duration_s / 60)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
    deliveries = await receiver.wait_for(added, timeout_s=60)
    assert len(deliveries) >= added
    samples.append({"t": round(time.monotonic() - start, 1), **sample(d, d.db)})

    third = max(1, len(samples) // 3)
    first, last = samples[1 : third + 1] or samples[:1], samples[-third:]
    report = {
        "rate_per_s": rate,
        "duration_s": duration_s,
        "added": added,
        "delivered": len(deliveries),
        "first_third_max": {k: max(s[k] for s in first) for k in ("rss_mib", "fds", "db_mib")},
        "last_third_max": {k: max(s[k] for s in last) for k in ("rss_mib", "fds", "db_mib")},
    }
    print("soak:", json.dumps(report))
    if path := os.environ.get("PUSHD_CHAOS_REPORT_SOAK"):
        write_report(Path(path), {**report, "samples": samples})
    grown, base = report["last_third_max"], report["first_third_max"]
    assert grown["rss_mib"] <= base["rss_mib"] * 1.15 + 8, report
    # Open files: the daemon's own, plus at most one per connection to the receiver (their
    # number follows the load, up to max_connections) and a few for the API's clients.
    assert max(s["fds"] for s in samples) <= idle["fds"] + CONNECTIONS + 8, report
    # Tombstones are kept 9 days, so the file grows with the tasks run; what must not grow is
    # the live part: every task delivered, none left stored.
    async with session.get(f"{d.url}/api/v1/queues/soak") as resp:
        stats = (await resp.json())["stats"]
    deadline = time.monotonic() + 30
    while stats["tasks"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        async with session.get(f"{d.url}/api/v1/queues/soak") as resp:
            stats = (await resp.json())["stats"]
    assert stats["tasks"] == 0, stats
    if FULL:
        # Over an hour the database grows by the tombstones only: about 100 bytes per task.
        assert grown["db_mib"] <= base["db_mib"] + added * 200 / 2**20, report
