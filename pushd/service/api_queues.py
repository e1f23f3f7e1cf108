"""Queues created through the Cloud Tasks API: kept in the store, run beside queue.yaml's.

The queue set a daemon runs is queue.yaml's queues plus the API's (:func:`merged`); queue.yaml
stays definitive for the names it holds, so an API queue of a name the file takes is hidden
while the file has it. Each is a push queue with Cloud Tasks' settings mapped onto queue.yaml's
(CLOUDTASKS.md 1.6, :func:`to_config`). After a change is stored the service calls
``Parts.apply_api_queues``, which the daemon wires to read the API queues again and apply them
to the scheduler as a reload does (and, on PostgreSQL, every other daemon does on the
``queues`` change it hears), so a created queue takes tasks as soon as the call returns.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

from pushd import logs, models
from pushd.queue_yaml import config

if TYPE_CHECKING:
    from pushd.service import parts

#: The finest rate step an API queue keeps (its rate is a float; pushd's rates are exact).
_RATE_DENOMINATOR = 1_000_000


def to_config(queue: models.ApiQueue) -> config.QueueConfig:
    """``queue`` as a push queue of queue.yaml would be: ``max_attempts`` counts attempts and
    ``task_retry_limit`` retries (so one less; -1 is no limit), ``max_retry_duration`` 0 is
    no age limit."""
    attempts = queue.max_attempts
    return config.QueueConfig(
        name=queue.name,
        rate=Fraction(queue.rate).limit_denominator(_RATE_DENOMINATOR),
        rate_text=f"{queue.rate:g}/s",
        bucket_size=queue.max_burst,
        max_concurrent_requests=queue.max_concurrent,
        retry=models.RetryParameters(
            task_retry_limit=None if attempts < 0 else max(0, attempts - 1),
            task_age_limit_s=queue.max_retry_duration_s or None,
            min_backoff_s=queue.min_backoff_s,
            max_backoff_s=queue.max_backoff_s,
            max_doublings=queue.max_doublings,
        ),
        target=queue.target,
        line=-1,
        api=True,
    )


def merged(file: config.QueuesConfig, api: Sequence[models.ApiQueue]) -> config.QueuesConfig:
    """queue.yaml's queues and the API's, the file's winning a name both hold."""
    extra = {q.name: to_config(q) for q in api if q.name not in file.queues}
    if not extra:
        return file
    return dataclasses.replace(file, queues=types.MappingProxyType({**file.queues, **extra}))


class ApiQueues:
    """Create, update and delete the API queues (the Cloud Tasks handlers' verbs)."""

    def __init__(self, parts_: parts.Parts) -> None:
        self._p = parts_

    async def find(self, name: str) -> models.ApiQueue | None:
        """The stored API queue ``name``, None if there is none."""
        for queue in await self._p.store.api_queues():
            if queue.name == name:
                return queue
        return None

    async def save(self, queue: models.ApiQueue, *, create: bool) -> models.QueueSave:
        """Store ``queue`` (only if new, with ``create``) and run it at once."""
        p = self._p
        outcome = await p.store.save_api_queue(queue, create=create, now_us=p.clock.now_us())
        if outcome in (models.QueueSave.CREATED, models.QueueSave.UPDATED):
            logs.event(f"api_queue_{outcome.value}", queue=queue.name, rate=queue.rate)
            await p.apply_api_queues()
        return outcome

    async def delete(self, name: str) -> bool:
        """Delete the API queue ``name`` and its tasks (none is sent after); False if none."""
        p = self._p
        if not await p.store.delete_api_queue(name, now_us=p.clock.now_us()):
            return False
        p.engine.forget(name)
        logs.event("api_queue_deleted", queue=name)
        await p.apply_api_queues()
        return True
