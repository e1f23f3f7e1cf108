"""The SQLite file as the operator sees it: one daemon at a time, checked at start, its WAL watched.

* **The lock.** A second daemon on the same file used to run beside the first: rates doubled
  and a pause through one was ignored by the other. :class:`FileLock` takes an exclusive
  ``flock`` on ``<db>.lock`` (which holds the holder's pid) for as long as the store is open;
  the kernel drops it when the process dies, even by ``kill -9``, so holding it also proves the
  previous daemon is gone and its claims can be given back at once. A sidecar file, not the
  database itself: SQLite's own POSIX locks live there, closing any other descriptor of the
  database would drop them, and on NFS ``flock`` is emulated with those same POSIX locks.
* **The start-up check.** A damaged file let the daemon start, deliver a while, then crash, and
  crash again at every restart. :func:`check` runs SQLite's ``quick_check`` (every page, no
  index cross-check; about a second per GB when cached) within :data:`CHECK_BUDGET_S`,
  and refuses with what to do.
* **The connection.** :func:`connect` opens the writer's connection: WAL, the durability asked
  for, the schema in place (the start-up check first).
* **The WAL.** :func:`wal_identity` is what :class:`~pushd.store.sqlite.SqliteStore` compares
  each second to notice the ``-wal`` file deleted under it (SQLite would go on writing into
  the deleted file, and a later crash lost every commit since the last checkpoint).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
from pathlib import Path

from pushd import clock, errors, logs
from pushd.store import health, sql

Q = sql.queries("sqlite.sql")
WRITER_CACHE_KIB = 64 * 1024  # the writer's page cache: most of the hot index pages of 1M tasks
SLOW_CHECK_S = 1.0  # a start-up check this long is logged (database_checked)

CHECK_BUDGET_S = 30.0  # quick_check is abandoned (and said so) past this: a huge, cold file
CHECK_MAX_ERRORS = 10


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``<db>.lock`` holding this process's pid."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.path = db.with_name(db.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise errors.StoreRefusedError(
                f"database {self.db} is in use by another pushd{who}: stop it "
                "first, or give this one a database of its own (--db)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Unlock (the file stays: removing it would let two daemons lock two files)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None


def check(
    conn: sqlite3.Connection,
    path: str,
    budget_s: float = CHECK_BUDGET_S,
    clock_: clock.Clock | None = None,
) -> float | None:
    """Refuse a damaged file (StoreRefusedError saying what to do); the seconds the check took,
    or None when it ran past ``budget_s`` and was abandoned (the file is used unchecked)."""
    now_us = (clock_ or clock.SystemClock()).monotonic_us
    started = now_us()
    deadline = started + clock.seconds_to_us(budget_s)
    conn.set_progress_handler(lambda: int(now_us() > deadline), 10_000)
    try:
        rows = conn.execute(f"PRAGMA quick_check({CHECK_MAX_ERRORS})").fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            return None
        raise
    except sqlite3.DatabaseError as exc:
        raise _refused(path, str(exc)) from None
    finally:
        conn.set_progress_handler(None, 0)
    found = [str(r[0]) for r in rows]
    if found != ["ok"]:
        raise _refused(path, "; ".join(found[:3]))
    return clock.us_to_seconds(now_us() - started)


def _refused(path: str, found: str) -> errors.StoreRefusedError:
    return errors.StoreRefusedError(
        f"database {path} is damaged ({found}): restore it from a backup, or salvage what it "
        f"holds with `sqlite3 {path} .recover | sqlite3 fixed.db` and start on fixed.db "
        "(README: Recovering a damaged database)"
    )


def refuse_damaged(path: str, exc: sqlite3.DatabaseError) -> None:
    """Opening ``path`` failed with ``exc``: a damaged file is refused with what to do."""
    if health.is_damaged(exc):
        raise _refused(path, str(exc)) from None


def wal_identity(db: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the ``-wal`` file at its path now; None when there is none."""
    try:
        st = os.stat(db.with_name(db.name + "-wal"))
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def connect(path: str, synchronous: str, *, check: bool = False) -> sqlite3.Connection:
    """The writer's connection: WAL, the durability asked for, the schema in place; with
    ``check``, a damaged file is refused first (StoreRefusedError saying what to do)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        # SQLite's default page cache is 2 MiB: with a million tasks stored the ETA index no
        # longer fits and every claim and delete reads pages back through the OS.
        conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        if check:
            _check(path)
        conn.executescript(Q["schema"])
        columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
        if "claimed" not in columns:
            conn.execute(Q["add_claimed_column"])
        conn.execute(Q["schema_3"])
        if "last_attempt" not in columns:
            conn.execute(Q["add_last_attempt_column"])
        conn.execute(Q["schema_4"])
        conn.executescript(Q["schema_5"])
        conn.executescript(Q["schema_6"])
    except sqlite3.DatabaseError as exc:
        conn.close()
        refuse_damaged(path, exc)
        raise
    except BaseException:
        conn.close()
        raise
    return conn


def _check(path: str) -> None:
    """:func:`check` on a connection of its own, closed after: run through the writer's, it
    left every page in the writer's cache, and damage written to the file later went unseen
    by the writer (a purge deleted from the cached pages and answered 200)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        took = check(conn, path)
    finally:
        conn.close()
    if took is None:
        logs.event(
            "database_check_skipped",
            logging.WARNING,
            db=path,
            reason=f"quick_check ran past {CHECK_BUDGET_S:.0f}s",
        )
    elif took >= SLOW_CHECK_S:  # a quick one is not worth a line before ``listening``
        logs.event("database_checked", db=path, seconds=round(took, 3))


def checkpoint(conn: sqlite3.Connection) -> None:
    """Everything in the WAL into the database file, synced, and the WAL emptied."""
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise sqlite3.OperationalError("the checkpoint could not finish: a reader holds the WAL")
