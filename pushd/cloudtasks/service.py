"""The handler table: one coroutine per RPC, proto message in, proto message out.

Both transports serve it (:mod:`pushd.cloudtasks.grpc_server`, :mod:`pushd.cloudtasks.rest`);
each :class:`Rpc` also names the :class:`~pushd.api.auth.Action` a token's role must allow.

Choices where pushd differs from Google's service (README "Using pushd as Cloud Tasks"):

* Queues created through the API are stored and run beside queue.yaml's
  (:mod:`pushd.service.api_queues`); their fields: :mod:`pushd.cloudtasks.queues`. UpdateQueue of
  a missing queue creates it, as the real service does. A deleted queue takes its tasks with it
  and its name cannot be used again for an hour (FAILED_PRECONDITION, the real message): the
  real service says 7 days for the name, 1 hour for the task names of such a queue.
* queue.yaml is definitive for the names it holds: CreateQueue of a queue.yaml queue is
  ALREADY_EXISTS, UpdateQueue and DeleteQueue of one FAILED_PRECONDITION naming queue.yaml.
  Pull queues are not in the v2 API (it has none).
* IAM: pushd has no IAM. GetIamPolicy answers an empty policy, SetIamPolicy FAILED_PRECONDITION
  (access is ``auth_tokens`` and their roles), TestIamPermissions the permissions the caller's
  token role allows (all without tokens; none for an unknown queue, as Google answers).
* Locations: any project and location are accepted unless ``cloud_tasks.projects`` /
  ``.locations`` list some (every RPC checks its resource name: :meth:`Rpc.__call__`); ListLocations
  lists the listed locations, else one, ``local``.
* PurgeQueue answers ``purge_time`` (the call's time) but pushd does not keep it afterwards.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pushd import errors, models, settings
from pushd.cloudtasks import backend as backend_
from pushd.cloudtasks import convert, descriptors, names, queues, rpc
from pushd.cloudtasks import v2beta2_convert as beta2

if TYPE_CHECKING:
    from pushd.queue_yaml import config

Action = backend_.Action
LOCATION_ID = "local"
MAX_QUEUE_PAGE = 9800
MAX_TASK_PAGE = 1000
_STATE_FILTER = re.compile(r"\s*state\s*[:=]\s*(RUNNING|PAUSED|DISABLED)\s*")
_VIEW_BASIC = 1
#: The version with pull queues: it serves them, in its own shapes (:mod:`.v2beta2_convert`).
PULL_VERSION = beta2.VERSION


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """One call: the version served, pushd's operations, and the caller's token (None when
    the daemon has no tokens)."""

    version: str
    backend: backend_.Backend
    token: settings.ApiToken | None = None


Handler = Callable[[Call, Any], Awaitable[Any]]


@dataclasses.dataclass(frozen=True, slots=True)
class Rpc:
    method: descriptors.Method
    handler: Handler
    action: backend_.Action

    async def __call__(self, call: Call, request: Any) -> Any:
        """The handler's answer; a pushd error escaping it becomes an :class:`rpc.RpcError`.
        A resource outside the projects and locations served is refused first, here, so no
        handler of any version or transport can forget it."""
        if (field := self.method.resource) is not None:
            allowed = call.backend.cloud_tasks
            names.Scope(allowed.projects, allowed.locations).check(_field(request, field))
        try:
            return await self.handler(call, request)
        except errors.Error as exc:
            raise rpc.from_pushd(exc) from None


# ------------------------------------------------------------------ helpers


def _field(request: Any, path: str) -> str:
    """The string at a dotted field ``path`` (``queue.name``) of ``request``."""
    value = request
    for part in path.split("."):
        value = getattr(value, part)
    return str(value)


def _queue(call: Call, name: str) -> tuple[names.QueueName, config.QueueConfig]:
    """The queue ``name``, NOT_FOUND as Google words it; a pull queue only in v2beta2."""
    queue_name = names.queue(name)
    cfg = call.backend.queue(queue_name.queue)
    if cfg is None:
        raise rpc.RpcError(rpc.Code.NOT_FOUND, rpc.QUEUE_NOT_FOUND)
    if cfg.mode is not models.QueueMode.PUSH and call.version != PULL_VERSION:
        raise rpc.RpcError(
            rpc.Code.FAILED_PRECONDITION,
            f"queue {cfg.name!r} is a pull queue in queue.yaml; the Cloud Tasks API serves "
            "push queues (lease its tasks through /api/v1 or /taskqueue/v1beta2)",
        )
    return queue_name, cfg


async def _queue_message(call: Call, name: names.QueueName, cfg: config.QueueConfig) -> Any:
    return _shown_queue(call, name, cfg, paused=cfg.name in await call.backend.paused())


def _shown_queue(
    call: Call, name: names.QueueName, cfg: config.QueueConfig, *, paused: bool
) -> Any:
    """The Queue ``cfg`` is in the call's version (v2beta2's shapes are its own)."""
    removed = call.backend.removed(cfg.name)
    if call.version == PULL_VERSION:
        return beta2.queue_message(name, cfg, paused=paused, removed=removed)
    return convert.queue_message(call.version, name, cfg, paused=paused, removed=removed)


def task_message(call: Call, name: names.QueueName, task: models.Task, view: int) -> Any:
    """The Task ``task`` is in the call's version; ``view`` 0 (unset) is BASIC."""
    if call.version == PULL_VERSION:
        return beta2.task_message(name, task, view=view or _VIEW_BASIC)
    return convert.task_message(call.version, name, task, view=view or _VIEW_BASIC)


