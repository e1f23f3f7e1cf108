"""The ``taskqueue`` service of ``/rpc_http``: App Engine's task queue RPCs on pushd's store.

Each method decodes its request (:mod:`pushd.proto.taskqueue_service_pb2`), calls the service
every API calls (:class:`pushd.service.Service`) and answers the response App Engine's service
would, so the SDK's client raises the same exceptions.

BulkAdd follows SPEC 1.15: every task is checked first; if any fails, nothing is stored, the
failing tasks carry their error code and the others ``SKIPPED``. Otherwise each task is
inserted on its own, so a name clash fails only that task, and unnamed tasks get
``chosen_task_name``. A task's ``Host`` header routes it to a target (SPEC 8.2) as in every
other API.

Differences from App Engine, on purpose: queues come from queue.yaml, so UpdateQueue,
DeleteQueue, DeleteGroup and UpdateStorageLimit answer PERMISSION_DENIED; transactional adds
need App Engine's datastore and answer INVALID_REQUEST; Delete answers UNKNOWN_TASK for every
name that was not live (App Engine tells tombstoned names apart; its client treats both the
same); QueryTasks lists by name (``start_eta_usec`` and ``start_tag`` are ignored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from pushd import errors, models, service, tasks, wire
from pushd.api import auth
from pushd.api.rpc import Call, Method, text
from pushd.proto import taskqueue_service_pb2 as pb

if TYPE_CHECKING:
    from google.protobuf import message as pb_message

    from pushd.queue_yaml import config

_Code = pb.TaskQueueServiceError
_METHODS = {1: "GET", 2: "POST", 3: "HEAD", 4: "PUT", 5: "DELETE"}
_METHOD_NUMBERS = {name: number for number, name in _METHODS.items()}
_INT32_MAX = 2**31 - 1
_SAMPLING_S = 60.0  # the window of executed_last_minute


def _code(code: int) -> pb.TaskQueueServiceError.ErrorCode:
    return cast("pb.TaskQueueServiceError.ErrorCode", int(code))


# ------------------------------------------------------------------ adds


def _retry(params: pb.TaskQueueRetryParameters) -> models.RetryParameters:
    def field(name: str) -> Any:
        return getattr(params, name) if params.HasField(name) else None

    return models.RetryParameters(
        task_retry_limit=field("retry_limit"),
        task_age_limit_s=field("age_limit_sec"),
        min_backoff_s=field("min_backoff_sec"),
        max_backoff_s=field("max_backoff_sec"),
        max_doublings=field("max_doublings"),
    )


def _eta_us(eta_us: int, now_us: int) -> int:
    if eta_us < 0:
        raise errors.InvalidEtaError(f"eta_usec must not be before the epoch; found {eta_us}")
    if eta_us - now_us > models.MAX_ETA_AHEAD_US:
        raise errors.InvalidEtaError(f"eta_usec must be at most 30 days ahead; found {eta_us}")
    return eta_us


def _task_request(add: pb.TaskQueueAddRequest, now_us: int) -> tasks.TaskRequest:
    """What App Engine's client sent, as the arguments of ``taskqueue.Task(...)``."""
    pull_task = add.mode == pb.TaskQueueMode.PULL
    headers = [(text(h.key, "header name"), text(h.value, "header value")) for h in add.header]
    return tasks.TaskRequest(
        name=text(add.task_name, "task_name", errors.InvalidTaskNameError) or None,
        method="PULL" if pull_task else _METHODS[add.method],
        url=text(add.url, "url", errors.InvalidUrlError) if add.HasField("url") else None,
        headers=headers or None,
        payload=add.body if add.HasField("body") or pull_task else None,
        eta_us=_eta_us(add.eta_usec, now_us),
        retry_options=_retry(add.retry_parameters) if add.HasField("retry_parameters") else None,
        tag=add.tag if add.HasField("tag") else None,
        dispatch_deadline_us=(
            add.dispatch_deadline_usec if add.HasField("dispatch_deadline_usec") else None
        ),
    )


def _check_batch(adds: list[pb.TaskQueueAddRequest]) -> None:
    """What fails a whole BulkAdd rather than one of its tasks."""
    if not adds:
        raise errors.Error("a BulkAdd needs at least one add_request")
    tasks.check_batch_size(len(adds), what="a BulkAdd")
    if not adds[0].queue_name:
        raise errors.UnknownQueueError("queue_name is empty")
    if any(add.queue_name != adds[0].queue_name for add in adds):
        raise errors.Error("every task of one BulkAdd must name the same queue")
    for add in adds:
        if add.HasField("transaction") or add.HasField("datastore_transaction"):
            raise errors.Error(
                "transactional adds need App Engine's datastore, which pushd does not serve; "
                "add the task after your transaction commits"
            )
        if add.HasField("crontimetable"):
            raise errors.PermissionDeniedError("cron tasks are not served; use your own cron")


