"""Google's official Node.js client (``@google-cloud/tasks``, pinned in tests/node/package.json)
against a real daemon on SQLite, over gRPC and over REST (gax's HTTP/1.1 fallback), unchanged:
the small script tests/node/scenario.js runs issue 19's scenario (the steps and queues of
test_cloudtasks_scenario.py) in two phases around a restart and prints what it saw; this test
checks that and the deliveries.

``npm ci`` fills tests/node/node_modules once (``.ci/run`` does it too); later runs use it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.integration import test_cloudtasks_scenario as scenario
from tests.integration.test_cloudtasks_http import check_http_attempts

if TYPE_CHECKING:
    from tests.integration.conftest import StartDaemon
    from tests.integration.harness import Daemon, Delivery, Receiver

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
PARENT = "projects/node-project/locations/europe-west1"
GRPC = re.compile(r"\bgrpc=(\S+)")
#: What each failure carries: gRPC's code, or the REST fallback's HTTP status (as against Google).
CODES = {
    "grpc": {"ALREADY_EXISTS": 6, "NOT_FOUND": 5, "INVALID_ARGUMENT": 3},
    "rest": {"ALREADY_EXISTS": 409, "NOT_FOUND": 404, "INVALID_ARGUMENT": 400},
}


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


async def node_json(*args: str) -> dict[str, Any]:
    """What a Node script printed (one JSON object); it must exit 0."""
    proc = await asyncio.create_subprocess_exec(
        "node", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return dict(json.loads(out))


async def run_node(
    node_dir: Path, mode: str, daemon: Daemon, phase: str, *http_url: str
) -> dict[str, Any]:
    """One phase of tests/node/scenario.js against ``daemon``: what it printed."""
    if mode == "grpc":
        match = GRPC.search(daemon.events("listening")[0])
        assert match
        host, _, port = match.group(1).rpartition(":")
    else:
        url = urlsplit(daemon.url)
        host, port = str(url.hostname), str(url.port)
    return await node_json(
        str(node_dir / "scenario.js"), mode, host, port, PARENT, phase, *http_url
    )


async def check_http_task(
    node_dir: Path, daemon: Daemon, seen: dict[str, Any], attempts: list[Delivery], url: str
) -> None:
    """The http_request task as created (its token kept as the oneof, not a header), each
    attempt's X-CloudTasks-* headers, and each attempt's ID token accepted by Node's
    OAuth2Client against the daemon's certs (its issuer: the daemon's URL by default)."""
    assert seen["http"] == {
        "url": url,
        "headers": {"X-Scenario": "kept", "User-Agent": "Google-Cloud-Tasks"},
        "email": scenario.SERVICE_ACCOUNT,
    }
    check_http_attempts(attempts, queue="ct-retry", task="http-thrice")
    for attempt in attempts:
        token = attempt.headers["Authorization"].removeprefix("Bearer ")
        verified = await node_json(
            str(node_dir / "verify_oidc.js"), daemon.url, daemon.url, token, url
        )
        assert "error" not in verified["accepted"], verified
        payload = verified["accepted"]["payload"]
        assert (payload["email"], payload["aud"]) == (scenario.SERVICE_ACCOUNT, url)


def refused(seen: dict[str, Any], mode: str, code: str, text: str) -> None:
    assert seen["code"] == CODES[mode][code], seen
    assert text in message(seen), seen


def check_before(seen: dict[str, Any], mode: str) -> None:
    """What the client saw in the first phase: every answer of every step."""
    ids = scenario.QUEUE_IDS
    assert seen["made"] == {"state": "RUNNING", "rate": 20}
    assert seen["queuePages"] == [ids[0:2], ids[2:4], ids[4:]]
    assert seen["retryQueue"]["maxAttempts"] == 5
    assert seen["sched"] == {
        "view": "FULL",
        "scheduleSeconds": seen["etaSeconds"],
        "body": "on time",
    }
    refused(seen["duplicate"], mode, "ALREADY_EXISTS", scenario.ALREADY_EXISTS)
    refused(seen["deleted"], mode, "NOT_FOUND", scenario.EXISTED_RECENTLY)
    refused(seen["tombstoned"], mode, "ALREADY_EXISTS", scenario.ALREADY_EXISTS)
    refused(seen["missing"], mode, "NOT_FOUND", "Requested entity was not found.")
    refused(seen["badId"], mode, "INVALID_ARGUMENT", 'Task ID "bad id" can contain only letters')
    assert seen["taskPages"] == [["h0", "h1"], ["h2", "h3"], ["h4"]]
    assert seen["ranWhilePaused"] == "h4"
    assert seen["afterPurge"] == [[]]
    assert seen["states"] in (["PAUSED", "RUNNING"], [2, 1])


@pytest.mark.timeout(300)  # the first run installs the packages
@pytest.mark.parametrize("mode", ["grpc", "rest"])
async def test_node_client_scenario(
    start_daemon: StartDaemon,
    receiver: Receiver,
    node_client: Path,
    mode: str,
    tmp_path: Path,
) -> None:
    http = scenario.HTTP_PATH
    receiver.respond = scenario.Script({"/retry": [503, 404], http: [503, 404]})
    wall_offset = time.time() - time.monotonic()
    settings = tmp_path / "node-pushd.yaml"
    settings.write_text(f"http_targets:\n- '{receiver.url}/ct-http/'\n")
    args = ["--grpc-port", "0", "--settings", str(settings)]
    start = functools.partial(start_daemon, scenario.QUEUE_YAML, extra_args=args)
    daemon = await start()
    seen = await run_node(node_client, mode, daemon, "before", receiver.url + http)
    check_before(seen, mode)
    paths = ["/api", "/sched", "/retry", "/hold/after-purge", http]
    deliveries = await receiver.wait_until(
        lambda ds: all(scenario.on(p)(ds) for p in paths), timeout_s=30
    )
    [sched] = [d for d in deliveries if d.path == "/sched"]
    scenario.check_on_time(sched, seen["etaSeconds"], wall_offset)
    scenario.check_retries([d for d in deliveries if d.path == "/retry"])
    attempts = [d for d in deliveries if d.path == http]
    await check_http_task(node_client, daemon, seen, attempts, receiver.url + http)
    assert await daemon.stop() == 0

    daemon = await start()  # the same SQLite file
    seen = await run_node(node_client, mode, daemon, "after")
    assert seen["states"] in (["PAUSED", "RUNNING"], [2, 1])
    assert seen["made"] == {"rate": 20, "maxAttempts": 3}
    assert seen["kept"] == {
        "scheduleSeconds": int(seen["kept"]["scheduleSeconds"]),
        "nanos": 250_000_000,
        "body": "durable",
    }
    refused(seen["duplicate"], mode, "ALREADY_EXISTS", scenario.ALREADY_EXISTS)
    refused(seen["delivered"], mode, "NOT_FOUND", scenario.EXISTED_RECENTLY)
    await receiver.wait_until(scenario.on("/durable"), timeout_s=30)
    scenario.check_exactly_once(receiver)
