"""Models out: tasks, dead letters, add results, queues and errors as their JSON shapes.

Times go out twice: as epoch seconds (a float, not always exact to the microsecond) and as
integer microseconds (``*_us``, exact). Binary values go out as standard base64 with padding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pushd import clock, errors, models
from pushd.wire.values import b64encode

if TYPE_CHECKING:
    from pushd.wire import shapes


def _optional_seconds(us: int | None) -> float | None:
    return None if us is None else clock.us_to_seconds(us)


def encode_retry(options: models.RetryParameters | None) -> shapes.RetryOptionsJSON:
    o = options or models.RetryParameters()
    return {
        "task_retry_limit": o.task_retry_limit,
        "task_age_limit": o.task_age_limit_s,
        "min_backoff_seconds": o.min_backoff_s,
        "max_backoff_seconds": o.max_backoff_s,
        "max_doublings": o.max_doublings,
    }


def encode_task(task: models.Task, *, payload: bool = True) -> shapes.TaskJSON:
    """A task; ``payload=False`` leaves the payload out (lists)."""
    try:
        tag_text = None if task.tag is None else task.tag.decode("utf-8")
    except UnicodeDecodeError:
        tag_text = None
    out: shapes.TaskJSON = {
        "name": task.name,
        "queue": task.queue,
        "method": task.method.value,
        "url": task.url,
        "headers": [[k, v] for k, v in task.shown_headers],
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


def encode_last_attempt(attempt: models.LastAttempt | None) -> shapes.LastAttemptJSON | None:
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
) -> shapes.DeadTaskJSON:
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


def encode_add_result(result: models.AddResult) -> shapes.AddResultJSON:
    return {
        "name": result.task.name,
        "queue": result.task.queue,
        "eta": clock.us_to_seconds(result.task.eta_us),
        "eta_us": result.task.eta_us,
        "result": result_name(result),
    }


def encode_queue(cfg: shapes.QueueSettings, stats: models.QueueStats) -> shapes.QueueJSON:
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
) -> shapes.ErrorJSON:
    body: shapes.ErrorBodyJSON = {"code": http_status, "status": status, "message": message}
    if exception is not None:
        body["exception"] = exception
    return {"error": body}
