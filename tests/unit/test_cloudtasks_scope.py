"""``cloud_tasks: {projects: [...], locations: [...]}``: the settings, the one check every RPC
passes (:class:`pushd.cloudtasks.names.Scope`, run by :class:`pushd.cloudtasks.service.Rpc`),
and its answers through Google's official client over each in-process transport and through
raw REST and gRPC calls of the v2beta3 and v2beta2 surfaces."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api_core import exceptions

from pushd import errors, settings
from pushd.cloudtasks import descriptors, names, rpc, service
from tests.unit.cloudtasks_env import TRANSPORTS, Env, running

SCOPE = settings.CloudTasks(projects=("p", "q.example.com:app"), locations=("l", "europe-west1"))
PARENT = "projects/p/locations/l"
QUEUE = f"{PARENT}/queues/fast"
OTHER_PROJECT = "projects/other/locations/l"
OTHER_LOCATION = "projects/p/locations/us-east1"
PROJECT_DENIED = (
    "Permission denied on resource project other. (pushd serves only the projects its "
    "setting cloud_tasks.projects lists)"
)
LOCATION_DENIED = (
    "Permission denied on resource location projects/p/locations/us-east1. (pushd serves "
    "only the locations its setting cloud_tasks.locations lists)"
)


# ------------------------------------------------------------------ settings


def test_projects_and_locations_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pushd.yaml"
    path.write_text(
        "cloud_tasks:\n  projects: [p, my-app:x.y, p]\n  locations:\n  - us-central1\n  - l_2\n"
    )
    loaded = settings.load(path, environ={}).cloud_tasks
    assert (loaded.projects, loaded.locations) == (("p", "my-app:x.y"), ("us-central1", "l_2"))
    default = settings.load(None, environ={}).cloud_tasks
    assert (default.projects, default.locations) == ((), ())  # any
    empty = settings.from_mapping({"cloud_tasks": {"projects": [], "locations": None}})
    assert (empty.cloud_tasks.projects, empty.cloud_tasks.locations) == ((), ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "cloud_tasks:\n  projects: [ok, 'bad/one']\n",
            "pushd.yaml:2:18: cloud_tasks.projects[1]: 'bad/one' is not a project ID such as "
            "'my-project' ([A-Za-z0-9-:.]), 1 to 100 characters",
        ),
        ("cloud_tasks:\n  projects: p\n", "cloud_tasks.projects: must be a list of IDs"),
        ("cloud_tasks:\n  projects: ['']\n", "cloud_tasks.projects[0]: '' is not a project ID"),
        (f"cloud_tasks:\n  projects: [{'a' * 101}]\n", "cloud_tasks.projects[0]: 'aaaa"),
        (
            "cloud_tasks:\n  locations:\n  - us.central1\n",
            "cloud_tasks.locations[0]: 'us.central1' is not a location ID such as 'us-central1' "
            "([A-Za-z0-9_-])",
        ),
        ("cloud_tasks:\n  locations: [3]\n", "cloud_tasks.locations[0]: 3 is not a location ID"),
        ("cloud_tasks:\n  locations: {a: 1}\n", "cloud_tasks.locations: must be a list of IDs"),
    ],
)
def test_bad_projects_and_locations_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pushd.yaml"
    path.write_text(text)
    with pytest.raises(errors.ConfigError, match=re.escape(message)):
        settings.load(path, environ={})


# ------------------------------------------------------------------ the check


def test_scope_checks_each_name_shape() -> None:
    scope = names.Scope(SCOPE.projects, SCOPE.locations)
    allowed = (
        "projects/p",  # ListLocations
        PARENT,
        "projects/q.example.com:app/locations/europe-west1",
        QUEUE,
        f"{QUEUE}/tasks/t1",
        "not a name",  # left to the handler, which names the format it wants
        "projects/p/locations/bad location",  # idem: not a LOCATION_ID
    )
    for name in allowed:
        scope.check(name)
    for name in ("projects/other", OTHER_PROJECT, f"{OTHER_PROJECT}/queues/fast/tasks/t1"):
        with pytest.raises(rpc.RpcError) as caught:
            scope.check(name)
        assert (caught.value.code, caught.value.message) == (
            rpc.Code.PERMISSION_DENIED,
            PROJECT_DENIED,
        )
    for name in (OTHER_LOCATION, f"{OTHER_LOCATION}/queues/fast", f"{OTHER_LOCATION}/cmekConfig"):
        with pytest.raises(rpc.RpcError) as caught:
            scope.check(name)
        assert (caught.value.code, caught.value.message) == (
            rpc.Code.PERMISSION_DENIED,
            LOCATION_DENIED,
        )
    names.Scope().check(f"{OTHER_LOCATION}/queues/fast")  # empty: any
    names.Scope(projects=("p",)).check(OTHER_LOCATION)  # locations not restricted


class _Backend:
    """Just what the check reads; any handler reached would fail on the missing rest."""

    cloud_tasks = SCOPE


def _request(call_rpc: service.Rpc, resource: str) -> Any:
    message = call_rpc.method.request()
    field = call_rpc.method.resource
    assert field is not None
    *parents, last = field.split(".")
    target = message
    for part in parents:
        target = getattr(target, part)
    setattr(target, last, resource)
    return message


@pytest.mark.parametrize("version", descriptors.VERSIONS)
async def test_every_rpc_of_every_version_is_refused_outside_the_scope(version: str) -> None:
    checked = []
    for name, call_rpc in service.table(version).items():
        if call_rpc.method.resource is None:
            assert name == "UploadQueueYaml"  # v2beta2's, unserved: names no resource
            continue
        resource = "projects/other" if name == "ListLocations" else f"{OTHER_PROJECT}/queues/q"
        call = service.Call(version, _Backend())  # type: ignore[arg-type]
        with pytest.raises(rpc.RpcError) as caught:
            await call_rpc(call, _request(call_rpc, resource))
        assert (caught.value.code, caught.value.message) == (
            rpc.Code.PERMISSION_DENIED,
            PROJECT_DENIED,
        ), name
        checked.append(name)
    assert {"ListLocations", "GetLocation", "CreateTask", "UpdateQueue"} <= set(checked)
    if version == "v2beta2":
        assert {"LeaseTasks", "AcknowledgeTask", "RenewLease", "CancelLease"} <= set(checked)


# ------------------------------------------------------------------ over the transports


@pytest.fixture(params=TRANSPORTS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    async with running(cloud_tasks=SCOPE) as started:
        started.transport = request.param
        yield started


async def denied(env: Env, name: str, request: dict[str, Any], message: str) -> None:
    with pytest.raises(exceptions.GoogleAPICallError) as caught:
        await env.call(name, request)
    assert caught.value.code == 403, caught.value  # PERMISSION_DENIED over gRPC and REST
    assert isinstance(caught.value, exceptions.PermissionDenied | exceptions.Forbidden)
    # REST: the client puts the request line ("GET http://...: ") before the server's message
    text = str(caught.value.message)
    assert text.endswith(f": {message}") if env.transport == "rest-sync" else text == message


async def test_the_official_client_in_and_outside_the_scope(env: Env) -> None:
    queues = await env.call("list_queues", {"parent": PARENT})
    assert [queue.name for queue in queues.queues] == [
        f"{PARENT}/queues/default",
        f"{PARENT}/queues/fast",
        f"{PARENT}/queues/slow",
    ]
    task = {"name": f"{QUEUE}/tasks/t1", "app_engine_http_request": {"relative_uri": "/w"}}
    created = await env.call("create_task", {"parent": QUEUE, "task": task})
    assert created.name == f"{QUEUE}/tasks/t1"
    assert (await env.call("get_task", {"name": created.name})).name == created.name
    locations = await env.call("list_locations", {"name": "projects/p"})
    assert [loc.name for loc in locations.locations] == [
        "projects/p/locations/l",
        "projects/p/locations/europe-west1",
    ]
    other_queue = f"{OTHER_PROJECT}/queues/fast"
    await denied(env, "list_queues", {"parent": OTHER_PROJECT}, PROJECT_DENIED)
    await denied(env, "get_queue", {"name": other_queue}, PROJECT_DENIED)
    other_task = {"app_engine_http_request": {"relative_uri": "/w"}}
    await denied(env, "create_task", {"parent": other_queue, "task": other_task}, PROJECT_DENIED)
    await denied(env, "get_task", {"name": f"{other_queue}/tasks/t1"}, PROJECT_DENIED)
    await denied(env, "list_locations", {"name": "projects/other"}, PROJECT_DENIED)
    await denied(env, "get_location", {"name": OTHER_LOCATION}, LOCATION_DENIED)
    await denied(env, "pause_queue", {"name": f"{OTHER_LOCATION}/queues/fast"}, LOCATION_DENIED)
    update = {"queue": {"name": f"{OTHER_LOCATION}/queues/new"}}
    await denied(env, "update_queue", update, LOCATION_DENIED)
    assert [t.name for t in (await env.call("list_tasks", {"parent": QUEUE})).tasks] == [
        created.name
    ]
    assert await env.store.api_queues() == []  # nothing was created outside the scope


async def test_v2beta3_and_v2beta2_over_rest_and_grpc() -> None:
    async with running(cloud_tasks=SCOPE) as env:
        work = f"{OTHER_PROJECT}/queues/work"
        for path, verb, body in (
            (f"/v2beta3/{OTHER_PROJECT}/queues", "GET", None),
            (f"/v2beta3/{OTHER_PROJECT}/queues/fast/tasks:batchCreate", "POST", {}),
            (f"/v2beta2/{work}/tasks:lease", "POST", {"leaseDuration": "60s"}),
            (f"/v2beta2/{work}/tasks/t1:acknowledge", "POST", {}),
            ("/v2beta2/projects/other/locations", "GET", None),
        ):
            async with env.http.request(verb, path, json=body) as response:
                answer = await response.json()
            assert response.status == 403, (path, answer)
            assert answer == {
                "error": {"code": 403, "message": PROJECT_DENIED, "status": "PERMISSION_DENIED"}
            }
        async with env.http.get(f"/v2beta2/{PARENT}/queues") as response:
            assert response.status == 200
        for version, name, resource in (
            ("v2beta3", "GetQueue", f"{OTHER_LOCATION}/queues/fast"),
            ("v2beta2", "LeaseTasks", f"{OTHER_LOCATION}/queues/work"),
        ):
            method = descriptors.methods(version)[name]
            request = method.request()
            setattr(request, method.resource or "", resource)
            async with grpc.aio.insecure_channel(env.grpc_address) as channel:
                stub = channel.unary_unary(
                    method.path,
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=method.response.FromString,
                )
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub(request)
            assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert caught.value.details() == LOCATION_DENIED
