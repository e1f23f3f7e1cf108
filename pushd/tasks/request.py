"""What a producer submits to build a task."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pushd import encoding, models
    from pushd.tasks.http_target import HttpTarget


@dataclass(kw_only=True, slots=True)
class TaskRequest:
    """What a producer submits: the arguments of App Engine's ``taskqueue.Task(...)``.

    Not frozen, though nothing changes one once made: one is made for every task added, and a
    frozen dataclass's ``__init__`` (``object.__setattr__`` per field) costs six times as much.

    ``countdown`` (seconds from now), ``eta`` (a ``datetime``, naive meaning UTC, or POSIX
    seconds) and ``eta_us`` (µs since the epoch: what the APIs and the client hold) exclude each
    other. ``headers`` is a case-insensitive mapping whose values may be
    lists (repeated headers) or a sequence of (name, value) pairs. ``params`` values may be str,
    bytes, numbers or lists of them. ``dispatch_deadline`` is in seconds, ``dispatch_deadline_us`` in µs (one of them). ``namespace`` is the
    namespace the task is added from; it becomes ``X-AppEngine-Current-Namespace`` unless the
    headers carry that header already, as App Engine's client does. ``http`` makes it a Cloud
    Tasks HTTP task with an absolute URL (:mod:`pushd.tasks.http_target`); ``url`` is unused.
    """

    name: str | None = None
    method: str = "POST"
    url: str | None = None
    headers: encoding.HeadersInput | None = None
    payload: bytes | str | None = None
    params: encoding.ParamsInput | None = None
    countdown: float | None = None
    eta: datetime.datetime | float | None = None
    eta_us: int | None = None
    retry_options: models.RetryParameters | None = None
    target: str | None = None
    tag: bytes | str | None = None
    dispatch_deadline: float | None = None
    dispatch_deadline_us: int | None = None
    namespace: str = ""
    http: HttpTarget | None = None
