"""pushd's own HTTP API, ``/api/v1``: add tasks; inspect and manage queues, tasks, dead letters.

Every answer is JSON (shapes in :mod:`pushd.wire`); every error is the envelope of
:mod:`pushd.api.errors`. Adding follows App Engine (SPEC 1.13-1.15): the whole batch is
validated first and nothing is stored if any task is invalid; then each task is inserted on its
own, so a name clash fails only that task and is reported in its ``result``.

Each route declares the :class:`~pushd.api.auth.Action` it performs (:mod:`pushd.api.auth`
says who may).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from pushd import config, errors, logs, models, tasks, wire
from pushd.api import auth, pull
from pushd.api import errors as api_errors
from pushd.api.keys import CLOCK as CLOCK
from pushd.api.keys import ENGINE as ENGINE
from pushd.api.keys import LEASES as LEASES
from pushd.api.keys import METRICS as METRICS
from pushd.api.keys import QUEUES as QUEUES
from pushd.api.keys import SESSIONS as SESSIONS
from pushd.api.keys import STORE as STORE
from pushd.api.keys import TOKENS as TOKENS
from pushd.store import health

if TYPE_CHECKING:
    from aiohttp import web

    from pushd.store import base

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_PAGE_SIZE = re.compile(r"[0-9]{1,7}")

Handler = api_errors.Handler


# ------------------------------------------------------------------ helpers


def _queue(request: web.Request) -> config.QueueConfig:
    """The queue of queue.yaml the request names (adding, leasing, pausing, running tasks)."""
    return request.app[QUEUES]().queue(request.match_info["queue"])


def _held(request: web.Request) -> config.QueueConfig:
    """The queue the request names, also one removed from queue.yaml (reading, deleting and
    purging its tasks and dead letters)."""
    return request.app[QUEUES]().held(request.match_info["queue"])


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


def _notify(app: web.Application, task: models.Task) -> None:
    if not task.is_pull:
        app[ENGINE].notify(task.queue, task.eta_us)


async def queue_stats(
    app: web.Application, cfg: config.QueueConfig, paused: set[str]
) -> models.QueueStats:
    """The statistics of ``cfg``; ``paused`` holds the queues paused in the store. A queue
    removed from queue.yaml is paused (nothing runs its tasks)."""
    removed = cfg.name not in app[QUEUES]().queues
    counts = await app[STORE].counts(cfg.name)
    live = app[ENGINE].live(cfg.name)
    executed = live.executed_last_minute
    if cfg.mode is models.QueueMode.PULL:  # App Engine counts leases for pull queues
        executed = app[LEASES].last_minute(cfg.name, app[CLOCK].now_us())
    return models.QueueStats(
        queue=cfg.name,
        tasks=counts.tasks,
        oldest_eta_us=counts.oldest_eta_us,
        executed_last_minute=executed,
        in_flight=live.in_flight,
        enforced_rate=live.enforced_rate,
        paused=live.paused or cfg.paused or cfg.name in paused or removed,
        dead_letters=counts.dead_letters,
        removed=removed,
    )


async def _queue_json(
    request: web.Request, cfg: config.QueueConfig, paused: set[str]
) -> wire.QueueJSON:
    return wire.encode_queue(cfg, await queue_stats(request.app, cfg, paused))


async def _one_queue(request: web.Request, cfg: config.QueueConfig) -> web.Response:
    paused = await request.app[STORE].paused_queues()
    return api_errors.json_response(await _queue_json(request, cfg, paused))


# ------------------------------------------------------------------ handlers


async def healthz(request: web.Request) -> web.Response:
    """200 while the store works; 503 naming the cause while it cannot be written or read (a
    full disk until a write succeeds again, a damaged file until it is restored)."""
    store = request.app[STORE]
    problem = store.problem if isinstance(store, health.Watched) else None
    if problem is not None:
        return api_errors.json_response({"status": "unavailable", "error": problem}, status=503)
    return api_errors.json_response({"status": "ok"})


def visible_queues(
    request: web.Request, *, limit: int, after: str | None
) -> tuple[list[config.QueueConfig], str | None]:
    """A page of the queues the request's token may see, in name order: the first ``limit``
    named after ``after``, and the cursor if more remain. Every listing pages, so a request's
    work (each queue's statistics, the answer's encoding) stays bounded at any queue count.
    Queues removed from queue.yaml that still hold tasks are listed among the others."""
    queues = request.app[QUEUES]()
    configured, removed = queues.queues, queues.removed
    found: list[config.QueueConfig] = []
    names = itertools.chain(configured, removed)
    for name in sorted(n for n in names if after is None or n > after):
        cfg = configured.get(name) or removed[name]
        if auth.visible(request, cfg):
            found.append(cfg)
            if len(found) > limit:
                break
    return _page_of(found, limit, lambda cfg: cfg.name)


async def list_queues(request: web.Request) -> web.Response:
    """A page of queues with their statistics: ``?limit=`` and ``?after=`` as for tasks."""
    limit, after = _page(request)
    queues, cursor = visible_queues(request, limit=limit, after=after)
    paused = await request.app[STORE].paused_queues()
    return api_errors.json_response(
        {"queues": [await _queue_json(request, cfg, paused) for cfg in queues], "next": cursor}
    )


async def get_queue(request: web.Request) -> web.Response:
    return await _one_queue(request, _held(request))


async def pause_queue(request: web.Request) -> web.Response:
    cfg = _queue(request)
    await request.app[ENGINE].pause(cfg.name)
    return await _one_queue(request, cfg)


async def resume_queue(request: web.Request) -> web.Response:
    cfg = _queue(request)
    await request.app[ENGINE].resume(cfg.name)
    return await _one_queue(request, cfg)


async def purge(app: web.Application, queue: str, *, now_us: int) -> int:
    """Drop every task of ``queue``; those already claimed and waiting to go are not sent.
    Every API purges through here."""
    purged = await app[STORE].purge(queue, now_us=now_us)
    app[ENGINE].forget(queue)
    logs.event("queue_purged", queue=queue, tasks=purged)
    return purged


async def delete_names(
    app: web.Application, queue: str, names: Sequence[str], *, now_us: int
) -> list[bool]:
    """Delete tasks by name (whether each was live); claimed ones waiting to go are not sent.
    Every API deletes through here."""
    deleted = await app[STORE].delete(queue, names, now_us=now_us)
    app[ENGINE].forget(queue, [n for n, gone in zip(names, deleted, strict=True) if gone])
    return deleted


async def purge_queue(request: web.Request) -> web.Response:
    cfg = _held(request)
    purged = await purge(request.app, cfg.name, now_us=request.app[CLOCK].now_us())
    return api_errors.json_response({"queue": cfg.name, "purged": purged})


async def check_storage_limit(
    store: base.Store, queues: config.QueuesConfig, batch: Sequence[models.Task]
) -> None:
    """Refuse tasks that would take the store past queue.yaml's ``total_storage_limit``."""
    limit = queues.total_storage_limit_bytes
    if limit is None:
        return
    used, adding = await store.total_bytes(), sum(task.size for task in batch)
    if used + adding > limit:
        raise errors.StorageLimitExceededError(
            f"total_storage_limit is {limit} bytes; {used} are stored and "
            f"this request adds {adding}"
        )


