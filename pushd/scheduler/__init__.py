"""The push scheduler: one loop per push queue, deliveries in flight, outcomes applied in bulk.

- :mod:`~pushd.scheduler.core`: :class:`Scheduler`, the control surface (notify, pause,
  reload, ownership, live figures), start and shutdown.
- :mod:`~pushd.scheduler.loops`: one loop per queue; it never polls (an idle daemon with a
  million future tasks sleeps until the first of them is due).
- :mod:`~pushd.scheduler.admission`: the daemon-wide cap on claimed tasks and the line of
  queues waiting for room; :mod:`~pushd.scheduler.queue`: one queue's state and its
  ``max_concurrent_requests`` slots.
- :mod:`~pushd.scheduler.delivery`: one delivery (slot, pace, connection, webhook);
  :mod:`~pushd.scheduler.outcomes`: an attempt to an outcome, a pure function;
  :mod:`~pushd.scheduler.flusher`: outcomes written in bulk, so many share a commit.
- :mod:`~pushd.scheduler.holds`: time and the claims this daemon holds.

Time: ETAs are wall-clock (the store's, shared with clients); everything else is a duration on
the monotonic clock: the buckets, pacing, the grace, and how long this daemon's claims last.
"""

from __future__ import annotations

from pushd.scheduler.core import RECONFIGURE_CHUNK, Scheduler
from pushd.scheduler.delivery import LOCAL_FAILURE_RETRY_US, Deliver
from pushd.scheduler.holds import CLAIM_DEADLINES, LEASE_SLACK_US

__all__ = [
    "CLAIM_DEADLINES",
    "LEASE_SLACK_US",
    "LOCAL_FAILURE_RETRY_US",
    "RECONFIGURE_CHUNK",
    "Deliver",
    "Scheduler",
]
