"""What every part of the service shares: the store, the scheduler's wake-up, the clock, the
metrics and the current queue.yaml; and the page, the unit every listing answers in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from pushd import clock, metrics, models
    from pushd.queue_yaml import config
    from pushd.service import engine, leases
    from pushd.store import base

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Parts:
    """The dependencies of the service, wired once by the daemon (or a test)."""

    store: base.Store
    clock: clock.Clock
    #: Called on every operation, so a reloaded queue.yaml applies at once.
    queues: Callable[[], config.QueuesConfig]
    engine: engine.Engine
    metrics: metrics.Metrics
    leases: leases.LeaseMeter
    #: Read the API queues again and run them (the daemon's; nothing to do without one).
    apply_api_queues: Callable[[], Awaitable[None]] = lambda: _nothing()

    def notify(self, task: models.Task) -> None:
        """Wake the scheduler for a push task that became due (pull tasks wait to be leased)."""
        if not task.is_pull:
            self.engine.notify(task.queue, task.eta_us)


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Up to ``limit`` items in name order, and the name to list after for the next page
    (None on the last page)."""

    items: list[T]
    next: str | None


def page_of(found: Sequence[T], limit: int, name_of: Callable[[T], str]) -> Page[T]:
    """The page of ``limit`` items out of ``limit + 1`` fetched: the extra one says more remain."""
    items = list(found[:limit])
    return Page(items, name_of(items[-1]) if items and len(found) > limit else None)
