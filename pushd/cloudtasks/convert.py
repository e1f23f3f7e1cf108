"""pushd's queues and tasks as Cloud Tasks messages, and Cloud Tasks tasks as pushd requests.

The messages are the private pool's classes (:mod:`pushd.cloudtasks.descriptors`) of the
version asked (``v2`` or ``v2beta3``; their Task fields share names, their Queues differ where
the App Engine routing sits). Mappings (CLOUDTASKS.md 1.2 and 1.6):

* Queue: ``rate`` -> ``rate_limits.max_dispatches_per_second``, ``bucket_size`` ->
  ``max_burst_size``, ``max_concurrent_requests`` -> ``max_concurrent_dispatches`` (0 when
  queue.yaml sets no limit); ``retry_parameters`` -> ``retry_config`` with App Engine's defaults
  filled in; ``task_retry_limit`` counts retries and ``max_attempts`` attempts, so
  ``max_attempts = task_retry_limit + 1`` and no limit is -1; ``target`` ->
  ``app_engine_routing_override``. ``state`` is PAUSED while paused through an API, else RUNNING.
* Task: ``app_engine_http_request`` is pushd's relative-URL push task: method, ``relative_uri``,
  headers, body (FULL view only), routing ``service``/``version`` as the App Engine target
  ``version.service``. ``dispatch_count`` is the attempts made, ``response_count`` the responses
  received, ``first_attempt.dispatch_time`` the first attempt; ``create_time`` is truncated to
  the second, as the real service does.
"""

from __future__ import annotations

from typing import Any

from pushd import clock, errors, models, tasks
from pushd.cloudtasks import descriptors, names, rpc
from pushd.queue_yaml import config

#: Schedule times further ahead than this are refused, as the real service does.
MAX_SCHEDULE_AHEAD_US = 720 * 3600 * clock.US_PER_SECOND
#: The longest dispatch deadline of an HTTP task (App Engine tasks: pushd's 24 h).
MAX_HTTP_DEADLINE_US = 30 * 60 * clock.US_PER_SECOND
#: OAuthToken.scope when none is given, as the proto says.
DEFAULT_OAUTH_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_STATE_RUNNING, _STATE_PAUSED, _STATE_DISABLED = 1, 2, 3
_VIEW_FULL = 2
#: The oneof of Task holding its request (v2beta3 also has pull_message).
_TASK_ONEOF = {"v2": "message_type", "v2beta3": "payload_type"}
#: pushd's own header for App Engine's namespace, not one the task was given when empty.
_NAMESPACE_HEADER = "x-appengine-current-namespace"
_APP_ENGINE_METHODS = ("POST", "GET", "HEAD", "PUT", "DELETE")
#: An HTTP status as the google.rpc code ``Attempt.response_status`` reports it.
_STATUS_CODES = {
    200: rpc.Code.OK,
    400: rpc.Code.INVALID_ARGUMENT,
    401: rpc.Code.UNAUTHENTICATED,
    403: rpc.Code.PERMISSION_DENIED,
    404: rpc.Code.NOT_FOUND,
    409: rpc.Code.ALREADY_EXISTS,
    429: rpc.Code.RESOURCE_EXHAUSTED,
    499: rpc.Code.CANCELLED,
    500: rpc.Code.INTERNAL,
    501: rpc.Code.UNIMPLEMENTED,
    502: rpc.Code.INTERNAL,
    503: rpc.Code.UNAVAILABLE,
    504: rpc.Code.DEADLINE_EXCEEDED,
}


#: Why an attempt got no answer (``LastAttempt.error``) as its google.rpc code; UNAVAILABLE
#: for the rest. ``forbidden``: the URL policy refused the HTTP task's address.
_NO_ANSWER_CODES = {
    "timeout": rpc.Code.DEADLINE_EXCEEDED,
    "forbidden": rpc.Code.PERMISSION_DENIED,
}


def new(version: str, short: str) -> Any:
    """A fresh ``google.cloud.tasks.<version>.<short>`` message."""
    return descriptors.new(f"google.cloud.tasks.{version}.{short}")


