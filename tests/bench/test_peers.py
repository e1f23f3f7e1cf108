"""benchmarks/peers.py: the registry, the venvs, the failure paths, and (opt-in) the real peers.

The real runs need the peers' virtualenvs (minutes to install the first time, PyPI), so they
only run with ``PUSHD_BENCH_PEERS=1``; ``PUSHD_BENCH_PEERS_N`` sets N (300 by default).
Everything else here is cheap and offline.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import pwd
import py_compile
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from benchmarks import peers
from benchmarks.harness import cpu_s
from benchmarks.receivers import Hit
from tests import pgserver

#: Installs and runs the peers' venvs (minutes, PyPI): not part of `make test`, where these tests
#: are deselected (tests/bench/conftest.py); `make bench` runs the peers for real. Run them with
#: PUSHD_BENCH_PEERS=1 .venv/bin/pytest tests/bench/test_peers.py
needs_peers = pytest.mark.peers_live


class LocalReceiver:
    """A tiny in-process aiohttp receiver with the ``benchmarks.receivers.Receiver`` surface."""

    kind = "aiohttp"

    def __init__(self) -> None:
        self.url = ""
        self._hits: list[Hit] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> LocalReceiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        await request.read()
        eta = request.headers.get("X-AppEngine-TaskETA")
        self._hits.append(
            Hit(
                t=time.time(),
                path=request.path,
                name=request.headers.get("X-AppEngine-TaskName", ""),
                queue=request.headers.get("X-AppEngine-QueueName", ""),
                retry=int(request.headers.get("X-AppEngine-TaskRetryCount", "-1")),
                eta=float(eta) if eta else None,
                status=200,
            )
        )
        return web.Response(text="ok")

    @property
    def pids(self) -> list[int]:
        return [os.getpid()]

    def cpu_s(self) -> float:
        return cpu_s(os.getpid())

    async def reset(self) -> None:
        self._hits = []

    async def count(self) -> int:
        return len(self._hits)

    async def hits(self) -> list[Hit]:
        return list(self._hits)

    async def wait_count(
        self, n: int, timeout_s: float, progress: Callable[[int], None] | None = None
    ) -> list[Hit]:
        deadline = time.monotonic() + timeout_s
        while len(self._hits) < n:
            if progress is not None:
                progress(len(self._hits))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._hits)} of {n} hits after {timeout_s:g}s")
            await asyncio.sleep(0.05)
        return list(self._hits)


@pytest.fixture
async def receiver() -> AsyncIterator[LocalReceiver]:
    rx = await LocalReceiver().start()
    yield rx
    await rx.stop()


# ------------------------------------------------------------------ cheap, always


def test_registry_lists_every_peer_with_pinned_requirements() -> None:
    assert set(peers.PEERS) == {"gte", "huey", "procrastinate"}
    runner_params = inspect.signature(peers.run_gte).parameters
    for key, spec in peers.PEERS.items():
        assert spec.key == key
        assert spec.runner is getattr(peers, f"run_{key}")
        assert inspect.signature(spec.runner).parameters.keys() == runner_params.keys()
        assert any(ch.isdigit() for ch in spec.system), spec.system  # a version in the name
        assert spec.requirements
        assert all("==" in r or "<" in r for r in spec.requirements), spec.requirements
    assert peers.PEERS["gte"].requirements == (
        "gcloud-tasks-emulator==0.6.2",
        "google-cloud-tasks==2.23.0",
        "protobuf<5",
    )


def test_ensure_venv_failure_names_the_install_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peers, "PEERS_DIR", tmp_path / "peers")
    t0 = time.monotonic()
    with pytest.raises(peers.PeerUnavailable) as caught:
        peers.ensure_venv("bogus", ["./does-not-exist"], timeout_s=50)
    log = tmp_path / "peers" / "bogus.install.log"
    assert str(log) in caught.value.reason
    assert "does-not-exist" in log.read_text()
    assert not (tmp_path / "peers" / "bogus" / peers.STAMP).exists()
    assert time.monotonic() - t0 < 30  # no network: pip rejects the path up front


def test_ensure_venv_is_instant_when_the_stamp_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peers, "PEERS_DIR", tmp_path)
    venv = tmp_path / "ready"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / peers.STAMP).write_text(peers._stamp_text(["a==1"]))

    def no_subprocess(*args: Any) -> int:
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(peers, "_run_logged", no_subprocess)
    assert peers.ensure_venv("ready", ["a==1"]) == venv
    with pytest.raises(AssertionError, match="ran"):  # another requirement list: a rebuild
        peers.ensure_venv("ready", ["a==2"])


async def test_procrastinate_is_unavailable_without_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: LocalReceiver
) -> None:
    monkeypatch.setattr(pgserver, "INITDB_GLOB", str(tmp_path / "none" / "*" / "bin" / "initdb"))

    def no_venv(*args: Any, **kw: Any) -> Path:
        raise AssertionError("installed a venv for a peer that cannot run")

    monkeypatch.setattr(peers, "ensure_venv", no_venv)
    with pytest.raises(peers.PeerUnavailable, match="apt-get install postgresql"):
        await peers.run_procrastinate(receiver, n=10, tmp=tmp_path, timeout_s=5)
    rows = await peers.run_all(receiver, n=10, tmp=tmp_path, timeout_s=5, only=["procrastinate"])
    assert rows == [
        {
            "system": "procrastinate 3.10.0",
            "peer": "procrastinate",
            "skipped": f"PostgreSQL is not installed: {pgserver.HOW_TO_INSTALL}",
        }
    ]


async def test_run_all_turns_each_failure_into_a_skipped_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: LocalReceiver
) -> None:
    async def unavailable(*args: Any, **kw: Any) -> dict[str, Any]:
        raise peers.PeerUnavailable("offline")

    async def times_out(*args: Any, **kw: Any) -> dict[str, Any]:
        raise TimeoutError("12 of 100 hits after 1s")

    async def fine(rx: Any, *, n: int, tmp: Path, **kw: Any) -> dict[str, Any]:
        return {"system": "ok 1", "n": n, "enqueue_tasks_per_s": 1.0, "duplicates": 0, "missing": 0}

    monkeypatch.setattr(
        peers,
        "PEERS",
        {
            "a": peers.PeerSpec("a", "a 1", ("a==1",), unavailable),
            "b": peers.PeerSpec("b", "b 1", ("b==1",), times_out),
            "c": peers.PeerSpec("c", "ok 1", ("c==1",), fine),
        },
    )
    rows = await peers.run_all(receiver, n=3, tmp=tmp_path, timeout_s=1, only=["a", "b", "c", "x"])
    assert rows[0] == {"system": "a 1", "peer": "a", "skipped": "offline"}
    assert rows[1]["skipped"] == "TimeoutError: 12 of 100 hits after 1s"
    assert rows[2]["system"] == "ok 1"
    assert rows[3]["skipped"] == "unknown peer 'x'"
    json.dumps(rows)


def test_outcome_counts_distinct_tasks_and_duplicates() -> None:
    def hit(t: float, path: str) -> Hit:
        return Hit(t=t, path=path, name="", queue="", retry=-1, eta=None, status=200)

    hits = [hit(10.0, "/huey/0"), hit(10.5, "/huey/1"), hit(11.0, "/huey/1"), hit(11.0, "/x")]
    row = peers._outcome("huey", hits, 3, released_at=9.0, cpu_s_used=1.0)
    assert row["delivered"] == 4
    assert row["distinct"] == 2
    assert row["duplicates"] == 1
    assert row["missing"] == 1
    assert row["foreign"] == 1
    assert row["deliveries_per_s"] == pytest.approx(3.0)
    assert row["end_to_end_s"] == pytest.approx(2.0)
    assert row["peer_cpu_pct"] == pytest.approx(50.0)


async def test_a_failing_step_quotes_its_log(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    script = "print('RESULT', {'x': 1}); print('boom: the reason'); raise SystemExit(3)"
    with pytest.raises(peers.PeerFailed, match=r"(?s)exited 3.*boom: the reason"):
        await peers._run_once("step", [sys.executable, "-c", script], log, 10)
    ok = "import json; print('RESULT', json.dumps({'x': 1}))"
    assert await peers._run_once("step", [sys.executable, "-c", ok], log, 10) == {"x": 1}


async def test_a_step_past_its_timeout_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "slow.log"
    script = "import time; print('started', flush=True); time.sleep(30)"
    t0 = time.monotonic()
    with pytest.raises(peers.PeerFailed, match=r"(?s)did not finish within 0.5s.*started"):
        await peers._run_once("slow", [sys.executable, "-c", script], log, 0.5)
    assert time.monotonic() - t0 < 10


def test_postgres_data_goes_to_tmp_only_when_the_postgres_user_can_enter_it(
    tmp_path: Path,
) -> None:
    me = pwd.getpwuid(os.getuid())
    stranger = pwd.struct_passwd(("nobody-here", "x", 54321, 54321, "", "/", "/bin/sh"))
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    assert pgserver._can_enter(private, me)
    assert not pgserver._can_enter(private, stranger)
    assert not pgserver._can_enter(open_dir, stranger)  # open, under pytest's private base dir


def test_peer_scripts_compile(tmp_path: Path) -> None:
    scripts = sorted(peers.SCRIPTS.glob("*.py"))
    assert {s.name for s in scripts} >= {
        "gte_server.py",
        "gte_client.py",
        "huey_tasks.py",
        "huey_enqueue.py",
        "huey_consumer.py",
        "proc_app.py",
        "proc_enqueue.py",
        "proc_worker.py",
    }
    for script in scripts:
        py_compile.compile(str(script), cfile=str(tmp_path / f"{script.stem}.pyc"), doraise=True)


# ------------------------------------------------------------------ the real peers (opt-in)


@needs_peers
@pytest.mark.timeout(900)  # the first run installs the venv
@pytest.mark.parametrize("key", sorted(peers.PEERS))
async def test_peer_delivers_every_task_once(
    key: str, tmp_path: Path, receiver: LocalReceiver
) -> None:
    n = int(os.environ.get("PUSHD_BENCH_PEERS_N", "300"))
    [row] = await peers.run_all(receiver, n=n, tmp=tmp_path, timeout_s=120, only=[key])
    print(json.dumps(row, indent=1))
    if "skipped" in row and "PostgreSQL is not installed" in row["skipped"]:
        pytest.skip(row["skipped"])
    assert "skipped" not in row, row["skipped"]
    assert row["n"] == n
    assert row["distinct"] == n
    assert row["missing"] == 0
    assert row["foreign"] == 0
    assert row["enqueue_tasks_per_s"] > 0
    assert row["deliveries_per_s"] > 0
    assert row["end_to_end_s"] > 0
    json.dumps(row)