def _runnable(call: Call, cfg: config.QueueConfig) -> None:
    """Refuse what needs the queue in queue.yaml (run, add, pause, resume) on a removed one."""
    if call.backend.removed(cfg.name):
        raise rpc.RpcError(
            rpc.Code.FAILED_PRECONDITION,
            f"queue {cfg.name!r} was removed from queue.yaml (DISABLED): its tasks can be "
            "listed, deleted and purged; put it back in queue.yaml to run or add tasks",
        )


def _page_size(size: int, most: int) -> int:
    if size < 0:
        raise rpc.invalid(f"page_size must not be negative; got {size}")
    return most if size == 0 else min(size, most)


def _after(token: str) -> str | None:
    """The name a page token continues after (tokens are opaque: base64 of that name)."""
    if not token:
        return None
    try:
        raw = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
        return raw.decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        raise rpc.invalid(f"page_token {token!r} is not a token this server gave") from None


def _token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii")


async def missing_task(call: Call, queue: str, task: str) -> rpc.RpcError:
    """NOT_FOUND for a task that is not live: the real service's "existed recently" message
    while its name is tombstoned (it ran, was deleted or purged), else the plain one."""
    if await call.backend.tombstoned(queue, task):
        return rpc.RpcError(rpc.Code.NOT_FOUND, rpc.TASK_EXISTED_RECENTLY)
    return rpc.RpcError(rpc.Code.NOT_FOUND, rpc.NOT_FOUND)


def _from_yaml(name: str, change: str) -> rpc.RpcError:
    return rpc.RpcError(
        rpc.Code.FAILED_PRECONDITION,
        f"queue {name!r} is defined by queue.yaml, which stays definitive; {change} it there "
        "and reload pushd (SIGHUP)",
    )


def _state_filter(text: str) -> str | None:
    """ListQueues' ``filter``: the state it keeps, or None for every queue."""
    if not text:
        return None
    match = _STATE_FILTER.fullmatch(text)
    if match is None:
        raise rpc.invalid(
            f"filter {text!r} is not supported; use 'state: PAUSED' (or RUNNING, DISABLED)"
        )
    return match.group(1)


# ------------------------------------------------------------------ queues


