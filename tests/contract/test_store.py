"""One contract, every backend: the store semantics the scheduler and APIs rely on."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pushd import errors, models
from pushd.store import base, open_store
from tests.conftest import fresh_database

T0 = 1_700_000_000_000_000
S = 1_000_000
DAY = 86400 * S


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[base.Store]:
    if request.param == "postgres":
        url = await fresh_database(request.getfixturevalue("pg_server"))
    else:
        url = "memory:" if request.param == "memory" else str(tmp_path / "pushd.sqlite3")
    s = await open_store(url, tombstone_retention_us=9 * DAY, dead_letter_retention_us=7 * DAY)
    yield s
    await s.close()


def push(name: str, eta: int = T0, queue: str = "q", **kw: object) -> models.Task:
    return models.Task(
        queue=queue, name=name, url=f"/_ah/queue/{queue}", eta_us=eta, created_us=T0, size=10, **kw
    )  # type: ignore[arg-type]


def pull(name: str, eta: int = T0, tag: bytes | None = None, **kw: object) -> models.Task:
    return models.Task(
        queue="p",
        name=name,
        method=models.Method.PULL,
        payload=b"x",
        eta_us=eta,
        created_us=T0,
        tag=tag,
        size=5,
        **kw,  # type: ignore[arg-type]
    )


async def test_add_then_get_round_trips_every_field(store: base.Store) -> None:
    task = push(
        "a",
        method=models.Method.PUT,
        headers=(("X-A", "1"), ("X-A", "2"), ("Content-Type", "text/plain")),
        payload=b"\x00\xffbody",
        retry_options=models.RetryParameters(task_retry_limit=3, min_backoff_s=0.5),
        target="v1.worker",
        dispatch_deadline_us=30 * S,
        on_queue_url=True,
    )
    [result] = await store.add([task], now_us=T0)
    assert result.ok
    assert await store.get("q", "a") == task
    assert await store.get("q", "missing") is None
    # A claim reads its rows its own way (SQLite: plain tuples by position): the same task.
    retried = dataclasses.replace(
        push("b", tag=b"t\x00"),
        retry_count=2,
        execution_count=1,
        first_try_us=T0 - S,
        last_status=503,
        last_attempt=models.LastAttempt(
            time_us=T0 - 1, status=503, error=None, message="HTTP 503", url="http://x/y"
        ),
    )
    await store.add([retried], now_us=T0)
    claimed = await store.claim_due("q", now_us=T0, limit=5, lease_us=S)
    assert [c.task for c in claimed] == [task, retried]


async def test_a_live_name_is_already_exists_and_a_used_one_tombstoned(store: base.Store) -> None:
    await store.add([push("a")], now_us=T0)
    [again] = await store.add([push("a")], now_us=T0)
    assert again.error is errors.TaskAlreadyExistsError
    assert await store.delete("q", ["a", "a", "zzz"], now_us=T0) == [True, False, False]
    [after] = await store.add([push("a")], now_us=T0 + S)
    assert after.error is errors.TombstonedTaskError
    # The same name in another queue is another task.
    [other] = await store.add([push("a", queue="r")], now_us=T0)
    assert other.ok


async def test_tombstones_expire_after_the_retention_window(store: base.Store) -> None:
    await store.add([push("a")], now_us=T0)
    await store.delete("q", ["a"], now_us=T0)
    [still] = await store.add([push("a")], now_us=T0 + 9 * DAY - 1)
    assert still.error is errors.TombstonedTaskError
    [free] = await store.add([push("a")], now_us=T0 + 9 * DAY)
    assert free.ok


async def test_tombstoned_tells_a_used_name_from_a_live_or_unknown_one(store: base.Store) -> None:
    await store.add([push("a"), push("b")], now_us=T0)
    await store.delete("q", ["a"], now_us=T0)
    assert await store.tombstoned("q", "a", now_us=T0 + 9 * DAY - 1)
    assert not await store.tombstoned("q", "a", now_us=T0 + 9 * DAY)  # retention over
    assert not await store.tombstoned("q", "b", now_us=T0)  # live
    assert not await store.tombstoned("q", "never", now_us=T0)
    assert not await store.tombstoned("r", "a", now_us=T0)  # another queue


async def test_batch_add_is_per_task(store: base.Store) -> None:
    await store.add([push("b")], now_us=T0)
    results = await store.add([push("a"), push("b"), push("c")], now_us=T0)
    assert [r.error for r in results] == [None, errors.TaskAlreadyExistsError, None]
    assert {t.name for t in await store.list_tasks("q")} == {"a", "b", "c"}


async def test_claim_due_takes_earliest_first_and_leases(store: base.Store) -> None:
    await store.add(
        [push("late", T0 + 5), push("early", T0 + 1), push("future", T0 + S)], now_us=T0
    )
    claimed = await store.claim_due("q", now_us=T0 + 10, limit=10, lease_us=60 * S)
    assert [c.task.name for c in claimed] == ["early", "late"]
    assert [c.task.eta_us for c in claimed] == [T0 + 1, T0 + 5]  # the ETA it was due at
    assert all(c.lease_eta_us == T0 + 10 + 60 * S for c in claimed)
    # Claimed tasks are not due again until the lease runs out: a crash makes them due again.
    assert await store.claim_due("q", now_us=T0 + 10, limit=10, lease_us=60 * S) == []
    assert await store.next_eta("q") == T0 + S
    again = await store.claim_due("q", now_us=T0 + 10 + 60 * S, limit=10, lease_us=S)
    assert {c.task.name for c in again} == {"early", "late", "future"}


async def test_a_step_back_keeps_what_was_due_due_and_in_order(store: base.Store) -> None:
    await store.add(
        [
            push("a", T0 - 5 * S),
            push("b", T0 + 1),
            push("c", T0 + 2 * S),
            push("d", T0 + 3 * S),
            push("held", T0 + S),
            push("later", T0 + 10 * S),
        ],
        now_us=T0,
    )
    await store.add([pull("x", T0 + S)], now_us=T0)
    # The wall clock read T0 + 3 s and is back at T0: b, c and d were due; "held" is claimed.
    moved = await store.step_back("q", now_us=T0, was_us=T0 + 3 * S, held={"held"})
    assert moved == 3
    etas = {t.name: t.eta_us for t in await store.list_tasks("q")}
    assert etas == {
        "a": T0 - 5 * S,  # due already: untouched
        "b": T0 + 1 - 3 * S,
        "c": T0 - S,
        "d": T0,
        "held": T0 + S,
        "later": T0 + 10 * S,  # not due then: keeps its wall-clock ETA
    }
    assert await store.step_back("p", now_us=T0, was_us=T0 + 3 * S, held=()) == 0  # pull
    claimed = await store.claim_due("q", now_us=T0, limit=10, lease_us=S)
    assert [c.task.name for c in claimed] == ["a", "b", "c", "d"]


async def test_claim_respects_the_limit_and_skips_pull_tasks(store: base.Store) -> None:
    await store.add([push(f"t{i}", T0 + i) for i in range(5)], now_us=T0)
    first = await store.claim_due("q", now_us=T0 + 10, limit=2, lease_us=S)
    assert [c.task.name for c in first] == ["t0", "t1"]
    await store.add([pull("x")], now_us=T0)
    assert await store.claim_due("p", now_us=T0 + 10, limit=10, lease_us=S) == []


async def test_next_eta_sees_only_the_tasks_a_claim_takes(store: base.Store) -> None:
    """Issue 15: pull tasks stranded in a push queue (its mode changed under them) counted in
    next_eta but not in claim_due, so the queue's loop never slept (100 % of a core)."""
    stranded = [dataclasses.replace(pull(f"s{i}", T0 + i), queue="mixed") for i in range(3)]
    await store.add(stranded, now_us=T0)
    assert await store.next_eta("mixed") is None
    assert await store.claim_due("mixed", now_us=T0 + 10 * S, limit=10, lease_us=S) == []
    await store.add([push("late", T0 + 5 * S, queue="mixed")], now_us=T0)
    assert await store.next_eta("mixed") == T0 + 5 * S
    [claimed] = await store.claim_due("mixed", now_us=T0 + 10 * S, limit=10, lease_us=S)
    assert claimed.task.name == "late"
    # Still listed, counted and deletable.
    assert (await store.counts("mixed")).tasks == 4
    assert {t.name for t in await store.list_tasks("mixed")} == {"s0", "s1", "s2", "late"}
    assert await store.delete("mixed", ["s0"], now_us=T0) == [True]


