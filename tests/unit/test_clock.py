"""The injected clock: FakeClock moves only when told, or jumps when everyone sleeps."""

from __future__ import annotations

import asyncio

import pytest

from pushd import clock

T0 = 1_700_000_000_000_000


def test_conversions_round_to_the_microsecond() -> None:
    assert clock.seconds_to_us(1.5) == 1_500_000
    assert clock.seconds_to_us(0.57) == 570_000
    assert clock.us_to_seconds(250_000) == 0.25


async def test_system_clock_reads_epoch_microseconds() -> None:
    c = clock.SystemClock()
    now = c.now_us()
    assert 1_600_000_000_000_000 < now < 4_000_000_000_000_000
    await c.sleep_until(now - 1)  # already past: returns at once
    await c.sleep(0)


async def test_fake_clock_wakes_sleepers_in_deadline_order() -> None:
    c = clock.FakeClock(T0)
    woke: list[tuple[str, int]] = []

    async def sleeper(name: str, deadline: int) -> None:
        await c.sleep_until(deadline)
        woke.append((name, c.now_us()))

    tasks = [
        asyncio.create_task(sleeper("b", T0 + 200)),
        asyncio.create_task(sleeper("a", T0 + 100)),
    ]
    await c.settle()
    assert c.deadlines == [T0 + 100, T0 + 200]
    c.advance(99)
    await c.settle()
    assert woke == []
    c.advance(1)
    await c.settle()
    assert woke == [("a", T0 + 100)]
    c.advance(500)
    await asyncio.gather(*tasks)
    assert woke == [("a", T0 + 100), ("b", T0 + 600)]


async def test_fake_clock_cancelled_sleeper_is_forgotten() -> None:
    c = clock.FakeClock(T0)
    t = asyncio.create_task(c.sleep(10))
    await c.settle()
    assert c.deadlines == [T0 + 10_000_000]
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert c.deadlines == []


async def test_autojump_runs_a_long_virtual_schedule_instantly() -> None:
    c = clock.FakeClock(T0, autojump=True)
    seen = []
    for _ in range(5):
        await c.sleep(3600)
        seen.append(c.now_us() - T0)
    assert seen == [3600_000_000 * k for k in range(1, 6)]


def test_fake_clock_never_goes_backwards() -> None:
    c = clock.FakeClock(T0)
    with pytest.raises(ValueError, match="backwards"):
        c.advance(-1)
    with pytest.raises(ValueError, match="backwards"):
        c.set(T0 - 1)


async def test_fake_wall_clock_steps_either_way_without_moving_monotonic_time() -> None:
    c = clock.FakeClock(T0)
    woke: list[tuple[str, int, int]] = []

    async def on_wall(deadline: int) -> None:
        await c.sleep_until(deadline)
        woke.append(("wall", c.now_us(), c.monotonic_us()))

    async def on_mono(deadline: int) -> None:
        await c.sleep_until_monotonic(deadline)
        woke.append(("mono", c.now_us(), c.monotonic_us()))

    tasks = [asyncio.create_task(on_wall(T0 + 3600_000_000)), asyncio.create_task(on_mono(T0 + 5))]
    await c.settle()
    c.step_wall(-1_000_000)  # back: nothing wakes
    await c.settle()
    assert woke == []
    assert (c.now_us(), c.monotonic_us()) == (T0 - 1_000_000, T0)
    c.step_wall(7200_000_000)  # forward past the wall deadline: it wakes, the monotonic one not
    await c.settle()
    assert woke == [("wall", T0 + 7199_000_000, T0)]
    c.advance(5)
    await asyncio.gather(*tasks)
    assert woke[1] == ("mono", T0 + 7199_000_005, T0 + 5)


async def test_system_clock_sleeps_on_its_monotonic_clock() -> None:
    c = clock.SystemClock()
    start = c.monotonic_us()
    await c.sleep_until_monotonic(start + 2000)
    assert c.monotonic_us() >= start + 2000
