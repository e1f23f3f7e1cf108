"""TaskQueue REST API v1beta2 for pull queues (SPEC 7), as Google's discovery document defines it.

All eight methods live under ``/taskqueue/v1beta2/projects/{project}/taskqueues/{taskqueue}``:
``taskqueues.get`` and ``tasks.insert``, ``get``, ``list``, ``delete``, ``lease``, ``update`` (POST)
and ``patch`` (PATCH). They share the pull-queue rules of :mod:`pushd.api.pull` and the tasks of
the native API: a task added either way is seen, leased and deleted either way.

Choices where the sources leave room (SPEC 7 and the decisions of SPEC 10):

* ``{project}`` is any app id, with or without a partition prefix (``s~myapp``): pushd serves one
  app, so it is not checked. Only pull queues answer; a push queue is 400, an unknown queue 404.
* Resources: int64 fields are JSON strings, int32 fields numbers. ``enqueueTimestamp`` and
  ``leaseTimestamp`` are microseconds, ``stats.oldestTask`` seconds (SPEC 7.5); a task never
  leased reports its ETA, the first time it may be leased (Q17). ``queueName`` is the short queue
  name everywhere (App Engine answered the long ``projects/{p}/taskqueues/{q}`` in leases only);
  both forms are accepted on input. Fields without a value (``tag``, ``maxLeases`` of a queue
  without ``task_retry_limit``, ``stats.oldestTask`` of an empty queue, ``items`` of an empty
  lease or list, Q12) are left out rather than sent as 0 or null. ``acl`` is always there:
  ``consumerEmails`` are queue.yaml's ``user_email``, ``producerEmails`` its ``writer_email``,
  ``adminEmails`` is empty (queue.yaml names no admins).
* Kinds follow the discovery document (Q8): lease answers ``taskqueue#tasks``, list
  ``taskqueues#tasks``. List shows at most 100 tasks, in name order, without payloads.
* ``payloadBase64`` goes out URL-safe with padding; standard and URL-safe alphabets, with or
  without padding, are accepted (Q11). A tag that is not UTF-8 (possible through the native API)
  goes out with U+FFFD for its bad bytes.
* insert: ``queueName`` and ``payloadBase64`` are required; ``id`` is optional (a random name
  otherwise); ``leaseTimestamp`` is the first time the task may be leased (absent or ``0``: now);
  ``enqueueTimestamp``, ``retry_count`` and ``kind`` are ignored. A field the Task resource does
  not have is refused, naming it.
* lease: ``numTasks`` (1 to 1000) and ``leaseSecs`` (0 to 604800) are required whole numbers;
  ``groupByTag`` is ``true``/``false`` (or ``1``/``0``); ``tag`` needs ``groupByTag`` (an empty
  tag counts as none: the oldest task's tag decides). Each parameter may come in the query or in a
  form-encoded body, the query winning. Tasks over the queue's ``maxLeases`` are deleted instead
  of leased (SPEC 6).
* update and patch renew a lease: new expiry = now + ``newLeaseSeconds`` (0 to 604800; 0 releases
  it). update needs the body's ``leaseTimestamp``; patch needs the body's ``queueName`` (equal to
  the path's) and checks ``leaseTimestamp`` only when given. The lease must be the task's current
  one and not have expired, else 400. The task is the one the path names: a body ``id`` that
  differs is refused (400) on both methods, where App Engine's update is reported to have used
  the body's id and ignored the path. Only the lease changes; other body fields are ignored.
* delete answers 204 without a body (Q12). get, delete, update and patch of an unknown task,
  including a deleted one, answer 404 (Q12).
* Common parameters: ``alt`` may only be ``json``; ``fields``, ``prettyPrint``, ``key``,
  ``oauth_token``, ``quotaUser`` and ``userIp`` are accepted and ignored, so answers are always
  whole and compact (a superset of any partial response).

Errors use Google's envelope (SPEC 7.6), also for 401/403 from the auth middleware, unknown routes
and 500s: ``{"error": {"errors": [{"domain": "global", "reason", "message"}], "code", "message"}}``.
Statuses are those of the native API except where SPEC 7.6 says otherwise: a duplicate or
tombstoned task id is **400** (reason ``alreadyExists``; the native API says 409), as AppScale
answers and hawkeye's tests expect, and a task over the size limit is 400 ("limits exceeded"). So:
bad or missing parameters, malformed bodies, limits, push queues, expired or mismatched leases,
paused queues: 400 ``badRequest``; 401 ``authError``; 403 ``forbidden``; unknown queue, task or
route: 404 ``notFound``; 405 ``methodNotAllowed``; body over 32 MiB: 413 ``requestTooLarge``;
``total_storage_limit`` reached: 507 ``quotaExceeded``; internal error: 500 ``internalError``;
transient store error: 503 ``backendError``.
"""