async def test_stranded_counts_the_tasks_of_the_other_kind(store: base.Store) -> None:
    await store.add(
        [push(f"t{i}") for i in range(3)] + [pull(f"x{i}") for i in range(2)], now_us=T0
    )
    await store.add([dataclasses.replace(pull("odd"), queue="q")], now_us=T0)
    push_, pull_ = models.QueueMode.PUSH, models.QueueMode.PULL
    assert await store.stranded({}) == {}
    assert await store.stranded({"q": push_, "p": pull_, "empty": push_}) == {"q": 1}
    assert await store.stranded({"q": pull_, "p": push_, "empty": pull_}) == {"q": 3, "p": 2}


async def test_unlisted_names_the_other_queues_holding_tasks_or_dead_letters(
    store: base.Store,
) -> None:
    """Queues removed from queue.yaml: what each holds, read at once for all of them."""
    await store.add([push(f"t{i}", T0 + i) for i in range(3)] + [pull("x0"), pull("x1")], now_us=T0)
    await store.add([push("a", queue="gone"), push("b", queue="gone")], now_us=T0)
    await store.add([push("solo", queue="dead-only")], now_us=T0)
    [c] = await store.claim_due("dead-only", now_us=T0, limit=1, lease_us=S)
    dead = base.DeadLetter(
        queue="dead-only",
        name="solo",
        lease_eta_us=c.lease_eta_us,
        retry_count=1,
        execution_count=1,
        first_try_us=T0,
        last_status=500,
        reason="task_retry_limit 0 reached",
    )
    await store.finish([dead], now_us=T0)
    await store.add([push("e", queue="emptied")], now_us=T0)
    await store.purge("emptied", now_us=T0)
    assert await store.unlisted(["q", "p", "gone", "dead-only"]) == {}
    assert await store.unlisted(["q", "zzz"]) == {
        "dead-only": base.Holding(tasks=0, dead_letters=1, pull=False),
        "gone": base.Holding(tasks=2, dead_letters=0, pull=False),
        "p": base.Holding(tasks=2, dead_letters=0, pull=True),
    }
    assert list(await store.unlisted([])) == ["dead-only", "gone", "p", "q"]


async def test_finish_done_deletes_and_tombstones(store: base.Store) -> None:
    await store.add([push("a")], now_us=T0)
    [c] = await store.claim_due("q", now_us=T0, limit=1, lease_us=S)
    await store.finish([base.Done(queue="q", name="a", lease_eta_us=c.lease_eta_us)], now_us=T0)
    assert await store.get("q", "a") is None
    [r] = await store.add([push("a")], now_us=T0)
    assert r.error is errors.TombstonedTaskError