def _http_method_number(version: str, method: str) -> int:
    enum = descriptors.enum_type(f"google.cloud.tasks.{version}.HttpMethod")
    return int(enum.values_by_name[method].number)


def _http_method_name(version: str, number: int) -> str:
    enum = descriptors.enum_type(f"google.cloud.tasks.{version}.HttpMethod")
    value = enum.values_by_number.get(number)
    return "HTTP_METHOD_UNSPECIFIED" if value is None else str(value.name)


def set_timestamp(field: Any, us: int) -> None:
    """Set a Timestamp field (the private pool's class, not timestamp_pb2's) to ``us``."""
    field.FromMicroseconds(us)


def set_duration(field: Any, seconds: float) -> None:
    field.FromMicroseconds(round(seconds * clock.US_PER_SECOND))


# ------------------------------------------------------------------ queues


def queue_message(
    version: str,
    name: names.QueueName,
    cfg: config.QueueConfig,
    *,
    paused: bool,
    removed: bool = False,
) -> Any:
    """The Queue ``cfg`` is, under ``name``'s parent; DISABLED when removed from queue.yaml."""
    queue = new(version, "Queue")
    queue.name = str(name)
    limits = queue.rate_limits
    limits.max_dispatches_per_second = float(cfg.rate)
    limits.max_burst_size = cfg.bucket_size
    limits.max_concurrent_dispatches = cfg.max_concurrent_requests or 0
    _retry_config(queue.retry_config, cfg.retry)
    queue.state = _STATE_DISABLED if removed else _STATE_PAUSED if paused else _STATE_RUNNING
    if cfg.target:
        routing = (
            queue.app_engine_routing_override
            if version == "v2"
            else queue.app_engine_http_queue.app_engine_routing_override
        )
        _routing(routing, cfg.target)
    if version != "v2":
        queue.type = 2  # PUSH
    return queue


def _retry_config(out: Any, retry: models.RetryParameters) -> None:
    limit = retry.task_retry_limit
    out.max_attempts = -1 if limit is None else limit + 1
    if retry.task_age_limit_s is not None:
        set_duration(out.max_retry_duration, retry.task_age_limit_s)
    low = config.DEFAULT_MIN_BACKOFF_S if retry.min_backoff_s is None else retry.min_backoff_s
    high = config.DEFAULT_MAX_BACKOFF_S if retry.max_backoff_s is None else retry.max_backoff_s
    set_duration(out.min_backoff, low)
    set_duration(out.max_backoff, high)
    doublings = retry.max_doublings
    out.max_doublings = config.DEFAULT_MAX_DOUBLINGS if doublings is None else doublings


def _routing(out: Any, target: str) -> None:
    """An App Engine target ``[instance.][version.]service`` as AppEngineRouting."""
    parts = target.split(".")
    out.service = parts[-1]
    if len(parts) >= 2:
        out.version = parts[-2]
    if len(parts) >= 3:
        out.instance = parts[-3]


def target_of(routing: Any) -> str | None:
    """The App Engine target of an AppEngineRouting (``version.service``), None if empty."""
    parts = [p for p in (routing.instance, routing.version, routing.service) if p]
    return ".".join(parts) or None


# ------------------------------------------------------------------ tasks


