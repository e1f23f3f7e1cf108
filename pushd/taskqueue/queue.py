"""App Engine's ``Queue`` and ``QueueStatistics``, over blocking HTTP calls."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pushd import errors, models, tasks
from pushd.taskqueue import connection, plans
from pushd.taskqueue import task as task_module
from pushd.taskqueue.rpc import RPC
from pushd.taskqueue.task import Task

if TYPE_CHECKING:
    from pushd.taskqueue.aio import AsyncQueue

R = TypeVar("R")


class Queue:
    """A queue of the daemon, by name (``default`` unless told), as App Engine's ``Queue``.

    ``url`` and ``token`` choose the daemon for this queue only (see :func:`configure`).
    """

    def __init__(
        self,
        name: str = models.DEFAULT_QUEUE_NAME,
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        self._name = tasks.check_queue_name(name)
        self._url = url
        self._token = token

    @property
    def name(self) -> str:
        return self._name

    def _run(self, plan: plans.Plan[R]) -> R:
        if not plan.calls:
            return plan.finish([])
        client = connection.sync_client(self._url, self._token)
        return plan.finish([client.call(c.method, c.path, c.body) for c in plan.calls])

    def _run_async(self, plan: plans.Plan[R], rpc: RPC[Any] | None) -> RPC[Any]:
        target = rpc if rpc is not None else RPC[Any]()
        if not plan.calls:
            return target._start(list, plan.finish)
        client = connection.sync_client(self._url, self._token)
        calls = plan.calls
        return target._start(
            lambda: [client.call(c.method, c.path, c.body) for c in calls], plan.finish
        )

    # ---- add

    @overload
    def add(self, task: Task, transactional: bool = False) -> Task: ...
    @overload
    def add(self, task: Iterable[Task], transactional: bool = False) -> list[Task]: ...
    def add(self, task: Task | Iterable[Task], transactional: bool = False) -> Any:
        """Add a task or a list of up to 100 (SPEC 1.13-1.15); returns what was given."""
        items, multiple = task_module.listify(task)
        if not items:
            return []
        return self._run(plans.add_plan(self._name, items, transactional, multiple))

    def add_async(
        self, task: Task | Iterable[Task], transactional: bool = False, rpc: RPC[Any] | None = None
    ) -> RPC[Any]:
        items, multiple = task_module.listify(task)
        return self._run_async(plans.add_plan(self._name, items, transactional, multiple), rpc)

    # ---- delete and purge

    @overload
    def delete_tasks(self, task: Task) -> Task: ...
    @overload
    def delete_tasks(self, task: Iterable[Task]) -> list[Task]: ...
    def delete_tasks(self, task: Task | Iterable[Task]) -> Any:
        """Delete by name; ``was_deleted`` tells which were live (SPEC 6)."""
        items, multiple = task_module.listify(task)
        return self._run(plans.delete_plan(self._name, items, multiple))

    def delete_tasks_async(
        self, task: Task | Iterable[Task], rpc: RPC[Any] | None = None
    ) -> RPC[Any]:
        items, multiple = task_module.listify(task)
        return self._run_async(plans.delete_plan(self._name, items, multiple), rpc)

    @overload
    def delete_tasks_by_name(self, task_name: str) -> Task: ...  # type: ignore[overload-overlap]
    @overload
    def delete_tasks_by_name(self, task_name: Iterable[str]) -> list[Task]: ...
    def delete_tasks_by_name(self, task_name: str | Iterable[str]) -> Any:
        return self.delete_tasks(by_name(task_name))

    def delete_tasks_by_name_async(
        self, task_name: str | Iterable[str], rpc: RPC[Any] | None = None
    ) -> RPC[Any]:
        return self.delete_tasks_async(by_name(task_name), rpc)

    def purge(self) -> None:
        """Delete every task of the queue; their names stay tombstoned."""
        self._run(plans.purge_plan(self._name))

    # ---- leases

    def lease_tasks(self, lease_seconds: float, max_tasks: int, deadline: float = 10) -> list[Task]:
        """Lease up to ``max_tasks`` due tasks of a pull queue for ``lease_seconds``."""
        connection.validate_deadline(deadline)
        return self._run(plans.lease_plan(self._name, lease_seconds, max_tasks))

    def lease_tasks_async(
        self, lease_seconds: float, max_tasks: int, rpc: RPC[Any] | None = None
    ) -> RPC[Any]:
        return self._run_async(plans.lease_plan(self._name, lease_seconds, max_tasks), rpc)

    def lease_tasks_by_tag(
        self,
        lease_seconds: float,
        max_tasks: int,
        tag: bytes | str | None = None,
        deadline: float = 10,
    ) -> list[Task]:
        """Lease tasks of one tag; ``tag=None`` takes the tag of the earliest due task."""
        connection.validate_deadline(deadline)
        return self._run(tag_lease_plan(self._name, lease_seconds, max_tasks, tag))

    def lease_tasks_by_tag_async(
        self,
        lease_seconds: float,
        max_tasks: int,
        tag: bytes | str | None = None,
        rpc: RPC[Any] | None = None,
    ) -> RPC[Any]:
        return self._run_async(tag_lease_plan(self._name, lease_seconds, max_tasks, tag), rpc)

    def modify_task_lease(self, task: Task, lease_seconds: float) -> None:
        """Renew (or with 0, release) a lease; the task's ETA becomes the new expiry."""
        self._run(plans.modify_lease_plan(self._name, task, lease_seconds))

    # ---- statistics

    def fetch_statistics(self, deadline: float = 10) -> QueueStatistics:
        connection.validate_deadline(deadline)
        return self._run(stats_plan(self))

    def fetch_statistics_async(self, rpc: RPC[Any] | None = None) -> RPC[Any]:
        return QueueStatistics.fetch_async(self, rpc)

    def __repr__(self) -> str:
        return f"Queue<name={self._name!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Queue):
            return NotImplemented
        return (self._name, self._url, self._token) == (other._name, other._url, other._token)

    def __hash__(self) -> int:
        return hash((self._name, self._url, self._token))


