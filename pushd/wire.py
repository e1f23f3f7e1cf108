"""The one JSON codec of pushd: request bodies in, tasks, dead letters and queues out.

Bodies are parsed with orjson and checked field by field into :class:`tasks.TaskRequest`
objects; the rules App Engine applies to a task's *values* stay in :mod:`pushd.tasks`. What this
module refuses is what JSON cannot say the way ``taskqueue.Task(...)`` expects it: unknown fields
(named in the message), wrong JSON types, both ``payload`` and ``payload_base64``, malformed
base64, RFC 3339 or duration text, and retry values outside App Engine's protocol-buffer ranges
(``int32`` for ``task_retry_limit`` and ``max_doublings``, ``int64`` seconds for
``task_age_limit``). Every refusal is a :mod:`pushd.errors` class, whatever the input.

Times go out twice: as epoch seconds (a float, not always exact to the microsecond) and as
integer microseconds (``*_us``, exact). Binary values go out as standard base64 with padding;
both alphabets and missing padding are accepted on the way in (SPEC 10 Q11).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import NotRequired, Protocol, TypedDict, cast

import orjson

from pushd import clock, encoding, errors, models, tasks

#: Largest request body the APIs read: the App Engine stub's ``MAX_REQUEST_SIZE`` (32 MiB).
MAX_REQUEST_BYTES = 32 << 20
#: Fields of a task object in an add request.
TASK_FIELDS = (*(f.name for f in dataclasses.fields(tasks.TaskRequest)), "payload_base64")
#: Fields of ``retry_options`` (App Engine's ``TaskRetryOptions`` keyword arguments).
RETRY_FIELDS = (
    "task_retry_limit",
    "task_age_limit",
    "min_backoff_seconds",
    "max_backoff_seconds",
    "max_doublings",
)
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?"
)
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([smhd])")
_DURATION_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# ------------------------------------------------------------------ JSON shapes


class RetryOptionsJSON(TypedDict):
    """A task's ``retry_options`` or a queue's ``retry_parameters``; null means "not set"."""

    task_retry_limit: int | None
    task_age_limit: int | None  # seconds
    min_backoff_seconds: float | None
    max_backoff_seconds: float | None
    max_doublings: int | None


class LastAttemptJSON(TypedDict):
    """A push task's last failed attempt (like Cloud Tasks' ``lastAttempt``)."""

    time: float
    time_us: int
    status: int | None  # the HTTP status, null when no answer came
    error: str | None  # without an answer: refused, reset, timeout, dns, connection, invalid_url
    message: str  # a short text: "HTTP 500", or the connection error
    url: str  # the full URL the request was sent to


class TaskJSON(TypedDict):
    """A stored task. Lists leave out ``payload_base64``; a single task carries it."""

    name: str
    queue: str
    method: str
    url: str
    headers: list[list[str]]  # [name, value] pairs, in order, repeats kept
    payload_base64: NotRequired[str]
    payload_size: int
    eta: float
    eta_us: int
    created: float
    created_us: int
    tag: str | None  # the tag as text; null when absent or not UTF-8 (see tag_base64)
    tag_base64: str | None
    retry_options: RetryOptionsJSON | None
    target: str | None
    dispatch_deadline: float | None  # seconds
    size: int  # App Engine's size formula (SPEC 1.11)
    retry_count: int
    execution_count: int
    first_try: float | None
    first_try_us: int | None
    last_status: int | None
    last_attempt: LastAttemptJSON | None


class DeadTaskJSON(TaskJSON):
    """A dead letter: the task as it last was, why and when it died."""

    reason: str
    dead: float
    dead_us: int
    attempts: int


class AddResultJSON(TypedDict):
    """The outcome of one task of an add: ``OK``, ``TASK_ALREADY_EXISTS``, ``TOMBSTONED_TASK``."""

    name: str
    queue: str
    eta: float
    eta_us: int
    result: str


class QueueStatsJSON(TypedDict):
    """App Engine's ``QueueStatistics`` plus pushd's ``paused``, ``dead_letters`` and
    ``removed`` (gone from queue.yaml: its tasks are kept, listable, deletable, purgeable; it is
    paused and takes no new task)."""

    tasks: int
    oldest_eta: float | None
    oldest_eta_us: int | None
    executed_last_minute: int
    in_flight: int
    enforced_rate: float
    paused: bool
    dead_letters: int
    removed: bool


class QueueJSON(TypedDict):
    """A queue's configuration and statistics. Push-only fields are null for pull queues and
    for removed queues (they have no configuration left)."""

    name: str
    mode: str
    rate: str | None  # as written in queue.yaml, e.g. "5/s"
    rate_per_second: float | None
    bucket_size: int | None
    max_concurrent_requests: int | None
    retry_parameters: RetryOptionsJSON
    target: str | None
    stats: QueueStatsJSON


class ErrorBodyJSON(TypedDict):
    code: int  # the HTTP status
    status: str  # an App Engine ``ErrorCode`` name
    message: str
    exception: NotRequired[str]  # the pushd.errors class, so clients raise the very same one


class ErrorJSON(TypedDict):
    """The body of every error answer."""

    error: ErrorBodyJSON


# ------------------------------------------------------------------ bytes <-> JSON values


def loads(body: bytes) -> object:
    """The JSON value in ``body``; :class:`errors.Error` (INVALID_REQUEST) if it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.Error(f"the request body is not valid JSON: {exc}") from None


