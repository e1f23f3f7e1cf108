"""What every benchmark scenario shares: child processes, progress lines, HTTP helpers, tables.

Children are started with ``PR_SET_PDEATHSIG`` so they die with the benchmark even when it is
killed without cleaning up; :func:`running` stops them (SIGTERM, then SIGKILL) on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0  # a subprocess must be listening by then
STOP_TIMEOUT_S = 10.0  # SIGTERM, then SIGKILL after this
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
LISTENING = re.compile(r"\blistening\b.*\burl=(\S+)")

T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {message}", flush=True)


# ------------------------------------------------------------------ processes


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL if the benchmark dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds used by ``pid`` so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


@dataclass
class Child:
    """A subprocess started by the benchmark, killed by :meth:`stop` whatever happens."""

    name: str
    proc: asyncio.subprocess.Process
    log: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            say(f"{self.name} ignored SIGTERM for {STOP_TIMEOUT_S:g}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def _spawn(name: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> Child:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            preexec_fn=_die_with_parent,
        )
    return Child(name, proc, log)


async def _wait_listening(child: Child) -> str:
    """The ``url=`` of the child's ``listening`` line; the log is a file, so nothing blocks."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in child.log.read_text(errors="replace").splitlines():
            if m := LISTENING.search(line):
                return m.group(1)
        if child.proc.returncode is not None:
            break
        await asyncio.sleep(0.02)
    tail = child.log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{child.name} did not start within {START_TIMEOUT_S:g}s:\n{tail}")


@contextlib.asynccontextmanager
async def running(
    name: str, args: list[str], log: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Child]:
    child = await _spawn(name, args, log, env)
    try:
        child.url = await _wait_listening(child)
        yield child
    finally:
        await child.stop()


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as resp:
        resp.raise_for_status()
        return await resp.json()


async def post_json(session: aiohttp.ClientSession, url: str, body: object = None) -> Any:
    async with session.post(url, json=body) as resp:
        text = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"POST {url} answered {resp.status}: {text[:500]}")
        return json.loads(text)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
