"""``pushdctl backup``: a consistent copy of a SQLite task database, taken while pushd runs.

``cp`` of a live database can copy the main file and its ``-wal`` at different moments: the copy
may be damaged, or silently miss acknowledged tasks. This uses SQLite's online backup API
(:meth:`sqlite3.Connection.backup`) instead, under one read transaction on the source opened
before the first page is copied:

* **Consistent.** The copy is the database exactly as it was when that transaction began: every
  task acknowledged before the backup started is in it, and nothing half-written. (Without the
  held transaction, each backup step would start a fresh one, and every write of the daemon
  between two steps would restart the copy from its first page: under load it never ends.)
* **The daemon keeps running.** In WAL mode a reader blocks no writer: adds and deliveries go on
  during the copy; only the WAL cannot be checkpointed past the backup's snapshot until it ends.
* **Read only.** The source is opened ``mode=ro`` and the daemon's ``<db>.lock`` is not touched
  (taking it would stop a running daemon from starting, and is not needed to read).
* **All or nothing.** Pages go to ``DEST.partial``, which is checked (``PRAGMA quick_check``,
  task counts) and synced before it is renamed to ``DEST``: a backup cut short leaves no file
  that looks like a good backup.

PostgreSQL databases are refused: ``pg_dump`` is the tool for them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from pushd import errors
from pushd.store import is_postgres, sqlite_path

#: Pages copied per step: progress is reported between steps (4 MiB with 4 KiB pages).
PAGES_PER_STEP = 1024

Progress = Callable[[int, int], None]  # (pages copied, pages in all)


class BackupRefusedError(errors.PushdError):
    """The backup cannot start as asked (a bad source or destination): nothing was written."""


@dataclasses.dataclass(frozen=True)
class BackupResult:
    dest: Path
    bytes: int
    tasks: int
    dead_letters: int


def destination(source: Path, dest: str) -> Path:
    """Where the copy goes: ``dest``, or ``dest/<source's name>`` when ``dest`` is a folder."""
    path = Path(dest)
    return path / source.name if path.is_dir() else path


def backup(db: str, dest: str, *, progress: Progress | None = None) -> BackupResult:
    """Copy the SQLite database ``db`` to ``dest`` (see the module docstring)."""
    if is_postgres(db):
        raise BackupRefusedError(
            f"{db} is a PostgreSQL database: back it up with pg_dump "
            "(e.g. `pg_dump --format=custom --file=pushd.dump DBNAME`), and restore with pg_restore"
        )
    source = Path(sqlite_path(db))
    if not source.is_file():
        raise BackupRefusedError(f"there is no database file {source}")
    target = destination(source, dest)
    if target.exists():
        raise BackupRefusedError(f"{target} exists already: give a new name, or remove it first")
    if not target.parent.is_dir():
        raise BackupRefusedError(f"there is no folder {target.parent} to write {target.name} in")
    partial = target.with_name(target.name + ".partial")
    try:
        _copy(source, partial, progress)
        result = _check(partial, target)
        os.replace(partial, target)
        _sync_folder(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return result


def _open_source(source: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        conn.isolation_level = None  # the read transaction is ours to begin and end
        conn.execute("BEGIN")
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise BackupRefusedError(f"cannot read the database {source}: {exc}") from None
    if "tasks" not in names:
        conn.close()
        raise BackupRefusedError(f"{source} is not a pushd database (it has no tasks table)")
    return conn


def _copy(source: Path, partial: Path, progress: Progress | None) -> None:
    """Every page of ``source`` as of one snapshot into a new file ``partial``."""
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()  # left by a backup that was killed
    src = _open_source(source)
    try:
        dst = sqlite3.connect(partial)
        try:
            report = None if progress is None else _reporter(progress)
            src.backup(dst, pages=PAGES_PER_STEP, progress=report)
        except sqlite3.DatabaseError as exc:
            raise errors.PushdError(f"the backup of {source} failed: {exc}") from None
        finally:
            dst.close()
    finally:
        src.close()  # ends the read transaction: the daemon may checkpoint past it again


def _reporter(progress: Progress) -> Callable[[int, int, int], None]:
    def report(status: int, remaining: int, total: int) -> None:
        progress(total - remaining, total)

    return report


def _check(partial: Path, target: Path) -> BackupResult:
    """The copy is whole (``quick_check``) and on disk (fsync) before it takes its name."""
    conn = sqlite3.connect(partial)
    try:
        found = [str(r[0]) for r in conn.execute("PRAGMA quick_check(3)")]
        if found != ["ok"]:
            raise errors.PushdError(f"the copy failed its check ({'; '.join(found)}): try again")
        tasks = conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        dead = conn.execute("SELECT COUNT(*) FROM dead_tasks").fetchone()[0]
    finally:
        conn.close()
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return BackupResult(target, partial.stat().st_size, int(tasks), int(dead))


def _sync_folder(folder: Path) -> None:
    """The rename survives a power cut too."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