def dumps(value: object) -> bytes:
    return orjson.dumps(value)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, field: str) -> bytes:
    """Standard or URL-safe base64, padding optional; :class:`errors.InvalidTaskError` if bad."""
    cleaned = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise errors.InvalidTaskError(f"{field} is not valid base64") from None


# ------------------------------------------------------------------ add requests


def decode_add(body: object, *, default_method: str) -> list[tasks.TaskRequest]:
    """The tasks of an add request: one task object, or ``{"tasks": [...]}`` with 1 to 100.

    ``default_method`` is the method of a task that names none (``PULL`` for a pull queue).
    """
    if isinstance(body, dict) and "tasks" in body:
        _check_fields(body, ("tasks",), "a batch", errors.InvalidTaskError)
        items = body["tasks"]
        if not isinstance(items, list):
            raise errors.InvalidTaskError("'tasks' must be a list of task objects")
        if not items:
            raise errors.InvalidTaskError("'tasks' must hold at least one task")
        tasks.check_batch_size(len(items))
        return [
            decode_task(item, default_method=default_method, where=f"tasks[{i}]")
            for i, item in enumerate(items)
        ]
    return [decode_task(body, default_method=default_method)]


def decode_task(obj: object, *, default_method: str, where: str = "task") -> tasks.TaskRequest:
    """One task object as a :class:`tasks.TaskRequest`; null fields count as absent."""
    if not isinstance(obj, dict):
        raise errors.InvalidTaskError(f"{where} must be a JSON object; got {_kind(obj)}")
    _check_fields(obj, TASK_FIELDS, where, errors.InvalidTaskError)
    fields: dict[str, object] = {k: v for k, v in obj.items() if v is not None}
    if "payload" in fields and "payload_base64" in fields:
        raise errors.InvalidTaskError(f"{where}: give payload or payload_base64, not both")
    payload: bytes | str | None = _text(fields, "payload", where)
    if (encoded := _text(fields, "payload_base64", where)) is not None:
        payload = b64decode(encoded, f"{where}.payload_base64")
    method = _text(fields, "method", where)
    return tasks.TaskRequest(
        name=_text(fields, "name", where),
        method=default_method if method is None else method,
        url=_text(fields, "url", where),
        headers=_headers(fields.get("headers"), where),
        payload=payload,
        params=_params(fields.get("params"), where),
        countdown=_number_field(fields.get("countdown"), f"{where}.countdown"),
        eta=_eta(fields.get("eta"), where),
        eta_us=_whole_us(fields.get("eta_us"), f"{where}.eta_us", errors.InvalidEtaError),
        retry_options=_retry_options(fields.get("retry_options"), where),
        target=_text(fields, "target", where),
        tag=_text(fields, "tag", where),
        dispatch_deadline=_number_field(
            fields.get("dispatch_deadline"), f"{where}.dispatch_deadline"
        ),
        dispatch_deadline_us=_whole_us(
            fields.get("dispatch_deadline_us"),
            f"{where}.dispatch_deadline_us",
            errors.InvalidDispatchDeadlineError,
        ),
        namespace=_text(fields, "namespace", where) or "",
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRequest:
    """A lease of pull tasks (SPEC 6), checked as App Engine's client checks it."""

    lease_us: int
    max_tasks: int
    group_by_tag: bool = False
    tag: bytes | None = None


LEASE_FIELDS = ("lease_seconds", "max_tasks", "group_by_tag", "tag", "tag_base64")


def decode_lease(body: object) -> LeaseRequest:
    """``{"lease_seconds": 60, "max_tasks": 10, "group_by_tag": false, "tag": null}``.

    A binary tag may come as ``tag_base64`` instead of ``tag``.
    """
    if not isinstance(body, dict):
        raise errors.Error(f"a lease request must be a JSON object; got {_kind(body)}")
    _check_fields(body, LEASE_FIELDS, "the lease request", errors.Error)
    group = body.get("group_by_tag", False)
    if not isinstance(group, bool):
        raise errors.Error(f"group_by_tag must be true or false; got {_kind(group)}")
    if "lease_seconds" not in body:
        raise errors.InvalidLeaseTimeError("lease_seconds is required")
    if "max_tasks" not in body:
        raise errors.InvalidMaxTasksError("max_tasks is required")
    tag: object = body.get("tag")
    if tag is not None and body.get("tag_base64") is not None:
        raise errors.Error("give tag or tag_base64, not both")
    if (encoded := body.get("tag_base64")) is not None:
        if not isinstance(encoded, str):
            raise errors.InvalidTagError(f"tag_base64 must be a string; got {_kind(encoded)}")
        tag = b64decode(encoded, "tag_base64")
    if tag is not None and not isinstance(tag, str | bytes):
        raise errors.InvalidTagError(f"tag must be a string; got {_kind(tag)}")
    return LeaseRequest(
        lease_us=tasks.check_lease_seconds(body["lease_seconds"]),
        max_tasks=tasks.check_max_tasks(body["max_tasks"]),
        group_by_tag=group,
        tag=tasks.check_lease_tag(tag, group_by_tag=group),
    )


def decode_modify_lease(body: object) -> tuple[int, int]:
    """``{"eta_us": <the task's current ETA>, "lease_seconds": 30}`` -> (eta µs, lease µs)."""
    if not isinstance(body, dict):
        raise errors.Error(f"a lease change must be a JSON object; got {_kind(body)}")
    _check_fields(body, ("eta_us", "lease_seconds"), "the lease change", errors.Error)
    eta_us = body.get("eta_us")
    if not isinstance(eta_us, int) or isinstance(eta_us, bool):
        raise errors.Error(
            "eta_us (the task's current ETA in µs, as the lease answered it) is required"
        )
    if "lease_seconds" not in body:
        raise errors.InvalidLeaseTimeError("lease_seconds is required")
    return eta_us, tasks.check_lease_seconds(body["lease_seconds"])


#: Most names one delete request may carry.
MAX_NAMES_PER_DELETE = 1000


def decode_delete(body: object) -> list[str]:
    """``{"names": ["a", "b"]}``: task names, each valid, none repeated."""
    if not isinstance(body, dict):
        raise errors.Error(f"a delete request must be a JSON object; got {_kind(body)}")
    _check_fields(body, ("names",), "the delete request", errors.Error)
    names = body.get("names")
    if not isinstance(names, list) or not names:
        raise errors.Error("names must be a non-empty list of task names")
    return check_delete_names(names)


def check_delete_names(names: list[str]) -> list[str]:
    """Names to delete in one call: at most 1000, each valid, none repeated."""
    if len(names) > MAX_NAMES_PER_DELETE:
        raise errors.Error(
            f"one request deletes at most {MAX_NAMES_PER_DELETE} tasks; found {len(names)}"
        )
    seen: set[str] = set()
    for name in names:
        tasks.check_task_name(name)
        if name in seen:
            raise errors.DuplicateTaskNameError(f"task name {name!r} is given more than once")
        seen.add(name)
    return names


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _text(fields: Mapping[str, object], key: str, where: str) -> str | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, str):
        raise errors.InvalidTaskError(f"{where}.{key} must be a string; got {_kind(value)}")
    return value


