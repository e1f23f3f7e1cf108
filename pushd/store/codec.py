"""Task <-> database row and JSON blob conversions shared by the SQL backends."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

from pushd import models
from pushd.store import base

_RETRY_FIELDS = (
    "task_retry_limit",
    "task_age_limit_s",
    "min_backoff_s",
    "max_backoff_s",
    "max_doublings",
)


def dump_json(value: object) -> str:
    """A JSON text parameter (name lists for ``json_each`` in batch queries)."""
    return orjson.dumps(value).decode()


def dump_headers(headers: tuple[tuple[str, str], ...]) -> bytes:
    return orjson.dumps(headers)  # tuples are JSON arrays: [[name, value], ...]


#: A task without headers stores this blob: read back without parsing (every claimed row).
_NO_HEADERS = (b"[]", "[]")
#: Methods by their stored value: a dict lookup, not the Enum's call, per row.
_METHODS: dict[str, models.Method] = {m.value: m for m in models.Method}


def load_headers(blob: bytes | str) -> tuple[tuple[str, str], ...]:
    if blob in _NO_HEADERS:
        return ()
    return _headers(orjson.loads(blob))


def _headers(pairs: list[list[str]]) -> tuple[tuple[str, str], ...]:
    # Stored by dump_headers: each pair is a list of two strings (JSON has no tuples).
    return tuple((k, v) for k, v in pairs)


def dump_retry(options: models.RetryParameters | None) -> bytes | None:
    if options is None:
        return None
    return orjson.dumps({f: getattr(options, f) for f in _RETRY_FIELDS})


def load_retry(blob: bytes | str | None) -> models.RetryParameters | None:
    return None if blob is None else _retry(orjson.loads(blob))


def _retry(data: dict[str, Any] | None) -> models.RetryParameters | None:
    if data is None:
        return None
    return models.RetryParameters(**{f: data.get(f) for f in _RETRY_FIELDS})


def _attempt_dict(attempt: models.LastAttempt) -> dict[str, Any]:
    return {
        "time_us": attempt.time_us,
        "status": attempt.status,
        "error": attempt.error,
        "message": attempt.message,
        "url": attempt.url,
        "executions": attempt.executions,
    }


def dump_attempt(attempt: models.LastAttempt | None) -> bytes | None:
    """A task's last attempt as a JSON blob (one column: the outcome's update stays one
    statement per batch)."""
    return None if attempt is None else orjson.dumps(_attempt_dict(attempt))


def load_attempt(blob: bytes | str | None) -> models.LastAttempt | None:
    return None if blob is None else _attempt(orjson.loads(blob))


def _attempt(data: dict[str, Any] | None) -> models.LastAttempt | None:
    if data is None:
        return None
    return models.LastAttempt(
        time_us=data["time_us"],
        status=data.get("status"),
        error=data.get("error"),
        message=data.get("message", ""),
        url=data.get("url", ""),
        executions=data.get("executions", 0),
    )


#: The tasks table's columns (but its id), in ``task_params``' order.
TASK_COLUMNS = (
    "queue",
    "name",
    "eta_us",
    "method",
    "url",
    "on_queue_url",
    "headers",
    "payload",
    "tag",
    "created_us",
    "retry_options",
    "target",
    "dispatch_deadline_us",
    "size",
    "retry_count",
    "execution_count",
    "first_try_us",
    "last_status",
    "last_attempt",
)


def task_params(task: models.Task) -> dict[str, Any]:
    """Named parameters of ``insert_task`` (keys in :data:`TASK_COLUMNS`' order)."""
    return dict(zip(TASK_COLUMNS, task_row(task), strict=True))


def task_row(task: models.Task, headers: bytes | None = None) -> tuple[Any, ...]:
    """The task's column values in :data:`TASK_COLUMNS`' order (positional parameters bind
    faster than named ones: a batch add binds one row per task); ``headers`` is
    :func:`dump_headers` of the task's headers when the caller has it already."""
    return (
        task.queue,
        task.name,
        task.eta_us,
        task.method.value,
        task.url,
        int(task.on_queue_url),
        dump_headers(task.headers) if headers is None else headers,
        task.payload,
        task.tag,
        task.created_us,
        None if task.retry_options is None else dump_retry(task.retry_options),
        task.target,
        task.dispatch_deadline_us,
        task.size,
        task.retry_count,
        task.execution_count,
        task.first_try_us,
        task.last_status,
        None if task.last_attempt is None else dump_attempt(task.last_attempt),
    )


def task_rows(tasks: Sequence[models.Task]) -> list[tuple[Any, ...]]:
    """:func:`task_row` of each task; headers that repeat across the batch (most tasks of a
    batch carry the same ones) are serialized once."""
    dumped: dict[tuple[tuple[str, str], ...], bytes] = {}
    rows = []
    for task in tasks:
        headers = dumped.get(task.headers)
        if headers is None:
            headers = dumped[task.headers] = dump_headers(task.headers)
        rows.append(task_row(task, headers))
    return rows


class Row(Protocol):
    """A database row readable by column name (sqlite3.Row, asyncpg.Record, a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...


def task_from_row(row: Row) -> models.Task:
    tag = row["tag"]
    payload = row["payload"]
    retry, attempt = row["retry_options"], row["last_attempt"]
    return _task(
        row,
        headers=load_headers(row["headers"]),
        payload=payload if type(payload) is bytes else bytes(payload),
        tag=None if tag is None else bytes(tag),
        retry_options=None if retry is None else load_retry(retry),
        last_attempt=None if attempt is None else load_attempt(attempt),
    )


if set(TASK_COLUMNS) != {f.name for f in dataclasses.fields(models.Task)}:  # pragma: no cover
    raise ImportError("models.Task's fields and codec.TASK_COLUMNS differ: update TASK_COLUMNS")
#: Each column's slot setter on ``models.Task`` (its member descriptor's ``__set__``), in
#: :data:`TASK_COLUMNS`' order: :func:`task_from_values` sets each slot itself.
_SET: tuple[Callable[[models.Task, Any], None], ...] = tuple(
    getattr(models.Task, column).__set__ for column in TASK_COLUMNS
)
_new_task = object.__new__


def task_from_values(values: tuple[Any, ...]) -> models.Task:
    """A task from a plain row of :data:`TASK_COLUMNS` (and anything after them): by position,
    for every task a claim takes.

    The slots are set one by one, as ``Task.__init__`` would, without its keyword arguments
    and its ``object.__setattr__`` per field of a frozen class: 19 fields cost ~3 µs per claimed
    task that way on the writer's thread, ~1 µs this way (tests/unit/test_codec.py checks the
    result equals the constructor's)."""
    v = values
    task = _new_task(models.Task)
    s = _SET
    s[0](task, v[0])  # queue
    s[1](task, v[1])  # name
    s[2](task, v[2])  # eta_us
    s[3](task, _METHODS[v[3]])
    s[4](task, v[4])  # url
    s[5](task, bool(v[5]))  # on_queue_url
    s[6](task, load_headers(v[6]))
    s[7](task, v[7] if type(v[7]) is bytes else bytes(v[7]))  # payload
    s[8](task, None if v[8] is None else bytes(v[8]))  # tag
    s[9](task, v[9])  # created_us
    s[10](task, None if v[10] is None else load_retry(v[10]))
    for i in range(11, 18):  # target ... last_status: as stored
        s[i](task, v[i])
    s[18](task, None if v[18] is None else load_attempt(v[18]))
    return task


def _task(
    row: Row,
    *,
    headers: tuple[tuple[str, str], ...],
    payload: bytes,
    tag: bytes | None,
    retry_options: models.RetryParameters | None,
    last_attempt: models.LastAttempt | None,
) -> models.Task:
    """A task from its plain columns and its decoded ones (a row's blobs, a dead letter's
    JSON values)."""
    return models.Task(
        queue=row["queue"],
        name=row["name"],
        method=_METHODS[row["method"]],
        url=row["url"],
        on_queue_url=bool(row["on_queue_url"]),
        headers=headers,
        payload=payload,
        eta_us=row["eta_us"],
        created_us=row["created_us"],
        tag=tag,
        retry_options=retry_options,
        target=row["target"],
        dispatch_deadline_us=row["dispatch_deadline_us"],
        size=row["size"],
        retry_count=row["retry_count"],
        execution_count=row["execution_count"],
        first_try_us=row["first_try_us"],
        last_status=row["last_status"],
        last_attempt=last_attempt,
    )


def dump_task(task: models.Task) -> bytes:
    """The whole task as one JSON blob (dead letters)."""
    params = task_params(task)
    params["headers"] = [list(pair) for pair in task.headers]
    params["retry_options"] = (
        None
        if task.retry_options is None
        else {f: getattr(task.retry_options, f) for f in _RETRY_FIELDS}
    )
    params["payload"] = task.payload.hex()
    params["tag"] = None if task.tag is None else task.tag.hex()
    params["last_attempt"] = None if task.last_attempt is None else _attempt_dict(task.last_attempt)
    return orjson.dumps(params)


def dead_from_row(row: Row) -> base.DeadTask:
    """A dead letter from its row (``task`` is the JSON blob of :func:`dump_task`)."""
    return base.DeadTask(task=load_task(row["task"]), dead_us=row["dead_us"], reason=row["reason"])


def load_task(blob: bytes | str) -> models.Task:
    """A task from :func:`dump_task`'s blob: its JSON values decoded once, never re-encoded."""
    data = orjson.loads(blob)
    tag = data["tag"]
    return _task(
        data,
        headers=_headers(data["headers"]),
        payload=bytes.fromhex(data["payload"]),
        tag=None if tag is None else bytes.fromhex(tag),
        retry_options=_retry(data["retry_options"]),
        # absent from dead letters kept before schema 4
        last_attempt=_attempt(data.get("last_attempt")),
    )


#: The settings of an API queue kept as JSON (the name and creation time are columns).
_API_QUEUE_FIELDS = (
    "rate",
    "max_concurrent",
    "max_attempts",
    "max_retry_duration_s",
    "min_backoff_s",
    "max_backoff_s",
    "max_doublings",
    "target",
)


def dump_api_queue(queue: models.ApiQueue) -> bytes:
    return orjson.dumps({f: getattr(queue, f) for f in _API_QUEUE_FIELDS})


def load_api_queue(name: str, spec: bytes | str, created_us: int) -> models.ApiQueue:
    """An API queue from its row; a key a newer pushd added is ignored, a missing one takes
    its default."""
    data = orjson.loads(spec)
    known = {f: data[f] for f in _API_QUEUE_FIELDS if f in data}
    return models.ApiQueue(name=name, created_us=created_us, **known)


def signing_key_from_row(row: Row) -> models.SigningKey:
    """A ``signing_keys`` row (kid, pem, created_us, retired_us)."""
    return models.SigningKey(
        kid=row["kid"],
        pem=bytes(row["pem"]),
        created_us=row["created_us"],
        retired_us=row["retired_us"],
    )