async def test_a_batch_of_outcomes_matches_each_claim_as_stored(store: base.Store) -> None:
    """The lease a claim returns is the one stored (SQLite computes it in SQL: issue 18), so
    a batch of outcomes finds every task; an outcome with a lease not (or no longer) stored
    deletes and tombstones nothing."""
    await store.add(
        [push("own", dispatch_deadline_us=20 * S), push("dflt"), push("stale"), push("kept")],
        now_us=T0,
    )
    claimed = await store.claim_due(
        "q", now_us=T0, limit=4, lease_us=600 * S, slack_us=5 * S, deadlines=2
    )
    lease = {c.task.name: c.lease_eta_us for c in claimed}
    assert {n: e - T0 for n, e in lease.items()} == {
        "own": 45 * S,
        "dflt": 600 * S,
        "stale": 600 * S,
        "kept": 600 * S,
    }
    done = [base.Done(queue="q", name=n, lease_eta_us=lease[n]) for n in ("own", "dflt")]
    done.append(base.Done(queue="q", name="stale", lease_eta_us=lease["stale"] + 1))
    await store.finish(done, now_us=T0 + S)
    assert await store.get("q", "own") is None
    assert await store.get("q", "dflt") is None
    still = await store.get("q", "stale")
    assert still is not None
    assert still.eta_us == lease["stale"]  # untouched: still claimed
    results = await store.add([push("own"), push("dflt"), push("stale")], now_us=T0 + S)
    assert [r.error for r in results] == [
        errors.TombstonedTaskError,
        errors.TombstonedTaskError,
        errors.TaskAlreadyExistsError,  # live, never tombstoned
    ]


async def test_finish_retry_reschedules_with_counters(store: base.Store) -> None:
    await store.add([push("a")], now_us=T0)
    [c] = await store.claim_due("q", now_us=T0, limit=1, lease_us=S)
    outcome = base.Retry(
        queue="q",
        name="a",
        lease_eta_us=c.lease_eta_us,
        eta_us=T0 + 10 * S,
        retry_count=1,
        execution_count=1,
        first_try_us=T0,
        last_status=500,
    )
    await store.finish([outcome], now_us=T0)
    task = await store.get("q", "a")
    assert task is not None
    assert (task.eta_us, task.retry_count, task.execution_count, task.first_try_us) == (
        T0 + 10 * S,
        1,
        1,
        T0,
    )
    assert task.last_status == 500
    assert await store.next_eta("q") == T0 + 10 * S


REFUSED = models.LastAttempt(
    time_us=T0 + 3,
    status=None,
    error="refused",
    message="ClientConnectorError: Cannot connect to host 127.0.0.1:9",
    url="http://127.0.0.1:9/_ah/queue/q",
)


async def test_an_http_task_keeps_its_absolute_url_and_its_attempt_count(
    store: base.Store,
) -> None:
    """A Cloud Tasks HTTP task is a task with an absolute URL (no column of its own): the URL,
    the header case and the 5xx-excluding execution count (kept in its last attempt's JSON)
    survive the store, live and dead."""
    task = models.Task(
        queue="q",
        name="h",
        url="https://hooks.example.com/run?x=1&y=%2F",
        headers=(("X-Mixed-Case", "v"), ("User-Agent", "Google-Cloud-Tasks")),
        payload=b"{}",
        eta_us=T0,
        created_us=T0,
        size=10,
    )
    [result] = await store.add([task], now_us=T0)
    assert result.ok
    stored = await store.get("q", "h")
    assert stored == task
    assert stored.is_http_target
    [claimed] = await store.claim_due("q", now_us=T0, limit=1, lease_us=S)
    attempt = dataclasses.replace(REFUSED, status=404, error=None, url=task.url, executions=2)
    retry = base.Retry(
        queue="q",
        name="h",
        lease_eta_us=claimed.lease_eta_us,
        eta_us=T0 + S,
        retry_count=3,
        execution_count=3,
        first_try_us=T0,
        last_status=404,
        last_attempt=attempt,
    )
    await store.finish([retry], now_us=T0)
    again = await store.get("q", "h")
    assert again is not None
    assert (again.url, again.last_attempt) == (task.url, attempt)


async def test_the_last_attempt_is_kept_with_a_retry_a_release_and_a_dead_letter(
    store: base.Store,
) -> None:
    await store.add([push("a"), push("b")], now_us=T0)
    ca, cb = await store.claim_due("q", now_us=T0, limit=2, lease_us=S)
    retry = base.Retry(
        queue="q",
        name="a",
        lease_eta_us=ca.lease_eta_us,
        eta_us=T0 + 10 * S,
        retry_count=1,
        execution_count=0,
        first_try_us=T0,
        last_status=None,
        last_attempt=REFUSED,
    )
    http = dataclasses.replace(REFUSED, status=500, error=None, message="HTTP 500")
    dead = base.DeadLetter(
        queue="q",
        name="b",
        lease_eta_us=cb.lease_eta_us,
        retry_count=1,
        execution_count=1,
        first_try_us=T0,
        last_status=500,
        reason="task_retry_limit 0 reached",
        last_attempt=http,
    )
    await store.finish([retry, dead], now_us=T0 + S)
    task = await store.get("q", "a")
    assert task is not None
    assert task.last_attempt == REFUSED
    [listed] = await store.list_tasks("q")
    assert listed.last_attempt == REFUSED
    [d] = await store.list_dead("q")
    assert d.task.last_attempt == http
    # A claim given back unsent keeps the attempt before it.
    [c] = await store.claim_due("q", now_us=T0 + 10 * S, limit=1, lease_us=S)
    assert c.task.last_attempt == REFUSED
    given_back = dataclasses.replace(retry, lease_eta_us=c.lease_eta_us, last_attempt=REFUSED)
    await store.finish([given_back], now_us=T0 + 10 * S)
    assert (await store.get("q", "a")).last_attempt == REFUSED  # type: ignore[union-attr]
    # A redriven dead letter starts as if never tried.
    redriven = await store.redrive("q", "b", now_us=T0 + 20 * S)
    assert redriven is not None
    assert redriven.last_attempt is None
    assert (await store.get("q", "b")).last_attempt is None  # type: ignore[union-attr]


async def test_an_outcome_for_a_stale_lease_is_ignored(store: base.Store) -> None:
    await store.add([push("a")], now_us=T0)
    [c] = await store.claim_due("q", now_us=T0, limit=1, lease_us=S)
    [c2] = await store.claim_due("q", now_us=T0 + S, limit=1, lease_us=S)  # lease ran out
    await store.finish([base.Done(queue="q", name="a", lease_eta_us=c.lease_eta_us)], now_us=T0)
    assert await store.get("q", "a") is not None
    await store.finish([base.Done(queue="q", name="a", lease_eta_us=c2.lease_eta_us)], now_us=T0)
    assert await store.get("q", "a") is None