def _build(
    adds: list[pb.TaskQueueAddRequest], cfg: config.QueueConfig, now_us: int
) -> tuple[list[models.Task], list[int]]:
    """Every task built, or (if any fails) the error code of each failing task."""
    built: list[models.Task] = []
    codes: list[int] = []
    names: set[str] = set()
    for add in adds:
        try:
            task = tasks.build_task(
                _task_request(add, now_us), queue=cfg.name, mode=cfg.mode, now_us=now_us
            )
            if add.task_name:
                if task.name in names:
                    raise errors.DuplicateTaskNameError(f"task name {task.name!r} is repeated")
                names.add(task.name)
        except errors.InvalidQueueModeError:
            raise  # fails the whole call, as in App Engine
        except errors.Error as exc:
            codes.append(exc.code)
        else:
            built.append(task)
            codes.append(_Code.SKIPPED)
    return built, codes


async def bulk_add(call: Call, request: pb.TaskQueueBulkAddRequest) -> pb_message.Message:
    adds = list(request.add_request)
    _check_batch(adds)
    cfg = call.queue(adds[0].queue_name)
    built, codes = _build(adds, cfg, call.now_us)
    response = pb.TaskQueueBulkAddResponse()
    if len(built) < len(adds):
        for code in codes:
            response.taskresult.add(result=code)
        return response
    results = await call.service.tasks.store(built, now_us=call.now_us)
    for add, result in zip(adds, results, strict=True):
        entry = response.taskresult.add(result=_Code.OK)
        if result.error is not None:
            entry.result = getattr(result.error, "code", _Code.INTERNAL_ERROR)
        elif not add.task_name:
            entry.chosen_task_name = result.task.name.encode()
    return response


async def add(call: Call, request: pb.TaskQueueAddRequest) -> pb_message.Message:
    """The single-task add of older SDKs: a BulkAdd of one."""
    bulk = pb.TaskQueueBulkAddRequest()
    bulk.add_request.append(request)
    answer = await bulk_add(call, bulk)
    assert isinstance(answer, pb.TaskQueueBulkAddResponse)
    [result] = answer.taskresult
    if result.result != _Code.OK:
        raise errors.from_code(result.result, "the task was not added")
    return pb.TaskQueueAddResponse(chosen_task_name=result.chosen_task_name or None)


# ------------------------------------------------------------------ tasks


async def delete(call: Call, request: pb.TaskQueueDeleteRequest) -> pb_message.Message:
    cfg = call.queue(request.queue_name)
    names = [text(name, "task_name", errors.InvalidTaskNameError) for name in request.task_name]
    wire.check_delete_names(names)
    deleted = await call.service.tasks.delete(cfg.name, names)
    return pb.TaskQueueDeleteResponse(
        result=[_Code.OK if gone else _Code.UNKNOWN_TASK for gone in deleted]
    )


async def force_run(call: Call, request: pb.TaskQueueForceRunRequest) -> pb_message.Message:
    try:
        cfg = call.queue(request.queue_name)
        name = text(request.task_name, "task_name", errors.InvalidTaskNameError)
        await call.service.tasks.run_now(cfg.name, name)
    except errors.Error as exc:
        return pb.TaskQueueForceRunResponse(result=_code(exc.code))
    return pb.TaskQueueForceRunResponse(result=_Code.OK)


def _fill_task(entry: Any, task: models.Task) -> None:
    """A stored task as a ``TaskQueueQueryTasksResponse.Task``."""
    entry.task_name = task.name.encode()
    entry.eta_usec = task.eta_us
    entry.creation_time_usec = task.created_us
    entry.retry_count = task.retry_count
    entry.execution_count = task.execution_count
    entry.body_size = len(task.payload)
    entry.body = task.payload
    if not task.is_pull:
        entry.url = task.url.encode()
        entry.method = _METHOD_NUMBERS[task.method.value]
        for key, value in task.shown_headers:
            entry.header.add(key=key.encode(), value=value.encode())
    _copy_set(task, entry, _TASK_OPTIONAL)
    if task.retry_options is not None:
        _fill_retry(entry.retry_parameters, task.retry_options)


