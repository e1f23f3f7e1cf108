"""Fixtures shared by the differential tests of tests/oracle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.harness import Daemon, Receiver
from tests.oracle import taskqueue_scenario as scenario


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    receiver = await Receiver().start()  # nothing is delivered (push-a has rate 0)
    started = await Daemon(tmp_path, scenario.QUEUE_YAML, default_target=receiver.url).start()
    try:
        yield started
    finally:
        await started.kill()
        await receiver.stop()
