"""Campaign: ``pushdctl backup`` of a database a daemon is writing to, and the documented restore.

A real daemon takes adds from several clients at once and delivers one of its queues while
``pushdctl backup`` copies its SQLite file. The names acknowledged before the backup started
are recorded first; the copy must pass ``PRAGMA integrity_check`` and hold every one of them
(as a task, or as the tombstone of a task delivered meanwhile). Then the README's restore:
stop the daemon, copy the backup over the database, remove ``-wal`` and ``-shm``, start, and
every task of the copy is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.harness import Daemon, Receiver, api
from tests.reliability.conftest import scale

if TYPE_CHECKING:
    import aiohttp

YAML = """\
queue:
- name: work
  rate: 500/s
  bucket_size: 100
- name: held
  rate: 2000/s
  bucket_size: 500
"""
PREFILL = scale(3_000, 60_000)  # held tasks before the load starts: a file of some size
CLIENTS = 4
BATCH = 20
PAYLOAD = "p" * 1_000
pytestmark = pytest.mark.timeout(scale(120, 900))


class Load:
    """Clients adding to both queues until told to stop, recording when each add was acked."""

    def __init__(self, session: aiohttp.ClientSession, d: Daemon) -> None:
        self.session = session
        self.daemon = d
        self.acked: list[tuple[float, str, str]] = []  # (time.monotonic() acked, queue, name)
        self.stop = asyncio.Event()
        self._names = itertools.count()

    async def add(self, queue: str, names: list[str]) -> None:
        tasks = [{"name": n, "url": f"/{queue}/{n}", "payload": PAYLOAD} for n in names]
        path = f"/api/v1/queues/{queue}/tasks"
        status, body = await api(self.session, self.daemon, "POST", path, json={"tasks": tasks})
        assert status == 200, body
        now = time.monotonic()
        self.acked += [(now, queue, t["name"]) for t in body["tasks"] if t["result"] == "OK"]

    async def client(self, k: int) -> None:
        for i in itertools.count():
            if self.stop.is_set():
                return
            queue = "work" if (i + k) % 2 else "held"
            await self.add(queue, [f"{queue}-{next(self._names)}" for _ in range(BATCH)])

    def before(self, t: float, queue: str) -> set[str]:
        return {name for at, q, name in self.acked if at < t and q == queue}


def rows(db: Path, sql: str) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {r[0] for r in conn.execute(sql)}


async def backup(db: Path, dest: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pushd",
        "backup",
        "--db",
        str(db),
        str(dest),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_backup_under_load_holds_every_acknowledged_task_and_restores(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    work = tmp_path / "live"
    work.mkdir()
    d = Daemon(work, YAML, receiver.url)
    db = d.db
    assert db is not None
    dest = tmp_path / "pushd-backup.sqlite3"
    await d.start()
    try:
        load = Load(session, d)
        status, body = await api(session, d, "POST", "/api/v1/queues/held/pause")
        assert status == 200, body
        for first in range(0, PREFILL, 100):
            await load.add("held", [f"pre-{i}" for i in range(first, min(first + 100, PREFILL))])
        clients = [asyncio.create_task(load.client(k)) for k in range(CLIENTS)]
        await receiver.wait_for(BATCH)  # the load runs: adds, and deliveries of `work`
        started = time.monotonic()
        code, out, err = await backup(db, dest)
        ended = time.monotonic()
        during = sum(1 for at, _, _ in load.acked if started <= at < ended)
        await receiver.wait_for(len(receiver.deliveries) + BATCH)  # still delivering after it
        load.stop.set()
        await asyncio.gather(*clients)
        assert code == 0, f"backup failed (exit {code}):\n{out}{err}"
        assert "backed up" in out, out
        assert not (tmp_path / "pushd-backup.sqlite3.partial").exists()
        status, health = await api(session, d, "GET", "/healthz")
        assert status == 200, health

        with contextlib.closing(sqlite3.connect(dest)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        tasks = rows(dest, "SELECT name FROM tasks")
        gone = rows(dest, "SELECT name FROM tombstones")
        held = load.before(started, "held")
        lost_held = held - tasks
        lost_work = load.before(started, "work") - tasks - gone
        assert not lost_held, (
            f"{len(lost_held)} acknowledged held tasks missing: {sorted(lost_held)[:5]}"
        )
        assert not lost_work, (
            f"{len(lost_work)} acknowledged work tasks missing: {sorted(lost_work)[:5]}"
        )
        assert await d.stop() == 0
    finally:
        await d.kill()

    # The README's restore: stop, copy the backup over the database, remove -wal/-shm, start.
    db.write_bytes(dest.read_bytes())
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    restored = Daemon(work, YAML, receiver.url)
    await restored.start()
    try:
        in_copy = {n for n in tasks if n.startswith(("held-", "pre-"))}
        before = len(receiver.deliveries)
        status, body = await api(session, restored, "POST", "/api/v1/queues/held/resume")
        assert status == 200, body

        def delivered(deliveries: list) -> set[str]:
            return {x.path.removeprefix("/held/") for x in deliveries[before:]}

        got = delivered(await receiver.wait_until(lambda ds: in_copy <= delivered(ds), 60))
        assert in_copy <= got, f"{len(in_copy - got)} tasks of the copy not delivered"
        assert await restored.stop() == 0
    finally:
        await restored.kill()
    print(
        f"backup[under load]: {dest.stat().st_size / 2**20:.1f} MiB, {len(tasks):,} tasks in "
        f"the copy, {len(held):,} held + {len(load.before(started, 'work')):,} work acked "
        f"before it, {during:,} adds acked during its {ended - started:.2f}s, 0 missing; "
        f"restored: {len(in_copy):,} delivered"
    )
