"""Building and validating tasks exactly as App Engine's client and service do (SPEC 1).

A producer describes a task with a :class:`TaskRequest` (the keyword arguments of App Engine's
``taskqueue.Task``); :func:`build_task` applies every rule of SPEC 1.2–1.12 and returns the
:class:`models.Task` to store, and :func:`validate_batch` adds the batch rules of SPEC 1.13/1.15.
Checks run in App Engine's order, so a request with several problems fails with the same
exception class as it would on App Engine: first the client's checks (``Queue(name)``,
``TaskRetryOptions``, ``Task(...)``), then the service's (negative ETA, queue mode).

``Task.size`` is the size App Engine's client compares with the limits, so it also counts
headers that are not stored (dropped ``X-AppEngine-*`` headers; a pull task's namespace and
text content-type headers, which App Engine's client computes but never sends).

Deliberate differences from App Engine (each is also noted where it is implemented):

* naive ``datetime`` ETAs are UTC, not the process's local time;
* a task name with a trailing newline is rejected (App Engine's ``re.match`` + ``$`` accepts it);
* user ``X-AppEngine-*`` headers other than the two namespace headers and ``X-AppEngine-FailFast``
  are dropped (App Engine's client keeps them, production drops them: SPEC 10 Q5);
* ``Host`` is never derived from the environment (the dispatcher routes by ``target``), and
  header (name, value) pairs keep their repeats, as in the add RPC, where the client folds them;
* an ETA may also be given as POSIX seconds; a dispatch deadline on a pull task is an error;
* a batch's shape (mixed modes, more than 100 tasks) is checked before its tasks' fields;
* inputs App Engine would ``str()``, or crash on later with ``TypeError``/``ValueError`` (``None``
  params, non-string header values, boolean or NaN countdowns, non-numeric dispatch deadlines),
  whitespace or control characters in URLs and unsendable header names or values are rejected
  with :mod:`pushd.errors` classes.
"""

from __future__ import annotations

import datetime
import math
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pushd import clock, encoding, errors, models

TASK_NAME_PATTERN = rf"[a-zA-Z0-9_-]{{1,{models.MAX_TASK_NAME_LENGTH}}}"
QUEUE_NAME_PATTERN = rf"[a-zA-Z0-9-]{{1,{models.MAX_QUEUE_NAME_LENGTH}}}"
NAMESPACE_PATTERN = r"[0-9A-Za-z._-]{0,100}"  # App Engine's namespace_manager rule
# fullmatch, never match + "$", which would let one trailing newline through (SPEC 1.2).
_TASK_NAME_RE = re.compile(TASK_NAME_PATTERN)
_QUEUE_NAME_RE = re.compile(QUEUE_NAME_PATTERN)
_NAMESPACE_RE = re.compile(NAMESPACE_PATTERN)
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE"})
#: Floats this large are whole numbers, and times 1e6 they could overflow to infinity.
_WHOLE_FLOAT_S = 2.0**53

NameFactory = Callable[[], str]
#: App Engine's size formula (SPEC 1.11); see :func:`encoding.task_size`.
task_size = encoding.task_size


def new_task_name() -> str:
    """A fresh task name: 128 random bits as 32 hex digits.

    Random rather than sequential, so names neither collide across daemons sharing a database
    nor cluster in an index (App Engine's docs warn against sequential names).
    """
    return secrets.token_hex(16)


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskRequest:
    """What a producer submits: the arguments of App Engine's ``taskqueue.Task(...)``.

    ``countdown`` (seconds from now), ``eta`` (a ``datetime``, naive meaning UTC, or POSIX
    seconds) and ``eta_us`` (µs since the epoch: what the APIs and the client hold) exclude each
    other. ``headers`` is a case-insensitive mapping whose values may be
    lists (repeated headers) or a sequence of (name, value) pairs. ``params`` values may be str,
    bytes, numbers or lists of them. ``dispatch_deadline`` is in seconds, ``dispatch_deadline_us`` in µs (one of them). ``namespace`` is the
    namespace the task is added from; it becomes ``X-AppEngine-Current-Namespace`` unless the
    headers carry that header already, as App Engine's client does.
    """

    name: str | None = None
    method: str = "POST"
    url: str | None = None
    headers: encoding.HeadersInput | None = None
    payload: bytes | str | None = None
    params: encoding.ParamsInput | None = None
    countdown: float | None = None
    eta: datetime.datetime | float | None = None
    eta_us: int | None = None
    retry_options: models.RetryParameters | None = None
    target: str | None = None
    tag: bytes | str | None = None
    dispatch_deadline: float | None = None
    dispatch_deadline_us: int | None = None
    namespace: str = ""


