"""The storage seam: what the scheduler and the APIs need from a task store.

Every backend (``memory`` for unit tests, ``sqlite`` by default, ``postgres`` to scale out)
implements :class:`Store` and passes the same contract suite (``tests/contract``).

Invariants every backend keeps:

* **Nothing acknowledged is lost.** ``add`` returns only after the tasks are durable.
* **Claiming is leasing.** ``claim_due`` moves each claimed task's ETA to ``now + lease`` in the
  same transaction that selects it. If pushd dies mid-delivery the task simply becomes due
  again when that lease runs out: at-least-once, no cleanup job. A claim is identified by
  ``(queue, name, lease_eta_us)``; an outcome whose lease no longer matches (the task was
  deleted, purged or re-claimed meanwhile) is ignored.
* **Names are unique per queue** while a task is stored, and stay reserved (tombstoned) for the
  store's retention window after the task ran, was deleted, purged or dead-lettered (SPEC 2).
* **Batch adds** are per task: a name clash fails only that task (SPEC 1.15). Validation, which
  is all-or-nothing, happens before the store is called.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, TypedDict

from pushd import errors, models
from pushd.store.sharing import Change as Change
from pushd.store.sharing import Exclusive as Exclusive
from pushd.store.sharing import Ownership as Ownership
from pushd.store.sharing import Shared as Shared
from pushd.store.values import Claimed as Claimed
from pushd.store.values import DeadLetter as DeadLetter
from pushd.store.values import DeadTask as DeadTask
from pushd.store.values import Done as Done
from pushd.store.values import Holding as Holding
from pushd.store.values import Outcome as Outcome
from pushd.store.values import QueueCounts as QueueCounts
from pushd.store.values import Retry as Retry


def api_queue_save(
    found: tuple[int, int | None] | None, *, create: bool, now_us: int
) -> tuple[models.QueueSave, int]:
    """What :meth:`Store.save_api_queue` does given the row of that name (its ``created_us``
    and ``deleted_us``, None while it lives) and the creation time the row is to keep."""
    if found is not None:
        created_us, deleted_us = found
        if deleted_us is None:
            if create:
                return models.QueueSave.EXISTS, created_us
            return models.QueueSave.UPDATED, created_us
        if now_us - deleted_us < models.API_QUEUE_TOMBSTONE_US:
            return models.QueueSave.RECENTLY_DELETED, created_us
    return models.QueueSave.CREATED, now_us


def lease_limit(task: models.Task, queue_retry_limit: int | None) -> int | None:
    """The most leases ``task`` may have (SPEC 6): its own retry options win over its queue's."""
    opts = task.retry_options
    return opts.task_retry_limit if opts is not None else queue_retry_limit


def over_lease_limit(task: models.Task, queue_retry_limit: int | None) -> bool:
    """Whether one more lease would exceed the task's retry limit (SPEC 6); such a task is
    not leased: it moves to the dead letters (App Engine deleted it; either way its name is
    tombstoned and it is gone from the queue)."""
    limit = lease_limit(task, queue_retry_limit)
    return limit is not None and task.retry_count + 1 > limit


def lease_dead_reason(task: models.Task, queue_retry_limit: int | None) -> str:
    """Why a pull task over its lease limit became a dead letter."""
    limit = lease_limit(task, queue_retry_limit)
    whose = "its own" if task.retry_options is not None else "the queue's"
    return (
        f"task_retry_limit reached: leased {task.retry_count} times and not deleted "
        f"({whose} task_retry_limit is {limit})"
    )


def leased(task: models.Task, lease_eta_us: int) -> models.Task:
    """``task`` as one more lease leaves it."""
    return dataclasses.replace(task, eta_us=lease_eta_us, retry_count=task.retry_count + 1)


class Counters(TypedDict):
    """A task's attempt counters: what an outcome carries from the attempt to the store."""

    retry_count: int
    execution_count: int
    first_try_us: int | None
    last_status: int | None
    last_attempt: models.LastAttempt | None


def counters(of: models.Task | Retry | DeadLetter) -> Counters:
    """The attempt counters of a task or an outcome, to copy onto the other."""
    return Counters(
        retry_count=of.retry_count,
        execution_count=of.execution_count,
        first_try_us=of.first_try_us,
        last_status=of.last_status,
        last_attempt=of.last_attempt,
    )