async def list_queues(call: Call, request: Any) -> Any:
    parent = names.parent(request.parent)
    state = _state_filter(request.filter)
    size, after = _page_size(request.page_size, MAX_QUEUE_PAGE), _after(request.page_token)
    paused = await call.backend.paused()
    response = convert.new(call.version, "ListQueuesResponse")
    pull = call.version == PULL_VERSION
    for cfg in call.backend.all_queues() if pull else call.backend.push_queues():
        if after is not None and cfg.name <= after:
            continue
        name = names.QueueName(parent, cfg.name)
        queue = _shown_queue(call, name, cfg, paused=cfg.name in paused)
        if state is not None and queue.State.Name(queue.state) != state:
            continue
        if len(response.queues) == size:
            response.next_page_token = _token(response.queues[-1].name.rpartition("/")[2])
            break
        response.queues.append(queue)
    return response


async def get_queue(call: Call, request: Any) -> Any:
    return await _queue_message(call, *_queue(call, request.name))


async def create_queue(call: Call, request: Any) -> Any:
    parent = names.parent(request.parent)
    name = names.queue(request.queue.name)
    if name.parent != parent:
        raise rpc.invalid(names.QUEUE_NAME_FORMAT)
    if call.backend.queue(name.queue) is not None:
        raise rpc.RpcError(rpc.Code.ALREADY_EXISTS, rpc.QUEUE_ALREADY_EXISTS)
    wanted = queues.api_queue(call.version, request.queue, models.ApiQueue(name=name.queue), None)
    return await _save(call, name, wanted, create=True)


async def _save(call: Call, name: names.QueueName, wanted: models.ApiQueue, *, create: bool) -> Any:
    outcome = await call.backend.save_api_queue(wanted, create=create)
    if outcome is models.QueueSave.EXISTS:
        raise rpc.RpcError(rpc.Code.ALREADY_EXISTS, rpc.QUEUE_ALREADY_EXISTS)
    if outcome is models.QueueSave.RECENTLY_DELETED:
        raise rpc.RpcError(rpc.Code.FAILED_PRECONDITION, rpc.QUEUE_RECENTLY_DELETED)
    cfg = call.backend.queue(name.queue)
    if cfg is None:  # deleted again meanwhile, by another call
        raise rpc.RpcError(rpc.Code.NOT_FOUND, rpc.QUEUE_NOT_FOUND)
    if not cfg.api:  # queue.yaml took the name meanwhile (a reload)
        raise _from_yaml(name.queue, "change")
    return await _queue_message(call, name, cfg)


async def update_queue(call: Call, request: Any) -> Any:
    name = names.queue(request.queue.name)
    cfg = call.backend.queue(name.queue)
    if cfg is not None and not cfg.api:
        _runnable(call, cfg)
        raise _from_yaml(name.queue, "change")
    mask = list(request.update_mask.paths) if request.HasField("update_mask") else None
    stored = await call.backend.api_queue(name.queue)
    base = models.ApiQueue(name=name.queue) if stored is None else stored
    wanted = queues.api_queue(call.version, request.queue, base, mask or None)
    return await _save(call, name, wanted, create=False)


async def delete_queue(call: Call, request: Any) -> Any:
    name = names.queue(request.name)
    cfg = call.backend.queue(name.queue)
    if cfg is None:
        raise rpc.RpcError(rpc.Code.NOT_FOUND, rpc.NOT_FOUND)
    if not cfg.api:
        _runnable(call, cfg)
        raise _from_yaml(name.queue, "remove")
    if not await call.backend.delete_api_queue(name.queue):
        raise rpc.RpcError(rpc.Code.NOT_FOUND, rpc.NOT_FOUND)
    return descriptors.new("google.protobuf.Empty")


async def purge_queue(call: Call, request: Any) -> Any:
    name, cfg = _queue(call, request.name)
    now_us = call.backend.now_us()
    await call.backend.purge(cfg.name)
    queue = await _queue_message(call, name, cfg)
    convert.set_timestamp(queue.purge_time, now_us)
    return queue


async def pause_queue(call: Call, request: Any) -> Any:
    name, cfg = _queue(call, request.name)
    _runnable(call, cfg)
    await call.backend.pause(cfg.name)
    return await _queue_message(call, name, cfg)


