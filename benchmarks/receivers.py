"""The webhook receivers the scenarios deliver to: nginx when installed, else aiohttp.

(Interface only; the implementations are being written.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the receiver answered."""

    t: float  # arrival, epoch seconds (time.time()); µs resolution (aiohttp) or ms (nginx)
    path: str  # the request path, e.g. /hook/1 or /fail/30/x
    name: str  # X-AppEngine-TaskName, "" when absent
    queue: str  # X-AppEngine-QueueName, "" when absent
    retry: int  # X-AppEngine-TaskRetryCount, -1 when absent
    eta: float | None  # X-AppEngine-TaskETA (epoch seconds), None when absent
    status: int  # the status the receiver answered


class Receiver(Protocol):
    kind: str  # "nginx" or "aiohttp"
    url: str  # http://127.0.0.1:PORT, no trailing slash

    @property
    def pids(self) -> list[int]: ...

    def cpu_s(self) -> float:
        """User + system CPU seconds of the receiver's processes so far."""
        ...

    async def reset(self) -> None:
        """Forget every hit so far."""
        ...

    async def count(self) -> int:
        """Hits since the last reset."""
        ...

    async def hits(self) -> list[Hit]:
        """Every hit since the last reset, in arrival order."""
        ...

    async def wait_count(
        self, n: int, timeout_s: float, progress: Callable[[int], None] | None = None
    ) -> list[Hit]:
        """Wait until ``n`` hits arrived (``progress(count)`` on every poll); return the hits.

        Raises ``TimeoutError`` naming the count reached if ``timeout_s`` passes first.
        """
        ...
