from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.harness import Daemon, Receiver

StartDaemon = Callable[..., Awaitable[Daemon]]


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
