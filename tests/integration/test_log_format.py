"""``pushd serve --log-format json``: one JSON object per event line, with stable event names."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from tests.integration.harness import Receiver

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


async def test_json_logs_have_an_event_name_and_fields(tmp_path: Path, receiver: Receiver) -> None:
    (tmp_path / "queue.yaml").write_text("queue:\n- name: work\n  rate: 10/s\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pushd",
        "serve",
        "--config",
        str(tmp_path / "queue.yaml"),
        "--db",
        str(tmp_path / "pushd.sqlite3"),
        "--port",
        "0",
        "--default-target",
        receiver.url,
        "--log-format",
        "json",
        "--log-level",
        "debug",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        first = json.loads(await asyncio.wait_for(proc.stderr.readline(), 30))
        assert first["event"] == "listening"
        assert first["level"] == "info"
        assert first["url"].startswith("http://127.0.0.1:")
        assert re.fullmatch(STAMP, first["time"])  # RFC 3339, UTC, milliseconds
        assert {"version", "python", "sqlite"} <= first.keys()
        async with aiohttp.ClientSession() as session:
            url = f"{first['url']}/api/v1/queues/work"
            async with session.post(f"{url}/tasks", json={"name": "t1", "url": "/x"}) as resp:
                assert resp.status == 200
            await receiver.wait_for(1)
            async with session.post(f"{url}/pause") as resp:
                assert resp.status == 200
        events = []
        while not {"task_delivered", "queue_paused"} <= {e["event"] for e in events}:
            events.append(json.loads(await asyncio.wait_for(proc.stderr.readline(), 30)))
        delivered = next(e for e in events if e["event"] == "task_delivered")
        assert (delivered["queue"], delivered["task"], delivered["status"]) == ("work", "t1", 200)
        assert next(e for e in events if e["event"] == "queue_paused")["queue"] == "work"
        assert all(re.fullmatch(STAMP, e["time"]) for e in events)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