async def test_dead_letters_can_be_listed_redriven_and_deleted(store: base.Store) -> None:
    await store.add([push("a", payload=b"p"), push("b")], now_us=T0)
    claimed = await store.claim_due("q", now_us=T0, limit=2, lease_us=S)
    await store.finish(
        [
            base.DeadLetter(
                queue="q",
                name=c.task.name,
                lease_eta_us=c.lease_eta_us,
                retry_count=3,
                execution_count=3,
                first_try_us=T0,
                last_status=500,
                reason="task_retry_limit 3 reached",
            )
            for c in claimed
        ],
        now_us=T0 + S,
    )
    assert await store.get("q", "a") is None
    dead = await store.list_dead("q")
    assert [d.task.name for d in dead] == ["a", "b"]
    assert dead[0].task.payload == b"p"
    assert (dead[0].task.retry_count, dead[0].task.last_status) == (3, 500)
    assert dead[0].reason == "task_retry_limit 3 reached"
    assert dead[0].dead_us == T0 + S
    assert (await store.counts("q")).dead_letters == 2
    [r] = await store.add([push("a")], now_us=T0 + S)
    assert r.error is errors.TombstonedTaskError  # a dead letter's name stays reserved
    redriven = await store.redrive("q", "a", now_us=T0 + 2 * S)
    assert redriven is not None
    assert (redriven.eta_us, redriven.retry_count, redriven.first_try_us) == (T0 + 2 * S, 0, None)
    assert await store.get("q", "a") == redriven
    assert await store.get_dead("q", "a") is None
    assert await store.redrive("q", "a", now_us=T0) is None
    assert await store.delete_dead("q", "b")
    assert not await store.delete_dead("q", "b")
    assert await store.list_dead("q") == []


async def test_purge_removes_everything_and_tombstones(store: base.Store) -> None:
    await store.add([push("a"), push("b"), push("c", queue="r")], now_us=T0)
    assert await store.purge("q", now_us=T0) == 2
    assert await store.list_tasks("q") == []
    assert [t.name for t in await store.list_tasks("r")] == ["c"]
    [r] = await store.add([push("a")], now_us=T0)
    assert r.error is errors.TombstonedTaskError
    assert await store.next_eta("q") is None


async def test_list_tasks_pages_by_name(store: base.Store) -> None:
    await store.add([push(f"t{i:02d}") for i in range(25)], now_us=T0)
    page1 = await store.list_tasks("q", limit=10)
    page2 = await store.list_tasks("q", limit=10, after_name=page1[-1].name)
    assert [t.name for t in page1] == [f"t{i:02d}" for i in range(10)]
    assert [t.name for t in page2] == [f"t{i:02d}" for i in range(10, 20)]


async def _all_pages(
    store: base.Store, queue: str, *, prefix: str = "", tag: bytes | None = None
) -> list[str]:
    """Every name ``list_tasks`` finds, two at a time: each page after the last."""
    names: list[str] = []
    while True:
        after = names[-1] if names else None
        page = await store.list_tasks(queue, limit=2, after_name=after, prefix=prefix, tag=tag)
        names += [t.name for t in page]
        if len(page) < 2:
            return names


async def test_list_tasks_filters_by_name_prefix_and_tag_across_pages(store: base.Store) -> None:
    # Given names that a case-insensitive or punctuation-blind collation would interleave
    names = ["a", "a-c", "a1", "A2", "ab", "a_d", "b", "ba", "ab-x"]
    await store.add([push(n) for n in names], now_us=T0)
    tagged = [pull("ja", tag=b"red"), pull("jb", tag=b"blue"), pull("kc", tag=b"red"), pull("jd")]
    await store.add(tagged, now_us=T0)
    # Then a prefix is case-sensitive and exact, and paging loses or repeats nothing
    by_prefix = await _all_pages(store, "q", prefix="a")
    assert sorted(by_prefix) == sorted(n for n in names if n.startswith("a"))
    assert len(set(by_prefix)) == len(by_prefix)
    assert sorted(await _all_pages(store, "q", prefix="ab")) == ["ab", "ab-x"]
    assert await _all_pages(store, "q", prefix="A2") == ["A2"]
    assert await _all_pages(store, "q", prefix="zz") == []
    # And a tag selects its tasks, with or without a prefix; no filter lists everything
    assert await _all_pages(store, "p", tag=b"red") == ["ja", "kc"]
    assert await _all_pages(store, "p", tag=b"red", prefix="j") == ["ja"]
    assert await _all_pages(store, "p", tag=b"green") == []
    assert await _all_pages(store, "q", tag=b"red") == []
    assert sorted(await _all_pages(store, "p")) == ["ja", "jb", "jd", "kc"]


async def test_run_now_makes_a_task_due(store: base.Store) -> None:
    await store.add([push("a", T0 + DAY)], now_us=T0)
    task = await store.run_now("q", "a", now_us=T0 + 5)
    assert task is not None
    assert task.eta_us == T0 + 5
    assert [
        c.task.name for c in await store.claim_due("q", now_us=T0 + 5, limit=5, lease_us=S)
    ] == ["a"]
    assert await store.run_now("q", "nope", now_us=T0) is None


async def test_counts_and_total_bytes(store: base.Store) -> None:
    await store.add([push("a", T0 + 7), push("b", T0 + 3)], now_us=T0)
    counts = await store.counts("q")
    assert (counts.tasks, counts.oldest_eta_us, counts.bytes) == (2, T0 + 3, 20)
    assert await store.total_bytes() == 20
    empty = await store.counts("nothing")
    assert (empty.tasks, empty.oldest_eta_us) == (0, None)