async def store_batch(
    app: web.Application, batch: Sequence[models.Task], *, now_us: int
) -> list[models.AddResult]:
    """Insert validated tasks within the storage limit, then wake the scheduler for each push
    task stored: every API adds through here."""
    store = app[STORE]
    await check_storage_limit(store, app[QUEUES](), batch)
    results = await store.add(batch, now_us=now_us)
    added: dict[str, int] = {}
    for result in results:
        if result.ok:
            added[result.task.queue] = added.get(result.task.queue, 0) + 1
            if not result.task.is_pull:
                app[ENGINE].notify(result.task.queue, result.task.eta_us)
    for queue, count in added.items():
        app[METRICS].record_added(queue, count)
    return results


async def add_tasks(request: web.Request) -> web.Response:
    """Validate the whole batch, check the storage limit, insert, then wake the scheduler."""
    cfg = _queue(request)
    body = wire.loads(await request.read())
    pull = cfg.mode is models.QueueMode.PULL
    default_method = models.Method.PULL if pull else models.Method.POST
    requests = wire.decode_add(body, default_method=default_method.value)
    now_us = request.app[CLOCK].now_us()
    batch = tasks.validate_batch(requests, queue=cfg.name, mode=cfg.mode, now_us=now_us)
    results = await store_batch(request.app, batch, now_us=now_us)
    return api_errors.json_response({"tasks": [wire.encode_add_result(r) for r in results]})


def _page_of(found: list[T], limit: int, name_of: Callable[[T], str]) -> tuple[list[T], str | None]:
    """The first ``limit`` of ``limit + 1`` fetched items, and the cursor if more remain."""
    return found[:limit], (name_of(found[limit - 1]) if len(found) > limit else None)


async def list_tasks(request: web.Request) -> web.Response:
    cfg = _held(request)
    limit, after = _page(request)
    found = await request.app[STORE].list_tasks(cfg.name, limit=limit + 1, after_name=after)
    page, cursor = _page_of(found, limit, lambda t: t.name)
    return api_errors.json_response(
        {"tasks": [wire.encode_task(task, payload=False) for task in page], "next": cursor}
    )


async def stored_task(app: web.Application, queue: str, name: str) -> models.Task:
    """The live task ``name`` of ``queue``, or UnknownTaskError."""
    task = await app[STORE].get(queue, name)
    if task is None:
        raise errors.UnknownTaskError(f"queue {queue!r} has no task {name!r}")
    return task


async def get_task(request: web.Request) -> web.Response:
    cfg, name = _held(request), _task_name(request)
    return api_errors.json_response(
        wire.encode_task(await stored_task(request.app, cfg.name, name))
    )


async def delete_task_named(app: web.Application, queue: str, name: str, *, now_us: int) -> None:
    """Delete one live task (UnknownTaskError if there is none), as :func:`delete_names` does."""
    [deleted] = await delete_names(app, queue, [name], now_us=now_us)
    if not deleted:
        raise errors.UnknownTaskError(f"queue {queue!r} has no task {name!r}")


