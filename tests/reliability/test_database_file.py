"""Campaign: what an operator (or a bad disk) does to the SQLite file under a running daemon.

* A second daemon started on the same file must refuse (exit 2, one line naming the file and
  the pid holding it), and a daemon killed with SIGKILL in mid-delivery must be replaced in
  seconds: the new one holds the lock, so it knows the old one is gone and gives its claims
  back instead of waiting two dispatch deadlines (20 minutes with the defaults).
* A file damaged at rest (8 KiB of garbage in the middle) is refused at start with what to do;
  damaged under a running daemon, it makes the store unavailable (503s, ``store_unavailable``
  rate-limited, /healthz 503), never a 500, a traceback or a crash; ``.recover`` salvages it.
* The ``-wal`` deleted under a running daemon is noticed, logged (``wal_missing``) and made
  safe at once: a SIGKILL afterwards loses none of the acknowledged tasks.

Every daemon is a real ``pushd serve`` on a real file, delivering to a receiver on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.harness import Daemon, Receiver, api
from tests.reliability.conftest import scale

if TYPE_CHECKING:
    import aiohttp

PAUSED_YAML = "queue:\n- name: work\n  rate: 500/s\n  bucket_size: 100\n"
pytestmark = pytest.mark.timeout(scale(120, 600))
START_S = 10  # a daemon that refuses does so at once; one still running after this started


@contextlib.asynccontextmanager
async def running(d: Daemon) -> AsyncIterator[Daemon]:
    """``d`` started; killed on the way out, its log printed if the test failed."""
    await d.start()
    try:
        yield d
    except BaseException:
        print("daemon log (last 40 lines):\n" + "\n".join(d.log[-40:]))
        raise
    finally:
        await d.kill()


async def refused(d: Daemon) -> tuple[int, list[str]]:
    """Run ``d`` expecting it to refuse to start: its exit code and what it printed (-1: it
    started, and was stopped)."""
    assert d.db is not None
    command = [sys.executable, "-m", "pushd", "serve", "--config", str(d.tmp / "queue.yaml")]
    command += ["--db", str(d.db), "--port", "0", "--default-target", d.default_target]
    try:
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=START_S
        )
    except subprocess.TimeoutExpired as exc:
        said = exc.stderr.decode() if isinstance(exc.stderr, bytes) else str(exc.stderr)
        return -1, said.splitlines()
    return done.returncode, done.stderr.splitlines()


async def add(session: aiohttp.ClientSession, d: Daemon, names: list[str]) -> int:
    body = {"tasks": [{"name": n, "url": f"/t/{n}", "payload": "x" * 200} for n in names]}
    status, answer = await api(session, d, "POST", "/api/v1/queues/work/tasks", json=body)
    assert status == 200, answer
    return sum(1 for t in answer["tasks"] if t["result"] == "OK")


async def add_many(session: aiohttp.ClientSession, d: Daemon, prefix: str, count: int) -> int:
    acked = 0
    for first in range(0, count, 100):
        last = min(first + 100, count)
        acked += await add(session, d, [f"{prefix}{i}" for i in range(first, last)])
    return acked


async def stored(session: aiohttp.ClientSession, d: Daemon) -> int:
    status, body = await api(session, d, "GET", "/api/v1/queues/work")
    assert status == 200, body
    return int(body["stats"]["tasks"])


async def pause(session: aiohttp.ClientSession, d: Daemon) -> None:
    status, body = await api(session, d, "POST", "/api/v1/queues/work/pause")
    assert status == 200, body


def damage(path: Path, size: int) -> None:
    """``size`` bytes of garbage over the middle of ``path``, page-aligned, synced."""
    at = (path.stat().st_size // 2) // 4096 * 4096
    with path.open("r+b") as f:
        f.seek(at)
        f.write(bytes((i * 7 + 13) % 256 for i in range(size)))
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------- one daemon per file


async def test_a_second_daemon_is_refused_and_a_killed_one_is_replaced_in_seconds(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    count = scale(40, 200)  # all in flight at once: under max_connections (256)
    yaml = (
        "queue:\n- name: work\n  rate: 200/s\n  bucket_size: 50\n  max_concurrent_requests: 1000\n"
    )
    first = Daemon(tmp_path, yaml, receiver.url)
    async with running(first):
        code, said = await refused(Daemon(tmp_path, yaml, receiver.url))
        assert code == 2, f"a second daemon ran on the same file (exit {code}):\n" + "\n".join(said)
        assert first.proc is not None
        [line] = [s for s in said if s.startswith("pushdctl:")]
        assert str(first.db) in line, line
        assert f"pid {first.proc.pid}" in line, line
        assert not [s for s in said if "Traceback" in s]

        receiver.delay_s = 120.0  # every delivery hangs: the kill lands in mid-delivery
        assert await add_many(session, first, "t", count) == count
        await receiver.wait_started(count, timeout_s=30)
    receiver.delay_s = 0.0  # first was killed (SIGKILL) on leaving the block

    restarted = time.monotonic()
    second = Daemon(tmp_path, yaml, receiver.url)
    async with running(second):
        names = {f"t{i}" for i in range(count)}

        def redelivered(deliveries: list) -> set[str]:
            return {
                dl.headers.get("X-AppEngine-TaskName", "")
                for dl in deliveries
                if dl.started_at >= restarted
            }

        # Bounded far below the 20 minutes the claims would otherwise hold the tasks.
        got = redelivered(await receiver.wait_until(lambda d: names <= redelivered(d), 60))
        took = max((dl.at for dl in receiver.deliveries if dl.started_at >= restarted), default=0.0)
        assert names <= got, f"{len(names - got)} of {count} claimed tasks not redelivered"
        assert second.events("claims_given_back"), "\n".join(second.log)
        assert await second.stop() == 0  # every outcome recorded on the way out
    with contextlib.closing(sqlite3.connect(tmp_path / "pushd.sqlite3")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone() == (0,)
    first_at = min(dl.started_at for dl in receiver.deliveries if dl.started_at >= restarted)
    print(
        f"database-file[kill -9 in mid-delivery]: {count} claimed tasks; from restart to the "
        f"first redelivery {first_at - restarted:.2f}s, to the last {took - restarted:.2f}s"
    )


# ---------------------------------------------------------------------------- a damaged file


async def test_a_damaged_file_is_refused_at_start_and_recover_salvages_it(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    count = scale(2000, 20000)
    d = Daemon(tmp_path, PAUSED_YAML, receiver.url)
    async with running(d):
        await pause(session, d)
        assert await add_many(session, d, "t", count) == count
        assert await d.stop() == 0
    assert d.db is not None
    damage(d.db, 8192)

    code, said = await refused(Daemon(tmp_path, PAUSED_YAML, receiver.url))
    assert code == 2, f"pushd ran on a damaged file (exit {code}):\n" + "\n".join(said)
    [line] = [s for s in said if s.startswith("pushdctl:")]
    for needed in ("damaged", ".recover", "backup"):
        assert needed in line, line
    assert not [s for s in said if "Traceback" in s], said

    fixed = tmp_path / "fixed.sqlite3"
    rows = recover(d.db, fixed)
    assert 0 < rows <= count
    again = Daemon(tmp_path, PAUSED_YAML, receiver.url, db=fixed)
    async with running(again):
        salvaged = await stored(session, again)
        assert salvaged == rows
        assert await again.stop() == 0
    print(
        f"database-file[damaged at rest]: refused at start (exit 2); .dump salvaged "
        f"{salvaged} of {count} tasks"
    )


#: README, "Recovering a damaged database": what an operator runs when ``.recover`` is missing
#: (Debian's sqlite3 3.40 is built without the sqlite_dbpage table it needs), then the totals.
SALVAGE = "sqlite3 {broken} .dump | sed 's/^ROLLBACK; -- due to errors$/COMMIT;/' | sqlite3 {fixed}"
RECOUNT = (
    "sqlite3 {fixed} 'DELETE FROM queue_totals; INSERT INTO queue_totals "
    "SELECT queue, COUNT(*), SUM(size) FROM tasks GROUP BY queue'"
)


def recover(broken: Path, fixed: Path) -> int:
    """Salvage ``broken`` into ``fixed`` as the README says; the tasks it holds."""
    if shutil.which("sqlite3") is None:
        pytest.fail("the sqlite3 command line tool is needed (Debian package sqlite3)")
    for step in (SALVAGE, RECOUNT):
        command = step.format(broken=broken, fixed=fixed)
        subprocess.run(command, shell=True, check=True, timeout=60, capture_output=True)
    with contextlib.closing(sqlite3.connect(fixed)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return int(conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])


async def test_damage_under_a_running_daemon_makes_the_store_unavailable_never_a_500(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    count = scale(2000, 20000)
    requests = scale(200, 2000)
    d = Daemon(tmp_path, PAUSED_YAML, receiver.url, env={"PUSHD_LOG_LEVEL": "info"})
    async with running(d):  # filled, then stopped: the next daemon starts with a cold cache
        await pause(session, d)
        assert await add_many(session, d, "t", count) == count
        assert await d.stop() == 0
    assert d.db is not None
    d = Daemon(tmp_path, PAUSED_YAML, receiver.url, env={"PUSHD_LOG_LEVEL": "info"})
    async with running(d):
        damage(d.db, 64 * 1024)
        statuses: dict[int, int] = {}
        calls = [
            ("GET", "/api/v1/queues/work/tasks?limit=1000", None),
            ("POST", "/api/v1/queues/work/tasks", {"tasks": [{"url": "/x"}]}),
            ("POST", "/api/v1/queues/work/purge", None),
            ("POST", "/api/v1/queues/work/resume", None),
        ]
        for i in range(requests):
            method, path, body = calls[i % len(calls)]
            status, answer = await api(session, d, method, path, json=body)
            statuses[status] = statuses.get(status, 0) + 1
            assert status in (200, 503), (method, path, status, answer)
            if status == 503:
                assert answer["error"]["status"] == "TRANSIENT_ERROR", answer
        assert statuses.get(503), f"the damage went unnoticed: {statuses}"
        health_status, health = await api(session, d, "GET", "/healthz")
        assert health_status == 503, health
        assert "damaged" in health["error"], health
        assert d.proc is not None
        assert d.proc.returncode is None, "the daemon died"
        unavailable = d.events("store_unavailable")
        assert 1 <= len(unavailable) <= 10, f"{len(unavailable)} store_unavailable lines"
        assert not [s for s in d.log if "Traceback" in s or "api_internal_error" in s]
    print(
        f"database-file[damaged while running]: {requests} requests answered {statuses}; "
        f"{len(unavailable)} store_unavailable lines; /healthz 503"
    )


# ---------------------------------------------------------------------------- the -wal deleted


async def test_a_deleted_wal_is_noticed_and_no_acknowledged_task_is_lost(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    before, after = scale(400, 4000), scale(100, 1000)
    d = Daemon(tmp_path, PAUSED_YAML, receiver.url)
    async with running(d):
        await pause(session, d)
        assert await add_many(session, d, "before", before) == before
        assert d.db is not None
        wal = d.db.with_name(d.db.name + "-wal")
        assert wal.stat().st_size > 0
        wal.unlink()
        noticed = time.monotonic()
        with contextlib.suppress(AssertionError):  # judged below, after the count
            await d.wait_event("wal_recreated", timeout_s=10)
        took = time.monotonic() - noticed
        warned = bool(d.events("wal_missing"))
        assert await add_many(session, d, "after", after) == after  # into the new -wal
    # SIGKILLed on leaving the block: nothing ran a checkpoint on the way out.
    again = Daemon(tmp_path, PAUSED_YAML, receiver.url)
    async with running(again):
        left = await stored(session, again)
    assert left == before + after, f"{before + after - left} acknowledged tasks lost"
    assert warned, "no wal_missing error was logged"
    print(
        f"database-file[-wal deleted]: noticed and recreated in {took:.2f}s; after a kill -9 "
        f"{left} of {before + after} tasks"
    )


async def test_deliveries_go_on_across_a_wal_reopen(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    """Deliveries go on across the reopen: every task is delivered once the queue runs."""
    count = scale(300, 3000)
    d = Daemon(tmp_path, PAUSED_YAML, receiver.url)
    async with running(d):
        assert await add_many(session, d, "t", count) == count
        assert d.db is not None
        d.db.with_name(d.db.name + "-wal").unlink()
        await d.wait_event("wal_recreated", timeout_s=10)
        names = {f"t{i}" for i in range(count)}
        deliveries = await receiver.wait_until(
            lambda ds: names <= {x.headers.get("X-AppEngine-TaskName", "") for x in ds}, 60
        )
        got = {x.headers.get("X-AppEngine-TaskName", "") for x in deliveries}
        assert names <= got, f"{len(names - got)} tasks never delivered"
        assert await d.stop() == 0  # every outcome recorded on the way out
    with contextlib.closing(sqlite3.connect(tmp_path / "pushd.sqlite3")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone() == (0,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