def check_queue_name(queue: object) -> str:
    """``queue`` if it is a valid queue name, else :class:`errors.InvalidQueueNameError`."""
    if not isinstance(queue, str) or not _QUEUE_NAME_RE.fullmatch(queue):
        raise errors.InvalidQueueNameError(
            f"queue name {encoding.show(queue)} must match {QUEUE_NAME_PATTERN}"
        )
    return queue


def check_task_name(name: object) -> str:
    """``name`` if it is a valid task name, else :class:`errors.InvalidTaskNameError`."""
    if not isinstance(name, str) or not _TASK_NAME_RE.fullmatch(name):
        raise errors.InvalidTaskNameError(
            f"task name {encoding.show(name)} must match {TASK_NAME_PATTERN}"
        )
    return name


def build_task(
    request: TaskRequest,
    *,
    queue: str,
    mode: models.QueueMode,
    now_us: int,
    name_factory: NameFactory = new_task_name,
) -> models.Task:
    """The task to store for ``request`` added to ``queue`` (of mode ``mode``) at ``now_us``.

    Raises the :mod:`pushd.errors` class App Engine raises for the first broken rule, and
    nothing else whatever the request holds. Name clashes with stored tasks are the store's job.
    """
    check_queue_name(queue)
    task = _build(request, queue=queue, now_us=now_us, name_factory=name_factory)
    _check_on_service([task], mode)
    return task


def validate_batch(
    items: Sequence[TaskRequest | models.Task],
    *,
    queue: str,
    mode: models.QueueMode,
    now_us: int,
    name_factory: NameFactory = new_task_name,
) -> list[models.Task]:
    """Build a whole batch or nothing: the tasks in order, or the first error (SPEC 1.13/1.15).

    Order: queue name; push and pull mixed (:class:`errors.InvalidTaskError`); more than 100
    tasks (:class:`errors.TooManyTasksError`, before any task is built); then each task's own
    checks and a repeated non-empty name (:class:`errors.DuplicateTaskNameError`); last the
    service's checks (negative ETA, queue mode). ``models.Task`` items are taken as built.
    """
    check_queue_name(queue)
    if len({_is_pull(item) for item in items}) > 1:
        raise errors.InvalidTaskError("a batch cannot mix push and pull tasks")
    if len(items) > models.MAX_TASKS_PER_ADD:
        raise errors.TooManyTasksError(
            f"a batch may hold at most {models.MAX_TASKS_PER_ADD} tasks; found {len(items)}"
        )
    tasks: list[models.Task] = []
    names: set[str] = set()
    for item in items:
        entry: object = item  # checked at run time: batches arrive from the network
        if isinstance(entry, models.Task):
            if entry.queue != queue:
                raise errors.InvalidTaskError(
                    f"task {entry.name!r} belongs to queue {entry.queue!r}, not {queue!r}"
                )
            task, chosen = entry, entry.name
        elif isinstance(entry, TaskRequest):
            task = _build(entry, queue=queue, now_us=now_us, name_factory=name_factory)
            chosen = entry.name or ""
        else:
            raise errors.InvalidTaskError(
                f"a batch holds TaskRequest or Task items; got {encoding.show(entry)}"
            )
        if chosen:
            if chosen in names:
                raise errors.DuplicateTaskNameError(
                    f"task name {chosen!r} is used more than once in the batch"
                )
            names.add(chosen)
        tasks.append(task)
    _check_on_service(tasks, mode)
    return tasks


