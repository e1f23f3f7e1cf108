"""The seam between daemons that share one store (PostgreSQL) or hold one alone (SQLite).

:class:`Shared` stores announce :class:`Change` s and hand out queue :class:`Ownership`;
:class:`Exclusive` ones give back a dead predecessor's claims. Re-exported by
:mod:`pushd.store.base`, where the rest of the storage seam is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pushd import models


@dataclass(frozen=True, slots=True)
class Change:
    """Something another daemon sharing the store must act on, announced by the store.

    ``due``: a push task of ``queue`` became due at ``eta_us`` (added, run now, redriven);
    ``paused``: the operator paused or resumed ``queue``; ``forget``: tasks ``names`` of
    ``queue`` were deleted (all of them, purged, when ``names`` is None); ``queues``: the
    Cloud Tasks API created, changed or deleted the queue ``queue`` (read them again).
    """

    kind: Literal["due", "paused", "forget", "queues"]
    queue: str
    eta_us: int | None = None
    paused: bool | None = None
    names: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Ownership:
    """Which push queues this daemon dispatches now, and what the others report of theirs."""

    owned: frozenset[str]
    others: Mapping[str, models.LiveStats]
    daemons: int  # live daemons sharing the store, this one included


@runtime_checkable
class Exclusive(Protocol):
    """A store only one daemon at a time may open (SQLite: a lock on the file)."""

    async def give_back_claims(self, *, now_us: int) -> int:
        """Make every push task claimed by an earlier daemon due at ``now_us`` at the latest
        (none is running: this one holds the store); how many there were."""
        ...


@runtime_checkable
class Shared(Protocol):
    """A store several daemons share (PostgreSQL): changes and queue ownership between them."""

    async def watch(self, on_change: Callable[[Change], None]) -> None:
        """Call ``on_change`` for each change any daemon commits from now on."""
        ...

    async def rewatch(self) -> bool:
        """Listen again if the connection :meth:`watch` listens on was lost; whether it was
        (changes made meanwhile were missed)."""
        ...

    async def own_queues(
        self,
        daemon: str,
        queues: Sequence[str],
        live: Mapping[str, models.LiveStats],
        *,
        ttl_us: int,
        take: bool = True,
    ) -> Ownership:
        """Renew this daemon's heartbeat and its hold on its fair share of ``queues`` (without
        ``take``: keep what it holds, take nothing new)."""
        ...

    async def leave(self, daemon: str) -> None:
        """Give back every queue this daemon holds (it is stopping)."""
        ...

    async def paused_queues(self) -> set[str]:
        """The queues the operator paused (any daemon)."""
        ...

    async def secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        """A secret every daemon of the store shares, made by ``make`` on first use."""
        ...