def task_message(version: str, queue: names.QueueName, task: models.Task, *, view: int) -> Any:
    """The Task ``task`` is; bodies only in the FULL view."""
    out = new(version, "Task")
    out.name = queue.task(task.name)
    if task.is_http_target:
        _http_request(version, out.http_request, task, view=view)
    else:
        _app_engine_request(version, out.app_engine_http_request, task, view=view)
    set_timestamp(out.schedule_time, task.eta_us)
    set_timestamp(out.create_time, task.created_us // clock.US_PER_SECOND * clock.US_PER_SECOND)
    if task.dispatch_deadline_us is not None:
        out.dispatch_deadline.FromMicroseconds(task.dispatch_deadline_us)
    out.dispatch_count = task.retry_count
    out.response_count = task.execution_count
    if task.first_try_us is not None:
        set_timestamp(out.first_attempt.dispatch_time, task.first_try_us)
    if task.last_attempt is not None:
        _last_attempt(out.last_attempt, task.last_attempt)
    elif task.last_status is not None:
        status = out.last_attempt.response_status
        status.code = _STATUS_CODES.get(task.last_status, rpc.Code.UNKNOWN)
        status.message = f"HTTP status code {task.last_status}"
    out.view = _VIEW_FULL if view == _VIEW_FULL else 1
    return out


def _request_of(
    version: str, request: Any, task: models.Task, headers: tuple[tuple[str, str], ...], view: int
) -> None:
    """What both request shapes hold alike: the method, ``headers``, the body (FULL view only)."""
    request.http_method = _http_method_number(version, task.method.value)
    for key, value in _header_map(headers).items():
        request.headers[key] = value
    if view == _VIEW_FULL:
        request.body = task.payload


def _app_engine_request(version: str, request: Any, task: models.Task, *, view: int) -> None:
    _request_of(version, request, task, task.headers, view)
    request.relative_uri = task.url
    if task.target:
        _routing(request.app_engine_routing, task.target)


def _http_request(version: str, request: Any, task: models.Task, *, view: int) -> None:
    """An HTTP task's request: its headers as stored (case kept, ``User-Agent:
    Google-Cloud-Tasks``, no Content-Type added), its token as the oneof it came in."""
    _request_of(version, request, task, task.shown_headers, view)
    request.url = task.url
    auth = tasks.authorization_of(task)
    if auth is not None and auth.kind == "oidc":
        request.oidc_token.service_account_email = auth.service_account_email
        request.oidc_token.audience = auth.audience
    elif auth is not None and auth.kind == "oauth":
        request.oauth_token.service_account_email = auth.service_account_email
        request.oauth_token.scope = auth.scope


def _last_attempt(out: Any, attempt: models.LastAttempt) -> None:
    """pushd's last failed attempt as an Attempt: when it ended (``response_time``) and its
    HTTP status, or why no answer came, as a google.rpc.Status."""
    set_timestamp(out.response_time, attempt.time_us)
    status = out.response_status
    if attempt.status is not None:
        status.code = _STATUS_CODES.get(attempt.status, rpc.Code.UNKNOWN)
        status.message = f"HTTP status code {attempt.status}"
    else:
        status.code = _NO_ANSWER_CODES.get(attempt.error or "", rpc.Code.UNAVAILABLE)
        status.message = attempt.message


def _header_map(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Headers as Cloud Tasks' map: a repeated header's values joined with ", "."""
    out: dict[str, str] = {}
    for key, value in headers:
        if key.lower() == _NAMESPACE_HEADER and not value:
            continue
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def task_request(
    version: str, task: Any, queue: names.QueueName, *, now_us: int
) -> tasks.TaskRequest:
    """The pushd request a CreateTask ``task`` makes (pushd's own checks follow when it is
    built); the Cloud Tasks rules pushd's do not cover are checked here."""
    name = names.task_in(queue, task.name) if task.name else None
    kind = task.WhichOneof(_TASK_ONEOF[version])
    if kind is None:
        raise rpc.invalid("Task.app_engine_http_request or Task.http_request is required")
    if kind == "http_request":
        return _http_task_request(version, task, name, now_us=now_us)
    if kind != "app_engine_http_request":
        raise rpc.RpcError(
            rpc.Code.UNIMPLEMENTED,
            f"Task.{kind} is not supported by pushd yet; use Task.app_engine_http_request",
        )
    request = task.app_engine_http_request
    return tasks.TaskRequest(
        name=name,
        method=app_engine_method(version, request.http_method),
        url=relative_url("relative_uri", request.relative_uri),
        headers=list(request.headers.items()),
        payload=request.body if request.body else None,
        eta_us=_schedule_time_us(task, now_us),
        target=target_of(request.app_engine_routing),
        dispatch_deadline_us=_dispatch_deadline_us(task),
    )


def _requested_method(version: str, number: int) -> str:
    """A task's ``http_method`` by name; unset is POST, as the real service takes it."""
    method = _http_method_name(version, number)
    return "POST" if method == "HTTP_METHOD_UNSPECIFIED" else method


def app_engine_method(version: str, number: int) -> str:
    """An App Engine task's ``http_method``: one of App Engine's five (every version's rule)."""
    method = _requested_method(version, number)
    if method not in _APP_ENGINE_METHODS:
        raise rpc.invalid(
            f"Task.app_engine_http_request.http_method {method} is not one of "
            f"{', '.join(_APP_ENGINE_METHODS)}"
        )
    return method


def relative_url(field: str, url: str) -> str:
    """An App Engine task's relative URL (``field``: its name in the version), ``/`` if unset."""
    url = url or "/"
    if not url.startswith("/"):
        raise rpc.invalid(f"Task.app_engine_http_request.{field} must start with '/'; got {url!r}")
    return url


def _http_task_request(
    version: str, task: Any, name: str | None, *, now_us: int
) -> tasks.TaskRequest:
    """An ``http_request`` task as pushd's request for an HTTP task (its rules:
    :mod:`pushd.tasks.http_target`; where it may go: ``http_targets``, checked by the caller)."""
    request = task.http_request
    method = _requested_method(version, request.http_method)
    if method not in tasks.http_target.METHODS:
        raise rpc.invalid(
            f"Task.http_request.http_method {method} is not one of "
            f"{', '.join(tasks.http_target.METHODS)} (pushd serves no other yet)"
        )
    if not request.url:
        raise rpc.invalid("Task.http_request.url is required")
    try:
        url = tasks.http_target.check_absolute_url(request.url)
    except errors.InvalidUrlError as exc:
        raise rpc.invalid(f"Task.http_request.url: {exc.message}") from None
    deadline_us = _dispatch_deadline_us(task)
    if deadline_us is not None and deadline_us > MAX_HTTP_DEADLINE_US:
        raise rpc.invalid(
            f"Task.dispatch_deadline of an HTTP task must be at most 30m; got "
            f"{deadline_us / clock.US_PER_SECOND:g}s"
        )
    return tasks.TaskRequest(
        name=name,
        method=method,
        headers=list(request.headers.items()),
        payload=request.body if request.body else None,
        eta_us=_schedule_time_us(task, now_us),
        dispatch_deadline_us=deadline_us,
        http=tasks.HttpTarget(url, _authorization(request)),
    )


def _authorization(request: Any) -> tasks.Authorization | None:
    """The request's ``oidc_token`` or ``oauth_token``, if it has one."""
    which = request.WhichOneof("authorization_header")
    if which == "oidc_token":
        token = request.oidc_token
        return tasks.Authorization("oidc", token.service_account_email, audience=token.audience)
    if which == "oauth_token":
        token = request.oauth_token
        scope = token.scope or DEFAULT_OAUTH_SCOPE
        return tasks.Authorization("oauth", token.service_account_email, scope=scope)
    return None


def _schedule_time_us(task: Any, now_us: int) -> int | None:
    if not task.HasField("schedule_time"):
        return None
    eta_us = task.schedule_time.ToMicroseconds()
    if eta_us - now_us > MAX_SCHEDULE_AHEAD_US:
        shown = task.schedule_time.ToJsonString()
        raise rpc.invalid(
            f"The Task.scheduleTime, {shown}, is too far in the future. Schedule time must be "
            "no more than 720h in the future."
        )
    # In the past (or unset) means now, as the real service answers it.
    return max(int(eta_us), now_us)


def _dispatch_deadline_us(task: Any) -> int | None:
    if not task.HasField("dispatch_deadline"):
        return None
    us = task.dispatch_deadline.ToMicroseconds()
    if us == 0:
        return None  # 0: the service's default
    return int(us) // 1000 * 1000  # truncated to milliseconds
