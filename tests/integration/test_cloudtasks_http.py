"""Cloud Tasks HTTP tasks on a real daemon (subprocess, SQLite file) driven by Google's official
``google-cloud-tasks`` client, unchanged, over gRPC and REST, delivering to a real receiver on
127.0.0.1: the headers of each attempt for a receiver answering 503, 404, 200 (CLOUDTASKS.md
1.5's table, recorded from production, copied in tests/unit/test_http_target.py), the counts
kept on the task, and the SSRF rules (``http_targets``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from google.api_core import exceptions
from google.auth.transport import requests as google_requests
from google.cloud import tasks_v2
from google.oauth2 import id_token

from tests.integration.test_cloudtasks import QUEUE, off_loop, start, sync_client

if TYPE_CHECKING:
    from tests.integration.conftest import StartDaemon
    from tests.integration.harness import Daemon, Delivery, Receiver

QUEUE_YAML = """
queue:
- name: jobs
  rate: 50/s
  bucket_size: 10
  retry_parameters:
    task_retry_limit: 5
    min_backoff_seconds: 2
    max_backoff_seconds: 2
"""
POLL_S = 0.05
UNAVAILABLE, NOT_FOUND, PERMISSION_DENIED = 14, 5, 7


async def start_with(
    start_daemon: StartDaemon, tmp_path: Path, http_targets: list[str]
) -> tuple[Daemon, str]:
    settings = tmp_path / "pushd.yaml"
    settings.write_text("http_targets:\n" + "".join(f"- {p!r}\n" for p in http_targets))
    return await start(
        lambda yaml, **kw: start_daemon(
            QUEUE_YAML, extra_args=[*kw["extra_args"], "--settings", str(settings)]
        )
    )


async def task_when(client: Any, name: str, ready: Any, timeout_s: float = 20.0) -> Any:
    """GetTask until ``ready(task)`` (the outcome is written just after the answer)."""
    async with asyncio.timeout(timeout_s):
        while True:
            task = await off_loop(lambda: client.get_task(name=name))
            if ready(task):
                return task
            await asyncio.sleep(POLL_S)


async def gone(client: Any, name: str, timeout_s: float = 20.0) -> None:
    """GetTask until NOT_FOUND."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                await off_loop(lambda: client.get_task(name=name))
            except exceptions.NotFound:
                return
            await asyncio.sleep(POLL_S)


def check_http_attempts(deliveries: list[Delivery], *, queue: str, task: str) -> None:
    """Attempts answered 503, 404, 200: the X-CloudTasks-* headers of each as the real service
    sends them (CLOUDTASKS.md 1.5: the execution count leaves 5xx out, an empty retry reason),
    its User-Agent, no default Content-Type and no App Engine header."""
    table = [
        (
            d.headers.get("X-CloudTasks-TaskRetryCount"),
            d.headers.get("X-CloudTasks-TaskExecutionCount"),
            d.headers.get("X-CloudTasks-TaskPreviousResponse"),
            d.headers.get("X-CloudTasks-TaskRetryReason"),
        )
        for d in deliveries
    ]
    assert table == [("0", "0", None, None), ("1", "0", "503", ""), ("2", "1", "404", "")]
    assert [d.status for d in deliveries] == [503, 404, 200]
    for d in deliveries:
        sent = dict(d.all_headers)  # the names as they came on the wire
        assert sent["User-Agent"] == "Google-Cloud-Tasks"
        assert sent["X-CloudTasks-QueueName"] == queue
        assert sent["X-CloudTasks-TaskName"] == task
        assert float(sent["X-CloudTasks-TaskETA"]) > 1.6e9
        assert "content-type" not in {k.lower() for k in sent}  # never a default
        assert not [k for k in sent if k.lower().startswith("x-appengine-")]


@pytest.mark.parametrize("transport", ["grpc", "rest"])
async def test_each_attempt_carries_the_real_services_headers(
    start_daemon: StartDaemon, receiver: Receiver, tmp_path: Path, transport: str
) -> None:
    receiver.respond = lambda request, i: (503, 404, 200)[min(i, 2)]
    daemon, grpc_address = await start_with(start_daemon, tmp_path, [receiver.url + "/hooks/"])
    client = sync_client(daemon, grpc_address, transport)
    name = f"{QUEUE}/tasks/h-1"
    task = {
        "name": name,
        "http_request": {
            "url": receiver.url + "/hooks/run?x=1",
            "headers": {"X-Mixed-Case": "kept", "lower-case": "v"},
            "body": b'{"a": 1}',
        },
    }
    created = await off_loop(lambda: client.create_task(parent=QUEUE, task=task))
    assert created.http_request.url == receiver.url + "/hooks/run?x=1"
    assert dict(created.http_request.headers) == {
        "X-Mixed-Case": "kept",
        "lower-case": "v",
        "User-Agent": "Google-Cloud-Tasks",
    }
    await receiver.wait_for(1)
    after_503 = await task_when(client, name, lambda t: t.dispatch_count == 1)
    assert after_503.response_count == 1
    assert after_503.last_attempt.response_status.code == UNAVAILABLE
    assert after_503.first_attempt.dispatch_time.timestamp() > 0
    await receiver.wait_for(2)
    after_404 = await task_when(client, name, lambda t: t.dispatch_count == 2)
    assert after_404.response_count == 2
    assert after_404.last_attempt.response_status.code == NOT_FOUND
    deliveries = await receiver.wait_for(3)
    check_http_attempts(deliveries, queue="jobs", task="h-1")
    for d in deliveries:
        assert (d.method, d.path, d.body) == ("POST", "/hooks/run?x=1", b'{"a": 1}')
        sent = dict(d.all_headers)  # the names as they came on the wire
        assert sent["X-Mixed-Case"] == "kept"
        assert sent["lower-case"] == "v"
    await gone(client, name)  # done: the flusher deletes it just after the 200
    client.transport.close()