async def test_counts_follow_every_way_a_task_leaves(store: base.Store) -> None:
    """Totals stay exact through add, delete, finish, dead letter, purge and redrive."""
    await store.add([push(n) for n in "abcdef"], now_us=T0)
    await store.delete("q", ["a"], now_us=T0)
    claimed = await store.claim_due("q", now_us=T0, limit=2, lease_us=S)
    done, dead = claimed
    await store.finish(
        [
            base.Done(queue="q", name=done.task.name, lease_eta_us=done.lease_eta_us),
            base.DeadLetter(
                queue="q",
                name=dead.task.name,
                lease_eta_us=dead.lease_eta_us,
                retry_count=1,
                execution_count=1,
                first_try_us=T0,
                last_status=500,
                reason="test",
            ),
        ],
        now_us=T0,
    )
    assert ((await store.counts("q")).tasks, await store.total_bytes()) == (3, 30)
    await store.redrive("q", dead.task.name, now_us=T0)
    assert ((await store.counts("q")).tasks, await store.total_bytes()) == (4, 40)
    assert await store.purge("q", now_us=T0) == 4
    assert ((await store.counts("q")).tasks, await store.total_bytes()) == (0, 0)


async def test_a_schema_1_database_migrates_and_counts_what_it_holds(tmp_path: Path) -> None:
    """A file written before the per-queue totals existed opens, and its totals are right."""
    import sqlite3

    from pushd.store.sqlite import SqliteStore

    path = tmp_path / "v1.sqlite3"
    s = await SqliteStore.open(path)
    await s.add([push("a"), push("b"), push("c", queue="r")], now_us=T0)
    await s.close()
    with sqlite3.connect(path) as conn:  # back to what schema 1 wrote
        conn.executescript(
            "DROP TRIGGER tasks_totals_insert; DROP TRIGGER tasks_totals_delete;"
            "DROP TABLE queue_totals;"
            "UPDATE meta SET value = '1' WHERE key = 'schema_version';"
        )
    s = await SqliteStore.open(path)
    try:
        assert ((await s.counts("q")).tasks, (await s.counts("r")).tasks) == (2, 1)
        assert await s.total_bytes() == 30
        await s.add([push("d")], now_us=T0)
        assert (await s.counts("q")).tasks == 3
    finally:
        await s.close()
    s = await SqliteStore.open(path)  # opening again counts nothing twice
    try:
        assert (await s.counts("q")).tasks == 3
    finally:
        await s.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            "6",
        )


async def test_a_schema_3_database_gains_last_attempts_and_keeps_its_tasks(
    tmp_path: Path,
) -> None:
    """A file written before tasks kept their last attempt: its tasks and dead letters read as
    never tried (no last attempt), and the next attempt is kept, across a restart."""
    import sqlite3

    from pushd.store.sqlite import SqliteStore

    path = tmp_path / "v3.sqlite3"
    s = await SqliteStore.open(path)
    await s.add([push("a"), push("b")], now_us=T0)
    [cb] = await s.claim_due("q", now_us=T0, limit=1, lease_us=S)
    dead = base.DeadLetter(
        queue="q",
        name="a",
        lease_eta_us=cb.lease_eta_us,
        retry_count=1,
        execution_count=1,
        first_try_us=T0,
        last_status=500,
        reason="r",
    )
    await s.finish([dead], now_us=T0)
    await s.close()
    with sqlite3.connect(path) as conn:  # back to what schema 3 wrote
        conn.execute("ALTER TABLE tasks DROP COLUMN last_attempt")
        blob = conn.execute("SELECT task FROM dead_tasks").fetchone()[0]
        old = blob.replace(b',"last_attempt":null', b"")
        assert old != blob
        conn.execute("UPDATE dead_tasks SET task = ?", (old,))
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    s = await SqliteStore.open(path)
    try:
        task = await s.get("q", "b")
        assert task is not None
        assert task.last_attempt is None
        [d] = await s.list_dead("q")
        assert (d.task.name, d.task.last_status, d.task.last_attempt) == ("a", 500, None)
        [c] = await s.claim_due("q", now_us=T0, limit=1, lease_us=S)
        retry = base.Retry(
            queue="q",
            name="b",
            lease_eta_us=c.lease_eta_us,
            eta_us=T0 + S,
            retry_count=1,
            execution_count=0,
            first_try_us=T0,
            last_status=None,
            last_attempt=REFUSED,
        )
        await s.finish([retry], now_us=T0)
    finally:
        await s.close()
    s = await SqliteStore.open(path)
    try:
        assert (await s.get("q", "b")).last_attempt == REFUSED  # type: ignore[union-attr]
    finally:
        await s.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            "6",
        )


async def test_paused_queues_persist(store: base.Store) -> None:
    await store.set_paused("q", True)
    await store.set_paused("r", True)
    await store.set_paused("r", False)
    assert await store.paused_queues() == {"q"}


async def test_lease_takes_available_tasks_in_eta_order(store: base.Store) -> None:
    await store.add([pull("b", T0 + 2), pull("a", T0 + 1), pull("later", T0 + DAY)], now_us=T0)
    leased = await store.lease("p", now_us=T0 + 10, lease_us=60 * S, max_tasks=10)
    assert [t.name for t in leased] == ["a", "b"]
    assert all(t.eta_us == T0 + 10 + 60 * S and t.retry_count == 1 for t in leased)
    assert await store.lease("p", now_us=T0 + 10, lease_us=60 * S, max_tasks=10) == []
    again = await store.lease("p", now_us=T0 + 10 + 60 * S, lease_us=S, max_tasks=1)
    assert [(t.name, t.retry_count) for t in again] == [("a", 2)]


