"""The scheduler on a fake clock: exact virtual times, no sockets, no disk."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import types
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import anyio
import pytest

from pushd import clock, dispatch, models, scheduler
from pushd.queue_yaml import config
from pushd.store.memory import MemoryStore

T0 = 1_700_000_000_000_000
S = 1_000_000
MS = 1_000


def queues(**kw: Any) -> config.QueuesConfig:
    cfg = config.QueueConfig(name="q", **kw)
    return config.QueuesConfig(queues=types.MappingProxyType({"q": cfg}))


def task(name: str, eta: int = T0, **kw: Any) -> models.Task:
    return models.Task(queue="q", name=name, url="/work", eta_us=eta, created_us=T0, **kw)


class Receiver:
    """A scripted webhook receiver: records every attempt at its virtual time."""

    def __init__(
        self,
        c: clock.FakeClock,
        answer: Callable[[models.Task], dispatch.Attempt] | None = None,
        duration_s: float = 0.0,
    ) -> None:
        self.clock = c
        self.answer = answer or (lambda t: dispatch.Attempt(200))
        self.duration_s = duration_s
        self.calls: list[tuple[int, str, int, int]] = []  # (t - T0, name, retry, execution)
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(
        self, task: models.Task, cfg: config.QueueConfig, *, deadline_s: float, now_us: int
    ) -> dispatch.Attempt:
        self.calls.append((now_us - T0, task.name, task.retry_count, task.execution_count))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.duration_s:
                await self.clock.sleep(self.duration_s)
            return self.answer(task)
        finally:
            self.in_flight -= 1


async def run_until(
    sched: scheduler.Scheduler, c: clock.FakeClock, done: Callable[[], bool], limit_s: float
) -> None:
    """Run the scheduler on the autojumping clock until ``done()`` or ``limit_s`` virtual s.

    ``done`` is checked every virtual 10 ms, which does not move any scheduler deadline: the
    clock jumps to whichever sleeper is due first.
    """
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        while not done() and c.now_us() < T0 + limit_s * S:
            await c.sleep(0.01 if c.now_us() < T0 + 5 * S else 1.0)
        sched.stop()


@pytest.fixture
def fake() -> clock.FakeClock:
    return clock.FakeClock(T0, autojump=True)


async def test_rate_5_bucket_2_sends_two_at_once_then_five_per_second(
    fake: clock.FakeClock,
) -> None:
    store = MemoryStore()
    await store.add([task(f"t{i}") for i in range(8)], now_us=T0)
    rx = Receiver(fake)
    sched = scheduler.Scheduler(
        store=store, clock=fake, queues=queues(rate=Fraction(5), bucket_size=2), deliver=rx
    )
    await run_until(sched, fake, lambda: len(rx.calls) == 8, 10)
    assert [t for t, *_ in rx.calls] == [0, 0, 200 * MS, 400 * MS, 600 * MS, 800 * MS, S, 1200 * MS]
    assert await store.list_tasks("q") == []


async def test_failing_task_follows_worked_example_a_then_dead_letters(
    fake: clock.FakeClock,
) -> None:
    store = MemoryStore()
    await store.add([task("f")], now_us=T0)
    rx = Receiver(fake, lambda t: dispatch.Attempt(500, "HTTP 500"))
    retry_params = models.RetryParameters(
        task_retry_limit=7,
        task_age_limit_s=300,
        min_backoff_s=10,
        max_backoff_s=300,
        max_doublings=3,
    )
    sched = scheduler.Scheduler(
        store=store, clock=fake, queues=queues(rate=Fraction(100), retry=retry_params), deliver=rx
    )
    await run_until(sched, fake, lambda: len(rx.calls) == 8, 2000)
    await fake.settle()
    assert rx.calls == [
        (0, "f", 0, 0),
        (10 * S, "f", 1, 1),
        (30 * S, "f", 2, 2),
        (70 * S, "f", 3, 3),
        (150 * S, "f", 4, 4),
        (310 * S, "f", 5, 5),
        (550 * S, "f", 6, 6),
        (850 * S, "f", 7, 7),
    ]
    [dead] = await store.list_dead("q")
    assert dead.task.retry_count == 8
    assert dead.task.last_status == 500
    assert dead.reason.startswith("task_retry_limit 7 reached and task_age_limit 300s exceeded")
    assert await store.get("q", "f") is None


async def test_no_response_does_not_count_as_an_execution(fake: clock.FakeClock) -> None:
    store = MemoryStore()
    await store.add([task("n")], now_us=T0)
    answers = iter(
        [dispatch.Attempt(None, "refused"), dispatch.Attempt(500), dispatch.Attempt(200)]
    )
    rx = Receiver(fake, lambda t: next(answers))
    sched = scheduler.Scheduler(store=store, clock=fake, queues=queues(), deliver=rx)
    await run_until(sched, fake, lambda: len(rx.calls) == 3, 10)
    assert [(r, e) for _, _, r, e in rx.calls] == [(0, 0), (1, 0), (2, 1)]


async def test_each_failure_keeps_its_attempt_and_the_dead_letter_the_last(
    fake: clock.FakeClock,
) -> None:
    store = MemoryStore()
    await store.add([task("n")], now_us=T0)
    url = "http://127.0.0.1:9/work"
    answers = iter(
        [
            dispatch.Attempt(None, "ClientConnectorError: refused", kind="refused", url=url),
            dispatch.Attempt(503, "HTTP 503", url=url),
        ]
    )
    seen: list[models.LastAttempt | None] = []

    def answer(t: models.Task) -> dispatch.Attempt:
        seen.append(t.last_attempt)
        return next(answers)

    rx = Receiver(fake, answer, duration_s=0.5)
    retry = models.RetryParameters(task_retry_limit=1, min_backoff_s=10)
    sched = scheduler.Scheduler(store=store, clock=fake, queues=queues(retry=retry), deliver=rx)
    await run_until(sched, fake, lambda: len(rx.calls) == 2 and rx.in_flight == 0, 60)
    await fake.settle()
    refused = models.LastAttempt(
        time_us=T0, status=None, error="refused", message="ClientConnectorError: refused", url=url
    )
    # The second attempt went out carrying the first one's record (sent at T0, not answered).
    assert seen == [None, refused]
    [dead] = await store.list_dead("q")
    assert dead.task.last_attempt == models.LastAttempt(
        time_us=T0 + 10_500_000, status=503, error=None, message="HTTP 503", url=url
    )


async def test_max_concurrent_requests_is_never_exceeded(fake: clock.FakeClock) -> None:
    store = MemoryStore()
    await store.add([task(f"t{i:02d}") for i in range(20)], now_us=T0)
    rx = Receiver(fake, duration_s=1.0)
    sched = scheduler.Scheduler(
        store=store,
        clock=fake,
        queues=queues(rate=Fraction(1000), bucket_size=100, max_concurrent_requests=3),
        deliver=rx,
    )
    await run_until(sched, fake, lambda: len(rx.calls) == 20 and rx.in_flight == 0, 60)
    assert rx.max_in_flight == 3
    # Three at a time, each taking one virtual second.
    assert sorted(t for t, *_ in rx.calls)[:6] == [0, 0, 0, S, S, S]


async def test_retry_after_is_the_minimum_delay(fake: clock.FakeClock) -> None:
    store = MemoryStore()
    await store.add([task("r")], now_us=T0)
    answers = iter(
        [dispatch.Attempt(503, "HTTP 503", retry_after_us=42 * S), dispatch.Attempt(200)]
    )
    rx = Receiver(fake, lambda t: next(answers))
    sched = scheduler.Scheduler(store=store, clock=fake, queues=queues(), deliver=rx)
    await run_until(sched, fake, lambda: len(rx.calls) == 2, 100)
    assert [t for t, *_ in rx.calls] == [0, 42 * S]


async def test_a_503_lowers_the_enforced_rate(fake: clock.FakeClock) -> None:
    store = MemoryStore()
    await store.add([task("a"), task("b", T0 + 50 * S)], now_us=T0)
    rx = Receiver(fake, lambda t: dispatch.Attempt(503) if t.name == "a" else dispatch.Attempt(200))
    sched = scheduler.Scheduler(
        store=store, clock=fake, queues=queues(rate=Fraction(8)), deliver=rx
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        while not rx.calls:
            await fake.sleep(0.01)
        await fake.settle()
        assert sched.live("q").enforced_rate == 4.0
        sched.stop()


async def test_an_idle_queue_recovers_from_a_503_with_time_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 16: recovery used to need deliveries, so a queue slowed by 503s and then left
    idle stayed slowed (and logged ``queue_recovered`` at every step). Now the steps fall 5 s
    apart after the refusal, idle or not, the loop wakes for them by itself, and
    ``queue_recovered`` is logged once, when the configured rate is back."""
    caplog.set_level("INFO", logger="pushd")
    store = MemoryStore()
    await store.add([task("a")], now_us=T0)
    answers = iter([dispatch.Attempt(503, "HTTP 503"), dispatch.Attempt(200)])
    c = clock.FakeClock(T0)  # no autojump: we look at what it sleeps on
    rx = Receiver(c, lambda t: next(answers))
    sched = scheduler.Scheduler(store=store, clock=c, queues=queues(rate=Fraction(8)), deliver=rx)

    def recovered() -> list[object]:
        return [
            getattr(r, "fields", {}).get("enforced_rate")
            for r in caplog.records
            if getattr(r, "event", "") == "queue_recovered"
        ]

    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await c.settle()
        c.advance(100 * MS)  # the retry's backoff: answered 200, then nothing to do
        await c.settle()
        assert [t for t, *_ in rx.calls] == [0, 100 * MS]
        assert T0 + 5 * S in c.deadlines  # idle, yet it wakes for the first step
        for k in range(1, 4):
            c.set(T0 + k * 5 * S - 1)
            await c.settle()
            assert sched.live("q").enforced_rate == 8 * 0.5 * 1.25 ** (k - 1)
            c.set(T0 + k * 5 * S)
            await c.settle()
            assert T0 + (k + 1) * 5 * S in c.deadlines
        assert recovered() == []
        c.set(T0 + 20 * S)  # 4 * 125/128 is past 4 * 1: capped, back at the configured rate
        await c.settle()
        assert recovered() == ["8"]
        assert sched.live("q").enforced_rate == 8.0
        c.advance(3600 * S)
        await c.settle()
        assert recovered() == ["8"]
        sched.stop()
        await c.settle()
        c.advance(60 * S)  # the grace period's clock


