"""Requests and answers: pure functions that the blocking, thread-pool and asyncio front ends
share. Each operation is a :class:`Plan`: the calls it makes and how their answers become its
result; only the transport differs between front ends."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pushd import client as http
from pushd import errors, models, tasks, wire
from pushd.taskqueue import exceptions
from pushd.taskqueue.task import Task, one_or_all

R = TypeVar("R")
_OK = errors.ErrorCode.OK.name
_SKIPPED = errors.ErrorCode.SKIPPED.name


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    body: object = None


@dataclass(frozen=True, slots=True)
class Plan(Generic[R]):
    """The requests an operation makes (maybe none) and how their answers become its result."""

    calls: tuple[Call, ...]
    finish: Callable[[list[Any]], R]


def queue_path(queue_name: str, *rest: str) -> str:
    return "/".join(("/api/v1/queues", http.quote(queue_name), *rest))


def task_json(task: Task, queue_name: str) -> wire.TaskRequestJSON:
    """The add request's object for a built task (see :func:`wire.encode_request`)."""
    return wire.encode_request(task._built, name=task._name, queue=queue_name)


def add_plan(queue_name: str, items: list[Task], transactional: bool, multiple: bool) -> Plan[Any]:
    """App Engine's ``Queue.add_async`` checks, in its order (SPEC 1.13), and the request."""
    if not items:
        return Plan((), lambda answers: [])
    pull = [task.method == models.Method.PULL for task in items]
    if any(pull) and not all(pull):
        raise errors.InvalidTaskError("You cannot add both push and pull tasks in a single call.")
    tasks.check_batch_size(len(items), app_engine=True)
    names: set[str] = set()
    for task in items:
        if task.name:
            if task.name in names:
                raise errors.DuplicateTaskNameError(
                    f"The task name {task.name!r} is used more than once in the request"
                )
            names.add(task.name)
        if task.was_enqueued:
            raise errors.BadTaskStateError("The task has already been enqueued.")
        if transactional:
            raise exceptions.BadTransactionStateError(
                "Transactional adds are not supported: pushd has no datastore transaction "
                "to bind tasks to; add them with transactional=False"
            )
    body = {"tasks": [task_json(task, queue_name) for task in items]}

    def finish(answers: list[Any]) -> Any:
        apply_add(queue_name, items, answers[0])
        return one_or_all(items, multiple)

    return Plan((Call("POST", queue_path(queue_name, "tasks"), body),), finish)


def result_error(code: str, name: str) -> errors.Error:
    found = errors.ErrorCode.__members__.get(code)
    detail = f"task {name!r}"
    if found is None:
        return errors.Error(f"Application error {code}: {detail}")
    return errors.from_code(found, detail)


def apply_add(queue_name: str, items: list[Task], answer: Any) -> None:
    """App Engine's BulkAdd result hook (SPEC 1.15): fill in the tasks that were added, then
    raise the first error, replaced by any later one while it is a name clash."""
    found = results(answer, len(items), "add")
    exception: errors.Error | None = None
    for task, result in zip(items, found, strict=True):
        code = str(result.get("result"))
        if code == _OK:
            task._name = str(result["name"])
            task._queue_name = queue_name
            task._enqueued = True
        elif code == _SKIPPED:
            pass
        elif exception is None or isinstance(
            exception, errors.TaskAlreadyExistsError | errors.TombstonedTaskError
        ):
            exception = result_error(code, str(result.get("name", task.name)))
    if exception is not None:
        raise exception


def results(answer: Any, count: int, what: str) -> list[Mapping[str, Any]]:
    found = answer.get("tasks") if isinstance(answer, dict) else None
    if not isinstance(found, list) or len(found) != count:
        raise errors.InternalError(f"expected {count} results from {what}, got {answer!r:.200}")
    return found


def delete_plan(queue_name: str, items: list[Task], multiple: bool) -> Plan[Any]:
    """App Engine's ``Queue.delete_tasks_async`` checks and the requests (SPEC 6)."""
    names: list[str] = []
    seen: set[str] = set()
    for task in items:
        if not task.name:
            raise errors.BadTaskStateError("A task name must be specified for a task")
        if task.was_deleted:
            raise errors.BadTaskStateError(f"The task {task.name} has already been deleted")
        if task.name in seen:
            raise errors.DuplicateTaskNameError(
                f"The task name {task.name!r} is used more than once in the request"
            )
        seen.add(task.name)
        names.append(task.name)
    step = wire.MAX_NAMES_PER_DELETE
    path = queue_path(queue_name, "delete")
    calls = tuple(
        Call("POST", path, {"names": names[i : i + step]}) for i in range(0, len(names), step)
    )

    def finish(answers: list[Any]) -> Any:
        done = [r for a, c in zip(answers, calls, strict=True) for r in deleted(a, c)]
        for task, result in zip(items, done, strict=True):
            task._deleted = bool(result.get("deleted"))
        return one_or_all(items, multiple)

    return Plan(calls, finish)


def deleted(answer: Any, call: Call) -> list[Mapping[str, Any]]:
    assert isinstance(call.body, dict)
    return results(answer, len(call.body["names"]), "delete")


def purge_plan(queue_name: str) -> Plan[None]:
    return Plan((Call("POST", queue_path(queue_name, "purge")),), lambda answers: None)


def lease_seconds_checked(lease_seconds: object) -> float:
    """App Engine's rule: a number (``TypeError``), 0 to 604800 (:class:`InvalidLeaseTimeError`)."""
    if not isinstance(lease_seconds, int | float):
        raise TypeError("lease_seconds must be a float or an integer")
    seconds = float(lease_seconds)
    tasks.check_lease_seconds(seconds)
    return seconds


def max_tasks_checked(max_tasks: object) -> int:
    """App Engine's rule: an int (``TypeError``), 1 to 1000 (:class:`InvalidMaxTasksError`)."""
    if not isinstance(max_tasks, int):
        raise TypeError("max_tasks must be an integer")
    return tasks.check_max_tasks(int(max_tasks))


def lease_plan(
    queue_name: str,
    lease_seconds: object,
    max_tasks: object,
    *,
    group_by_tag: bool = False,
    tag: bytes | str | None = None,
) -> Plan[list[Task]]:
    body: dict[str, object] = {
        "lease_seconds": lease_seconds_checked(lease_seconds),
        "max_tasks": max_tasks_checked(max_tasks),
        "group_by_tag": group_by_tag,
    }
    if tag is not None:
        if isinstance(tag, str):
            body["tag"] = tag
        else:
            try:
                body["tag"] = tag.decode("utf-8")
            except UnicodeDecodeError:
                body["tag_base64"] = wire.b64encode(tag)

    def finish(answers: list[Any]) -> list[Task]:
        found = answers[0].get("tasks") if isinstance(answers[0], dict) else None
        if not isinstance(found, list):
            raise errors.InternalError(f"unexpected lease answer {answers[0]!r:.200}")
        return [Task._leased(queue_name, item) for item in found]

    return Plan((Call("POST", queue_path(queue_name, "lease"), body),), finish)


def modify_lease_plan(queue_name: str, task: Task, lease_seconds: object) -> Plan[None]:
    seconds = lease_seconds_checked(lease_seconds)
    if not task.name:
        raise TypeError("modify_task_lease needs a named task (one that lease_tasks returned)")
    body = {"eta_us": task._eta_us, "lease_seconds": seconds}

    def finish(answers: list[Any]) -> None:
        task._eta_us = int(answers[0]["eta_us"])

    path = queue_path(queue_name, "tasks", http.quote(task.name), "lease")
    return Plan((Call("POST", path, body),), finish)