@pytest.mark.parametrize("transport", ["grpc", "rest"])
async def test_a_url_outside_http_targets_is_refused_at_create(
    start_daemon: StartDaemon, receiver: Receiver, tmp_path: Path, transport: str
) -> None:
    daemon, grpc_address = await start_with(start_daemon, tmp_path, [receiver.url + "/hooks/"])
    client = sync_client(daemon, grpc_address, transport)
    for url in (receiver.url + "/admin", "http://169.254.169.254/computeMetadata/v1/"):
        task = {"http_request": {"url": url}}
        with pytest.raises(exceptions.BadRequest, match="http_targets") as caught:
            await off_loop(lambda task=task: client.create_task(parent=QUEUE, task=task))
        assert caught.value.code == 400
    listed = await off_loop(lambda: list(client.list_tasks(parent=QUEUE)))
    assert listed == []
    client.transport.close()


async def test_a_name_resolving_to_loopback_is_refused_at_each_attempt(
    start_daemon: StartDaemon, receiver: Receiver, tmp_path: Path
) -> None:
    """``localhost`` is listed, 127.0.0.1 is not: the task is created (the prefix matches) but
    each attempt resolves the name, finds a loopback address and refuses to send; the refusal
    is the task's last attempt, and the receiver never hears of it."""
    port = receiver.url.rsplit(":", 1)[1]
    daemon, grpc_address = await start_with(start_daemon, tmp_path, [f"http://localhost:{port}/"])
    client = sync_client(daemon, grpc_address, "grpc")
    name = f"{QUEUE}/tasks/local-1"
    task = {"name": name, "http_request": {"url": f"http://localhost:{port}/hooks"}}
    await off_loop(lambda: client.create_task(parent=QUEUE, task=task))
    await daemon.wait_event("task_retry")
    refused = await task_when(client, name, lambda t: t.dispatch_count >= 1)
    assert refused.response_count == 0
    status = refused.last_attempt.response_status
    assert status.code == PERMISSION_DENIED
    assert "a loopback address" in status.message
    assert receiver.deliveries == []
    client.transport.close()


async def test_app_engine_tasks_say_app_error_on_retries(
    start_daemon: StartDaemon, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.respond = lambda request, i: (503, 200)[min(i, 1)]
    daemon, grpc_address = await start_with(start_daemon, tmp_path, [])
    client = sync_client(daemon, grpc_address, "grpc")
    task = {"app_engine_http_request": {"relative_uri": "/ae"}}
    await off_loop(lambda: client.create_task(parent=QUEUE, task=task))
    first, second = await receiver.wait_for(2)
    assert "X-AppEngine-TaskRetryReason" not in first.headers
    assert second.headers["X-AppEngine-TaskRetryReason"] == "App Error"
    assert second.headers["X-AppEngine-TaskExecutionCount"] == "1"  # App Engine counts 5xx
    assert tasks_v2.HttpMethod.POST.name == second.method
    client.transport.close()


@pytest.mark.parametrize("transport", ["grpc", "rest"])
async def test_an_oidc_token_task_carries_a_token_googles_verifier_accepts(
    start_daemon: StartDaemon, receiver: Receiver, tmp_path: Path, transport: str
) -> None:
    """The delivery mints the ID token with the daemon's key at each attempt; the receiver
    verifies it as it would Google's, with google-auth against the daemon's /oauth2/v1/certs.
    A task's own Authorization header is replaced."""
    daemon, grpc_address = await start_with(start_daemon, tmp_path, [receiver.url + "/"])
    client = sync_client(daemon, grpc_address, transport)
    email = "tasks@proj.iam.gserviceaccount.com"
    url = receiver.url + "/secure"
    for name, token in (
        ("o1", {"service_account_email": email}),
        ("o2", {"service_account_email": email, "audience": "https://aud.example"}),
    ):
        task = {
            "name": f"{QUEUE}/tasks/{name}",
            "http_request": {
                "url": url,
                "headers": {"Authorization": "Basic replaced"},
                "oidc_token": token,
            },
        }
        await off_loop(lambda task=task: client.create_task(parent=QUEUE, task=task))
    deliveries = await receiver.wait_for(2)
    by_name = {d.headers["X-CloudTasks-TaskName"]: d for d in deliveries}
    certs = daemon.url + "/oauth2/v1/certs"
    for name, audience in (("o1", url), ("o2", "https://aud.example")):
        scheme, _, token = by_name[name].headers["Authorization"].partition(" ")
        assert scheme == "Bearer"
        claims = await off_loop(
            lambda token=token, audience=audience: id_token.verify_token(
                token, google_requests.Request(), audience=audience, certs_url=certs
            )
        )
        assert (claims["email"], claims["aud"]) == (email, audience)
    client.transport.close()