async def test_lease_by_tag(store: base.Store) -> None:
    await store.add(
        [
            pull("u1", T0 + 1),
            pull("x1", T0 + 2, tag=b"x"),
            pull("y1", T0 + 3, tag=b"y"),
            pull("x2", T0 + 4, tag=b"x"),
            pull("u2", T0 + 5),
        ],
        now_us=T0,
    )
    now = T0 + 10
    tagged = await store.lease(
        "p", now_us=now, lease_us=S, max_tasks=10, group_by_tag=True, tag=b"x"
    )
    assert [t.name for t in tagged] == ["x1", "x2"]
    # No tag given: the earliest available task decides; it is untagged, so untagged only.
    untagged = await store.lease("p", now_us=now, lease_us=S, max_tasks=10, group_by_tag=True)
    assert [t.name for t in untagged] == ["u1", "u2"]
    rest = await store.lease("p", now_us=now, lease_us=S, max_tasks=10, group_by_tag=True)
    assert [t.name for t in rest] == ["y1"]


async def test_lease_dead_letters_tasks_past_their_retry_limit(store: base.Store) -> None:
    own = models.RetryParameters(task_retry_limit=1)
    await store.add([pull("q2"), pull("own", retry_options=own)], now_us=T0)
    now = T0
    names = []
    reported: list[base.DeadTask] = []
    for _ in range(4):
        leased = await store.lease(
            "p",
            now_us=now,
            lease_us=S,
            max_tasks=10,
            queue_retry_limit=2,
            dead_lettered=reported,
        )
        names.append(sorted(t.name for t in leased))
        now += S
    assert names == [["own", "q2"], ["q2"], [], []]
    [r] = await store.add([pull("own")], now_us=now)
    assert r.error is errors.TombstonedTaskError  # gone from the queue as in App Engine
    assert await store.get("p", "own") is None
    dead = await store.list_dead("p")
    assert reported == dead  # what the lease reported is what is kept
    assert [(d.task.name, d.task.retry_count, d.dead_us) for d in dead] == [
        ("own", 1, T0 + S),
        ("q2", 2, T0 + 2 * S),
    ]
    assert dead[0].reason == (
        "task_retry_limit reached: leased 1 times and not deleted (its own task_retry_limit is 1)"
    )
    assert dead[1].reason == (
        "task_retry_limit reached: leased 2 times and not deleted "
        "(the queue's task_retry_limit is 2)"
    )
    assert dead[1].task.payload == b"x"
    assert dead[1].task.is_pull
    counts = await store.counts("p")
    assert (counts.tasks, counts.dead_letters) == (0, 2)
    # Redriven: a pull task again, leasable at once, its leases counted from zero.
    back = await store.redrive("p", "q2", now_us=now)
    assert back is not None
    assert back.is_pull
    assert back.retry_count == 0
    [again] = await store.lease("p", now_us=now, lease_us=S, max_tasks=10, queue_retry_limit=2)
    assert (again.name, again.retry_count) == ("q2", 1)
    assert [d.task.name for d in await store.list_dead("p")] == ["own"]


async def test_modify_lease(store: base.Store) -> None:
    await store.add([pull("a")], now_us=T0)
    [t] = await store.lease("p", now_us=T0, lease_us=60 * S, max_tasks=1)
    renewed = await store.modify_lease(
        "p", "a", current_eta_us=t.eta_us, lease_us=120 * S, now_us=T0 + S
    )
    assert renewed.eta_us == T0 + S + 120 * S
    assert renewed.retry_count == 1  # renewing is not leasing again
    with pytest.raises(errors.TaskLeaseExpiredError):
        await store.modify_lease("p", "a", current_eta_us=t.eta_us, lease_us=S, now_us=T0 + S)
    with pytest.raises(errors.TaskLeaseExpiredError):  # lease already over
        await store.modify_lease(
            "p", "a", current_eta_us=renewed.eta_us, lease_us=S, now_us=renewed.eta_us + 1
        )
    released = await store.modify_lease(
        "p", "a", current_eta_us=renewed.eta_us, lease_us=0, now_us=T0 + 2 * S
    )
    assert released.eta_us == T0 + 2 * S
    with pytest.raises(errors.UnknownTaskError):
        await store.modify_lease("p", "zz", current_eta_us=0, lease_us=S, now_us=T0)
    await store.delete("p", ["a"], now_us=T0)
    with pytest.raises(errors.TombstonedTaskError):
        await store.modify_lease("p", "a", current_eta_us=0, lease_us=S, now_us=T0)


async def test_at_the_instant_a_lease_ends_only_a_new_lease_wins(store: base.Store) -> None:
    # Found in review: with "expired" meaning ETA < now, at ETA == now the old holder could renew
    # while another worker leased the same task.
    await store.add([pull("a")], now_us=T0)
    [t] = await store.lease("p", now_us=T0, lease_us=60 * S, max_tasks=1)
    with pytest.raises(errors.TaskLeaseExpiredError):
        await store.modify_lease("p", "a", current_eta_us=t.eta_us, lease_us=S, now_us=t.eta_us)
    [again] = await store.lease("p", now_us=t.eta_us, lease_us=60 * S, max_tasks=1)
    assert again.retry_count == 2


async def test_a_zero_second_lease_hands_each_task_out_once_per_call(store: base.Store) -> None:
    # Found by the differential client test: SQLite re-selected the task its 0 s lease had
    # just made due again, returning it three times (and burning its retry limit).
    await store.add([pull("a"), pull("b")], now_us=T0)
    leased = await store.lease("p", now_us=T0, lease_us=0, max_tasks=3)
    assert sorted((t.name, t.retry_count) for t in leased) == [("a", 1), ("b", 1)]
    again = await store.lease("p", now_us=T0, lease_us=0, max_tasks=3, queue_retry_limit=1)
    assert again == []  # both were over their limit of one lease: deleted, not leased


