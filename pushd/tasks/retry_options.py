"""A task's retry options (SPEC 1.12): the one check every API and the client use."""

from __future__ import annotations

import math

from pushd import encoding, errors, models
from pushd.tasks.numbers import as_number, finite


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
    number = as_number(value)
    if number is None or (whole and not isinstance(number, int)):
        kind = "an integer" if whole else "a number"
        raise errors.InvalidTaskRetryOptionsError(
            f"retry option {field} must be {kind}; got {encoding.show(value)}"
        )
    if not finite(number) or number < 0:
        raise errors.InvalidTaskRetryOptionsError(
            f"retry option {field} must be a finite number >= 0; got {number}"
        )
    return number
