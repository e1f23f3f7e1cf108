"""Add requests in: JSON task objects checked field by field into :class:`tasks.TaskRequest`."""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Any, cast

from pushd import durations, encoding, errors, models, tasks
from pushd.wire.values import (
    INT32_MAX,
    INT64_MAX,
    as_number,
    b64decode,
    check_fields,
    kind,
    parse_rfc3339,
)

#: Fields of a task object in an add request (``http``, a Cloud Tasks HTTP task, is only for the
#: Cloud Tasks API: absolute URLs pass its ``http_targets`` check there).
TASK_FIELDS = (
    *(f.name for f in dataclasses.fields(tasks.TaskRequest) if f.name != "http"),
    "payload_base64",
)
#: Fields of ``retry_options`` (App Engine's ``TaskRetryOptions`` keyword arguments).
RETRY_FIELDS = (
    "task_retry_limit",
    "task_age_limit",
    "min_backoff_seconds",
    "max_backoff_seconds",
    "max_doublings",
)


def decode_add(body: object, *, default_method: str) -> list[tasks.TaskRequest]:
    """The tasks of an add request: one task object, or ``{"tasks": [...]}`` with 1 to 100.

    ``default_method`` is the method of a task that names none (``PULL`` for a pull queue).
    """
    if isinstance(body, dict) and "tasks" in body:
        check_fields(body, ("tasks",), "a batch", errors.InvalidTaskError)
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
    """One task object as a :class:`tasks.TaskRequest`; null fields count as absent.

    Fields are read in a fixed order (the first bad one is the error) and only the ones given
    are decoded further: this runs for every task added, and most tasks give three fields.
    """
    if not isinstance(obj, dict):
        raise errors.InvalidTaskError(f"{where} must be a JSON object; got {kind(obj)}")
    if not _TASK_FIELD_SET.issuperset(obj):
        check_fields(obj, TASK_FIELDS, where, errors.InvalidTaskError)
    get = obj.get
    payload: bytes | str | None = get("payload")
    encoded = get("payload_base64")
    if payload is not None and encoded is not None:
        raise errors.InvalidTaskError(f"{where}: give payload or payload_base64, not both")
    _check_text(payload, "payload", where)
    if encoded is not None:
        _check_text(encoded, "payload_base64", where)
        payload = b64decode(encoded, f"{where}.payload_base64")
    method, name, url = get("method"), get("name"), get("url")
    _check_text(method, "method", where)
    _check_text(name, "name", where)
    _check_text(url, "url", where)
    rare = _rare_fields(obj, where) if not _COMMON_FIELDS.issuperset(obj) else _NO_RARE_FIELDS
    return tasks.TaskRequest(
        name=name,
        method=default_method if method is None else method,
        url=url,
        payload=payload,
        **rare,
    )


#: Fields most tasks are made of: a task holding only these skips :func:`_rare_fields`.
_COMMON_FIELDS = frozenset({"name", "method", "url", "payload", "payload_base64"})
_TASK_FIELD_SET = frozenset(TASK_FIELDS)
_NO_RARE_FIELDS: dict[str, Any] = {}


def _rare_fields(obj: dict[str, object], where: str) -> dict[str, Any]:
    """The task's other fields, checked in :data:`TASK_FIELDS`' order."""
    get = obj.get
    found: dict[str, Any] = {}
    if (value := get("headers")) is not None:
        found["headers"] = _headers(value, where)
    if (value := get("params")) is not None:
        found["params"] = _params(value, where)
    if (value := get("countdown")) is not None:
        found["countdown"] = _number_field(value, f"{where}.countdown")
    if (value := get("eta")) is not None:
        found["eta"] = _eta(value, where)
    if (value := get("eta_us")) is not None:
        found["eta_us"] = _whole_us(value, f"{where}.eta_us", errors.InvalidEtaError)
    if (value := get("retry_options")) is not None:
        found["retry_options"] = _retry_options(value, where)
    for key in ("target", "tag"):
        value = get(key)
        _check_text(value, key, where)
        if value is not None:
            found[key] = value
    if (value := get("dispatch_deadline")) is not None:
        found["dispatch_deadline"] = _number_field(value, f"{where}.dispatch_deadline")
    if (value := get("dispatch_deadline_us")) is not None:
        found["dispatch_deadline_us"] = _whole_us(
            value, f"{where}.dispatch_deadline_us", errors.InvalidDispatchDeadlineError
        )
    namespace = get("namespace")
    _check_text(namespace, "namespace", where)
    if namespace:
        found["namespace"] = namespace
    return found


