"""Campaign 3: the database's disk fills up or turns read-only while tasks are added and delivered.

The SQLite file lives on a small tmpfs of its own (mounted by the test: it needs root, as CI
has), filled up by a file the test writes. Adds while the disk is full must fail with a clear
503 (TRANSIENT_ERROR),
never acknowledge what was not stored and never answer 500; the daemon must keep running, keep
its file intact (``PRAGMA integrity_check``), and recover by itself once space returns: every acknowledged task is then delivered.

A read-only disk is not simulated: a tmpfs cannot be remounted read-only while the database is
open for writing (EBUSY), and root ignores file permissions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.harness import Daemon, Delivery, Receiver
from tests.reliability.conftest import scale

if TYPE_CHECKING:
    import aiohttp

QUEUE_YAML = "queue:\n- name: work\n  rate: 500/s\n  bucket_size: 100\n"
DISK_MIB = 16
FILLER = "filler"


@contextlib.contextmanager
def small_disk(where: Path) -> Iterator[Path]:
    """A tmpfs of DISK_MIB at ``where``, unmounted on the way out."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs for the storage campaign: {done.stderr.strip()}")
        pytest.skip(f"needs root to mount a small tmpfs: {done.stderr.strip()}")
    try:
        # The filler exists from the start: filling it later only appends (a file created on a
        # disk already short of space failed once under CI with ENOSPC before a byte).
        (where / FILLER).touch()
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def disk_report(disk: Path) -> str:
    """Free space, free inodes and the files of ``disk``, for a failure's output."""
    st = os.statvfs(disk)
    files = {p.name: p.stat().st_size for p in disk.iterdir()}
    return f"disk: {st.f_bavail * st.f_frsize} bytes free, {st.f_favail} inodes; {files}"


def fill(disk: Path) -> Path:
    """Append to the filler file until the disk is full; it is returned to free it later."""
    filler = disk / FILLER
    # Unbuffered: a buffered file kept the bytes its last write could not place and raised
    # ENOSPC again when closed (seen once in a full run).
    with filler.open("ab", buffering=0) as out:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
    return filler


def empty_wal(db: Path) -> None:
    """Checkpoint the daemon's WAL and truncate it to nothing: its next writes must grow the
    file, so they fail on a full disk. (A WAL that ran a checkpoint is rewritten in place, and
    writes then need no new space for a while, which made a full disk go unnoticed.)"""
    conn = sqlite3.connect(db, timeout=10)
    try:
        for _ in range(50):
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                break
        else:
            raise AssertionError("the daemon kept its WAL busy")
    finally:
        conn.close()
    assert db.with_name(db.name + "-wal").stat().st_size == 0


@contextlib.asynccontextmanager
async def daemon(tmp: Path, disk: Path, receiver: Receiver) -> AsyncIterator[Daemon]:
    d = await Daemon(
        tmp, QUEUE_YAML, receiver.url, db=disk / "pushd.sqlite3", env={"PUSHD_LOG_LEVEL": "info"}
    ).start()
    try:
        yield d
    except BaseException:
        print("daemon log (last 40 lines):\n" + "\n".join(d.log[-40:]))
        print(disk_report(disk))
        raise
    finally:
        await d.kill()


async def add(session: aiohttp.ClientSession, d: Daemon, names: list[str]) -> tuple[int, dict]:
    body = {"tasks": [{"name": n, "url": f"/t/{n}"} for n in names]}
    async with session.post(f"{d.url}/api/v1/queues/work/tasks", json=body) as resp:
        return resp.status, await resp.json(content_type=None)


async def add_round(
    session: aiohttp.ClientSession, d: Daemon, prefix: str, count: int, acked: set[str]
) -> dict[int, int]:
    """Add ``count`` tasks in batches of 10; record the acknowledged ones; statuses seen."""
    statuses: dict[int, int] = {}
    for first in range(0, count, 10):
        names = [f"{prefix}-{i}" for i in range(first, min(first + 10, count))]
        status, body = await add(session, d, names)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            acked.update(t["name"] for t in body["tasks"] if t["result"] == "OK")
        else:
            assert status == 503, (status, body)
            assert body["error"]["status"] == "TRANSIENT_ERROR", body
    return statuses


