"""The request of one attempt of a Cloud Tasks HTTP task (CLOUDTASKS.md 1.5).

Exactly the headers the real service sends, recorded from production for a receiver answering
503, then 404, then 200:

==========  ==========  ==============  ================  ===============
attempt     RetryCount  ExecutionCount  PreviousResponse  RetryReason
==========  ==========  ==============  ================  ===============
0 (->503)   0           0               (absent)          (absent)
1 (->404)   1           0               503               "" (present)
2 (->200)   2           1               404               ""
==========  ==========  ==============  ================  ===============

each prefixed ``X-CloudTasks-Task``, with ``X-CloudTasks-QueueName``, ``X-CloudTasks-TaskName``,
``X-CloudTasks-TaskETA`` (seconds, 6 decimals as pushd's App Engine header) and ``User-Agent:
Google-Cloud-Tasks``. The execution count leaves 5xx answers out (:func:`executions`); the
retry count counts every failed attempt. The task's own headers go out with their case, no
``Content-Type`` is added, and no ``X-AppEngine-*`` header is sent. After an attempt that got
no answer, ``PreviousResponse`` is left out (there was none).

The token: a task's ``oauth_token`` is sent as ``Authorization: Bearer <cloud_tasks.oauth_token>``
when that setting holds one (pushd mints no OAuth tokens), else without Authorization; an
``oidc_token`` as ``Authorization: Bearer <ID token>`` from the daemon's minter
(:data:`Minter`), audience the task's or else its URL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import multidict

from pushd import clock, models, tasks
from pushd.tasks import http_target

#: (audience, service account email) -> a signed ID token (the OIDC module's minter).
Minter = Callable[[str, str], Awaitable[str]]
_PREFIX = "X-CloudTasks-"
_OWN = frozenset({http_target.AUTH_HEADER.lower(), "user-agent"})


def executions(task: models.Task, status: int | None) -> int:
    """An HTTP task's execution count once an attempt answered ``status``: answers below 500
    (Cloud Tasks leaves 5xx out). 0 for every other task, which counts all answers in
    ``execution_count``."""
    if not task.is_http_target:
        return 0
    before = task.last_attempt.executions if task.last_attempt is not None else 0
    return before + (status is not None and status < 500)


async def authorization(
    task: models.Task, *, oauth_token: str | None, minter: Minter | None
) -> str | None:
    """The ``Authorization`` value of this attempt, or None to send none."""
    wanted = tasks.authorization_of(task)
    if wanted is None:
        return None
    if wanted.kind == "oauth":
        return f"Bearer {oauth_token}" if oauth_token else None
    if wanted.kind == "oidc" and minter is not None:
        audience = wanted.audience or task.url
        return f"Bearer {await minter(audience, wanted.service_account_email)}"
    return None


def build_http_headers(
    task: models.Task, *, queue: str, now_us: int, authorization: str | None = None
) -> multidict.CIMultiDict[str]:
    """Every header of an HTTP task's attempt but pushd's signature (the table above)."""
    headers: multidict.CIMultiDict[str] = multidict.CIMultiDict()
    for key, value in task.headers:
        lowered = key.lower()
        if lowered in _OWN or (authorization is not None and lowered == "authorization"):
            continue
        headers.add(key, value)
    headers[_PREFIX + "QueueName"] = queue
    headers[_PREFIX + "TaskName"] = task.name
    headers[_PREFIX + "TaskRetryCount"] = str(task.retry_count)
    headers[_PREFIX + "TaskExecutionCount"] = str(executions(task, None))
    headers[_PREFIX + "TaskETA"] = f"{task.eta_us / clock.US_PER_SECOND:.6f}"
    if task.retry_count > 0:
        if task.last_status is not None:
            headers[_PREFIX + "TaskPreviousResponse"] = str(task.last_status)
        headers[_PREFIX + "TaskRetryReason"] = ""
    headers["User-Agent"] = http_target.USER_AGENT
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers
