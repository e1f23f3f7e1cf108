"""The retry policy against SPEC 4: formula, stopping rule, precedence and worked examples."""

from __future__ import annotations

import pytest

from pushd import models, retry

S = 1_000_000  # µs per second


def policy(**kw: object) -> retry.RetryPolicy:
    return retry.RetryPolicy.from_parameters(models.RetryParameters(**kw))  # type: ignore[arg-type]


def test_defaults_are_app_engines() -> None:
    p = retry.RetryPolicy.from_parameters(None)
    assert (p.retry_limit, p.age_limit_s) == (None, None)
    assert (p.min_backoff_s, p.max_backoff_s, p.max_doublings) == (0.1, 3600.0, 16)


# SPEC 4.6 A, row for row: 10/300/3, retry limit 7, age limit 5m, handler fails instantly.
WORKED_A = [
    # attempt, RetryCount header, t (s), n, retry?, backoff(n) (s)
    (1, 0, 0, 1, True, 10),
    (2, 1, 10, 2, True, 20),
    (3, 2, 30, 3, True, 40),
    (4, 3, 70, 4, True, 80),
    (5, 4, 150, 5, True, 160),
    (6, 5, 310, 6, True, 240),
    (7, 6, 550, 7, True, 300),
    (8, 7, 850, 8, False, None),
]


@pytest.mark.parametrize(("attempt", "header", "t", "n", "retries", "backoff"), WORKED_A)
def test_worked_example_a_row(
    attempt: int, header: int, t: int, n: int, retries: bool, backoff: int | None
) -> None:
    p = policy(
        min_backoff_s=10.0,
        max_backoff_s=300.0,
        max_doublings=3,
        task_retry_limit=7,
        task_age_limit_s=300,
    )
    assert header == attempt - 1 == n - 1
    decision = retry.next_delay(p, retry_number=n, first_try_us=0, now_us=t * S)
    if retries:
        assert decision == backoff * S  # type: ignore[operator]
    else:
        assert isinstance(decision, retry.GiveUp)
        assert decision.reason == (
            "task_retry_limit 7 reached and task_age_limit 300s exceeded (age 850s)"
        )


def test_worked_example_a_simulated_end_to_end() -> None:
    """Driving the policy attempt after attempt reproduces the schedule's times exactly."""
    p = policy(
        min_backoff_s=10.0,
        max_backoff_s=300.0,
        max_doublings=3,
        task_retry_limit=7,
        task_age_limit_s=300,
    )
    now, times = 0, []
    for n in range(1, 100):
        times.append(now // S)
        decision = retry.next_delay(p, retry_number=n, first_try_us=0, now_us=now)
        if isinstance(decision, retry.GiveUp):
            break
        now += decision
    assert times == [0, 10, 30, 70, 150, 310, 550, 850]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # SPEC 4.6 B
        (
            {},
            [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2],
        ),
        (
            {"min_backoff_s": 10.0, "max_backoff_s": 200.0, "max_doublings": 0},
            [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
        ),
        (
            {"min_backoff_s": 10.0, "max_backoff_s": 200.0, "max_doublings": 3},
            [10, 20, 40, 80, 160, 200, 200, 200, 200, 200],
        ),
        (
            {"min_backoff_s": 10.0, "max_backoff_s": 300.0, "max_doublings": 3},
            [10, 20, 40, 80, 160, 240, 300, 300, 300, 300],
        ),
    ],
)
def test_backoff_sequences_of_spec_4_6_b(params: dict[str, float], expected: list[float]) -> None:
    p = policy(**params)
    assert [retry.backoff_s(p, n) for n in range(1, 11)] == expected


def test_default_backoff_reaches_3276_8_at_16_then_caps_at_an_hour() -> None:
    p = retry.RetryPolicy()
    assert retry.backoff_s(p, 16) == 3276.8
    assert retry.backoff_s(p, 17) == 3600.0
    assert retry.backoff_s(p, 1000) == 3600.0
    assert sum(retry.backoff_us(p, n) for n in range(1, 17)) == 6_553_500_000


