"""App Engine's ``google.appengine.api.taskqueue``, talking to a pushd daemon.

Code written for App Engine moves over by changing one import::

    from google.appengine.api import taskqueue   # before
    from pushd import taskqueue                   # after

The names, arguments, properties, exception classes and batch rules are App Engine's (SPEC 1,
6 and 8.3): :class:`Task` validates exactly as App Engine's client does (the rules live in
:mod:`pushd.tasks`, which is tested against App Engine's own SDK), :class:`Queue` adds, deletes,
leases and reports statistics, and the ``*_async`` methods answer an :class:`RPC` whose
``get_result()`` waits, as App Engine's ``UserRPC`` does. Every call is an HTTP request to the
daemon's native API (``/api/v1``, :mod:`pushd.client`), so a plain script needs no event loop.
Async code uses :class:`AsyncQueue`, whose methods are coroutines of the same names::

    async with taskqueue.AsyncQueue("pull") as queue:
        leased = await queue.lease_tasks(60, 10)

The daemon is found at the ``url`` a :class:`Queue` is given, else the one :func:`configure`
set, else ``$PUSHD_URL``, else ``http://127.0.0.1:8460`` (likewise ``token`` / ``$PUSHD_TOKEN``).

The package holds one noun a module: :mod:`~pushd.taskqueue.task` (``Task``,
``TaskRetryOptions``), :mod:`~pushd.taskqueue.queue` (``Queue``, ``QueueStatistics``),
:mod:`~pushd.taskqueue.aio` (``AsyncQueue``), :mod:`~pushd.taskqueue.rpc` (``RPC``),
:mod:`~pushd.taskqueue.exceptions`, :mod:`~pushd.taskqueue.connection` (:func:`configure`) and
:mod:`~pushd.taskqueue.plans`: requests are built and answers read by pure functions that the
blocking, thread-pool and asyncio front ends share; only the transport differs.

As with App Engine's client, a pull task's ``retry_options`` are checked but never sent, so the
queue's ``task_retry_limit`` limits its leases (pushd's own API would honour a task's limit; a
migrated application keeps the limits it had).

Differences from App Engine, each on purpose:

* ``transactional=True`` raises :class:`BadTransactionStateError`: pushd has no datastore to
  bind a task to (App Engine raises the same class outside a transaction).
* Validation differences of :mod:`pushd.tasks` apply (naive ``datetime`` ETAs are UTC, an ETA
  may be POSIX seconds, user ``X-AppEngine-*`` headers other than the namespace and FailFast
  headers are dropped, ...). A task whose ETA lies before 1970 is refused when it is built
  (:class:`InvalidEtaError`), where App Engine's service refuses it at add time.
* There is no namespace manager: tasks carry ``X-AppEngine-Current-Namespace: ""``, and
  ``Host`` is never derived from the environment, so ``Task.target`` is the target given (or
  None), never App Engine's "unknown version" marker.
* ``extract_params()`` keys are ``bytes`` where App Engine's are (a bytes payload: POST and
  pull tasks given a payload, leased tasks) and ``str`` elsewhere (a query string, the text
  payload of a POST built from params), as App Engine's client on Python 3.
* Service errors App Engine reports as the generic :class:`Error` may arrive as one of pushd's
  subclasses of it, e.g. :class:`UnknownTaskError` from ``modify_task_lease`` on a task that
  does not exist; ``QueueStatistics`` of an unknown queue raise :class:`UnknownQueueError`
  (SPEC 10, Q16) where App Engine's emulator answers zeros.
* ``deadline`` arguments are checked as App Engine checks them and bound the wait of an
  :class:`RPC`; blocking calls are bounded by the HTTP client's timeout instead.
* Tags travel as text: a ``bytes`` tag that is not UTF-8 cannot be added (:class:`InvalidTagError`).
"""

from __future__ import annotations

from typing import Any

