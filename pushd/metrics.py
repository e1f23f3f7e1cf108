"""What the daemon counts as it works: Prometheus metrics, and the console's recent history.

The scheduler and the APIs call the ``record_*`` methods as things happen (a few dict lookups
and additions each); ``GET /metrics`` renders the counters and histograms, plus gauges read at
scrape time (:meth:`Metrics.render` takes them from the caller, who asks the store and the
scheduler). Every metric is labelled by ``queue``; the failed-attempt counter also by
``status_class`` (``4xx``, ``5xx``, ``3xx`` for an unfollowed redirect, or ``none`` when no
answer came: connection refused, reset, deadline).

The console draws each queue's deliveries and failures over the last minutes from
:meth:`Metrics.history`: counts in ``HISTORY_STEP_S`` buckets, ``HISTORY_STEPS`` of them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from pushd import clock

HISTORY_STEP_S = 10
HISTORY_STEPS = 60  # ten minutes
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 600)
LATENESS_BUCKETS_S = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 600, 3600)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class QueueGauges:
    """A queue's state at scrape time."""

    waiting: int  # tasks stored
    in_flight: int
    enforced_rate: float  # tasks/s; 0 for pull queues
    oldest_eta_age_s: float  # how long the earliest ETA is past (0 if in the future or none)
    paused: bool
    dead_letters: int


@dataclass(slots=True)
class Step:
    """One bucket of a queue's history."""

    start_s: int  # epoch seconds, a multiple of HISTORY_STEP_S
    delivered: int = 0
    failed: int = 0


def status_class(status: int | None) -> str:
    return "none" if status is None else f"{status // 100}xx"


class Metrics:
    """The daemon's counters; one per daemon (tests make their own)."""

    def __init__(self, clock_: clock.Clock | None = None) -> None:
        self.clock = clock_ or clock.SystemClock()
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.added = Counter("pushd_tasks_added", "Tasks added.", ["queue"], registry=r)
        self.delivered = Counter(
            "pushd_tasks_delivered", "Deliveries answered with a 2xx.", ["queue"], registry=r
        )
        self.retried = Counter(
            "pushd_tasks_retried", "Failed attempts scheduled to run again.", ["queue"], registry=r
        )
        self.failed = Counter(
            "pushd_attempts_failed",
            "Failed delivery attempts, by status class (none: no answer).",
            ["queue", "status_class"],
            registry=r,
        )
        self.dead = Counter(
            "pushd_tasks_dead_lettered", "Tasks out of retries.", ["queue"], registry=r
        )
        self.leased = Counter("pushd_tasks_leased", "Pull tasks leased.", ["queue"], registry=r)
        self.latency = Histogram(
            "pushd_delivery_latency_seconds",
            "Time from sending a task to its answer (or the deadline).",
            ["queue"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.lateness = Histogram(
            "pushd_eta_lateness_seconds",
            "Time from a task's ETA to the start of its delivery.",
            ["queue"],
            buckets=LATENESS_BUCKETS_S,
            registry=r,
        )
        self._history: dict[str, deque[Step]] = {}
        self._series: dict[str, tuple[Histogram, Histogram, Counter]] = {}
        self._render_lock = threading.Lock()

    # ---- recording
    def record_added(self, queue: str, count: int = 1) -> None:
        self.added.labels(queue).inc(count)

    def record_leased(self, queue: str, count: int) -> None:
        self.leased.labels(queue).inc(count)

    def record_attempt(
        self, queue: str, *, status: int | None, ok: bool, latency_s: float, lateness_s: float
    ) -> None:
        """One delivery attempt ended (whatever its outcome); called for every delivery."""
        series = self._series.get(queue)
        if series is None:  # labels() takes a lock and a lookup each: once per queue
            series = self._series[queue] = (
                self.latency.labels(queue),
                self.lateness.labels(queue),
                self.delivered.labels(queue),
            )
        latency, lateness, delivered = series
        latency.observe(latency_s)
        lateness.observe(max(0.0, lateness_s))
        step = self._step(queue)
        if ok:
            delivered.inc()
            step.delivered += 1
        else:
            self.failed.labels(queue, status_class(status)).inc()
            step.failed += 1

    def record_retry(self, queue: str) -> None:
        self.retried.labels(queue).inc()

    def record_dead(self, queue: str) -> None:
        self.dead.labels(queue).inc()

    # ---- history (the console)
    def _step(self, queue: str) -> Step:
        now_s = self.clock.now_us() // clock.US_PER_SECOND
        start = now_s - now_s % HISTORY_STEP_S
        steps = self._history.get(queue)
        if steps is None:
            steps = self._history[queue] = deque(maxlen=HISTORY_STEPS)
        if not steps or steps[-1].start_s != start:
            steps.append(Step(start))
        return steps[-1]

    def history(self, queue: str) -> list[Step]:
        """The last ``HISTORY_STEPS`` buckets, oldest first, empty ones included."""
        now_s = self.clock.now_us() // clock.US_PER_SECOND
        last = now_s - now_s % HISTORY_STEP_S
        kept = {s.start_s: s for s in self._history.get(queue, ())}
        first = last - (HISTORY_STEPS - 1) * HISTORY_STEP_S
        return [kept.get(t, Step(t)) for t in range(first, last + HISTORY_STEP_S, HISTORY_STEP_S)]

    # ---- exposition
    def render(
        self, gauges: Mapping[str, QueueGauges], hidden: Collection[str] = frozenset()
    ) -> bytes:
        """The Prometheus text format, with ``gauges`` for the queues that exist now (queues
        gone from queue.yaml drop out of the gauges; their counters stay) and nothing of the
        ``hidden`` queues (those the caller's token may not see).

        At thousands of queues this takes a good part of a second, so the API runs it in a
        worker thread (:func:`asyncio.to_thread`): it only reads the counters, whose updates
        the metrics library locks, and builds the gauges from ``gauges`` alone.
        """
        with self._render_lock:  # one exposition at a time: each walks every series
            return generate_latest(_Exposition(self.registry, gauges, frozenset(hidden)))


#: The gauges: (name, help, how to read it from QueueGauges).
_GAUGES: tuple[tuple[str, str, Callable[[QueueGauges], float]], ...] = (
    ("pushd_tasks_waiting", "Tasks stored.", lambda g: g.waiting),
    ("pushd_tasks_in_flight", "Deliveries under way.", lambda g: g.in_flight),
    ("pushd_enforced_rate", "Rate enforced now (tasks/s).", lambda g: g.enforced_rate),
    (
        "pushd_oldest_eta_age_seconds",
        "How long the earliest ETA of the queue is past.",
        lambda g: g.oldest_eta_age_s,
    ),
    ("pushd_queue_paused", "1 when paused.", lambda g: int(g.paused)),
    ("pushd_dead_letters", "Dead letters kept.", lambda g: g.dead_letters),
)


class _Exposition:
    """What one scrape shows: the recorded series less the hidden queues', then the gauges
    built from the caller's figures (never stored, so a queue gone is gone at once)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        gauges: Mapping[str, QueueGauges],
        hidden: frozenset[str],
    ) -> None:
        self.registry, self.gauges, self.hidden = registry, gauges, hidden

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            if self.hidden:
                family.samples = [
                    s for s in family.samples if s.labels.get("queue") not in self.hidden
                ]
            yield family
        shown = [(q, g) for q, g in self.gauges.items() if q not in self.hidden]
        for name, help_text, read in _GAUGES:
            family = GaugeMetricFamily(name, help_text, labels=["queue"])
            for queue, g in shown:
                family.add_metric([queue], read(g))
            yield family