def _check_text(value: object, key: str, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise errors.InvalidTaskError(f"{where}.{key} must be a string; got {kind(value)}")


def _number_field(
    value: object, field: str, error: type[errors.Error] = errors.InvalidTaskError
) -> float | None:
    """A number of seconds, or None when absent."""
    if value is None:
        return None
    number = as_number(value)
    if number is None:
        raise error(f"{field} must be a number of seconds")
    return number


def _whole_us(value: object, field: str, error: type[errors.Error]) -> int | None:
    """Whole microseconds (an ``int64``), or None when absent; ranges are :mod:`pushd.tasks`'s."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > INT64_MAX:
        raise error(f"{field} must be whole microseconds (an integer); got {kind(value)}")
    return value


def _headers(value: object, where: str) -> encoding.HeadersInput | None:
    """An object of name -> string or list of strings, or a list of [name, value] pairs.

    Only the outer shape is checked here: :func:`encoding.normalize_headers` checks each name
    and value when the task is built, raising :mod:`pushd.errors` classes only.
    """
    if value is None or isinstance(value, dict | list):
        return cast("encoding.HeadersInput | None", value)
    raise errors.InvalidTaskError(
        f"{where}.headers must be an object or a list of [name, value] pairs; got {kind(value)}"
    )


def _params(value: object, where: str) -> encoding.ParamsInput | None:
    """An object of name -> string, number or a list of them (repeated keys).

    As for headers, :func:`encoding.encode_params` checks each value when the task is built
    (booleans become ``True``/``False``, as App Engine's ``str()`` makes them).
    """
    if value is None or isinstance(value, dict):
        return cast("encoding.ParamsInput | None", value)
    raise errors.InvalidTaskError(f"{where}.params must be an object; got {kind(value)}")


def _eta(value: object, where: str) -> datetime.datetime | float | None:
    """Epoch seconds, or RFC 3339 text (no offset means UTC)."""
    if value is None:
        return None
    number = as_number(value)
    if number is not None:
        return number
    if not isinstance(value, str):
        raise errors.InvalidTaskError(
            f"{where}.eta must be epoch seconds or RFC 3339 text; got {kind(value)}"
        )
    return parse_rfc3339(value, f"{where}.eta")


def parse_age_limit_s(value: object, field: str) -> int | None:
    """Seconds, or text such as ``90s``, ``15m``, ``1.5h``, ``2d``; rounded up, as App Engine does."""
    if value is None:
        return None
    number = as_number(value)
    if isinstance(value, str):
        number = durations.seconds(value)
    if number is None or not 0 <= number <= INT64_MAX:  # also refuses NaN
        raise errors.InvalidTaskRetryOptionsError(
            f"{field} must be seconds (>= 0) or a duration such as 90s, 15m, 1.5h or 2d"
        )
    return math.ceil(number)


def _retry_options(value: object, where: str) -> models.RetryParameters | None:
    """``retry_options``; the ranges App Engine checks are checked by :mod:`pushd.tasks`."""
    if value is None:
        return None
    field, bad = f"{where}.retry_options", errors.InvalidTaskRetryOptionsError
    if not isinstance(value, dict):
        raise bad(f"{field} must be an object")
    check_fields(value, RETRY_FIELDS, field, bad)
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
    if value > INT32_MAX:
        raise errors.InvalidTaskRetryOptionsError(f"{field} must be at most {INT32_MAX}")
    return value
