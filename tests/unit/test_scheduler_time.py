"""The scheduler under a stepping wall clock and changing rates, on a fake clock.

FakeClock.step_wall moves the wall clock alone (as NTP or ``date`` would), so each test states
exactly when, in wall-clock and monotonic time, every request went out.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import anyio
import pytest

from pushd import clock, dispatch, scheduler
from pushd.store.memory import MemoryStore
from tests.unit.test_scheduler import MS, T0, Receiver, queues, task

if TYPE_CHECKING:
    from pushd.store import base

S = clock.US_PER_SECOND
HOUR = 3600 * S


async def test_a_forward_step_makes_an_overdue_task_due_at_once() -> None:
    c = clock.FakeClock(T0)
    store = MemoryStore()
    await store.add([task("later", T0 + 2 * HOUR)], now_us=T0)
    rx = Receiver(c)
    sched = scheduler.Scheduler(store=store, clock=c, queues=queues(), deliver=rx)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await c.settle()
        c.advance(10 * S)
        await c.settle()
        assert rx.calls == []
        c.step_wall(2 * HOUR)  # the wall clock jumps past the ETA; no monotonic time passes
        await c.settle()
        assert rx.calls == [(2 * HOUR + 10 * S, "later", 0, 0)]
        assert c.monotonic_us() == T0 + 10 * S
        sched.stop()


async def test_a_backward_step_stalls_no_bucket() -> None:
    """Rate 1/s: one request a second of monotonic time, before and after the wall clock
    goes back an hour (a bucket on the wall clock would have waited for that hour)."""
    c = clock.FakeClock(T0, autojump=True)
    store = MemoryStore()
    await store.add([task(f"t{i}", T0 - 10 * HOUR) for i in range(4)], now_us=T0)
    rx = Receiver(c)

    def answer(t: object) -> dispatch.Attempt:
        if len(rx.calls) == 2:
            c.step_wall(-HOUR)
        return dispatch.Attempt(200)

    rx.answer = answer
    sched = scheduler.Scheduler(
        store=store, clock=c, queues=queues(rate=Fraction(1), bucket_size=1), deliver=rx
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        while len(rx.calls) < 4 and c.monotonic_us() < T0 + 60 * S:
            await c.sleep(0.01)
        sched.stop()
    assert [t for t, *_ in rx.calls] == [0, S, 2 * S - HOUR, 3 * S - HOUR]
    assert c.monotonic_us() < T0 + 4 * S


async def test_a_backward_step_delays_no_task_that_was_due() -> None:
    """A backlog due before the step back stays due: its ETAs are moved back by the step."""
    c = clock.FakeClock(T0, autojump=True)
    store = MemoryStore()
    await store.add([task(f"t{i}", T0 - 4 * MS + i * MS) for i in range(4)], now_us=T0)
    await store.add([task("future", T0 + 10 * S)], now_us=T0)
    rx = Receiver(c)

    def answer(t: object) -> dispatch.Attempt:
        if len(rx.calls) == 1:
            c.step_wall(-HOUR)
        return dispatch.Attempt(200)

    rx.answer = answer
    sched = scheduler.Scheduler(
        store=store, clock=c, queues=queues(rate=Fraction(1), bucket_size=1), deliver=rx
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        while len(rx.calls) < 5 and c.monotonic_us() < T0 + 2 * HOUR:
            await c.sleep(1)
        sched.stop()
    # The backlog at its pace; the task not yet due when the clock stepped keeps its wall ETA.
    assert [(t, n) for t, n, *_ in rx.calls] == [
        (0, "t0"),
        (S - HOUR, "t1"),
        (2 * S - HOUR, "t2"),
        (3 * S - HOUR, "t3"),
        (10 * S, "future"),
    ]


async def test_a_claim_ended_by_a_forward_step_is_not_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The request is still out when the wall clock jumps past its claim: the next claim
    hands the task back to this daemon, which keeps it and finishes it once."""
    caplog.set_level("WARNING", logger="pushd")
    c = clock.FakeClock(T0, autojump=True)
    store = MemoryStore()
    await store.add([task("slow")], now_us=T0)
    rx = Receiver(c, duration_s=5.0)
    sched = scheduler.Scheduler(store=store, clock=c, queues=queues(), deliver=rx)
    claims: list[tuple[int, int]] = []
    claim_due = store.claim_due

    async def spy(queue: str, **kw: int) -> list[base.Claimed]:
        got = await claim_due(queue, **kw)
        claims.extend((c.monotonic_us() - T0, x.task.eta_us - T0) for x in got)
        return got

    store.claim_due = spy  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await c.sleep(1)
        c.step_wall(2 * HOUR)  # "slow" is 1 s into its request; its lease is long over
        await c.sleep(10)
        sched.stop()
    lease = 2 * 600 * S + scheduler.LEASE_SLACK_US  # two default deadlines and the slack
    assert claims == [(0, 0), (S, lease)]  # handed back at once, its ETA the lease it held
    assert rx.calls == [(0, "slow", 0, 0)]
    assert await store.list_tasks("q") == []  # the outcome was written under the new lease
    assert [r.getMessage() for r in caplog.records] == ["claim_kept"]


async def test_a_rate_cut_and_restore_leaves_no_send_booked_hours_ahead() -> None:
    """500/s cut to 1/h and restored a second later: the tasks claimed before the cut are
    given back (no slot held for an hour) and all go within a second of the restore."""
    c = clock.FakeClock(T0, autojump=True)
    store = MemoryStore()
    await store.add([task(f"t{i}") for i in range(6)], now_us=T0)
    rx = Receiver(c, duration_s=0.01)
    fast = {"rate": Fraction(500), "bucket_size": 1, "max_concurrent_requests": 1}
    sched = scheduler.Scheduler(store=store, clock=c, queues=queues(**fast), deliver=rx)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await c.sleep(0.015)
        sent_before = len(rx.calls)
        sched.reconfigure(queues(**{**fast, "rate": Fraction(1, 3600)}))
        await c.sleep(1)
        assert sched.in_flight == 0  # nothing holds a slot waiting for its pace
        restored = c.monotonic_us()
        sched.reconfigure(queues(**fast))
        while len(rx.calls) < 6 and c.monotonic_us() < T0 + HOUR:
            await c.sleep(0.01)
        sched.stop()
    assert 0 < sent_before < 6
    assert len(rx.calls) == 6
    assert max(t for t, *_ in rx.calls) < restored - T0 + S


@pytest.mark.parametrize("step", [2 * HOUR, -HOUR])
async def test_the_shutdown_grace_is_monotonic(step: int) -> None:
    c = clock.FakeClock(T0, autojump=True)
    store = MemoryStore()
    await store.add([task("slow")], now_us=T0)
    rx = Receiver(c, duration_s=100.0)
    sched = scheduler.Scheduler(store=store, clock=c, queues=queues(), deliver=rx, grace_us=10 * S)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await c.sleep(1)
        sched.stop()
        c.step_wall(step)
    assert c.monotonic_us() == T0 + 11 * S
