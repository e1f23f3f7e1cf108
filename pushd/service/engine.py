"""What the service needs from the thing that delivers push tasks.

The service (and the APIs above it) never import :mod:`pushd.scheduler` (STYLE.md 2.3): the
daemon passes its ``Scheduler``, which satisfies :class:`Engine`, and tests pass a recording fake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pushd import models


class Engine(Protocol):
    """The scheduler's control surface as the service sees it."""

    def notify(self, queue: str, eta_us: int) -> None:
        """A task of ``queue`` became due at ``eta_us`` (added, run now, redriven)."""
        ...

    def forget(self, queue: str, names: Iterable[str] | None = None) -> None:
        """Tasks of ``queue`` were deleted (``names``) or purged (None): never send them."""
        ...

    async def pause(self, queue: str) -> None:
        """Stop dispatching ``queue`` (persisted in the store) until :meth:`resume`."""
        ...

    async def resume(self, queue: str) -> None: ...

    def live(self, queue: str) -> models.LiveStats:
        """What only the running scheduler knows: in flight, executed, enforced rate, paused."""
        ...
