"""Building and validating tasks exactly as App Engine's client and service do (SPEC 1).

A producer describes a task with a :class:`TaskRequest` (the keyword arguments of App Engine's
``taskqueue.Task``); :func:`build_task` applies every rule of SPEC 1.2–1.12 and returns the
:class:`models.Task` to store, and :func:`validate_batch` adds the batch rules of SPEC 1.13/1.15.
Checks run in App Engine's order, so a request with several problems fails with the same
exception class as it would on App Engine: first the client's checks (``Queue(name)``,
``TaskRetryOptions``, ``Task(...)``), then the service's (negative ETA, queue mode).

``Task.size`` is the size App Engine's client compares with the limits, so it also counts
headers that are not stored (dropped ``X-AppEngine-*`` headers; a pull task's namespace and
text content-type headers, which App Engine's client computes but never sends).

Deliberate differences from App Engine (each is also noted where it is implemented):

* naive ``datetime`` ETAs are UTC, not the process's local time;
* a task name with a trailing newline is rejected (App Engine's ``re.match`` + ``$`` accepts it);
* user ``X-AppEngine-*`` headers other than the two namespace headers and ``X-AppEngine-FailFast``
  are dropped (App Engine's client keeps them, production drops them: SPEC 10 Q5);
* ``Host`` is never derived from the environment (the dispatcher routes by ``target``), and
  header (name, value) pairs keep their repeats, as in the add RPC, where the client folds them;
* an ETA may also be given as POSIX seconds; a dispatch deadline on a pull task is an error;
* a batch's shape (mixed modes, more than 100 tasks) is checked before its tasks' fields;
* inputs App Engine would ``str()``, or crash on later with ``TypeError``/``ValueError`` (``None``
  params, non-string header values, boolean or NaN countdowns, non-numeric dispatch deadlines),
  whitespace or control characters in URLs and unsendable header names or values are rejected
  with :mod:`pushd.errors` classes.
"""

from __future__ import annotations

from pushd import encoding
from pushd.tasks import http_target
from pushd.tasks.batch import build_task, check_batch_size, validate_batch
from pushd.tasks.build import extract_params
from pushd.tasks.http_target import Authorization, HttpTarget, authorization_of
from pushd.tasks.leases import check_lease_seconds, check_lease_tag, check_max_tasks
from pushd.tasks.names import (
    NAMESPACE_PATTERN,
    QUEUE_NAME_PATTERN,
    TASK_NAME_PATTERN,
    NameFactory,
    check_generated_name,
    check_queue_name,
    check_task_name,
    new_task_name,
)
from pushd.tasks.request import TaskRequest
from pushd.tasks.retry_options import check_retry_options

#: App Engine's size formula (SPEC 1.11); see :func:`encoding.task_size`.
task_size = encoding.task_size

__all__ = [
    "NAMESPACE_PATTERN",
    "QUEUE_NAME_PATTERN",
    "TASK_NAME_PATTERN",
    "Authorization",
    "HttpTarget",
    "NameFactory",
    "TaskRequest",
    "authorization_of",
    "build_task",
    "check_batch_size",
    "check_generated_name",
    "check_lease_seconds",
    "check_lease_tag",
    "check_max_tasks",
    "check_queue_name",
    "check_retry_options",
    "check_task_name",
    "extract_params",
    "http_target",
    "new_task_name",
    "task_size",
    "validate_batch",
]
