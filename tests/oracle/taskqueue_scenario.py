"""One task-queue scenario, run by App Engine's SDK and by pushd; both must observe the same.

:func:`run` takes the ``taskqueue`` module to drive (``google.appengine.api.taskqueue`` against
the SDK's ``TaskQueueServiceStub`` in the oracle venv, ``pushd.taskqueue`` against a real
``pushd serve``) and answers a list of ``[label, value]`` observations, JSON only. It imports
nothing but the standard library, since it runs in both venvs.

Observations are deterministic: generated task names are recorded as ``"<generated>"`` once
they are seen to be non-empty, errors as their class name, times only as whole-second deltas
from a time read just before the call. Push queues never deliver here (``rate: 0``).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

QUEUE_YAML = """\
queue:
- name: push-a
  rate: 0
- name: pull-a
  mode: pull
- name: pull-tags
  mode: pull
- name: pull-limit
  mode: pull
  retry_parameters:
    task_retry_limit: 2
- name: pull-purge
  mode: pull
- name: pull-zero
  mode: pull
"""

GENERATED = "<generated>"


class Recorder:
    def __init__(self) -> None:
        self.observations: list[list[Any]] = []

    def note(self, label: str, value: Any) -> None:
        if any(seen == label for seen, _ in self.observations):
            raise AssertionError(f"label {label!r} is used twice")
        self.observations.append([label, value])

    def attempt(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn``; note ``"ok"`` or the exception's class name; answer the result."""
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self.note(label, type(exc).__name__)
            return None
        self.note(label, "ok")
        return result


def text(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    return value


def generated(task: Any) -> Any:
    """The task's name; a name the service chose (every name given here has a "-") is
    recorded as ``<generated>`` once it is seen to be a non-empty string."""
    name = task.name
    if isinstance(name, str) and name and "-" not in name:
        return GENERATED
    return name


def leased(tasks: list[Any], before: float) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "payload": text(t.payload),
            "retry_count": t.retry_count,
            "tag": text(t.tag),
            "queue_name": t.queue_name,
            "was_enqueued": t.was_enqueued,
            "method": t.method,
            "lease_s": round(t.eta_posix - before),
        }
        for t in tasks
    ]


def names(tasks: Any) -> Any:
    """The names of a list of tasks (anything else as it is)."""
    if isinstance(tasks, list):
        return [getattr(t, "name", t) for t in tasks]
    return tasks


def params(task: Any) -> dict[str, Any]:
    """``extract_params()`` as JSON: a bytes key is written ``b:key``, so both sides must give
    keys of the same type (App Engine's are bytes when it parses a bytes payload)."""
    try:
        found = task.extract_params().items()
    except ValueError as exc:  # not form data: both raise it
        return {"error": type(exc).__name__}
    return {
        f"b:{k.decode()}" if isinstance(k, bytes) else k: [text(x) for x in v]
        if isinstance(v, list)
        else text(v)
        for k, v in found
    }


def headers(task: Any) -> list[list[str]]:
    return sorted([str(k).lower(), str(v)] for k, v in task.headers.items())


def run(taskqueue: Any) -> list[list[Any]]:
    rec = Recorder()
    push_scenario(rec, taskqueue)
    delete_scenario(rec, taskqueue)
    lease_scenario(rec, taskqueue)
    tag_scenario(rec, taskqueue)
    retry_limit_scenario(rec, taskqueue)
    zero_lease_scenario(rec, taskqueue)
    purge_scenario(rec, taskqueue)
    stats_scenario(rec, taskqueue)
    return rec.observations


# ------------------------------------------------------------------ adds


