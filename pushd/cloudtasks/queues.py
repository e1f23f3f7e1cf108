"""CreateQueue's and UpdateQueue's Queue as the settings pushd stores (:class:`models.ApiQueue`).

Which fields are taken: UpdateQueue's ``update_mask`` names them (a message names every field
under it); without a mask, every field given (a number not zero, a message present), as the real
service reads it. A zero where zero is no valid setting (the rate, the concurrency, the
attempts) means Cloud Tasks' default (CLOUDTASKS.md 1.3). Output-only fields (``name``,
``state``, ``purge_time``, ``max_burst_size``) in a request are ignored, but a mask naming
``state`` is refused: the state changes by PauseQueue and ResumeQueue only. Bounds are the real
service's: at most 500 dispatches a second, 5,000 concurrent dispatches, ``max_attempts`` of -1
(unlimited) or more; no negative durations or doublings; ``min_backoff`` not above
``max_backoff``. Every refusal is INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any

from pushd import clock, models
from pushd.cloudtasks import convert, rpc

MAX_RATE = 500.0
MAX_CONCURRENT = 5000
_DEFAULTS = models.ApiQueue(name="")
#: Fields a request may carry that pushd does not keep (accepted, as the emulators do).
_IGNORED = {
    "name",
    "purge_time",
    "rate_limits.max_burst_size",
    "stackdriver_logging_config",
    "stackdriver_logging_config.sampling_ratio",
    "task_ttl",
    "tombstone_ttl",
    "stats",
    "type",
}
_RATE = "rate_limits.max_dispatches_per_second"
_CONCURRENT = "rate_limits.max_concurrent_dispatches"
_ATTEMPTS = "retry_config.max_attempts"
_DURATION = "retry_config.max_retry_duration"
_MIN_BACKOFF = "retry_config.min_backoff"
_MAX_BACKOFF = "retry_config.max_backoff"
_DOUBLINGS = "retry_config.max_doublings"
_LEAVES = (_RATE, _CONCURRENT, _ATTEMPTS, _DURATION, _MIN_BACKOFF, _MAX_BACKOFF, _DOUBLINGS)
#: Where the App Engine routing override sits in each version's Queue.
_ROUTING = {
    "v2": "app_engine_routing_override",
    "v2beta3": "app_engine_http_queue.app_engine_routing_override",
}


def _get(message: Any, path: str) -> Any:
    for part in path.split("."):
        message = getattr(message, part)
    return message


def _present(message: Any, path: str) -> bool:
    """Whether ``path`` holds a value in ``message`` (set, as a client sends it)."""
    head, _, rest = path.partition(".")
    if not rest:
        field = message.DESCRIPTOR.fields_by_name[head]
        if field.message_type is not None:
            return bool(message.HasField(head))
        return bool(getattr(message, head))
    return bool(message.HasField(head)) and _present(getattr(message, head), rest)


def _known(version: str) -> dict[str, tuple[str, ...]]:
    """Every path a mask may name, with the leaves it stands for."""
    routing = _ROUTING[version]
    paths: dict[str, tuple[str, ...]] = {leaf: (leaf,) for leaf in _LEAVES}
    paths["rate_limits"] = (_RATE, _CONCURRENT)
    paths["retry_config"] = (_ATTEMPTS, _DURATION, _MIN_BACKOFF, _MAX_BACKOFF, _DOUBLINGS)
    paths[routing] = (routing,)
    for part in ("service", "version", "instance", "host"):
        paths[f"{routing}.{part}"] = (routing,)
    if version == "v2beta3":
        paths["app_engine_http_queue"] = (routing,)
    return paths


def chosen(version: str, queue: Any, mask: Iterable[str] | None) -> list[str]:
    """The leaves (and the routing) a request sets: those ``mask`` names, or, without one,
    those ``queue`` carries."""
    known = _known(version)
    if mask is None:
        return [path for path in (*_LEAVES, _ROUTING[version]) if _present(queue, path)]
    found: list[str] = []
    for path in mask:
        if path == "state":
            raise rpc.invalid(
                "update_mask: Queue.state cannot be changed by UpdateQueue; use PauseQueue "
                "or ResumeQueue"
            )
        if path == "http_target":
            raise rpc.invalid("update_mask: Queue.http_target is not supported by pushd yet")
        if path in _IGNORED:
            continue
        if path not in known:
            raise rpc.invalid(f"update_mask: {path!r} is not a field of Queue pushd can update")
        found.extend(p for p in known[path] if p not in found)
    return found


def _seconds(value: Any, path: str) -> float:
    us = int(value.ToMicroseconds())
    if us < 0:
        raise rpc.invalid(f"Queue.{path} must not be negative; got {value.ToJsonString()}")
    return us / clock.US_PER_SECOND


def _rate(value: float) -> float:
    if math.isnan(value) or value < 0 or value > MAX_RATE:
        raise rpc.invalid(
            f"Queue.{_RATE} must be more than 0 and at most {MAX_RATE:g}; got {value}"
        )
    return value or _DEFAULTS.rate


def _concurrent(value: int) -> int:
    if value < 0 or value > MAX_CONCURRENT:
        raise rpc.invalid(
            f"Queue.{_CONCURRENT} must be between 1 and {MAX_CONCURRENT}; got {value}"
        )
    return value or _DEFAULTS.max_concurrent


def _attempts(value: int) -> int:
    if value < -1:
        raise rpc.invalid(f"Queue.{_ATTEMPTS} must be -1 (unlimited) or more; got {value}")
    return value or _DEFAULTS.max_attempts


def _doublings(value: int) -> int:
    if value < 0:
        raise rpc.invalid(f"Queue.{_DOUBLINGS} must not be negative; got {value}")
    return value


#: Each leaf: the ApiQueue field it sets and how its value is read and checked.
_SETTERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    _RATE: ("rate", _rate),
    _CONCURRENT: ("max_concurrent", _concurrent),
    _ATTEMPTS: ("max_attempts", _attempts),
    _DURATION: ("max_retry_duration_s", lambda v: int(_seconds(v, _DURATION))),
    _MIN_BACKOFF: ("min_backoff_s", lambda v: _seconds(v, _MIN_BACKOFF)),
    _MAX_BACKOFF: ("max_backoff_s", lambda v: _seconds(v, _MAX_BACKOFF)),
    _DOUBLINGS: ("max_doublings", _doublings),
}


def api_queue(
    version: str, queue: Any, base: models.ApiQueue, mask: Iterable[str] | None
) -> models.ApiQueue:
    """``base`` (a stored queue, or Cloud Tasks' defaults for a new one) with what the request
    sets; INVALID_ARGUMENT naming the field for a value the real service refuses."""
    if version not in _ROUTING:  # v2beta2: its queues' shapes are another's (pull queues)
        raise rpc.RpcError(
            rpc.Code.FAILED_PRECONDITION,
            f"pushd creates and updates queues through v2 and v2beta3, not {version}: call "
            "CreateQueue or UpdateQueue there (the queue is then served by every version)",
        )
    if version == "v2beta3" and queue.type == 1:  # PULL
        raise rpc.invalid(
            "Queue.type PULL is not served by v2beta3 in pushd; use pushd's pull queues "
            "(queue.yaml) or v2beta2"
        )
    if version == "v2beta3" and queue.HasField("http_target"):
        raise rpc.invalid("Queue.http_target is not supported by pushd yet")
    changes: dict[str, Any] = {}
    routing = _ROUTING[version]
    for path in chosen(version, queue, mask):
        if path == routing:
            changes["target"] = convert.target_of(_get(queue, routing))
            continue
        field, read = _SETTERS[path]
        changes[field] = read(_get(queue, path))
    made = dataclasses.replace(base, **changes)
    if made.min_backoff_s > made.max_backoff_s:
        raise rpc.invalid(
            f"Queue.{_MIN_BACKOFF} ({made.min_backoff_s:g}s) must not exceed "
            f"Queue.{_MAX_BACKOFF} ({made.max_backoff_s:g}s)"
        )
    return made