def extract_params(task: models.Task) -> dict[str, bytes | list[bytes]]:
    """The task's form parameters, like App Engine's ``Task.extract_params()`` (SPEC 8.3).

    POST and pull tasks parse the payload, other methods the URL's query string. A key seen once
    maps to its bytes value, a repeated key to a list. Malformed data raises ``ValueError``.
    """
    if task.method in (models.Method.POST, models.Method.PULL):
        return encoding.extract_params(task.payload)
    _, _, query = task.url.partition("?")
    return encoding.extract_params(query)


def _is_pull(item: object) -> bool:
    if isinstance(item, models.Task):
        return item.is_pull
    method = getattr(item, "method", None)
    return isinstance(method, str) and method.upper() == "PULL"


def _check_on_service(tasks: Sequence[models.Task], mode: models.QueueMode) -> None:
    """The checks App Engine's service makes after its client's (STUB ``BulkAdd``)."""
    for task in tasks:
        if task.eta_us < 0:
            raise errors.InvalidEtaError(
                f"ETA must not be before the epoch; found {task.eta_us} µs"
            )
    if tasks and tasks[0].mode is not mode:
        kind = "pull" if tasks[0].is_pull else "push"
        raise errors.InvalidQueueModeError(
            f"cannot add {kind} tasks to queue {tasks[0].queue!r}, a {mode.value} queue"
        )


def _build(
    request: TaskRequest, *, queue: str, now_us: int, name_factory: NameFactory
) -> models.Task:
    """App Engine's client-side checks, in the order of its ``Task.__init__``."""
    retry_options = check_retry_options(request.retry_options)
    name = check_task_name(request.name) if request.name else None
    on_queue_url, path, query = _split_url(request.url)
    user_headers = encoding.normalize_headers(request.headers)
    headers = list(user_headers)
    encoding.set_default_header(headers, encoding.NAMESPACE_HEADER, _namespace(request.namespace))
    method_in: object = request.method
    method = method_in.upper() if isinstance(method_in, str) else encoding.show(method_in)
    _check_query_and_tag(request, method=method, query=query)
    body_rule = _BODY_RULES.get(method)
    if body_rule is None:
        raise errors.InvalidTaskError(
            f"Invalid method: {method} (method must be one of "
            f"{', '.join(m.value for m in models.Method)})"
        )
    given = _Given(request, method, on_queue_url=on_queue_url, user_headers=bool(user_headers))
    payload, query = body_rule(given, headers, query)
    relative_url = f"{path}?{query}" if query else path
    target = _target(request.target, headers)
    eta_us = _eta_us(request, now_us)
    size = _check_size(method, payload, relative_url, headers)
    tag_bytes = _tag(request.tag)
    deadline_us = _dispatch_deadline_us(request, pull=method == "PULL")

    task_name = name if name is not None else check_generated_name(name_factory())
    return models.Task(
        queue=queue,
        name=task_name,
        method=models.Method(method),
        url=f"{models.DEFAULT_QUEUE_PATH}/{queue}{relative_url}" if on_queue_url else relative_url,
        on_queue_url=on_queue_url,
        # Pull tasks keep no headers: App Engine's client never sends them to the service.
        headers=() if method == "PULL" else encoding.kept_headers(headers),
        payload=payload,
        eta_us=eta_us,
        created_us=now_us,
        tag=tag_bytes,
        retry_options=retry_options,
        target=target or None,
        dispatch_deadline_us=deadline_us,
        size=size,
    )


