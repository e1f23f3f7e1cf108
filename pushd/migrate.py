"""``pushdctl migrate`` (bring a database's schema up to date) and ``pushdctl migrate-db`` (copy a
SQLite file into PostgreSQL).

The copy moves everything a daemon keeps: tasks with their counters and ETAs (leases of pull
tasks included), tombstones (so a name that ran still cannot run again), dead letters, the
paused flags and the queues created through the Cloud Tasks API (with their 1-hour
tombstones). It runs in one PostgreSQL transaction: if anything fails nothing is copied. It
refuses a destination that already holds tasks, and checks every table's count afterwards.
Stop the daemons using the SQLite file first: a task added after the copy began is not copied.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pushd import errors
from pushd.store import codec, describe_url, is_postgres, open_store

BATCH = 5_000
#: (SQLite table, PostgreSQL table, columns), in the order they are copied.
TABLES = (
    ("tasks", "pushd_tasks", list(codec.TASK_COLUMNS)),
    ("tombstones", "pushd_tombstones", ["queue", "name", "at_us"]),
    ("dead_tasks", "pushd_dead_tasks", ["queue", "name", "dead_us", "reason", "task"]),
    ("queue_state", "pushd_queue_state", ["queue", "paused"]),
    ("api_queues", "pushd_api_queues", ["name", "spec", "created_us", "deleted_us"]),
    # tokens signed before the move stay verifiable, and the daemons go on signing with the key
    ("signing_keys", "pushd_signing_keys", ["kid", "pem", "created_us", "retired_us"]),
)
_BLOBS = {"headers", "payload", "tag", "retry_options", "task", "last_attempt", "spec", "pem"}

Say = Callable[[str], None]


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:`` URL or a bare path."""
    if url.startswith("sqlite:///"):
        rest = url.removeprefix("sqlite:///")
        return Path("/" + rest.removeprefix("/") if url.startswith("sqlite:////") else rest)
    return Path(url.removeprefix("sqlite://"))


async def migrate_schema(url: str) -> str:
    """Open ``url`` with its schema migrated; what was done, for people."""
    if is_postgres(url):
        from pushd.store import postgres

        conn = await postgres.connect(url)
        try:
            before, after = await postgres.migrate(conn)
        finally:
            await conn.close()
        if before == after:
            return f"{describe_url(url)}: schema {after}, up to date"
        return f"{describe_url(url)}: schema {before} -> {after}"
    store = await open_store(url)  # SQLite migrates on open
    await store.close()
    return f"{url}: SQLite schema up to date"


def _value(column: str, value: Any) -> Any:
    if column == "paused":
        return bool(value)
    if column in _BLOBS and isinstance(value, str | memoryview):
        return value.encode() if isinstance(value, str) else bytes(value)
    return value


def _rows(
    source: sqlite3.Connection, table: str, columns: list[str]
) -> Iterator[list[tuple[Any, ...]]]:
    cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table}")
    while chunk := cursor.fetchmany(BATCH):
        yield [tuple(_value(c, v) for c, v in zip(columns, row, strict=True)) for row in chunk]


class _Progress:
    """A bar with ``N/TOTAL rows`` on one line of a terminal's stderr, redrawn per batch."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled

    def advance(self, n: int, what: str) -> None:
        self.done += n
        if self.enabled:
            width = 30
            filled = width * self.done // max(1, self.total)
            bar = "#" * filled + "-" * (width - filled)
            print(
                f"\r[{bar}] {self.done:,}/{self.total:,} rows ({what})",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def end(self) -> None:
        if self.enabled:
            print(file=sys.stderr)


async def copy_sqlite_to_postgres(source_url: str, target_url: str, *, say: Say) -> dict[str, int]:
    """Copy the SQLite file ``source_url`` into the PostgreSQL ``target_url``; rows per table."""
    if not is_postgres(target_url):
        raise errors.PushdError(
            f"--to {target_url!r}: give a postgresql://user@host/database URL (pushd copies a "
            "SQLite file into PostgreSQL)"
        )
    if is_postgres(source_url):
        raise errors.PushdError(
            f"--from {describe_url(source_url)}: give the SQLite file to copy (a path or "
            "sqlite:///path)"
        )
    path = sqlite_path(source_url)
    if not path.is_file():
        raise errors.PushdError(f"--from {source_url}: no such SQLite file")
    # Bring the file to the current schema first (the daemon would, on its next start).
    await migrate_schema(str(path))
    from pushd.store import postgres

    await migrate_schema(target_url)  # the destination's tables, created or brought up to date
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        counts = {
            table: int(source.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table, _, _ in TABLES
        }
        conn = await postgres.connect(target_url)
        try:
            present = int(await conn.fetchval("SELECT COUNT(*) FROM pushd_tasks"))
            if present:
                raise errors.PushdError(
                    f"--to {describe_url(target_url)} already holds {present:,} tasks: copy into "
                    "an empty database (a new one, or after `DELETE FROM pushd_tasks`)"
                )
            say(
                f"copying {counts['tasks']:,} tasks, {counts['tombstones']:,} tombstones, "
                f"{counts['dead_tasks']:,} dead letters from {path} "
                f"to {describe_url(target_url)}"
            )
            progress = _Progress(sum(counts.values()), sys.stderr.isatty())
            async with conn.transaction():
                for table, target, columns in TABLES:
                    # Tombstones and paused flags may exist already (the schema is shared with
                    # daemons that ran); the file's versions replace them.
                    await conn.execute(f"DELETE FROM {target}")
                    for rows in _rows(source, table, list(columns)):
                        await conn.copy_records_to_table(target, records=rows, columns=columns)
                        progress.advance(len(rows), table)
                progress.end()
                copied = {
                    table: int(await conn.fetchval(f"SELECT COUNT(*) FROM {target}"))
                    for table, target, _ in TABLES
                }
                if copied != counts:
                    raise errors.PushdError(
                        f"the copy does not match the file ({copied} != {counts}); nothing was "
                        "copied"
                    )
        finally:
            await conn.close()
    finally:
        source.close()
    return copied
