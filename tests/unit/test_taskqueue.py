"""``pushd.taskqueue``: App Engine's client API over pushd's native HTTP API.

The pure request-building and answer-reading functions are tested directly; the rest runs the
client against ``pushd.api`` served on 127.0.0.1 (MemoryStore, FakeClock) by
:func:`tests.unit.test_api.running`. Blocking calls run in a worker thread, as a script would
run them; :class:`taskqueue.AsyncQueue` runs on the test's loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import pytest

from pushd import client, errors, models, taskqueue, wire
from pushd.taskqueue import plans
from pushd.taskqueue import queue as tq_queue
from tests.unit.test_api import PRODUCER, T0, TOKENS, Env, running

R = TypeVar("R")
S = 1_000_000
QUEUE_YAML = """
queue:
- name: push
  rate: 0
- name: pull
  mode: pull
- name: limited
  mode: pull
  retry_parameters:
    task_retry_limit: 2
"""


@pytest.fixture(autouse=True)
def reset_configuration() -> Iterator[None]:
    taskqueue.configure()
    yield
    taskqueue.configure()


@contextlib.asynccontextmanager
async def served(**kw: Any) -> AsyncIterator[Env]:
    """The API on 127.0.0.1 with the client configured to use it and its FakeClock."""
    async with running(QUEUE_YAML, **kw) as env:
        taskqueue.configure(url=str(env.client.make_url("")), clock=env.clock)
        yield env


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with served() as started:
        yield started


async def blocking(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run a blocking client call off the loop that serves the API."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def pull(name: str | None = None, payload: bytes = b"x", **kw: Any) -> taskqueue.Task:
    return taskqueue.Task(payload, name=name, method="PULL", **kw)


# ------------------------------------------------------------------ names and constants


def test_the_module_exports_app_engine_names() -> None:
    sdk_names = {
        "BadTaskStateError",
        "BadTransactionState",
        "BadTransactionStateError",
        "DatastoreError",
        "DuplicateTaskNameError",
        "Error",
        "InternalError",
        "InvalidQueueError",
        "InvalidQueueNameError",
        "InvalidTaskError",
        "InvalidTaskNameError",
        "InvalidUrlError",
        "PermissionDeniedError",
        "TaskAlreadyExistsError",
        "TaskTooLargeError",
        "TombstonedTaskError",
        "TooManyTasksError",
        "TransientError",
        "UnknownQueueError",
        "InvalidTaskRetryOptionsError",
        "InvalidLeaseTimeError",
        "InvalidMaxTasksError",
        "InvalidDeadlineError",
        "InvalidQueueModeError",
        "TransactionalRequestTooLargeError",
        "TaskLeaseExpiredError",
        "QueuePausedError",
        "InvalidEtaError",
        "InvalidTagError",
        "InvalidDispatchDeadlineError",
        "MAX_QUEUE_NAME_LENGTH",
        "MAX_TASK_NAME_LENGTH",
        "MAX_TASK_SIZE_BYTES",
        "MAX_PULL_TASK_SIZE_BYTES",
        "MAX_PUSH_TASK_SIZE_BYTES",
        "MAX_LEASE_SECONDS",
        "MAX_TASKS_PER_ADD",
        "MAX_TASKS_PER_LEASE",
        "MAX_URL_LENGTH",
        "MAX_DISPATCH_DEADLINE",
        "MAX_TAG_LENGTH",
        "MAX_TRANSACTIONAL_REQUEST_SIZE_BYTES",
        "MIN_DISPATCH_DEADLINE",
        "DEFAULT_APP_VERSION",
        "Queue",
        "QueueStatistics",
        "Task",
        "TaskRetryOptions",
        "add",
        "create_rpc",
    }
    assert sdk_names <= set(taskqueue.__all__)
    for name in taskqueue.__all__:
        assert hasattr(taskqueue, name), name
    assert taskqueue.BadTransactionState is taskqueue.BadTransactionStateError
    assert issubclass(taskqueue.BadTransactionStateError, errors.Error)
    assert issubclass(taskqueue.DatastoreError, errors.Error)
    assert taskqueue.TombstonedTaskError is errors.TombstonedTaskError
    assert taskqueue.MAX_TASK_SIZE_BYTES == 102400
    assert taskqueue.MAX_PULL_TASK_SIZE_BYTES == 2**20
    assert taskqueue.MAX_LEASE_SECONDS == 604800
    assert datetime.timedelta(hours=24) == taskqueue.MAX_DISPATCH_DEADLINE
    assert datetime.timedelta(seconds=15) == taskqueue.MIN_DISPATCH_DEADLINE


def test_queue_names_are_checked() -> None:
    with pytest.raises(taskqueue.InvalidQueueNameError):
        taskqueue.Queue("under_score")
    with pytest.raises(taskqueue.InvalidQueueNameError):
        taskqueue.AsyncQueue("")
    assert taskqueue.Queue().name == "default"
    assert taskqueue.Queue("a") == taskqueue.Queue("a")
    assert taskqueue.Queue("a") != taskqueue.Queue("a", url="http://127.0.0.1:1")
    assert len({taskqueue.Queue("a"), taskqueue.Queue("a")}) == 1


def test_configure_refuses_a_bad_url() -> None:
    with pytest.raises(errors.Error, match="not an http"):
        taskqueue.configure(url="ftp://x")


# ------------------------------------------------------------------ Task properties (SPEC 8.3)


def test_a_default_url_push_task() -> None:
    task = taskqueue.Task("hello")
    assert task.name is None
    assert task.queue_name is None
    assert task.url == ""
    assert task.on_queue_url
    assert task.method == "POST"
    assert task.payload == b"hello"
    assert task.headers["content-type"] == "text/plain; charset=utf-8"
    assert task.headers["X-AppEngine-Current-Namespace"] == ""
    assert (
        task.size
        == 4
        + 5
        + len("X-AppEngine-Current-Namespace")
        + 4
        + len("Content-Type" + "text/plain; charset=utf-8")
        + 4
    )
    assert not task.was_enqueued
    assert not task.was_deleted
    assert task.retry_count == 0
    assert task.target is None
    assert task.tag is None
    assert task.dispatch_deadline_usec is None


@pytest.mark.parametrize(
    ("kw", "expected"),
    [  # each checked against App Engine's SDK (tests/oracle/taskqueue_scenario.py does too)
        ({"params": {"a": "1"}}, {"a": b"1"}),  # a POST's payload from params is str
        ({"payload": "a=1"}, {b"a": b"1"}),
        ({"payload": b"a=1&a=2"}, {b"a": [b"1", b"2"]}),
        ({"method": "PULL", "params": {"a": "1"}}, {b"a": b"1"}),
        ({"method": "PULL", "payload": "a=1"}, {b"a": b"1"}),
        ({"method": "PUT", "payload": b"a=1", "url": "/x?a=2"}, {"a": b"2"}),
    ],
)
def test_extract_params_keys_are_bytes_where_app_engines_are(
    kw: dict[str, Any], expected: dict[object, object]
) -> None:
    found = taskqueue.Task(**kw).extract_params()
    assert found == expected
    assert [type(k) for k in found] == [type(k) for k in expected]


def test_payload_and_url_follow_app_engine_by_method() -> None:
    posted = taskqueue.Task(params={"a": "1", "b": ["2", "3"]})
    assert posted.payload == "a=1&b=2&b=3"  # a str, as App Engine's client makes it
    assert posted.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert posted.extract_params() == {"a": b"1", "b": [b"2", b"3"]}
    got = taskqueue.Task(method="GET", params={"q": "x y"})
    assert got.payload is None
    assert got.url == "?q=x+y"
    assert got.on_queue_url
    assert got.extract_params() == {"q": b"x y"}
    put = taskqueue.Task(b"", method="PUT", url="/p?a=1")
    assert put.payload is None
    assert put.url == "/p?a=1"
    assert not put.on_queue_url
    assert taskqueue.Task(method="POST").payload is None
    assert taskqueue.Task(b"", method="POST").payload == b""
    assert pull(payload=b"raw").payload == b"raw"
    text_pull = taskqueue.Task("text", method="PULL")
    assert text_pull.payload == b"text"
    assert dict(text_pull.headers) == {
        "X-AppEngine-Current-Namespace": "",
        "content-type": "text/plain; charset=utf-8",
    }
    assert dict(pull().headers) == {"X-AppEngine-Current-Namespace": ""}


def test_eta_properties() -> None:
    clock_now = 1_700_000_000_000_000
    eta = datetime.datetime(2023, 11, 14, 22, 13, 30, 5, tzinfo=datetime.UTC)
    task = taskqueue.Task(eta=eta)
    assert task.eta == eta
    assert task.eta_posix == (clock_now + 10 * S + 5) / S
    assert task._eta_usec == clock_now + 10 * S + 5


def test_countdown_uses_the_configured_clock() -> None:
    from pushd import clock

    taskqueue.configure(clock=clock.FakeClock(T0))
    assert taskqueue.Task(countdown=1.5)._eta_usec == T0 + 1_500_000
    with pytest.raises(taskqueue.InvalidEtaError):
        taskqueue.Task(countdown=31 * 86400)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": "a b"}, taskqueue.InvalidTaskNameError),
        ({"url": "http://x/y"}, taskqueue.InvalidUrlError),
        ({"method": "PATCH"}, taskqueue.InvalidTaskError),
        ({"tag": "t"}, taskqueue.InvalidTaskError),
        ({"countdown": 1, "eta": datetime.datetime.now(datetime.UTC)}, taskqueue.InvalidTaskError),
        ({"dispatch_deadline_usec": 10 * S}, taskqueue.InvalidDispatchDeadlineError),
        ({"dispatch_deadline_usec": 30e6}, TypeError),
        ({"payload": b"x" * (100 * 1024)}, taskqueue.TaskTooLargeError),
        ({"target": "v1", "headers": {"Host": "h"}}, taskqueue.InvalidTaskError),
    ],
)
def test_invalid_tasks_raise_app_engine_classes(kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        taskqueue.Task(**kwargs)


def test_a_float_deadline_is_a_type_error_only_after_the_other_checks() -> None:
    with pytest.raises(taskqueue.InvalidTaskNameError):
        taskqueue.Task(name="a b", dispatch_deadline_usec=30e6)  # type: ignore[arg-type]


def test_target_and_deadline_are_kept_as_given() -> None:
    task = taskqueue.Task(target="v1.worker", dispatch_deadline_usec=30 * S)
    assert task.target == "v1.worker"
    assert task.dispatch_deadline_usec == 30 * S
    default = taskqueue.Task(target=taskqueue.DEFAULT_APP_VERSION)
    assert default.target is taskqueue.DEFAULT_APP_VERSION
    assert default._built.target is None


def test_retry_options_are_checked_when_made() -> None:
    options = taskqueue.TaskRetryOptions(task_age_limit=1.2, min_backoff_seconds=0.5)
    assert options.task_age_limit == 2
    assert options.min_backoff_seconds == 0.5
    assert options.task_retry_limit is None
    assert "task_age_limit=2" in repr(options)
    for bad in (
        {"task_retry_limit": -1},
        {"min_backoff_seconds": 2, "max_backoff_seconds": 1},
        {"max_doublings": -1},
    ):
        with pytest.raises(taskqueue.InvalidTaskRetryOptionsError):
            taskqueue.TaskRetryOptions(**bad)
    task = taskqueue.Task(retry_options=options)
    assert task.retry_options is options


def test_headers_are_caseless_and_repeat() -> None:
    task = taskqueue.Task(headers=[("X-A", "1"), ("x-a", "2"), ("X-B", "3")])
    headers = task.headers
    assert headers["x-a"] == ["1", "2"]
    assert "X-b" in headers
    assert list(headers) == ["X-A", "X-B", "X-AppEngine-Current-Namespace"]
    headers["X-B"] = "4"
    del headers["x-a"]
    assert task.headers["X-A"] == ["1", "2"]  # a copy
    assert repr(headers) == "{'X-B': '4', 'X-AppEngine-Current-Namespace': ''}"
    assert len(headers) == 2


def test_repr_names_the_properties() -> None:
    assert "url=''" in repr(taskqueue.Task())
    assert "tag=None" in repr(pull())


# ------------------------------------------------------------------ request building


def test_a_push_task_is_sent_with_its_final_values() -> None:
    task = taskqueue.Task(
        "hi",
        name="n1",
        url="/hook",
        target="w",
        dispatch_deadline_usec=30 * S,
        retry_options=taskqueue.TaskRetryOptions(task_retry_limit=3),
    )
    body = plans.task_json(task, "q")
    assert body == {
        "method": "POST",
        "eta_us": task._eta_usec,
        "name": "n1",
        "payload_base64": base64.b64encode(b"hi").decode(),
        "headers": [
            ["X-AppEngine-Current-Namespace", ""],
            ["Content-Type", "text/plain; charset=utf-8"],
        ],
        "url": "/hook",
        "target": "w",
        "dispatch_deadline_us": 30 * S,
        "retry_options": wire.encode_retry(models.RetryParameters(task_retry_limit=3)),
    }


def test_a_default_url_query_is_sent_as_params() -> None:
    body = plans.task_json(taskqueue.Task(method="GET", params={"a": ["1", "2"], "b": "é"}), "q")
    assert body["params"] == {"a": ["1", "2"], "b": ["é"]}
    assert "url" not in body
    assert "payload_base64" not in body
    raw = plans.task_json(taskqueue.Task(method="GET", params={"a": b"\xff"}), "q")
    assert raw["url"] == "/_ah/queue/q?a=%FF"  # not text: the URL itself


def test_a_pull_task_is_sent_without_headers_or_retry_options() -> None:
    task = pull(
        "p", b"\x00", tag="blue", retry_options=taskqueue.TaskRetryOptions(task_retry_limit=1)
    )
    assert plans.task_json(task, "q") == {
        "method": "PULL",
        "eta_us": task._eta_usec,
        "name": "p",
        "payload_base64": "AA==",
        "tag": "blue",
    }
    with pytest.raises(taskqueue.InvalidTagError):
        plans.task_json(pull(tag=b"\xff"), "q")


def test_etas_travel_exactly() -> None:
    eta_us = T0 + 123_457
    eta = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        microseconds=eta_us
    )
    body = plans.task_json(taskqueue.Task(eta=eta), "q")
    assert body["eta_us"] == eta_us  # whole µs: no float seconds, no text
    assert wire.decode_task(body, default_method="POST").eta_us == eta_us


def test_batch_checks_run_in_app_engine_order() -> None:
    plan = plans.add_plan
    with pytest.raises(taskqueue.InvalidTaskError):
        plan("q", [taskqueue.Task()] * 101 + [pull()], False, True)
    with pytest.raises(taskqueue.TooManyTasksError):
        plan("q", [taskqueue.Task() for _ in range(101)], False, True)
    with pytest.raises(taskqueue.DuplicateTaskNameError):
        plan("q", [taskqueue.Task(name="a"), taskqueue.Task(name="a")], False, True)
    enqueued = taskqueue.Task()
    enqueued._enqueued = True
    with pytest.raises(taskqueue.BadTaskStateError):
        plan("q", [enqueued], True, False)
    with pytest.raises(taskqueue.BadTransactionStateError, match="no datastore"):
        plan("q", [taskqueue.Task()], True, False)
    [call] = plan("q", [taskqueue.Task(), taskqueue.Task()], False, True).calls
    assert call.path == "/api/v1/queues/q/tasks"
    assert isinstance(call.body, dict)
    assert len(call.body["tasks"]) == 2


def _answer(*results: tuple[str, str]) -> dict[str, Any]:
    return {"tasks": [{"name": n, "queue": "q", "result": r} for n, r in results]}


def test_batch_results_fill_in_the_added_tasks() -> None:
    tasks = [taskqueue.Task(), taskqueue.Task(name="b"), taskqueue.Task(name="c")]
    answer = _answer(("gen1", "OK"), ("b", "TASK_ALREADY_EXISTS"), ("c", "OK"))
    with pytest.raises(taskqueue.TaskAlreadyExistsError):
        plans.apply_add("q", tasks, answer)
    assert [t.name for t in tasks] == ["gen1", "b", "c"]
    assert [t.was_enqueued for t in tasks] == [True, False, True]
    assert [t.queue_name for t in tasks] == ["q", None, "q"]


@pytest.mark.parametrize(
    ("codes", "error"),
    [
        (["TOMBSTONED_TASK", "TASK_ALREADY_EXISTS"], taskqueue.TaskAlreadyExistsError),
        (["TASK_ALREADY_EXISTS", "TOMBSTONED_TASK"], taskqueue.TombstonedTaskError),
        (["INVALID_ETA", "TASK_ALREADY_EXISTS"], taskqueue.InvalidEtaError),
        (["TASK_ALREADY_EXISTS", "INVALID_ETA", "TOMBSTONED_TASK"], taskqueue.InvalidEtaError),
        (["SKIPPED", "OK"], None),
    ],
)
def test_which_error_a_batch_raises(codes: list[str], error: type | None) -> None:
    """The first error, replaced by any later one while it is a name clash (SPEC 1.15)."""
    tasks = [taskqueue.Task(name=f"t{i}") for i in range(len(codes))]
    answer = _answer(*[(f"t{i}", code) for i, code in enumerate(codes)])
    if error is None:
        plans.apply_add("q", tasks, answer)
    else:
        with pytest.raises(error):
            plans.apply_add("q", tasks, answer)


def test_odd_add_answers() -> None:
    tasks = [taskqueue.Task(name="a")]
    with pytest.raises(taskqueue.Error, match="Application error NOT_A_CODE"):
        plans.apply_add("q", tasks, _answer(("a", "NOT_A_CODE")))
    with pytest.raises(taskqueue.InternalError, match="expected 1 results"):
        plans.apply_add("q", tasks, {"tasks": []})


def test_delete_checks_and_chunks() -> None:
    with pytest.raises(taskqueue.BadTaskStateError, match="name must be specified"):
        plans.delete_plan("q", [taskqueue.Task()], False)
    gone = taskqueue.Task(name="g")
    gone._deleted = True
    with pytest.raises(taskqueue.BadTaskStateError, match="already been deleted"):
        plans.delete_plan("q", [gone], False)
    with pytest.raises(taskqueue.DuplicateTaskNameError):
        plans.delete_plan("q", [taskqueue.Task(name="a"), taskqueue.Task(name="a")], True)
    assert plans.delete_plan("q", [], True).calls == ()
    many = [taskqueue.Task(name=f"t{i}") for i in range(1001)]
    plan = plans.delete_plan("q", many, True)
    assert [len(c.body["names"]) for c in plan.calls] == [1000, 1]  # type: ignore[index]
    answers = [
        {"tasks": [{"name": n, "deleted": True} for n in c.body["names"]]}  # type: ignore[index]
        for c in plan.calls
    ]
    assert plan.finish(answers) is many
    assert all(t.was_deleted for t in many)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("1", 1), TypeError),
        ((1, 1.5), TypeError),
        ((-1, 1), taskqueue.InvalidLeaseTimeError),
        ((604801, 1), taskqueue.InvalidLeaseTimeError),
        ((float("nan"), 1), taskqueue.InvalidLeaseTimeError),
        ((1, 0), taskqueue.InvalidMaxTasksError),
        ((1, 1001), taskqueue.InvalidMaxTasksError),
    ],
)
def test_lease_arguments(args: tuple[Any, Any], error: type) -> None:
    with pytest.raises(error):
        plans.lease_plan("q", *args)


def test_lease_requests() -> None:
    [call] = plans.lease_plan("q", True, True).calls  # App Engine takes bools as ints
    assert call.body == {"lease_seconds": 1.0, "max_tasks": 1, "group_by_tag": False}
    [call] = plans.lease_plan("q", 5, 2, group_by_tag=True, tag=b"\xff").calls
    assert call.body == {
        "lease_seconds": 5.0,
        "max_tasks": 2,
        "group_by_tag": True,
        "tag_base64": "/w==",
    }
    [call] = plans.lease_plan("q", 5, 2, group_by_tag=True, tag=b"red").calls
    assert isinstance(call.body, dict)
    assert call.body["tag"] == "red"


def test_leased_tasks_look_like_app_engines() -> None:
    task = taskqueue.Task._leased(
        "q",
        {
            "name": "t",
            "payload_base64": "AAE=",
            "eta_us": T0,
            "retry_count": 2,
            "tag": None,
            "tag_base64": "/w==",
        },
    )
    assert (task.name, task.queue_name, task.method) == ("t", "q", "PULL")
    assert (task.payload, task.tag, task.retry_count) == (b"\x00\x01", b"\xff", 2)
    assert task.was_enqueued
    assert task._eta_usec == T0
    assert task.url == ""
    assert task.size == 4 + 2 + len("X-AppEngine-Current-Namespace") + 4
    with pytest.raises(ValueError, match="bad query field"):
        task.extract_params()
    with pytest.raises(taskqueue.BadTaskStateError):  # added already
        plans.add_plan("q", [task], False, False)


def test_modify_lease_needs_a_named_task() -> None:
    with pytest.raises(TypeError):
        plans.modify_lease_plan("q", pull(), 10)
    with pytest.raises(taskqueue.InvalidLeaseTimeError):
        plans.modify_lease_plan("q", pull("a"), -1)


def test_statistics_targets() -> None:
    queues, multiple = tq_queue.stats_targets("a")
    assert ([q.name for q in queues], multiple) == (["a"], False)
    queues, multiple = tq_queue.stats_targets((taskqueue.Queue("a"), taskqueue.Queue("b")))
    assert ([q.name for q in queues], multiple) == (["a", "b"], True)
    with pytest.raises(TypeError, match="not both"):
        tq_queue.stats_targets(["a", taskqueue.Queue("b")])
    with pytest.raises(TypeError):
        tq_queue.stats_targets(5)
    with pytest.raises(TypeError):
        tq_queue.stats_targets([5])
    assert taskqueue.QueueStatistics.fetch([]) == []
    with pytest.raises(taskqueue.InvalidDeadlineError):
        taskqueue.QueueStatistics.fetch("a", deadline=0)
    with pytest.raises(TypeError):
        taskqueue.QueueStatistics.fetch("a", deadline="1")  # type: ignore[arg-type]


def test_queue_statistics_compare_app_engine_fields() -> None:
    q = taskqueue.Queue("a")
    one = taskqueue.QueueStatistics(q, 1, None, 0, 0, 0.0, paused=True)
    assert one == taskqueue.QueueStatistics(q, 1, None, 0, 0, 0.0)
    assert one != taskqueue.QueueStatistics(q, 2)
    assert repr(one).startswith("QueueStatistics(queue=Queue<name='a'>, tasks=1")
    with pytest.raises(taskqueue.InternalError):
        taskqueue.QueueStatistics._from_json(q, {"name": "a"})


# ------------------------------------------------------------------ RPC objects


def test_rpcs_wait_once_and_call_back_once() -> None:
    calls: list[str] = []
    rpc = taskqueue.create_rpc(deadline=5, callback=lambda: calls.append("back"))
    started = threading.Event()

    def run() -> list[Any]:
        started.set()
        return ["answer"]

    rpc._start(run, lambda answers: answers[0].upper())
    assert rpc.get_result() == "ANSWER"
    assert rpc.get_result() == "ANSWER"
    rpc.check_success()
    assert calls == ["back"]
    with pytest.raises(AssertionError, match="used already"):
        rpc._start(run, lambda answers: None)


def test_rpc_errors_are_raised_by_get_result() -> None:
    rpc = taskqueue.create_rpc()

    def finish(answers: list[Any]) -> None:
        raise taskqueue.TombstonedTaskError("gone")

    rpc._start(list, finish)
    for _ in range(2):
        with pytest.raises(taskqueue.TombstonedTaskError, match="gone"):
            rpc.get_result()
    with pytest.raises(AssertionError, match="never used"):
        taskqueue.create_rpc().wait()


def test_rpc_deadlines() -> None:
    with pytest.raises(taskqueue.InvalidDeadlineError):
        taskqueue.create_rpc(deadline=0)
    with pytest.raises(TypeError):
        taskqueue.create_rpc(deadline="1")  # type: ignore[arg-type]
    release = threading.Event()
    rpc = taskqueue.create_rpc(deadline=0.01)
    rpc._start(lambda: [release.wait(5)], lambda answers: answers[0])
    with pytest.raises(taskqueue.TransientError, match="deadline"):
        rpc.get_result()
    release.set()


# ------------------------------------------------------------------ against the API


async def test_add_lease_modify_delete(env: Env) -> None:
    queue = taskqueue.Queue("pull")
    first = pull("a", b"one", countdown=-20)
    second = pull(payload=b"two", countdown=-10)
    added = await blocking(queue.add, [first, second])
    assert added == [first, second]
    assert first.name == "a"
    assert second.name
    assert second.name != "a"
    assert [t.was_enqueued for t in added] == [True, True]
    assert [t.queue_name for t in added] == ["pull", "pull"]

    leased = await blocking(queue.lease_tasks, 60, 10)
    assert [(t.name, t.payload, t.retry_count) for t in leased] == [
        ("a", b"one", 1),
        (second.name, b"two", 1),
    ]
    assert all(t._eta_usec == T0 + 60 * S for t in leased)
    assert await blocking(queue.lease_tasks, 60, 10) == []

    env.clock.advance(5 * S)
    await blocking(queue.modify_task_lease, leased[0], 30)
    assert leased[0]._eta_usec == T0 + 35 * S
    assert leased[0].retry_count == 1
    stale = taskqueue.Task._leased("pull", {"name": "a", "eta_us": T0, "retry_count": 1})
    with pytest.raises(taskqueue.TaskLeaseExpiredError):
        await blocking(queue.modify_task_lease, stale, 30)
    env.clock.advance(60 * S)
    with pytest.raises(taskqueue.TaskLeaseExpiredError):  # the lease ran out
        await blocking(queue.modify_task_lease, leased[0], 30)
    with pytest.raises(taskqueue.Error) as unknown:
        await blocking(queue.modify_task_lease, pull("ghost"), 30)
    assert type(unknown.value) is errors.UnknownTaskError

    deleted = await blocking(queue.delete_tasks, leased)
    assert [t.was_deleted for t in deleted] == [True, True]
    with pytest.raises(taskqueue.TombstonedTaskError):
        await blocking(queue.modify_task_lease, leased[0], 30)
    with pytest.raises(taskqueue.BadTaskStateError):
        await blocking(queue.delete_tasks, leased[0])
    again = await blocking(queue.delete_tasks_by_name, ["a", "never"])
    assert [(t.name, t.was_deleted) for t in again] == [("a", False), ("never", False)]
    with pytest.raises(taskqueue.TombstonedTaskError):
        await blocking(queue.add, pull("a"))


async def test_single_task_in_single_task_out(env: Env) -> None:
    queue = taskqueue.Queue("push")
    task = taskqueue.Task(name="one", url="/x")
    assert await blocking(queue.add, task) is task
    assert await blocking(queue.add, []) == []
    found = await blocking(queue.delete_tasks_by_name, "one")
    assert isinstance(found, taskqueue.Task)
    assert found.was_deleted
    assert await blocking(queue.delete_tasks, []) == []


async def test_batch_clash_results(env: Env) -> None:
    queue = taskqueue.Queue("push")
    await blocking(queue.add, [taskqueue.Task(name="old"), taskqueue.Task(name="gone")])
    await blocking(queue.delete_tasks_by_name, "gone")
    batch = [taskqueue.Task(name="new"), taskqueue.Task(name="old"), taskqueue.Task()]
    with pytest.raises(taskqueue.TaskAlreadyExistsError):
        await blocking(queue.add, batch)
    assert [t.was_enqueued for t in batch] == [True, False, True]
    with pytest.raises(taskqueue.TombstonedTaskError):
        await blocking(queue.add, [taskqueue.Task(name="old"), taskqueue.Task(name="gone")])
    with pytest.raises(taskqueue.TaskAlreadyExistsError):
        await blocking(queue.add, [taskqueue.Task(name="gone"), taskqueue.Task(name="old")])
    stored = {t.name for t in await env.store.list_tasks("push", limit=10)}
    assert stored == {"old", "new", batch[2].name}


async def test_stored_tasks_keep_what_the_client_built(env: Env) -> None:
    await blocking(
        taskqueue.add,
        "hi",
        queue_name="push",
        name="full",
        url="/hook?a=1",
        method="PUT",
        headers={"X-Trace": ["1", "2"]},
        countdown=30,
        target="w",
        dispatch_deadline_usec=20 * S,
        retry_options=taskqueue.TaskRetryOptions(task_retry_limit=2, task_age_limit=1.5),
    )
    got = taskqueue.Task(method="GET", params={"q": "1"}, name="query")
    await blocking(got.add, "push")
    stored = await env.store.get("push", "full")
    assert stored is not None
    assert stored.method is models.Method.PUT
    assert stored.url == "/hook?a=1"
    assert stored.payload == b"hi"
    assert stored.header_values("X-Trace") == ["1", "2"]
    assert stored.eta_us == T0 + 30 * S
    assert stored.target == "w"
    assert stored.dispatch_deadline_us == 20 * S
    assert stored.retry_options == models.RetryParameters(task_retry_limit=2, task_age_limit_s=2)
    query = await env.store.get("push", "query")
    assert query is not None
    assert (query.url, query.on_queue_url) == ("/_ah/queue/push?q=1", True)
    raw = taskqueue.Task(method="DELETE", params={"b": b"\xff"}, name="raw")
    put = taskqueue.Task(b"body", method="PUT", params={"p": "1"}, name="put")
    await blocking(taskqueue.Queue("push").add, [raw, put])
    stored_raw = await env.store.get("push", "raw")
    assert stored_raw is not None
    assert stored_raw.url == "/_ah/queue/push?b=%FF"
    stored_put = await env.store.get("push", "put")
    assert stored_put is not None
    assert (stored_put.url, stored_put.payload) == ("/_ah/queue/push?p=1", b"body")


async def test_service_errors_arrive_as_app_engine_classes(env: Env) -> None:
    with pytest.raises(taskqueue.UnknownQueueError):
        await blocking(taskqueue.Queue("nope").add, taskqueue.Task())
    with pytest.raises(taskqueue.InvalidQueueModeError):
        await blocking(taskqueue.Queue("push").add, pull())
    with pytest.raises(taskqueue.InvalidQueueModeError):
        await blocking(taskqueue.Queue("pull").add, taskqueue.Task())
    with pytest.raises(taskqueue.InvalidQueueModeError):
        await blocking(taskqueue.Queue("push").lease_tasks, 1, 1)
    with pytest.raises(taskqueue.UnknownQueueError):
        await blocking(taskqueue.Queue("nope").fetch_statistics)
    with pytest.raises(taskqueue.UnknownQueueError):
        await blocking(taskqueue.Queue("nope").purge)
    with pytest.raises(taskqueue.UnknownQueueError):
        await blocking(taskqueue.Queue("nope").delete_tasks_by_name, "a")
    with pytest.raises(taskqueue.InvalidEtaError):  # the service checks a negative ETA
        await blocking(taskqueue.Queue("push").add, taskqueue.Task(eta=-1.0))
    await env.engine.pause("pull")
    with pytest.raises(taskqueue.QueuePausedError):
        await blocking(taskqueue.Queue("pull").lease_tasks, 1, 1)


async def test_lease_limits_and_tags(env: Env) -> None:
    queue = taskqueue.Queue("limited")
    await blocking(
        queue.add,
        [
            pull("u", countdown=-9),
            pull("a1", tag="a", countdown=-8),
            pull("b1", tag=b"b", countdown=-7),
            pull("a2", tag="a", countdown=-6),
        ],
    )
    untagged = await blocking(queue.lease_tasks_by_tag, 0, 10)  # the earliest is untagged
    assert [(t.name, t.tag, t.retry_count) for t in untagged] == [("u", None, 1)]
    by_b = await blocking(queue.lease_tasks_by_tag, 10, 10, b"b")
    assert [(t.name, t.tag) for t in by_b] == [("b1", "b")]
    earliest = await blocking(queue.lease_tasks_by_tag, 10, 10)  # a1 is the earliest due now
    assert [(t.name, t.tag) for t in earliest] == [("a1", "a"), ("a2", "a")]
    env.clock.advance(1)
    again = await blocking(queue.lease_tasks_by_tag, 0, 10)  # u's 0-second lease has ended
    assert [(t.name, t.retry_count) for t in again] == [("u", 2)]
    env.clock.advance(1)
    assert await blocking(queue.lease_tasks, 10, 10) == []  # u: task_retry_limit 2, deleted
    stats = await blocking(queue.fetch_statistics)
    assert (stats.tasks, stats.oldest_eta_usec) == (3, T0 + 10 * S)


async def test_statistics_and_purge(env: Env) -> None:
    push, pull_q = taskqueue.Queue("push"), taskqueue.Queue("pull")
    stats = await blocking(push.fetch_statistics)
    assert (stats.queue, stats.tasks, stats.oldest_eta_usec) == (push, 0, None)
    assert (stats.executed_last_minute, stats.in_flight, stats.enforced_rate) == (7, 1, 2.5)
    await blocking(push.add, [taskqueue.Task(name="p1", countdown=5), taskqueue.Task()])
    both = await blocking(taskqueue.QueueStatistics.fetch, ["push", "pull"])
    assert [(s.queue.name, s.tasks, s.oldest_eta_usec) for s in both] == [
        ("push", 2, T0),
        ("pull", 0, None),
    ]
    one = await blocking(taskqueue.QueueStatistics.fetch, pull_q)
    assert isinstance(one, taskqueue.QueueStatistics)
    assert one.queue is pull_q
    assert await blocking(push.purge) is None
    assert (await blocking(push.fetch_statistics)).tasks == 0
    with pytest.raises(taskqueue.TombstonedTaskError):
        await blocking(push.add, taskqueue.Task(name="p1"))


async def test_async_rpcs(env: Env) -> None:
    queue = taskqueue.Queue("pull")
    task = pull("r1", countdown=-1)
    rpc = task.add_async("pull")
    assert await blocking(rpc.get_result) is task
    assert task.was_enqueued
    rpc = queue.add_async([pull("r2", countdown=-1)])
    assert [t.name for t in await blocking(rpc.get_result)] == ["r2"]
    leased = await blocking(queue.lease_tasks_async(30, 1).get_result)
    assert [t.name for t in leased] == ["r1"]
    rpc = queue.lease_tasks_by_tag_async(30, 5)
    assert [t.name for t in await blocking(rpc.get_result)] == ["r2"]
    stats = await blocking(queue.fetch_statistics_async().get_result)
    assert stats.tasks == 2
    both = await blocking(taskqueue.QueueStatistics.fetch_async(["pull", "push"]).get_result)
    assert [s.tasks for s in both] == [2, 0]
    deleted = await blocking(queue.delete_tasks_by_name_async(["r1", "zz"]).get_result)
    assert [t.was_deleted for t in deleted] == [True, False]
    rpc = queue.delete_tasks_async(taskqueue.Task(name="r2"))
    assert (await blocking(rpc.get_result)).was_deleted
    rpc = queue.add_async([])  # App Engine's add_async([]) answers [] too
    assert await blocking(rpc.get_result) == []
    failing = taskqueue.Queue("nope").add_async(taskqueue.Task())
    with pytest.raises(taskqueue.UnknownQueueError):
        await blocking(failing.get_result)


async def test_async_queue(env: Env) -> None:
    async with taskqueue.AsyncQueue("pull") as queue:
        assert queue.name == "pull"
        added = await queue.add([pull("x1", b"1", countdown=-2), pull(payload=b"2", countdown=-1)])
        assert all(t.was_enqueued for t in added)
        assert await queue.add([]) == []
        leased = await queue.lease_tasks(60, 10)
        assert [t.payload for t in leased] == [b"1", b"2"]
        await queue.modify_task_lease(leased[0], 10)
        assert leased[0]._eta_usec == T0 + 10 * S
        assert (await queue.fetch_statistics()).tasks == 2
        deleted = await queue.delete_tasks(leased[0])
        assert deleted.was_deleted
        gone = await queue.delete_tasks_by_name(["x1", leased[1].name or ""])
        assert [t.was_deleted for t in gone] == [False, True]
        assert await queue.lease_tasks_by_tag(10, 10) == []
        await queue.purge()
        with pytest.raises(taskqueue.TombstonedTaskError):
            await queue.add(pull("x1"))
    assert repr(queue) == "AsyncQueue<name='pull'>"


async def test_async_queue_without_a_session_and_with_a_given_client(env: Env) -> None:
    one_off = taskqueue.AsyncQueue("push")  # each call opens and closes its own session
    task = await one_off.add(taskqueue.Task(name="s1"))
    assert task.queue_name == "push"
    with pytest.raises(taskqueue.UnknownQueueError):
        await taskqueue.AsyncQueue("nope").fetch_statistics()
    async with client.AsyncClient(str(env.client.make_url(""))) as shared:
        queue = taskqueue.AsyncQueue("push", client=shared)
        async with queue:
            assert (await queue.fetch_statistics()).tasks == 1
        assert (await queue.fetch_statistics()).tasks == 1  # a given client stays open


async def test_tokens_are_sent() -> None:
    async with served(tokens=TOKENS) as env:
        url = str(env.client.make_url(""))
        producer = taskqueue.Queue("pull", url=url, token=PRODUCER)
        await blocking(producer.add, pull("t1"))
        with pytest.raises(taskqueue.PermissionDeniedError):
            await blocking(producer.lease_tasks, 1, 1)
        with pytest.raises(taskqueue.Error, match="Authorization: Bearer"):
            await blocking(taskqueue.Queue("pull").add, pull("t2"))
        async with taskqueue.AsyncQueue("pull", token=PRODUCER) as queue:
            await queue.add(pull("t3"))


async def test_an_unreachable_daemon_is_a_transient_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    taskqueue.configure(url=f"http://127.0.0.1:{port}")
    with pytest.raises(taskqueue.TransientError, match="cannot reach pushd"):
        await blocking(taskqueue.Queue("q").purge)
    with pytest.raises(taskqueue.TransientError, match="cannot reach pushd"):
        await taskqueue.AsyncQueue("q").purge()
