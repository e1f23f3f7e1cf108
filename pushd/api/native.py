"""pushd's own HTTP API, ``/api/v1``: add tasks; inspect and manage queues, tasks, dead letters.

An adapter over :class:`pushd.service.Service`: each handler decodes its request (shapes in
:mod:`pushd.wire`), calls the service and encodes the answer; every error is the envelope of
:mod:`pushd.api.errors`. Each route declares the :class:`~pushd.api.auth.Action` it performs
(:mod:`pushd.api.auth` says who may).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pushd import errors, models, service, tasks, wire
from pushd.api import auth
from pushd.api import errors as api_errors
from pushd.api.keys import service_of

if TYPE_CHECKING:
    from aiohttp import web

    from pushd.queue_yaml import config

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = service.MAX_PAGE_SIZE
_PAGE_SIZE = re.compile(r"[0-9]{1,7}")


# ------------------------------------------------------------------ requests in


def _queue(request: web.Request) -> config.QueueConfig:
    """The queue of queue.yaml the request names (adding, leasing, pausing, running tasks)."""
    return service_of(request).queues.queue(request.match_info["queue"])


def _held(request: web.Request) -> config.QueueConfig:
    """The queue the request names, also one removed from queue.yaml (reading, deleting and
    purging its tasks and dead letters)."""
    return service_of(request).queues.held(request.match_info["queue"])


def _task_name(request: web.Request) -> str:
    return tasks.check_task_name(request.match_info["name"])


def _page(request: web.Request) -> tuple[int, str | None]:
    """``?limit=`` (1 to 1000, default 100) and ``?after=`` (a name cursor)."""
    raw = request.query.get("limit")
    limit = DEFAULT_PAGE_SIZE
    if raw is not None:
        if not _PAGE_SIZE.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise errors.Error(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
        limit = int(raw)
    return limit, request.query.get("after") or None


# ------------------------------------------------------------------ answers out


def _json(body: object) -> web.Response:
    return api_errors.json_response(body)


def _task(task: models.Task) -> web.Response:
    return _json(wire.encode_task(task))


def _gone(queue: str, name: str) -> web.Response:
    return _json({"queue": queue, "name": name, "deleted": True})


async def _one_queue(request: web.Request, cfg: config.QueueConfig) -> web.Response:
    [stats] = await service_of(request).queues.stats_of([cfg])
    return _json(wire.encode_queue(cfg, stats))


def _answering_task(
    pick: Callable[[web.Request], config.QueueConfig],
    call: Callable[[service.Service], Callable[[str, str], Awaitable[models.Task]]],
) -> auth.Handler:
    """A verb on the task the path names, answered with that task (its payload included)."""

    async def handler(request: web.Request) -> web.Response:
        cfg, name = pick(request), _task_name(request)
        return _task(await call(service_of(request))(cfg.name, name))

    return handler


def _deleting(
    call: Callable[[service.Service], Callable[[str, str], Awaitable[None]]],
) -> auth.Handler:
    """Deleting the task or dead letter the path names (also of a queue removed from
    queue.yaml), answered with what was deleted."""

    async def handler(request: web.Request) -> web.Response:
        cfg, name = _held(request), _task_name(request)
        await call(service_of(request))(cfg.name, name)
        return _gone(cfg.name, name)

    return handler


# ------------------------------------------------------------------ queues


async def healthz(request: web.Request) -> web.Response:
    """200 while the store works; 503 naming the cause while it cannot be written or read (a
    full disk until a write succeeds again, a damaged file until it is restored)."""
    problem = service_of(request).problem()
    if problem is not None:
        return api_errors.json_response({"status": "unavailable", "error": problem}, status=503)
    return _json({"status": "ok"})


async def list_queues(request: web.Request) -> web.Response:
    """A page of queues with their statistics: ``?limit=`` and ``?after=`` as for tasks."""
    limit, after = _page(request)
    page = auth.visible_queues(request, limit=limit, after=after)
    found = await service_of(request).queues.stats_of(page.items)
    queues = [wire.encode_queue(cfg, stats) for cfg, stats in zip(page.items, found, strict=True)]
    return _json({"queues": queues, "next": page.next})


async def get_queue(request: web.Request) -> web.Response:
    return await _one_queue(request, _held(request))


async def pause_queue(request: web.Request) -> web.Response:
    cfg = _queue(request)
    await service_of(request).queues.pause(cfg.name)
    return await _one_queue(request, cfg)


async def resume_queue(request: web.Request) -> web.Response:
    cfg = _queue(request)
    await service_of(request).queues.resume(cfg.name)
    return await _one_queue(request, cfg)


async def purge_queue(request: web.Request) -> web.Response:
    cfg = _held(request)
    purged = await service_of(request).queues.purge(cfg.name)
    return _json({"queue": cfg.name, "purged": purged})


# ------------------------------------------------------------------ tasks


async def add_tasks(request: web.Request) -> web.Response:
    """Validate the whole batch, check the storage limit, insert, then wake the scheduler."""
    cfg = _queue(request)
    body = wire.loads(await request.read())
    pull = cfg.mode is models.QueueMode.PULL
    default_method = models.Method.PULL if pull else models.Method.POST
    requests = wire.decode_add(body, default_method=default_method.value)
    results = await service_of(request).tasks.add(cfg, requests)
    return _json({"tasks": [wire.encode_add_result(r) for r in results]})


async def list_tasks(request: web.Request) -> web.Response:
    cfg = _held(request)
    limit, after = _page(request)
    page = await service_of(request).tasks.page(cfg.name, limit=limit, after=after)
    found = [wire.encode_task(task, payload=False) for task in page.items]
    return _json({"tasks": found, "next": page.next})


async def delete_tasks(request: web.Request) -> web.Response:
    """Delete several tasks by name; each answers whether it was live (App Engine's
    ``was_deleted``): unknown and tombstoned names are not errors (SPEC 6)."""
    cfg = _held(request)
    names = wire.decode_delete(wire.loads(await request.read()))
    deleted = await service_of(request).tasks.delete(cfg.name, names)
    return _json(
        {"tasks": [{"name": n, "deleted": d} for n, d in zip(names, deleted, strict=True)]}
    )


# ------------------------------------------------------------------ leases


async def lease_tasks(request: web.Request) -> web.Response:
    """Lease pull tasks: ``{"lease_seconds", "max_tasks", "group_by_tag", "tag"}``."""
    cfg = _queue(request)
    lease = wire.decode_lease(wire.loads(await request.read()))
    leased = await service_of(request).pull.lease(
        cfg,
        lease_us=lease.lease_us,
        max_tasks=lease.max_tasks,
        group_by_tag=lease.group_by_tag,
        tag=lease.tag,
    )
    return _json({"tasks": [wire.encode_task(task) for task in leased]})


async def modify_task_lease(request: web.Request) -> web.Response:
    """Renew or release a lease: ``{"eta_us": <ETA the lease gave>, "lease_seconds": 30}``."""
    cfg, name = _queue(request), _task_name(request)
    eta_us, lease_us = wire.decode_modify_lease(wire.loads(await request.read()))
    renewed = await service_of(request).pull.renew(
        cfg, name, current_eta_us=eta_us, lease_us=lease_us
    )
    return _task(renewed)


# ------------------------------------------------------------------ dead letters


async def list_dead(request: web.Request) -> web.Response:
    cfg = _held(request)
    limit, after = _page(request)
    page = await service_of(request).dead.page(cfg.name, limit=limit, after=after)
    found = [
        wire.encode_dead(d.task, dead_us=d.dead_us, reason=d.reason, payload=False)
        for d in page.items
    ]
    return _json({"tasks": found, "next": page.next})


async def get_dead(request: web.Request) -> web.Response:
    dead = await service_of(request).dead.get(_held(request).name, _task_name(request))
    return _json(wire.encode_dead(dead.task, dead_us=dead.dead_us, reason=dead.reason))


# ------------------------------------------------------------------ verbs on one task

get_task = _answering_task(_held, lambda s: s.tasks.get)
delete_task = _deleting(lambda s: s.tasks.delete_one)
run_task = _answering_task(_queue, lambda s: s.tasks.run_now)
redrive_dead = _answering_task(_queue, lambda s: s.dead.redrive)
delete_dead = _deleting(lambda s: s.dead.forget)


# ------------------------------------------------------------------ routes

_Q = "/api/v1/queues/{queue}"
ROUTES: tuple[auth.Route, ...] = (
    ("GET", "/healthz", healthz, auth.Action.OPEN),
    ("GET", "/api/v1/queues", list_queues, auth.Action.READ_QUEUES),
    ("GET", _Q, get_queue, auth.Action.READ_QUEUES),
    ("POST", f"{_Q}/pause", pause_queue, auth.Action.ADMIN),
    ("POST", f"{_Q}/resume", resume_queue, auth.Action.ADMIN),
    ("POST", f"{_Q}/purge", purge_queue, auth.Action.ADMIN),
    ("POST", f"{_Q}/tasks", add_tasks, auth.Action.ADD_TASKS),
    ("GET", f"{_Q}/tasks", list_tasks, auth.Action.READ_TASKS),
    ("GET", f"{_Q}/tasks/{{name}}", get_task, auth.Action.READ_TASKS),
    ("DELETE", f"{_Q}/tasks/{{name}}", delete_task, auth.Action.DELETE_TASKS),
    ("POST", f"{_Q}/delete", delete_tasks, auth.Action.DELETE_TASKS),
    ("POST", f"{_Q}/lease", lease_tasks, auth.Action.LEASE_TASKS),
    ("POST", f"{_Q}/tasks/{{name}}/lease", modify_task_lease, auth.Action.LEASE_TASKS),
    ("POST", f"{_Q}/tasks/{{name}}/run", run_task, auth.Action.ADMIN),
    ("GET", f"{_Q}/dead", list_dead, auth.Action.ADMIN),
    ("GET", f"{_Q}/dead/{{name}}", get_dead, auth.Action.ADMIN),
    ("POST", f"{_Q}/dead/{{name}}/redrive", redrive_dead, auth.Action.ADMIN),
    ("DELETE", f"{_Q}/dead/{{name}}", delete_dead, auth.Action.ADMIN),
)
