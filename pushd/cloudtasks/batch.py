"""BatchCreateTasks: up to 100 CreateTask requests in one call (v2beta3, where googleapis'
protos define it; the v2 protos do not yet), validated and stored as App Engine's batch add is.

* Atomic validation: every task is checked (Cloud Tasks' rules, then pushd's) before anything
  is stored; one bad task fails the call with INVALID_ARGUMENT naming its index and field
  (``requests[3]: Task.app_engine_http_request.relative_uri must start with '/'``) and adds
  nothing. Two tasks of one batch with the same name are refused the same way.
* One store batch: the valid batch goes to the store in one call. A name that is live or
  tombstoned fails only that task, as in App Engine's batch add: the call succeeds with the
  others, and ``BatchCreateTasksMetadata.failed_requests`` maps its index to ALREADY_EXISTS
  (state PARTIALLY_SUCCEEDED). When every task fails so, the operation carries that error.
* The answer is a google.longrunning.Operation that is already done (the tasks are stored when
  the call returns), so a client's ``operation.result()`` never polls.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pushd import errors, models, tasks
from pushd.cloudtasks import backend as backend_
from pushd.cloudtasks import convert, descriptors, names, rpc, service

if TYPE_CHECKING:
    from pushd.queue_yaml import config

Call = service.Call
#: The most tasks one BatchCreateTasks may hold (App Engine's batch limit too).
MAX_BATCH = 100
_SUCCEEDED, _FAILED, _PARTIALLY_SUCCEEDED = 2, 3, 5
_VIEW_BASIC = 1


def _request(
    call: Call, index: int, sub: Any, queue: names.QueueName, cfg: config.QueueConfig, now_us: int
) -> tasks.TaskRequest:
    """Task ``index`` of the batch as a pushd request, checked; failures name ``requests[i]``."""
    field = f"requests[{index}]"
    if sub.parent and sub.parent != str(queue):
        raise rpc.invalid(f"{field}.parent must be empty or {queue}; got {sub.parent!r}")
    try:
        wanted = convert.task_request(call.version, sub.task, queue, now_us=now_us)
        call.backend.check(wanted, cfg)
    except rpc.RpcError as exc:
        raise rpc.RpcError(exc.code, f"{field}: {exc.message}") from None
    except errors.Error as exc:
        failed = rpc.from_pushd(exc)
        raise rpc.RpcError(failed.code, f"{field}: {failed.message}") from None
    return wanted


def _check_names(wanted: Sequence[tasks.TaskRequest]) -> None:
    first: dict[str, int] = {}
    for index, request in enumerate(wanted):
        if request.name is None:
            continue
        if request.name in first:
            raise rpc.invalid(
                f"requests[{index}].task.name {request.name!r} repeats requests"
                f"[{first[request.name]}]'s: the tasks of one batch need different names"
            )
        first[request.name] = index


async def batch_create_tasks(call: Call, request: Any) -> Any:
    name, cfg = service._queue(call, request.parent)
    service._runnable(call, cfg)
    count = len(request.requests)
    if not 1 <= count <= MAX_BATCH:
        raise rpc.invalid(f"requests must hold 1 to {MAX_BATCH} CreateTaskRequests; got {count}")
    start_us = call.backend.now_us()
    wanted = [
        _request(call, index, sub, name, cfg, start_us)
        for index, sub in enumerate(request.requests)
    ]
    _check_names(wanted)
    results = await call.backend.add_batch(wanted, cfg)
    views = [sub.response_view or _VIEW_BASIC for sub in request.requests]
    return _operation(call, name, results, views, start_us)


def _operation(
    call: Call,
    queue: names.QueueName,
    results: Sequence[models.AddResult],
    views: Sequence[int],
    start_us: int,
) -> Any:
    """The done Operation: the stored tasks as its response, failures in its metadata."""
    response = convert.new(call.version, "BatchCreateTasksResponse")
    metadata = convert.new(call.version, "BatchCreateTasksMetadata")
    convert.set_timestamp(metadata.start_time, start_us)
    convert.set_timestamp(metadata.end_time, call.backend.now_us())
    for index, (result, view) in enumerate(zip(results, views, strict=True)):
        if result.ok:
            response.tasks.append(convert.task_message(call.version, queue, result.task, view=view))
        else:
            status = metadata.failed_requests[index]
            status.code = rpc.Code.ALREADY_EXISTS
            status.message = rpc.ALREADY_EXISTS
    failed = len(metadata.failed_requests)
    metadata.state = (
        _SUCCEEDED if not failed else _FAILED if failed == len(results) else _PARTIALLY_SUCCEEDED
    )
    operation = descriptors.new("google.longrunning.Operation")
    operation.name = f"{queue.parent}/operations/batchCreateTasks-{uuid.uuid4().hex}"
    operation.done = True
    operation.metadata.Pack(metadata)
    if metadata.state == _FAILED:
        operation.error.code = rpc.Code.ALREADY_EXISTS
        operation.error.message = rpc.ALREADY_EXISTS
    else:
        operation.response.Pack(response)
    return operation


#: v2beta3's handlers beside v2's (:func:`pushd.cloudtasks.service.table`).
HANDLERS: dict[str, tuple[service.Handler, backend_.Action]] = {
    "BatchCreateTasks": (batch_create_tasks, backend_.Action.ADD_TASKS),
}