def test_min_above_max_gives_max() -> None:
    assert retry.backoff_us(policy(min_backoff_s=5000.0, max_backoff_s=10.0), 1) == 10 * S


def test_huge_max_doublings_do_not_blow_up() -> None:
    p = policy(max_doublings=10**9)
    assert retry.backoff_us(p, 10**6) == 3600 * S


@pytest.mark.parametrize("huge", [1e200, 1e308, float(10**30)])
def test_huge_backoffs_saturate_at_a_century(huge: float) -> None:
    # found in review: 1e308 s overflowed the µs conversion (1e200 the store's 64-bit ETA)
    # on the first failed delivery and stopped the daemon
    century_us = round(retry.MAX_BACKOFF_S * S)
    assert retry.backoff_us(policy(min_backoff_s=huge, max_backoff_s=huge), 1) == century_us
    growing = policy(min_backoff_s=1.0, max_backoff_s=huge, max_doublings=100)
    assert retry.backoff_us(growing, 200) == century_us


def test_backoff_is_exact_integer_microseconds() -> None:
    assert retry.backoff_us(policy(min_backoff_s=0.57, max_doublings=2), 3) == 2_280_000


def test_retry_number_must_be_positive() -> None:
    with pytest.raises(ValueError, match="retry number"):
        retry.backoff_us(retry.RetryPolicy(), 0)


@pytest.mark.parametrize(
    ("limit", "age_limit", "n", "age_s", "expected"),
    [
        (None, None, 10**6, 10**9, True),  # no limits: forever
        (0, None, 1, 0, False),  # task_retry_limit 0: exactly one attempt
        (2, None, 2, 0, True),  # limit 2: 3 attempts
        (2, None, 3, 0, False),
        (None, 60, 5, 60, True),  # age limit: inclusive
        (None, 60, 5, 60.000001, False),
        (7, 300, 8, 299, True),  # both set: dies only when both are exceeded
        (7, 300, 7, 10**6, True),
        (7, 300, 8, 301, False),
    ],
)
def test_stopping_rule(
    limit: int | None, age_limit: int | None, n: int, age_s: float, expected: bool
) -> None:
    p = policy(task_retry_limit=limit, task_age_limit_s=age_limit)
    assert retry.can_retry(p, n, round(age_s * S)) is expected


def test_give_up_reason_names_the_limit() -> None:
    decision = retry.next_delay(
        policy(task_retry_limit=2), retry_number=3, first_try_us=0, now_us=0
    )
    assert decision == retry.GiveUp("task_retry_limit 2 reached")


def test_task_options_replace_the_queue_parameters_wholesale() -> None:
    """SPEC 4.4: queue limit 2 + task options without a limit = unlimited retries."""
    queue = models.RetryParameters(task_retry_limit=2, min_backoff_s=30.0)
    task = models.RetryParameters(max_doublings=1)
    p = retry.effective_policy(queue, task)
    assert p.retry_limit is None
    assert p.min_backoff_s == 0.1
    assert p.max_doublings == 1
    assert retry.can_retry(p, 1000, 0)


def test_queue_parameters_apply_when_the_task_has_none() -> None:
    queue = models.RetryParameters(task_retry_limit=2, min_backoff_s=30.0)
    p = retry.effective_policy(queue, None)
    assert (p.retry_limit, p.min_backoff_s) == (2, 30.0)


def test_describe_reads_like_the_policy() -> None:
    assert policy(task_retry_limit=7, task_age_limit_s=172800).describe() == (
        "backoff 0.1s..3600s, 16 doublings, give up: 7 retries and age 172800s exceeded"
    )
    assert retry.RetryPolicy().describe() == "backoff 0.1s..3600s, 16 doublings, give up: never"