async def test_idle_scheduler_sleeps_until_the_next_eta(fake: clock.FakeClock) -> None:
    store = MemoryStore()
    await store.add([task("later", T0 + 3600 * S)], now_us=T0)
    rx = Receiver(fake)
    c = clock.FakeClock(T0)  # no autojump: we look at what it sleeps on
    sched = scheduler.Scheduler(store=store, clock=c, queues=queues(), deliver=rx)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await c.settle()
        assert T0 + 3600 * S in c.deadlines
        assert rx.calls == []
        # An add of an earlier task wakes it up and it replans.
        await store.add([task("soon", T0 + 5 * S)], now_us=T0)
        sched.notify("q", T0 + 5 * S)
        await c.settle()
        assert T0 + 5 * S in c.deadlines
        c.advance(5 * S)
        await c.settle()
        assert [n for _, n, *_ in rx.calls] == ["soon"]
        sched.stop()
        await c.settle()
        c.advance(60 * S)  # the grace period's clock


async def test_paused_queue_holds_tasks_until_resumed(fake: clock.FakeClock) -> None:
    store = MemoryStore()
    await store.add([task("p")], now_us=T0)
    rx = Receiver(fake)
    sched = scheduler.Scheduler(store=store, clock=fake, queues=queues(), deliver=rx, paused={"q"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await fake.sleep(100)
        assert rx.calls == []
        assert sched.live("q").paused
        await sched.resume("q")
        while not rx.calls:
            await fake.sleep(0.01)
        assert rx.calls[0][0] == 100 * S
        sched.stop()
    assert await store.paused_queues() == set()


async def test_rate_zero_queue_dispatches_nothing(fake: clock.FakeClock) -> None:
    store = MemoryStore()
    await store.add([task("z")], now_us=T0)
    rx = Receiver(fake)
    sched = scheduler.Scheduler(
        store=store, clock=fake, queues=queues(rate=Fraction(0), rate_text="0"), deliver=rx
    )
    await run_until(sched, fake, lambda: False, 30)
    assert rx.calls == []
    assert await store.get("q", "z") is not None


async def test_reload_applies_a_new_rate_without_losing_tasks(fake: clock.FakeClock) -> None:
    store = MemoryStore()
    await store.add([task(f"t{i}") for i in range(4)], now_us=T0)
    rx = Receiver(fake)
    sched = scheduler.Scheduler(
        store=store, clock=fake, queues=queues(rate=Fraction(1), bucket_size=1), deliver=rx
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        while len(rx.calls) < 1:
            await fake.sleep(0.01)
        sched.reconfigure(queues(rate=Fraction(10), bucket_size=1))
        while len(rx.calls) < 4:
            await fake.sleep(0.01)
        sched.stop()
    # Reloaded at t=10 ms with 0.01 token earned at 1/s: the other 0.99 take 99 ms at 10/s.
    assert [t for t, *_ in rx.calls] == [0, 109 * MS, 209 * MS, 309 * MS]


async def test_shutdown_waits_for_in_flight_deliveries_within_the_grace(
    fake: clock.FakeClock,
) -> None:
    store = MemoryStore()
    await store.add([task("slow"), task("slower")], now_us=T0)
    durations = {"slow": 2.0, "slower": 100.0}

    async def deliver(t: models.Task, cfg: config.QueueConfig, **kw: Any) -> dispatch.Attempt:
        await fake.sleep(durations[t.name])
        return dispatch.Attempt(200)

    sched = scheduler.Scheduler(
        store=store, clock=fake, queues=queues(), deliver=deliver, grace_us=10 * S
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await fake.sleep(1)
        sched.stop()
    assert fake.now_us() == T0 + 11 * S  # stopped at t=1 s, waited the 10 s grace
    assert await store.get("q", "slow") is None  # finished within the grace
    left = await store.get("q", "slower")  # cut off: claimed, will run again after its lease
    assert left is not None
    assert left.eta_us > T0 + 600 * S


async def test_shutdown_gives_back_claimed_tasks_not_yet_sent(fake: clock.FakeClock) -> None:
    """Found in review: tasks claimed ahead of a free slot stayed claimed after a clean stop
    for two dispatch deadlines + 5 s (20 min by default) before anyone could send them."""
    store = MemoryStore()
    await store.add([task("first"), task("second", T0 + 1), task("third", T0 + 2)], now_us=T0)
    sent: list[str] = []

    async def deliver(t: models.Task, cfg: config.QueueConfig, **kw: Any) -> dispatch.Attempt:
        sent.append(t.name)
        await fake.sleep(100)
        return dispatch.Attempt(200)

    sched = scheduler.Scheduler(
        store=store,
        clock=fake,
        queues=queues(max_concurrent_requests=1),
        deliver=deliver,
        grace_us=10 * S,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await fake.sleep(1)
        sched.stop()
    assert sent == ["first"]  # the other two waited for the only slot
    first = await store.get("q", "first")
    assert first is not None
    assert first.eta_us > T0 + 600 * S  # its request was out: claimed until the claim ends
    for name, eta in (("second", T0 + 1), ("third", T0 + 2)):
        back = await store.get("q", name)
        assert back is not None
        assert (back.eta_us, back.retry_count, back.execution_count) == (eta, 0, 0)


async def test_abandon_ends_the_grace_at_once_and_gives_back_every_claim(
    fake: clock.FakeClock,
) -> None:
    """Issue 16: a second SIGTERM. The hung request and the task waiting for its slot are both
    given back (due at their own ETA, no attempt counted) at the moment of the abandon, not at
    the end of the 30 s grace nor of their claims."""
    store = MemoryStore()
    await store.add([task("hung"), task("waiting", T0 + 1)], now_us=T0)
    sent: list[str] = []

    async def deliver(t: models.Task, cfg: config.QueueConfig, **kw: Any) -> dispatch.Attempt:
        sent.append(t.name)
        await fake.sleep(3600)
        return dispatch.Attempt(200)

    sched = scheduler.Scheduler(
        store=store,
        clock=fake,
        queues=queues(max_concurrent_requests=1),
        deliver=deliver,
        grace_us=30 * S,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await fake.sleep(1)
        sched.stop()
        await fake.sleep(2)  # two seconds into the grace
        assert sched.in_flight == 2
        sched.abandon()
    assert fake.now_us() == T0 + 3 * S
    assert sent == ["hung"]
    for name, eta in (("hung", T0), ("waiting", T0 + 1)):
        back = await store.get("q", name)
        assert back is not None
        assert (back.eta_us, back.retry_count, back.execution_count) == (eta, 0, 0)


async def test_a_queue_back_in_queue_yaml_keeps_the_operators_pause(
    fake: clock.FakeClock,
) -> None:
    """A queue new to the scheduler (removed while stopped, then put back by a reload) starts
    paused if the operator paused it: the stored flag, not a fresh "running"."""
    store = MemoryStore()
    await store.add(
        [dataclasses.replace(task(f"t{i}"), queue=f"n{i}") for i in range(2)], now_us=T0
    )
    rx = Receiver(fake)
    sched = scheduler.Scheduler(store=store, clock=fake, queues=queues(), deliver=rx)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await fake.sleep(0.01)
        await sched.reconfigure_in_chunks(many(2, rate=Fraction(100)), paused={"n0"})
        while len(rx.calls) < 1:
            await fake.sleep(0.01)
        await fake.sleep(10)
        sched.stop()
    assert [name for _, name, *_ in rx.calls] == ["t1"]
    assert (sched.live("n0").paused, sched.live("n1").paused) == (True, False)


async def test_executed_last_minute_counts_a_sliding_minute_and_stays_bounded(
    fake: clock.FakeClock,
) -> None:
    store = MemoryStore()
    await store.add([task(f"t{i}", T0 + i * 20 * S) for i in range(6)], now_us=T0)
    rx = Receiver(fake)
    sched = scheduler.Scheduler(store=store, clock=fake, queues=queues(), deliver=rx)
    await run_until(sched, fake, lambda: len(rx.calls) == 6, 200)
    # Deliveries at 0, 20, ..., 100 s; the last minute before ~100 s holds 60..100 s (three).
    assert sched.live("q").executed_last_minute == 3
    assert len(sched._queues["q"].executed) <= 4


async def test_a_bug_in_one_delivery_fails_it_alone_and_the_task_runs_again(
    fake: clock.FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception in a delivery is logged; the others go on, and the broken one
    runs again once its claim (dispatch deadline + slack) expires."""
    store = MemoryStore()
    await store.add([task("bad"), task("good")], now_us=T0)
    broken = {"bad"}

    def answer(t: models.Task) -> dispatch.Attempt:
        if t.name in broken:
            broken.discard(t.name)
            raise RuntimeError("a bug")
        return dispatch.Attempt(200)

    rx = Receiver(fake, answer)
    sched = scheduler.Scheduler(
        store=store, clock=fake, queues=queues(rate=Fraction(100)), deliver=rx, grace_us=0
    )
    caplog.set_level("ERROR", logger="pushd")
    await run_until(sched, fake, lambda: len(rx.calls) == 3, 2000)
    lease_s = (
        scheduler.CLAIM_DEADLINES * models.DEFAULT_DISPATCH_DEADLINE_US + scheduler.LEASE_SLACK_US
    ) // S
    assert [(t // S, name) for t, name, *_ in rx.calls] == [
        (0, "bad"),
        (0, "good"),
        (lease_s, "bad"),
    ]
    assert await store.list_tasks("q") == []
    [record] = [r for r in caplog.records if getattr(r, "event", "") == "delivery_failed"]
    assert record.exc_info is not None
    assert "a bug" in str(record.exc_info[1])


async def test_a_slow_claim_then_a_fast_one_never_sends_more_than_the_bucket(
    fake: clock.FakeClock,
) -> None:
    """Tokens are counted at claim time; a claim that takes 300 ms followed by an instant one
    would hand over two bucketfuls at once. The send-time pacer keeps the receiver's view a
    token bucket: 2 at once, then one every 100 ms."""

    class SlowFirstClaim(MemoryStore):
        claims = 0

        async def claim_due(self, queue: str, **kw: Any) -> Any:
            self.claims += 1
            if self.claims == 1:
                await fake.sleep(0.3)
            return await super().claim_due(queue, **kw)

    store = SlowFirstClaim()
    await store.add([task(f"t{i}") for i in range(6)], now_us=T0)
    rx = Receiver(fake)
    sched = scheduler.Scheduler(
        store=store, clock=fake, queues=queues(rate=Fraction(10), bucket_size=2), deliver=rx
    )
    await run_until(sched, fake, lambda: len(rx.calls) == 6, 10)
    assert [t // MS for t, *_ in rx.calls] == [300, 300, 400, 500, 600, 700]


async def test_a_task_claimed_ahead_of_its_slot_keeps_its_whole_deadline(
    fake: clock.FakeClock,
) -> None:
    """With max_concurrent_requests 1 the second task is claimed at once and waits for the
    slot; a claim lasts two deadlines (plus slack), so the wait does not eat into the request's
    own deadline, and the request still ends before the claim does."""
    store = MemoryStore()
    await store.add([task("first"), task("second")], now_us=T0)
    deadlines: list[tuple[str, float]] = []
    rx = Receiver(fake, duration_s=18)

    async def deliver(t: models.Task, cfg: config.QueueConfig, **kw: Any) -> dispatch.Attempt:
        deadlines.append((t.name, kw["deadline_s"]))
        return await rx(t, cfg, **kw)

    sched = scheduler.Scheduler(
        store=store,
        clock=fake,
        queues=queues(rate=Fraction(100), max_concurrent_requests=1),
        deliver=deliver,
        default_deadline_us=20 * S,
    )
    await run_until(sched, fake, lambda: len(rx.calls) == 2, 100)
    assert [(t // S, name) for t, name, *_ in rx.calls] == [(0, "first"), (18, "second")]
    assert deadlines == [("first", 20.0), ("second", 20.0)]


class SlowClaims(MemoryStore):
    """A store whose claims take virtual time, as the SQLite writer's hop does."""

    def __init__(self, c: clock.FakeClock, delay_s: float) -> None:
        super().__init__()
        self.clock, self.delay_s = c, delay_s

    async def claim_due(self, queue: str, **kw: Any) -> Any:
        await self.clock.sleep(self.delay_s)
        return await super().claim_due(queue, **kw)


def many_queues(names: list[str], rate: int, bucket: int) -> config.QueuesConfig:
    cfgs = {n: config.QueueConfig(name=n, rate=Fraction(rate), bucket_size=bucket) for n in names}
    return config.QueuesConfig(queues=types.MappingProxyType(cfgs))


@pytest.mark.parametrize("how", ["pause", "rate 0", "removed", "purge", "delete"])
async def test_tasks_claimed_ahead_are_not_sent_once_paused_purged_or_deleted(
    fake: clock.FakeClock, how: str
) -> None:
    """Review: tasks claimed beyond the free slots waited for one and were sent anyway after a
    pause, a reload to rate 0 or without the queue, a purge or a delete (SPEC 5.3)."""
    store = MemoryStore()
    await store.add([task(f"t{i:02d}") for i in range(20)], now_us=T0)
    rx = Receiver(fake, duration_s=10)
    limits = {"rate": Fraction(100), "bucket_size": 50, "max_concurrent_requests": 5}
    sched = scheduler.Scheduler(
        store=store, clock=fake, queues=queues(**limits), deliver=rx, grace_us=0
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await fake.sleep(1)  # 5 in flight, 5 more claimed and waiting for their slots
        if how == "pause":
            await sched.pause("q")
        elif how == "rate 0":
            sched.reconfigure(queues(**{**limits, "rate": Fraction(0)}, rate_text="0"))
        elif how == "removed":
            sched.reconfigure(config.QueuesConfig(queues=types.MappingProxyType({})))
        elif how == "purge":
            await store.purge("q", now_us=fake.now_us())
            sched.forget("q")  # what every API's purge does
        else:
            names = [f"t{i:02d}" for i in range(20)]
            deleted = await store.delete("q", names, now_us=fake.now_us())
            sched.forget("q", [n for n, gone in zip(names, deleted, strict=True) if gone])
        await fake.sleep(60)
        sched.stop()
    assert [name for t, name, *_ in rx.calls if t > S] == []
    if how in ("pause", "rate 0", "removed"):  # the unsent claims were given back, unattempted
        left = await store.list_tasks("q", limit=100)
        assert len(left) == 15
        waited = [t for t in left if t.name in {f"t{i:02d}" for i in range(5, 10)}]
        assert {(t.eta_us, t.retry_count, t.execution_count) for t in waited} == {(T0, 0, 0)}


async def test_tasks_that_waited_for_slots_leave_at_the_buckets_pace(
    fake: clock.FakeClock,
) -> None:
    """Review: the pacer ran before the slot wait, so tasks waiting for slots that freed
    together left together: 10 at once from a bucket of 5."""
    store = MemoryStore()
    await store.add([task(f"t{i:02d}") for i in range(40)], now_us=T0)
    sends: list[int] = []

    async def deliver(t: models.Task, cfg: config.QueueConfig, **kw: Any) -> dispatch.Attempt:
        sends.append(kw["now_us"] - T0)
        if len(sends) == 1:
            await fake.sleep_until(T0 + 5 * S)  # the first answer comes at 5 s
        elif len(sends) <= 26:
            await fake.sleep_until(T0 + 30 * S)  # the receiver stalls until 30 s
        return dispatch.Attempt(200)

    sched = scheduler.Scheduler(
        store=store,
        clock=fake,
        queues=queues(rate=Fraction(5), bucket_size=5, max_concurrent_requests=20),
        deliver=deliver,
    )
    await run_until(sched, fake, lambda: len(sends) == 40, 120)
    assert max(Counter(sends).values()) <= 5


async def test_queues_claiming_at_once_never_overshoot_the_outstanding_cap(
    fake: clock.FakeClock,
) -> None:
    """Review: the room was read before the claim awaited the store, so 8 queues claimed the
    same room (96 outstanding where 12 were allowed)."""
    names = [f"q{i}" for i in range(8)]
    store = SlowClaims(fake, 0.01)
    for n in names:
        await store.add(
            [
                models.Task(queue=n, name=f"t{i}", url="/w", eta_us=T0, created_us=T0)
                for i in range(100)
            ],
            now_us=T0,
        )
    peak = 0

    async def deliver(t: models.Task, cfg: config.QueueConfig, **kw: Any) -> dispatch.Attempt:
        nonlocal peak
        peak = max(peak, sched.in_flight)
        await fake.sleep(1)
        return dispatch.Attempt(200)

    sched = scheduler.Scheduler(
        store=store,
        clock=fake,
        queues=many_queues(names, 500, 100),
        deliver=deliver,
        max_connections=4,
    )
    await run_until(sched, fake, lambda: False, 3)
    assert 0 < peak <= sched._admission.max_outstanding


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
@pytest.mark.parametrize("delay_s", [0.0, 0.001])
async def test_a_busy_queue_does_not_starve_another_of_connections(
    fake: clock.FakeClock, order: tuple[str, str], delay_s: float
) -> None:
    """Review: the queue whose delivery just ended always took the freed room first; queues
    held back by the global cap are now served first come, first served."""
    store = SlowClaims(fake, delay_s)
    busy = [
        models.Task(queue="a", name=f"t{i}", url="/w", eta_us=T0, created_us=T0)
        for i in range(3000)
    ]
    await store.add(busy, now_us=T0)
    later = [
        models.Task(queue="b", name=f"t{i}", url="/w", eta_us=T0 + S, created_us=T0)
        for i in range(5)
    ]
    await store.add(later, now_us=T0)
    sends: dict[str, list[int]] = {"a": [], "b": []}

    async def deliver(t: models.Task, cfg: config.QueueConfig, **kw: Any) -> dispatch.Attempt:
        sends[t.queue].append((kw["now_us"] - T0) // MS)
        await fake.sleep(0.1)
        return dispatch.Attempt(200)

    sched = scheduler.Scheduler(
        store=store,
        clock=fake,
        queues=many_queues(list(order), 500, 500),
        deliver=deliver,
        max_connections=4,
    )
    await run_until(sched, fake, lambda: len(sends["b"]) == 5, 30)
    assert len(sends["b"]) == 5
    assert max(sends["b"]) < 2000  # served within a second of being due
    assert sends["a"]


@pytest.mark.parametrize("how", ["pause", "bucket 1", "rate 0"])
async def test_a_change_while_a_claim_is_in_the_store_does_not_stop_the_scheduler(
    fake: clock.FakeClock, how: str
) -> None:
    """Review (older than this change): the claim's tokens were refused after a pause or a
    reload and a RuntimeError ended the daemon."""
    store = SlowClaims(fake, 0.1)
    await store.add([task(f"t{i}") for i in range(5)], now_us=T0)
    rx = Receiver(fake)
    sched = scheduler.Scheduler(
        store=store, clock=fake, queues=queues(rate=Fraction(10), bucket_size=5), deliver=rx
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await fake.sleep(0.05)  # the first claim of 5 is in the store
        if how == "pause":
            await sched.pause("q")
        elif how == "bucket 1":
            sched.reconfigure(queues(rate=Fraction(10), bucket_size=1))
        else:
            sched.reconfigure(queues(rate=Fraction(0), rate_text="0"))
        await fake.sleep(1)
        sched.stop()
    sent = len(rx.calls)
    assert sent == (5 if how == "bucket 1" else 0)


def many(count: int, **kw: Any) -> config.QueuesConfig:
    cfgs = {f"n{i}": config.QueueConfig(name=f"n{i}", **kw) for i in range(count)}
    return config.QueuesConfig(queues=types.MappingProxyType(cfgs))


async def test_a_reload_in_chunks_lets_the_loop_run_and_new_queues_deliver(
    fake: clock.FakeClock,
) -> None:
    """Issue 15: 5,000 queues applied in one go held the event loop. Between two chunks of
    RECONFIGURE_CHUNK queues another task runs; the new queues' loops start and deliver."""
    store = MemoryStore()
    rx = Receiver(fake)
    sched = scheduler.Scheduler(store=store, clock=fake, queues=queues(), deliver=rx)
    count = 3 * scheduler.RECONFIGURE_CHUNK + 1
    applied = [1]  # queues known to the scheduler each time the other task ran
    done = False

    async def other() -> None:
        while not done:
            applied.append(len(sched._queues))
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await fake.sleep(0.01)
        tg.start_soon(other)
        await sched.reconfigure_in_chunks(many(count, rate=Fraction(100)))
        done = True
        applied.append(len(sched._queues))
        await store.add(
            [dataclasses.replace(task(f"t{i}"), queue=f"n{i}") for i in range(count)], now_us=T0
        )
        for i in range(count):
            sched.notify(f"n{i}", T0)
        while len(rx.calls) < count:
            await fake.sleep(0.01)
        sched.stop()
    steps = sorted(set(applied))
    # Never more than one chunk applied between two turns of the other task.
    assert max(b - a for a, b in itertools.pairwise(steps)) <= scheduler.RECONFIGURE_CHUNK
    assert len(rx.calls) == count


async def test_an_idle_queue_with_stranded_pull_tasks_sleeps(fake: clock.FakeClock) -> None:
    """Issue 15: pull tasks stranded in a push queue kept next_eta in the past while claims
    skipped them: the loop spun. Now the store is asked a bounded number of times."""
    store = MemoryStore()
    pulls = [task(f"p{i}", method=models.Method.PULL) for i in range(3)]
    await store.add(pulls, now_us=T0)
    looks = 0
    real_next_eta = store.next_eta

    async def counting_next_eta(queue: str) -> int | None:
        nonlocal looks
        looks += 1
        return await real_next_eta(queue)

    store.next_eta = counting_next_eta  # type: ignore[method-assign]
    sched = scheduler.Scheduler(store=store, clock=fake, queues=queues(), deliver=Receiver(fake))
    await run_until(sched, fake, lambda: False, limit_s=60)
    assert looks == 1


async def test_a_local_failure_is_not_an_attempt_and_never_dead_letters(
    fake: clock.FakeClock,
) -> None:
    """Out of open files four times with task_retry_limit 0: the task is given back each time,
    due again LOCAL_FAILURE_RETRY_US later with its counts unchanged, then delivered."""
    store = MemoryStore()
    await store.add([task("l")], now_us=T0)
    answers = iter([dispatch.Attempt(None, "OSError: [Errno 24]", local=True)] * 4)
    rx = Receiver(fake, lambda t: next(answers, dispatch.Attempt(200)))
    sched = scheduler.Scheduler(
        store=store,
        clock=fake,
        queues=queues(retry=models.RetryParameters(task_retry_limit=0)),
        deliver=rx,
    )
    await run_until(sched, fake, lambda: len(rx.calls) == 5, 20)
    step = scheduler.LOCAL_FAILURE_RETRY_US
    assert rx.calls == [(i * step, "l", 0, 0) for i in range(5)]
    assert await store.list_dead("q", limit=10) == []


async def test_a_slow_receivers_waves_of_answers_never_wait_for_a_claim(
    fake: clock.FakeClock,
) -> None:
    """Issue 18 (slow receiver): 500 slots, answers after 200 ms, claims taking 20 ms. With
    one batch of 256 claimed beyond the slots, 244 of each wave's 500 freed slots waited for a
    claim; a whole window is claimed ahead now, and every wave leaves at once."""
    store = SlowClaims(fake, 0.02)
    await store.add([task(f"t{i:04d}") for i in range(2500)], now_us=T0)
    rx = Receiver(fake, duration_s=0.2)
    sched = scheduler.Scheduler(
        store=store,
        clock=fake,
        queues=queues(rate=Fraction(100000), bucket_size=10000, max_concurrent_requests=500),
        deliver=rx,
        max_connections=500,
    )
    await run_until(sched, fake, lambda: len(rx.calls) == 2500 and rx.in_flight == 0, 60)
    sent = Counter(t for t, *_ in rx.calls)
    # The first 500 wait for two claims (256 + 244, 20 ms each); from then on each freed slot
    # takes a task claimed ahead at once: the same two half-waves, 200 ms apart.
    assert sent == {
        k * 200 * MS + c * 20 * MS: n for k in range(5) for c, n in [(1, 256), (2, 244)]
    }
    assert rx.max_in_flight == 500


async def test_connections_are_handed_first_come_first_served_and_passed_on_when_cancelled() -> (
    None
):
    """The daemon's connection limit (scheduler.queue.Connections): a freed connection goes to
    the first waiter; a waiter cancelled after being handed one passes it on, never loses it."""
    from pushd.scheduler.queue import Connections

    conns = Connections(1)
    order: list[str] = []
    await conns.acquire()

    async def take(name: str) -> None:
        await conns.acquire()
        order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(take, "a")
        tg.start_soon(take, "b")
        await anyio.wait_all_tasks_blocked()
        conns.release()  # to a
        await anyio.wait_all_tasks_blocked()
        assert order == ["a"]
        conns.release()  # a's, to b
    assert order == ["a", "b"]
    conns.release()
    assert conns.free == 1

    # handed a connection, then cancelled before it ran: the connection goes to the next one
    await conns.acquire()
    c = asyncio.get_running_loop().create_task(take("c"))
    d = asyncio.get_running_loop().create_task(take("d"))
    await anyio.wait_all_tasks_blocked()
    conns.release()  # handed to c ...
    c.cancel()  # ... which is cancelled before it resumes
    await d
    assert c.cancelled()
    assert order == ["a", "b", "d"]
    conns.release()
    assert conns.free == 1