async def resume_queue(call: Call, request: Any) -> Any:
    name, cfg = _queue(call, request.name)
    _runnable(call, cfg)
    await call.backend.resume(cfg.name)
    return await _queue_message(call, name, cfg)


# ------------------------------------------------------------------ IAM

#: The Cloud Tasks permission each of pushd's actions stands for.
PERMISSIONS: dict[str, backend_.Action] = {
    "cloudtasks.queues.get": Action.READ_QUEUES,
    "cloudtasks.queues.list": Action.READ_QUEUES,
    "cloudtasks.queues.getIamPolicy": Action.READ_QUEUES,
    "cloudtasks.queues.create": Action.ADMIN,
    "cloudtasks.queues.update": Action.ADMIN,
    "cloudtasks.queues.delete": Action.ADMIN,
    "cloudtasks.queues.pause": Action.ADMIN,
    "cloudtasks.queues.resume": Action.ADMIN,
    "cloudtasks.queues.purge": Action.ADMIN,
    "cloudtasks.queues.setIamPolicy": Action.ADMIN,
    "cloudtasks.tasks.create": Action.ADD_TASKS,
    "cloudtasks.tasks.get": Action.READ_TASKS,
    "cloudtasks.tasks.list": Action.READ_TASKS,
    "cloudtasks.tasks.delete": Action.DELETE_TASKS,
    "cloudtasks.tasks.run": Action.ADMIN,
}


async def get_iam_policy(call: Call, request: Any) -> Any:
    _queue(call, request.resource)
    return descriptors.new("google.iam.v1.Policy")


async def set_iam_policy(call: Call, request: Any) -> Any:
    _queue(call, request.resource)
    raise rpc.RpcError(
        rpc.Code.FAILED_PRECONDITION,
        "pushd has no IAM policies: who may call what is set by auth_tokens and their roles "
        "in pushd's settings",
    )


async def test_iam_permissions(call: Call, request: Any) -> Any:
    response = descriptors.new("google.iam.v1.TestIamPermissionsResponse")
    name = names.queue(request.resource)
    if call.backend.queue(name.queue) is None:
        return response  # an unknown resource holds no permissions (not NOT_FOUND)
    for permission in request.permissions:
        action = PERMISSIONS.get(permission)
        if action is not None and call.backend.allows(call.token, action):
            response.permissions.append(permission)
    return response


# ------------------------------------------------------------------ tasks


async def list_tasks(call: Call, request: Any) -> Any:
    name, cfg = _queue(call, request.parent)
    size, after = _page_size(request.page_size, MAX_TASK_PAGE), _after(request.page_token)
    found = await call.backend.list(cfg.name, limit=size + 1, after=after)
    response = convert.new(call.version, "ListTasksResponse")
    for task in found[:size]:
        response.tasks.append(task_message(call, name, task, request.response_view))
    if len(found) > size:
        response.next_page_token = _token(found[size - 1].name)
    return response


async def get_task(call: Call, request: Any) -> Any:
    task_name = names.task(request.name)
    _, cfg = _queue(call, str(task_name.queue))
    task = await call.backend.get(cfg.name, task_name.task)
    if task is None:
        raise await missing_task(call, cfg.name, task_name.task)
    return task_message(call, task_name.queue, task, request.response_view)


async def create_task(call: Call, request: Any) -> Any:
    name, cfg = _queue(call, request.parent)
    _runnable(call, cfg)
    wanted = convert.task_request(call.version, request.task, name, now_us=call.backend.now_us())
    if wanted.http is not None and (refusal := call.backend.http_target_refusal(wanted.http.url)):
        raise rpc.invalid(refusal)
    result = await call.backend.add(wanted, cfg)
    if not result.ok:
        raise rpc.RpcError(rpc.Code.ALREADY_EXISTS, rpc.ALREADY_EXISTS)
    return task_message(call, name, result.task, request.response_view)


