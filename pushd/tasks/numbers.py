"""Numbers of seconds and microseconds as App Engine's client reads them, and the task times
built from them: the ETA (SPEC 1.8) and the dispatch deadline (SPEC 1.10)."""

from __future__ import annotations

import datetime
import math
from typing import TYPE_CHECKING

from pushd import clock, encoding, errors, models

if TYPE_CHECKING:
    from pushd.tasks.request import TaskRequest

#: Floats this large are whole numbers, and times 1e6 they could overflow to infinity.
_WHOLE_FLOAT_S = 2.0**53


def as_number(value: object) -> int | float | None:
    """``value`` if it is an int or float (bool excluded), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def format_us(us: int) -> str:
    """µs as exact decimal seconds (``2592000.000001``), whatever their size."""
    whole, frac = divmod(us, clock.US_PER_SECOND)
    return f"{whole}.{frac:06d}"


def finite(number: int | float) -> bool:
    # math.isfinite(10**400) raises OverflowError; every int is finite.
    return isinstance(number, int) or math.isfinite(number)


def seconds_to_us(seconds: int | float) -> int:
    # ints stay exact (and never overflow a float); floats round like App Engine's eta_usec,
    # except huge ones, which are whole already and would overflow (found by the API fuzz).
    if isinstance(seconds, int) or abs(seconds) >= _WHOLE_FLOAT_S:
        return int(seconds) * clock.US_PER_SECOND
    return clock.seconds_to_us(seconds)


def eta_us_of(request: TaskRequest, now_us: int) -> int:
    """SPEC 1.8: the ETA in µs from ``eta_us``, ``eta`` or ``countdown`` (none: now), at most
    30 days ahead."""
    if request.eta_us is None and request.eta is None and request.countdown is None:
        return now_us
    given = [f for f in ("eta_us", "eta", "countdown") if getattr(request, f) is not None]
    if len(given) > 1:
        raise errors.InvalidTaskError("Cannot use a countdown and ETA together")
    if request.eta_us is not None:
        eta_us = whole_us(request.eta_us, "eta_us", errors.InvalidEtaError)
    elif request.eta is not None:
        eta_us = _eta_to_us(request.eta)
    elif request.countdown is not None:
        eta_us = now_us + seconds_to_us(_finite_seconds(_countdown_seconds(request.countdown)))
    else:
        return now_us
    if eta_us - now_us > models.MAX_ETA_AHEAD_US:
        raise errors.InvalidEtaError(
            f"ETA must be at most 30 days ahead; found {format_us(eta_us - now_us)} s ahead"
        )
    return eta_us


def whole_us(value: object, field: str, error: type[errors.Error]) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise error(f"{field} must be whole microseconds; got {encoding.show(value)}")
    return value


def _eta_to_us(eta: object) -> int:
    """A ``datetime`` (naive meaning UTC: a deliberate difference, App Engine uses the process's
    local time) or POSIX seconds."""
    if isinstance(eta, datetime.datetime):
        return clock.datetime_to_us(eta)
    number = as_number(eta)
    if number is None:
        raise errors.InvalidTaskError(
            f"ETA must be a datetime.datetime or POSIX seconds; got {encoding.show(eta)}"
        )
    return seconds_to_us(_finite_seconds(number))


def _countdown_seconds(countdown: object) -> int | float:
    if isinstance(countdown, str):
        # App Engine calls float(countdown), so numeric strings are accepted.
        try:
            return float(countdown)
        except ValueError:
            pass
    number = None if isinstance(countdown, str) else as_number(countdown)
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


def dispatch_deadline_us_of(request: TaskRequest, *, pull: bool) -> int | None:
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
        found_us = whole_us(
            deadline_us, "dispatch_deadline_us", errors.InvalidDispatchDeadlineError
        )
        shown = format_us(found_us)
    else:
        seconds = as_number(deadline)
        if seconds is None or not finite(seconds):
            raise errors.InvalidDispatchDeadlineError(
                f"dispatch_deadline must be a number of seconds; got {encoding.show(deadline)}"
            )
        found_us, shown = seconds_to_us(seconds), str(deadline)
    if not models.MIN_DISPATCH_DEADLINE_US <= found_us <= models.MAX_DISPATCH_DEADLINE_US:
        raise errors.InvalidDispatchDeadlineError(
            f"dispatch_deadline must be between 15 s and 24 h (86400 s); found {shown} s"
        )
    return found_us
