"""Cloud Tasks v2beta2: the v2 methods in v2beta2's shapes, with pull queues, and the pull
methods (LeaseTasks, AcknowledgeTask, RenewLease, CancelLease) on pushd's pull queues.

The v2 handlers of :mod:`pushd.cloudtasks.service` serve v2beta2's queues of either mode in
its shapes (queue.yaml's pull queues appear with ``pull_target``, push queues with
``app_engine_http_target``; messages from :mod:`pushd.cloudtasks.v2beta2_convert`); these
replace those that differ (CreateTask, RunTask) and add the pull methods. A lease is
pushd's (SPEC 6): a leased task's ``schedule_time`` is its lease's end and the token a worker
shows to acknowledge, renew or cancel it, as App Engine's ``modify_task_lease`` checks the ETA.

Choices where Google leaves room (README "Using pushd as Cloud Tasks"):

* A lease token that does not match (another worker's lease, or one that ran out) is
  FAILED_PRECONDITION naming ``schedule_time`` (Google's message is not recorded).
* AcknowledgeTask first renews the lease it is shown (so no other worker can take the task in
  between), then deletes the task: it is tombstoned like any deleted task.
* ``max_tasks`` 0 (unset) leases one task; the 10 LeaseTasks per second limit per queue is not
  enforced.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pushd import clock, errors, models
from pushd.cloudtasks import backend as backend_
from pushd.cloudtasks import descriptors, names, rpc, service
from pushd.cloudtasks import v2beta2_convert as beta2

if TYPE_CHECKING:
    from pushd.queue_yaml import config

Action = backend_.Action
Call = service.Call
MAX_LEASED = 1000
MAX_LEASE_US = 7 * 86400 * clock.US_PER_SECOND
#: How long AcknowledgeTask holds the lease it checked while it deletes the task.
ACK_HOLD_US = 60 * clock.US_PER_SECOND
_TAG_FILTER = re.compile(r"\s*tag\s*=\s*(.*?)\s*", re.S)
_OLDEST_TAG = re.compile(r"\s*tag_function\s*=\s*oldest_tag\(\)\s*")


# ------------------------------------------------------------------ helpers


def _pull_queue(call: Call, name: str) -> tuple[names.QueueName, config.QueueConfig]:
    """A pull queue, RUNNING: a push queue, a paused or a DISABLED one is FAILED_PRECONDITION."""
    queue_name, cfg = service._queue(call, name)
    if cfg.mode is not models.QueueMode.PULL:
        raise rpc.RpcError(
            rpc.Code.FAILED_PRECONDITION,
            f"queue {cfg.name!r} is a push queue (app_engine_http_target): only pull queues "
            "(mode: pull in queue.yaml) hold tasks to lease",
        )
    if call.backend.removed(cfg.name):
        raise rpc.RpcError(
            rpc.Code.FAILED_PRECONDITION,
            f"queue {cfg.name!r} is DISABLED (removed from queue.yaml): put it back there to "
            "lease its tasks",
        )
    return queue_name, cfg


def _lease_us(request: Any) -> int:
    """The request's required ``lease_duration`` truncated to the second, at most a week."""
    field = "lease_duration"
    if not request.HasField(field):
        raise rpc.invalid(f"{field} is required")
    us = int(request.lease_duration.ToMicroseconds())
    seconds = us // clock.US_PER_SECOND
    if us < 0 or us > MAX_LEASE_US:
        raise rpc.invalid(f"{field} must be between 1s and 604800s (1 week); got {us / 1e6}s")
    if seconds == 0:
        raise rpc.invalid(f"{field} is required: at least 1s (it is truncated to the second)")
    return seconds * clock.US_PER_SECOND


def _lease_token(request: Any) -> int:
    if not request.HasField("schedule_time"):
        raise rpc.invalid(
            "schedule_time is required: the task's current schedule_time, as LeaseTasks or "
            "RenewLease returned it"
        )
    return int(request.schedule_time.ToMicroseconds())


def _lease_error(exc: errors.Error, name: names.TaskName, schedule_time: Any) -> rpc.RpcError:
    """pushd's lease errors as Cloud Tasks codes; others as :func:`rpc.from_pushd` says."""
    if isinstance(exc, errors.TaskLeaseExpiredError):
        return rpc.RpcError(
            rpc.Code.FAILED_PRECONDITION,
            f"the lease on task {name.task!r} is not held: schedule_time "
            f"{schedule_time.ToJsonString()} is not the end of its current lease (it ran out, "
            "or another worker leased the task since)",
        )
    if isinstance(exc, errors.TombstonedTaskError):
        return rpc.RpcError(rpc.Code.NOT_FOUND, rpc.TASK_EXISTED_RECENTLY)
    if isinstance(exc, errors.QueuePausedError):
        return _paused(name.queue.queue)
    return rpc.from_pushd(exc)


