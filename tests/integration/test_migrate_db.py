"""``pushd migrate-db``: a SQLite file copied into PostgreSQL, then served from there."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pushd import errors, models
from pushd.store import base, open_store
from tests.integration.harness import Daemon, Receiver

S = 1_000_000


async def pushd(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pushd",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def task(queue: str, name: str, eta_us: int, **kw: object) -> models.Task:
    return models.Task(queue=queue, name=name, eta_us=eta_us, created_us=eta_us, size=10, **kw)  # type: ignore[arg-type]


async def fill(path: Path, now_us: int) -> None:
    """A file holding what a daemon keeps: due, future, leased and dead tasks, a tombstone, a
    pause."""
    store = await open_store(str(path))
    try:
        await store.add(
            [
                task("work", "due", now_us, url="/work/due", payload=b"\x00\x01"),
                task("work", "later", now_us + 3600 * S, url="/work/later"),
                task("work", "doomed", now_us, url="/work/doomed"),
                task("work", "gone", now_us, url="/work/gone"),
                task("jobs", "leased", now_us, method=models.Method.PULL, tag=b"t", payload=b"x"),
            ],
            now_us=now_us,
        )
        await store.lease("jobs", now_us=now_us, lease_us=600 * S, max_tasks=1)
        await store.delete("work", ["gone"], now_us=now_us)
        claimed = await store.claim_due("work", now_us=now_us, limit=10, lease_us=60 * S)
        doomed = next(c for c in claimed if c.task.name == "doomed")
        await store.finish(
            [
                base.DeadLetter(
                    queue="work",
                    name="doomed",
                    lease_eta_us=doomed.lease_eta_us,
                    retry_count=3,
                    execution_count=4,
                    first_try_us=now_us,
                    last_status=500,
                    reason="task_retry_limit 3 reached",
                    last_attempt=models.LastAttempt(
                        time_us=now_us, status=500, error=None, message="HTTP 500", url="http://a/"
                    ),
                )
            ],
            now_us=now_us,
        )
        # The other claims given back unsent, as a daemon stopping does.
        await store.finish(
            [
                base.Retry(
                    queue="work",
                    name=c.task.name,
                    lease_eta_us=c.lease_eta_us,
                    eta_us=c.task.eta_us,
                    retry_count=0,
                    execution_count=0,
                    first_try_us=None,
                    last_status=None,
                    last_attempt=models.LastAttempt(  # as a retried task keeps it
                        time_us=now_us - S,
                        status=None,
                        error="refused",
                        message="ClientConnectorError: refused",
                        url="http://127.0.0.1:9/work/due",
                    ),
                )
                for c in claimed
                if c.task.name != "doomed"
            ],
            now_us=now_us,
        )
        await store.set_paused("jobs", True)
        key = models.SigningKey(kid="old", pem=b"pem of old", created_us=now_us - 2 * S)
        await store.add_signing_key(key, rotate=False)
        key = models.SigningKey(kid="current", pem=b"pem of current", created_us=now_us - S)
        await store.add_signing_key(key, rotate=True)
    finally:
        await store.close()


async def snapshot(url: str) -> dict[str, object]:
    store = await open_store(url)
    try:
        return {
            "tasks": [await store.list_tasks(q) for q in ("work", "jobs")],
            "dead": await store.list_dead("work"),
            "paused": await store.paused_queues(),
            "counts": [await store.counts(q) for q in ("work", "jobs")],
            "bytes": await store.total_bytes(),
            "keys": await store.signing_keys(),
        }
    finally:
        await store.close()


async def test_a_sqlite_file_moves_to_postgresql_whole(
    tmp_path: Path, pg_url: str, receiver: Receiver
) -> None:
    db = tmp_path / "old.sqlite3"
    now = 1_900_000_000 * S  # in the future: the "due" task waits until the daemon serves it
    await fill(db, now)
    before = await snapshot(str(db))
    assert before["tasks"][0][0].last_attempt.error == "refused"  # type: ignore[index]

    code, out, err = await pushd("migrate-db", "--from", str(db), "--to", pg_url)
    assert code == 0, err
    assert (
        "copied 3 tasks, 2 tombstones, 1 dead letters, 1 queue states, 2 OIDC signing keys" in out
    )
    assert await snapshot(pg_url) == before
    moved = await open_store(pg_url)
    try:
        [again] = await moved.add([task("work", "gone", now)], now_us=now)
        assert again.error is errors.TombstonedTaskError  # the name stays used
    finally:
        await moved.close()

    # Once only: the destination now holds tasks.
    code, _, err = await pushd("migrate-db", "--from", str(db), "--to", pg_url)
    assert code == 1
    assert "already holds 3 tasks" in err
    code, out, _ = await pushd("migrate", "--db", pg_url)
    assert code == 0
    assert "up to date" in out


async def test_migrate_db_refuses_what_it_cannot_copy(tmp_path: Path, pg_url: str) -> None:
    code, _, err = await pushd("migrate-db", "--from", str(tmp_path / "none.db"), "--to", pg_url)
    assert (code, err.strip()) == (
        1,
        f"pushdctl: --from {tmp_path / 'none.db'}: no such SQLite file",
    )
    code, _, err = await pushd("migrate-db", "--from", "a.db", "--to", str(tmp_path / "b.db"))
    assert code == 1
    assert "give a postgresql://user@host/database URL" in err
    assert "Traceback" not in err


async def test_a_migrated_task_is_delivered_from_postgresql(
    tmp_path: Path, pg_url: str, receiver: Receiver
) -> None:
    db = tmp_path / "old.sqlite3"
    store = await open_store(str(db))
    await store.add([task("default", "moved", 0, url="/moved")], now_us=0)
    await store.close()
    code, _, err = await pushd("migrate-db", "--from", str(db), "--to", pg_url)
    assert code == 0, err
    d = await Daemon(tmp_path, "queue: []\n", default_target=receiver.url, db_url=pg_url).start()
    try:
        [delivery] = await receiver.wait_for(1)
        assert delivery.path == "/moved"
        assert delivery.headers["X-AppEngine-TaskName"] == "moved"
    finally:
        await d.kill()
