"""Argument types of the command line: each turns one text into a value or a clear error."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

from pushd import errors

N = TypeVar("N", int, float)


def header_arg(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not 'Name: value'")
    return name.strip(), value.strip()


def param_arg(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value")
    return key, value


def eta_arg(text: str) -> float | str:
    """POSIX seconds, or RFC 3339 text (checked here, sent as written)."""
    from pushd import wire

    try:
        return float(text)
    except ValueError:
        pass
    try:
        wire.parse_rfc3339(text, "TIME")
    except errors.Error as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return text


def age_arg(text: str) -> float | str:
    """Seconds, or a duration such as 90s, 15m, 1.5h or 2d."""
    from pushd import wire

    value: float | str
    try:
        value = float(text)
    except ValueError:
        value = text
    try:
        wire.parse_age_limit_s(value, "AGE")
    except errors.Error as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return value


def _number(text: str, convert: Callable[[str], N], what: str) -> N:
    """``convert(text)``, or the usage error "'TEXT' is not WHAT"."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _check(ok: bool, problem: str) -> None:
    if not ok:
        raise argparse.ArgumentTypeError(problem)


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    _check(value >= 1, f"must be at least 1; got {value}")
    return value


def positive_seconds(text: str) -> float:
    value = _number(text, float, "a number of seconds")
    _check(value > 0, f"must be more than 0; got {text}")
    return value


def http_status(text: str) -> int:
    value = _number(text, int, "an HTTP status code")
    _check(100 <= value <= 599, f"{value} is not an HTTP status code (100 to 599)")
    return value


def share(text: str) -> float:
    value = _number(text, float, "a number from 0 to 1")
    _check(0 <= value <= 1, f"{text} is not a share from 0 to 1 (0.3 is 30%)")  # NaN fails too
    return value


def seconds(text: str) -> float:
    value = _number(text, float, "a number of seconds")
    _check(0 <= value < math.inf, f"must be 0 or more seconds; got {text}")
    return value