async def delete_task(call: Call, request: Any) -> Any:
    task_name = names.task(request.name)
    _, cfg = _queue(call, str(task_name.queue))
    if not await call.backend.delete(cfg.name, task_name.task):
        raise await missing_task(call, cfg.name, task_name.task)
    return descriptors.new("google.protobuf.Empty")


async def run_task(call: Call, request: Any) -> Any:
    task_name = names.task(request.name)
    _, cfg = _queue(call, str(task_name.queue))
    _runnable(call, cfg)
    task = await call.backend.run(cfg.name, task_name.task)
    if task is None:
        raise rpc.RpcError(rpc.Code.NOT_FOUND, rpc.NOT_FOUND)
    return task_message(call, task_name.queue, task, request.response_view)


# ------------------------------------------------------------------ locations


def _location(call: Call, parent: names.Parent) -> Any:
    location = descriptors.new("google.cloud.location.Location")
    location.name = str(parent)
    location.location_id = parent.location
    any_location = not call.backend.cloud_tasks.locations
    location.display_name = "pushd (every location name is accepted)" if any_location else "pushd"
    return location


async def list_locations(call: Call, request: Any) -> Any:
    """The locations ``cloud_tasks.locations`` lists, else one, ``local`` (any is accepted)."""
    project = names.project(request.name)
    response = descriptors.new("google.cloud.location.ListLocationsResponse")
    for location_id in call.backend.cloud_tasks.locations or (LOCATION_ID,):
        response.locations.append(_location(call, names.Parent(project, location_id)))
    return response


async def get_location(call: Call, request: Any) -> Any:
    return _location(call, names.parent(request.name))


# ------------------------------------------------------------------ the table

_HANDLERS: dict[str, tuple[Handler, backend_.Action]] = {
    "ListQueues": (list_queues, Action.READ_QUEUES),
    "GetQueue": (get_queue, Action.READ_QUEUES),
    "CreateQueue": (create_queue, Action.ADMIN),
    "UpdateQueue": (update_queue, Action.ADMIN),
    "DeleteQueue": (delete_queue, Action.ADMIN),
    "PurgeQueue": (purge_queue, Action.ADMIN),
    "PauseQueue": (pause_queue, Action.ADMIN),
    "ResumeQueue": (resume_queue, Action.ADMIN),
    "GetIamPolicy": (get_iam_policy, Action.READ_QUEUES),
    "SetIamPolicy": (set_iam_policy, Action.ADMIN),
    "TestIamPermissions": (test_iam_permissions, Action.READ_QUEUES),
    "ListTasks": (list_tasks, Action.READ_TASKS),
    "GetTask": (get_task, Action.READ_TASKS),
    "CreateTask": (create_task, Action.ADD_TASKS),
    "DeleteTask": (delete_task, Action.DELETE_TASKS),
    "RunTask": (run_task, Action.ADMIN),
    "ListLocations": (list_locations, Action.READ_QUEUES),
    "GetLocation": (get_location, Action.READ_QUEUES),
}


async def unimplemented(call: Call, request: Any) -> Any:
    raise rpc.RpcError(rpc.Code.UNIMPLEMENTED, "this method is not served by pushd yet")


def table(version: str) -> dict[str, Rpc]:
    """Every RPC of ``version`` (and the Locations mixin) with its handler; methods pushd does
    not serve yet (the CMEK methods, BatchDeleteTasks) answer UNIMPLEMENTED. v2beta2's own
    shapes and pull methods (:mod:`.pull`) and v2beta3's BatchCreateTasks (:mod:`.batch`)
    replace or add to the v2 handlers; both build on this module, hence the late import."""
    from pushd.cloudtasks import batch, pull

    handlers = {
        **_HANDLERS,
        **{"v2beta2": pull.HANDLERS, "v2beta3": batch.HANDLERS}.get(version, {}),
    }
    return {
        name: Rpc(method, *handlers.get(name, (unimplemented, Action.ADMIN)))
        for name, method in descriptors.methods(version).items()
    }
