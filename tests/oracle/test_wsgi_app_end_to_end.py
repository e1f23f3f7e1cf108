"""An unmodified App Engine app runs its task queue work against a real ``pushd serve``.

:mod:`tests.oracle.wsgi_app`, a WSGI app wrapped with the SDK's ``wrap_wsgi_app(...,
use_deferred=True)``, runs under the oracle venv on 127.0.0.1 with ``API_HOST``/``API_PORT``
pointing at pushd, which in turn delivers push tasks to the app (``--default-target``). One user
request adds tasks to two queues (named, unnamed, one batch) and defers a function twice;
pushd delivers each task with App Engine's headers; each first-level handler adds a follow-up
task through ``/rpc_http`` with the API ticket of its delivery; the SDK's own deferred handler
runs the deferred function, accepting pushd's requests as App Engine's (``X-AppEngine-User-IP:
0.1.0.2``) without a ``Devel...`` ``SERVER_SOFTWARE``.

Order of start-up, with no port reserved and released: the app binds its port and prints it,
pushd starts with that port as its default target, and the app then reads pushd's port on stdin
before it wraps its WSGI app (``wrap_wsgi_app`` snapshots ``os.environ``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.integration.harness import Daemon
from tests.oracle.runner import HERE, oracle_python

pytestmark = pytest.mark.oracle

QUEUE_YAML = """\
queue:
- name: default
  rate: 100/s
  bucket_size: 20
- name: fast
  rate: 100/s
  bucket_size: 20
"""

#: What the app's process environment carries as the API ticket of requests that bring none
#: (its user-facing requests); without API tokens configured pushd accepts any ticket.
PROCESS_TICKET = "ticket-of-the-app-process"
START_TIMEOUT_S = 20.0
EVENTS_TIMEOUT_S = 20.0


@dataclass
class App:
    """``tests/oracle/wsgi_app.py`` as a subprocess of the oracle venv."""

    stderr_path: Path
    env: dict[str, str]
    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    _stderr: IO[bytes] | None = None
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> App:
        self._stderr = self.stderr_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            str(oracle_python()),
            str(HERE / "wsgi_app.py"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
            cwd=HERE,
            env=self.env,
        )
        self._reader = asyncio.create_task(self._read())
        port = (await self.wait_until(lambda e: "port" in e, START_TIMEOUT_S))["port"]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def use_api_port(self, port: int) -> None:
        """Hand the app pushd's port; it serves requests once it has wrapped itself."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"api_port": port}).encode() + b"\n")
        await self.proc.stdin.drain()
        self.proc.stdin.close()
        await self.proc.stdin.wait_closed()
        await self.wait_until(lambda e: e.get("ready") is True, START_TIMEOUT_S)

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {"event": "stdout", "line": raw.decode(errors="replace")}
            self.events.append(event)
            async with self._changed:
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    def exited(self) -> bool:
        return self._reader is not None and self._reader.done()

    async def wait_until(
        self, found: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> dict[str, Any]:
        """The first event ``found`` accepts, waiting for it at most ``timeout_s``."""

        def first() -> dict[str, Any] | None:
            return next((e for e in self.events if found(e)), None)

        async def arrived() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: first() is not None or self.exited())

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived(), timeout_s)
        event = first()
        if event is None:
            raise AssertionError(f"the app did not report the event in time\n{self.report()}")
        return event

    async def wait_for_all(self, done: Callable[[], bool], timeout_s: float) -> None:
        """Wait until ``done()`` holds, the app reports an error or exits, or time is up."""

        def settled() -> bool:
            return done() or self.exited() or any(e.get("event") == "error" for e in self.events)

        async def arrived() -> None:
            async with self._changed:
                await self._changed.wait_for(settled)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived(), timeout_s)

    def of(self, kind: str, **where: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("event") == kind
            and all(e.get("payload", {}).get(k) == v for k, v in where.items())
        ]

    def report(self) -> str:
        events = "\n".join(json.dumps(e, sort_keys=True) for e in self.events)
        stderr = self.stderr_path.read_text(errors="replace")[-6000:]
        return f"app events:\n{events}\napp stderr (tail):\n{stderr}"

    async def kill(self) -> None:
        if self.proc is not None:
            if self.proc.returncode is None:
                self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
        if self._stderr is not None:
            self._stderr.close()