async def test_run_now_never_breaks_a_running_pull_lease(store: base.Store) -> None:
    # Found in review: "run now" on a leased pull task let a second worker lease it.
    await store.add([pull("a"), pull("b", eta=T0 + 60 * S)], now_us=T0)
    [t] = await store.lease("p", now_us=T0, lease_us=600 * S, max_tasks=1)
    with pytest.raises(errors.Error, match="leased by a worker"):
        await store.run_now("p", "a", now_us=T0 + S)
    assert (await store.get("p", "a")) == t
    waiting = await store.run_now("p", "b", now_us=T0 + S)  # not leased yet: fine
    assert waiting is not None
    assert waiting.eta_us == T0 + S
    expired = await store.run_now("p", "a", now_us=t.eta_us + 1)  # lease over: fine
    assert expired is not None


async def test_expire_drops_old_tombstones_and_dead_letters(store: base.Store) -> None:
    await store.add([push("a"), push("b")], now_us=T0)
    await store.delete("q", ["a"], now_us=T0)
    [c] = await store.claim_due("q", now_us=T0, limit=1, lease_us=S)
    dead = base.DeadLetter(
        queue="q",
        name="b",
        lease_eta_us=c.lease_eta_us,
        retry_count=1,
        execution_count=1,
        first_try_us=T0,
        last_status=None,
        reason="r",
    )
    await store.finish([dead], now_us=T0)
    assert await store.expire(now_us=T0 + 7 * DAY - 1) == 0
    assert await store.expire(now_us=T0 + 7 * DAY) == 1  # the dead letter
    assert await store.expire(now_us=T0 + 9 * DAY) == 2  # both tombstones
    assert await store.list_dead("q") == []


async def test_a_task_survives_reopening_the_sqlite_file(tmp_path: Path) -> None:
    path = str(tmp_path / "d.sqlite3")
    s = await open_store(path)
    await s.add([push("a", payload=b"keep")], now_us=T0)
    [c] = await s.claim_due("q", now_us=T0, limit=1, lease_us=30 * S)
    await s.close()  # as if pushd died mid-delivery
    s = await open_store(path)
    try:
        assert await s.claim_due("q", now_us=T0 + 30 * S - 1, limit=1, lease_us=S) == []
        [again] = await s.claim_due("q", now_us=T0 + 30 * S, limit=1, lease_us=S)
        assert again.task == dataclasses.replace(c.task, eta_us=c.lease_eta_us)
        assert again.task.payload == b"keep"
    finally:
        await s.close()


async def test_concurrent_writes_share_commits(tmp_path: Path) -> None:
    import asyncio

    from pushd.store.sqlite import SqliteStore

    s = await SqliteStore.open(tmp_path / "g.sqlite3", durability="normal")
    try:
        await asyncio.gather(*(s.add([push(f"t{i}")], now_us=T0) for i in range(200)))
        assert len(await s.list_tasks("q", limit=1000)) == 200
        assert s.commits < 200
    finally:
        await s.close()


async def test_open_store_refuses_what_it_cannot_open(tmp_path: Path) -> None:
    closed = socket.socket()  # bound, never listening: nothing answers on its port
    closed.bind(("127.0.0.1", 0))
    url = f"postgresql://me:s3cret@127.0.0.1:{closed.getsockname()[1]}/x"
    with pytest.raises(errors.PushdError, match="cannot connect") as refused:
        await open_store(url)
    assert "s3cret" not in str(refused.value)
    assert "postgresql://me:***@127.0.0.1:" in str(refused.value)
    closed.close()
    with pytest.raises(errors.PushdError, match="does not exist"):
        await open_store(str(tmp_path / "no" / "such" / "dir.sqlite3"))


async def test_a_claim_lasts_the_tasks_own_deadline_plus_slack(store: base.Store) -> None:
    await store.add([push("own", dispatch_deadline_us=20 * S), push("dflt")], now_us=T0)
    claimed = await store.claim_due("q", now_us=T0, limit=5, lease_us=600 * S, slack_us=5 * S)
    assert {c.task.name: c.lease_eta_us - T0 for c in claimed} == {
        "own": 25 * S,
        "dflt": 600 * S,
    }
    await store.add([push("own2", dispatch_deadline_us=20 * S)], now_us=T0)
    [c] = await store.claim_due(
        "q", now_us=T0, limit=1, lease_us=600 * S, slack_us=5 * S, deadlines=2
    )
    assert c.lease_eta_us - T0 == 45 * S  # two of its deadlines, then the slack