def _paused(queue: str) -> rpc.RpcError:
    return rpc.RpcError(
        rpc.Code.FAILED_PRECONDITION, f"queue {queue!r} is PAUSED: resume it to lease its tasks"
    )


def _filter(text: str) -> tuple[bool, bytes | None]:
    """LeaseTasks' ``filter`` as pushd's (group_by_tag, tag)."""
    if not text.strip():
        return False, None
    if _OLDEST_TAG.fullmatch(text):
        return True, None
    match = _TAG_FILTER.fullmatch(text)
    if match is None:
        raise rpc.invalid(
            f"filter {text!r} is not supported; use 'tag=<tag>' or 'tag_function=oldest_tag()'"
        )
    tag = match.group(1)
    if len(tag) > beta2.MAX_TAG_CHARS:
        raise rpc.invalid(f"filter: the tag must be less than 500 characters; got {len(tag)}")
    return True, tag.encode("utf-8")


# ------------------------------------------------------------------ tasks


async def create_task(call: Call, request: Any) -> Any:
    name, cfg = service._queue(call, request.parent)
    service._runnable(call, cfg)
    wanted = beta2.task_request(request.task, name, cfg, now_us=call.backend.now_us())
    result = await call.backend.add(wanted, cfg)
    if not result.ok:
        raise rpc.RpcError(rpc.Code.ALREADY_EXISTS, rpc.ALREADY_EXISTS)
    return service.task_message(call, name, result.task, request.response_view)


async def run_task(call: Call, request: Any) -> Any:
    task_name = names.task(request.name)
    _, cfg = service._queue(call, str(task_name.queue))
    if cfg.mode is models.QueueMode.PULL:
        raise rpc.RpcError(
            rpc.Code.FAILED_PRECONDITION,
            f"RunTask cannot be called on a pull task: queue {cfg.name!r} is a pull queue "
            "(lease its tasks with LeaseTasks)",
        )
    service._runnable(call, cfg)
    task = await call.backend.run(cfg.name, task_name.task)
    if task is None:
        raise await service.missing_task(call, cfg.name, task_name.task)
    return service.task_message(call, task_name.queue, task, request.response_view)


# ------------------------------------------------------------------ leases


async def lease_tasks(call: Call, request: Any) -> Any:
    name, cfg = _pull_queue(call, request.parent)
    if not 0 <= request.max_tasks <= MAX_LEASED:
        raise rpc.invalid(f"max_tasks must be between 1 and {MAX_LEASED}; got {request.max_tasks}")
    lease_us = _lease_us(request)
    group_by_tag, tag = _filter(request.filter)
    try:
        leased = await call.backend.lease(
            cfg,
            lease_us=lease_us,
            max_tasks=request.max_tasks or 1,
            group_by_tag=group_by_tag,
            tag=tag,
        )
    except errors.QueuePausedError:
        raise _paused(cfg.name) from None
    response = beta2.new("LeaseTasksResponse")
    for task in leased:
        response.tasks.append(service.task_message(call, name, task, request.response_view))
    return response


async def _renew(call: Call, request: Any, lease_us: int) -> tuple[names.TaskName, models.Task]:
    task_name = names.task(request.name)
    _, cfg = _pull_queue(call, str(task_name.queue))
    current = _lease_token(request)
    try:
        task = await call.backend.renew(
            cfg, task_name.task, current_eta_us=current, lease_us=lease_us
        )
    except errors.Error as exc:
        raise _lease_error(exc, task_name, request.schedule_time) from None
    return task_name, task


async def acknowledge_task(call: Call, request: Any) -> Any:
    task_name, _ = await _renew(call, request, ACK_HOLD_US)
    await call.backend.delete(task_name.queue.queue, task_name.task)
    return descriptors.new("google.protobuf.Empty")


async def renew_lease(call: Call, request: Any) -> Any:
    lease_us = _lease_us(request)
    task_name, task = await _renew(call, request, lease_us)
    return service.task_message(call, task_name.queue, task, request.response_view)


async def cancel_lease(call: Call, request: Any) -> Any:
    task_name, task = await _renew(call, request, 0)
    return service.task_message(call, task_name.queue, task, request.response_view)


#: v2beta2's handlers over v2's (:func:`pushd.cloudtasks.service.table`).
HANDLERS: dict[str, tuple[service.Handler, backend_.Action]] = {
    "CreateTask": (create_task, Action.ADD_TASKS),
    "RunTask": (run_task, Action.ADMIN),
    "LeaseTasks": (lease_tasks, Action.LEASE_TASKS),
    "AcknowledgeTask": (acknowledge_task, Action.LEASE_TASKS),
    "RenewLease": (renew_lease, Action.LEASE_TASKS),
    "CancelLease": (cancel_lease, Action.LEASE_TASKS),
}
