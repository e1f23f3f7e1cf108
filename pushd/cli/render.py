"""How client commands show things to people: times, payloads, tables, retry options."""

from __future__ import annotations

import base64
import binascii
import datetime
import os
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from pushd import clock

# ------------------------------------------------------------------ formatting

#: Tables show times closer than this as "in 5s" / "3m ago", others as UTC ISO seconds.
RELATIVE_WITHIN_US = 86_400 * clock.US_PER_SECOND
#: Widest payload a table shows; ``pushdctl tasks QUEUE NAME`` and --json show all of it.
PAYLOAD_CELL_WIDTH = 60


def iso(us: int | None) -> str:
    """UTC ISO 8601 to the second, e.g. ``2024-05-01T12:00:00Z``; ``-`` for None."""
    if us is None:
        return "-"
    seconds = us // clock.US_PER_SECOND
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"@{seconds}"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def span(seconds: int) -> str:
    """A duration for people: ``45s``, ``4m10s``, ``3h05m``, ``2d04h``."""
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s" if seconds else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if hours else f"{days}d"


def relative(us: int, now_us: int) -> str:
    """``in 5s``, ``3m ago`` or ``now`` (within a second)."""
    delta = us - now_us
    seconds = abs(delta) // clock.US_PER_SECOND
    if seconds == 0:
        return "now"
    return f"in {span(seconds)}" if delta > 0 else f"{span(seconds)} ago"


def when(us: int | None, now_us: int) -> str:
    """A table cell: relative within a day, else ISO; ``-`` for None."""
    if us is None:
        return "-"
    if abs(us - now_us) < RELATIVE_WITHIN_US:
        return relative(us, now_us)
    return iso(us)


def when_long(us: int | None, now_us: int) -> str:
    """A detail line: ``2024-05-01T12:00:00Z (in 5s)``."""
    if us is None:
        return "-"
    return f"{iso(us)} ({relative(us, now_us)})"


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` on one line: control and other unprintable characters escaped."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


def show_payload(encoded: str | None) -> str:
    """A payload for people: its text if UTF-8 (escaped onto one line), else ``base64:...``."""
    if encoded is None:
        return "-"
    try:
        data = base64.b64decode(encoded)
    except (binascii.Error, ValueError):
        return f"base64:{encoded}"
    if not data:
        return "(empty)"
    try:
        return printable(data.decode("utf-8"))
    except UnicodeDecodeError:
        return f"base64:{encoded}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def show(value: object) -> str:
    """A value in a table cell or detail line; ``-`` for None or empty text."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return printable(str(value))


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[int] = (),
    width: int | None = None,
    flexible: Sequence[int] = (),
) -> list[str]:
    """Lines of an aligned table: two spaces between columns, ``right`` columns right-aligned,
    no trailing spaces. With a ``width`` (the terminal's), the ``flexible`` columns, in that
    order, are narrowed (cells cut with ``…``) until the lines fit, or down to their minimum."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    if width is not None:
        widths = _fit(widths, headers, width, flexible)

    def fmt(cells: Sequence[str]) -> str:
        parts = [
            clip(cell, w).rjust(w) if i in right else clip(cell, w).ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [fmt(headers), *(fmt(row) for row in rows)]


#: A narrowed column keeps at least this many characters (or its header's width).
MIN_COLUMN_WIDTH = 8


def _fit(
    widths: list[int], headers: Sequence[str], width: int, flexible: Sequence[int]
) -> list[int]:
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    fitted = list(widths)
    for i in flexible:
        if excess <= 0:
            break
        least = max(len(headers[i]), MIN_COLUMN_WIDTH)
        cut = min(excess, max(0, fitted[i] - least))
        fitted[i] -= cut
        excess -= cut
    return fitted


def terminal_width(stream: TextIO) -> int | None:
    """The width to fit tables in: ``$COLUMNS``, else the terminal's; None when ``stream`` is
    not a terminal (a pipe or a file gets every character, for grep)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if not stream.isatty():
            return None
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return None


def details(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """``key:  value`` lines with the values aligned."""
    width = max((len(key) for key, _ in pairs), default=0) + 1
    return [f"{key + ':' if key else '':<{width}}  {value}".rstrip() for key, value in pairs]


def clip(text: str, width: int = PAYLOAD_CELL_WIDTH) -> str:
    """``text`` cut to ``width`` characters, ending in ``…`` when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def retry_text(options: Mapping[str, Any] | None) -> str:
    """``retry_limit=4 age_limit=2d min_backoff=0.1s ...`` for the options that are set."""
    if options is None:
        return "-"
    parts = []
    if options.get("task_retry_limit") is not None:
        parts.append(f"retry_limit={options['task_retry_limit']}")
    if options.get("task_age_limit") is not None:
        parts.append(f"age_limit={span(int(options['task_age_limit']))}")
    if options.get("min_backoff_seconds") is not None:
        parts.append(f"min_backoff={options['min_backoff_seconds']:g}s")
    if options.get("max_backoff_seconds") is not None:
        parts.append(f"max_backoff={options['max_backoff_seconds']:g}s")
    if options.get("max_doublings") is not None:
        parts.append(f"max_doublings={options['max_doublings']}")
    return " ".join(parts) or "App Engine's defaults"