def push_scenario(rec: Recorder, tq: Any) -> None:
    rec.attempt("queue name with underscore", tq.Queue, "bad_name")
    q = tq.Queue("push-a")

    named = tq.Task(payload="hello", name="p-1", url="/work")
    rec.attempt("add named push task", q.add, named)
    rec.note(
        "named push task after add",
        [named.name, named.queue_name, named.was_enqueued, named.url, named.on_queue_url],
    )
    rec.note("named push task method/payload", [named.method, text(named.payload)])
    rec.note("named push task headers", headers(named))

    unnamed = tq.Task(payload=b"x")
    rec.note("unnamed before add", [unnamed.name, unnamed.queue_name, unnamed.was_enqueued])
    returned = rec.attempt("add unnamed push task", q.add, unnamed)
    rec.note("add returns the task itself", returned is unnamed)
    rec.note(
        "unnamed after add",
        [generated(unnamed), unnamed.queue_name, unnamed.was_enqueued, unnamed.url],
    )
    rec.note("unnamed on_queue_url", unnamed.on_queue_url)

    again = tq.Task(payload=b"x", name="p-1")
    rec.attempt("add existing name", q.add, again)
    rec.note("existing name not enqueued", again.was_enqueued)

    batch = [tq.Task(name="p-2"), tq.Task(name="p-1"), tq.Task()]
    rec.attempt("batch with one clash", q.add, batch)
    rec.note("batch with one clash: names", [generated(t) for t in batch])
    rec.note("batch with one clash: enqueued", [t.was_enqueued for t in batch])
    rec.note("batch with one clash: queue names", [t.queue_name for t in batch])

    deleted = rec.attempt("delete p-1", q.delete_tasks_by_name, "p-1")
    rec.note("delete p-1 answers a task", [deleted.name, deleted.was_deleted] if deleted else None)
    rec.attempt("re-add deleted name", q.add, tq.Task(name="p-1"))

    tomb_then_exists = [tq.Task(name="p-1"), tq.Task(name="p-2")]
    rec.attempt("batch tombstoned then existing", q.add, tomb_then_exists)
    exists_then_tomb = [tq.Task(name="p-2"), tq.Task(name="p-1")]
    rec.attempt("batch existing then tombstoned", q.add, exists_then_tomb)
    rec.note(
        "clash batches enqueued",
        [t.was_enqueued for t in tomb_then_exists + exists_then_tomb],
    )
    mixed = [tq.Task(name="p-3"), tq.Task(name="p-1"), tq.Task(name="p-4")]
    rec.attempt("batch new, tombstoned, new", q.add, mixed)
    rec.note("batch new, tombstoned, new: enqueued", [t.was_enqueued for t in mixed])

    rec.attempt("batch with duplicate names", q.add, [tq.Task(name="p-5"), tq.Task(name="p-5")])
    rec.attempt("p-5 was not added by the refused batch", q.add, tq.Task(name="p-5"))
    rec.attempt("batch with an enqueued task", q.add, [tq.Task(name="p-6"), named])
    rec.attempt("p-6 was not added by the refused batch", q.add, tq.Task(name="p-6"))
    pull_task = tq.Task(payload=b"x", method="PULL")
    rec.attempt("batch mixing push and pull", q.add, [tq.Task(), pull_task])
    rec.attempt("batch of 101", q.add, [tq.Task() for _ in range(101)])
    rec.note("empty batch", rec.attempt("add empty list", q.add, []))
    rec.attempt("pull task into push queue", q.add, pull_task)
    rec.note("pull task refused: not enqueued", [pull_task.was_enqueued, pull_task.queue_name])
    rec.attempt("push task into pull queue", tq.Queue("pull-a").add, tq.Task(payload=b"x"))
    rec.attempt("add to unknown queue", tq.Queue("nope").add, tq.Task())
    rec.attempt("transactional add", q.add, tq.Task(), transactional=True)

    options = tq.TaskRetryOptions(min_backoff_seconds=1, task_retry_limit=3)
    routed = tq.Task(
        name="p-tg", target="worker", dispatch_deadline_usec=30_000_000, retry_options=options
    )
    rec.attempt("add with target, deadline and retry options", q.add, routed)
    rec.note(
        "target, deadline and retry options",
        [routed.target, routed.dispatch_deadline_usec, routed.retry_options.task_retry_limit],
    )
    rec.attempt("float dispatch deadline", tq.Task, dispatch_deadline_usec=30e6)
    rec.attempt("dispatch deadline of 10 s", tq.Task, dispatch_deadline_usec=10_000_000)
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    before = time.time()
    timed = tq.Task(name="p-eta", eta=when)
    rec.attempt("add with an aware eta", q.add, timed)
    rec.note("aware eta", [round(timed.eta_posix - before), timed.eta.utcoffset().total_seconds()])
    rec.attempt("countdown of 31 days", tq.Task, countdown=31 * 86400)
    rec.attempt("countdown and eta", tq.Task, countdown=1, eta=when)

    via_module = rec.attempt("module add", tq.add, queue_name="push-a", url="/m", name="p-m")
    if via_module is not None:
        rec.note("module add task", [via_module.name, via_module.queue_name, via_module.url])
    via_task = tq.Task(name="p-t", params={"a": "1"}, method="GET")
    rec.attempt("Task.add", via_task.add, "push-a")
    rec.note("Task.add GET with params", [via_task.queue_name, via_task.url, via_task.on_queue_url])
    rec.note("Task.add GET params", params(via_task))
    rec.note("POST params: params", params(tq.Task(params={"a": "1", "b": ["2", "3"]})))
    rec.note("POST bytes payload: params", params(tq.Task(payload=b"a=1&a=2&c=")))
    rec.note("POST text payload: params", params(tq.Task(payload="k=v")))
    async_task = tq.Task(name="p-a")
    rpc = async_task.add_async("push-a")
    rec.attempt("Task.add_async get_result", rpc.get_result)
    rec.note("Task.add_async enqueued", [async_task.was_enqueued, async_task.queue_name])
    pair = [tq.Task(name="p-b1"), tq.Task()]
    result = rec.attempt("Queue.add_async list", q.add_async(pair).get_result)
    rec.note("Queue.add_async list result", [generated(t) for t in result] if result else None)


