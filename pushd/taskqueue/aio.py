"""``AsyncQueue``: :class:`Queue` for asyncio code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pushd import client as http
from pushd import models, tasks
from pushd.taskqueue import connection, plans
from pushd.taskqueue import queue as queue_module
from pushd.taskqueue import task as task_module

if TYPE_CHECKING:
    from pushd.taskqueue.queue import QueueStatistics
    from pushd.taskqueue.task import Task

R = TypeVar("R")


class AsyncQueue:
    """:class:`Queue` for asyncio code: the same methods, as coroutines.

    Used as ``async with AsyncQueue(name) as queue:`` it keeps one HTTP session for the block;
    otherwise each call opens and closes its own (or pass a shared ``client``).
    """

    def __init__(
        self,
        name: str = models.DEFAULT_QUEUE_NAME,
        *,
        url: str | None = None,
        token: str | None = None,
        client: http.AsyncClient | None = None,
    ) -> None:
        self._name = tasks.check_queue_name(name)
        self._url = url
        self._token = token
        self._client = client
        self._owned: http.AsyncClient | None = None

    @property
    def name(self) -> str:
        return self._name

    def _new_client(self) -> http.AsyncClient:
        return http.AsyncClient(
            self._url or connection.defaults.url, token=self._token or connection.defaults.token
        )

    async def __aenter__(self) -> AsyncQueue:
        if self._client is None:
            self._client = self._owned = self._new_client()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session :meth:`__aenter__` opened (a given ``client`` stays open)."""
        if self._owned is not None:
            owned, self._owned, self._client = self._owned, None, None
            await owned.close()

    async def _run(self, plan: plans.Plan[R]) -> R:
        if not plan.calls:
            return plan.finish([])
        if self._client is not None:
            client = self._client
            return plan.finish([await client.call(c.method, c.path, c.body) for c in plan.calls])
        async with self._new_client() as one:
            return plan.finish([await one.call(c.method, c.path, c.body) for c in plan.calls])

    @overload
    async def add(self, task: Task, transactional: bool = False) -> Task: ...
    @overload
    async def add(self, task: Iterable[Task], transactional: bool = False) -> list[Task]: ...
    async def add(self, task: Task | Iterable[Task], transactional: bool = False) -> Any:
        items, multiple = task_module.listify(task)
        if not items:
            return []
        return await self._run(plans.add_plan(self._name, items, transactional, multiple))

    @overload
    async def delete_tasks(self, task: Task) -> Task: ...
    @overload
    async def delete_tasks(self, task: Iterable[Task]) -> list[Task]: ...
    async def delete_tasks(self, task: Task | Iterable[Task]) -> Any:
        items, multiple = task_module.listify(task)
        return await self._run(plans.delete_plan(self._name, items, multiple))

    @overload
    async def delete_tasks_by_name(self, task_name: str) -> Task: ...  # type: ignore[overload-overlap]
    @overload
    async def delete_tasks_by_name(self, task_name: Iterable[str]) -> list[Task]: ...
    async def delete_tasks_by_name(self, task_name: str | Iterable[str]) -> Any:
        return await self.delete_tasks(queue_module.by_name(task_name))

    async def purge(self) -> None:
        await self._run(plans.purge_plan(self._name))

    async def lease_tasks(
        self, lease_seconds: float, max_tasks: int, deadline: float = 10
    ) -> list[Task]:
        connection.validate_deadline(deadline)
        return await self._run(plans.lease_plan(self._name, lease_seconds, max_tasks))

    async def lease_tasks_by_tag(
        self,
        lease_seconds: float,
        max_tasks: int,
        tag: bytes | str | None = None,
        deadline: float = 10,
    ) -> list[Task]:
        connection.validate_deadline(deadline)
        plan = queue_module.tag_lease_plan(self._name, lease_seconds, max_tasks, tag)
        return await self._run(plan)

    async def modify_task_lease(self, task: Task, lease_seconds: float) -> None:
        await self._run(plans.modify_lease_plan(self._name, task, lease_seconds))

    async def fetch_statistics(self, deadline: float = 10) -> QueueStatistics:
        connection.validate_deadline(deadline)
        return await self._run(queue_module.stats_plan(self))

    def __repr__(self) -> str:
        return f"AsyncQueue<name={self._name!r}>"
