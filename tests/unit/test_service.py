"""The service layer on its own: every domain operation over a MemoryStore, a FakeClock and a
recording engine, with the exact virtual timestamps each one writes (no HTTP, no wire format)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from pushd import clock, errors, metrics, service, tasks
from pushd.queue_yaml import config
from pushd.service import parts
from pushd.store import base, memory
from tests.unit.test_api import T0, FakeEngine, S

QUEUE_YAML = """
queue:
- name: push
  rate: 5/s
- name: work
  mode: pull
  retry_parameters:
    task_retry_limit: 1
total_storage_limit: 1K
"""


@dataclasses.dataclass
class World:
    svc: service.Service
    store: memory.MemoryStore
    clock: clock.FakeClock
    engine: FakeEngine
    queues: config.QueuesConfig


@pytest.fixture
def world() -> World:
    store = memory.MemoryStore()
    fake = clock.FakeClock(T0)
    engine = FakeEngine(store)
    w = World(None, store, fake, engine, config.load_text(QUEUE_YAML))  # type: ignore[arg-type]
    w.svc = service.Service(store=store, clock=fake, queues=lambda: w.queues, engine=engine)
    return w


def push(name: str, **kw: Any) -> tasks.TaskRequest:
    return tasks.TaskRequest(name=name, url="/h", payload=b"x", **kw)


def pull_task(name: str, **kw: Any) -> tasks.TaskRequest:
    return tasks.TaskRequest(name=name, method="PULL", payload=b"x", **kw)


# ------------------------------------------------------------------ tasks


async def test_add_stores_the_batch_wakes_the_scheduler_for_push_tasks_and_counts_them(
    world: World,
) -> None:
    svc = world.svc
    results = await svc.tasks.add(svc.queues.queue("push"), [push("b", countdown=5), push("a")])
    assert [(r.ok, r.task.eta_us) for r in results] == [(True, T0 + 5 * S), (True, T0)]
    # One wake-up per queue and batch, for its earliest task: the scheduler then finds the rest.
    assert world.engine.notified == [("push", T0)]
    [pulled] = await svc.tasks.add(svc.queues.queue("work"), [pull_task("p")])
    assert pulled.ok
    assert pulled.task.created_us == T0
    assert world.engine.notified == [("push", T0)]  # pull tasks wait
    text = svc.metrics.render({}).decode()
    assert 'pushd_tasks_added_total{queue="push"} 2' in text
    assert 'pushd_tasks_added_total{queue="work"} 1' in text


async def test_add_stores_nothing_when_one_task_of_the_batch_is_invalid(world: World) -> None:
    svc = world.svc
    with pytest.raises(errors.InvalidTaskNameError):
        await svc.tasks.add(svc.queues.queue("push"), [push("ok"), push("bad name")])
    assert await world.store.list_tasks("push") == []
    assert world.engine.notified == []


async def test_a_name_clash_fails_only_that_task(world: World) -> None:
    svc = world.svc
    cfg = svc.queues.queue("push")
    await svc.tasks.add(cfg, [push("a")])
    again = await svc.tasks.add(cfg, [push("a"), push("b")])
    assert [r.error for r in again] == [errors.TaskAlreadyExistsError, None]
    assert world.engine.notified == [("push", T0), ("push", T0)]


async def test_add_refuses_a_batch_past_the_total_storage_limit(world: World) -> None:
    svc = world.svc
    big = tasks.TaskRequest(name="big", url="/h", payload=b"x" * 2000)
    with pytest.raises(errors.StorageLimitExceededError, match="total_storage_limit is 1024"):
        await svc.tasks.add(svc.queues.queue("push"), [big])
    assert await world.store.list_tasks("push") == []


async def test_get_find_and_pages_in_name_order(world: World) -> None:
    svc = world.svc
    await svc.tasks.add(svc.queues.queue("push"), [push(n) for n in ("c", "a", "b")])
    assert (await svc.tasks.get("push", "a")).name == "a"
    assert await svc.tasks.find("push", "zz") is None
    with pytest.raises(errors.UnknownTaskError, match="queue 'push' has no task 'zz'"):
        await svc.tasks.get("push", "zz")
    first = await svc.tasks.page("push", limit=2)
    assert ([t.name for t in first.items], first.next) == (["a", "b"], "b")
    last = await svc.tasks.page("push", limit=2, after=first.next)
    assert ([t.name for t in last.items], last.next) == (["c"], None)


async def test_delete_forgets_only_the_names_that_were_live(world: World) -> None:
    svc = world.svc
    await svc.tasks.add(svc.queues.queue("push"), [push("a"), push("b")])
    assert await svc.tasks.delete("push", ["a", "nope"]) == [True, False]
    assert world.engine.calls == [("forget", "push:a")]
    with pytest.raises(errors.UnknownTaskError):
        await svc.tasks.delete_one("push", "a")  # tombstoned now
    await svc.tasks.delete_one("push", "b")
    assert await world.store.list_tasks("push") == []


async def test_run_now_makes_a_task_due_now_and_wakes_the_scheduler(world: World) -> None:
    svc = world.svc
    await svc.tasks.add(svc.queues.queue("push"), [push("later", countdown=60)])
    world.clock.advance(S)
    task = await svc.tasks.run_now("push", "later")
    assert task.eta_us == T0 + S
    assert world.engine.notified[-1] == ("push", T0 + S)
    with pytest.raises(errors.UnknownTaskError):
        await svc.tasks.run_now("push", "nope")


# ------------------------------------------------------------------ queues


async def test_pause_resume_and_purge(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pushd")
    svc = world.svc
    await svc.tasks.add(svc.queues.queue("push"), [push("a"), push("b")])
    await svc.queues.pause("push")
    assert await svc.queues.paused() == {"push"}
    await svc.queues.resume("push")
    assert await svc.queues.paused() == set()
    assert await svc.queues.purge("push") == 2
    assert world.engine.calls[-1] == ("forget", "push")
    assert (await svc.queues.counts("push")).tasks == 0
    assert [r.getMessage() for r in caplog.records] == ["queue_purged"]


async def test_stats_count_leases_for_pull_queues_and_show_removed_queues_paused(
    world: World,
) -> None:
    svc = world.svc
    await svc.tasks.add(svc.queues.queue("work"), [pull_task("p1"), pull_task("p2")])
    await svc.pull.lease(svc.queues.queue("work"), lease_us=60 * S, max_tasks=1)
    world.queues = dataclasses.replace(
        world.queues, removed={"gone": config.removed_queue("gone", pull=False)}
    )
    push_stats, work_stats, gone = await svc.queues.stats_of(
        [svc.queues.queue("push"), svc.queues.queue("work"), svc.queues.held("gone")]
    )
    assert push_stats.executed_last_minute == 7  # the engine's figure for push queues
    assert (work_stats.tasks, work_stats.executed_last_minute) == (2, 1)
    assert (gone.removed, gone.paused, push_stats.paused) == (True, True, False)


async def test_page_of_queues_skips_hidden_ones_and_gives_a_cursor(world: World) -> None:
    svc = world.svc
    page = svc.queues.page(limit=1, after=None, visible=lambda cfg: cfg.name == "work")
    assert ([c.name for c in page.items], page.next) == (["work"], None)
    page = svc.queues.page(limit=2, after=None, visible=lambda cfg: True)
    assert ([c.name for c in page.items], page.next) == (["default", "push"], "push")
    page = svc.queues.page(limit=2, after=page.next, visible=lambda cfg: True)
    assert ([c.name for c in page.items], page.next) == (["work"], None)


async def test_gauges_give_the_exact_age_of_the_oldest_task(world: World) -> None:
    svc = world.svc
    await svc.tasks.add(svc.queues.queue("push"), [push("a")])
    world.clock.advance(3 * S)
    gauges = await svc.queues.gauges([svc.queues.queue("push")])
    assert gauges["push"] == metrics.QueueGauges(
        waiting=1,
        in_flight=1,
        enforced_rate=2.5,
        oldest_eta_age_s=3.0,
        paused=False,
        dead_letters=0,
        removed=False,
    )


# ------------------------------------------------------------------ pull


async def test_lease_and_renew_at_exact_times(world: World) -> None:
    svc = world.svc
    cfg = svc.queues.queue("work")
    await svc.tasks.add(cfg, [pull_task("p")])
    [leased] = await svc.pull.lease(cfg, lease_us=30 * S, max_tasks=5)
    assert leased.eta_us == T0 + 30 * S
    world.clock.advance(10 * S)
    renewed = await svc.pull.renew(cfg, "p", current_eta_us=leased.eta_us, lease_us=60 * S)
    assert renewed.eta_us == T0 + 70 * S
    assert svc.pull.leased("work") == service.pull.Leased(last_minute=1, last_hour=1)


async def test_pull_operations_refuse_push_queues_and_paused_queues(world: World) -> None:
    svc = world.svc
    with pytest.raises(errors.InvalidQueueModeError, match="it is a push queue"):
        await svc.pull.lease(svc.queues.queue("push"), lease_us=S, max_tasks=1)
    await svc.queues.pause("work")
    with pytest.raises(errors.QueuePausedError, match="pushdctl resume work"):
        await svc.pull.lease(svc.queues.queue("work"), lease_us=S, max_tasks=1)
    with pytest.raises(errors.QueuePausedError):
        await svc.pull.renew(svc.queues.queue("work"), "p", current_eta_us=T0, lease_us=S)


async def test_a_task_over_its_lease_limit_becomes_a_dead_letter(world: World) -> None:
    svc = world.svc
    cfg = svc.queues.queue("work")  # task_retry_limit 1: one lease, then a dead letter
    await svc.tasks.add(cfg, [pull_task("p")])
    leases = []
    for _ in range(3):
        leases.append(len(await svc.pull.lease(cfg, lease_us=S, max_tasks=1)))
        world.clock.advance(2 * S)
    assert leases == [1, 0, 0]
    assert (await svc.dead.get("work", "p")).task.name == "p"
    assert 'pushd_tasks_dead_lettered_total{queue="work"} 1' in svc.metrics.render({}).decode()


# ------------------------------------------------------------------ dead letters


async def kill(world: World, name: str) -> None:
    await world.svc.tasks.add(world.svc.queues.queue("push"), [push(name)])
    [claimed] = await world.store.claim_due("push", now_us=T0, limit=1, lease_us=60 * S)
    outcome = base.DeadLetter(
        queue="push",
        name=name,
        lease_eta_us=claimed.lease_eta_us,
        retry_count=3,
        execution_count=3,
        first_try_us=T0,
        last_status=500,
        reason="task_retry_limit reached",
    )
    await world.store.finish([outcome], now_us=T0 + S)


async def test_redrive_puts_a_dead_letter_back_due_now(world: World) -> None:
    svc = world.svc
    await kill(world, "d")
    page = await svc.dead.page("push", limit=10)
    assert [d.task.name for d in page.items] == ["d"]
    world.clock.advance(5 * S)
    task = await svc.dead.redrive("push", "d")
    assert (task.name, task.eta_us, task.retry_count) == ("d", T0 + 5 * S, 0)
    assert world.engine.notified[-1] == ("push", T0 + 5 * S)
    with pytest.raises(errors.UnknownTaskError, match="has no dead letter 'd'"):
        await svc.dead.get("push", "d")


async def test_forget_deletes_a_dead_letter_once(world: World) -> None:
    svc = world.svc
    await kill(world, "d")
    await svc.dead.forget("push", "d")
    with pytest.raises(errors.UnknownTaskError, match="has no dead letter 'd'"):
        await svc.dead.forget("push", "d")


def test_page_of_names_the_last_item_only_when_more_remain() -> None:
    assert parts.page_of(["a", "b", "c"], 2, str) == parts.Page(["a", "b"], "b")
    assert parts.page_of(["a", "b"], 2, str) == parts.Page(["a", "b"], None)
    assert parts.page_of([], 2, str) == parts.Page([], None)


def test_problem_is_none_for_a_store_without_health() -> None:
    svc = service.Service(
        store=memory.MemoryStore(),
        clock=clock.FakeClock(T0),
        queues=config.QueuesConfig,
        engine=FakeEngine(memory.MemoryStore()),
    )
    assert svc.problem() is None
    assert isinstance(svc.clock, clock.FakeClock)