# ------------------------------------------------------------------ deletes


def delete_scenario(rec: Recorder, tq: Any) -> None:
    q = tq.Queue("push-a")
    found = rec.attempt(
        "delete live, unknown, tombstoned", q.delete_tasks_by_name, ["p-2", "p-ghost", "p-1"]
    )
    if found is not None:
        rec.note("delete flags", [[t.name, t.was_deleted] for t in found])
    gone = tq.Task(name="p-3")
    rec.attempt("delete_tasks one task", q.delete_tasks, gone)
    rec.note("delete_tasks one task deleted", gone.was_deleted)
    rec.attempt("delete an already deleted task", q.delete_tasks, gone)
    rec.attempt("delete an unnamed task", q.delete_tasks, tq.Task())
    rec.attempt("delete duplicate names", q.delete_tasks_by_name, ["p-4", "p-4"])
    rec.attempt("delete invalid name", q.delete_tasks_by_name, "bad name")
    async_pair = [tq.Task(name="p-4"), tq.Task(name="p-ghost2")]
    rec.attempt("delete_tasks_async", q.delete_tasks_async(async_pair).get_result)
    rec.note("delete_tasks_async flags", [t.was_deleted for t in async_pair])
    by_name = rec.attempt(
        "delete_tasks_by_name_async", q.delete_tasks_by_name_async("p-5").get_result
    )
    rec.note(
        "delete_tasks_by_name_async result",
        [by_name.name, by_name.was_deleted] if by_name else None,
    )
    rec.note("delete empty list", rec.attempt("delete []", q.delete_tasks, []))
    rec.attempt("delete in unknown queue", tq.Queue("nope").delete_tasks_by_name, "p-1")
    rec.attempt("re-add deleted p-4", q.add, tq.Task(name="p-4"))
    stats = q.fetch_statistics()
    rec.note("push-a stats", [stats.tasks, stats.oldest_eta_usec is None])


# ------------------------------------------------------------------ leases


