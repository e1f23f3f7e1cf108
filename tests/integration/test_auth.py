"""The real daemon's access control: loopback only without tokens; tokens, roles and acls."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tests.integration.harness import api

if TYPE_CHECKING:
    import aiohttp

    from tests.integration.conftest import StartDaemon

PULL_WITH_ACL = """
queue:
- name: jobs
  mode: pull
  acl:
  - user_email: worker@example.com
  - writer_email: web@example.com
"""
WORKER = "worker-token-0123456789abcdef"
WEB = "web-token-0123456789abcdef"
SETTINGS = f"""
auth_tokens:
- name: worker
  token: {WORKER}
  role: consumer
  identity: worker@example.com
- name: web
  token: {WEB}
  role: producer
  identity: web@example.com
"""


async def test_without_tokens_the_daemon_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    (tmp_path / "queue.yaml").write_text("queue: []\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pushd",
        "serve",
        "--config",
        str(tmp_path / "queue.yaml"),
        "--db",
        str(tmp_path / "db.sqlite3"),
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    text = err.decode()
    assert "host: '0.0.0.0' is not a loopback address and no auth_tokens are set" in text
    assert "Traceback" not in text
    assert not (tmp_path / "db.sqlite3").exists()


async def test_tokens_roles_and_the_queue_acl_over_http(
    start_daemon: StartDaemon, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    (tmp_path / "pushd.yaml").write_text(SETTINGS)
    d = await start_daemon(PULL_WITH_ACL, extra_args=["--settings", str(tmp_path / "pushd.yaml")])
    path = "/api/v1/queues/jobs"
    task = {"name": "t1", "payload": "hello"}

    status, body = await api(session, d, "POST", f"{path}/tasks", json=task)
    assert (status, body["error"]["status"]) == (401, "PERMISSION_DENIED")
    assert "hello" not in str(body)

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # the worker may not add (role), the producer may
    status, body = await api(session, d, "POST", f"{path}/tasks", json=task, headers=bearer(WORKER))
    assert status == 403
    status, body = await api(session, d, "POST", f"{path}/tasks", json=task, headers=bearer(WEB))
    assert (status, body["tasks"][0]["result"]) == (200, "OK")
    # the producer may not read or lease; the worker in the acl may
    lease = {"lease_seconds": 30, "max_tasks": 5}
    status, body = await api(session, d, "GET", f"{path}/tasks/t1", headers=bearer(WEB))
    assert status == 403
    assert "hello" not in str(body)
    assert "aGVsbG8" not in str(body)
    status, body = await api(
        session, d, "POST", f"{path}/lease", json=lease, headers=bearer(WORKER)
    )
    assert status == 200
    assert [t["payload_base64"] for t in body["tasks"]] == ["aGVsbG8="]
    # /healthz and /openapi.json stay open
    assert (await api(session, d, "GET", "/healthz"))[0] == 200
    assert (await api(session, d, "GET", "/openapi.json"))[0] == 200