from pushd import models
from pushd.taskqueue.aio import AsyncQueue
from pushd.taskqueue.connection import configure
from pushd.taskqueue.exceptions import (
    BadTaskStateError,
    BadTransactionState,
    BadTransactionStateError,
    DatastoreError,
    DuplicateTaskNameError,
    Error,
    InternalError,
    InvalidDeadlineError,
    InvalidDispatchDeadlineError,
    InvalidEtaError,
    InvalidLeaseTimeError,
    InvalidMaxTasksError,
    InvalidQueueError,
    InvalidQueueModeError,
    InvalidQueueNameError,
    InvalidTagError,
    InvalidTaskError,
    InvalidTaskNameError,
    InvalidTaskRetryOptionsError,
    InvalidUrlError,
    PermissionDeniedError,
    QueuePausedError,
    TaskAlreadyExistsError,
    TaskLeaseExpiredError,
    TaskTooLargeError,
    TombstonedTaskError,
    TooManyTasksError,
    TransactionalRequestTooLargeError,
    TransientError,
    UnknownQueueError,
    UnknownTaskError,
)
from pushd.taskqueue.queue import Queue, QueueStatistics
from pushd.taskqueue.rpc import RPC, create_rpc
from pushd.taskqueue.task import (
    DEFAULT_APP_VERSION,
    MAX_DISPATCH_DEADLINE,
    MAX_LEASE_SECONDS,
    MAX_PULL_TASK_SIZE_BYTES,
    MAX_PUSH_TASK_SIZE_BYTES,
    MAX_QUEUE_NAME_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TASK_NAME_LENGTH,
    MAX_TASK_SIZE_BYTES,
    MAX_TASKS_PER_ADD,
    MAX_TASKS_PER_LEASE,
    MAX_TRANSACTIONAL_REQUEST_SIZE_BYTES,
    MAX_URL_LENGTH,
    MIN_DISPATCH_DEADLINE,
    Task,
    TaskRetryOptions,
)

__all__ = [
    "DEFAULT_APP_VERSION",
    "MAX_DISPATCH_DEADLINE",
    "MAX_LEASE_SECONDS",
    "MAX_PULL_TASK_SIZE_BYTES",
    "MAX_PUSH_TASK_SIZE_BYTES",
    "MAX_QUEUE_NAME_LENGTH",
    "MAX_TAG_LENGTH",
    "MAX_TASKS_PER_ADD",
    "MAX_TASKS_PER_LEASE",
    "MAX_TASK_NAME_LENGTH",
    "MAX_TASK_SIZE_BYTES",
    "MAX_TRANSACTIONAL_REQUEST_SIZE_BYTES",
    "MAX_URL_LENGTH",
    "MIN_DISPATCH_DEADLINE",
    "RPC",
    "AsyncQueue",
    "BadTaskStateError",
    "BadTransactionState",
    "BadTransactionStateError",
    "DatastoreError",
    "DuplicateTaskNameError",
    "Error",
    "InternalError",
    "InvalidDeadlineError",
    "InvalidDispatchDeadlineError",
    "InvalidEtaError",
    "InvalidLeaseTimeError",
    "InvalidMaxTasksError",
    "InvalidQueueError",
    "InvalidQueueModeError",
    "InvalidQueueNameError",
    "InvalidTagError",
    "InvalidTaskError",
    "InvalidTaskNameError",
    "InvalidTaskRetryOptionsError",
    "InvalidUrlError",
    "PermissionDeniedError",
    "Queue",
    "QueuePausedError",
    "QueueStatistics",
    "Task",
    "TaskAlreadyExistsError",
    "TaskLeaseExpiredError",
    "TaskRetryOptions",
    "TaskTooLargeError",
    "TombstonedTaskError",
    "TooManyTasksError",
    "TransactionalRequestTooLargeError",
    "TransientError",
    "UnknownQueueError",
    "UnknownTaskError",
    "add",
    "configure",
    "create_rpc",
]


def add(
    payload: bytes | str | None = None,
    *,
    queue_name: str = models.DEFAULT_QUEUE_NAME,
    transactional: bool = False,
    **kwargs: Any,
) -> Task:
    """Build a :class:`Task` from ``payload`` and ``kwargs`` and add it to ``queue_name``."""
    return Task(payload, **kwargs).add(queue_name=queue_name, transactional=transactional)