def as_dead(task: models.Task, outcome: DeadLetter) -> models.Task:
    """``task`` with the counters of its last attempt, as kept in the dead letters."""
    return dataclasses.replace(task, **counters(outcome))


def retried(task: models.Task, outcome: Retry) -> models.Task:
    """``task`` as a failed attempt leaves it: due again at the outcome's ETA, its counters."""
    return dataclasses.replace(task, eta_us=outcome.eta_us, **counters(outcome))


def redriven(task: models.Task, now_us: int) -> models.Task:
    """A dead task put back: due now, as if never tried."""
    return dataclasses.replace(
        task,
        eta_us=now_us,
        retry_count=0,
        execution_count=0,
        first_try_us=None,
        last_status=None,
        last_attempt=None,
    )


def check_runnable(task: models.Task, now_us: int) -> None:
    """ "Run now" must not break a worker's running lease: that would hand the task to two."""
    if task.is_pull and task.retry_count > 0 and task.eta_us > now_us:
        raise errors.Error(
            f"task {task.name!r} is leased by a worker for another "
            f"{(task.eta_us - now_us) / 1e6:.0f} s; it becomes available when the lease ends "
            "(or delete it)"
        )


def check_lease(name: str, *, eta_us: int, current_eta_us: int, now_us: int) -> None:
    """A lease change needs the holder's ETA and a lease still running (SPEC 6).

    A lease whose ETA is ``now`` has run out: at that instant the task is leasable again, so
    renewing it too would hand it to two workers.
    """
    if eta_us != current_eta_us or eta_us <= now_us:
        raise errors.TaskLeaseExpiredError(f"the lease on task {name!r} has expired")


def lease_for(task: models.Task, *, lease_us: int, slack_us: int, deadlines: int = 1) -> int:
    """How long a claim on ``task`` lasts: ``deadlines`` times its dispatch deadline plus slack,
    else ``lease_us``."""
    if task.dispatch_deadline_us is not None:
        return deadlines * task.dispatch_deadline_us + slack_us
    return lease_us


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseAsk:
    """One lease's terms (SPEC 6): the keywords of :meth:`Leasing.lease` in one value."""

    queue: str
    now_us: int
    lease_us: int
    max_tasks: int
    group_by_tag: bool = False
    tag: bytes | None = None
    queue_retry_limit: int | None = None

    @property
    def lease_eta_us(self) -> int:
        """The ETA a task this lease takes gets: when the lease ends."""
        return self.now_us + self.lease_us

    def dead(self, task: models.Task) -> DeadTask | None:
        """``task`` as a dead letter if its next lease would pass its limit, else None."""
        if not over_lease_limit(task, self.queue_retry_limit):
            return None
        reason = lease_dead_reason(task, self.queue_retry_limit)
        return DeadTask(task=task, dead_us=self.now_us, reason=reason)


class Leasing(Protocol):
    """Leasing pull tasks: one keyword front over each backend's ``_lease``."""

    async def lease(
        self,
        queue: str,
        *,
        now_us: int,
        lease_us: int,
        max_tasks: int,
        group_by_tag: bool = False,
        tag: bytes | None = None,
        queue_retry_limit: int | None = None,
        dead_lettered: list[DeadTask] | None = None,
    ) -> list[models.Task]:
        """Lease available pull tasks (SPEC 6): ETA := now + lease, retry_count += 1.

        A task whose next lease would exceed its retry limit (its own ``retry_options`` or else
        ``queue_retry_limit``) moves to the dead letters (:func:`lease_dead_reason`; its retry
        count is its leases) and its name is tombstoned instead of being returned; each such
        task is appended to ``dead_lettered`` when given. With
        ``group_by_tag`` and no ``tag``, the earliest available task decides the tag (tasks
        without a tag form their own group).

        A backend implements ``_lease``; this keyword front is the same for every one.
        """
        ask = LeaseAsk(queue, now_us, lease_us, max_tasks, group_by_tag, tag, queue_retry_limit)
        leased, dead = await self._lease(ask)
        if dead_lettered is not None:
            dead_lettered.extend(dead)
        return leased

    async def _lease(self, ask: LeaseAsk) -> tuple[list[models.Task], list[DeadTask]]:
        """The tasks ``ask`` leased, and those it moved to the dead letters on the way."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class ClaimAsk:
    """One claim's terms: the keywords of :meth:`Claiming.claim_due` in one value."""

    queue: str
    now_us: int
    limit: int
    lease_us: int
    slack_us: int = 0
    deadlines: int = 1

    def terms(self) -> tuple[str, int, int, int, int, int]:
        return (self.queue, self.now_us, self.limit, self.lease_us, self.slack_us, self.deadlines)


