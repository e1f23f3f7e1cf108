"""The eight methods of TaskQueue REST v1beta2, each an adapter over the service: read the
request (:mod:`.params`), call :class:`pushd.service.Service`, encode the resource
(:mod:`.resources`)."""

from __future__ import annotations

from aiohttp import web

from pushd import clock, errors, models, tasks
from pushd.api import auth
from pushd.api import errors as api_errors
from pushd.api.keys import service_of
from pushd.api.v1beta2 import params, resources

#: Most tasks ``tasks.list`` shows.
LIST_LIMIT = 100


async def get_taskqueue(request: web.Request) -> web.Response:
    cfg = params.queue(request)
    stats = None
    if params.flag(request.query, "getStats"):
        svc = service_of(request)
        counts = await svc.queues.counts(cfg.name)
        stats = resources.encode_stats(counts, svc.pull.leased(cfg.name))
    return api_errors.json_response(resources.encode_queue(cfg, stats))


def _refused(name: str, queue: str, error: type[Exception] | None) -> errors.Error | None:
    """Why the store did not add the task ``name`` to ``queue``, as the error to raise."""
    if error is errors.TaskAlreadyExistsError:
        return errors.TaskAlreadyExistsError(f"queue {queue!r} already has a task {name!r}")
    if error is errors.TombstonedTaskError:
        return errors.TombstonedTaskError(
            f"task name {name!r} was used recently in queue {queue!r} and cannot be reused yet"
        )
    if error is not None:
        return errors.InternalError(f"the store refused task {name!r}")
    return None


async def insert_task(request: web.Request) -> web.Response:
    cfg = params.queue(request)
    body = params.task_resource(await request.read())
    [result] = await service_of(request).tasks.add(cfg, [params.decode_insert(body, cfg)])
    if (refusal := _refused(result.task.name, cfg.name, result.error)) is not None:
        raise refusal
    return api_errors.json_response(resources.encode_task(result.task))


async def list_tasks(request: web.Request) -> web.Response:
    cfg = params.queue(request)
    page = await service_of(request).tasks.page(cfg.name, limit=LIST_LIMIT)
    return api_errors.json_response(
        resources.encode_tasks(resources.LIST_KIND, page.items, payload=False)
    )


async def get_task(request: web.Request) -> web.Response:
    cfg, name = params.queue(request), params.task_name(request)
    task = await service_of(request).tasks.get(cfg.name, name)
    return api_errors.json_response(resources.encode_task(task))


async def delete_task(request: web.Request) -> web.Response:
    cfg, name = params.queue(request), params.task_name(request)
    await service_of(request).tasks.delete_one(cfg.name, name)
    return web.Response(status=204)


async def lease_tasks(request: web.Request) -> web.Response:
    cfg = params.queue(request)
    found = await params.lease_params(request)
    lease_secs = params.int32(
        found, "leaseSecs", errors.InvalidLeaseTimeError, 0, models.MAX_LEASE_SECONDS
    )
    num_tasks = params.int32(
        found, "numTasks", errors.InvalidMaxTasksError, 1, models.MAX_TASKS_PER_LEASE
    )
    group_by_tag = params.flag(found, "groupByTag")
    tag = found.get("tag") or None
    if tag is not None and not group_by_tag:
        raise errors.Error("tag can only be given with groupByTag=true")
    leased = await service_of(request).pull.lease(
        cfg,
        lease_us=lease_secs * clock.US_PER_SECOND,
        max_tasks=num_tasks,
        group_by_tag=group_by_tag,
        tag=tasks.check_lease_tag(tag, group_by_tag=group_by_tag),
    )
    return api_errors.json_response(
        resources.encode_tasks(resources.LEASE_KIND, leased, payload=True)
    )


async def _renew(request: web.Request, *, patch: bool) -> web.Response:
    """update and patch: renew the lease on the task the path names (SPEC 7.3)."""
    cfg, name = params.queue(request), params.task_name(request)
    lease_secs = params.int32(
        request.query, "newLeaseSeconds", errors.InvalidLeaseTimeError, 0, models.MAX_LEASE_SECONDS
    )
    body = params.task_resource(await request.read())
    params.check_queue_name(body, cfg, required=patch)
    params.check_id(body, name)
    svc = service_of(request)
    current_eta_us = params.int64(body, "leaseTimestamp", errors.Error)
    if current_eta_us is None:
        if not patch:
            raise errors.Error(
                "leaseTimestamp is required: the lease expiry the lease answered, in µs"
            )
        current_eta_us = (await svc.tasks.get(cfg.name, name)).eta_us
    try:
        renewed = await svc.pull.renew(
            cfg, name, current_eta_us=current_eta_us, lease_us=lease_secs * clock.US_PER_SECOND
        )
    except errors.TombstonedTaskError:
        raise errors.UnknownTaskError(
            f"queue {cfg.name!r} has no task {name!r}; it was deleted"
        ) from None
    return api_errors.json_response(resources.encode_task(renewed))


async def update_task(request: web.Request) -> web.Response:
    return await _renew(request, patch=False)


async def patch_task(request: web.Request) -> web.Response:
    return await _renew(request, patch=True)


_Q = "/taskqueue/v1beta2/projects/{project}/taskqueues/{queue}"
#: ``.../tasks/lease`` comes before ``.../tasks/{task}``, whose POST is update.
ROUTES: tuple[auth.Route, ...] = (
    ("GET", _Q, get_taskqueue, auth.Action.READ_QUEUES),
    ("POST", f"{_Q}/tasks/lease", lease_tasks, auth.Action.LEASE_TASKS),
    ("POST", f"{_Q}/tasks", insert_task, auth.Action.ADD_TASKS),
    ("GET", f"{_Q}/tasks", list_tasks, auth.Action.READ_TASKS),
    ("GET", f"{_Q}/tasks/{{task}}", get_task, auth.Action.READ_TASKS),
    ("DELETE", f"{_Q}/tasks/{{task}}", delete_task, auth.Action.DELETE_TASKS),
    ("POST", f"{_Q}/tasks/{{task}}", update_task, auth.Action.LEASE_TASKS),
    ("PATCH", f"{_Q}/tasks/{{task}}", patch_task, auth.Action.LEASE_TASKS),
)