def lease_scenario(rec: Recorder, tq: Any) -> None:
    q = tq.Queue("pull-a")
    adds = [
        tq.Task(payload=b"one", method="PULL", name="l-1", countdown=-30),
        tq.Task(payload="two", method="PULL", name="l-2", countdown=-20),
        tq.Task(params={"k": "v"}, method="PULL", name="l-3", countdown=-10),
        tq.Task(payload=b"later", method="PULL", name="l-4", countdown=600),
    ]
    rec.note("pull payloads before add", [text(t.payload) for t in adds])
    rec.attempt("add pull tasks", q.add, adds)
    rec.note("pull params", params(adds[2]))

    before = time.time()
    first = rec.attempt("lease 2 of 3 due", q.lease_tasks, 60, 2) or []
    rec.note("lease 2 of 3 due: tasks", leased(first, before))
    rec.note("lease 2 of 3 due: params", [params(t) for t in first])
    before = time.time()
    second = rec.attempt("lease the rest", q.lease_tasks, 30, 10) or []
    rec.note("lease the rest: tasks", leased(second, before))
    rec.note("lease the rest: params", [params(t) for t in second])  # l-3: k=v, as bytes
    rec.note("lease when none due", names(rec.attempt("lease none due", q.lease_tasks, 30, 10)))
    stats = q.fetch_statistics()
    rec.note("pull-a stats after leases", [stats.tasks, stats.oldest_eta_usec is None])

    if first:
        task = first[0]
        before = time.time()
        rec.attempt("modify_task_lease", q.modify_task_lease, task, 120)
        rec.note("modified lease", [round(task.eta_posix - before), task.retry_count])

    rec.attempt("add m-1", q.add, tq.Task(payload=b"m", method="PULL", name="m-1", countdown=-5))
    held = rec.attempt("lease m-1 for 0 s", q.lease_tasks, 0, 1) or []
    again = rec.attempt("lease m-1 again", q.lease_tasks, 60, 1) or []
    rec.note("m-1 leases", [[t.name, t.retry_count] for t in held + again])
    if held and again:
        rec.attempt("modify with a stale ETA", q.modify_task_lease, held[0], 30)
        rec.attempt("release m-1", q.modify_task_lease, again[0], 0)
        rec.attempt("modify an expired lease", q.modify_task_lease, again[0], 10)
        before = time.time()
        third = rec.attempt("lease released m-1", q.lease_tasks, 60, 1) or []
        rec.note("released m-1 leased again", leased(third, before))
        rec.attempt(
            "modify on a push queue",
            tq.Queue("push-a").modify_task_lease,
            third[0] if third else again[0],
            10,
        )
    ghost = tq.Task(payload=b"x", method="PULL", name="m-ghost")
    try:
        q.modify_task_lease(ghost, 10)
        rec.note("modify unknown task", "ok")
    except tq.Error as exc:
        rec.note("modify unknown task is an Error", True)
        rec.note("modify unknown task", type(exc).__name__)
    if first:
        rec.attempt("delete leased l-1", q.delete_tasks, first[0])
        rec.note("leased l-1 deleted", first[0].was_deleted)
        rec.attempt("modify a deleted task", q.modify_task_lease, first[0], 10)

    rec.attempt("lease on a push queue", tq.Queue("push-a").lease_tasks, 10, 1)
    rec.attempt("lease on unknown queue", tq.Queue("nope").lease_tasks, 10, 1)
    rec.attempt("lease -1 s", q.lease_tasks, -1, 1)
    rec.attempt("lease 604801 s", q.lease_tasks, 604801, 1)
    rec.attempt("lease 604800 s of an empty queue", q.lease_tasks, 604800, 1)
    rec.attempt("lease 0 tasks", q.lease_tasks, 1, 0)
    rec.attempt("lease 1001 tasks", q.lease_tasks, 1, 1001)
    rec.attempt("lease str seconds", q.lease_tasks, "1", 1)
    rec.attempt("lease float max_tasks", q.lease_tasks, 1, 1.5)
    rec.attempt("lease deadline 0", q.lease_tasks, 1, 1, deadline=0)
    rec.attempt("modify -1 s", q.modify_task_lease, ghost, -1)
    rpc = q.lease_tasks_async(10, 5)
    rec.note(
        "lease_tasks_async of none due", names(rec.attempt("lease_tasks_async", rpc.get_result))
    )