class Claiming(Protocol):
    """Claiming due push tasks: one keyword front over each backend's ``_claim_due``."""

    async def claim_due(
        self,
        queue: str,
        *,
        now_us: int,
        limit: int,
        lease_us: int,
        slack_us: int = 0,
        deadlines: int = 1,
    ) -> list[Claimed]:
        """Take up to ``limit`` push tasks with ETA <= now, earliest first, leasing each.

        A task's lease runs for its own dispatch deadline plus ``slack_us``, or for
        ``lease_us`` when it has none (see :func:`lease_for`).
        """
        return await self._claim_due(ClaimAsk(queue, now_us, limit, lease_us, slack_us, deadlines))

    async def _claim_due(self, ask: ClaimAsk) -> list[Claimed]:
        """What a backend implements: :meth:`claim_due` with its terms in one value."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class ListAsk:
    """One page's terms: the keywords of :meth:`Listing.list_tasks` in one value."""

    queue: str
    limit: int = 100
    after_name: str | None = None
    prefix: str = ""
    tag: bytes | None = None


class Listing(Protocol):
    """Listing a queue's tasks: one keyword front over each backend's ``_list_tasks``."""

    async def list_tasks(
        self,
        queue: str,
        *,
        limit: int = 100,
        after_name: str | None = None,
        prefix: str = "",
        tag: bytes | None = None,
    ) -> list[models.Task]:
        """Tasks of one queue in name order, ``limit`` at a time, after ``after_name``; only
        those whose name starts with ``prefix``, and with ``tag`` unless it is None."""
        return await self._list_tasks(ListAsk(queue, limit, after_name, prefix, tag))

    async def _list_tasks(self, ask: ListAsk) -> list[models.Task]:
        """What a backend implements: :meth:`list_tasks` with its terms in one value."""
        ...


class SigningKeys(Protocol):
    """The OIDC signing keys (:mod:`pushd.oidc`), kept in the store so that every daemon of one
    store signs with the same key and publishes the same set."""

    async def signing_keys(self) -> list[models.SigningKey]:
        """Every stored key, oldest first: the current one (no ``retired_us``) last."""
        ...

    async def add_signing_key(self, key: models.SigningKey, *, rotate: bool) -> None:
        """Store ``key`` as the current key. Without ``rotate`` only if there is none yet (the
        first daemon to start makes it; another starting at once keeps the one stored first);
        with ``rotate`` the current key is retired at ``key.created_us`` first."""
        ...

    async def drop_signing_keys(self, *, retired_before_us: int) -> int:
        """Drop the keys retired before ``retired_before_us``; returns how many."""
        ...


