"""pushd's queues and tasks as Cloud Tasks v2beta2 messages, and v2beta2 tasks as pushd requests.

v2beta2 is the version with pull queues (CLOUDTASKS.md 2), and its shapes differ from v2's where
:mod:`pushd.cloudtasks.convert` would fill the wrong fields:

* Queue: a oneof ``target_type``, ``pull_target`` (an empty message) for a pull queue and
  ``app_engine_http_target`` (with the routing override) for a push queue; ``rate_limits`` is
  ``{max_tasks_dispatched_per_second, max_burst_size, max_concurrent_tasks}``, the last -1 for a
  pull queue (output only, as Google answers it); ``retry_config`` has ``max_attempts`` or
  ``unlimited_attempts``. A push queue's attempts are ``task_retry_limit + 1`` (as in v2); a pull
  queue's are its leases, which ``task_retry_limit`` counts directly (SPEC 6).
* Task: ``pull_message {payload, tag}`` for a pull task (payload in the FULL view only, a tag
  that is not UTF-8 shown empty, as Google documents), ``app_engine_http_request`` with
  ``relative_url`` and ``payload`` for a push task; ``status`` holds the attempt counts (a pull
  task's dispatches are its leases). A leased task's ``schedule_time`` is its lease's end: the
  token AcknowledgeTask, RenewLease and CancelLease check.
"""

from __future__ import annotations

from typing import Any

from pushd import clock, models, tasks
from pushd.cloudtasks import convert, names, rpc
from pushd.queue_yaml import config

VERSION = "v2beta2"
#: The longest tag LeaseTasks' ``filter`` and PullMessage take ("less than 500 characters").
MAX_TAG_CHARS = 499
_STATE_RUNNING, _STATE_PAUSED, _STATE_DISABLED = 1, 2, 3
_VIEW_BASIC, _VIEW_FULL = 1, 2


def new(short: str) -> Any:
    """A fresh ``google.cloud.tasks.v2beta2.<short>`` message."""
    return convert.new(VERSION, short)


# ------------------------------------------------------------------ queues


def queue_message(
    name: names.QueueName, cfg: config.QueueConfig, *, paused: bool, removed: bool
) -> Any:
    """The v2beta2 Queue ``cfg`` is; DISABLED when removed from queue.yaml."""
    queue = new("Queue")
    queue.name = str(name)
    pull = cfg.mode is models.QueueMode.PULL
    limits = queue.rate_limits
    if pull:
        queue.pull_target.SetInParent()
        limits.max_concurrent_tasks = -1
    else:
        queue.app_engine_http_target.SetInParent()
        if cfg.target:
            convert._routing(queue.app_engine_http_target.app_engine_routing_override, cfg.target)
        limits.max_tasks_dispatched_per_second = float(cfg.rate)
        limits.max_burst_size = cfg.bucket_size
        limits.max_concurrent_tasks = cfg.max_concurrent_requests or 0
    _retry_config(queue.retry_config, cfg.retry, pull=pull)
    queue.state = _STATE_DISABLED if removed else _STATE_PAUSED if paused else _STATE_RUNNING
    return queue


def _retry_config(out: Any, retry: models.RetryParameters, *, pull: bool) -> None:
    limit = retry.task_retry_limit
    if limit is None:
        out.unlimited_attempts = True
    else:
        out.max_attempts = limit if pull else limit + 1
    if retry.task_age_limit_s is not None:
        convert.set_duration(out.max_retry_duration, retry.task_age_limit_s)
    if pull:
        return  # a pull queue has no backoff: its workers lease when they like
    low = config.DEFAULT_MIN_BACKOFF_S if retry.min_backoff_s is None else retry.min_backoff_s
    high = config.DEFAULT_MAX_BACKOFF_S if retry.max_backoff_s is None else retry.max_backoff_s
    convert.set_duration(out.min_backoff, low)
    convert.set_duration(out.max_backoff, high)
    doublings = retry.max_doublings
    out.max_doublings = config.DEFAULT_MAX_DOUBLINGS if doublings is None else doublings


# ------------------------------------------------------------------ tasks