def tag_scenario(rec: Recorder, tq: Any) -> None:
    q = tq.Queue("pull-tags")
    rec.attempt(
        "add tagged tasks",
        q.add,
        [
            tq.Task(payload=b"a1", method="PULL", name="t-a1", tag="a", countdown=-50),
            tq.Task(payload=b"b1", method="PULL", name="t-b1", tag="b", countdown=-45),
            tq.Task(payload=b"a2", method="PULL", name="t-a2", tag="a", countdown=-40),
            tq.Task(payload=b"u1", method="PULL", name="u-1", countdown=-35),
        ],
    )
    before = time.time()
    got = rec.attempt("lease tag b", q.lease_tasks_by_tag, 60, 10, tag="b") or []
    rec.note("lease tag b: tasks", leased(got, before))
    before = time.time()
    got = rec.attempt("lease earliest tag", q.lease_tasks_by_tag, 60, 10) or []
    rec.note("lease earliest tag: tasks", leased(got, before))
    got = rec.attempt("lease earliest tag again", q.lease_tasks_by_tag, 60, 10) or []
    rec.note("lease earliest tag again: names", [[t.name, text(t.tag)] for t in got])

    rec.attempt(
        "add untagged first",
        q.add,
        [
            tq.Task(payload=b"u2", method="PULL", name="u-2", countdown=-30),
            tq.Task(payload=b"c1", method="PULL", name="t-c1", tag="c", countdown=-25),
            tq.Task(payload=b"u3", method="PULL", name="u-3", countdown=-20),
        ],
    )
    got = rec.attempt("untagged earliest", q.lease_tasks_by_tag, 60, 10) or []
    rec.note("untagged earliest: names", [[t.name, text(t.tag)] for t in got])
    got = rec.attempt("lease tag c async", q.lease_tasks_by_tag_async(60, 10, "c").get_result) or []
    rec.note("lease tag c async: names", [[t.name, text(t.tag)] for t in got])
    rec.note(
        "lease by tag, nothing due",
        names(rec.attempt("lease by tag empty", q.lease_tasks_by_tag, 60, 10)),
    )
    unknown = rec.attempt("lease unknown tag", q.lease_tasks_by_tag, 60, 10, "zzz")
    rec.note("lease unknown tag: tasks", names(unknown))
    rec.attempt("lease by tag on push queue", tq.Queue("push-a").lease_tasks_by_tag, 60, 10)

    # App Engine's stub looks at the first max_tasks due tasks only and keeps the untagged ones;
    # pushd leases up to max_tasks untagged tasks. Both lease the two in the end.
    rec.attempt(
        "add untagged, tagged, untagged",
        q.add,
        [
            tq.Task(payload=b"u4", method="PULL", name="u-4", countdown=-19),
            tq.Task(payload=b"d1", method="PULL", name="t-d1", tag="d", countdown=-18),
            tq.Task(payload=b"u5", method="PULL", name="u-5", countdown=-17),
        ],
    )
    first = rec.attempt("untagged earliest, max 2", q.lease_tasks_by_tag, 60, 2) or []
    rec.note("untagged earliest, max 2: names", names(first))
    got = rec.attempt("lease tag d as bytes", q.lease_tasks_by_tag, 60, 10, b"d") or []
    rec.note("lease tag d as bytes: names", [[t.name, text(t.tag)] for t in got])
    rest = rec.attempt("lease the remaining untagged", q.lease_tasks_by_tag, 60, 10) or []
    rec.note("untagged leased in the end", sorted(names(first) + names(rest)))


def retry_limit_scenario(rec: Recorder, tq: Any) -> None:
    q = tq.Queue("pull-limit")
    rec.attempt("add r-1", q.add, tq.Task(payload=b"r", method="PULL", name="r-1", countdown=-5))
    counts = []
    for i in range(3):
        got = rec.attempt(f"limited lease {i + 1}", q.lease_tasks, 0, 1) or []
        counts.append([[t.name, t.retry_count] for t in got])
    rec.note("limited leases", counts)
    stats = q.fetch_statistics()
    rec.note("pull-limit stats after limit", [stats.tasks, stats.oldest_eta_usec is None])
    rec.attempt("re-add r-1", q.add, tq.Task(payload=b"r", method="PULL", name="r-1"))
    gone = rec.attempt("delete auto-deleted r-1", q.delete_tasks_by_name, "r-1")
    rec.note("auto-deleted r-1 was_deleted", gone.was_deleted if gone else None)

    options = tq.TaskRetryOptions(task_retry_limit=1)
    rec.note("retry options", [options.task_retry_limit, options.task_age_limit])
    rec.attempt(
        "add r-2 with its own limit",
        q.add,
        tq.Task(payload=b"r", method="PULL", name="r-2", countdown=-5, retry_options=options),
    )
    counts = []
    for i in range(3):
        got = rec.attempt(f"own-limit lease {i + 1}", q.lease_tasks, 0, 1) or []
        counts.append([[t.name, t.retry_count] for t in got])
    rec.note("own-limit leases", counts)
    rec.attempt("negative retry option", tq.TaskRetryOptions, task_retry_limit=-1)
    rounded = tq.TaskRetryOptions(task_age_limit=1.2, min_backoff_seconds=0.5)
    rec.note("age limit rounded up", [rounded.task_age_limit, rounded.min_backoff_seconds])
    rec.attempt(
        "max below min backoff", tq.TaskRetryOptions, min_backoff_seconds=2, max_backoff_seconds=1
    )


