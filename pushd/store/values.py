"""The store protocol's values: claims, delivery outcomes, dead letters and queue counts.

They travel between the scheduler, the APIs and every backend (:mod:`pushd.store.base`
re-exports each of them, where they were first defined).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pushd import models


@dataclass(frozen=True, slots=True)
class Claimed:
    """A push task taken for delivery. ``task.eta_us`` is the ETA it was due at."""

    task: models.Task
    lease_eta_us: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Done:
    """The delivery succeeded: delete the task and tombstone its name."""

    queue: str
    name: str
    lease_eta_us: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """The delivery failed and the task runs again at ``eta_us``."""

    queue: str
    name: str
    lease_eta_us: int
    eta_us: int
    retry_count: int
    execution_count: int
    first_try_us: int | None  # None: a claim given back unsent (no attempt made)
    last_status: int | None
    last_attempt: models.LastAttempt | None = None  # kept as it was when given back unsent


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """The task ran out of retries: move it to the dead-letter list and tombstone its name."""

    queue: str
    name: str
    lease_eta_us: int
    retry_count: int
    execution_count: int
    first_try_us: int
    last_status: int | None
    reason: str
    last_attempt: models.LastAttempt | None = None


Outcome = Done | Retry | DeadLetter


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadTask:
    """A task that ran out of retries, kept for inspection and redrive."""

    task: models.Task
    dead_us: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCounts:
    """What the store knows about one queue (the scheduler adds the live counters)."""

    tasks: int = 0
    oldest_eta_us: int | None = None
    dead_letters: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Holding:
    """What a queue missing from queue.yaml still holds (it is shown as removed)."""

    tasks: int = 0
    dead_letters: int = 0
    pull: bool = False  # its earliest task is a pull task (no task: False)
