"""``pushdctl backup`` on real SQLite files: refusals, progress, and a copy under writes."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import pytest

from pushd import backup, cli

SCHEMA = """
CREATE TABLE tasks (queue TEXT, name TEXT, payload BLOB, PRIMARY KEY (queue, name));
CREATE TABLE dead_tasks (queue TEXT, name TEXT);
"""


def make_db(path: Path, rows: int = 500) -> Path:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        conn.execute("BEGIN")
        for i in range(rows):
            conn.execute("INSERT INTO tasks VALUES ('q', ?, randomblob(2000))", (f"t{i}",))
        conn.execute("COMMIT")
    return path


def count(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])


def test_a_copy_is_checked_and_named_only_when_whole(tmp_path: Path) -> None:
    db = make_db(tmp_path / "pushd.sqlite3")
    seen: list[tuple[int, int]] = []
    done = backup.backup(
        str(db), str(tmp_path / "copy.sqlite3"), progress=lambda c, t: seen.append((c, t))
    )
    assert (done.dest, done.tasks, done.dead_letters) == (tmp_path / "copy.sqlite3", 500, 0)
    assert count(done.dest) == 500
    assert not (tmp_path / "copy.sqlite3.partial").exists()
    assert seen[-1][0] == seen[-1][1] > 0  # every page, reported as it went


def test_a_folder_as_destination_gets_the_database_name(tmp_path: Path) -> None:
    db = make_db(tmp_path / "pushd.sqlite3")
    (tmp_path / "backups").mkdir()
    done = backup.backup(f"sqlite:///{db}", str(tmp_path / "backups"))
    assert done.dest == tmp_path / "backups" / "pushd.sqlite3"


@pytest.mark.parametrize(
    ("db", "dest", "message"),
    [
        ("postgresql://pushd@db/pushd", "x.sqlite3", "back it up with pg_dump"),
        ("missing.sqlite3", "x.sqlite3", "there is no database file missing.sqlite3"),
        ("other.sqlite3", "x.sqlite3", "is not a pushd database"),
        ("pushd.sqlite3", "pushd.sqlite3", "exists already"),
        ("pushd.sqlite3", "nowhere/x.sqlite3", "there is no folder nowhere"),
    ],
)
def test_refusals_say_what_to_do_and_write_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    db: str,
    dest: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    make_db(tmp_path / "pushd.sqlite3", rows=3)
    with contextlib.closing(sqlite3.connect(tmp_path / "other.sqlite3")) as conn:
        conn.execute("CREATE TABLE notes (x)")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main(["backup", "--db", db, dest]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("pushdctl: "), err
    assert message in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_command_prints_what_it_copied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_db(tmp_path / "pushd.sqlite3", rows=7)
    assert cli.main(["backup", "--db", str(db), str(tmp_path / "b.sqlite3")]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "7 tasks, 0 dead letters" in out, out
    assert "checked" in out, out


def test_writes_during_the_copy_neither_restart_it_nor_get_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One page per step while another connection commits all along: without the read
    transaction held over the whole copy, each commit restarted the copy (SQLite's rule for
    changes made through another connection) and it went back to its first page."""
    monkeypatch.setattr(backup, "PAGES_PER_STEP", 1)
    db = make_db(tmp_path / "pushd.sqlite3", rows=300)
    writes = 0
    stop = threading.Event()
    first_write = threading.Event()

    def writer() -> None:
        nonlocal writes
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO tasks VALUES ('q', ?, randomblob(2000))", (f"w{writes}",))
                writes += 1
                first_write.set()

    seen: list[int] = []

    def progress(copied: int, total: int) -> None:
        seen.append(copied)
        if len(seen) == 5:
            first_write.wait(10)  # the writer is committing from here on

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        done = backup.backup(str(db), str(tmp_path / "copy.sqlite3"), progress=progress)
    finally:
        stop.set()
        thread.join()
    assert writes > 0
    assert seen == sorted(seen), "the copy went back to its start"
    assert 300 <= done.tasks < 300 + writes  # one snapshot: not the writes that came after
    with contextlib.closing(sqlite3.connect(done.dest)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