async def wait_delivered(receiver: Receiver, names: set[str], timeout_s: float) -> set[str]:
    """The task names delivered once all of ``names`` are (or ``timeout_s`` passed)."""

    def delivered(deliveries: list[Delivery]) -> set[str]:
        return {dl.headers.get("X-AppEngine-TaskName", "") for dl in deliveries}

    return delivered(await receiver.wait_until(lambda d: names <= delivered(d), timeout_s))


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.timeout(180)
async def test_adds_fail_cleanly_while_the_disk_is_full_and_the_daemon_recovers_on_its_own(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    per_round = scale(200, 5000)
    acked: set[str] = set()
    with small_disk(tmp_path / "disk") as disk:
        async with daemon(tmp_path, disk, receiver) as d:
            assert (await add_round(session, d, "before", per_round, acked)) == {
                200: per_round // 10
            }
            filler = fill(disk)
            during = await add_round(session, d, "during", per_round, acked)
            assert d.proc is not None
            assert d.proc.returncode is None, "the daemon died:\n" + "\n".join(d.log[-30:])
            assert during.get(503), f"every add was acknowledged on a full disk: {during}"
            filler.unlink()
            after = await recovered(session, d, acked)
            got = await wait_delivered(receiver, acked, 60)
            assert acked <= got, f"{len(acked - got)} acknowledged tasks never delivered"
            assert d.proc.returncode is None
        assert integrity(disk / "pushd.sqlite3") == "ok"
    print(
        f"storage[full while adding]: acknowledged {len(acked)}, delivered {len(acked & got)}, "
        f"lost {len(acked - got)}; during the fault {during}, after {after}"
    )


@pytest.mark.timeout(180)
async def test_deliveries_wait_out_a_full_disk_and_lose_nothing(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    """The disk fills while tasks are being delivered: claims and outcomes cannot be written;
    the scheduler keeps running, retries, and delivers everything once space returns."""
    count = scale(1000, 20000)
    acked: set[str] = set()
    with small_disk(tmp_path / "disk") as disk:
        async with daemon(tmp_path, disk, receiver) as d:
            async with session.post(f"{d.url}/api/v1/queues/work/pause") as resp:
                assert resp.status == 200
            await add_round(session, d, "due", count, acked)
            assert len(acked) == count
            empty_wal(disk / "pushd.sqlite3")
            async with session.post(f"{d.url}/api/v1/queues/work/resume") as resp:
                assert resp.status == 200
            filler = fill(disk)  # at 500/s the queue needs seconds: most claims hit a full disk
            await d.wait_event("store_unavailable", timeout_s=30)
            assert d.proc is not None
            assert d.proc.returncode is None, "the daemon died:\n" + "\n".join(d.log[-30:])
            filler.unlink()
            got = await wait_delivered(receiver, acked, 90)
            assert acked <= got, f"{len(acked - got)} acknowledged tasks never delivered"
            assert d.proc.returncode is None
        assert integrity(disk / "pushd.sqlite3") == "ok"
    print(f"storage[full while delivering]: acknowledged {len(acked)}, lost {len(acked - got)}")


async def recovered(
    session: aiohttp.ClientSession, d: Daemon, acked: set[str], timeout_s: float = 30
) -> dict[int, int]:
    """Adds succeed again by themselves (no restart, no signal) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        after = await add_round(session, d, f"after{int(time.monotonic() * 1000)}", 10, acked)
        if after == {200: 1}:
            return after
        assert time.monotonic() < deadline, f"adds still fail after the fault ended: {after}"
        await asyncio.sleep(0.2)
