"""The peers' live runs install virtualenvs from PyPI and take minutes: `make bench` runs the
peers for real, and `make test` leaves these tests out (deselected, not skipped) unless
PUSHD_BENCH_PEERS=1 asks for them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PUSHD_BENCH_PEERS") == "1":
        return
    live = [item for item in items if item.get_closest_marker("peers_live")]
    if live:
        config.hook.pytest_deselected(items=live)
        items[:] = [item for item in items if not item.get_closest_marker("peers_live")]
