"""What only a store shared by several daemons must do: PostgreSQL, two stores on one database.

The common contract (``test_store.py``) runs on PostgreSQL too; these tests add what one
daemon never needs: concurrent claims and leases from two stores, global names, changes
announced to the other daemons, queue ownership, migrations, an unreachable server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from pushd import errors, models
from pushd.store import base, open_store, postgres_cluster
from pushd.store import postgres as pg
from tests import pgserver
from tests.contract.test_store import DAY, T0, S, pull, push

Pair = tuple[pg.PostgresStore, pg.PostgresStore]


async def _open(url: str) -> pg.PostgresStore:
    store = await open_store(url, tombstone_retention_us=9 * DAY, dead_letter_retention_us=7 * DAY)
    assert isinstance(store, pg.PostgresStore)
    return store


@pytest.fixture
async def two(pg_url: str) -> AsyncIterator[Pair]:
    """Two stores on one database, as two daemons have."""
    a, b = await _open(pg_url), await _open(pg_url)
    yield a, b
    await a.close()
    await b.close()


async def test_concurrent_claims_never_take_one_task_twice(two: Pair) -> None:
    a, b = two
    await a.add([push(f"t{i:04}", T0 + i) for i in range(600)], now_us=T0)

    async def claims(store: pg.PostgresStore) -> list[str]:
        got: list[str] = []
        while batch := await store.claim_due("q", now_us=T0 + S, limit=7, lease_us=60 * S):
            got += [c.task.name for c in batch]
        return got

    results = await asyncio.gather(*(claims(s) for s in (a, b, a, b)))
    names = [n for r in results for n in r]
    assert len(names) == 600
    assert len(set(names)) == 600
    assert all(results), "every claimer got some tasks: they ran side by side"


async def test_concurrent_leases_never_hand_one_task_to_two_workers(two: Pair) -> None:
    a, b = two
    await a.add([pull(f"p{i:03}", tag=b"t" if i % 2 else None) for i in range(300)], now_us=T0)

    async def worker(store: pg.PostgresStore, by_tag: bool) -> list[str]:
        got: list[str] = []
        while leased := await store.lease(
            "p", now_us=T0 + S, lease_us=60 * S, max_tasks=5, group_by_tag=by_tag
        ):
            got += [t.name for t in leased]
        return got

    results = await asyncio.gather(*(worker(s, i % 2 == 1) for i, s in enumerate((a, b) * 3)))
    names = [n for r in results for n in r]
    assert sorted(names) == sorted(f"p{i:03}" for i in range(300))


async def test_one_name_added_through_many_daemons_wins_once(two: Pair) -> None:
    a, b = two
    names = [f"n{i}" for i in range(40)]
    results = await asyncio.gather(
        *(s.add([push(n) for n in names], now_us=T0) for s in (a, b, a, b, a))
    )
    for i, name in enumerate(names):
        outcomes = [r[i] for r in results]
        assert sum(o.ok for o in outcomes) == 1, name
        assert {o.error for o in outcomes if not o.ok} == {errors.TaskAlreadyExistsError}
    # Tombstones are global too: a name deleted through one is refused through the other.
    assert await a.delete("q", ["n0"], now_us=T0) == [True]
    [again] = await b.add([push("n0")], now_us=T0 + S)
    assert again.error is errors.TombstonedTaskError


async def _changes(store: pg.PostgresStore) -> tuple[list[base.Change], Callable[[int], object]]:
    """Start watching; the list of changes seen, and a coroutine factory waiting for N."""
    seen: list[base.Change] = []
    arrived = asyncio.Event()

    def on_change(change: base.Change) -> None:
        seen.append(change)
        arrived.set()

    await store.watch(on_change)

    async def until(count: int) -> None:
        while len(seen) < count:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 10)

    return seen, until


async def test_changes_reach_the_other_daemons_once_committed(two: Pair) -> None:
    a, b = two
    seen, until = await _changes(b)
    await a.add([push("x", T0 + 5 * S), push("y", T0 + 2 * S), pull("z")], now_us=T0)
    await a.add([push("x")], now_us=T0)  # nothing added: nothing announced
    await a.set_paused("q", True)
    await a.run_now("q", "x", now_us=T0 + S)
    await a.delete("q", ["x", "nope"], now_us=T0 + S)
    await a.purge("q", now_us=T0 + S)
    await until(5)
    assert seen == [
        base.Change("due", "q", eta_us=T0 + 2 * S),  # the earliest of the batch; pull: none
        base.Change("paused", "q", paused=True),
        base.Change("due", "q", eta_us=T0 + S),
        base.Change("forget", "q", names=("x",)),
        base.Change("forget", "q"),
    ]


async def test_many_names_to_forget_come_in_several_notifications(two: Pair) -> None:
    a, b = two
    names = [f"task-with-a-long-name-{i:05}-" + "x" * 40 for i in range(400)]
    await a.add([push(n) for n in names], now_us=T0)
    seen, until = await _changes(b)
    await a.delete("q", names, now_us=T0)
    chunks = len(postgres_cluster.notify_payloads(base.Change("forget", "q", names=tuple(names))))
    assert chunks > 1
    await until(chunks)
    assert sorted(n for c in seen for n in c.names or ()) == sorted(names)


async def test_queues_are_shared_out_and_taken_over(two: Pair) -> None:
    a, b = two
    queues = ["q1", "q2", "q3", "q4"]
    live = {"q1": models.LiveStats(in_flight=3, executed_last_minute=7)}
    first = await a.own_queues("A", queues, live, ttl_us=60 * S)
    assert first.owned == frozenset(queues)
    assert first.daemons == 1
    # B joins: everything is held, so it gets nothing yet, but sees A's statistics.
    joined = await b.own_queues("B", queues, {}, ttl_us=60 * S)
    assert joined.owned == frozenset()
    assert joined.daemons == 2
    assert joined.others["q1"] == live["q1"]
    # A's next renewal gives back its excess; B takes it on its own next one.
    renewed = await a.own_queues("A", queues, {}, ttl_us=60 * S)
    assert renewed.owned == frozenset({"q1", "q2"})
    taken = await b.own_queues("B", queues, {}, ttl_us=60 * S)
    assert taken.owned == frozenset({"q3", "q4"})
    # A stops cleanly: B takes everything at once.
    await a.leave("A")
    alone = await b.own_queues("B", queues, {}, ttl_us=60 * S)
    assert alone.owned == frozenset(queues)
    assert alone.daemons == 1


async def test_a_hold_not_renewed_runs_out(two: Pair) -> None:
    a, b = two
    await a.own_queues("A", ["q1", "q2"], {}, ttl_us=1)  # held for 1 µs of the database's clock
    # A's heartbeat is recent for B's window, so the share is one queue each; both are free.
    got = await b.own_queues("B", ["q1", "q2"], {}, ttl_us=60 * S)
    assert got.daemons == 2
    assert len(got.owned) == 1


async def test_the_ticket_secret_is_shared(two: Pair) -> None:
    a, b = two
    first = await a.secret("api_tickets", lambda: b"first")
    assert first == b"first"
    assert await b.secret("api_tickets", lambda: b"second") == b"first"


async def test_migrations_are_versioned_and_a_newer_schema_refused(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await pg.migrate(conn) == (0, pg.SCHEMA_VERSION)
        assert await pg.migrate(conn) == (pg.SCHEMA_VERSION, pg.SCHEMA_VERSION)
        await conn.execute(
            "UPDATE pushd_meta SET value = $1 WHERE key = 'schema_version'",
            str(pg.SCHEMA_VERSION + 1),
        )
        with pytest.raises(errors.PushdError, match="newer than this pushd"):
            await pg.migrate(conn)
    finally:
        await conn.close()


async def test_schema_1_tasks_read_after_migration_2_adds_last_attempts(pg_url: str) -> None:
    """A database of schema 1 (before tasks kept their last attempt) migrates with its tasks."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(pg.Q["meta_table"])
        await conn.execute(pg.Q["migration_1"])
        await conn.execute(pg.Q["set_schema_version"], 1)
        await conn.execute(
            "INSERT INTO pushd_tasks (queue, name, eta_us, method, url, on_queue_url, headers,"
            " payload, created_us, size) VALUES ('q', 'old', 1, 'POST', '/x', 0, '[]', '', 1, 1)"
        )
        assert await pg.migrate(conn) == (1, pg.SCHEMA_VERSION)
    finally:
        await conn.close()
    store = await open_store(pg_url, migrate_schema=False)
    try:
        task = await store.get("q", "old")
        assert task is not None
        assert (task.url, task.last_attempt) == ("/x", None)
    finally:
        await store.close()


