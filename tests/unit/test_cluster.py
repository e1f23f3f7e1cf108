"""pushd.cluster with a fake shared store, a fake scheduler and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pushd import clock, cluster, errors, models
from pushd.queue_yaml import config
from pushd.store import base

T0 = 1_700_000_000_000_000


@dataclass
class FakeShared:
    """Hands out what ``grant`` says; raises ``failing`` when set."""

    grant: frozenset[str] = frozenset()
    failing: errors.TransientError | None = None
    lost: bool = False
    paused: set[str] = field(default_factory=set)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    on_change: Callable[[base.Change], None] | None = None

    async def watch(self, on_change: Callable[[base.Change], None]) -> None:
        self.on_change = on_change

    async def rewatch(self) -> bool:
        lost, self.lost = self.lost, False
        return lost

    async def own_queues(
        self,
        daemon: str,
        queues: Sequence[str],
        live: Mapping[str, models.LiveStats],
        *,
        ttl_us: int,
        take: bool = True,
    ) -> base.Ownership:
        self.calls.append(("own", (daemon, list(queues), dict(live))))
        if not take:
            self.calls.append(("no_take", None))
        if self.failing is not None:
            raise self.failing
        return base.Ownership(self.grant, {"other": models.LiveStats(in_flight=2)}, 2)

    async def leave(self, daemon: str) -> None:
        self.calls.append(("leave", daemon))

    async def secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        return make()

    async def paused_queues(self) -> set[str]:
        self.calls.append(("paused_queues", None))
        return self.paused


@dataclass
class FakeScheduler:
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def notify(self, queue: str, eta_us: int) -> None:
        self.calls.append(("notify", (queue, eta_us)))

    def set_paused(self, queue: str, paused: bool) -> None:
        self.calls.append(("set_paused", (queue, paused)))

    def forget(self, queue: str, names: Any = None) -> None:
        self.calls.append(("forget", (queue, names)))

    def set_ownership(self, owned: frozenset[str], others: Mapping[str, Any]) -> None:
        self.calls.append(("set_ownership", owned))

    def wake_all(self) -> None:
        self.calls.append(("wake_all", None))

    def live_all(self) -> dict[str, models.LiveStats]:
        return {"a": models.LiveStats(executed_last_minute=5)}


QUEUES = config.load_text(
    "queue:\n- name: a\n  rate: 1/s\n- name: b\n  rate: 1/s\n- name: p\n  mode: pull\n"
)


def make(
    grant: frozenset[str] = frozenset({"a"}),
) -> tuple[cluster.Cluster, FakeShared, FakeScheduler, clock.FakeClock]:
    store, sched, fake = FakeShared(grant=grant), FakeScheduler(), clock.FakeClock(T0)
    c = cluster.Cluster(
        store,
        sched,  # type: ignore[arg-type]
        lambda: QUEUES,
        fake,
        daemon="me",
        initial=base.Ownership(grant, {}, 1),
    )
    return c, store, sched, fake


def test_the_initial_share_is_applied_at_once() -> None:
    c, _, sched, _ = make()
    assert c.owned == {"a"}
    assert sched.calls == [("set_ownership", frozenset({"a"}))]


def test_changes_from_other_daemons_reach_the_scheduler() -> None:
    c, _, sched, _ = make()
    sched.calls.clear()
    c.on_change(base.Change("due", "a", eta_us=T0 + 5))
    c.on_change(base.Change("paused", "a", paused=True))
    c.on_change(base.Change("forget", "a", names=("x",)))
    c.on_change(base.Change("forget", "b"))
    assert sched.calls == [
        ("notify", ("a", T0 + 5)),
        ("set_paused", ("a", True)),
        ("forget", ("a", ("x",))),
        ("forget", ("b", None)),
    ]


async def test_renewal_publishes_live_stats_of_push_queues_and_applies_the_answer() -> None:
    c, store, sched, _ = make()
    store.grant = frozenset({"a", "b"})
    await c._renew()
    assert store.calls == [
        ("paused_queues", None),  # the first renewal reads the paused flags again
        ("own", ("me", ["a", "b", "default"], {"a": models.LiveStats(executed_last_minute=5)})),
    ]
    assert sched.calls[-1] == ("set_ownership", frozenset({"a", "b"}))
    assert c.owned == {"a", "b"}


async def test_queues_are_dropped_only_once_the_hold_may_have_run_out() -> None:
    c, store, sched, fake = make()
    store.failing = errors.TransientError("down")
    fake.advance(cluster.OWNER_TTL_US - cluster.RENEW_US - 1)
    await c._renew()
    assert c.owned == {"a"}  # still within the hold renewed last: keep dispatching
    fake.advance(1)
    await c._renew()
    assert c.owned == frozenset()
    assert sched.calls[-1] == ("set_ownership", frozenset())
    store.failing = None
    await c._renew()
    assert c.owned == {"a"}


async def test_a_lost_listener_rereads_the_paused_flags_and_wakes_every_queue() -> None:
    """Found in review: a pause made through another daemon while the listener was down (or
    before it listened) was never seen: the owner kept sending a paused queue."""
    c, store, sched, _ = make()
    await c._renew()
    store.lost = True
    store.paused = {"b"}
    sched.calls.clear()
    await c._renew()
    assert ("set_paused", ("b", True)) in sched.calls
    assert ("set_paused", ("a", False)) in sched.calls
    assert ("wake_all", None) in sched.calls
    sched.calls.clear()
    await c._renew()  # listening again: nothing to re-read
    assert [k for k, _ in sched.calls] == ["set_ownership"]


async def test_a_pause_notified_while_the_flags_are_read_is_not_undone_by_the_read() -> None:
    """Found by the scale-out benchmark (PostgreSQL, one daemon): a queue paused right after
    start kept delivering. The first renewal's resync read the paused flags before the pause
    committed, the pause's notification set the flag, then the resync applied its stale read
    and resumed the queue in memory, for good."""
    c, store, sched, _ = make()
    stale: set[str] = set()  # what the read returns: it began before the pause committed

    async def read_racing_a_pause() -> set[str]:
        store.paused = {"a"}  # committed now, and notified while the read is in flight
        c.on_change(base.Change("paused", "a", paused=True))
        return stale

    store.paused_queues = read_racing_a_pause  # type: ignore[method-assign]
    sched.calls.clear()
    await c._renew()  # the first renewal resyncs
    flags = [args for kind, args in sched.calls if kind == "set_paused"]
    assert flags[0] == ("a", True)  # the notification
    assert ("a", False) not in flags  # the stale read does not undo it
    assert ("b", False) in flags  # the queues no notification touched take the read


async def test_a_draining_daemon_renews_without_taking_new_queues() -> None:
    c, store, _, _ = make()
    c.drain()
    await c._renew()
    assert ("no_take", None) in store.calls


async def test_a_renewal_that_hangs_drops_the_queues_when_the_hold_may_end() -> None:
    """Found in review: only an error stopped dispatching; a renewal that hung did not."""
    c, store, sched, fake = make()

    async def hang(*args: Any, **kw: Any) -> base.Ownership:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    store.own_queues = hang  # type: ignore[method-assign]
    fake.advance(cluster.OWNER_TTL_US - cluster.RENEW_US)  # the hold may end now
    await c._renew()  # gives up after its minimum budget (0.1 s of real time)
    assert c.owned == frozenset()
    assert sched.calls[-1] == ("set_ownership", frozenset())


async def test_run_renews_on_the_clock_and_leaves_when_stopped() -> None:
    c, store, _, fake = make()
    runner = asyncio.create_task(c.run())
    await fake.settle()  # until it blocks: on the clock, waiting for the next renewal
    assert store.on_change is not None
    assert [k for k, _ in store.calls] == ["paused_queues", "own"]
    assert fake.deadlines == [T0 + cluster.RENEW_US]
    fake.advance(cluster.RENEW_US)
    await fake.settle()
    assert [k for k, _ in store.calls] == ["paused_queues", "own", "own"]
    assert fake.deadlines == [T0 + 2 * cluster.RENEW_US]
    c.stop()
    await asyncio.wait_for(runner, 5)
    assert store.calls[-1] == ("leave", "me")
