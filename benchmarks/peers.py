"""Peers: what pushd users would otherwise pick, run in the same benchmark, against one receiver.

Each peer (``/work/shared/PEERS.md`` has the versions, commands and caveats) lives in its own
virtualenv under ``benchmarks/.peers/<name>`` (:func:`ensure_venv`; their pins conflict with
each other and with pushd's), and its client and server code runs there, from the scripts in
``benchmarks/peer_scripts/``. Every peer is measured the same way:

1. reset the receiver;
2. enqueue N tasks, each POSTing 32 bytes to ``receiver.url + "/<peer>/<i>"``, while delivery
   is held back (gcloud-tasks-emulator: the queue is paused; Huey: its consumer is not running;
   procrastinate: no worker is running), timing the enqueue inside the peer's venv;
3. release delivery (resume the queue, start the consumer or the worker) and wait until the
   receiver has seen N requests;
4. report enqueue tasks/s, deliveries/s first to last arrival at the receiver, the time from
   the release to the last arrival, the distinct ``<i>`` seen and the duplicates, and the CPU
   the peer used during delivery.

Every subprocess is started through :mod:`benchmarks.harness` (it gets ``SIGKILL`` if the
benchmark dies; the PostgreSQL server too, through ``setpriv --pdeathsig``), every wait is
bounded, logs and data files go to ``tmp``, and a failure names the log and quotes its tail.
:func:`run_all` turns a peer that cannot run or fails into a ``skipped`` row.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.harness import (
    ROOT,
    Child,
    cpu_s,
    die_with_parent,
    rate,
    running,
    say,
    spawn,
    tail,
)
from tests import pgserver

if TYPE_CHECKING:
    from benchmarks.receivers import Hit, Receiver

PEERS_DIR = ROOT / "benchmarks" / ".peers"  # gitignored; one virtualenv per peer
SCRIPTS = Path(__file__).resolve().parent / "peer_scripts"
STAMP = ".pushd-requirements.json"
SETTLE_S = 0.5  # after the N-th arrival, how long late duplicates may still show up
ONE_SHOT_MIN_S = 60.0  # at least this long for a one-shot script (imports, schema, ...)

GTE_REQUIREMENTS = ("gcloud-tasks-emulator==0.6.2", "google-cloud-tasks==2.23.0", "protobuf<5")
GTE_THREADS = 8  # client threads for the second half of the enqueue
HUEY_REQUIREMENTS = ("huey==3.5.4", "httpx==0.28.1")
HUEY_CONSUMER_ARGS = ("-w", "8", "-k", "thread", "-d", "0.01", "-m", "0.1")
PROC_REQUIREMENTS = ("procrastinate==3.10.0", "psycopg[binary,pool]==3.3.9", "httpx==0.28.1")
PROC_CONCURRENCY = 50
PROC_BATCH = 1000

Progress = Callable[[int], None]


class PeerUnavailable(Exception):
    """The peer cannot run on this machine (not installable, a server binary is missing)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PeerFailed(RuntimeError):
    """The peer started but a step failed or timed out; the message quotes its log's tail."""


# ------------------------------------------------------------------ virtualenvs


def _stamp_text(requirements: Sequence[str]) -> str:
    python = ".".join(map(str, sys.version_info[:3]))
    return json.dumps({"python": python, "requirements": list(requirements)}, indent=1)


def _run_logged(args: list[str], log: Path, deadline: float) -> int:
    """Run ``args`` with output appended to ``log``; killed (and -9 returned) past ``deadline``."""
    with log.open("ab") as out:
        out.write(("$ " + " ".join(args) + "\n").encode())
        out.flush()
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=die_with_parent,
        )
        try:
            return proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            out.write(b"\n[killed: timed out]\n")
            return -9


