"""The service layer: pushd's domain operations, one object under every API.

Like procrastinate's ``JobManager``, :class:`Service` holds the store, the scheduler's wake-up
(:class:`Engine`), the clock, the metrics and the current queue.yaml, and knows no wire format:
each API (native JSON, TaskQueue REST v1beta2, ``/rpc_http``, the console, ``/metrics``) is an
adapter that decodes its request, calls the service and encodes the answer. Its verbs are
grouped by what they act on:

* :attr:`Service.queues` (:mod:`.queues`): which queues exist, statistics, pause, resume, purge;
* :attr:`Service.tasks` (:mod:`.tasks`): add a batch, read, list, delete, run now;
* :attr:`Service.pull` (:mod:`.pull`): lease, renew, lease statistics;
* :attr:`Service.dead` (:mod:`.dead`): dead letters: read, list, redrive, delete;
* :attr:`Service.api_queues` (:mod:`.api_queues`): the queues the Cloud Tasks API creates.
* :attr:`Service.oidc` (:mod:`.oidc`): the OIDC ID tokens Cloud Tasks deliveries carry, and
  the keys they are signed with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pushd import metrics
from pushd.service import api_queues, dead, engine, leases, oidc, parts, pull, queues, tasks
from pushd.store import health

if TYPE_CHECKING:
    from pushd import clock
    from pushd.queue_yaml import config
    from pushd.store import base

Engine = engine.Engine
LeaseMeter = leases.LeaseMeter
Page = parts.Page
#: The most items one page of a listing holds, whatever the API.
MAX_PAGE_SIZE = 1000

__all__ = ["MAX_PAGE_SIZE", "Engine", "LeaseMeter", "Page", "Service"]


class Service:
    """pushd's domain operations over one store, for every API alike."""

    def __init__(
        self,
        *,
        store: base.Store,
        clock: clock.Clock,
        queues: Callable[[], config.QueuesConfig],
        engine: Engine,
        metrics_: metrics.Metrics | None = None,
        apply_api_queues: Callable[[], Awaitable[None]] | None = None,
        oidc_issuer: str | None = None,
    ) -> None:
        recorder = metrics_ or metrics.Metrics(clock)
        self.parts = parts.Parts(
            store=store,
            clock=clock,
            queues=queues,
            engine=engine,
            metrics=recorder,
            leases=leases.LeaseMeter(recorder),
            **({} if apply_api_queues is None else {"apply_api_queues": apply_api_queues}),
        )
        self.queues = _queues(self.parts)  # the argument ``queues`` hides the module
        self.tasks = tasks.Tasks(self.parts)
        self.pull = pull.Pull(self.parts)
        self.dead = dead.DeadLetters(self.parts)
        self.api_queues = api_queues.ApiQueues(self.parts)
        self.oidc = oidc.Oidc(store=store, clock=clock, issuer=oidc_issuer)

    @property
    def clock(self) -> clock.Clock:
        return self.parts.clock

    @property
    def metrics(self) -> metrics.Metrics:
        return self.parts.metrics

    def now_us(self) -> int:
        return self.parts.clock.now_us()

    def problem(self) -> str | None:
        """Why the store cannot be written or read now (a full disk, a damaged file), or None
        while it works."""
        store = self.parts.store
        return store.problem if isinstance(store, health.Watched) else None


def _queues(parts_: parts.Parts) -> queues.Queues:
    return queues.Queues(parts_)
