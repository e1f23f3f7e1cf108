"""Token bucket and concurrency gate, at exact virtual microseconds (SPEC 5.3)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushd import throttle

T0 = 1_700_000_000_000_000
MS = 1_000
S = 1_000_000


def drain(bucket: throttle.TokenBucket, now: int) -> int:
    taken = 0
    while bucket.try_take(now):
        taken += 1
    return taken


def test_rate_5_bucket_10_gives_ten_at_once_then_one_every_200_ms() -> None:
    b = throttle.TokenBucket(Fraction(5), 10, T0)
    assert drain(b, T0) == 10
    assert b.next_token_us(T0) == T0 + 200 * MS
    assert not b.try_take(T0 + 200 * MS - 1)
    times = []
    now = T0 + 200 * MS - 1
    for _ in range(5):
        now = b.next_token_us(now)  # type: ignore[assignment]
        assert b.try_take(now)
        times.append(now - T0)
    assert times == [200 * MS, 400 * MS, 600 * MS, 800 * MS, 1000 * MS]


def test_bucket_starts_full_and_never_overfills() -> None:
    b = throttle.TokenBucket(Fraction(5), 2, T0)
    assert b.available(T0) == 2
    assert b.available(T0 + 3600 * 1_000_000) == 2


def test_rate_5_bucket_2_gives_two_then_five_per_second() -> None:
    b = throttle.TokenBucket(Fraction(5), 2, T0)
    dispatched = []
    now = T0
    while now < T0 + 1_000_000:
        if b.try_take(now):
            dispatched.append(now - T0)
        else:
            now = b.next_token_us(now)  # type: ignore[assignment]
    assert dispatched == [0, 0, 200 * MS, 400 * MS, 600 * MS, 800 * MS]


def test_partial_refill_is_kept() -> None:
    b = throttle.TokenBucket(Fraction(1), 1, T0)
    assert b.try_take(T0)
    assert b.tokens(T0 + 250 * MS) == Fraction(1, 4)
    assert b.next_token_us(T0 + 250 * MS) == T0 + 1_000_000


def test_slow_rates_are_exact() -> None:
    b = throttle.TokenBucket(Fraction(1, 60), 1, T0)  # 1/m
    assert b.try_take(T0)
    assert b.next_token_us(T0) == T0 + 60_000_000
    c = throttle.TokenBucket(Fraction(7), 1, T0)  # 142857.142... µs per token
    assert c.try_take(T0)
    assert c.next_token_us(T0) == T0 + 142_858  # rounded up: never early
    assert not c.try_take(T0 + 142_857)
    assert c.try_take(T0 + 142_858)
    # Seven tokens take exactly one second, without drift (bucket 2, so no overflow is lost
    # between the exact arrival and the next whole microsecond).
    d = throttle.TokenBucket(Fraction(7), 2, T0)
    assert d.try_take(T0)
    assert d.try_take(T0)
    got = 0
    now = T0
    while True:
        now = d.next_token_us(now)  # type: ignore[assignment]
        if now > T0 + 1_000_000:
            break
        assert d.try_take(now)
        got += 1
    assert got == 7


def test_fractional_rate_half_per_second() -> None:
    b = throttle.TokenBucket(Fraction("0.5"), 1, T0)
    assert b.try_take(T0)
    assert b.next_token_us(T0) == T0 + 2_000_000


def test_rate_zero_is_paused_even_with_tokens() -> None:
    b = throttle.TokenBucket(Fraction(0), 5, T0)
    assert b.paused
    assert b.available(T0) == 0
    assert not b.try_take(T0)
    assert b.next_token_us(T0) is None


def test_reconfigure_keeps_tokens_and_applies_the_new_rate_at_once() -> None:
    b = throttle.TokenBucket(Fraction(1), 10, T0)
    assert drain(b, T0) == 10
    now = T0 + 3_500_000  # 3.5 tokens earned at 1/s
    b.reconfigure(Fraction(10), 10, now)
    assert b.tokens(now) == Fraction(7, 2)
    assert drain(b, now) == 3
    assert b.next_token_us(now) == now + 50 * MS  # the half token left needs 0.05 s at 10/s


def test_reconfigure_caps_at_the_new_size() -> None:
    b = throttle.TokenBucket(Fraction(5), 10, T0)
    b.reconfigure(Fraction(5), 3, T0)
    assert b.available(T0) == 3


def test_pause_by_rate_zero_keeps_tokens_for_the_resume() -> None:
    b = throttle.TokenBucket(Fraction(5), 5, T0)
    assert b.try_take(T0)
    b.reconfigure(Fraction(0), 5, T0)
    assert b.next_token_us(T0 + 10**9) is None
    b.reconfigure(Fraction(5), 5, T0 + 10**9)
    assert b.available(T0 + 10**9) == 4  # nothing refilled while paused


def test_a_bucket_of_size_zero_never_has_a_token() -> None:
    b = throttle.TokenBucket(Fraction(5), 0, T0)
    assert not b.try_take(T0)
    assert b.next_token_us(T0) is None


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        throttle.TokenBucket(Fraction(-1), 1, T0)
    with pytest.raises(ValueError, match="bucket_size"):
        throttle.TokenBucket(Fraction(1), -1, T0)
    with pytest.raises(ValueError, match="max_concurrent_requests"):
        throttle.ConcurrencyGate(0)


@given(
    rate=st.fractions(min_value=Fraction(1, 86400), max_value=Fraction(10_000)),
    size=st.integers(min_value=1, max_value=500),
    steps=st.lists(st.integers(min_value=0, max_value=5_000_000), max_size=50),
)
def test_never_more_than_bucket_plus_rate_times_elapsed(
    rate: Fraction, size: int, steps: list[int]
) -> None:
    """Over any window, dispatches <= bucket_size + rate * elapsed; next_token_us is never early."""
    b = throttle.TokenBucket(rate, size, T0)
    now, taken = T0, 0
    for step in steps:
        now += step
        taken += drain(b, now)
        nxt = b.next_token_us(now)
        assert nxt is not None
        if nxt > now:
            assert not b.try_take(nxt - 1)
            assert b.try_take(nxt)
            taken += 1
            now = nxt
        assert taken <= size + rate * Fraction(now - T0, 1_000_000)


def test_gate_counts_in_flight_requests() -> None:
    g = throttle.ConcurrencyGate(2)
    g.start()
    g.start()
    assert not g.can_start()
    assert g.free == 0
    with pytest.raises(RuntimeError):
        g.start()
    g.finish()
    assert g.can_start()
    assert throttle.ConcurrencyGate(None).free is None


def test_gate_finish_without_start_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        throttle.ConcurrencyGate(1).finish()


def test_queue_throttle_claims_by_token_and_counts_slots_apart() -> None:
    q = throttle.QueueThrottle(Fraction(5), 3, 2, T0)
    assert [q.try_take(T0) for _ in range(4)] == [True, True, True, False]
    assert q.ready_at(T0) == T0 + 200 * MS  # the next token, whatever is in flight
    q.gate.start()
    q.gate.start()
    assert not q.gate.can_start()  # the gate is what send time waits on
    assert q.bucket.available(T0) == 0


def test_queue_throttle_paused_never_takes() -> None:
    q = throttle.QueueThrottle(Fraction(5), 3, None, T0, paused=True)
    assert not q.try_take(T0)
    assert q.ready_at(T0) is None
    q.paused = False
    assert q.try_take(T0)


def test_asking_about_an_earlier_instant_never_gives_an_early_token() -> None:
    b = throttle.TokenBucket(Fraction(5), 1, T0)
    assert b.try_take(T0)
    assert b.tokens(T0 + 100 * MS) == Fraction(1, 2)
    assert b.next_token_us(T0) == T0 + 200 * MS


def test_adaptive_rate_halves_once_per_cooldown_and_recovers_with_time() -> None:
    a = throttle.AdaptiveRate(cooldown_us=1_000_000, recovery_us=5_000_000)
    assert a.enforced(Fraction(100)) == 100
    assert a.next_step_us() is None  # nothing to recover
    assert a.on_throttled(T0)
    assert not a.on_throttled(T0 + 500 * MS)  # same burst
    assert a.enforced(Fraction(100)) == 50
    assert a.on_throttled(T0 + 1_500 * MS)
    assert a.enforced(Fraction(100)) == 25
    # 5 s after the last refusal, then every 5 s: exact instants, whatever happens meanwhile
    steps = []
    while (at := a.next_step_us()) is not None:
        back = a.step()
        steps.append((at - T0, a.enforced(Fraction(100)), back))
    assert steps == [
        (6_500 * MS, Fraction(125, 4), False),
        (11_500 * MS, Fraction(625, 16), False),
        (16_500 * MS, Fraction(3125, 64), False),
        (21_500 * MS, Fraction(15625, 256), False),
        (26_500 * MS, Fraction(78125, 1024), False),
        (31_500 * MS, Fraction(390625, 4096), False),
        (36_500 * MS, Fraction(100), True),  # capped at the configured rate: back, once
    ]
    assert not a.step()


def test_a_refusal_restarts_the_recovery_clock() -> None:
    a = throttle.AdaptiveRate(cooldown_us=1_000_000, recovery_us=5_000_000)
    a.on_throttled(T0)
    assert a.next_step_us() == T0 + 5 * S
    assert not a.on_throttled(T0 + 300 * MS)  # within the cooldown: no halving, but not quiet
    assert a.next_step_us() == T0 + 5_300 * MS
    assert a.enforced(Fraction(8)) == 4


def test_adaptive_rate_never_falls_below_a_64th() -> None:
    a = throttle.AdaptiveRate(cooldown_us=0)
    for k in range(20):
        a.on_throttled(T0 + k)
    assert a.enforced(Fraction(64)) == 1


def test_adaptive_rate_keeps_falling_under_steady_refusals() -> None:
    a = throttle.AdaptiveRate(cooldown_us=1_000_000)
    for k in range(7):  # a refusal every half second for 3.5 s
        a.on_throttled(T0 + k * 500 * MS)
    assert a.enforced(Fraction(16)) == 1  # halved at 0, 1 s, 2 s and 3 s


def test_reserve_paces_requests_one_token_apart_after_the_bucket() -> None:
    b = throttle.TokenBucket(Fraction(5), 2, T0)
    assert [b.reserve(T0) - T0 for _ in range(5)] == [0, 0, 200_000, 400_000, 600_000]
    # the debt is paid by refill: at 600 ms the bucket is empty again, nothing more to wait
    assert b.reserve(T0 + 800_000) - T0 == 800_000
    assert b.reserve(T0 + 800_000) - T0 == 1_000_000


def test_reserve_is_never_early_with_rates_that_do_not_divide_a_second() -> None:
    b = throttle.TokenBucket(Fraction(3), 1, T0)
    times = [b.reserve(T0) - T0 for _ in range(4)]
    assert times == [0, 333_334, 666_667, 1_000_000]
    paused = throttle.TokenBucket(0, 5, T0)
    assert paused.reserve(T0 + 7) == T0 + 7


def test_refunded_reservations_are_booked_again_in_their_place() -> None:
    s = 1_000_000
    wire = throttle.TokenBucket(Fraction(1), 1, T0)
    assert [wire.reserve(T0) for _ in range(3)] == [T0, T0 + s, T0 + 2 * s]
    wire.refund(T0 + s // 2, 2)  # the two waiting sends book again: the same turns
    assert [wire.reserve(T0 + s // 2) for _ in range(2)] == [T0 + s, T0 + 2 * s]
    wire.refund(T0 + s // 2)  # the last will not be used: the next booking takes its turn
    assert wire.reserve(T0 + s // 2) == T0 + 2 * s
    wire.refund(T0 + 5 * s, 9)  # never beyond the bucket
    assert wire.tokens(T0 + 5 * s) == 1


def test_take_up_to_takes_what_as_many_try_takes_would() -> None:
    """A claim's tokens are taken in one call (issue 18): as many as are there, none paused."""
    for rate, size, n, later_us in [(5, 3, 5, 0), (5, 3, 2, 0), (3, 1, 4, 333_334), (0, 4, 2, 0)]:
        one, many = throttle.TokenBucket(rate, size, 0), throttle.TokenBucket(rate, size, 0)
        taken = sum(one.try_take(later_us) for _ in range(n))
        assert many.take_up_to(later_us, n) == taken
        assert many.tokens(later_us) == one.tokens(later_us)
        assert many.next_token_us(later_us) == one.next_token_us(later_us)
