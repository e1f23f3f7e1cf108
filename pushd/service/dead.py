"""Dead letters: the tasks that ran out of retries (or leases), kept for the operator to read,
put back (redrive) or delete."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pushd import errors
from pushd.service import parts

if TYPE_CHECKING:
    from pushd import models
    from pushd.store import base


def _unknown(queue: str, name: str) -> errors.UnknownTaskError:
    return errors.UnknownTaskError(f"queue {queue!r} has no dead letter {name!r}")


class DeadLetters:
    """The dead letters of every queue."""

    def __init__(self, parts_: parts.Parts) -> None:
        self._p = parts_

    async def page(
        self, queue: str, *, limit: int, after: str | None = None
    ) -> parts.Page[base.DeadTask]:
        """Up to ``limit`` dead letters of ``queue`` named after ``after``, in name order."""
        found = await self._p.store.list_dead(queue, limit=limit + 1, after_name=after)
        return parts.page_of(found, limit, lambda dead: dead.task.name)

    async def get(self, queue: str, name: str) -> base.DeadTask:
        """The dead letter ``name`` of ``queue``, or :class:`errors.UnknownTaskError`."""
        dead = await self._p.store.get_dead(queue, name)
        if dead is None:
            raise _unknown(queue, name)
        return dead

    async def redrive(self, queue: str, name: str) -> models.Task:
        """Put a dead letter back as a fresh task due now; every API redrives through here."""
        await self.get(queue, name)
        task = await self._p.store.redrive(queue, name, now_us=self._p.clock.now_us())
        if task is None:  # a live task took the name meanwhile
            raise errors.TaskAlreadyExistsError(f"queue {queue!r} already has a live task {name!r}")
        self._p.notify(task)
        return task

    async def forget(self, queue: str, name: str) -> None:
        """Delete a dead letter (:class:`errors.UnknownTaskError` if there is none)."""
        if not await self._p.store.delete_dead(queue, name):
            raise _unknown(queue, name)
