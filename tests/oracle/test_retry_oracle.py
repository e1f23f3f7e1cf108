"""pushd's retry policy agrees with App Engine's stub ``Retry`` on thousands of random cases."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pushd import models, retry
from tests.oracle.runner import run_oracle

pytestmark = pytest.mark.oracle

# Values exact in binary floating point times 1e6, so the stub's truncating int(sec * 1e6)
# and pushd's rounding agree; truncation differences are covered by a unit test.
BACKOFFS = [0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0]


def _random_case(rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if rng.random() < 0.5:
        params["retry_limit"] = rng.randint(0, 20)
    if rng.random() < 0.5:
        params["age_limit_sec"] = rng.randint(1, 100_000)
    if rng.random() < 0.7:
        params["min_backoff_sec"] = rng.choice(BACKOFFS)
    if rng.random() < 0.7:
        params["max_backoff_sec"] = rng.choice(BACKOFFS)
    if rng.random() < 0.7:
        params["max_doublings"] = rng.randint(0, 40)
    return {
        "params": params,
        "n": rng.randint(1, 60),
        "age_usec": rng.choice([0, rng.randint(0, 200_000) * 1_000_000, rng.randint(0, 10**11)]),
    }


def _pushd(case: dict[str, Any]) -> dict[str, Any]:
    p = case["params"]
    policy = retry.RetryPolicy.from_parameters(
        models.RetryParameters(
            task_retry_limit=p.get("retry_limit"),
            task_age_limit_s=p.get("age_limit_sec"),
            min_backoff_s=p.get("min_backoff_sec"),
            max_backoff_s=p.get("max_backoff_sec"),
            max_doublings=p.get("max_doublings"),
        )
    )
    return {
        "backoff_usec": retry.backoff_us(policy, case["n"]),
        "can_retry": retry.can_retry(policy, case["n"], case["age_usec"]),
    }


def test_backoff_and_stopping_rule_match_the_stub() -> None:
    rng = random.Random(20261121)
    cases = [_random_case(rng) for _ in range(3000)]
    expected = run_oracle("retry_oracle.py", {"cases": cases})["results"]
    mismatches = [
        (case, want, got)
        for case, want in zip(cases, expected, strict=True)
        if (got := _pushd(case)) != want
    ]
    assert not mismatches, mismatches[:5]