def task_message(queue: names.QueueName, task: models.Task, *, view: int) -> Any:
    """The v2beta2 Task ``task`` is; payloads only in the FULL view."""
    out = new("Task")
    out.name = queue.task(task.name)
    full = view == _VIEW_FULL
    if task.is_pull:
        message = out.pull_message
        message.SetInParent()
        if full:
            message.payload = task.payload
        message.tag = shown_tag(task.tag)
    else:
        _app_engine_request(out.app_engine_http_request, task, full=full)
    convert.set_timestamp(out.schedule_time, task.eta_us)
    created_s = task.created_us // clock.US_PER_SECOND
    convert.set_timestamp(out.create_time, created_s * clock.US_PER_SECOND)
    _status(out.status, task)
    out.view = _VIEW_FULL if full else _VIEW_BASIC
    return out


def shown_tag(tag: bytes | None) -> str:
    """A tag as Cloud Tasks shows it: empty unless it is UTF-8."""
    if not tag:
        return ""
    try:
        return tag.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def _app_engine_request(out: Any, task: models.Task, *, full: bool) -> None:
    out.http_method = convert._http_method_number(VERSION, task.method.value)
    out.relative_url = task.url
    for key, value in convert._header_map(task.headers).items():
        out.headers[key] = value
    if full:
        out.payload = task.payload
    if task.target:
        convert._routing(out.app_engine_routing, task.target)


def _status(out: Any, task: models.Task) -> None:
    """TaskStatus: the dispatches (a pull task's leases) and responses so far, the first
    dispatch's time and the last failed attempt."""
    if not (task.retry_count or task.execution_count or task.first_try_us):
        return
    out.attempt_dispatch_count = task.retry_count
    out.attempt_response_count = task.execution_count
    if task.first_try_us is not None:
        convert.set_timestamp(out.first_attempt_status.dispatch_time, task.first_try_us)
    if task.last_attempt is not None:
        convert._last_attempt(out.last_attempt_status, task.last_attempt)


def task_request(
    task: Any, queue: names.QueueName, cfg: config.QueueConfig, *, now_us: int
) -> tasks.TaskRequest:
    """The pushd request a v2beta2 CreateTask ``task`` makes on ``cfg``: ``pull_message`` for a
    pull queue, ``app_engine_http_request`` for a push queue (pushd's own checks follow)."""
    name = names.task_in(queue, task.name) if task.name else None
    kind = task.WhichOneof("payload_type")
    pull = cfg.mode is models.QueueMode.PULL
    wanted = "pull_message" if pull else "app_engine_http_request"
    if kind is None or (kind != wanted and kind != "http_request"):
        what = "a pull queue" if pull else "a push queue"
        raise rpc.invalid(f"Task.{wanted} is required: queue {cfg.name!r} is {what}")
    if kind == "http_request":
        raise rpc.RpcError(
            rpc.Code.UNIMPLEMENTED,
            "Task.http_request is not supported by pushd's v2beta2 API; use "
            "Task.app_engine_http_request (push queues) or Task.pull_message (pull queues)",
        )
    eta_us = convert._schedule_time_us(task, now_us)
    if pull:
        return _pull_request(task.pull_message, name, eta_us)
    return _push_request(task.app_engine_http_request, name, eta_us)


def _pull_request(message: Any, name: str | None, eta_us: int | None) -> tasks.TaskRequest:
    if len(message.tag) > MAX_TAG_CHARS:
        raise rpc.invalid(
            f"Task.pull_message.tag must be less than 500 characters; got {len(message.tag)}"
        )
    return tasks.TaskRequest(
        name=name,
        method="PULL",
        payload=message.payload,
        tag=message.tag.encode("utf-8") if message.tag else None,
        eta_us=eta_us,
    )


def _push_request(request: Any, name: str | None, eta_us: int | None) -> tasks.TaskRequest:
    return tasks.TaskRequest(
        name=name,
        method=convert.app_engine_method(VERSION, request.http_method),
        url=convert.relative_url("relative_url", request.relative_url),
        headers=list(request.headers.items()),
        payload=request.payload if request.payload else None,
        eta_us=eta_us,
        target=convert.target_of(request.app_engine_routing),
    )
