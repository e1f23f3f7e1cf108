"""SSRF campaign: Cloud Tasks HTTP tasks aimed at a private receiver by every spelling at hand
(docs/RELIABILITY.md, "SSRF: HTTP tasks and http_targets").

A real daemon (subprocess, SQLite file) with two receivers on 127.0.0.1: an allowed one, named
literally in ``http_targets``, and a *private* one whose port the operator listed only under
host names and odd spellings of 127.0.0.1 (``localhost``, ``localhost.``, ``127.1``,
``2130706433``, ``0177.0.0.1``, ``0x7f.1``): the resolver turns each into 127.0.0.1, so each is
created (its prefix matches) and each attempt must be refused after resolving. Other URLs must
be refused at creation (the address itself, IPv6 and IPv4-mapped spellings, a user name in front
of the host, the metadata address), and the allowed receiver answers one task with a redirect to
the private one, which must not be followed. The private receiver must never see a request; the
allowed one gets its tasks.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.integration.harness import Receiver
from tests.reliability.conftest import scale

if TYPE_CHECKING:
    import aiohttp

    from tests.integration.conftest import StartDaemon

QUEUE_YAML = """
queue:
- name: hooks
  rate: 100/s
  bucket_size: 20
  retry_parameters:
    task_retry_limit: 1000
    min_backoff_seconds: 0.2
    max_backoff_seconds: 0.2
"""
TASKS = "/v2/projects/p/locations/l/queues/hooks/tasks"
#: Spellings of 127.0.0.1 the system resolver accepts as host names (glibc's inet_aton forms).
NAMES = ("localhost", "localhost.", "127.1", "2130706433", "0177.0.0.1", "0x7f.1")
PERMISSION_DENIED, UNAVAILABLE = 7, 14


async def create(session: aiohttp.ClientSession, base: str, name: str, url: str) -> int:
    body = {"task": {"name": f"{TASKS[4:]}/{name}", "httpRequest": {"url": url}}}
    async with session.post(base + TASKS, json=body) as resp:
        await resp.read()
        return resp.status


async def get(session: aiohttp.ClientSession, base: str, name: str) -> dict[str, Any]:
    """A live task; a task gone was delivered (a 2xx answer), which must not happen here."""
    async with session.get(f"{base}{TASKS}/{name}") as resp:
        data: dict[str, Any] = await resp.json()
        assert resp.status == 200, f"task {name} is gone: a receiver answered it ({data})"
        return data


async def attempts_reach(
    session: aiohttp.ClientSession, base: str, names: list[str], count: int
) -> dict[str, dict[str, Any]]:
    """Each task once it has ``count`` attempts (bounded: the daemon retries every 0.2 s)."""
    found: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(30):
        while len(found) < len(names):
            for name in names:
                if name not in found:
                    task = await get(session, base, name)
                    if task.get("dispatchCount", 0) >= count:
                        found[name] = task
            await asyncio.sleep(0.05)
    return found


async def test_no_spelling_of_a_private_address_reaches_it(
    start_daemon: StartDaemon,
    receiver: Receiver,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    private = await Receiver().start()
    try:
        await campaign(start_daemon, receiver, private, session, tmp_path)
    finally:
        await private.stop()


async def campaign(
    start_daemon: StartDaemon,
    allowed: Receiver,
    private: Receiver,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    attempts = scale(2, 10)
    ok_tasks = scale(20, 200)
    port = private.url.rsplit(":", 1)[1]
    allowed.respond = lambda request, i: (
        (302, {"Location": private.url + "/stolen"}) if request.path == "/redirect" else 200
    )
    prefixes = [allowed.url + "/", *(f"http://{name}:{port}/" for name in NAMES)]
    settings = tmp_path / "pushd.yaml"
    settings.write_text("http_targets:\n" + "".join(f"- {p!r}\n" for p in prefixes))
    daemon = await start_daemon(QUEUE_YAML, extra_args=["--settings", str(settings)])
    started = time.monotonic()

    at_create = [
        private.url + "/",
        f"http://[::1]:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://{allowed.url[7:]}@127.0.0.1:{port}/",
        f"http://localhost:{port}@127.0.0.1:{port}/",
        "http://169.254.169.254/computeMetadata/v1/",
        f"http://LOCALHOST:{port}.evil.example/",
    ]
    statuses = [await create(session, daemon.url, f"c{i}", u) for i, u in enumerate(at_create)]
    assert statuses == [400] * len(at_create), list(zip(at_create, statuses, strict=True))

    refused = {f"n{i}": f"http://{name}:{port}/steal" for i, name in enumerate(NAMES)}
    for name, url in refused.items():
        assert await create(session, daemon.url, name, url) == 200, url
    assert await create(session, daemon.url, "redirect", allowed.url + "/redirect") == 200
    for i in range(ok_tasks):
        assert await create(session, daemon.url, f"ok{i}", f"{allowed.url}/ok/{i}") == 200

    seen = await attempts_reach(session, daemon.url, [*refused, "redirect"], attempts)
    await allowed.wait_for(ok_tasks + attempts)
    for name in refused:
        status = seen[name]["lastAttempt"]["responseStatus"]
        assert status["code"] in (PERMISSION_DENIED, UNAVAILABLE), (name, status)
        assert seen[name].get("responseCount", 0) == 0
    assert seen["redirect"]["lastAttempt"]["responseStatus"]["message"] == "HTTP status code 302"
    assert private.started == 0, [d.path for d in private.deliveries]
    ok_paths = {d.path for d in allowed.deliveries if d.path.startswith("/ok/")}
    assert ok_paths == {f"/ok/{i}" for i in range(ok_tasks)}
    codes = sorted({seen[name]["lastAttempt"]["responseStatus"]["code"] for name in refused})
    print(
        f"ssrf: codes {codes}, {len(at_create)} refused at create, {len(refused)} names x >= {attempts} "
        f"attempts refused, {ok_tasks} delivered, redirect not followed, private receiver "
        f"requests 0, {time.monotonic() - started:.1f}s"
    )