async def delete_task(request: web.Request) -> web.Response:
    cfg, name = _held(request), _task_name(request)
    await delete_task_named(request.app, cfg.name, name, now_us=request.app[CLOCK].now_us())
    return api_errors.json_response({"queue": cfg.name, "name": name, "deleted": True})


async def delete_tasks(request: web.Request) -> web.Response:
    """Delete several tasks by name; each answers whether it was live (App Engine's
    ``was_deleted``): unknown and tombstoned names are not errors (SPEC 6)."""
    cfg = _held(request)
    names = wire.decode_delete(wire.loads(await request.read()))
    now_us = request.app[CLOCK].now_us()
    deleted = await delete_names(request.app, cfg.name, names, now_us=now_us)
    return api_errors.json_response(
        {"tasks": [{"name": n, "deleted": d} for n, d in zip(names, deleted, strict=True)]}
    )


async def lease_tasks(request: web.Request) -> web.Response:
    """Lease pull tasks: ``{"lease_seconds", "max_tasks", "group_by_tag", "tag"}``."""
    cfg = _queue(request)
    lease = wire.decode_lease(wire.loads(await request.read()))
    now_us = request.app[CLOCK].now_us()
    leased = await pull.lease(request.app[STORE], request.app[LEASES], cfg, lease, now_us=now_us)
    return api_errors.json_response({"tasks": [wire.encode_task(task) for task in leased]})


async def modify_task_lease(request: web.Request) -> web.Response:
    """Renew or release a lease: ``{"eta_us": <ETA the lease gave>, "lease_seconds": 30}``."""
    cfg, name = _queue(request), _task_name(request)
    eta_us, lease_us = wire.decode_modify_lease(wire.loads(await request.read()))
    task = await pull.modify_lease(
        request.app[STORE],
        cfg,
        name,
        current_eta_us=eta_us,
        lease_us=lease_us,
        now_us=request.app[CLOCK].now_us(),
    )
    return api_errors.json_response(wire.encode_task(task))


async def run_now(app: web.Application, queue: str, name: str, *, now_us: int) -> models.Task:
    """Make a stored task due now and wake the scheduler; every API runs tasks through here."""
    task = await app[STORE].run_now(queue, name, now_us=now_us)
    if task is None:
        raise errors.UnknownTaskError(f"queue {queue!r} has no task {name!r}")
    _notify(app, task)
    return task


async def run_task(request: web.Request) -> web.Response:
    cfg, name = _queue(request), _task_name(request)
    task = await run_now(request.app, cfg.name, name, now_us=request.app[CLOCK].now_us())
    return api_errors.json_response(wire.encode_task(task))


async def list_dead(request: web.Request) -> web.Response:
    cfg = _held(request)
    limit, after = _page(request)
    found = await request.app[STORE].list_dead(cfg.name, limit=limit + 1, after_name=after)
    page, cursor = _page_of(found, limit, lambda d: d.task.name)
    return api_errors.json_response(
        {
            "tasks": [
                wire.encode_dead(d.task, dead_us=d.dead_us, reason=d.reason, payload=False)
                for d in page
            ],
            "next": cursor,
        }
    )


async def dead_letter(app: web.Application, queue: str, name: str) -> base.DeadTask:
    """The dead letter ``name`` of ``queue``, or UnknownTaskError."""
    dead = await app[STORE].get_dead(queue, name)
    if dead is None:
        raise errors.UnknownTaskError(f"queue {queue!r} has no dead letter {name!r}")
    return dead


async def get_dead(request: web.Request) -> web.Response:
    dead = await dead_letter(request.app, _held(request).name, _task_name(request))
    encoded = wire.encode_dead(dead.task, dead_us=dead.dead_us, reason=dead.reason)
    return api_errors.json_response(encoded)


async def redrive(app: web.Application, queue: str, name: str, *, now_us: int) -> models.Task:
    """Put a dead letter back as a fresh task due now; every API redrives through here."""
    await dead_letter(app, queue, name)
    task = await app[STORE].redrive(queue, name, now_us=now_us)
    if task is None:  # a live task took the name meanwhile
        raise errors.TaskAlreadyExistsError(f"queue {queue!r} already has a live task {name!r}")
    _notify(app, task)
    return task


async def redrive_dead(request: web.Request) -> web.Response:
    cfg, name = _queue(request), _task_name(request)
    task = await redrive(request.app, cfg.name, name, now_us=request.app[CLOCK].now_us())
    return api_errors.json_response(wire.encode_task(task))


async def forget_dead(app: web.Application, queue: str, name: str) -> None:
    """Delete a dead letter (UnknownTaskError if there is none)."""
    if not await app[STORE].delete_dead(queue, name):
        raise errors.UnknownTaskError(f"queue {queue!r} has no dead letter {name!r}")


async def delete_dead(request: web.Request) -> web.Response:
    cfg, name = _held(request), _task_name(request)
    await forget_dead(request.app, cfg.name, name)
    return api_errors.json_response({"queue": cfg.name, "name": name, "deleted": True})


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