def _number(value: object) -> int | float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _number_field(
    value: object, field: str, error: type[errors.Error] = errors.InvalidTaskError
) -> float | None:
    """A number of seconds, or None when absent."""
    if value is None:
        return None
    number = _number(value)
    if number is None:
        raise error(f"{field} must be a number of seconds")
    return number


def _whole_us(value: object, field: str, error: type[errors.Error]) -> int | None:
    """Whole microseconds (an ``int64``), or None when absent; ranges are :mod:`pushd.tasks`'s."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > _INT64_MAX:
        raise error(f"{field} must be whole microseconds (an integer); got {_kind(value)}")
    return value


def _headers(value: object, where: str) -> encoding.HeadersInput | None:
    """An object of name -> string or list of strings, or a list of [name, value] pairs.

    Only the outer shape is checked here: :func:`encoding.normalize_headers` checks each name
    and value when the task is built, raising :mod:`pushd.errors` classes only.
    """
    if value is None or isinstance(value, dict | list):
        return cast("encoding.HeadersInput | None", value)
    raise errors.InvalidTaskError(
        f"{where}.headers must be an object or a list of [name, value] pairs; got {_kind(value)}"
    )


def _params(value: object, where: str) -> encoding.ParamsInput | None:
    """An object of name -> string, number or a list of them (repeated keys).

    As for headers, :func:`encoding.encode_params` checks each value when the task is built
    (booleans become ``True``/``False``, as App Engine's ``str()`` makes them).
    """
    if value is None or isinstance(value, dict):
        return cast("encoding.ParamsInput | None", value)
    raise errors.InvalidTaskError(f"{where}.params must be an object; got {_kind(value)}")


def _eta(value: object, where: str) -> datetime.datetime | float | None:
    """Epoch seconds, or RFC 3339 text (no offset means UTC)."""
    if value is None:
        return None
    number = _number(value)
    if number is not None:
        return number
    if not isinstance(value, str):
        raise errors.InvalidTaskError(
            f"{where}.eta must be epoch seconds or RFC 3339 text; got {_kind(value)}"
        )
    return parse_rfc3339(value, f"{where}.eta")


def parse_rfc3339(text: str, field: str = "time") -> datetime.datetime:
    """``2024-05-01T12:00:00.5Z`` and the like as an aware datetime; no offset means UTC.

    Fractions finer than a microsecond are cut off. :class:`errors.InvalidTaskError` if bad.
    """
    match = _RFC3339.fullmatch(text)
    bad = errors.InvalidTaskError(
        f"{field} {text[:60]!r} is not an RFC 3339 time such as 2024-05-01T12:00:00Z"
    )
    if match is None:
        raise bad
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    tz = datetime.UTC
    if sign is not None and not zulu:
        offset = datetime.timedelta(hours=int(off_h), minutes=int(off_m))
        try:
            tz = datetime.timezone(-offset if sign == "-" else offset)
        except ValueError:
            raise bad from None
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
    except ValueError:
        raise bad from None


def parse_age_limit_s(value: object, field: str) -> int | None:
    """Seconds, or text such as ``90s``, ``15m``, ``1.5h``, ``2d``; rounded up, as App Engine does."""
    if value is None:
        return None
    number = _number(value)
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is not None:
        number = float(match.group(1)) * _DURATION_UNIT_S[match.group(2)]
    if number is None or not 0 <= number <= _INT64_MAX:  # also refuses NaN
        raise errors.InvalidTaskRetryOptionsError(
            f"{field} must be seconds (>= 0) or a duration such as 90s, 15m, 1.5h or 2d"
        )
    return math.ceil(number)


def _check_fields(
    obj: Mapping[str, object], known: tuple[str, ...], field: str, error: type[errors.Error]
) -> None:
    for key in obj:
        if key not in known:
            raise error(f"{field}: unknown field {key!r}; known fields: {', '.join(known)}")


def _retry_options(value: object, where: str) -> models.RetryParameters | None:
    """``retry_options``; the ranges App Engine checks are checked by :mod:`pushd.tasks`."""
    if value is None:
        return None
    field, bad = f"{where}.retry_options", errors.InvalidTaskRetryOptionsError
    if not isinstance(value, dict):
        raise bad(f"{field} must be an object")
    _check_fields(value, RETRY_FIELDS, field, bad)
    return models.RetryParameters(
        task_retry_limit=_whole(value.get("task_retry_limit"), f"{field}.task_retry_limit"),
        task_age_limit_s=parse_age_limit_s(value.get("task_age_limit"), f"{field}.task_age_limit"),
        min_backoff_s=_number_field(
            value.get("min_backoff_seconds"), f"{field}.min_backoff_seconds", bad
        ),
        max_backoff_s=_number_field(
            value.get("max_backoff_seconds"), f"{field}.max_backoff_seconds", bad
        ),
        max_doublings=_whole(value.get("max_doublings"), f"{field}.max_doublings"),
    )


def _whole(value: object, field: str) -> int | None:
    """An integer that fits App Engine's int32 field (negatives are left to pushd.tasks)."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise errors.InvalidTaskRetryOptionsError(f"{field} must be an integer")
    if value > _INT32_MAX:
        raise errors.InvalidTaskRetryOptionsError(f"{field} must be at most {_INT32_MAX}")
    return value


# ------------------------------------------------------------------ models -> JSON


def _optional_seconds(us: int | None) -> float | None:
    return None if us is None else clock.us_to_seconds(us)


def encode_retry(options: models.RetryParameters | None) -> RetryOptionsJSON:
    o = options or models.RetryParameters()
    return {
        "task_retry_limit": o.task_retry_limit,
        "task_age_limit": o.task_age_limit_s,
        "min_backoff_seconds": o.min_backoff_s,
        "max_backoff_seconds": o.max_backoff_s,
        "max_doublings": o.max_doublings,
    }


def encode_task(task: models.Task, *, payload: bool = True) -> TaskJSON:
    """A task; ``payload=False`` leaves the payload out (lists)."""
    try:
        tag_text = None if task.tag is None else task.tag.decode("utf-8")
    except UnicodeDecodeError:
        tag_text = None
    out: TaskJSON = {
        "name": task.name,
        "queue": task.queue,
        "method": task.method.value,
        "url": task.url,
        "headers": [[k, v] for k, v in task.headers],
        "payload_size": len(task.payload),
        "eta": clock.us_to_seconds(task.eta_us),
        "eta_us": task.eta_us,
        "created": clock.us_to_seconds(task.created_us),
        "created_us": task.created_us,
        "tag": tag_text,
        "tag_base64": None if task.tag is None else b64encode(task.tag),
        "retry_options": None if task.retry_options is None else encode_retry(task.retry_options),
        "target": task.target,
        "dispatch_deadline": _optional_seconds(task.dispatch_deadline_us),
        "size": task.size,
        "retry_count": task.retry_count,
        "execution_count": task.execution_count,
        "first_try": _optional_seconds(task.first_try_us),
        "first_try_us": task.first_try_us,
        "last_status": task.last_status,
        "last_attempt": encode_last_attempt(task.last_attempt),
    }
    if payload:
        out["payload_base64"] = b64encode(task.payload)
    return out


def encode_last_attempt(attempt: models.LastAttempt | None) -> LastAttemptJSON | None:
    if attempt is None:
        return None
    return {
        "time": clock.us_to_seconds(attempt.time_us),
        "time_us": attempt.time_us,
        "status": attempt.status,
        "error": attempt.error,
        "message": attempt.message,
        "url": attempt.url,
    }


def encode_dead(
    task: models.Task, *, dead_us: int, reason: str, payload: bool = True
) -> DeadTaskJSON:
    """A dead letter; ``attempts`` counts the failed attempts (its retry count)."""
    return {
        **encode_task(task, payload=payload),
        "reason": reason,
        "dead": clock.us_to_seconds(dead_us),
        "dead_us": dead_us,
        "attempts": task.retry_count,
    }


def result_name(result: models.AddResult) -> str:
    """``OK`` or the App Engine error name of one add result."""
    error = result.error
    if error is None:
        return errors.ErrorCode.OK.name
    if issubclass(error, errors.Error):
        return error.code.name
    return errors.ErrorCode.INTERNAL_ERROR.name


def encode_add_result(result: models.AddResult) -> AddResultJSON:
    return {
        "name": result.task.name,
        "queue": result.task.queue,
        "eta": clock.us_to_seconds(result.task.eta_us),
        "eta_us": result.task.eta_us,
        "result": result_name(result),
    }


class QueueSettings(Protocol):
    """What :func:`encode_queue` reads of a queue's configuration (``queue_yaml``'s
    ``QueueConfig``). A protocol, so that the codec, and the client that imports it, never
    load the queue.yaml parser and PyYAML."""

    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> models.QueueMode: ...
    @property
    def rate(self) -> Fraction: ...
    @property
    def rate_text(self) -> str: ...
    @property
    def bucket_size(self) -> int: ...
    @property
    def max_concurrent_requests(self) -> int | None: ...
    @property
    def retry(self) -> models.RetryParameters: ...
    @property
    def target(self) -> str | None: ...


def encode_queue(cfg: QueueSettings, stats: models.QueueStats) -> QueueJSON:
    push = cfg.mode is models.QueueMode.PUSH and not stats.removed
    return {
        "name": cfg.name,
        "mode": cfg.mode.value,
        "rate": cfg.rate_text if push else None,
        "rate_per_second": float(cfg.rate) if push else None,
        "bucket_size": cfg.bucket_size if push else None,
        "max_concurrent_requests": cfg.max_concurrent_requests if push else None,
        "retry_parameters": encode_retry(cfg.retry),
        "target": cfg.target if push else None,
        "stats": {
            "tasks": stats.tasks,
            "oldest_eta": _optional_seconds(stats.oldest_eta_us),
            "oldest_eta_us": stats.oldest_eta_us,
            "executed_last_minute": stats.executed_last_minute,
            "in_flight": stats.in_flight,
            "enforced_rate": stats.enforced_rate,
            "paused": stats.paused,
            "dead_letters": stats.dead_letters,
            "removed": stats.removed,
        },
    }


def encode_error(
    http_status: int, status: str, message: str, exception: str | None = None
) -> ErrorJSON:
    body: ErrorBodyJSON = {"code": http_status, "status": status, "message": message}
    if exception is not None:
        body["exception"] = exception
    return {"error": body}
