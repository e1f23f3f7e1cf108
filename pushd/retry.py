"""App Engine's retry policy as pure functions (SPEC 4).

The n-th retry (n = 1 after the first failed attempt) waits::

    e       = min(n - 1, max_doublings)
    backoff = min(max_backoff, min_backoff * 2**e * max(1, n - e))

that is, the delay doubles for the first ``max_doublings`` retries and then grows linearly by
``min_backoff * 2**max_doublings`` per retry, capped at ``max_backoff``. This is the algorithm of
both Google emulators (Python ``taskqueue_stub.Retry``, Java ``UrlFetchJobDetail``) and of Cloud
Tasks; App Engine's older docs describe a linear step of ``2**(max_doublings-1) * min_backoff``,
which no implementation used (SPEC Q1).

After a failed attempt the task is retried unless it has run out of *both* limits that are set::

    retry_limit and age_limit:  retry iff n <= retry_limit or age <= age_limit
    retry_limit only:           retry iff n <= retry_limit
    age_limit only:             retry iff age <= age_limit
    neither:                    retry forever

``age`` is measured from the task's first attempt (SPEC Q2). ``task_retry_limit: N`` therefore
allows at most N + 1 attempts. A task's own retry options replace the queue's parameters
wholesale: unset fields fall back to the defaults below, not to the queue (SPEC 4.4).

Nothing here reads a clock: callers pass ``now_us`` and add the returned delay themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from pushd import clock, models

DEFAULT_MIN_BACKOFF_S = 0.1
DEFAULT_MAX_BACKOFF_S = 3600.0
DEFAULT_MAX_DOUBLINGS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retry parameters with every default filled in; limits stay optional."""

    retry_limit: int | None = None
    age_limit_s: int | None = None
    min_backoff_s: float = DEFAULT_MIN_BACKOFF_S
    max_backoff_s: float = DEFAULT_MAX_BACKOFF_S
    max_doublings: int = DEFAULT_MAX_DOUBLINGS

    @classmethod
    def from_parameters(cls, params: models.RetryParameters | None) -> RetryPolicy:
        if params is None:
            return cls()
        return cls(
            retry_limit=params.task_retry_limit,
            age_limit_s=params.task_age_limit_s,
            min_backoff_s=(
                DEFAULT_MIN_BACKOFF_S if params.min_backoff_s is None else params.min_backoff_s
            ),
            max_backoff_s=(
                DEFAULT_MAX_BACKOFF_S if params.max_backoff_s is None else params.max_backoff_s
            ),
            max_doublings=(
                DEFAULT_MAX_DOUBLINGS if params.max_doublings is None else params.max_doublings
            ),
        )

    def describe(self) -> str:
        """One line for check-config and logs."""
        limits = []
        if self.retry_limit is not None:
            limits.append(f"{self.retry_limit} retries")
        if self.age_limit_s is not None:
            limits.append(f"age {self.age_limit_s}s")
        stop = " and ".join(limits) + " exceeded" if limits else "never"
        return (
            f"backoff {self.min_backoff_s:g}s..{self.max_backoff_s:g}s, "
            f"{self.max_doublings} doublings, give up: {stop}"
        )


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The task has run out of retries; ``reason`` says which limits it exceeded."""

    reason: str


def effective_policy(
    queue_params: models.RetryParameters | None,
    task_options: models.RetryParameters | None,
) -> RetryPolicy:
    """The policy for one task: its own options if it has any, else its queue's (SPEC 4.4)."""
    return RetryPolicy.from_parameters(task_options if task_options is not None else queue_params)


#: The longest backoff pushd waits, whatever the configuration says (100 years).
MAX_BACKOFF_S = clock.MAX_DELAY_S


def backoff_us(policy: RetryPolicy, n: int) -> int:
    """Delay in µs before retry number ``n`` (n >= 1), in exact integer arithmetic.

    Like the stub, the backoffs are converted to µs first and then multiplied, so the result is
    exact; unlike the stub, which truncates ``0.57 s`` to 569999 µs, the conversion rounds.
    """
    if n < 1:
        raise ValueError(f"retry number must be >= 1, got {n}")
    e = min(n - 1, policy.max_doublings)
    # Backoffs beyond a century are a century: a huge one (1e308 s is a valid float) would
    # overflow the µs conversion or the store's 64-bit ETA and stop the daemon.
    min_us = clock.seconds_to_us(min(policy.min_backoff_s, MAX_BACKOFF_S))
    max_us = clock.seconds_to_us(min(policy.max_backoff_s, MAX_BACKOFF_S))
    if min_us >= max_us:
        return max_us
    # 2**e is capped so that a huge max_doublings cannot build a giant integer; anything past
    # 2**62 µs is far beyond every max_backoff anyway.
    return min(max_us, (min_us << min(e, 62)) * max(1, n - e))


def backoff_s(policy: RetryPolicy, n: int) -> float:
    """Delay in seconds before retry number ``n`` (n >= 1)."""
    return backoff_us(policy, n) / clock.US_PER_SECOND


def can_retry(policy: RetryPolicy, n: int, age_us: int) -> bool:
    """The both-limits stopping rule, for retry number ``n`` at ``age_us`` since the first try."""
    within_count = policy.retry_limit is None or n <= policy.retry_limit
    within_age = policy.age_limit_s is None or age_us <= policy.age_limit_s * clock.US_PER_SECOND
    if policy.retry_limit is not None and policy.age_limit_s is not None:
        return within_count or within_age
    return within_count and within_age


def next_delay(
    policy: RetryPolicy, *, retry_number: int, first_try_us: int, now_us: int
) -> int | GiveUp:
    """After a failed attempt: the delay in µs before the next one, or :class:`GiveUp`.

    ``retry_number`` is the number of the retry being considered (the task's retry count
    after this failure, so 1 after the first failed attempt); ``now_us`` is when the failed
    attempt finished, and the next ETA is ``now_us`` plus the returned delay.
    """
    age_us = now_us - first_try_us
    if can_retry(policy, retry_number, age_us):
        return backoff_us(policy, retry_number)
    reasons = []
    if policy.retry_limit is not None:
        reasons.append(f"task_retry_limit {policy.retry_limit} reached")
    if policy.age_limit_s is not None:
        reasons.append(
            f"task_age_limit {policy.age_limit_s}s exceeded (age {age_us / clock.US_PER_SECOND:g}s)"
        )
    return GiveUp(" and ".join(reasons))
