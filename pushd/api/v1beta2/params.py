"""The requests of TaskQueue REST v1beta2 in: path, query and form parameters, and Task
resources, each checked where it enters with an error naming the field."""

from __future__ import annotations

import datetime
import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pushd import errors, models, tasks, wire
from pushd.api.keys import service_of
from pushd.api.v1beta2 import resources
from pushd.service import pull

if TYPE_CHECKING:
    from aiohttp import web

    from pushd.queue_yaml import config

_FORM = "application/x-www-form-urlencoded"
_INT32 = re.compile(r"[+-]?[0-9]{1,10}")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64 = re.compile(r"-?[0-9]{1,19}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})
_LONG_QUEUE_NAME = re.compile(r"projects/[^/]+/taskqueues/(.+)")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def queue(request: web.Request) -> config.QueueConfig:
    """The pull queue the path names, once the common query parameters are checked."""
    alt = request.query.get("alt", "json")
    if alt != "json":
        raise errors.Error(f"alt={alt!r} is not supported; the only value is 'json'")
    cfg = service_of(request).queues.queue(request.match_info["queue"])
    pull.require_pull(cfg, "use the TaskQueue REST API")
    return cfg


def task_name(request: web.Request) -> str:
    return tasks.check_task_name(request.match_info["task"])


def int32(
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


def flag(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise errors.Error(f"{name} must be true or false; got {raw[:40]!r}")


async def lease_params(request: web.Request) -> dict[str, str]:
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


def task_resource(raw: bytes) -> dict[str, object]:
    """A Task resource; null fields count as absent."""
    body = wire.loads(raw)
    if not isinstance(body, dict):
        raise errors.Error("the request body must be a Task JSON object")
    for key in body:
        if key not in resources.TASK_FIELDS:
            fields = ", ".join(resources.TASK_FIELDS)
            raise errors.Error(f"the Task resource has no field {key!r}; its fields: {fields}")
    return {key: value for key, value in body.items() if value is not None}


def string(body: Mapping[str, object], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise errors.Error(f"{key} must be a string; got {_kind(value)}")
    return value


def int64(body: Mapping[str, object], key: str, error: type[errors.Error]) -> int | None:
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


def check_queue_name(
    body: Mapping[str, object], cfg: config.QueueConfig, *, required: bool
) -> None:
    given = string(body, "queueName")
    if given is None:
        if required:
            raise errors.Error(f"queueName is required; it must be {cfg.name!r}")
        return
    long_form = _LONG_QUEUE_NAME.fullmatch(given)
    if (long_form.group(1) if long_form else given) != cfg.name:
        raise errors.Error(
            f"queueName {given[:120]!r} does not match the queue of the path, {cfg.name!r}"
        )


def check_id(body: Mapping[str, object], name: str) -> None:
    given = string(body, "id")
    if given is not None and given != name:
        raise errors.Error(f"id {given[:120]!r} does not match the task of the path, {name!r}")


def _eta(lease_us: int) -> datetime.datetime:
    try:
        return _EPOCH + datetime.timedelta(microseconds=lease_us)
    except OverflowError:
        raise errors.InvalidEtaError(f"leaseTimestamp {lease_us} µs is out of range") from None


def decode_insert(body: Mapping[str, object], cfg: config.QueueConfig) -> tasks.TaskRequest:
    check_queue_name(body, cfg, required=True)
    encoded = string(body, "payloadBase64")
    if encoded is None:
        raise errors.Error("payloadBase64 is required")
    lease_us = int64(body, "leaseTimestamp", errors.InvalidEtaError)
    return tasks.TaskRequest(
        name=string(body, "id") or None,
        method=models.Method.PULL.value,
        payload=wire.b64decode(encoded, "payloadBase64"),
        tag=string(body, "tag"),
        eta=None if not lease_us else _eta(lease_us),
    )
