"""Reliability campaigns: crashes, receiver faults, bad input, concurrency (docs/RELIABILITY.md).

Each campaign has a short version that runs in ``make test`` and a full one in ``make chaos``
(``PUSHD_CHAOS=full``). Campaigns size themselves with :func:`scale`; everything is bounded in
count and time, on 127.0.0.1 only.
"""

from __future__ import annotations

import os

import pytest

FULL = os.environ.get("PUSHD_CHAOS") == "full"


def scale(short: int, full: int) -> int:
    """``full`` under ``make chaos``, else ``short``."""
    return full if FULL else short


@pytest.fixture
def chaos_full() -> bool:
    return FULL


# The real daemon, receiver and HTTP session of the integration tests.
from tests.integration.conftest import (  # noqa: E402, F401
    DELIVERY_TRANSPORTS,
    delivery_transport,
    each_transport,
    receiver,
    session,
    start_daemon,
)