async def test_a_job_that_blows_up_fails_alone(tmp_path: Path) -> None:
    """A write job raising something unexpected fails itself; its batch-mates still commit."""
    import asyncio

    from pushd.store.sqlite import SqliteStore

    s = await SqliteStore.open(tmp_path / "b.sqlite3", durability="normal")

    def explode(conn: object) -> None:
        raise ValueError("boom")

    try:
        results = await asyncio.gather(
            s.add([push("a")], now_us=T0),
            s._writer.submit(explode),
            s.add([push("b")], now_us=T0),
            return_exceptions=True,
        )
        assert isinstance(results[1], ValueError)
        assert {t.name for t in await s.list_tasks("q")} == {"a", "b"}
        [again] = await s.add([push("c")], now_us=T0)  # the writer is still alive
        assert again.ok
    finally:
        await s.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_closing_twice_is_harmless(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A second close raises nothing and breaks nothing: what was written is kept and the
    database opens again at once (SQLite: its file lock was given back, once)."""
    if backend == "postgres":
        url = await fresh_database(request.getfixturevalue("pg_server"))
    else:
        url = str(tmp_path / "c.sqlite3")
    s = await open_store(url)
    await s.add([push("a")], now_us=T0)
    await s.close()
    await s.close()
    again = await open_store(url)
    try:
        assert [t.name for t in await again.list_tasks("q")] == ["a"]
        [added] = await again.add([push("b")], now_us=T0)
        assert added.ok
    finally:
        await again.close()


async def test_a_job_raising_a_base_exception_fails_alone(tmp_path: Path) -> None:
    """Review: a BaseException from a job left its batch-mates waiting forever and the write
    lock held."""
    import asyncio

    from pushd.store.sqlite import SqliteStore

    class Boom(BaseException):
        pass

    def explode(conn: object) -> None:
        raise Boom

    s = await SqliteStore.open(tmp_path / "b.sqlite3", durability="normal")
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                s.add([push("a")], now_us=T0),
                s._writer.submit(explode),
                s.add([push("b")], now_us=T0),
                return_exceptions=True,
            ),
            10,
        )
        assert isinstance(results[1], Boom)
        assert {t.name for t in await s.list_tasks("q")} == {"a", "b"}
    finally:
        await s.close()


# ------------------------------------------------------------------ queues of the Cloud Tasks API

HOUR = 3600 * S


async def test_api_queues_are_created_updated_and_read_back(store: base.Store) -> None:
    assert await store.api_queues() == []
    made = models.ApiQueue(name="b", rate=20.5, max_attempts=-1, target="v1.worker")
    assert await store.save_api_queue(made, create=True, now_us=T0) is models.QueueSave.CREATED
    other = models.ApiQueue(name="a", max_retry_duration_s=60, min_backoff_s=1.5)
    assert await store.save_api_queue(other, create=True, now_us=T0 + S) is models.QueueSave.CREATED
    assert await store.api_queues() == [
        dataclasses.replace(other, created_us=T0 + S),
        dataclasses.replace(made, created_us=T0),
    ]
    again = await store.save_api_queue(made, create=True, now_us=T0 + 2 * S)
    assert again is models.QueueSave.EXISTS
    changed = dataclasses.replace(made, rate=3.0, max_doublings=0)
    updated = await store.save_api_queue(changed, create=False, now_us=T0 + 3 * S)
    assert updated is models.QueueSave.UPDATED
    [_, b] = await store.api_queues()
    assert b == dataclasses.replace(changed, created_us=T0)  # the creation time is kept


async def test_a_deleted_api_queue_takes_its_tasks_and_keeps_its_name_an_hour(
    store: base.Store,
) -> None:
    queue = models.ApiQueue(name="q")
    await store.save_api_queue(queue, create=True, now_us=T0)
    await store.add([push("a"), push("b")], now_us=T0)
    await store.delete("q", ["b"], now_us=T0)  # a tombstone of the queue's
    await store.set_paused("q", True)
    await store.add([push("keep", queue="r")], now_us=T0)
    assert await store.paused_queues() == {"q"}  # read before: SQLite keeps what it read
    assert await store.delete_api_queue("q", now_us=T0 + S)
    assert not await store.delete_api_queue("q", now_us=T0 + S)
    assert not await store.delete_api_queue("never", now_us=T0 + S)
    assert await store.api_queues() == []
    assert await store.get("q", "a") is None
    assert await store.paused_queues() == set()
    assert (await store.counts("q")).tasks == 0
    assert await store.get("r", "keep") is not None
    for create in (True, False):  # UpdateQueue creates a missing queue: refused too
        refused = await store.save_api_queue(queue, create=create, now_us=T0 + S + HOUR - 1)
        assert refused is models.QueueSave.RECENTLY_DELETED
    assert await store.api_queues() == []
    back = await store.save_api_queue(queue, create=True, now_us=T0 + S + HOUR)
    assert back is models.QueueSave.CREATED
    assert await store.api_queues() == [dataclasses.replace(queue, created_us=T0 + S + HOUR)]
    # The new queue starts empty: the old tasks' names are free again.
    [result] = await store.add([push("b")], now_us=T0 + S + HOUR)
    assert result.ok


async def test_expired_api_queue_tombstones_are_dropped(store: base.Store) -> None:
    await store.save_api_queue(models.ApiQueue(name="q"), create=True, now_us=T0)
    await store.delete_api_queue("q", now_us=T0)
    assert await store.expire(now_us=T0 + HOUR - 1) == 0
    assert await store.expire(now_us=T0 + HOUR) == 1
    made = await store.save_api_queue(models.ApiQueue(name="q"), create=False, now_us=T0 + HOUR)
    assert made is models.QueueSave.CREATED


async def test_deleting_a_request_of_names_answers_each_in_order(store: base.Store) -> None:
    """One statement deletes a request's names (SQLite): each name still answers for itself,
    in the order given, a repeated one only once, and only the live ones are tombstoned."""
    await store.add([push(n) for n in ("a", "b", "c")], now_us=T0)
    await store.delete("q", ["b"], now_us=T0)
    found = await store.delete("q", ["c", "zzz", "b", "a", "c"], now_us=T0 + S)
    assert found == [True, False, False, True, False]
    assert await store.list_tasks("q") == []
    again = await store.add([push(n) for n in ("a", "b", "c", "zzz")], now_us=T0 + 2 * S)
    assert [r.error for r in again] == [errors.TombstonedTaskError] * 3 + [None]


async def test_paused_queues_follow_each_pause_even_read_meanwhile(store: base.Store) -> None:
    """SQLite keeps the paused queues in memory (every lease asks): a read racing a pause or
    a resume never leaves a stale answer behind."""
    import asyncio

    assert await store.paused_queues() == set()
    for paused in (True, False, True):
        # Reads started beside the pause may see it or not; every read after it sees it.
        await asyncio.gather(
            store.paused_queues(), store.set_paused("q", paused), store.paused_queues()
        )
        assert ("q" in await store.paused_queues()) is paused
    found = await store.paused_queues()
    found.add("not-paused")  # the caller's copy: the store's own answer is not changed
    assert await store.paused_queues() == {"q"}


async def test_paused_queues_are_read_from_the_file_on_reopen(tmp_path: Path) -> None:
    from pushd.store.sqlite import SqliteStore

    path = tmp_path / "p.sqlite3"
    s = await SqliteStore.open(path, durability="normal")
    try:
        await s.set_paused("q", True)
        assert await s.paused_queues() == {"q"}
    finally:
        await s.close()
    s = await SqliteStore.open(path, durability="normal")
    try:
        assert await s.paused_queues() == {"q"}
    finally:
        await s.close()