def _split_url(url: object) -> tuple[bool, str, str]:
    """(on the queue's default URL, path, query) of ``url``; none or empty means the default."""
    if url is None or url == "":
        return True, "", ""
    if not isinstance(url, str):
        raise errors.InvalidUrlError(f"url must be a string; got {encoding.show(url)}")
    path, query = encoding.split_url(url, max_path_length=models.MAX_URL_LENGTH)
    return False, path, query


def _namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise errors.InvalidTaskError(
            f"namespace {encoding.show(namespace)} must match {NAMESPACE_PATTERN}"
        )
    return namespace


def _check_query_and_tag(request: TaskRequest, *, method: str, query: str) -> None:
    if query and request.params:
        raise errors.InvalidTaskError(
            "url has a query string and params are given; only one of them may be supplied"
        )
    if method != "PULL" and request.tag is not None:
        raise errors.InvalidTaskError("tag can only be specified for pull tasks")


@dataclass(frozen=True, slots=True)
class _Given:
    """What a method's body rule reads of the request."""

    request: TaskRequest
    method: str  # upper case
    on_queue_url: bool
    user_headers: bool


#: A method's body rule: (the request, the headers to add a content type to, the URL's query)
#: -> (the payload, the query), raising for what the method does not allow.
_BodyRule = Callable[[_Given, encoding.Headers, str], tuple[bytes, str]]


def _pull_body(given: _Given, headers: encoding.Headers, query: str) -> tuple[bytes, str]:
    request = given.request
    if not given.on_queue_url:
        raise errors.InvalidTaskError("url must not be specified for pull tasks")
    if given.user_headers:
        raise errors.InvalidTaskError("headers must not be specified for pull tasks")
    if request.target:
        raise errors.InvalidTaskError("target must not be specified for pull tasks")
    payload_in: object = request.payload
    if request.params:
        if payload_in:
            raise errors.InvalidTaskError(
                "payload and params are both given for a pull task; supply only one"
            )
        payload_in = encoding.encode_params(request.params)
    if payload_in is None:
        raise errors.InvalidTaskError("payload (or params) must be specified for pull tasks")
    return _convert_payload(payload_in, headers), query


def _post_body(given: _Given, headers: encoding.Headers, query: str) -> tuple[bytes, str]:
    request = given.request
    if request.payload and request.params:
        raise errors.InvalidTaskError(
            "payload and params are both given for a POST task; supply only one"
        )
    if query:
        raise errors.InvalidTaskError(
            "url of a POST task cannot have a query string; use params instead"
        )
    if request.params:
        encoding.set_default_header(headers, encoding.CONTENT_TYPE, encoding.FORM_CONTENT_TYPE)
        return encoding.encode_params(request.params).encode("ascii"), query
    if request.payload is not None:
        return _convert_payload(request.payload, headers), query
    return b"", query


def _other_body(given: _Given, headers: encoding.Headers, query: str) -> tuple[bytes, str]:
    """PUT, and the bodyless GET, HEAD and DELETE: params go to the query string."""
    request = given.request
    if request.payload and given.method in _BODYLESS_METHODS:
        raise errors.InvalidTaskError(
            f"payload can only be specified for POST, PUT and PULL tasks, not {given.method}"
        )
    payload = b"" if request.payload is None else _convert_payload(request.payload, headers)
    if request.params:
        query = encoding.encode_params(request.params)
    return payload, query


_BODY_RULES: dict[str, _BodyRule] = {
    "PULL": _pull_body,
    "POST": _post_body,
    "PUT": _other_body,
    **dict.fromkeys(_BODYLESS_METHODS, _other_body),
}


def _target(target: object, headers: encoding.Headers) -> str | None:
    if target is not None and not isinstance(target, str):
        raise errors.InvalidTaskError(f"target must be a string; got {encoding.show(target)}")
    if target and encoding.has_header(headers, "Host"):
        raise errors.InvalidTaskError("a Host header cannot be set when a target is specified")
    return target