from __future__ import annotations

import base64
import datetime
import re
import urllib.parse
from collections.abc import Mapping
from typing import NotRequired, TypedDict

from aiohttp import web

from pushd import clock, config, errors, models, tasks, wire
from pushd.api import auth, native, pull
from pushd.api import errors as api_errors

PREFIX = "/taskqueue/v1beta2/"
TASK_KIND = "taskqueues#task"
LEASE_KIND = "taskqueue#tasks"  # sic: the discovery document's ``Tasks`` schema
LIST_KIND = "taskqueues#tasks"
QUEUE_KIND = "taskqueues#taskqueue"
#: Most tasks ``tasks.list`` shows.
LIST_LIMIT = 100
#: Fields of the Task resource.
TASK_FIELDS = (
    "kind",
    "id",
    "queueName",
    "payloadBase64",
    "enqueueTimestamp",
    "leaseTimestamp",
    "retry_count",
    "tag",
)
_FORM = "application/x-www-form-urlencoded"
_INT32 = re.compile(r"[+-]?[0-9]{1,10}")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64 = re.compile(r"-?[0-9]{1,19}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})
_LONG_QUEUE_NAME = re.compile(r"projects/[^/]+/taskqueues/(.+)")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


# ------------------------------------------------------------------ JSON shapes


class RestTask(TypedDict):
    """The Task resource."""

    kind: str
    id: str
    queueName: str
    payloadBase64: NotRequired[str]  # left out of tasks.list
    enqueueTimestamp: str  # int64 µs
    leaseTimestamp: str  # int64 µs: the task's ETA (lease expiry, or first lease if never leased)
    retry_count: int  # leases so far
    tag: NotRequired[str]


class RestTaskIn(TypedDict):
    """A Task resource in a request: insert needs queueName and payloadBase64, update
    leaseTimestamp, patch queueName. int64 fields may be JSON strings or numbers."""

    kind: NotRequired[str]
    id: NotRequired[str]
    queueName: NotRequired[str]
    payloadBase64: NotRequired[str]
    enqueueTimestamp: NotRequired[str | int]
    leaseTimestamp: NotRequired[str | int]
    retry_count: NotRequired[int]
    tag: NotRequired[str]


class RestTasks(TypedDict):
    """The ``Tasks`` (lease) and ``Tasks2`` (list) resources; no ``items`` when empty."""

    kind: str
    items: NotRequired[list[RestTask]]


class RestAcl(TypedDict):
    adminEmails: list[str]
    consumerEmails: list[str]
    producerEmails: list[str]


class RestQueueStats(TypedDict):
    totalTasks: int
    oldestTask: NotRequired[str]  # int64 seconds; left out when the queue is empty
    leasedLastMinute: str  # int64
    leasedLastHour: str  # int64


class RestTaskQueue(TypedDict):
    """The TaskQueue resource; ``stats`` only with ``getStats=true``."""

    kind: str
    id: str
    maxLeases: NotRequired[int]
    acl: RestAcl
    stats: NotRequired[RestQueueStats]


class GoogleErrorItem(TypedDict):
    domain: str
    reason: str
    message: str


class GoogleErrorBody(TypedDict):
    errors: list[GoogleErrorItem]
    code: int
    message: str


class GoogleError(TypedDict):
    """Google's JSON error envelope."""

    error: GoogleErrorBody


# ------------------------------------------------------------------ resources out


def b64encode(data: bytes) -> str:
    """URL-safe base64 with padding, as ``payloadBase64`` goes out (Q11)."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def encode_task(task: models.Task, *, payload: bool = True) -> RestTask:
    out: RestTask = {
        "kind": TASK_KIND,
        "id": task.name,
        "queueName": task.queue,
        "enqueueTimestamp": str(task.created_us),
        "leaseTimestamp": str(task.eta_us),
        "retry_count": task.retry_count,
    }
    if payload:
        out["payloadBase64"] = b64encode(task.payload)
    if task.tag is not None:
        out["tag"] = task.tag.decode("utf-8", "replace")
    return out


def encode_tasks(kind: str, found: list[models.Task], *, payload: bool) -> RestTasks:
    out: RestTasks = {"kind": kind}
    if found:
        out["items"] = [encode_task(task, payload=payload) for task in found]
    return out


def encode_queue(cfg: config.QueueConfig, stats: RestQueueStats | None = None) -> RestTaskQueue:
    out: RestTaskQueue = {
        "kind": QUEUE_KIND,
        "id": cfg.name,
        "acl": {
            "adminEmails": [],
            "consumerEmails": [e.user_email for e in cfg.acl if e.user_email],
            "producerEmails": [e.writer_email for e in cfg.acl if e.writer_email],
        },
    }
    if cfg.retry.task_retry_limit is not None:
        out["maxLeases"] = cfg.retry.task_retry_limit
    if stats is not None:
        out["stats"] = stats
    return out


# ------------------------------------------------------------------ errors out

#: HTTP statuses for pushd errors where SPEC 7.6 differs from the native API.
_STATUS_BY_ERROR: tuple[tuple[type[errors.Error], int], ...] = (
    (errors.TaskAlreadyExistsError, 400),
    (errors.TombstonedTaskError, 400),
    (errors.TaskTooLargeError, 400),
)
_REASON_BY_ERROR: tuple[tuple[type[errors.Error], str], ...] = (
    (errors.TaskAlreadyExistsError, "alreadyExists"),
    (errors.TombstonedTaskError, "alreadyExists"),
    (errors.StorageLimitExceededError, "quotaExceeded"),
)
_REASON_BY_STATUS = {
    400: "badRequest",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    405: "methodNotAllowed",
    413: "requestTooLarge",
    500: "internalError",
    503: "backendError",
}


def _status_and_reason(failure: api_errors.Failure) -> tuple[int, str]:
    status = failure.http_status
    error = failure.error
    if error is not None:
        status = next((s for cls, s in _STATUS_BY_ERROR if isinstance(error, cls)), status)
        reason = next((r for cls, r in _REASON_BY_ERROR if isinstance(error, cls)), None)
        if reason is not None:
            return status, reason
    default = "badRequest" if status < 500 else "backendError"
    return status, _REASON_BY_STATUS.get(status, default)


def render_error(failure: api_errors.Failure) -> web.Response:
    """Google's JSON error envelope for any failure under :data:`PREFIX` (SPEC 7.6)."""
    status, reason = _status_and_reason(failure)
    body: GoogleError = {
        "error": {
            "errors": [{"domain": "global", "reason": reason, "message": failure.message}],
            "code": status,
            "message": failure.message,
        }
    }
    response = api_errors.json_response(body, status=status)
    response.headers.update(failure.headers)
    return response


# ------------------------------------------------------------------ requests in


def _queue(request: web.Request, queues: config.QueuesConfig | None = None) -> config.QueueConfig:
    """The pull queue the path names, once the common query parameters are checked."""
    alt = request.query.get("alt", "json")
    if alt != "json":
        raise errors.Error(f"alt={alt!r} is not supported; the only value is 'json'")
    if queues is None:
        queues = request.app[native.QUEUES]()
    cfg = queues.queue(request.match_info["queue"])
    pull.require_pull(cfg, "use the TaskQueue REST API")
    return cfg


def _task_name(request: web.Request) -> str:
    return tasks.check_task_name(request.match_info["task"])


def _int32(
    params: Mapping[str, str], name: str, error: type[errors.Error], low: int, high: int
) -> int:
    """The required whole-number parameter ``name``, within ``[low, high]``."""
    raw = params.get(name)
    if raw is None:
        raise error(f"required parameter {name} is missing")
    if not _INT32.fullmatch(raw) or not _INT32_MIN <= int(raw) <= _INT32_MAX:
        raise error(f"{name} must be a 32-bit whole number; got {raw[:40]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise error(f"{name} must be between {low} and {high}; got {value}")
    return value


def _bool(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise errors.Error(f"{name} must be true or false; got {raw[:40]!r}")


async def _lease_params(request: web.Request) -> dict[str, str]:
    """Query parameters, completed by those of a form-encoded body (hawkeye sends them so)."""
    params: dict[str, str] = {}
    if request.content_type == _FORM:
        try:
            text = (await request.read()).decode("utf-8")
        except UnicodeDecodeError:
            raise errors.Error("the form-encoded body is not UTF-8") from None
        for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
            params.setdefault(key, value)
    for key in request.query:
        params[key] = request.query.getone(key)
    return params


def _body(raw: bytes) -> dict[str, object]:
    """A Task resource; null fields count as absent."""
    body = wire.loads(raw)
    if not isinstance(body, dict):
        raise errors.Error("the request body must be a Task JSON object")
    for key in body:
        if key not in TASK_FIELDS:
            raise errors.Error(
                f"the Task resource has no field {key!r}; its fields: {', '.join(TASK_FIELDS)}"
            )
    return {key: value for key, value in body.items() if value is not None}


def _text(body: Mapping[str, object], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise errors.Error(f"{key} must be a string; got {_kind(value)}")
    return value


def _int64(body: Mapping[str, object], key: str, error: type[errors.Error]) -> int | None:
    """An int64 field: a JSON string of digits (the discovery convention) or a JSON integer."""
    value = body.get(key)
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INT64.fullmatch(value):
        number = int(value)
    if number is None or not _INT64_MIN <= number <= _INT64_MAX:
        shown = value[:40] if isinstance(value, str) else value
        raise error(f'{key} must be an int64 such as "1700000000000000"; got {shown!r}')
    return number


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", bool: "a boolean", str: "a string"}
    return names.get(type(value), "a number")


def _check_queue_name(
    body: Mapping[str, object], cfg: config.QueueConfig, *, required: bool
) -> None:
    given = _text(body, "queueName")
    if given is None:
        if required:
            raise errors.Error(f"queueName is required; it must be {cfg.name!r}")
        return
    long_form = _LONG_QUEUE_NAME.fullmatch(given)
    if (long_form.group(1) if long_form else given) != cfg.name:
        raise errors.Error(
            f"queueName {given[:120]!r} does not match the queue of the path, {cfg.name!r}"
        )


def _check_id(body: Mapping[str, object], name: str) -> None:
    given = _text(body, "id")
    if given is not None and given != name:
        raise errors.Error(f"id {given[:120]!r} does not match the task of the path, {name!r}")


def _eta(lease_us: int) -> datetime.datetime:
    try:
        return _EPOCH + datetime.timedelta(microseconds=lease_us)
    except OverflowError:
        raise errors.InvalidEtaError(f"leaseTimestamp {lease_us} µs is out of range") from None


def _decode_insert(body: Mapping[str, object], cfg: config.QueueConfig) -> tasks.TaskRequest:
    _check_queue_name(body, cfg, required=True)
    encoded = _text(body, "payloadBase64")
    if encoded is None:
        raise errors.Error("payloadBase64 is required")
    lease_us = _int64(body, "leaseTimestamp", errors.InvalidEtaError)
    return tasks.TaskRequest(
        name=_text(body, "id") or None,
        method=models.Method.PULL.value,
        payload=wire.b64decode(encoded, "payloadBase64"),
        tag=_text(body, "tag"),
        eta=None if not lease_us else _eta(lease_us),
    )


# ------------------------------------------------------------------ handlers


async def get_taskqueue(request: web.Request) -> web.Response:
    cfg = _queue(request)
    stats = None
    if _bool(request.query, "getStats"):
        counts = await request.app[native.STORE].counts(cfg.name)
        now_us = request.app[native.CLOCK].now_us()
        meter = request.app[native.LEASES]
        stats = RestQueueStats(
            totalTasks=counts.tasks,
            leasedLastMinute=str(meter.last_minute(cfg.name, now_us)),
            leasedLastHour=str(meter.last_hour(cfg.name, now_us)),
        )
        if counts.oldest_eta_us is not None:
            stats["oldestTask"] = str(counts.oldest_eta_us // clock.US_PER_SECOND)
    return api_errors.json_response(encode_queue(cfg, stats))


async def insert_task(request: web.Request) -> web.Response:
    queues = request.app[native.QUEUES]()
    cfg = _queue(request, queues)
    body = _body(await request.read())
    now_us = request.app[native.CLOCK].now_us()
    [task] = tasks.validate_batch(
        [_decode_insert(body, cfg)], queue=cfg.name, mode=cfg.mode, now_us=now_us
    )
    [result] = await native.store_batch(request.app, [task], now_us=now_us)
    if result.error is errors.TaskAlreadyExistsError:
        raise errors.TaskAlreadyExistsError(f"queue {cfg.name!r} already has a task {task.name!r}")
    if result.error is errors.TombstonedTaskError:
        raise errors.TombstonedTaskError(
            f"task name {task.name!r} was used recently in queue {cfg.name!r} and cannot be "
            "reused yet"
        )
    if result.error is not None:
        raise errors.InternalError(f"the store refused task {task.name!r}")
    return api_errors.json_response(encode_task(result.task))


async def list_tasks(request: web.Request) -> web.Response:
    cfg = _queue(request)
    found = await request.app[native.STORE].list_tasks(cfg.name, limit=LIST_LIMIT)
    return api_errors.json_response(encode_tasks(LIST_KIND, found, payload=False))


async def get_task(request: web.Request) -> web.Response:
    cfg, name = _queue(request), _task_name(request)
    task = await request.app[native.STORE].get(cfg.name, name)
    if task is None:
        raise errors.UnknownTaskError(f"queue {cfg.name!r} has no task {name!r}")
    return api_errors.json_response(encode_task(task))


async def delete_task(request: web.Request) -> web.Response:
    cfg, name = _queue(request), _task_name(request)
    now_us = request.app[native.CLOCK].now_us()
    [deleted] = await native.delete_names(request.app, cfg.name, [name], now_us=now_us)
    if not deleted:
        raise errors.UnknownTaskError(f"queue {cfg.name!r} has no task {name!r}")
    return web.Response(status=204)


async def lease_tasks(request: web.Request) -> web.Response:
    cfg = _queue(request)
    params = await _lease_params(request)
    lease_secs = _int32(
        params, "leaseSecs", errors.InvalidLeaseTimeError, 0, models.MAX_LEASE_SECONDS
    )
    num_tasks = _int32(
        params, "numTasks", errors.InvalidMaxTasksError, 1, models.MAX_TASKS_PER_LEASE
    )
    group_by_tag = _bool(params, "groupByTag")
    tag = params.get("tag") or None
    if tag is not None and not group_by_tag:
        raise errors.Error("tag can only be given with groupByTag=true")
    lease = wire.LeaseRequest(
        lease_us=lease_secs * clock.US_PER_SECOND,
        max_tasks=num_tasks,
        group_by_tag=group_by_tag,
        tag=tasks.check_lease_tag(tag, group_by_tag=group_by_tag),
    )
    now_us = request.app[native.CLOCK].now_us()
    app = request.app
    leased = await pull.lease(app[native.STORE], app[native.LEASES], cfg, lease, now_us=now_us)
    return api_errors.json_response(encode_tasks(LEASE_KIND, leased, payload=True))


async def _renew(request: web.Request, *, patch: bool) -> web.Response:
    """update and patch: renew the lease on the task the path names (SPEC 7.3)."""
    cfg, name = _queue(request), _task_name(request)
    lease_secs = _int32(
        request.query, "newLeaseSeconds", errors.InvalidLeaseTimeError, 0, models.MAX_LEASE_SECONDS
    )
    body = _body(await request.read())
    _check_queue_name(body, cfg, required=patch)
    _check_id(body, name)
    store = request.app[native.STORE]
    current_eta_us = _int64(body, "leaseTimestamp", errors.Error)
    if current_eta_us is None:
        if not patch:
            raise errors.Error(
                "leaseTimestamp is required: the lease expiry the lease answered, in µs"
            )
        task = await store.get(cfg.name, name)
        if task is None:
            raise errors.UnknownTaskError(f"queue {cfg.name!r} has no task {name!r}")
        current_eta_us = task.eta_us
    try:
        renewed = await pull.modify_lease(
            store,
            cfg,
            name,
            current_eta_us=current_eta_us,
            lease_us=lease_secs * clock.US_PER_SECOND,
            now_us=request.app[native.CLOCK].now_us(),
        )
    except errors.TombstonedTaskError:
        raise errors.UnknownTaskError(
            f"queue {cfg.name!r} has no task {name!r}; it was deleted"
        ) from None
    return api_errors.json_response(encode_task(renewed))


async def update_task(request: web.Request) -> web.Response:
    return await _renew(request, patch=False)


async def patch_task(request: web.Request) -> web.Response:
    return await _renew(request, patch=True)


# ------------------------------------------------------------------ routes

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


def add_routes(app: web.Application) -> None:
    """Serve the REST API and answer its errors in Google's envelope."""
    auth.add_routes(app, ROUTES)
    api_errors.add_renderer(app, PREFIX, render_error)
