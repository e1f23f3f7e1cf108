"""How many tasks each pull queue leased recently: App Engine's statistics of a pull queue
count leases where a push queue counts deliveries (SPEC 6)."""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pushd import clock, logs, metrics

if TYPE_CHECKING:
    from pushd.store import base

_BUCKET_US = clock.US_PER_SECOND
_MINUTE_US = 60 * clock.US_PER_SECOND
_HOUR_US = 3600 * clock.US_PER_SECOND


@dataclass(slots=True)
class _Buckets:
    # (second, tasks leased in that second), oldest first, at most an hour of them
    seconds: collections.deque[tuple[int, int]] = field(default_factory=collections.deque)


class LeaseMeter:
    """How many tasks each pull queue leased recently, in one-second buckets over an hour.

    Memory is bounded by 3600 buckets per queue whatever the lease rate.
    """

    def __init__(self, metrics_: metrics.Metrics | None = None) -> None:
        self._queues: dict[str, _Buckets] = {}
        self._metrics = metrics_

    def record(self, queue: str, count: int, now_us: int) -> None:
        if count <= 0:
            return
        if self._metrics is not None:
            self._metrics.record_leased(queue, count)
        buckets = self._queues.setdefault(queue, _Buckets()).seconds
        second = now_us // _BUCKET_US
        if buckets and buckets[-1][0] == second:
            buckets[-1] = (second, buckets[-1][1] + count)
        else:
            buckets.append((second, count))
        self._prune(buckets, now_us)

    def record_dead(self, dead: base.DeadTask) -> None:
        """A pull task over its lease limit moved to the dead letters."""
        logs.event(
            "task_dead_lettered",
            logging.WARNING,
            queue=dead.task.queue,
            task=dead.task.name,
            reason=dead.reason,
        )
        if self._metrics is not None:
            self._metrics.record_dead(dead.task.queue)

    def leased(self, queue: str, now_us: int, *, window_us: int) -> int:
        """Tasks leased from ``queue`` in the ``window_us`` before ``now_us`` (at most an hour)."""
        found = self._queues.get(queue)
        if found is None:
            return 0
        self._prune(found.seconds, now_us)
        first = (now_us - window_us) // _BUCKET_US
        return sum(count for second, count in found.seconds if second > first)

    def last_minute(self, queue: str, now_us: int) -> int:
        return self.leased(queue, now_us, window_us=_MINUTE_US)

    def last_hour(self, queue: str, now_us: int) -> int:
        return self.leased(queue, now_us, window_us=_HOUR_US)

    @staticmethod
    def _prune(buckets: collections.deque[tuple[int, int]], now_us: int) -> None:
        oldest = (now_us - _HOUR_US) // _BUCKET_US
        while buckets and buckets[0][0] <= oldest:
            buckets.popleft()