def _check_size(method: str, payload: bytes, relative_url: str, headers: encoding.Headers) -> int:
    """The task's size, which must be within its limit (SPEC 1.11).

    The client's size check counts every header it holds, including those that production
    drops (X-AppEngine-*) and, for pull tasks, the namespace and content-type headers that are
    never sent; counting them keeps pushd's limit exactly where App Engine's is.
    """
    limit = models.MAX_PULL_TASK_SIZE_BYTES if method == "PULL" else models.MAX_PUSH_TASK_SIZE_BYTES
    size = encoding.task_size(
        method=method, payload=payload, relative_url=relative_url, headers=headers
    )
    if size > limit:
        raise errors.TaskTooLargeError(f"task size must be at most {limit} bytes; found {size}")
    return size


def check_generated_name(name: object) -> str:
    """A name from a name factory, which must satisfy the task-name rule like any other."""
    if not isinstance(name, str) or not _TASK_NAME_RE.fullmatch(name):
        raise errors.InternalError(f"generated task name {encoding.show(name)} is invalid")
    return name


def _convert_payload(payload: object, headers: encoding.Headers) -> bytes:
    """bytes as they are; str as UTF-8 with a text/plain content type unless one was given."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        if payload:
            encoding.set_default_header(headers, encoding.CONTENT_TYPE, encoding.TEXT_CONTENT_TYPE)
        return encoding.utf8(payload, "payload")
    raise errors.InvalidTaskError(f"payload must be bytes or str; got {encoding.show(payload)}")


def _number(value: object) -> int | float | None:
    """``value`` if it is an int or float (bool excluded), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _format_us(us: int) -> str:
    """µs as exact decimal seconds (``2592000.000001``), whatever their size."""
    whole, frac = divmod(us, clock.US_PER_SECOND)
    return f"{whole}.{frac:06d}"


def _finite(number: int | float) -> bool:
    # math.isfinite(10**400) raises OverflowError; every int is finite.
    return isinstance(number, int) or math.isfinite(number)


def _seconds_to_us(seconds: int | float) -> int:
    # ints stay exact (and never overflow a float); floats round like App Engine's eta_usec,
    # except huge ones, which are whole already and would overflow (found by the API fuzz).
    if isinstance(seconds, int) or abs(seconds) >= _WHOLE_FLOAT_S:
        return int(seconds) * clock.US_PER_SECOND
    return clock.seconds_to_us(seconds)


def _eta_us(request: TaskRequest, now_us: int) -> int:
    """SPEC 1.8: the ETA in µs from ``eta_us``, ``eta`` or ``countdown`` (none: now), at most
    30 days ahead."""
    given = [f for f in ("eta_us", "eta", "countdown") if getattr(request, f) is not None]
    if len(given) > 1:
        raise errors.InvalidTaskError("Cannot use a countdown and ETA together")
    if request.eta_us is not None:
        eta_us = _whole_us(request.eta_us, "eta_us", errors.InvalidEtaError)
    elif request.eta is not None:
        eta_us = _eta_to_us(request.eta)
    elif request.countdown is not None:
        eta_us = now_us + _seconds_to_us(_finite_seconds(_countdown_seconds(request.countdown)))
    else:
        return now_us
    if eta_us - now_us > models.MAX_ETA_AHEAD_US:
        raise errors.InvalidEtaError(
            f"ETA must be at most 30 days ahead; found {_format_us(eta_us - now_us)} s ahead"
        )
    return eta_us


def _whole_us(value: object, field: str, error: type[errors.Error]) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise error(f"{field} must be whole microseconds; got {encoding.show(value)}")
    return value


def _eta_to_us(eta: object) -> int:
    """A ``datetime`` (naive meaning UTC: a deliberate difference, App Engine uses the process's
    local time) or POSIX seconds."""
    if isinstance(eta, datetime.datetime):
        return clock.datetime_to_us(eta)
    number = _number(eta)
    if number is None:
        raise errors.InvalidTaskError(
            f"ETA must be a datetime.datetime or POSIX seconds; got {encoding.show(eta)}"
        )
    return _seconds_to_us(_finite_seconds(number))


