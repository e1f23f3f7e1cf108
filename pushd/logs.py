"""Logging: one line per event, with a stable event name and key=value fields (or JSON).

Every line starts with its time, RFC 3339 in UTC to the millisecond (``2024-05-01T12:00:00.123Z``;
the ``time`` field in JSON), so lines from several daemons and machines sort together whatever
their time zones, and a log kept without a journal still says when each event happened.

Event names (the ``event`` field) are a public interface for log processors:

==========================  ==============================================================
``listening``               the HTTP API is up (``url``, ``queues``, ``db``, the versions of
                            pushd, Python, SQLite and the PostgreSQL server)
``queue_yaml_missing``      no queue.yaml: the implicit ``default`` queue alone runs (``file``)
``queue_targets``           at start: push queues whose tasks go to ``url`` (``target``, ``queues``)
``target_unmapped``         a queue's ``target`` is not in ``targets:``; its tasks go to ``url``
                            (default_target); at start and on reload
``task_delivered``          a delivery got a 2xx (``queue``, ``task``, ``status``, ``ms``; debug)
``task_retry``              a delivery failed and will run again (``error``, ``retry``, ``delay_s``)
``task_dead_lettered``      a task ran out of retries (push) or leases (pull): now a dead letter (``reason``)
``transport_experimental``  at start: deliveries go through pyreqwest, which keeps neither the
                            header case, address pinning, deadlines over trickled answers nor
                            the 64 KiB head bound (``transport``; warning)
``delivery_failed``         a bug broke one delivery (traceback); its claim expires, it runs again
``delivery_local_failure``  a request never left (out of files, memory or ports): the task is
                            given back, no attempt counted (``error``, ``retry_in_s``; limited)
``http_bad_request``        a client sent malformed HTTP (``peer``, ``error``; info, limited)
``http_server_error``       aiohttp failed outside a handler (traceback; limited)
``api_connections_full``    the API held as many connections as it may (``limit``, ``closed``:
                            ``quietest`` slow client closed, or the ``new`` one refused; limited)
``store_unavailable``       the store refused (disk full, file damaged, database down); retried;
                            once per cause every 5 s (``repeated``: failures folded in)
``database_checked``        SQLite: the file passed ``quick_check`` at start, slowly (``seconds``)
``database_check_skipped``  SQLite: ``quick_check`` ran past its budget; the file is used unchecked
``claims_given_back``       SQLite: claims left by the previous daemon made due now (``tasks``)
``wal_missing``             SQLite: the ``-wal`` file was deleted or replaced; checkpointing
``wal_recreated``           SQLite: the WAL is in the database file and a new ``-wal`` is in use
``wal_reopen_failed``       SQLite: that did not work (``error``); tried again in a second
``queue_paused``            the operator paused a queue (API, console or CLI)
``queue_resumed``           the operator resumed a queue
``queue_purged``            the operator purged a queue (``tasks``)
``api_queue_created``       the Cloud Tasks API created a queue (``queue``, ``rate``)
``api_queue_updated``       the Cloud Tasks API changed a queue it created (``queue``, ``rate``)
``api_queue_deleted``       the Cloud Tasks API deleted a queue it created, with its tasks
``queue_throttled``         a 503/429 lowered a queue's enforced rate
``queue_recovered``         a queue's enforced rate is back at its configured rate (once, idle or not)
``config_reloaded``         SIGHUP reloaded queue.yaml, all of it (``queues``)
``config_rejected``         SIGHUP kept the old queue.yaml: invalid, or a mode change under
                            stored tasks (``problems``, ``first`` names the queue and count)
``queue_stranded``          at start: ``queue`` holds ``tasks`` its mode cannot run (listed,
                            deletable, never dispatched)
``cluster_joined``          PostgreSQL: this daemon joined the others (``daemons``, ``owned``)
``queue_owned``             PostgreSQL: this daemon now dispatches ``queue``
``queue_given_up``          PostgreSQL: another daemon dispatches ``queue`` from now on
``queues_dropped``          PostgreSQL: the database was unreachable too long to keep them
``changes_listening_again`` PostgreSQL: the change listener was lost and is back
``oidc_key_created``        the first OIDC signing key was made and stored (``kid``)
``oidc_key_rotated``        the operator rotated the OIDC signing key: ``kid`` signs from now on
``oidc_keys_dropped``       retired OIDC keys whose last token has expired were dropped (``keys``)
``shutdown``                the daemon is stopping (``in_flight``)
==========================  ==============================================================
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import sys
from collections.abc import Callable
from typing import Any

LOGGER_NAME = "pushd"
#: The one logger (getLogger takes logging's module lock on every call: once, here).
_LOGGER = logging.getLogger(LOGGER_NAME)


class _Formatter(logging.Formatter):
    def __init__(self, json_lines: bool) -> None:
        super().__init__()
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        event = getattr(record, "event", None) or record.getMessage()
        when = timestamp(record.created)
        if self.json_lines:
            data = {"time": when, "level": record.levelname.lower(), "event": event, **fields}
            if record.exc_info:
                data["exception"] = self.formatException(record.exc_info)
            return json.dumps(data, default=str)
        parts = [when, f"{record.levelname.lower():7}", str(event)]
        parts += [f"{k}={_text(v)}" for k, v in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def timestamp(seconds: float) -> str:
    """POSIX ``seconds`` as RFC 3339 in UTC to the millisecond: ``2024-05-01T12:00:00.123Z``.
    Milliseconds are cut, not rounded, so a line never claims a time later than its event."""
    ms = math.floor(seconds * 1000)
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        milliseconds=ms
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _text(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


def setup(level: str = "info", fmt: str = "text") -> None:
    """Send pushd's events to stderr, one per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt == "json"))
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def enabled(level: int) -> bool:
    """Whether an event at ``level`` would be logged: a caller on a hot path (one line per
    delivery at DEBUG) asks first and builds its fields only then."""
    return _LOGGER.isEnabledFor(level)


