"""The Cloud Tasks API in process: the API app (MemoryStore, FakeClock, recording engine) with
the REST routes mounted and the gRPC listener started on 127.0.0.1, and Google's official
``google-cloud-tasks`` client, unchanged, pointed at either (CLOUDTASKS.md 3.4).

``Env.call(name, request)`` runs one client method over the transport under test: the asyncio
gRPC client directly, the sync gRPC and REST clients in a thread (they block, and the server
runs in this loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc
from aiohttp import test_utils
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import (
    CloudTasksGrpcAsyncIOTransport,
    CloudTasksGrpcTransport,
)
from google.oauth2 import credentials as oauth2_credentials

from pushd import api, clock, service, settings
from pushd.cloudtasks import backend, grpc_server, rest
from pushd.queue_yaml import config
from pushd.service import api_queues
from pushd.store import memory
from tests.unit.test_api import FakeEngine

T0 = 1_700_000_000_000_000
S = 1_000_000
PARENT = "projects/p/locations/l"
QUEUE = f"{PARENT}/queues/fast"
QUEUE_YAML = """
queue:
- name: fast
  rate: 10/s
  bucket_size: 3
  retry_parameters:
    task_retry_limit: 4
    min_backoff_seconds: 2
- name: slow
  rate: 1/s
  max_concurrent_requests: 2
  target: v1.worker
- name: work
  mode: pull
"""
TRANSPORTS = ("grpc-async", "grpc-sync", "rest-sync")


@dataclasses.dataclass
class Env:
    http: test_utils.TestClient[Any, Any]
    grpc_address: str
    store: memory.MemoryStore
    clock: clock.FakeClock
    engine: FakeEngine
    transport: str = "grpc-async"
    token: str | None = None
    _clients: dict[str, Any] = dataclasses.field(default_factory=dict)

    def client(self, transport: str | None = None) -> Any:
        kind = transport or self.transport
        if kind not in self._clients:
            self._clients[kind] = self._make(kind)
        return self._clients[kind]

    def _make(self, kind: str) -> Any:
        if kind == "grpc-async":
            channel = grpc.aio.insecure_channel(self.grpc_address)
            return tasks_v2.CloudTasksAsyncClient(
                transport=CloudTasksGrpcAsyncIOTransport(channel=channel)
            )
        if kind == "grpc-sync":
            channel = grpc.insecure_channel(self.grpc_address)
            return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        creds = (
            AnonymousCredentials()
            if self.token is None
            else oauth2_credentials.Credentials(token=self.token)
        )
        return tasks_v2.CloudTasksClient(
            transport="rest",
            credentials=creds,
            client_options=ClientOptions(api_endpoint=str(self.http.make_url("")).rstrip("/")),
        )

    async def call(self, name: str, request: dict[str, Any], transport: str | None = None) -> Any:
        kind = transport or self.transport
        method = getattr(self.client(kind), name)
        metadata = () if self.token is None else (("authorization", f"Bearer {self.token}"),)
        kw: dict[str, Any] = {"request": request}
        if kind != "rest-sync":
            kw["metadata"] = metadata
        if kind == "grpc-async":
            return await method(**kw)
        return await asyncio.to_thread(lambda: method(**kw))

    async def close(self) -> None:
        for kind, client in self._clients.items():
            if kind == "grpc-async":
                await client.transport.close()
            else:
                client.transport.close()


@contextlib.asynccontextmanager
async def running(
    queue_yaml: str = QUEUE_YAML,
    tokens: tuple[settings.ApiToken, ...] = (),
    removed: tuple[str, ...] = (),
    http_targets: tuple[str, ...] = (),
    cloud_tasks: settings.CloudTasks | None = None,
) -> AsyncIterator[Env]:
    """The API app serving Cloud Tasks; ``removed``: push queues removed from queue.yaml
    that still hold tasks (as the daemon finds them in its store); ``http_targets``: where
    HTTP tasks may go; ``cloud_tasks``: its settings (the projects and locations served)."""
    store = memory.MemoryStore()
    fake_clock = clock.FakeClock(T0)
    engine = FakeEngine(store)
    file = dataclasses.replace(
        config.load_text(queue_yaml),
        removed={name: config.removed_queue(name, pull=False) for name in removed},
    )
    current = [file]

    async def apply_api_queues() -> None:  # as the daemon does, without a scheduler
        current[0] = api_queues.merged(file, await store.api_queues())

    domain = service.Service(
        store=store,
        clock=fake_clock,
        queues=lambda: current[0],
        engine=engine,
        apply_api_queues=apply_api_queues,
    )
    chosen = settings.Settings(
        auth_tokens=tokens,
        http_targets=http_targets,
        cloud_tasks=cloud_tasks or settings.CloudTasks(),
    )
    app = api.create_app(service=domain, settings=chosen)
    rest.add_routes(app)
    server = await grpc_server.GrpcServer.start(backend.Backend(app), "127.0.0.1", 0)
    try:
        async with test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1")) as http:
            env = Env(http, server.address, store, fake_clock, engine)
            try:
                yield env
            finally:
                await env.close()
    finally:
        await server.stop(None)