async def test_without_migrating_an_old_schema_is_refused(pg_url: str) -> None:
    with pytest.raises(errors.PushdError, match="pushdctl migrate"):
        await open_store(pg_url, migrate_schema=False)


async def test_a_lost_server_is_a_transient_error_not_a_crash(
    tmp_path: Path, pg_server: pgserver.PgServer
) -> None:
    server = await asyncio.to_thread(pgserver.start, tmp_path)  # one of its own, to stop
    try:
        store = await _open(server.dsn)
        assert (await store.add([push("a")], now_us=T0))[0].ok
    finally:
        await asyncio.to_thread(server.stop)
    try:
        with pytest.raises(errors.TransientError, match="PostgreSQL database is unavailable"):
            await store.add([push("b")], now_us=T0)
        with pytest.raises(errors.TransientError):
            await store.claim_due("q", now_us=T0, limit=1, lease_us=S)
    finally:
        await store.close()


async def test_a_lost_listener_listens_again_when_asked(two: Pair) -> None:
    a, b = two
    seen, until = await _changes(b)
    assert not await b.rewatch()  # listening: nothing to do
    listener = b._listener
    assert listener is not None
    closed = asyncio.Event()
    listener.add_termination_listener(lambda _conn: closed.set())
    async with a._tx() as conn:  # the server ends the listening session (as a restart does)
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
        )
    await asyncio.wait_for(closed.wait(), 10)
    assert await b.rewatch()
    await a.add([push("after")], now_us=T0)
    await until(1)
    assert seen == [base.Change("due", "q", eta_us=T0)]


