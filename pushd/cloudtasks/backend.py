"""pushd's queues and tasks as the Cloud Tasks handlers use them: the one seam between the Cloud
Tasks API and the rest of pushd.

Every call into pushd's domain operations (:class:`pushd.service.Service`: adding through the
same path as every API, purging, pausing, running now, deleting, queue.yaml's queues, the clock)
and into the API's wiring (routes with their token checks, error envelopes, /openapi.json) is
here, so a change of how pushd organises those changes this file alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from pushd import errors, models, service, settings, tasks
from pushd.api import auth, keys, openapi
from pushd.api import errors as api_errors
from pushd.dispatch import url_policy

if TYPE_CHECKING:
    from aiohttp import web

    from pushd.queue_yaml import config

#: What a call does, as far as tokens and roles are concerned (pushd's API actions).
Action = auth.Action
Route = auth.Route
Handler = api_errors.Handler
#: A failed REST request before an envelope is chosen (router, token checks).
Failure = api_errors.Failure
#: What /openapi.json says of a route.
Operation = openapi.Operation


def add_routes(
    app: web.Application,
    routes: Sequence[Route],
    prefixes: Sequence[str],
    render: Callable[[Failure], web.Response],
    operations: Mapping[tuple[str, str], Operation],
) -> None:
    """Serve ``routes`` on the API application with pushd's token checks and ``operations``
    in its /openapi.json; failures of any request under ``prefixes`` are rendered by
    ``render``."""
    auth.add_routes(app, routes)
    openapi.add_operations(app, operations)
    for prefix in prefixes:
        api_errors.add_renderer(app, prefix, render)


def request_token(request: web.Request) -> settings.ApiToken | None:
    """The token the API authenticated ``request`` with (None without tokens)."""
    return auth.request_token(request)


class Backend:
    """The operations of the API application ``app`` (:func:`pushd.api.create_app`)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    @property
    def tokens(self) -> tuple[settings.ApiToken, ...]:
        return self._app[keys.TOKENS]

    def authenticate(self, authorization: str | None) -> settings.ApiToken | None:
        """The token an ``Authorization: Bearer ...`` value presents, if it is a known one."""
        return auth.find_token(self.tokens, authorization)

    def allows(self, token: settings.ApiToken | None, action: auth.Action) -> bool:
        """Whether ``token``'s role may do ``action`` (anyone may, without tokens)."""
        return not self.tokens or auth.role_allows(token, action)

    @property
    def _service(self) -> service.Service:
        return self._app[keys.SERVICE]

    def now_us(self) -> int:
        return self._service.now_us()

    @property
    def cloud_tasks(self) -> settings.CloudTasks:
        """The ``cloud_tasks:`` settings (which projects and locations are served)."""
        return self._app.get(keys.CLOUD_TASKS) or settings.CloudTasks()

    def http_target_refusal(self, url: str) -> str | None:
        """Why an HTTP task may not be created for ``url`` (naming ``http_targets``), or None."""
        policy = self._app.get(keys.URL_POLICY)
        return (policy or url_policy.UrlPolicy()).refusal(url)

    # -------------------------------------------------------------- queues

    def push_queues(self) -> list[config.QueueConfig]:
        """queue.yaml's push queues and those removed from it that still hold tasks, in name
        order (Cloud Tasks v2 has no pull queues)."""
        queues = self._service.queues.current()
        found = {**queues.removed, **queues.queues}
        return [found[name] for name in sorted(found) if found[name].mode is models.QueueMode.PUSH]

    def all_queues(self) -> list[config.QueueConfig]:
        """queue.yaml's queues, push and pull, and those removed from it that still hold
        tasks, in name order (v2beta2 shows pull queues too)."""
        queues = self._service.queues.current()
        found = {**queues.removed, **queues.queues}
        return [found[name] for name in sorted(found)]

    def queue(self, name: str) -> config.QueueConfig | None:
        """A queue of queue.yaml, or one removed from it that still holds tasks."""
        queues = self._service.queues.current()
        return queues.queues.get(name) or queues.removed.get(name)

    def removed(self, name: str) -> bool:
        """Whether ``name`` was removed from queue.yaml (its tasks wait, nothing runs them)."""
        queues = self._service.queues.current()
        return name not in queues.queues and name in queues.removed

    async def paused(self) -> set[str]:
        """The queues paused through an API (persisted in the store)."""
        return await self._service.queues.paused()

    async def pause(self, queue: str) -> None:
        await self._service.queues.pause(queue)

    async def resume(self, queue: str) -> None:
        await self._service.queues.resume(queue)

    async def purge(self, queue: str) -> int:
        return await self._service.queues.purge(queue)

    async def api_queue(self, name: str) -> models.ApiQueue | None:
        """The stored settings of a queue created through the API, None for any other."""
        return await self._service.api_queues.find(name)

    async def save_api_queue(self, queue: models.ApiQueue, *, create: bool) -> models.QueueSave:
        """Store a queue of the API and run it (only if new, with ``create``)."""
        return await self._service.api_queues.save(queue, create=create)

    async def delete_api_queue(self, name: str) -> bool:
        return await self._service.api_queues.delete(name)

    # -------------------------------------------------------------- tasks

    async def add(self, request: tasks.TaskRequest, cfg: config.QueueConfig) -> models.AddResult:
        """Validate and store one task as every API does (pushd's errors propagate)."""
        [result] = await self._service.tasks.add(cfg, [request])
        return result

    async def add_batch(
        self, requests: Sequence[tasks.TaskRequest], cfg: config.QueueConfig
    ) -> list[models.AddResult]:
        """Validate a whole batch (any invalid task: nothing stored, pushd's error propagates)
        and store it in one store batch; a name clash fails only that task."""
        return await self._service.tasks.add(cfg, requests)

    def check(self, request: tasks.TaskRequest, cfg: config.QueueConfig) -> None:
        """Run pushd's checks of one task for ``cfg`` without storing it (pushd's error
        propagates), so a batch can say which of its tasks is invalid."""
        now_us = self._service.now_us()
        tasks.validate_batch([request], queue=cfg.name, mode=cfg.mode, now_us=now_us)

    async def get(self, queue: str, name: str) -> models.Task | None:
        return await self._service.tasks.find(queue, name)

    async def tombstoned(self, queue: str, name: str) -> bool:
        """Whether ``name`` is no live task of ``queue`` but was one recently (it ran, was
        deleted or purged within the tombstone retention)."""
        return await self._service.tasks.tombstoned(queue, name)

    async def list(self, queue: str, *, limit: int, after: str | None) -> list[models.Task]:
        """Up to ``limit`` live tasks of ``queue`` named after ``after``, in name order."""
        page = await self._service.tasks.page(queue, limit=limit, after=after)
        return list(page.items)

    async def delete(self, queue: str, name: str) -> bool:
        """Delete one live task; False if there is none."""
        [deleted] = await self._service.tasks.delete(queue, [name])
        return deleted

    async def run(self, queue: str, name: str) -> models.Task | None:
        """Make a live task due now; None if there is none."""
        try:
            return await self._service.tasks.run_now(queue, name)
        except errors.UnknownTaskError:
            return None

    # -------------------------------------------------------------- pull queues

    async def lease(
        self,
        cfg: config.QueueConfig,
        *,
        lease_us: int,
        max_tasks: int,
        group_by_tag: bool,
        tag: bytes | None,
    ) -> Sequence[models.Task]:
        """Lease up to ``max_tasks`` tasks of a pull queue (pushd's errors propagate: a paused
        queue is :class:`errors.QueuePausedError`)."""
        return await self._service.pull.lease(
            cfg, lease_us=lease_us, max_tasks=max_tasks, group_by_tag=group_by_tag, tag=tag
        )

    async def renew(
        self, cfg: config.QueueConfig, name: str, *, current_eta_us: int, lease_us: int
    ) -> models.Task:
        """Renew (with 0 µs, release) the lease whose end is ``current_eta_us`` (pushd's
        errors propagate: :class:`errors.TaskLeaseExpiredError` for another holder's or a
        lapsed lease)."""
        return await self._service.pull.renew(
            cfg, name, current_eta_us=current_eta_us, lease_us=lease_us
        )
