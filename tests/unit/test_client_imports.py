"""A producer that imports the client loads neither the daemon side nor the queue.yaml parser.

Checked in a fresh interpreter, since this test process has loaded everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_DAEMON_SIDE = ("pushd.config", "pushd.queue_yaml", "pushd.store", "pushd.scheduler", "pushd.api")


def _loaded_after(module: str) -> list[str]:
    """The modules a fresh interpreter holds after importing ``module``."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=50, check=True
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize("module", ["pushd.taskqueue", "pushd.client", "pushd.wire"])
def test_client_loads_no_yaml_and_no_daemon_module(module: str) -> None:
    loaded = _loaded_after(module)
    assert module in loaded
    assert "yaml" not in loaded
    assert [m for m in loaded if m.startswith(_DAEMON_SIDE)] == []
    assert "aiohttp.web" not in loaded