def _countdown_seconds(countdown: object) -> int | float:
    if isinstance(countdown, str):
        # App Engine calls float(countdown), so numeric strings are accepted.
        try:
            return float(countdown)
        except ValueError:
            pass
    number = None if isinstance(countdown, str) else _number(countdown)
    if number is None:
        raise errors.InvalidTaskError(f"Countdown must be a number; got {encoding.show(countdown)}")
    return number


def _finite_seconds(seconds: int | float) -> int | float:
    """``seconds`` unless NaN (:class:`errors.InvalidTaskError`) or infinite (out of range)."""
    if isinstance(seconds, float) and math.isnan(seconds):
        raise errors.InvalidTaskError("countdown or ETA must be a number, not NaN")
    if isinstance(seconds, float) and math.isinf(seconds):
        if seconds > 0:
            raise errors.InvalidEtaError("ETA must be at most 30 days ahead; found infinity")
        raise errors.InvalidEtaError("ETA must not be before the epoch; found -infinity")
    return seconds


def _tag(tag: object) -> bytes | None:
    """SPEC 1.9: at most 500 characters (str) or bytes; stored as bytes, empty as none."""
    if tag is None:
        return None
    if not isinstance(tag, bytes | str):
        raise errors.InvalidTagError(f"tag must be bytes or str; got {encoding.show(tag)}")
    if len(tag) > models.MAX_TAG_LENGTH:
        unit = "bytes" if isinstance(tag, bytes) else "characters"
        raise errors.InvalidTagError(
            f"tag must be at most {models.MAX_TAG_LENGTH} {unit}; found {len(tag)}"
        )
    raw = tag if isinstance(tag, bytes) else encoding.utf8(tag, "tag")
    return raw or None  # App Engine's client sends no tag for an empty one


def _dispatch_deadline_us(request: TaskRequest, *, pull: bool) -> int | None:
    """SPEC 1.10: ``dispatch_deadline_us`` or ``dispatch_deadline`` (seconds) in [15 s, 24 h]
    inclusive, push tasks only."""
    deadline, deadline_us = request.dispatch_deadline, request.dispatch_deadline_us
    if deadline is None and deadline_us is None:
        return None
    if pull:
        raise errors.InvalidTaskError("dispatch_deadline can only be specified for push tasks")
    if deadline is not None and deadline_us is not None:
        raise errors.InvalidTaskError("give dispatch_deadline or dispatch_deadline_us, not both")
    if deadline_us is not None:
        found_us = _whole_us(
            deadline_us, "dispatch_deadline_us", errors.InvalidDispatchDeadlineError
        )
        shown = _format_us(found_us)
    else:
        seconds = _number(deadline)
        if seconds is None or not _finite(seconds):
            raise errors.InvalidDispatchDeadlineError(
                f"dispatch_deadline must be a number of seconds; got {encoding.show(deadline)}"
            )
        found_us, shown = _seconds_to_us(seconds), str(deadline)
    if not models.MIN_DISPATCH_DEADLINE_US <= found_us <= models.MAX_DISPATCH_DEADLINE_US:
        raise errors.InvalidDispatchDeadlineError(
            f"dispatch_deadline must be between 15 s and 24 h (86400 s); found {shown} s"
        )
    return found_us