def _app_env() -> dict[str, str]:
    """What an App Engine app must be given to run against pushd, and nothing App Engine-ish
    from the test's own environment (notably no ``SERVER_SOFTWARE``)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {
        **{k: v for k, v in os.environ.items() if k in keep},
        "PYTHONUNBUFFERED": "1",
        "API_HOST": "127.0.0.1",
        "GAE_APPLICATION": "pushd-e2e",
        "HTTP_X_APPENGINE_API_TICKET": PROCESS_TICKET,
    }


@pytest.fixture
async def app_and_daemon(tmp_path: Path) -> AsyncIterator[tuple[App, Daemon]]:
    app = App(tmp_path / "app.stderr", _app_env())
    daemon: Daemon | None = None
    try:
        await app.start()
        daemon = await Daemon(tmp_path, QUEUE_YAML, default_target=app.url).start()
        port = urlsplit(daemon.url).port
        assert port is not None
        await app.use_api_port(port)
        yield app, daemon
    finally:
        await app.kill()
        if daemon is not None:
            await daemon.kill()


async def test_app_engine_app_enqueues_receives_follows_up_and_defers(
    app_and_daemon: tuple[App, Daemon],
) -> None:
    app, daemon = app_and_daemon
    async with aiohttp.ClientSession() as session, session.get(app.url + "/start") as resp:
        assert resp.status == 200, f"/start answered {resp.status}\n{app.report()}"

    start = await app.wait_until(lambda e: e.get("event") == "start", EVENTS_TIMEOUT_S)
    added = [tuple(qn) for qn in start["added"]]
    first_level, deferred_tasks = added[:5], added[5:]
    # The user request had no ticket of its own: the SDK used the process environment's.
    assert start["ticket_header"] is None
    assert start["ticket_used"] == PROCESS_TICKET
    # pushd answered every add with the task's name, choosing the names of unnamed tasks.
    queues = ["default", "default", "fast", "fast", "fast", "default", "fast"]
    assert [q for q, _ in added] == queues
    assert added[0][1] == "start-default-named"
    assert added[2][1] == "start-fast-named"
    assert all(name for _, name in added)
    assert len(set(added)) == len(added)

    await app.wait_for_all(
        lambda: (
            len(app.of("work", level=1)) >= len(first_level)
            and len(app.of("work", level=2)) >= len(first_level)
            and len(app.of("deferred")) >= len(deferred_tasks)
        ),
        EVENTS_TIMEOUT_S,
    )
    context = f"\n{app.report()}\npushd log (tail):\n" + "\n".join(daemon.log[-40:])
    assert not app.of("error"), "a handler of the app failed" + context

    # Every first-level task arrived once, from pushd, with App Engine's headers and a ticket
    # of its own, which the handler used to add its follow-up.
    level1 = app.of("work", level=1)
    assert sorted((e["headers"]["queuename"], e["headers"]["taskname"]) for e in level1) == sorted(
        first_level
    ), context
    followups: dict[str, tuple[str, str]] = {}
    for e in level1:
        headers = e["headers"]
        assert (e["method"], e["path"]) == ("POST", "/work"), context
        assert headers["queuename"] == e["payload"]["queue"], context
        assert headers["taskretrycount"] == "0", context
        assert headers["user_ip"] == "0.1.0.2", context
        assert e["remote_addr"] == "0.1.0.2", context
        assert headers["api_ticket"] not in ("", PROCESS_TICKET), context
        assert e["ticket_used"] == headers["api_ticket"], context
        queue, name = e["followup"]
        assert queue == headers["queuename"], context
        followups[headers["taskname"]] = (queue, name)

    # Every follow-up arrived once, on its parent's queue, under the name its add answered.
    level2 = app.of("work", level=2)
    assert sorted(e["payload"]["parent"] for e in level2) == sorted(n for _, n in first_level), (
        context
    )
    for e in level2:
        headers = e["headers"]
        parent = e["payload"]["parent"]
        assert (headers["queuename"], headers["taskname"]) == followups[parent], context
        assert headers["taskretrycount"] == "0", context
        assert e["followup"] is None, context

    # The SDK's deferred handler ran both deferred calls in "production" mode.
    ran = app.of("deferred")
    assert sorted((e["queue"], e["task"], e["arg"]) for e in ran) == sorted(
        [(q, n, f"deferred to {q}") for q, n in deferred_tasks]
    ), context
    for e in ran:
        assert e["remote_addr"] == "0.1.0.2", context
        assert not (e["server_software"] or "").startswith("Devel"), context