def event(
    name: str,
    level: int = logging.INFO,
    *,
    always: bool = False,
    exc_info: bool | BaseException = False,
    **fields: object,
) -> None:
    """Log one event with its fields; ``always`` prints it whatever the configured level,
    ``exc_info`` adds the exception being handled (True) or the one given (its traceback) to
    the line."""
    logger = _LOGGER
    if always and not logger.isEnabledFor(level):
        record = logger.makeRecord(
            LOGGER_NAME, level, "", 0, name, (), None, extra={"event": name, "fields": fields}
        )
        logger.handle(record)  # Logger.handle skips the logger's own level check
        return
    if logger.isEnabledFor(level):
        logger.log(level, name, exc_info=exc_info, extra={"event": name, "fields": fields})


class Limited:
    """One event that outside parties can trigger at will (bad requests, a connection flood),
    logged at most ``burst`` times per ``window_us``.

    The lines held back are counted and reported as ``suppressed=N`` on the next line logged, so
    an operator sees that a flood happened and how big it was, never the flood itself.
    """

    def __init__(
        self,
        name: str,
        level: int,
        now_us: Callable[[], int],
        *,
        burst: int = 10,
        window_us: int = 10_000_000,
    ) -> None:
        self.name, self.level, self._now_us = name, level, now_us
        self.burst, self.window_us = burst, window_us
        self._window_end: int | None = None
        self._left = 0
        self.suppressed = 0

    def __call__(self, *, exc_info: bool | BaseException = False, **fields: object) -> bool:
        """Log the event unless this window's lines are used up; True if it was logged."""
        now = self._now_us()
        if self._window_end is None or now >= self._window_end:
            self._window_end, self._left = now + self.window_us, self.burst
        if self._left <= 0:
            self.suppressed += 1
            return False
        self._left -= 1
        if self.suppressed:
            fields["suppressed"] = self.suppressed
            self.suppressed = 0
        logger = logging.getLogger(LOGGER_NAME)
        if logger.isEnabledFor(self.level):
            extra = {"event": self.name, "fields": fields}
            logger.log(self.level, self.name, exc_info=exc_info, extra=extra)
        return True
