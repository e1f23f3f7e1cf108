"""The Cloud Tasks REST surface on the wire (routes from the http rules, the proto3 JSON
mapping, Google's error envelope), the conversions, names, settings and gRPC peer rule."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pushd import errors, models, settings
from pushd.cloudtasks import convert, descriptors, grpc_server, names, rest, rpc, service
from tests.unit.cloudtasks_env import PARENT, QUEUE, T0, Env, running

ENUM_INTS = "?%24alt=json%3Benum-encoding%3Dint"


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running() as started:
        yield started


async def call(env: Env, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    async with env.http.request(method, path, **kw) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


def assert_envelope(answer: tuple[int, Any], status: int, code: str, text: str) -> None:
    http_status, body = answer
    assert http_status == status, body
    assert set(body) == {"error"}
    error = body["error"]
    assert (error["code"], error["status"]) == (status, code)
    assert text in error["message"], error["message"]


# ------------------------------------------------------------------ the route table


def test_templates_become_aiohttp_paths() -> None:
    assert rest.aiohttp_path("/v2/{name=projects/*/locations/*/queues/*}:pause") == (
        "/v2/{name:projects/[^/]+/locations/[^/]+/queues/[^/]+}:pause",
        ("name",),
    )
    assert rest.aiohttp_path("/v2/{queue.name=projects/*/locations/*/queues/*}") == (
        "/v2/{queue_name:projects/[^/]+/locations/[^/]+/queues/[^/]+}",
        ("queue.name",),
    )
    assert rest.canonical("/v2/{name:projects/[^/]+/queues/[^/]+}:run") == "/v2/{name}:run"
    assert rest.aiohttp_path("/v1/{name}/x/{rest=a/**}") == (
        "/v1/{name:[^/]+}/x/{rest:a/.+}",
        ("name", "rest"),
    )


def test_every_rpc_of_every_version_has_a_route_with_its_action() -> None:
    routes = {(verb, path): action for verb, path, _, action in rest.routes()}
    for version in descriptors.VERSIONS:
        for name, call_rpc in service.table(version).items():
            for rule in call_rpc.method.http:
                path, _ = rest.aiohttp_path(rule.template)
                assert routes[rule.verb, path] is call_rpc.action, name
    v2 = service.table("v2")
    assert v2["CreateTask"].action is service.Action.ADD_TASKS
    assert v2["RunTask"].action is service.Action.ADMIN
    assert v2["GetTask"].action is service.Action.READ_TASKS
    assert v2["DeleteTask"].action is service.Action.DELETE_TASKS


# ------------------------------------------------------------------ on the wire


async def test_enums_as_names_or_numbers_as_asked(env: Env) -> None:
    status, body = await call(env, "GET", f"/v2/{QUEUE}")
    assert status == 200
    assert body["state"] == "RUNNING"
    assert body["retryConfig"] == {
        "maxAttempts": 5,
        "minBackoff": "2s",
        "maxBackoff": "3600s",
        "maxDoublings": 16,
    }
    assert body["rateLimits"] == {"maxDispatchesPerSecond": 10.0, "maxBurstSize": 3}
    status, body = await call(env, "GET", f"/v2/{QUEUE}{ENUM_INTS}")
    assert body["state"] == 1


async def test_create_task_in_proto3_json(env: Env) -> None:
    task = {
        "name": f"{QUEUE}/tasks/j1",
        "appEngineHttpRequest": {"httpMethod": "PUT", "relativeUri": "/j", "body": "aGk="},
        "scheduleTime": "2023-11-14T22:15:00.250Z",
        "dispatchDeadline": "90.500s",
    }
    status, body = await call(
        env, "POST", f"/v2/{QUEUE}/tasks{ENUM_INTS}", json={"task": task, "responseView": 2}
    )
    assert status == 200, body
    assert body["appEngineHttpRequest"] == {
        "httpMethod": 4,
        "relativeUri": "/j",
        "body": "aGk=",
    }
    assert body["scheduleTime"] == "2023-11-14T22:15:00.250Z"
    assert body["createTime"] == "2023-11-14T22:13:20Z"
    assert body["dispatchDeadline"] == "90.500s"
    assert body["view"] == 2
    stored = await env.store.get("fast", "j1")
    assert stored is not None
    assert (stored.payload, stored.eta_us) == (b"hi", 1_700_000_100_250_000)


async def test_bad_requests_name_the_problem(env: Env) -> None:
    assert_envelope(
        await call(env, "GET", f"/v2/{QUEUE}?bogus=1"), 400, "INVALID_ARGUMENT", 'named "bogus"'
    )
    assert_envelope(
        await call(env, "POST", f"/v2/{QUEUE}/tasks", data=b"{nope"),
        400,
        "INVALID_ARGUMENT",
        "Invalid JSON payload received.",
    )
    assert_envelope(
        await call(env, "POST", f"/v2/{QUEUE}/tasks", json={"task": {"bogus": 1}}),
        400,
        "INVALID_ARGUMENT",
        "Invalid JSON payload received.",
    )
    assert_envelope(
        await call(env, "POST", f"/v2/{QUEUE}/tasks", json=[1]),
        400,
        "INVALID_ARGUMENT",
        "must be a JSON object",
    )


async def test_router_failures_in_googles_envelope(env: Env) -> None:
    assert_envelope(await call(env, "GET", "/v2/nothing"), 404, "NOT_FOUND", "no such route")
    assert_envelope(await call(env, "PUT", f"/v2/{QUEUE}"), 405, "UNIMPLEMENTED", "not allowed")
    assert_envelope(
        await call(env, "GET", f"/v2/{QUEUE}", headers={"Host": "evil.example"}),
        403,
        "PERMISSION_DENIED",
        "addressed to localhost",
    )


async def test_v2beta3_over_rest(env: Env) -> None:
    status, body = await call(env, "GET", f"/v2beta3/{QUEUE}")
    assert status == 200
    assert body["type"] == "PUSH"
    slow = (await call(env, "GET", f"/v2beta3/{PARENT}/queues/slow"))[1]
    assert slow["appEngineHttpQueue"]["appEngineRoutingOverride"] == {
        "service": "worker",
        "version": "v1",
    }
    task = {"appEngineHttpRequest": {"relativeUri": "/b3"}}
    status, body = await call(env, "POST", f"/v2beta3/{QUEUE}/tasks", json={"task": task})
    assert status == 200, body
    assert body["name"].startswith(f"{QUEUE}/tasks/")
    assert_envelope(
        await call(env, "POST", f"/v2beta3/{QUEUE}/tasks:batchDelete", json={}),
        501,
        "UNIMPLEMENTED",
        "not served by pushd yet",
    )


async def test_batch_create_answers_a_done_operation_in_json(env: Env) -> None:
    requests = [{"task": {"appEngineHttpRequest": {"relativeUri": f"/b{i}"}}} for i in range(2)]
    status, body = await call(
        env, "POST", f"/v2beta3/{QUEUE}/tasks:batchCreate", json={"requests": requests}
    )
    assert status == 200, body
    assert body["done"] is True
    assert body["name"].startswith(f"{PARENT}/operations/")
    assert body["metadata"]["@type"].endswith("google.cloud.tasks.v2beta3.BatchCreateTasksMetadata")
    assert body["metadata"]["state"] == "SUCCEEDED"
    response = body["response"]
    assert response["@type"].endswith("google.cloud.tasks.v2beta3.BatchCreateTasksResponse")
    assert [t["appEngineHttpRequest"]["relativeUri"] for t in response["tasks"]] == ["/b0", "/b1"]
    assert_envelope(
        await call(env, "POST", f"/v2beta3/{QUEUE}/tasks:batchCreate", json={"requests": []}),
        400,
        "INVALID_ARGUMENT",
        "requests must hold 1 to 100",
    )


async def test_v2beta2_lease_over_rest(env: Env) -> None:
    work = f"{PARENT}/queues/work"
    task = {"pullMessage": {"payload": "cGF5", "tag": "t"}}
    status, body = await call(env, "POST", f"/v2beta2/{work}/tasks", json={"task": task})
    assert status == 200, body
    status, body = await call(
        env,
        "POST",
        f"/v2beta2/{work}/tasks:lease",
        json={"maxTasks": 5, "leaseDuration": "30s", "filter": "tag=t", "responseView": "FULL"},
    )
    assert status == 200, body
    [leased] = body["tasks"]
    assert leased["pullMessage"] == {"payload": "cGF5", "tag": "t"}
    assert leased["scheduleTime"] == "2023-11-14T22:13:50Z"  # T0 + 30 s
    ack = {"scheduleTime": leased["scheduleTime"]}
    status, body = await call(env, "POST", f"/v2beta2/{leased['name']}:acknowledge", json=ack)
    assert (status, body) == (200, {})
    assert_envelope(
        await call(env, "POST", f"/v2beta2/{leased['name']}:acknowledge", json=ack),
        404,
        "NOT_FOUND",
        rpc.TASK_EXISTED_RECENTLY,
    )


# ------------------------------------------------------------------ conversions


def test_task_message_maps_pushd_state() -> None:
    queue = names.queue(QUEUE)
    task = models.Task(
        queue="fast",
        name="t",
        method=models.Method.POST,
        url="/w",
        headers=(("X-A", "1"), ("X-A", "2"), ("content-type", "text/plain")),
        payload=b"body",
        eta_us=T0 + 5,
        created_us=T0 + 999_999,
        target="i.v.svc",
        retry_count=3,
        execution_count=2,
        first_try_us=T0 + 1,
        last_status=502,
    )
    out = convert.task_message("v2", queue, task, view=1)
    request = out.app_engine_http_request
    assert dict(request.headers) == {"X-A": "1, 2", "content-type": "text/plain"}
    assert request.body == b""
    routing = request.app_engine_routing
    assert (routing.instance, routing.version, routing.service) == ("i", "v", "svc")
    assert out.schedule_time.ToMicroseconds() == T0 + 5
    assert out.create_time.ToMicroseconds() == T0  # truncated to the second
    assert (out.dispatch_count, out.response_count) == (3, 2)
    assert out.first_attempt.dispatch_time.ToMicroseconds() == T0 + 1
    status = out.last_attempt.response_status
    assert (status.code, status.message) == (rpc.Code.INTERNAL, "HTTP status code 502")
    assert convert.task_message("v2", queue, task, view=2).app_engine_http_request.body == b"body"


def test_pushd_errors_become_codes() -> None:
    cases = {
        errors.StorageLimitExceededError("full"): rpc.Code.RESOURCE_EXHAUSTED,
        errors.StoreUnavailableError("down"): rpc.Code.UNAVAILABLE,
        errors.InvalidTaskError("bad"): rpc.Code.INVALID_ARGUMENT,
        errors.TombstonedTaskError("old"): rpc.Code.ALREADY_EXISTS,
        errors.UnknownTaskError("none"): rpc.Code.NOT_FOUND,
    }
    for exc, code in cases.items():
        assert rpc.from_pushd(exc).code is code, exc
    assert rpc.from_pushd(errors.InvalidTaskError("bad url")).message == "bad url"


def test_resource_names() -> None:
    name = names.task(f"{QUEUE}/tasks/t-1_x")
    assert (name.queue.parent.project, name.queue.parent.location) == ("p", "l")
    assert (name.queue.queue, name.task) == ("fast", "t-1_x")
    assert str(name) == f"{QUEUE}/tasks/t-1_x"
    assert names.parent("projects/my-app:x.y/locations/us-central1").project == "my-app:x.y"
    for bad in ("projects/p/locations/l/queues/", "queues/q", f"{PARENT}/queues/a_b"):
        with pytest.raises(rpc.RpcError, match="Queue name must be formatted"):
            names.queue(bad)
    with pytest.raises(rpc.RpcError, match=re.escape('Task ID "a.b" can contain')):
        names.task(f"{QUEUE}/tasks/a.b")


def test_grpc_answers_loopback_peers_only_without_tokens() -> None:
    assert grpc_server.loopback_peer("ipv4:127.0.0.1:5000")
    assert grpc_server.loopback_peer("ipv6:[::1]:5000")
    assert grpc_server.loopback_peer("unix:/tmp/x")
    assert not grpc_server.loopback_peer("ipv4:10.0.0.5:5000")
    assert not grpc_server.loopback_peer("ipv6:[2001:db8::1]:5000")
    assert not grpc_server.loopback_peer("weird")


# ------------------------------------------------------------------ settings


def test_grpc_port_from_file_environment_and_flag(tmp_path: Path) -> None:
    path = tmp_path / "pushd.yaml"
    path.write_text("cloud_tasks:\n  grpc_port: 8461\n")
    assert settings.load(path, environ={}).cloud_tasks.grpc_port == 8461
    from_env = settings.load(path, environ={"PUSHD_GRPC_PORT": "9000"})
    assert from_env.cloud_tasks.grpc_port == 9000
    flag = settings.load(path, environ={}, overrides={"cloud_tasks": {"grpc_port": 0}})
    assert flag.cloud_tasks.grpc_port == 0
    assert settings.load(None, environ={}).cloud_tasks.grpc_port is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cloud_tasks": {"grpc_port": 70000}}, "cloud_tasks.grpc_port: 70000 is not a TCP port"),
        ({"cloud_tasks": {"grpc_port": "x"}}, "'x' is not a TCP port"),
        (
            {"cloud_tasks": {"grpc": 1}},
            "unknown setting 'grpc'; known: grpc_port, locations, oauth_token, oidc_issuer, projects",
        ),
        ({"cloud_tasks": 5}, "must be a mapping"),
        ({"port": 9000, "cloud_tasks": {"grpc_port": 9000}}, "9000 is the API's port too"),
    ],
)
def test_bad_cloud_tasks_settings(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        settings.from_mapping(raw)
    assert message in str(caught.value)


async def test_the_routes_are_in_openapi_json(env: Env) -> None:
    status, doc = await call(env, "GET", "/openapi.json")
    assert status == 200
    pause = doc["paths"]["/v2/{name}:pause"]["post"]
    assert pause["summary"] == (
        "Cloud Tasks v2 PauseQueue (/google.cloud.tasks.v2.CloudTasks/PauseQueue)"
    )
    assert "/v2beta3/{parent}/tasks" in doc["paths"]
