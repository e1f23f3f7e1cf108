"""A throwaway PostgreSQL server for tests and benchmarks: initdb + postgres in a temp directory.

Debian's ``postgresql`` package provides the binaries (``/usr/lib/postgresql/<major>/bin``);
nothing is downloaded. As root the server runs as the ``postgres`` user (PostgreSQL refuses
root) through ``setpriv``. It listens on 127.0.0.1 and a free port only, its data directory is
removed on :meth:`PgServer.stop`, and it dies with the process that started it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.processes import die_with_parent, free_port, tail

START_TIMEOUT_S = 60.0
INITDB_GLOB = "/usr/lib/postgresql/*/bin/initdb"
HOW_TO_INSTALL = "apt-get install postgresql (Debian's server package: initdb, pg_ctl, postgres)"


class PgUnavailable(Exception):
    """PostgreSQL cannot run here (not installed, no user to run it as)."""


def bin_dir() -> Path:
    """The newest installed PostgreSQL server's bin directory, or :class:`PgUnavailable`."""
    found = sorted(glob.glob(INITDB_GLOB), key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    if not found:
        raise PgUnavailable(f"PostgreSQL is not installed: {HOW_TO_INSTALL}")
    return Path(found[-1]).parent


def _can_enter(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` may traverse every directory down to ``path``."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for directory in [path, *path.resolve().parents]:
        st = directory.stat()
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _as_postgres(args: list[str]) -> list[str]:
    """As root, run ``args`` as the postgres user, dying with us."""
    if os.geteuid() != 0:
        return args
    if shutil.which("setpriv") is None:
        raise PgUnavailable("running PostgreSQL as root needs setpriv (util-linux)")
    return [
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--pdeathsig=KILL",  # the uid change clears PR_SET_PDEATHSIG; set it again
        "--",
        *args,
    ]


@dataclass
class PgServer:
    """A running throwaway server: ``dsn`` reaches its ``postgres`` database as superuser."""

    dsn: str
    port: int
    version: str  # the major version, e.g. "15"
    proc: subprocess.Popen[bytes]
    base: Path  # removed by stop()
    log: Path

    @property
    def pid(self) -> int:
        """The postmaster (setpriv execs it, so it is the process we started)."""
        return self.proc.pid

    def database_dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self, database: str) -> str:
        """``CREATE DATABASE database``: its ``postgresql://`` URL."""
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()
        return self.database_dsn(database)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL after 20 s; the data directory is removed."""
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def start(tmp: Path, *, settings: dict[str, str] | None = None) -> PgServer:
    """Start a server whose log is ``tmp/postgres.log``; its data lives in a private directory
    (inside ``tmp`` when the postgres user can reach it, else in the system's temp dir)."""
    binaries = bin_dir()
    tmp.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise PgUnavailable("PostgreSQL needs a postgres user to run as") from None
        inside = _can_enter(tmp, user)
        base = Path(tempfile.mkdtemp(prefix="pushd-pg-", dir=tmp if inside else None))
        os.chown(base, user.pw_uid, user.pw_gid)
    else:
        base = Path(tempfile.mkdtemp(prefix="pushd-pg-", dir=tmp))
    data, port, log = base / "data", free_port(), tmp / "postgres.log"
    try:
        initdb_log = tmp / "initdb.log"
        with initdb_log.open("wb") as out:
            done = subprocess.run(
                _as_postgres(
                    [
                        *(str(binaries / "initdb"), "-D", str(data), "--no-sync"),
                        *("-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"),
                    ]
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=START_TIMEOUT_S,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed; log {initdb_log}:\n{tail(initdb_log)}")
        options = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "max_connections": "200",
            **(settings or {}),
        }
        args = [str(binaries / "postgres"), "-D", str(data), "-p", str(port)]
        for key, value in options.items():
            args += ["-c", f"{key}={value}"]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                _as_postgres(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        server = PgServer(
            dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres",
            port=port,
            version=binaries.parent.name,
            proc=proc,
            base=base,
            log=log,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while "ready to accept connections" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"PostgreSQL did not start; log {log}:\n{tail(log)}")
            time.sleep(0.05)
        return server
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
