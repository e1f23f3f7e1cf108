"""The SQLite file as an operator meets it: one daemon at a time, damage refused or reported,
claims of a dead daemon given back, a deleted ``-wal`` noticed and made safe."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from pathlib import Path

import pytest

from pushd import clock, errors
from pushd.store import base, dbfile, health, writer
from pushd.store.sqlite import SqliteStore
from tests.contract.test_store import T0, S, pull, push

LEASE = 600 * S


def damage(path: Path, size: int = 8192) -> None:
    """``size`` bytes of garbage over the middle of the file (page-aligned, as a bad disk does)."""
    length = path.stat().st_size
    at = (length // 2) // 4096 * 4096
    with path.open("r+b") as f:
        f.seek(at)
        f.write(bytes((i * 7 + 13) % 256 for i in range(size)))
        f.flush()
        os.fsync(f.fileno())


async def filled(path: Path, count: int = 3000) -> None:
    s = await SqliteStore.open(path)
    try:
        for first in range(0, count, 500):
            await s.add(
                [push(f"t{i:05}", payload=b"p" * 200) for i in range(first, first + 500)], now_us=T0
            )
        await s._writer.call(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        await s.close()


async def test_a_second_store_on_the_same_file_is_refused_naming_the_file_and_the_pid(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pushd.sqlite3"
    first = await SqliteStore.open(path)
    try:
        with pytest.raises(errors.StoreRefusedError) as caught:
            await SqliteStore.open(path)
        assert str(path) in caught.value.message
        assert f"pid {os.getpid()}" in caught.value.message
        assert "\n" not in caught.value.message
    finally:
        await first.close()
    again = await SqliteStore.open(path)  # closing let go of the lock
    await again.close()


async def test_claims_left_by_a_previous_daemon_are_given_back_and_nothing_else_moves(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pushd.sqlite3"
    s = await SqliteStore.open(path)
    await s.add([push("a"), push("b"), push("later", eta=T0 + 3600 * S)], now_us=T0)
    await s.add([pull("p1")], now_us=T0)
    claimed = await s.claim_due("q", now_us=T0, limit=1, lease_us=LEASE)
    [leased] = await s.lease("p", now_us=T0, lease_us=LEASE, max_tasks=1)
    await s.close()  # as a kill -9 would leave it: one claim and one pull lease stand

    s = await SqliteStore.open(path)
    try:
        now = T0 + 5 * S
        assert await s.give_back_claims(now_us=now) == 1
        a = await s.get("q", claimed[0].task.name)
        assert a is not None
        assert a.eta_us == now
        later = await s.get("q", "later")
        assert later is not None
        assert later.eta_us == T0 + 3600 * S
        p1 = await s.get("p", "p1")
        assert p1 is not None
        assert p1.eta_us == leased.eta_us
        assert await s.give_back_claims(now_us=now) == 0
        again = await s.claim_due("q", now_us=now, limit=5, lease_us=LEASE)
        assert sorted(c.task.name for c in again) == ["a", "b"]
    finally:
        await s.close()


async def test_an_outcome_clears_the_claim(tmp_path: Path) -> None:
    s = await SqliteStore.open(tmp_path / "pushd.sqlite3")
    try:
        await s.add([push("a")], now_us=T0)
        [c] = await s.claim_due("q", now_us=T0, limit=1, lease_us=LEASE)
        retry = base.Retry(
            queue="q",
            name="a",
            lease_eta_us=c.lease_eta_us,
            eta_us=T0 + 60 * S,
            retry_count=1,
            execution_count=1,
            first_try_us=T0,
            last_status=500,
        )
        await s.finish([retry], now_us=T0)
        assert await s.give_back_claims(now_us=T0 + S) == 0
        task = await s.get("q", "a")
        assert task is not None
        assert task.eta_us == T0 + 60 * S
    finally:
        await s.close()


async def test_a_damaged_file_is_refused_at_open_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "pushd.sqlite3"
    await filled(path)
    damage(path)
    with pytest.raises(errors.StoreRefusedError) as caught:
        await SqliteStore.open(path)
    message = caught.value.message
    assert str(path) in message
    assert "damaged" in message
    assert ".recover" in message
    assert "backup" in message
    again = await SqliteStore.open(tmp_path / "other.sqlite3")  # the lock was let go of
    await again.close()
    with pytest.raises(errors.StoreRefusedError):  # and this file's lock too
        await SqliteStore.open(path)


async def test_a_file_that_is_no_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pushd.sqlite3"
    path.write_bytes(b"not a database at all" * 1000)
    with pytest.raises(errors.StoreRefusedError, match="is damaged"):
        await SqliteStore.open(path)


class Ticking(clock.FakeClock):
    """Each look at the time finds it a tenth of a second later."""

    def monotonic_us(self) -> int:
        self.advance_seconds(0.1)
        return super().monotonic_us()


def test_the_check_gives_up_past_its_budget_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "pushd.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(20000)])
    conn = sqlite3.connect(path)
    try:
        assert dbfile.check(conn, str(path), budget_s=0.5, clock_=Ticking()) is None
        took = dbfile.check(conn, str(path), budget_s=1e9, clock_=Ticking())
        assert took is not None
        assert took > 0.5
    finally:
        conn.close()


async def test_damage_found_while_running_makes_the_store_unavailable_not_broken(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pushd.sqlite3"
    await filled(path)
    s = await SqliteStore.open(path)
    try:
        assert s.problem is None
        damage(path, 256 * 1024)
        await s._writer.call(lambda conn: conn.execute("PRAGMA cache_size=0"))
        failures = []
        for _attempt in range(3):
            try:
                await s.list_tasks("q", limit=5000)
                await s.purge("q", now_us=T0)
            except errors.StoreUnavailableError as exc:
                failures.append(exc)
        assert failures, "the damage went unnoticed"
        assert "damaged" in failures[0].message
        assert ".recover" in failures[0].message
        assert s.problem is not None
        assert "damaged" in s.problem
        with pytest.raises(errors.StoreUnavailableError):  # nothing more is written into it
            await s.add([push("new")], now_us=T0)
    finally:
        await s.close()


async def test_a_deleted_wal_is_checkpointed_and_made_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "pushd.sqlite3"
    wal = tmp_path / "pushd.sqlite3-wal"
    s = await SqliteStore.open(path)
    try:
        await s.add([push(f"t{i}") for i in range(50)], now_us=T0)
        seen = dbfile.wal_identity(path)
        assert seen is not None
        wal.unlink()
        with caplog.at_level(logging.INFO, logger="pushd"):
            now = await s._wal_lost(dbfile.wal_identity(path))
        assert "wal_missing" in caplog.text
        assert "wal_recreated" in caplog.text
        # Everything is in the database file: another connection, which cannot see the deleted
        # WAL, finds every task.
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as other:
            assert other.execute("SELECT COUNT(*) FROM tasks").fetchone() == (50,)
        await s.add([push("after")], now_us=T0)  # written into the new -wal, at its path
        assert now is not None
        assert now == dbfile.wal_identity(path)
        assert wal.stat().st_size > 0
        assert (await s.counts("q")).tasks == 51
    finally:
        await s.close()
    s = await SqliteStore.open(path)
    try:
        assert (await s.counts("q")).tasks == 51
    finally:
        await s.close()


def test_store_unavailable_is_logged_once_per_cause_every_few_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = clock.FakeClock()
    reporter = health._Reporter(fake)
    full = errors.StoreUnavailableError("the disk is full")
    with caplog.at_level(logging.INFO, logger="pushd"):
        for _ in range(100):
            reporter.report("adding", full)
        fake.advance_seconds(health.LOG_EVERY_S)
        reporter.report("adding", full)
        reporter.report("claiming", errors.StoreUnavailableError("the database file is damaged"))
    lines = [r for r in caplog.records if r.getMessage() == "store_unavailable"]
    assert [r.fields["repeated"] for r in lines] == [0, 99, 0]  # type: ignore[attr-defined]
    assert [r.levelno for r in lines] == [logging.WARNING, logging.WARNING, logging.ERROR]


async def test_a_schema_4_file_gains_the_api_queues_table_with_its_tasks_kept(
    tmp_path: Path,
) -> None:
    """A file of the pushd before API queues (schema 4) opens at schema 5, its tasks kept."""
    path = tmp_path / "pushd.sqlite3"
    s = await SqliteStore.open(path)
    await s.add([push("a")], now_us=T0)
    await s.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE api_queues")
    conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    s = await SqliteStore.open(path)
    try:
        assert await s.api_queues() == []
        assert await s.get("q", "a") is not None
        [version] = await s._one("schema_version_now")
        assert version == "6"
    finally:
        await s.close()


def _synchronous(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


async def test_a_batch_of_only_unsynced_jobs_commits_without_fsync(tmp_path: Path) -> None:
    """``synchronous`` as each job saw it: 1 NORMAL (no fsync at commit), 2 FULL."""
    path = str(tmp_path / "w.sqlite3")
    w = await writer.Writer.open(lambda: dbfile.connect(path, "FULL"))
    w.relaxable = True
    try:
        assert await w.submit(_synchronous, sync=False) == 1
        assert await w.submit(_synchronous) == 2
        mixed = [w.submit(_synchronous, sync=False), w.submit(_synchronous)]
        mixed.append(w.submit(_synchronous, sync=False))
        assert await asyncio.gather(*mixed) == [2, 2, 2]  # one batch: one fsync for all
        assert (w.commits, w.unsynced_commits) == (3, 1)
    finally:
        await w.close()


async def test_durability_normal_never_asks_for_fsync(tmp_path: Path) -> None:
    path = str(tmp_path / "w.sqlite3")
    w = await writer.Writer.open(lambda: dbfile.connect(path, "NORMAL"))
    try:
        assert [await w.submit(_synchronous, sync=s) for s in (True, False)] == [1, 1]
    finally:
        await w.close()


async def test_leases_and_pull_deletes_skip_the_fsync_adds_and_push_deletes_keep_it(
    tmp_path: Path,
) -> None:
    s = await SqliteStore.open(tmp_path / "pushd.sqlite3")
    unsynced = lambda: s._writer.unsynced_commits  # noqa: E731
    try:
        await s.add([pull("a"), pull("b"), push("c")], now_us=T0)
        assert unsynced() == 0
        [a, _] = await s.lease("p", now_us=T0, lease_us=60 * S, max_tasks=2)
        assert unsynced() == 1
        await s.modify_lease("p", "a", current_eta_us=a.eta_us, lease_us=S, now_us=T0)
        assert unsynced() == 2
        assert await s.delete("p", ["a"], now_us=T0, pull=True) == [True]
        assert unsynced() == 3
        assert await s.delete("q", ["c"], now_us=T0) == [True]
        assert unsynced() == 3
    finally:
        await s.close()
