from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.harness import Daemon, Receiver

StartDaemon = Callable[..., Awaitable[Daemon]]

#: The transports the delivery rules are checked on, both in ``make test`` (docs/RELIABILITY.md,
#: "Transport seam"); ``PUSHD_TEST_TRANSPORT=h1`` (or ``aiohttp``) runs one.
DELIVERY_TRANSPORTS = tuple(
    t for t in os.environ.get("PUSHD_TEST_TRANSPORT", "h1,aiohttp").split(",") if t
)


@pytest.fixture(scope="module", params=DELIVERY_TRANSPORTS)
def delivery_transport(request: pytest.FixtureRequest) -> str:
    """Each transport a daemon's deliveries are checked on (``transport`` in its settings)."""
    return str(request.param)


@pytest.fixture
def each_transport(delivery_transport: str) -> Iterator[str]:
    """Every daemon this test starts delivers through ``delivery_transport``
    (``PUSHD_TRANSPORT``, which the daemon reads from its environment)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PUSHD_TRANSPORT", delivery_transport)
        yield delivery_transport


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = await Receiver().start()
    yield rx
    await rx.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def start_daemon(tmp_path: Path, receiver: Receiver) -> AsyncIterator[StartDaemon]:
    """Start ``pushd serve`` with a queue.yaml text; every daemon is stopped at the end."""
    started: list[Daemon] = []

    async def start(queue_yaml: str, **kw: Any) -> Daemon:
        kw.setdefault("default_target", receiver.url)
        d = await Daemon(tmp_path, queue_yaml, **kw).start()
        started.append(d)
        return d

    yield start
    for d in started:
        await d.kill()
