"""Google's official Node.js client (``@google-cloud/tasks``, pinned in tests/node/package.json)
against a real daemon, over gRPC and over REST (gax's HTTP/1.1 fallback), unchanged: the small
script tests/node/scenario.js runs one scenario and prints what it saw.

``npm ci`` fills tests/node/node_modules once (``.ci/run`` does it too); later runs use it.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import StartDaemon
    from tests.integration.harness import Receiver

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
QUEUE_YAML = "queue:\n- name: jobs\n  rate: 20/s\n"
QUEUE = "projects/node-project/locations/europe-west1/queues/jobs"
GRPC = re.compile(r"\bgrpc=(\S+)")


def message(error: dict[str, Any]) -> str:
    """The server's message: gRPC's details, or inside the JSON body the REST fallback quotes
    whole (as it does against Google)."""
    text = str(error["message"])
    return str(json.loads(text)["error"]["message"]) if text.startswith("{") else text


@pytest.fixture(scope="module")
def node_client() -> Path:
    """tests/node with its packages installed (``npm ci`` the first time)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the Node client's tests (.ci/run installs them)")
    if not (NODE_DIR / "node_modules" / "@google-cloud" / "tasks").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            capture_output=True,
            timeout=240,
        )
    return NODE_DIR


@pytest.mark.timeout(300)  # the first run installs the packages
@pytest.mark.parametrize("mode", ["grpc", "rest"])
async def test_node_client(
    start_daemon: StartDaemon, receiver: Receiver, node_client: Path, mode: str
) -> None:
    daemon = await start_daemon(QUEUE_YAML, extra_args=["--grpc-port", "0"])
    match = GRPC.search(daemon.events("listening")[0])
    assert match
    if mode == "grpc":
        host, _, port = match.group(1).rpartition(":")
    else:
        url = urlsplit(daemon.url)
        host, port = str(url.hostname), str(url.port)
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(node_client / "scenario.js"),
        mode,
        host,
        port,
        QUEUE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out)
    assert seen["queue"]["name"] == QUEUE
    assert seen["queue"]["rate"] == 20
    assert seen["created"] == f"{QUEUE}/tasks/node-{mode}"
    # gRPC errors carry the gRPC code; the REST fallback the HTTP status (as against Google).
    codes = {"grpc": (6, 5, 3), "rest": (409, 404, 400)}[mode]
    assert (seen["duplicate"]["code"], seen["missing"]["code"], seen["badId"]["code"]) == codes
    assert message(seen["duplicate"]) == "Requested entity already exists"
    assert message(seen["missing"]) == "Requested entity was not found."
    assert message(seen["badId"]).startswith('Task ID "bad id" can contain only letters')
    assert seen["later"]["name"] == f"{QUEUE}/tasks/later-{mode}"
    assert seen["later"]["view"] in ("FULL", 2)
    assert seen["ran"] == seen["later"]["name"]
    assert seen["states"] in (["PAUSED", "RUNNING"], [2, 1])
    deliveries = await receiver.wait_for(2)
    assert sorted(d.path for d in deliveries) == ["/later", "/node"]
    node = next(d for d in deliveries if d.path == "/node")
    assert node.body == b"from node"
    assert node.headers["X-AppEngine-TaskName"] == f"node-{mode}"