def check_retry_options(options: object) -> models.RetryParameters | None:
    """SPEC 1.12, in App Engine's ``TaskRetryOptions`` order; ``task_age_limit_s`` rounded up.

    The one check of a task's retry options: the client's ``TaskRetryOptions`` and every API
    use it. None (or options that set nothing) means "the queue's".
    """
    if options is None:
        return None
    if not isinstance(options, models.RetryParameters):
        raise errors.InvalidTaskRetryOptionsError(
            f"retry_options must be RetryParameters; got {encoding.show(options)}"
        )
    low = _retry_value(options.min_backoff_s, "min_backoff_s")
    high = _retry_value(options.max_backoff_s, "max_backoff_s")
    if low is not None and high is not None and high < low:
        raise errors.InvalidTaskRetryOptionsError(
            f"retry option max_backoff_s ({high}) cannot be less than min_backoff_s ({low})"
        )
    doublings = _retry_value(options.max_doublings, "max_doublings", whole=True)
    retry_limit = _retry_value(options.task_retry_limit, "task_retry_limit", whole=True)
    age = _retry_value(options.task_age_limit_s, "task_age_limit_s")
    normalized = models.RetryParameters(
        task_retry_limit=None if retry_limit is None else int(retry_limit),
        task_age_limit_s=None if age is None else math.ceil(age),
        min_backoff_s=low,
        max_backoff_s=high,
        max_doublings=None if doublings is None else int(doublings),
    )
    return None if normalized.is_empty() else normalized


def _retry_value(value: object, field: str, *, whole: bool = False) -> int | float | None:
    """One retry option: None, or a finite number >= 0 (an integer when ``whole``)."""
    if value is None:
        return None
    number = _number(value)
    if number is None or (whole and not isinstance(number, int)):
        kind = "an integer" if whole else "a number"
        raise errors.InvalidTaskRetryOptionsError(
            f"retry option {field} must be {kind}; got {encoding.show(value)}"
        )
    if not _finite(number) or number < 0:
        raise errors.InvalidTaskRetryOptionsError(
            f"retry option {field} must be a finite number >= 0; got {number}"
        )
    return number


# ------------------------------------------------------------------ pull-queue operations


def check_lease_seconds(lease_seconds: object) -> int:
    """SPEC 6: a lease of 0 to 604800 seconds (a float is fine) as µs.

    App Engine raises ``TypeError`` for a non-number; over the network that is
    :class:`errors.InvalidLeaseTimeError` too.
    """
    seconds = _number(lease_seconds)
    if seconds is None or not _finite(seconds):
        raise errors.InvalidLeaseTimeError(
            f"lease_seconds must be a number of seconds; got {encoding.show(lease_seconds)}"
        )
    if not 0 <= seconds <= models.MAX_LEASE_SECONDS:
        raise errors.InvalidLeaseTimeError(
            f"lease_seconds must be between 0 and {models.MAX_LEASE_SECONDS} (7 days); "
            f"found {seconds}"
        )
    return _seconds_to_us(seconds)


def check_max_tasks(max_tasks: object) -> int:
    """SPEC 6: 1 to 1000 tasks per lease, an integer."""
    if not isinstance(max_tasks, int) or isinstance(max_tasks, bool):
        raise errors.InvalidMaxTasksError(
            f"max_tasks must be a whole number; got {encoding.show(max_tasks)}"
        )
    if not 1 <= max_tasks <= models.MAX_TASKS_PER_LEASE:
        raise errors.InvalidMaxTasksError(
            f"max_tasks must be between 1 and {models.MAX_TASKS_PER_LEASE}; found {max_tasks}"
        )
    return max_tasks


def check_lease_tag(tag: object, *, group_by_tag: bool) -> bytes | None:
    """The tag to lease by: only with ``group_by_tag`` (App Engine: generic ``Error``)."""
    if tag is not None and not group_by_tag:
        raise errors.Error("a tag can only be given when leasing by tag (group_by_tag)")
    if not tag:  # stored tasks never have an empty tag: "" means "the earliest task's tag"
        return None
    if not isinstance(tag, bytes | str):
        raise errors.InvalidTagError(f"tag must be bytes or str; got {encoding.show(tag)}")
    if len(tag) > models.MAX_TAG_LENGTH:
        raise errors.InvalidTagError(
            f"tag must be at most {models.MAX_TAG_LENGTH} characters; found {len(tag)}"
        )
    return tag if isinstance(tag, bytes) else encoding.utf8(tag, "tag")
