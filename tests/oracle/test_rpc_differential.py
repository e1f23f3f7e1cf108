"""App Engine's own client observes the same over ``/rpc_http`` from pushd as from App Engine's stub.

One scenario (:mod:`tests.oracle.taskqueue_scenario`) runs twice in the oracle venv with
``google.appengine.api.taskqueue`` sending every call through the SDK's ``DefaultApiStub``
(:mod:`tests.oracle.rpc_scenario_client`), as an app on App Engine does: once against the SDK's
``TaskQueueServiceStub`` served behind ``POST /rpc_http`` (:mod:`tests.oracle.rpc_stub_server`),
once against a real ``pushd serve`` subprocess. Every observation must be equal, except those in
:data:`KNOWN_DIFFERENCES`, which must differ exactly as listed (so the test notices when one
stops differing).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.oracle import taskqueue_scenario as scenario
from tests.oracle.runner import HERE, oracle_python, run_oracle
from tests.oracle.test_taskqueue_differential import SPEC_DIFFERENCES, differences

if TYPE_CHECKING:
    from tests.integration.harness import Daemon

pytestmark = pytest.mark.oracle

START_TIMEOUT_S = 30.0
CLIENT_TIMEOUT_S = 45.0

#: label -> (the stub's value, pushd's value, why): the SPEC choices only. Unlike pushd's own
#: client, App Engine's raises the generic Error for UNKNOWN_TASK on both sides.
KNOWN_DIFFERENCES = SPEC_DIFFERENCES


@pytest.fixture
async def stub_port(tmp_path: Path) -> AsyncIterator[int]:
    """The port of App Engine's stub behind ``/rpc_http`` (a subprocess in the oracle venv)."""
    log = tmp_path / "rpc_stub_server.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            str(oracle_python()),
            str(HERE / "rpc_stub_server.py"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=HERE,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(json.dumps({"queue_yaml": scenario.QUEUE_YAML}).encode() + b"\n")
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
            if not line.strip():
                raise AssertionError(f"rpc_stub_server.py did not start:\n{log.read_text()}")
            yield int(line)
        finally:
            proc.stdin.close()
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


def _run_client(port: int) -> list[list[Any]]:
    payload = {"api_host": "127.0.0.1", "api_port": port}
    answer = run_oracle("rpc_scenario_client.py", payload, timeout_s=CLIENT_TIMEOUT_S)
    observations: list[list[Any]] = answer["observations"]
    return observations


async def test_pushd_answers_rpc_http_as_app_engine_stub_does(
    stub_port: int, daemon: Daemon
) -> None:
    pushd_port = urlsplit(daemon.url).port
    assert pushd_port is not None
    stub_side, pushd_side = await asyncio.gather(
        asyncio.to_thread(_run_client, stub_port), asyncio.to_thread(_run_client, pushd_port)
    )
    problems, shared = differences(stub_side, pushd_side, KNOWN_DIFFERENCES)
    assert not problems, "\n".join(problems)
    # The scenario really ran on both sides: most observations are shared and equal.
    assert shared >= 150