#: (attribute of a stored task, field of a QueryTasks task) set only when the task has a value.
_TASK_OPTIONAL = (
    ("first_try_us", "first_try_usec"),
    ("tag", "tag"),
    ("dispatch_deadline_us", "dispatch_deadline_usec"),
)
#: (attribute of models.RetryParameters, field of TaskQueueRetryParameters).
_RETRY_FIELDS = (
    ("task_retry_limit", "retry_limit"),
    ("task_age_limit_s", "age_limit_sec"),
    ("min_backoff_s", "min_backoff_sec"),
    ("max_backoff_s", "max_backoff_sec"),
    ("max_doublings", "max_doublings"),
)


def _copy_set(source: object, entry: Any, fields: tuple[tuple[str, str], ...]) -> None:
    """Copy the attributes of ``source`` that are not None into the proto2 message ``entry``
    (a field left unset reads as absent, which None means)."""
    for attribute, name in fields:
        value = getattr(source, attribute)
        if value is not None:
            setattr(entry, name, value)


def _fill_retry(entry: pb.TaskQueueRetryParameters, params: models.RetryParameters) -> None:
    _copy_set(params, entry, _RETRY_FIELDS)


async def query_tasks(call: Call, request: pb.TaskQueueQueryTasksRequest) -> pb_message.Message:
    cfg = call.queue(request.queue_name)
    listed = call.service.tasks
    limit = max(1, min(request.max_rows, service.MAX_PAGE_SIZE))
    start = text(request.start_task_name, "start_task_name")
    found: list[models.Task] = []
    if start and (first := await listed.find(cfg.name, start)) is not None:
        found.append(first)
    page = await listed.page(cfg.name, limit=limit - len(found), after=start or None)
    found += page.items
    response = pb.TaskQueueQueryTasksResponse()
    for task in found[:limit]:
        _fill_task(response.task.add(), task)
    return response


async def fetch_task(call: Call, request: pb.TaskQueueFetchTaskRequest) -> pb_message.Message:
    cfg = call.queue(request.queue_name)
    name = text(request.task_name, "task_name", errors.InvalidTaskNameError)
    task = await call.service.tasks.get(cfg.name, name)
    response = pb.TaskQueueFetchTaskResponse()
    _fill_task(response.task.task.add(), task)
    return response


# ------------------------------------------------------------------ leases


async def query_and_own_tasks(
    call: Call, request: pb.TaskQueueQueryAndOwnTasksRequest
) -> pb_message.Message:
    cfg = call.queue(request.queue_name)
    tag = request.tag if request.HasField("tag") else None
    leased = await call.service.pull.lease(
        cfg,
        lease_us=tasks.check_lease_seconds(request.lease_seconds),
        max_tasks=tasks.check_max_tasks(request.max_tasks),
        group_by_tag=request.group_by_tag,
        tag=tasks.check_lease_tag(tag, group_by_tag=request.group_by_tag),
    )
    response = pb.TaskQueueQueryAndOwnTasksResponse()
    for task in leased:
        entry = response.task.add(
            task_name=task.name.encode(),
            eta_usec=task.eta_us,
            retry_count=task.retry_count,
            body=task.payload,
        )
        if task.tag is not None:
            entry.tag = task.tag
    return response


async def modify_task_lease(
    call: Call, request: pb.TaskQueueModifyTaskLeaseRequest
) -> pb_message.Message:
    cfg = call.queue(request.queue_name)
    task = await call.service.pull.renew(
        cfg,
        text(request.task_name, "task_name", errors.InvalidTaskNameError),
        current_eta_us=request.eta_usec,
        lease_us=tasks.check_lease_seconds(request.lease_seconds),
    )
    return pb.TaskQueueModifyTaskLeaseResponse(updated_eta_usec=task.eta_us)


# ------------------------------------------------------------------ queues


async def fetch_queue_stats(
    call: Call, request: pb.TaskQueueFetchQueueStatsRequest
) -> pb_message.Message:
    # each distinct queue once, however often it is named
    queues = {name: call.queue(name) for name in dict.fromkeys(request.queue_name)}
    found = dict(zip(queues, await call.service.queues.stats_of(queues.values()), strict=True))
    response = pb.TaskQueueFetchQueueStatsResponse()
    for name in request.queue_name:
        cfg, stats = queues[name], found[name]
        last_hour = stats.executed_last_minute  # pushd keeps a minute of push history
        if cfg.mode is models.QueueMode.PULL:
            last_hour = call.service.pull.leased(cfg.name).last_hour
        entry = response.queuestats.add(
            num_tasks=min(stats.tasks, _INT32_MAX),
            oldest_eta_usec=-1 if stats.oldest_eta_us is None else stats.oldest_eta_us,
        )
        entry.scanner_info.executed_last_minute = stats.executed_last_minute
        entry.scanner_info.executed_last_hour = last_hour
        entry.scanner_info.sampling_duration_seconds = _SAMPLING_S
        entry.scanner_info.requests_in_flight = stats.in_flight
        entry.scanner_info.enforced_rate = stats.enforced_rate
    return response


async def fetch_queues(call: Call, request: pb.TaskQueueFetchQueuesRequest) -> pb_message.Message:
    paused = await call.service.queues.paused()
    response = pb.TaskQueueFetchQueuesResponse()
    configured = call.service.queues.current().queues
    visible = [cfg for _, cfg in sorted(configured.items()) if call.may_see(cfg)]
    for cfg in visible[: max(0, request.max_rows)]:
        entry = response.queue.add(
            queue_name=cfg.name.encode(),
            bucket_refill_per_second=float(cfg.rate),
            bucket_capacity=float(cfg.bucket_size),
            paused=cfg.paused or cfg.name in paused,
        )
        if cfg.mode is models.QueueMode.PULL:
            entry.mode = pb.TaskQueueMode.PULL
        if cfg.rate_text:
            entry.user_specified_rate = cfg.rate_text
        if cfg.max_concurrent_requests is not None:
            entry.max_concurrent_requests = cfg.max_concurrent_requests
        if not cfg.retry.is_empty():
            _fill_retry(entry.retry_parameters, cfg.retry)
        for acl in cfg.acl:
            if acl.user_email:
                entry.acl.user_email.append(acl.user_email.encode())
            if acl.writer_email:
                entry.acl.writer_email.append(acl.writer_email.encode())
    return response


async def purge_queue(call: Call, request: pb.TaskQueuePurgeQueueRequest) -> pb_message.Message:
    cfg = call.queue(request.queue_name)
    await call.service.queues.purge(cfg.name)
    return pb.TaskQueuePurgeQueueResponse()


async def pause_queue(call: Call, request: pb.TaskQueuePauseQueueRequest) -> pb_message.Message:
    cfg = call.queue(request.queue_name)
    queues = call.service.queues
    await (queues.pause(cfg.name) if request.pause else queues.resume(cfg.name))
    return pb.TaskQueuePauseQueueResponse()


async def refuse_queue_change(call: Call, request: None) -> pb_message.Message:
    raise errors.PermissionDeniedError(
        "pushd takes its queues from queue.yaml: edit the file and reload it (SIGHUP) instead"
    )


_A = auth.Action
METHODS: dict[str, Method] = {
    "BulkAdd": Method(pb.TaskQueueBulkAddRequest, _A.ADD_TASKS, bulk_add),
    "Add": Method(pb.TaskQueueAddRequest, _A.ADD_TASKS, add),
    "Delete": Method(pb.TaskQueueDeleteRequest, _A.DELETE_TASKS, delete),
    "QueryAndOwnTasks": Method(
        pb.TaskQueueQueryAndOwnTasksRequest, _A.LEASE_TASKS, query_and_own_tasks
    ),
    "ModifyTaskLease": Method(
        pb.TaskQueueModifyTaskLeaseRequest, _A.LEASE_TASKS, modify_task_lease
    ),
    "FetchQueueStats": Method(
        pb.TaskQueueFetchQueueStatsRequest, _A.READ_QUEUES, fetch_queue_stats
    ),
    "FetchQueues": Method(pb.TaskQueueFetchQueuesRequest, _A.READ_QUEUES, fetch_queues),
    "QueryTasks": Method(pb.TaskQueueQueryTasksRequest, _A.READ_TASKS, query_tasks),
    "FetchTask": Method(pb.TaskQueueFetchTaskRequest, _A.READ_TASKS, fetch_task),
    "PurgeQueue": Method(pb.TaskQueuePurgeQueueRequest, _A.ADMIN, purge_queue),
    "PauseQueue": Method(pb.TaskQueuePauseQueueRequest, _A.ADMIN, pause_queue),
    "ForceRun": Method(pb.TaskQueueForceRunRequest, _A.ADMIN, force_run),
    "UpdateQueue": Method(None, _A.ADMIN, refuse_queue_change),
    "DeleteQueue": Method(None, _A.ADMIN, refuse_queue_change),
    "DeleteGroup": Method(None, _A.ADMIN, refuse_queue_change),
    "UpdateStorageLimit": Method(None, _A.ADMIN, refuse_queue_change),
}