class Store(Leasing, Claiming, Listing, SigningKeys, Protocol):
    """The verbs pushd needs from storage. All times are µs since the epoch."""

    # ---- producers
    async def add(self, tasks: Sequence[models.Task], *, now_us: int) -> list[models.AddResult]:
        """Insert each task unless its name is live (TaskAlreadyExistsError) or tombstoned."""
        ...

    async def get(self, queue: str, name: str) -> models.Task | None: ...

    async def tombstoned(self, queue: str, name: str, *, now_us: int) -> bool:
        """Whether ``name`` is no live task but was one within the tombstone retention
        (deleted, purged, run to success or to a dead letter)."""
        ...

    async def delete(
        self, queue: str, names: Sequence[str], *, now_us: int, pull: bool = False
    ) -> list[bool]:
        """Delete live tasks by name (tombstoning them); False for unknown or tombstoned names.

        ``pull``: they are a pull queue's, and a delete is its worker's acknowledgement: a
        store may answer before it is fsync'd (lost to a power cut, the task is leased again).
        """
        ...

    async def purge(self, queue: str, *, now_us: int) -> int:
        """Delete every task of the queue, tombstoning their names; returns how many."""
        ...

    async def run_now(self, queue: str, name: str, *, now_us: int) -> models.Task | None:
        """Make a stored task due at once (its ETA becomes ``now_us``); None if unknown.

        A pull task under a running lease raises :class:`errors.Error` (:func:`check_runnable`).
        """
        ...

    # ---- push delivery

    async def next_eta(self, queue: str) -> int | None:
        """The earliest ETA of the push tasks in the queue (claimed tasks count by their lease
        expiry): exactly the tasks :meth:`claim_due` takes, or the loop would never sleep."""
        ...

    async def stranded(self, modes: Mapping[str, models.QueueMode]) -> dict[str, int]:
        """Per queue of ``modes``, how many of its stored tasks a queue of that mode cannot run
        (pull tasks in a push queue, push tasks in a pull queue); queues with none left out.

        A reload refuses a mode change that would strand tasks; a start logs what is stranded.
        """
        ...

    async def step_back(
        self, queue: str, *, now_us: int, was_us: int, held: Collection[str]
    ) -> int:
        """The wall clock stepped back from ``was_us`` to ``now_us``: every push task that was
        due then (ETA in ``(now_us, was_us]``) and not in ``held`` (claims its dispatcher
        holds) has its ETA moved back by the step, so it stays due and in order. Returns how
        many."""
        ...

    async def unlisted(self, known: Collection[str]) -> dict[str, Holding]:
        """Every queue not in ``known`` that holds tasks or dead letters, with what it holds.

        Those are the queues removed from queue.yaml (App Engine kept their tasks): they stay
        listed, their tasks listable, deletable and purgeable. One read, whatever the count.
        """
        ...

    async def finish(self, outcomes: Sequence[Outcome], *, now_us: int) -> None:
        """Apply delivery outcomes, in one commit where the backend can."""
        ...

    # ---- pull queues (lease: Leasing)
    async def modify_lease(
        self, queue: str, name: str, *, current_eta_us: int, lease_us: int, now_us: int
    ) -> models.Task:
        """Renew or release a lease (SPEC 6). Raises UnknownTaskError, TombstonedTaskError or
        TaskLeaseExpiredError."""
        ...

    # ---- queue state
    async def set_paused(self, queue: str, paused: bool) -> None: ...

    async def paused_queues(self) -> set[str]: ...

    async def counts(self, queue: str) -> QueueCounts: ...

    async def total_bytes(self) -> int:
        """Bytes of all stored tasks (their App Engine size), for ``total_storage_limit``."""
        ...

    # ---- queues created through the Cloud Tasks API
    async def api_queues(self) -> list[models.ApiQueue]:
        """Every API queue (not those deleted), in name order."""
        ...

    async def save_api_queue(
        self, queue: models.ApiQueue, *, create: bool, now_us: int
    ) -> models.QueueSave:
        """Store ``queue`` (its ``created_us`` is ``now_us`` when it is new): with ``create``
        only when no such queue exists (EXISTS), else created or updated (the creation time
        kept). A name deleted less than ``models.API_QUEUE_TOMBSTONE_US`` ago is refused
        (RECENTLY_DELETED), as Cloud Tasks refuses it. On a shared store every daemon hears
        of the change (``Change("queues")``)."""
        ...

    async def delete_api_queue(self, name: str, *, now_us: int) -> bool:
        """Delete the API queue ``name`` with everything of it (tasks, their tombstones, dead
        letters, the paused flag: a queue made again later starts empty) and keep its name
        from reuse for ``models.API_QUEUE_TOMBSTONE_US``; False if there is no such queue."""
        ...

    # ---- dead letters
    async def list_dead(
        self, queue: str, *, limit: int = 100, after_name: str | None = None
    ) -> list[DeadTask]: ...

    async def get_dead(self, queue: str, name: str) -> DeadTask | None: ...

    async def redrive(self, queue: str, name: str, *, now_us: int) -> models.Task | None:
        """Put a dead task back as a fresh task due now (counters reset); None if unknown."""
        ...

    async def delete_dead(self, queue: str, name: str) -> bool: ...

    # ---- housekeeping
    async def expire(self, *, now_us: int) -> int:
        """Drop tombstones and dead letters older than their retention; returns how many."""
        ...

    async def close(self) -> None: ...


# Several daemons on one store (PostgreSQL): their seam lives in pushd.store.sharing.
