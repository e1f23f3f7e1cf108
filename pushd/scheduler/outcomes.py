"""What an attempt means for its task: done, retried later, or dead-lettered.

:func:`decide` is a pure function of the task, the attempt and the retry policy; the caller
logs and counts what it returns. The flusher writes outcomes with the lease held when it
writes (:func:`with_lease`).
"""

from __future__ import annotations

import dataclasses

from pushd import dispatch, models, retry
from pushd.store import base


def decide(
    claimed: base.Claimed,
    attempt: dispatch.Attempt,
    queue_retry: models.RetryParameters | None,
    *,
    started_us: int,
    now_us: int,
) -> base.Outcome:
    """The outcome of ``attempt`` (started at ``started_us``, answered at ``now_us``) under the
    queue's retry parameters and the task's own."""
    task = claimed.task
    if attempt.ok:
        return base.Done(queue=task.queue, name=task.name, lease_eta_us=claimed.lease_eta_us)
    first_try = task.first_try_us if task.first_try_us is not None else started_us
    retry_count = task.retry_count + 1
    # SPEC Q7: an attempt counts as an execution only if it got an HTTP response.
    execution_count = task.execution_count + (attempt.status is not None)
    last = attempt.last(started_us, executions=dispatch.executions(task, attempt.status))
    policy = retry.effective_policy(queue_retry, task.retry_options)
    decision = retry.next_delay(
        policy, retry_number=retry_count, first_try_us=first_try, now_us=now_us
    )
    if isinstance(decision, retry.GiveUp):
        return base.DeadLetter(
            queue=task.queue,
            name=task.name,
            lease_eta_us=claimed.lease_eta_us,
            retry_count=retry_count,
            execution_count=execution_count,
            first_try_us=first_try,
            last_status=attempt.status,
            reason=f"{decision.reason}; last attempt: {attempt.error}",
            last_attempt=last,
        )
    return base.Retry(
        queue=task.queue,
        name=task.name,
        lease_eta_us=claimed.lease_eta_us,
        eta_us=now_us + max(decision, attempt.retry_after_us or 0),
        retry_count=retry_count,
        execution_count=execution_count,
        first_try_us=first_try,
        last_status=attempt.status,
        last_attempt=last,
    )


def given_back(claimed: base.Claimed, eta_us: int | None = None) -> base.Retry:
    """A claim returned unsent (its queue was paused, the daemon is stopping): due again at
    its own ETA (or at ``eta_us``), no attempt counted."""
    task = claimed.task
    return base.Retry(
        queue=task.queue,
        name=task.name,
        lease_eta_us=claimed.lease_eta_us,
        eta_us=task.eta_us if eta_us is None else eta_us,
        **base.counters(task),
    )


def with_lease(outcome: base.Outcome, lease_eta_us: int) -> base.Outcome:
    if outcome.lease_eta_us == lease_eta_us:
        return outcome
    return dataclasses.replace(outcome, lease_eta_us=lease_eta_us)
