"""Cloud Tasks ``http_request`` tasks through Google's official client, unchanged, over each
transport, against the API app in process (tests/unit/cloudtasks_env.py): created under the
``http_targets`` prefixes only, stored as pushd tasks with an absolute URL, returned with their
headers as stored (CLOUDTASKS.md 1.5: case kept, ``User-Agent: Google-Cloud-Tasks``, never a
default Content-Type). Delivery is tests/unit/test_http_target.py and, against a real daemon,
tests/integration/test_cloudtasks_http.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.api_core import exceptions

from pushd import models, tasks
from pushd.proto import remote_api_pb2 as remote
from pushd.proto import taskqueue_service_pb2 as pb
from tests.unit.cloudtasks_env import QUEUE, TRANSPORTS, Env, running

ALLOWED = "https://hooks.example.com/"
URL = "https://hooks.example.com/run?x=1"
SA = "worker@p.iam.gserviceaccount.com"


@pytest.fixture(params=TRANSPORTS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    async with running(http_targets=(ALLOWED,)) as started:
        started.transport = request.param
        yield started


def http_task(name: str | None = "h1", **request: Any) -> dict[str, Any]:
    task: dict[str, Any] = {"http_request": {"url": URL, **request}}
    if name is not None:
        task["name"] = f"{QUEUE}/tasks/{name}"
    return {"parent": QUEUE, "task": task}


async def refused(env: Env, request: dict[str, Any]) -> exceptions.GoogleAPICallError:
    with pytest.raises(exceptions.GoogleAPICallError) as caught:
        await env.call("create_task", request)
    assert caught.value.code == 400, caught.value
    return caught.value


async def test_an_http_task_is_stored_and_returned_with_its_headers_as_stored(env: Env) -> None:
    created = await env.call(
        "create_task",
        http_task(
            http_method=4,  # PUT
            headers={"X-Mixed-Case": "v", "content-type": "application/json", "User-Agent": "x"},
            body=b"{}",
        ),
    )
    request = created.http_request
    assert (request.url, request.http_method) == (URL, 4)
    assert dict(request.headers) == {
        "X-Mixed-Case": "v",
        "content-type": "application/json",
        "User-Agent": "Google-Cloud-Tasks",
    }
    assert request.body == b""  # BASIC view
    assert not created.app_engine_http_request.relative_uri
    stored = await env.store.get("fast", "h1")
    assert stored is not None
    assert (stored.url, stored.method, stored.payload) == (URL, models.Method.PUT, b"{}")
    assert stored.is_http_target
    full = await env.call("get_task", {"name": created.name, "response_view": 2})
    assert full.http_request.body == b"{}"
    assert dict(full.http_request.headers) == dict(request.headers)
    [listed] = (await env.call("list_tasks", {"parent": QUEUE})).tasks
    assert listed.http_request.url == URL


async def test_no_content_type_is_added_and_post_is_the_default(env: Env) -> None:
    created = await env.call("create_task", http_task(body=b"raw"))
    assert created.http_request.http_method == 1  # POST
    assert dict(created.http_request.headers) == {"User-Agent": "Google-Cloud-Tasks"}


async def test_tokens_are_kept_and_returned(env: Env) -> None:
    oidc = await env.call(
        "create_task",
        http_task(
            headers={"Authorization": "Basic replaced"},
            oidc_token={"service_account_email": SA, "audience": "https://aud.example"},
        ),
    )
    token = oidc.http_request.oidc_token
    assert (token.service_account_email, token.audience) == (SA, "https://aud.example")
    assert "Authorization" not in dict(oidc.http_request.headers)
    stored = await env.store.get("fast", "h1")
    assert stored is not None
    assert tasks.authorization_of(stored) == tasks.Authorization(
        "oidc", SA, audience="https://aud.example"
    )
    oauth = await env.call(
        "create_task", http_task("h2", oauth_token={"service_account_email": SA})
    )
    assert oauth.http_request.oauth_token.scope == "https://www.googleapis.com/auth/cloud-platform"


async def test_a_url_outside_the_prefixes_is_refused_naming_the_setting(env: Env) -> None:
    exc = await refused(
        env, {"parent": QUEUE, "task": {"http_request": {"url": "https://x.example/"}}}
    )
    assert "http_targets" in str(exc.message)
    assert "https://hooks.example.com/" in str(exc.message)
    sneaky = "https://hooks.example.com@169.254.169.254/"
    exc = await refused(env, {"parent": QUEUE, "task": {"http_request": {"url": sneaky}}})
    assert "Task.http_request.url" in str(exc.message)
    assert await env.store.get("fast", "h1") is None


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"headers": {"Host": "internal"}}, "header 'Host' is reserved"),
        ({"headers": {"X-CloudTasks-TaskName": "x"}}, "header 'X-CloudTasks-TaskName' is reserved"),
        ({"headers": {"Metadata-Flavor": "Google"}}, "header 'Metadata-Flavor' is reserved"),
        ({"headers": {"X-AppEngine-QueueName": "q"}}, "is reserved"),
        ({"headers": {"Connection": "close"}}, "hop-by-hop"),
        ({"http_method": 2, "body": b"x"}, "only be sent with POST or PUT, not GET"),
        ({"http_method": 6}, "http_method PATCH is not one of"),
        ({"url": "ftp://hooks.example.com/"}, "must start with http:// or https://"),
        ({"url": ""}, "Task.http_request.url is required"),
    ],
)
async def test_bad_http_requests_are_invalid_argument_naming_the_field(
    env: Env, request_fields: dict[str, Any], message: str
) -> None:
    exc = await refused(env, http_task(**request_fields))
    assert message in str(exc.message)


async def test_without_http_targets_every_http_task_is_refused() -> None:
    async with running() as env:
        exc = await refused(env, http_task())
        assert "http_targets setting lists no URL prefixes" in str(exc.message)


async def test_an_http_tasks_dispatch_deadline_is_15s_to_30m(env: Env) -> None:
    long = http_task()
    long["task"]["dispatch_deadline"] = {"seconds": 1801}
    exc = await refused(env, long)
    assert "at most 30m; got 1801s" in str(exc.message)
    short = http_task()
    short["task"]["dispatch_deadline"] = {"seconds": 14}
    await refused(env, short)
    ok = http_task()
    ok["task"]["dispatch_deadline"] = {"seconds": 1800}
    created = await env.call("create_task", ok)
    assert created.dispatch_deadline.total_seconds() == 1800


async def test_v2beta3_over_rest_serves_http_tasks_too() -> None:
    async with running(http_targets=(ALLOWED,)) as env:
        task = {
            "httpRequest": {
                "url": URL,
                "headers": {"X-Mixed-Case": "v"},
                "oidcToken": {"serviceAccountEmail": SA},
            }
        }
        async with env.http.post(f"/v2beta3/{QUEUE}/tasks", json={"task": task}) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        assert body["httpRequest"]["url"] == URL
        assert body["httpRequest"]["headers"] == {
            "X-Mixed-Case": "v",
            "User-Agent": "Google-Cloud-Tasks",
        }
        assert body["httpRequest"]["oidcToken"] == {"serviceAccountEmail": SA}
        outside = {"httpRequest": {"url": "https://elsewhere.example/"}}
        async with env.http.post(f"/v2beta3/{QUEUE}/tasks", json={"task": outside}) as resp:
            error = (await resp.json())["error"]
            assert (resp.status, error["status"]) == (400, "INVALID_ARGUMENT")
            assert "http_targets" in error["message"]


async def test_the_token_setting_shows_in_no_view_of_the_task(env: Env) -> None:
    """pushd keeps an HTTP task's token as a header of its own (``X-Pushd-Http-Authorization``):
    bookkeeping, not a header the user gave, so no view shows it: Cloud Tasks, the native API
    (and the CLI, which prints its JSON), the console and /rpc_http's QueryTasks."""
    own = models.HTTP_AUTH_HEADER
    created = await env.call(
        "create_task",
        http_task(headers={"X-Mine": "v"}, oidc_token={"service_account_email": SA}),
    )
    assert dict(created.http_request.headers) == {"X-Mine": "v", "User-Agent": "Google-Cloud-Tasks"}
    stored = await env.store.get("fast", "h1")
    assert stored is not None
    assert stored.header_values(own)  # kept for the dispatcher
    shown = [("X-Mine", "v"), ("User-Agent", "Google-Cloud-Tasks")]
    assert list(stored.shown_headers) == shown
    async with env.http.get("/api/v1/queues/fast/tasks/h1") as response:
        assert response.status == 200
        assert [tuple(h) for h in (await response.json())["headers"]] == shown
    async with env.http.get("/api/v1/queues/fast/tasks") as response:
        [listed] = (await response.json())["tasks"]
        assert [tuple(h) for h in listed["headers"]] == shown
    async with env.http.get("/console/queues/fast/tasks/h1") as response:
        assert response.status == 200
        page = await response.text()
    assert "X-Mine" in page
    assert own not in page
    assert "service_account_email" not in page
    request = pb.TaskQueueQueryTasksRequest(queue_name=b"fast", max_rows=10)
    wrapped = remote.Request(
        service_name="taskqueue", method="QueryTasks", request=request.SerializeToString()
    )
    async with env.http.post("/rpc_http", data=wrapped.SerializeToString()) as response:
        answer = remote.Response.FromString(await response.read())
    [entry] = pb.TaskQueueQueryTasksResponse.FromString(answer.response).task
    assert [(h.key.decode(), h.value.decode()) for h in entry.header] == shown


def test_only_an_http_task_hides_a_header_of_that_name() -> None:
    """A relative-URL task's headers are all the user's (sent as given), whatever their name."""
    headers = (("X-Pushd-Http-Authorization", "mine"), ("X-Other", "1"))
    plain = models.Task(queue="q", name="t", url="/h", headers=headers)
    assert plain.shown_headers == headers
    http = models.Task(queue="q", name="t", url="https://h.example/", headers=headers)
    assert http.shown_headers == (("X-Other", "1"),)
