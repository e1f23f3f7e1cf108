"""The store's row codec: a claimed row read back is the task that was written."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from pushd import models
from pushd.store import codec

FULL = models.Task(
    queue="mail",
    name="t1",
    method=models.Method.PUT,
    url="/work?x=1",
    on_queue_url=True,
    headers=(("X-A", "1"), ("x-a", "2"), ("Content-Type", "text/plain")),
    payload=b"\x00body",
    eta_us=1_700_000_000_000_001,
    created_us=1_700_000_000_000_000,
    tag=b"tag\xff",
    retry_options=models.RetryParameters(task_retry_limit=3, min_backoff_s=0.5),
    target="v2.worker",
    dispatch_deadline_us=30_000_000,
    size=123,
    retry_count=2,
    execution_count=1,
    first_try_us=1_700_000_000_500_000,
    last_status=503,
    last_attempt=models.LastAttempt(
        time_us=1_700_000_000_600_000, status=503, error=None, message="HTTP 503", url="/work"
    ),
)
BARE = models.Task(queue="q", name="n")


@pytest.mark.parametrize("task", [FULL, BARE], ids=["every-field", "defaults"])
def test_a_row_read_back_is_the_task_built_by_its_constructor(task: models.Task) -> None:
    """task_from_values sets the slots itself: its task must equal the constructor's, field
    by field, hash included (tasks are kept in sets and dict keys)."""
    row = codec.task_row(task)
    read = codec.task_from_values((*row, "ignored", 42))  # columns after the task's: ignored
    assert type(read) is models.Task
    assert read == task
    assert hash(read) == hash(task)
    for field in dataclasses.fields(models.Task):
        assert getattr(read, field.name) == getattr(task, field.name), field.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.name = "other"  # type: ignore[misc]


def test_a_row_as_sqlite_returns_it_reads_back_the_same() -> None:
    """Through a real table: memoryview-free bytes, 0/1 flags and NULLs as SQLite gives them."""
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE t ({', '.join(codec.TASK_COLUMNS)})")
    marks = ", ".join("?" * len(codec.TASK_COLUMNS))
    db.executemany(f"INSERT INTO t VALUES ({marks})", [codec.task_row(FULL), codec.task_row(BARE)])
    rows = db.execute(f"SELECT {', '.join(codec.TASK_COLUMNS)} FROM t ORDER BY rowid").fetchall()
    assert [codec.task_from_values(row) for row in rows] == [FULL, BARE]
    db.close()


def test_every_field_of_the_task_has_a_setter() -> None:
    assert {f.name for f in dataclasses.fields(models.Task)} == set(codec.TASK_COLUMNS)
    assert len(codec._SET) == len(codec.TASK_COLUMNS) == 19