def zero_lease_scenario(rec: Recorder, tq: Any) -> None:
    """A 0-second lease makes a task due again at once, but one lease call answers it once."""
    q = tq.Queue("pull-zero")
    rec.attempt("add z-1", q.add, tq.Task(payload=b"z", method="PULL", name="z-1", countdown=-5))
    got = rec.attempt("zero-second lease, max 3", q.lease_tasks, 0, 3) or []
    rec.note("zero-second lease, max 3: tasks", [[t.name, t.retry_count] for t in got])


def purge_scenario(rec: Recorder, tq: Any) -> None:
    q = tq.Queue("pull-purge")
    rec.attempt(
        "add before purge",
        q.add,
        [
            tq.Task(payload=b"1", method="PULL", name="q-1"),
            tq.Task(payload=b"2", method="PULL"),
        ],
    )
    stats = q.fetch_statistics()
    rec.note("before purge", [stats.tasks, stats.oldest_eta_usec is None])
    rec.note("purge answers", rec.attempt("purge", q.purge))
    stats = q.fetch_statistics()
    rec.note("after purge", [stats.tasks, stats.oldest_eta_usec is None])
    rec.attempt("re-add purged name", q.add, tq.Task(payload=b"1", method="PULL", name="q-1"))
    rec.attempt("add unnamed after purge", q.add, tq.Task(payload=b"\xff\x003", method="PULL"))
    stats = q.fetch_statistics()
    rec.note("after re-add", [stats.tasks, stats.oldest_eta_usec is None])
    rec.note("lease after purge", [text(t.payload) for t in q.lease_tasks(10, 10)])
    rec.attempt("purge unknown queue", tq.Queue("nope").purge)


def stats_scenario(rec: Recorder, tq: Any) -> None:
    many = rec.attempt(
        "fetch two queues",
        tq.QueueStatistics.fetch,
        [tq.Queue("pull-a"), tq.Queue("pull-tags")],
    )
    if many is not None:
        rec.note("fetch two queues: tasks", [[s.queue.name, s.tasks] for s in many])
    one = rec.attempt("fetch by name", tq.QueueStatistics.fetch, "pull-a")
    rec.note("fetch by name is one", [isinstance(one, list), getattr(one, "tasks", None)])
    rec.note("fetch empty list", rec.attempt("fetch []", tq.QueueStatistics.fetch, []))
    rec.attempt(
        "fetch names and queues mixed",
        tq.QueueStatistics.fetch,
        ["pull-a", tq.Queue("pull-tags")],
    )
    names = rec.attempt("fetch names", tq.QueueStatistics.fetch, ["pull-a", "push-a"])
    rec.note("fetch names: queues", [s.queue.name for s in names] if names else None)
    rpc = tq.Queue("pull-tags").fetch_statistics_async()
    stats = rec.attempt("fetch_statistics_async", rpc.get_result)
    rec.note("fetch_statistics_async tasks", getattr(stats, "tasks", None))
    rpc = tq.QueueStatistics.fetch_async([tq.Queue("pull-a")])
    rec.note("QueueStatistics.fetch_async list", [s.tasks for s in rpc.get_result()])
    rec.attempt("stats deadline 0", tq.Queue("pull-a").fetch_statistics, deadline=0)
    unknown = rec.attempt("stats of unknown queue", tq.Queue("nope").fetch_statistics)
    if unknown is not None:
        rec.note("stats of unknown queue: values", [unknown.tasks, unknown.oldest_eta_usec])