def tag_lease_plan(
    queue_name: str, lease_seconds: float, max_tasks: int, tag: bytes | str | None
) -> plans.Plan[list[Task]]:
    """What ``lease_tasks_by_tag`` asks, for :class:`Queue` and ``AsyncQueue`` alike."""
    return plans.lease_plan(queue_name, lease_seconds, max_tasks, group_by_tag=True, tag=tag)


def by_name(task_name: str | Iterable[str]) -> Task | list[Task]:
    if isinstance(task_name, str):
        return Task(name=task_name)
    return [Task(name=name) for name in task_name]


class QueueStatistics:
    """A queue's state (SPEC 6), as App Engine's ``QueueStatistics``.

    ``paused`` and ``dead_letters`` are pushd's own additions.
    """

    _ATTRS = (
        "queue",
        "tasks",
        "oldest_eta_usec",
        "executed_last_minute",
        "in_flight",
        "enforced_rate",
    )

    def __init__(
        self,
        queue: Queue | AsyncQueue,
        tasks: int,
        oldest_eta_usec: int | None = None,
        executed_last_minute: int | None = None,
        in_flight: int | None = None,
        enforced_rate: float | None = None,
        *,
        paused: bool = False,
        dead_letters: int = 0,
    ) -> None:
        self.queue = queue
        self.tasks = tasks
        self.oldest_eta_usec = oldest_eta_usec
        self.executed_last_minute = executed_last_minute
        self.in_flight = in_flight
        self.enforced_rate = enforced_rate
        self.paused = paused
        self.dead_letters = dead_letters

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueueStatistics):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a in self._ATTRS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{a}={getattr(self, a)!r}" for a in self._ATTRS)
        return f"QueueStatistics({shown})"

    @classmethod
    def _from_json(cls, queue: Queue | AsyncQueue, answer: Any) -> QueueStatistics:
        stats = answer.get("stats") if isinstance(answer, dict) else None
        if not isinstance(stats, dict):
            raise errors.InternalError(f"unexpected queue answer {answer!r:.200}")
        oldest = stats.get("oldest_eta_us")
        return cls(
            queue,
            int(stats.get("tasks", 0)),
            None if oldest is None else int(oldest),
            int(stats.get("executed_last_minute", 0)),
            int(stats.get("in_flight", 0)),
            float(stats.get("enforced_rate", 0.0)),
            paused=bool(stats.get("paused", False)),
            dead_letters=int(stats.get("dead_letters", 0)),
        )

    @classmethod
    def fetch(cls, queue_or_queues: Any, deadline: float = 10) -> Any:
        """Statistics of one queue (a Queue or a name), or a list of them for a list."""
        connection.validate_deadline(deadline)
        if not queue_or_queues:
            return []
        queues, multiple = stats_targets(queue_or_queues)
        found = [queue._run(stats_plan(queue)) for queue in queues]
        return found if multiple else found[0]

    @classmethod
    def fetch_async(cls, queue_or_queues: Any, rpc: RPC[Any] | None = None) -> RPC[Any]:
        queues, multiple = stats_targets(queue_or_queues)
        target = rpc if rpc is not None else RPC[Any]()
        plans = [stats_plan(queue) for queue in queues]
        clients = [connection.sync_client(queue._url, queue._token) for queue in queues]

        def run() -> list[Any]:
            return [
                client.call(c.method, c.path, c.body)
                for client, plan in zip(clients, plans, strict=True)
                for c in plan.calls
            ]

        def finish(answers: list[Any]) -> Any:
            found = [plan.finish([a]) for plan, a in zip(plans, answers, strict=True)]
            return found if multiple else found[0]

        return target._start(run, finish)


def stats_targets(queue_or_queues: Any) -> tuple[list[Queue], bool]:
    """App Engine's rules: a name or a Queue gives one answer, an iterable a list; names and
    Queue objects cannot be mixed (``TypeError``)."""
    if isinstance(queue_or_queues, str | Queue):
        items: list[Any] = [queue_or_queues]
        multiple = False
    else:
        try:
            items = list(iter(queue_or_queues))
        except TypeError:
            raise TypeError("queue_or_queues must be a Queue, a queue name or a list") from None
        multiple = True
    strs = any(isinstance(q, str) for q in items)
    queues = any(isinstance(q, Queue) for q in items)
    if strs and queues:
        raise TypeError("queue_or_queues must contain either strings or queue instances, not both.")
    if not all(isinstance(q, str | Queue) for q in items):
        raise TypeError("queue_or_queues must hold queue names or Queue instances")
    return [q if isinstance(q, Queue) else Queue(q) for q in items], multiple


def stats_plan(queue: Queue | AsyncQueue) -> plans.Plan[QueueStatistics]:
    def finish(answers: list[Any]) -> QueueStatistics:
        return QueueStatistics._from_json(queue, answers[0])

    return plans.Plan((plans.Call("GET", plans.queue_path(queue.name)),), finish)