def ensure_venv(name: str, requirements: Sequence[str], *, timeout_s: float = 600) -> Path:
    """``benchmarks/.peers/<name>`` with exactly ``requirements`` installed; instant when it is.

    A stamp file in the venv records the requirement list (and the Python version); a venv
    without a matching stamp is rebuilt from scratch. pip's output goes to
    ``benchmarks/.peers/<name>.install.log``. Raises :class:`PeerUnavailable` naming that log
    when the venv cannot be created or the requirements not installed within ``timeout_s``.
    Blocking (it runs pip): call it through ``asyncio.to_thread`` from a running benchmark.
    """
    venv = PEERS_DIR / name
    stamp = venv / STAMP
    want = _stamp_text(requirements)
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    with (PEERS_DIR / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two benchmarks building the same venv take turns
        with contextlib.suppress(OSError):
            if stamp.read_text() == want and (venv / "bin" / "python").exists():
                return venv
        log = PEERS_DIR / f"{name}.install.log"
        log.write_text("")
        deadline = time.monotonic() + timeout_s
        say(f"peers: creating the {name} venv ({', '.join(requirements)}); log {log}")
        shutil.rmtree(venv, ignore_errors=True)
        python = str(venv / "bin" / "python")
        # The benchmark's own pip installs into the new venv (pip --python): no ensurepip, so
        # creating the venv takes a fraction of a second. Without a pip here, the venv gets one.
        if importlib.util.find_spec("pip") is not None:
            create = [sys.executable, "-m", "venv", "--without-pip", str(venv)]
            pip = [sys.executable, "-m", "pip", "--python", python]
        else:
            create = [sys.executable, "-m", "venv", str(venv)]
            pip = [python, "-m", "pip"]
        code = _run_logged(create, log, deadline)
        if code == 0:
            install = [*pip, "install", "--disable-pip-version-check", "--no-input"]
            code = _run_logged([*install, *requirements], log, deadline)
        if code != 0:
            what = "timed out" if code == -9 else f"failed (exit {code})"
            raise PeerUnavailable(
                f"installing the {name} venv ({' '.join(requirements)}) {what}; see {log}:\n"
                + tail(log, 1500)
            )
        stamp.write_text(want)
        say(f"peers: {name} venv ready in {venv}")
        return venv


# ------------------------------------------------------------------ processes


def _env(**extra: str) -> dict[str, str]:
    """The peers' environment: their scripts importable, loopback never through a proxy."""
    return {
        "PYTHONPATH": str(SCRIPTS),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **extra,
    }


async def _run_once(
    name: str, args: list[str], log: Path, timeout_s: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a one-shot command to completion (bounded); its ``RESULT {json}`` line, or ``{}``."""
    child = await spawn(name, args, log, env)
    try:
        await asyncio.wait_for(child.proc.wait(), timeout_s)
    except TimeoutError:
        raise PeerFailed(
            f"{name} did not finish within {timeout_s:g}s; log {log}:\n{tail(log)}"
        ) from None
    finally:
        await child.stop()
    if child.proc.returncode != 0:
        raise PeerFailed(f"{name} exited {child.proc.returncode}; log {log}:\n{tail(log)}")
    return _result_line(log)


def _result_line(log: Path) -> dict[str, Any]:
    """The last ``RESULT {json}`` line of a one-shot script's log, or ``{}``."""
    result: dict[str, Any] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    return result


def _fresh_dir(path: Path, *stale_globs: str) -> Path:
    """``path`` created if missing, without the files matching ``stale_globs``."""
    path.mkdir(parents=True, exist_ok=True)
    for pattern in stale_globs:
        for stale in path.glob(pattern):
            stale.unlink()
    return path


def _announced(child: Child, field: str) -> float:
    """A ``field=VALUE`` of the child's ``listening`` line (see peer_scripts/README.md)."""
    for line in child.log.read_text(errors="replace").splitlines():
        if "listening" in line and (m := re.search(rf"\b{field}=(\S+)", line)):
            return float(m.group(1))
    raise PeerFailed(f"{child.name} announced no {field}=; log {child.log}")


def _tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root``, its live descendants and the children it has reaped."""
    parents: dict[int, int] = {}
    for proc_stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = proc_stat.read_text()
            parents[int(proc_stat.parent.name)] = int(text[text.rindex(")") + 2 :].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    total = 0.0
    for pid in tree:
        with contextlib.suppress(OSError):
            total += cpu_s(pid)
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{root}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime
    return total


# ------------------------------------------------------------------ measuring


def _outcome(
    peer: str, hits: list[Hit], n: int, released_at: float, cpu_s_used: float | None
) -> dict[str, Any]:
    """The delivery half of a result row, from the receiver's hits after the release."""
    ours = [h for h in hits if h.path.startswith(f"/{peer}/")]
    distinct = len({h.path for h in ours})
    row: dict[str, Any] = {
        "delivered": len(hits),
        "distinct": distinct,
        "duplicates": len(ours) - distinct,
        "missing": n - distinct,
        "foreign": len(hits) - len(ours),  # requests that were not for this peer's tasks
        "non_2xx_answers": sum(1 for h in hits if not 200 <= h.status < 300),
    }
    if hits:
        first, last = hits[0].t, hits[-1].t
        window = last - released_at
        row.update(
            deliveries_per_s=rate(len(hits) - 1, last - first),
            first_to_last_s=last - first,
            release_to_first_s=first - released_at,
            end_to_end_s=window,
        )
        if cpu_s_used is not None and window > 0:
            row["peer_cpu_pct"] = 100.0 * cpu_s_used / window
    return row


async def _deliver(
    peer: str,
    receiver: Receiver,
    n: int,
    timeout_s: float,
    progress: Progress | None,
    *,
    released_at: Callable[[], float],
    cpu_now: Callable[[], float],
    cpu_at_release: Callable[[], float],
    receiver_cpu0: float,
    log: Path,
) -> dict[str, Any]:
    """Wait for N arrivals, measure the CPU used, let late duplicates land, and count."""
    try:
        await receiver.wait_count(n, timeout_s, progress)
    except TimeoutError as e:
        raise PeerFailed(f"{peer}: {e}; log {log}:\n{tail(log)}") from None
    used = cpu_now() - cpu_at_release()
    receiver_used = receiver.cpu_s() - receiver_cpu0
    await asyncio.sleep(SETTLE_S)
    row = _outcome(peer, await receiver.hits(), n, released_at(), used)
    if row.get("end_to_end_s", 0) > 0:
        row["receiver_cpu_pct"] = 100.0 * receiver_used / row["end_to_end_s"]
    return row


async def _venv(name: str, requirements: Sequence[str]) -> Path:
    return await asyncio.to_thread(ensure_venv, name, requirements)


# ------------------------------------------------------------------ gcloud-tasks-emulator


async def run_gte(
    receiver: Receiver,
    *,
    n: int,
    tmp: Path,
    timeout_s: float,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """gcloud-tasks-emulator 0.6.2 with google-cloud-tasks 2.23.0 (gRPC, in its own venv).

    Held back: queue created and paused before the N ``create_task`` calls (half from one
    client thread, half from 8 threads sharing the client); released: ``resume_queue``. The
    emulator keeps tasks in memory and dispatches each queue sequentially with urllib.
    """
    venv = await _venv("gte", GTE_REQUIREMENTS)
    python = str(venv / "bin" / "python")
    _fresh_dir(tmp)
    await receiver.reset()
    url = f"{receiver.url}/gte"
    server_log = tmp / "gte-server.log"
    async with running(
        "gte", [python, str(SCRIPTS / "gte_server.py"), "-q"], server_log, _env()
    ) as srv:
        target = srv.url.removeprefix("grpc://")
        enq = await _run_once(
            "gte-enqueue",
            [
                python,
                str(SCRIPTS / "gte_client.py"),
                "enqueue",
                target,
                url,
                str(n),
                "--threads",
                str(GTE_THREADS),
            ],
            tmp / "gte-enqueue.log",
            max(ONE_SHOT_MIN_S, timeout_s),
            _env(),
        )
        if await receiver.count():
            raise PeerFailed("gte delivered while its queue was paused")
        cpu0, receiver_cpu0 = cpu_s(srv.pid), receiver.cpu_s()
        res = await _run_once(
            "gte-resume",
            [python, str(SCRIPTS / "gte_client.py"), "resume", target],
            tmp / "gte-resume.log",
            ONE_SHOT_MIN_S,
            _env(),
        )
        delivered = await _deliver(
            "gte",
            receiver,
            n,
            timeout_s,
            progress,
            released_at=lambda: float(res["t_resume"]),
            cpu_now=lambda: cpu_s(srv.pid),
            cpu_at_release=lambda: cpu0,
            receiver_cpu0=receiver_cpu0,
            log=server_log,
        )
    enqueue_s = enq["seq_s"] + enq["par_s"]
    return {
        "system": PEERS["gte"].system,
        "peer": "gte",
        "n": n,
        "enqueue": f"create_task (gRPC), half from 1 thread, half from {enq['threads']} threads",
        "enqueue_tasks_per_s": rate(n, enqueue_s),
        "enqueue_seq_per_s": rate(enq["seq_n"], enq["seq_s"]),
        f"enqueue_x{enq['threads']}_per_s": rate(enq["par_n"], enq["par_s"]),
        "enqueue_s": enqueue_s,
        "held_back_by": "paused queue; released by resume_queue",
        **delivered,
    }


# ------------------------------------------------------------------ Huey


async def run_huey(
    receiver: Receiver,
    *,
    n: int,
    tmp: Path,
    timeout_s: float,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """SqliteHuey 3.5.4, a task POSTing with httpx (5 retries), consumer ``-w 8 -k thread``.

    Held back: the N tasks are enqueued (single calls, one process) with no consumer running;
    released: the consumer starts (``-d 0.01 -m 0.1`` polling).
    """
    venv = await _venv("huey", HUEY_REQUIREMENTS)
    python = str(venv / "bin" / "python")
    db = _fresh_dir(tmp, "huey.db*") / "huey.db"
    env = _env(PUSHD_BENCH_HUEY_DB=str(db))
    await receiver.reset()
    enq = await _run_once(
        "huey-enqueue",
        [python, str(SCRIPTS / "huey_enqueue.py"), f"{receiver.url}/huey", str(n)],
        tmp / "huey-enqueue.log",
        max(ONE_SHOT_MIN_S, timeout_s),
        env,
    )
    if enq.get("pending") != n:
        raise PeerFailed(f"huey: {enq.get('pending')} tasks pending after enqueueing {n}")
    log = tmp / "huey-consumer.log"
    args = [python, str(SCRIPTS / "huey_consumer.py"), *HUEY_CONSUMER_ARGS]
    receiver_cpu0 = receiver.cpu_s()
    async with running("huey-consumer", args, log, env) as consumer:
        delivered = await _deliver(
            "huey",
            receiver,
            n,
            timeout_s,
            progress,
            released_at=lambda: _announced(consumer, "started"),
            cpu_now=lambda: cpu_s(consumer.pid),
            cpu_at_release=lambda: _announced(consumer, "cpu"),
            receiver_cpu0=receiver_cpu0,
            log=log,
        )
    return {
        "system": PEERS["huey"].system,
        "peer": "huey",
        "n": n,
        "enqueue": "task() calls from one process",
        "enqueue_tasks_per_s": rate(n, enq["enqueue_s"]),
        "enqueue_s": enq["enqueue_s"],
        "held_back_by": "consumer not running; released by starting it "
        + " ".join(HUEY_CONSUMER_ARGS),
        **delivered,
    }


# ------------------------------------------------------------------ procrastinate


@dataclass(frozen=True)
class PgCluster:
    dsn: str
    version: str  # the major version, e.g. "15"
    pid: int  # the postmaster


@contextlib.asynccontextmanager
async def postgres(tmp: Path) -> AsyncIterator[PgCluster]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (:mod:`tests.pgserver`), stopped on
    the way out."""
    _fresh_dir(tmp)
    try:
        server = await asyncio.to_thread(pgserver.start, tmp)
    except pgserver.PgUnavailable as exc:
        raise PeerUnavailable(str(exc)) from None
    except RuntimeError as exc:
        raise PeerFailed(str(exc)) from None
    try:
        yield PgCluster(server.dsn, server.version, server.pid)
    finally:
        await asyncio.to_thread(server.stop)


async def run_procrastinate(
    receiver: Receiver,
    *,
    n: int,
    tmp: Path,
    timeout_s: float,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """procrastinate 3.10.0 on a throwaway PostgreSQL, async httpx task, worker concurrency 50.

    Held back: the N jobs are deferred with ``batch_defer_async`` (1,000 per call) with no
    worker running; released: the worker starts.
    """
    try:
        pgserver.bin_dir()  # before installing anything
    except pgserver.PgUnavailable as exc:
        raise PeerUnavailable(str(exc)) from None
    venv = await _venv("procrastinate", PROC_REQUIREMENTS)
    python = str(venv / "bin" / "python")
    _fresh_dir(tmp)
    async with postgres(tmp) as pg:
        env = _env(PUSHD_BENCH_PG_DSN=pg.dsn)
        await receiver.reset()
        enq = await _run_once(
            "procrastinate-enqueue",
            [
                *(python, str(SCRIPTS / "proc_enqueue.py")),
                *(f"{receiver.url}/procrastinate", str(n), "--batch", str(PROC_BATCH)),
            ],
            tmp / "procrastinate-enqueue.log",
            max(ONE_SHOT_MIN_S, timeout_s),
            env,
        )
        if await receiver.count():
            raise PeerFailed("procrastinate delivered with no worker running")
        log = tmp / "procrastinate-worker.log"
        args = [python, str(SCRIPTS / "proc_worker.py"), str(PROC_CONCURRENCY)]
        pg_cpu0 = _tree_cpu_s(pg.pid)  # idle until the worker starts
        receiver_cpu0 = receiver.cpu_s()
        pg_cpu: list[float] = []
        async with running("procrastinate-worker", args, log, env) as worker:

            def cpu_now() -> float:
                pg_cpu.append(_tree_cpu_s(pg.pid) - pg_cpu0)
                return cpu_s(worker.pid) + pg_cpu[-1]

            delivered = await _deliver(
                "procrastinate",
                receiver,
                n,
                timeout_s,
                progress,
                released_at=lambda: _announced(worker, "started"),
                cpu_now=cpu_now,
                cpu_at_release=lambda: _announced(worker, "cpu"),
                receiver_cpu0=receiver_cpu0,
                log=log,
            )
    if pg_cpu and delivered.get("end_to_end_s", 0) > 0:
        delivered["postgres_cpu_pct"] = 100.0 * pg_cpu[-1] / delivered["end_to_end_s"]
    return {
        "system": PEERS["procrastinate"].system,
        "peer": "procrastinate",
        "postgres": pg.version,
        "n": n,
        "enqueue": f"batch_defer_async, {PROC_BATCH} jobs per call",
        "enqueue_tasks_per_s": rate(n, enq["enqueue_s"]),
        "enqueue_s": enq["enqueue_s"],
        "held_back_by": f"no worker; released by starting one with concurrency {PROC_CONCURRENCY}",
        **delivered,
    }


# ------------------------------------------------------------------ registry


Runner = Callable[..., Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class PeerSpec:
    key: str  # the path segment of its tasks' URLs and the name of its venv
    system: str  # display name with version
    requirements: tuple[str, ...]
    runner: Runner


PEERS: dict[str, PeerSpec] = {
    "gte": PeerSpec("gte", "gcloud-tasks-emulator 0.6.2", GTE_REQUIREMENTS, run_gte),
    "huey": PeerSpec("huey", "huey 3.5.4 (SqliteHuey)", HUEY_REQUIREMENTS, run_huey),
    "procrastinate": PeerSpec(
        "procrastinate", "procrastinate 3.10.0", PROC_REQUIREMENTS, run_procrastinate
    ),
}


def _progress_printer(key: str, n: int) -> Progress:
    last = [0.0]

    def progress(count: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 2.0:
            last[0] = now
            say(f"peers: {key} {count}/{n} delivered")

    return progress


async def run_all(
    receiver: Receiver,
    *,
    n: int,
    tmp: Path,
    timeout_s: float,
    only: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Run every peer (or those in ``only``) one after the other, each in ``tmp/<key>``.

    A peer that cannot run, fails or times out gives ``{"system", "peer", "skipped": reason}``
    instead of a measurement; the others still run.
    """
    keys = list(PEERS) if only is None else list(only)
    rows: list[dict[str, Any]] = []
    for key in keys:
        spec = PEERS.get(key)
        if spec is None:
            rows.append({"system": key, "peer": key, "skipped": f"unknown peer {key!r}"})
            continue
        say(f"peers: {spec.system}, N={n}")
        try:
            row = await spec.runner(
                receiver,
                n=n,
                tmp=tmp / key,
                timeout_s=timeout_s,
                progress=_progress_printer(key, n),
            )
        except Exception as e:  # one broken peer never breaks the benchmark
            reason = e.reason if isinstance(e, PeerUnavailable) else f"{type(e).__name__}: {e}"
            say(f"peers: {spec.system} skipped: {reason.splitlines()[0] if reason else ''}")
            rows.append({"system": spec.system, "peer": key, "skipped": reason})
            continue
        say(
            f"peers: {spec.system}: enqueue {row['enqueue_tasks_per_s']:,.0f}/s, "
            f"{row.get('deliveries_per_s', 0):,.0f} deliveries/s, "
            f"{row['duplicates']} duplicates, {row['missing']} missing"
        )
        rows.append(row)
    return rows
