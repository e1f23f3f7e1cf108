"""The installed command itself: its name, --version, exit codes, and one clear line for each
mistake a person makes at a prompt (a bad --db, a missing queue.yaml, a bad sink option).

The daemons here run as ``pushdctl serve`` subprocesses in a temporary folder; one test runs the
installed command through an interactive bash, where ``pushd`` is the directory-stack builtin.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pushd import COMMAND, __version__

if TYPE_CHECKING:
    from tests import pgserver

ROOT = Path(__file__).resolve().parents[2]
PUSHDCTL = Path(sys.executable).parent / COMMAND  # the console script pip installed
VERSION = re.compile(
    rf"^pushdctl {re.escape(__version__)} \(Python 3\.\d+\.\d+, SQLite 3\.\d+\.\d+\)$"
)
START_TIMEOUT_S = 30.0


@dataclasses.dataclass
class Ran:
    code: int
    out: str
    err: str


async def run(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def pushdctl(*argv: str, cwd: Path | None = None) -> Ran:
    return await run(str(PUSHDCTL), *argv, cwd=cwd)


def one_line(ran: Ran) -> str:
    """The single stderr line of a refused command: no traceback, nothing on stdout."""
    assert ran.out == ""
    assert "Traceback" not in ran.err
    assert ran.err.count("\n") == 1, ran.err
    return ran.err.rstrip("\n")


# ------------------------------------------------------------------ the name


def test_the_console_script_is_installed() -> None:
    assert PUSHDCTL.is_file(), f"{PUSHDCTL}: run `make install` (pip install -e .)"
    assert not (PUSHDCTL.parent / "pushd").exists()  # no script a shell would never run


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
async def test_an_interactive_bash_runs_pushdctl_where_pushd_is_a_builtin(tmp_path: Path) -> None:
    """What a person types at a prompt: `pushd` is the directory-stack builtin, `pushdctl` is
    this program. HOME is empty so no ~/.bashrc changes the answer."""
    env = {"HOME": str(tmp_path), "PATH": f"{PUSHDCTL.parent}:{os.environ.get('PATH', '')}"}
    script = "type -t pushd; type -t pushdctl; pushdctl --version; pushd queues"
    ran = await run("bash", "-ic", script, cwd=tmp_path, env=env)
    lines = ran.out.splitlines()
    assert lines[:2] == ["builtin", "file"], ran
    assert VERSION.match(lines[2]), ran
    assert "pushd: queues: No such file or directory" in ran.err  # the builtin, as the issue says


async def test_version_and_python_m_pushd() -> None:
    ran, module = await asyncio.gather(
        pushdctl("--version"), run(sys.executable, "-m", "pushd", "--version")
    )
    assert (ran.code, ran.err) == (0, "")
    assert VERSION.match(ran.out.strip()), ran.out
    assert module.out == ran.out


async def test_help_says_pushdctl_and_the_readmes_precedence() -> None:
    top, serve = await asyncio.gather(pushdctl("--help"), pushdctl("serve", "--help"))
    assert top.out.startswith("usage: pushdctl ")
    assert "\n  pushd " not in top.out + serve.out  # every example uses the new name
    sentence = "Precedence: flags > PUSHD_* environment variables > the settings file > defaults"
    assert sentence in " ".join(serve.out.split())
    assert sentence in " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "2    usage error: a bad command line or an unreadable input file" in top.out


# ------------------------------------------------------------------ serve: its inputs


@contextlib.asynccontextmanager
async def serving(*argv: str, cwd: Path) -> AsyncIterator[tuple[list[str], str]]:
    """``pushdctl serve --port 0 ARGV`` in ``cwd`` until its ``listening`` line: (the lines
    logged until then, the URL); SIGTERM at the end, which must exit 0."""
    proc = await asyncio.create_subprocess_exec(
        str(PUSHDCTL),
        "serve",
        "--port",
        "0",
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        while not lines or " listening " not in lines[-1]:
            raw = await asyncio.wait_for(proc.stderr.readline(), START_TIMEOUT_S)
            assert raw, "pushdctl serve stopped:\n" + "\n".join(lines)
            lines.append(raw.decode().rstrip("\n"))
        url = re.search(r"\burl=(\S+)", lines[-1])
        assert url is not None
        yield lines, url.group(1)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


async def test_serve_without_a_queue_yaml_runs_the_implicit_default_queue(tmp_path: Path) -> None:
    async with serving(cwd=tmp_path) as (lines, url):
        for line in lines:  # every text line starts with its time: RFC 3339, UTC, milliseconds
            assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (info|warning) ", line)
        [warning] = [line for line in lines if " queue_yaml_missing " in line]
        assert "warning" in warning.split()
        assert fields(warning)["file"] == "queue.yaml"
        listening = fields(lines[-1])
        assert listening["queues"] == "1"
        assert (listening["version"], listening["sqlite"]) == (__version__, sqlite_version())
        assert re.fullmatch(r"3\.\d+\.\d+", listening["python"])
        assert "postgresql" not in listening
        queues = await run(str(PUSHDCTL), "queues", "--server", url)
        assert queues.code == 0
        assert [line.split()[:3] for line in queues.out.splitlines()[1:]] == [
            ["default", "push", "running"]
        ]
    assert (tmp_path / "pushd.sqlite3").is_file()


def sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


async def test_the_listening_line_names_the_postgresql_server(
    tmp_path: Path, pg_url: str, pg_server: pgserver.PgServer
) -> None:
    (tmp_path / "queue.yaml").write_text("queue:\n- name: q\n  rate: 1/s\n")
    async with serving("--db", pg_url, cwd=tmp_path) as (lines, _):
        version = fields(lines[-1])["postgresql"]
    major = await run("pg_config", "--version") if shutil.which("pg_config") else None
    assert re.fullmatch(r"\d+\.\d+", version)
    if major is not None and major.code == 0:
        assert major.out.split()[1].split(".")[0] == version.split(".")[0]


@pytest.mark.parametrize("flag", ["--config", "--settings"])
async def test_an_unreadable_input_file_exits_2_as_help_says(tmp_path: Path, flag: str) -> None:
    ran = await pushdctl("serve", flag, str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert ran.code == 2
    what = "queue.yaml" if flag == "--config" else "settings file"
    assert one_line(ran).startswith(f"pushdctl: cannot read the {what} {tmp_path}/missing.yaml: ")


def bad_databases(tmp: Path) -> list[tuple[str, str]]:
    (tmp / "folder").mkdir()
    (tmp / "notes.txt").write_text("not a database, just text\n" * 100)
    return [
        (str(tmp / "folder"), "is a folder; give a file in it, e.g. "),
        (str(tmp / "notes.txt"), "(file is not a database): restore it from a backup, or "),
        (str(tmp / "nowhere" / "x.db"), "does not exist; create it or give another path"),
        ("mysql://root@localhost/app", "mysql:// databases are not supported; give a SQLite"),
    ]


async def test_a_bad_db_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "queue.yaml").write_text("queue:\n- name: q\n  rate: 1/s\n")
    cases = bad_databases(tmp_path)
    ran = await asyncio.gather(*(pushdctl("serve", "--db", db, cwd=tmp_path) for db, _ in cases))
    for (db, says), result in zip(cases, ran, strict=True):
        assert result.code == 2, (db, result)  # a bad --db is a bad command line (--help)
        line = one_line(result)
        assert line.startswith("pushdctl: database "), line
        assert says in line, line
    assert (tmp_path / "notes.txt").read_text().startswith("not a database")  # left alone


async def test_an_unreachable_or_refusing_postgresql_is_one_line(
    tmp_path: Path, pg_server: pgserver.PgServer, pg_url: str
) -> None:
    (tmp_path / "queue.yaml").write_text("queue:\n- name: q\n  rate: 1/s\n")
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    missing_db = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    wrong_user = re.sub(r"//[^@/]*@", "//nobody_here@", pg_url) if "@" in pg_url else None
    cases = [
        (f"postgresql://pushd:secret@127.0.0.1:{closed}/pushd", "is PostgreSQL running there?"),
        (missing_db, "create the database (createdb NAME) or fix its name in the URL"),
    ]
    if wrong_user is not None:
        cases.append((wrong_user, "check the user and password in the URL"))
    ran = await asyncio.gather(*(pushdctl("serve", "--db", db, cwd=tmp_path) for db, _ in cases))
    for (db, says), result in zip(cases, ran, strict=True):
        assert result.code == 1, (db, result)
        line = one_line(result)
        assert line.startswith("pushdctl: database postgresql://"), line
        assert "cannot connect: " in line
        assert says in line, line
        assert "secret" not in line  # the password is masked


# ------------------------------------------------------------------ sink


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--fail-rate", "1.5"], "argument --fail-rate: 1.5 is not a share from 0 to 1"),
        (["--fail-rate", "-0.1"], "argument --fail-rate: -0.1 is not a share from 0 to 1"),
        (["--fail-rate", "nan"], "argument --fail-rate: nan is not a share from 0 to 1"),
        (["--status", "99"], "argument --status: 99 is not an HTTP status code (100 to 599)"),
        (["--status", "600"], "argument --status: 600 is not an HTTP status code (100 to 599)"),
        (["--status", "ok"], "argument --status: 'ok' is not an HTTP status code"),
        (["--delay", "-1"], "argument --delay: must be 0 or more seconds; got -1"),
    ],
)
async def test_sink_refuses_impossible_options(argv: list[str], says: str) -> None:
    ran = await pushdctl("sink", *argv)
    assert ran.code == 2
    assert says in ran.err
    assert "Traceback" not in ran.err
