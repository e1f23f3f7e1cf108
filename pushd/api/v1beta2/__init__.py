"""TaskQueue REST API v1beta2 for pull queues (SPEC 7), as Google's discovery document defines it.

All eight methods live under ``/taskqueue/v1beta2/projects/{project}/taskqueues/{taskqueue}``:
``taskqueues.get`` and ``tasks.insert``, ``get``, ``list``, ``delete``, ``lease``, ``update`` (POST)
and ``patch`` (PATCH). They are adapters over the service (:mod:`pushd.service`), sharing its pull-queue rules and
the tasks of the native API: a task added either way is seen, leased and deleted either way.

Choices where the sources leave room (SPEC 7 and the decisions of SPEC 10):

* ``{project}`` is any app id, with or without a partition prefix (``s~myapp``): pushd serves one
  app, so it is not checked. Only pull queues answer; a push queue is 400, an unknown queue 404.
* Resources: int64 fields are JSON strings, int32 fields numbers. ``enqueueTimestamp`` and
  ``leaseTimestamp`` are microseconds, ``stats.oldestTask`` seconds (SPEC 7.5); a task never
  leased reports its ETA, the first time it may be leased (Q17). ``queueName`` is the short queue
  name everywhere (App Engine answered the long ``projects/{p}/taskqueues/{q}`` in leases only);
  both forms are accepted on input. Fields without a value (``tag``, ``maxLeases`` of a queue
  without ``task_retry_limit``, ``stats.oldestTask`` of an empty queue, ``items`` of an empty
  lease or list, Q12) are left out rather than sent as 0 or null. ``acl`` is always there:
  ``consumerEmails`` are queue.yaml's ``user_email``, ``producerEmails`` its ``writer_email``,
  ``adminEmails`` is empty (queue.yaml names no admins).
* Kinds follow the discovery document (Q8): lease answers ``taskqueue#tasks``, list
  ``taskqueues#tasks``. List shows at most 100 tasks, in name order, without payloads.
* ``payloadBase64`` goes out URL-safe with padding; standard and URL-safe alphabets, with or
  without padding, are accepted (Q11). A tag that is not UTF-8 (possible through the native API)
  goes out with U+FFFD for its bad bytes.
* insert: ``queueName`` and ``payloadBase64`` are required; ``id`` is optional (a random name
  otherwise); ``leaseTimestamp`` is the first time the task may be leased (absent or ``0``: now);
  ``enqueueTimestamp``, ``retry_count`` and ``kind`` are ignored. A field the Task resource does
  not have is refused, naming it.
* lease: ``numTasks`` (1 to 1000) and ``leaseSecs`` (0 to 604800) are required whole numbers;
  ``groupByTag`` is ``true``/``false`` (or ``1``/``0``); ``tag`` needs ``groupByTag`` (an empty
  tag counts as none: the oldest task's tag decides). Each parameter may come in the query or in a
  form-encoded body, the query winning. Tasks over the queue's ``maxLeases`` are deleted instead
  of leased (SPEC 6).
* update and patch renew a lease: new expiry = now + ``newLeaseSeconds`` (0 to 604800; 0 releases
  it). update needs the body's ``leaseTimestamp``; patch needs the body's ``queueName`` (equal to
  the path's) and checks ``leaseTimestamp`` only when given. The lease must be the task's current
  one and not have expired, else 400. The task is the one the path names: a body ``id`` that
  differs is refused (400) on both methods, where App Engine's update is reported to have used
  the body's id and ignored the path. Only the lease changes; other body fields are ignored.
* delete answers 204 without a body (Q12). get, delete, update and patch of an unknown task,
  including a deleted one, answer 404 (Q12).
* Common parameters: ``alt`` may only be ``json``; ``fields``, ``prettyPrint``, ``key``,
  ``oauth_token``, ``quotaUser`` and ``userIp`` are accepted and ignored, so answers are always
  whole and compact (a superset of any partial response).

Errors use Google's envelope (SPEC 7.6), also for 401/403 from the auth middleware, unknown routes
and 500s: ``{"error": {"errors": [{"domain": "global", "reason", "message"}], "code", "message"}}``.
Statuses are those of the native API except where SPEC 7.6 says otherwise: a duplicate or
tombstoned task id is **400** (reason ``alreadyExists``; the native API says 409), as AppScale
answers and hawkeye's tests expect, and a task over the size limit is 400 ("limits exceeded"). So:
bad or missing parameters, malformed bodies, limits, push queues, expired or mismatched leases,
paused queues: 400 ``badRequest``; 401 ``authError``; 403 ``forbidden``; unknown queue, task or
route: 404 ``notFound``; 405 ``methodNotAllowed``; body over 32 MiB: 413 ``requestTooLarge``;
``total_storage_limit`` reached: 507 ``quotaExceeded``; internal error: 500 ``internalError``;
transient store error: 503 ``backendError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pushd.api import auth
from pushd.api import errors as api_errors
from pushd.api.v1beta2 import envelope, handlers, resources

if TYPE_CHECKING:
    from aiohttp import web

PREFIX = "/taskqueue/v1beta2/"
ROUTES = handlers.ROUTES
GoogleError = envelope.GoogleError
RestTask = resources.RestTask
RestTaskIn = resources.RestTaskIn
RestTasks = resources.RestTasks
RestTaskQueue = resources.RestTaskQueue

__all__ = [
    "PREFIX",
    "ROUTES",
    "GoogleError",
    "RestTask",
    "RestTaskIn",
    "RestTaskQueue",
    "RestTasks",
    "add_routes",
]


def add_routes(app: web.Application) -> None:
    """Serve the REST API and answer its errors in Google's envelope."""
    auth.add_routes(app, ROUTES)
    api_errors.add_renderer(app, PREFIX, envelope.render_error)