async def test_a_value_postgresql_cannot_hold_is_a_request_error(two: Pair) -> None:
    # Found by review of the console: ?after=%00 reached PostgreSQL and answered 500.
    a, _ = two
    with pytest.raises(errors.Error, match="PostgreSQL cannot take"):
        await a.list_tasks("q", after_name="\x00")
    with pytest.raises(errors.Error):
        await a.list_dead("q", after_name="a\x00b")
    assert await a.list_tasks("q") == []  # the pool is fine afterwards


async def test_a_name_re_added_while_its_run_is_recorded_does_not_run_again(two: Pair) -> None:
    """Found in review: the tombstone check ran before another daemon's commit of the task's
    success; the insert waited for that commit's row lock, then went through: a second run."""
    a, b = two
    await a.add([push("t1")], now_us=T0)
    [c] = await a.claim_due("q", now_us=T0 + S, limit=1, lease_us=60 * S)
    async with a._pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()  # daemon A records t1 done, slowly
        await conn.execute(pg.Q["finish_done"], ["q"], ["t1"], [c.lease_eta_us], T0 + 2 * S)
        adding = asyncio.create_task(b.add([push("t1", T0 + 2 * S)], now_us=T0 + 2 * S))
        while not adding.done():  # until B's insert waits for A's row lock
            async with b._tx() as probe:
                waiting = await probe.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
                )
            if waiting:
                break
        await tx.commit()
    [result] = await adding
    assert result.error is errors.TombstonedTaskError
    assert await a.get("q", "t1") is None


async def test_a_retry_or_a_claim_given_back_is_announced_to_the_queue_s_new_owner(
    two: Pair,
) -> None:
    """Found in review: after a handover the new owner saw only the old owner's claim and
    slept until it would end (20 min by default) though the old owner gave the task back."""
    a, b = two
    await a.add([push("t1"), push("t2")], now_us=T0)
    claimed = await a.claim_due("q", now_us=T0, limit=2, lease_us=1200 * S)
    seen, until = await _changes(b)
    retries = [
        base.Retry(
            queue="q",
            name=c.task.name,
            lease_eta_us=c.lease_eta_us,
            eta_us=T0 + 3 * S + i,
            retry_count=0,
            execution_count=0,
            first_try_us=None,
            last_status=None,
        )
        for i, c in enumerate(claimed)
    ]
    await a.finish(retries, now_us=T0 + S)
    await until(1)
    assert seen == [base.Change("due", "q", eta_us=T0 + 3 * S)]


async def test_api_queue_changes_reach_the_other_daemons(two: Pair) -> None:
    a, b = two
    seen, until = await _changes(b)
    queue = models.ApiQueue(name="api")
    await a.save_api_queue(queue, create=True, now_us=T0)
    await a.save_api_queue(queue, create=True, now_us=T0)  # exists: nothing announced
    await a.save_api_queue(dataclasses.replace(queue, rate=1.0), create=False, now_us=T0)
    await a.delete_api_queue("api", now_us=T0 + S)
    await until(5)
    assert seen == [
        base.Change("queues", "api"),
        base.Change("queues", "api"),
        base.Change("forget", "api"),
        base.Change("paused", "api", paused=False),
        base.Change("queues", "api"),
    ]
    assert await b.api_queues() == []


async def test_two_daemons_creating_one_api_queue_at_once_make_it_once(two: Pair) -> None:
    a, b = two
    for i in range(5):
        queue = models.ApiQueue(name=f"q{i}")
        made = await asyncio.gather(
            a.save_api_queue(queue, create=True, now_us=T0),
            b.save_api_queue(queue, create=True, now_us=T0),
        )
        assert sorted(m.value for m in made) == ["created", "exists"]
