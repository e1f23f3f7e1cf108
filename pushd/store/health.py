"""How the store is doing: the one place a store outage is logged, and what /healthz reports.

A store that cannot be written (disk full) or read (a damaged file) fails every request and
every claim with :class:`~pushd.errors.StoreUnavailableError`. The API, the scheduler and the
housekeeper all report that here, so the log gets one ``store_unavailable`` line per cause every
:data:`LOG_EVERY_S` (saying how many were folded into it), not one per request and retry: a
damaged file under load otherwise wrote thousands of lines a second, each with a traceback.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Protocol, runtime_checkable

from pushd import clock, errors, logs

LOG_EVERY_S = 5.0
#: SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGED_CODES = (11, 26)
RECOVERY_HINT = (
    "stop pushd and restore the file from a backup, or salvage it with "
    "`sqlite3 broken.db .recover | sqlite3 fixed.db` (README: Recovering a damaged database)"
)


@runtime_checkable
class Watched(Protocol):
    """A store that knows when it is unavailable (the SQLite store)."""

    @property
    def problem(self) -> str | None:
        """Why the store cannot be used now; None while it works."""


def is_damaged(exc: BaseException) -> bool:
    """``exc`` says the database file is damaged (not merely full, locked or unreadable now)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.DatabaseError) and code is not None:
        return code & 0xFF in _DAMAGED_CODES
    return isinstance(exc, sqlite3.DatabaseError) and "malformed" in str(exc)


def damaged_error(exc: BaseException) -> errors.StoreUnavailableError:
    return errors.StoreUnavailableError(
        f"the database file is damaged ({exc}); nothing of this request was done: {RECOVERY_HINT}"
    )


class _Reporter:
    """Rate-limits ``store_unavailable``: the first line of a cause at once, then one per
    :data:`LOG_EVERY_S` with ``repeated`` saying how many failures it stands for."""

    def __init__(self, clock_: clock.Clock | None = None) -> None:
        self._clock = clock_ or clock.SystemClock()
        self._last: dict[str, int] = {}
        self._folded: dict[str, int] = {}

    def report(self, during: str, exc: errors.TransientError) -> None:
        cause = exc.message
        now = self._clock.monotonic_us()  # a duration: steps of the wall clock do not count
        last = self._last.get(cause)
        if last is not None and 0 <= now - last < clock.seconds_to_us(LOG_EVERY_S):
            self._folded[cause] = self._folded.get(cause, 0) + 1
            return
        self._last[cause] = now
        repeated = self._folded.pop(cause, 0)
        if len(self._last) > 64:  # causes carry no unbounded detail, but stay bounded anyway
            self._last = {cause: now}
        logs.event(
            "store_unavailable",
            logging.ERROR if "damaged" in cause else logging.WARNING,
            during=during,
            error=cause,
            repeated=repeated,
        )


_reporter = _Reporter()


def report(during: str, exc: errors.TransientError) -> None:
    """Log that the store refused ``during`` (rate-limited per cause)."""
    _reporter.report(during, exc)
