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

import bisect
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio.lowlevel
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from pushd import clock

if TYPE_CHECKING:
    from prometheus_client.metrics import MetricWrapperBase

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
    removed: bool = False  # gone from queue.yaml, its tasks kept


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
        self._pending: dict[str, _Pending] = {}  # attempts not yet handed to the histograms
        # First in the registry: whoever collects it (generate_latest) sees every attempt
        # recorded so far.
        r.register(_Flush(self))
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
        self._added: dict[str, Counter] = {}  # labelled children, as _series
        self._leased: dict[str, Counter] = {}
        #: What the scheduler and the APIs record, in exposition order.
        self._recorded: tuple[MetricWrapperBase, ...] = (
            self.added,
            self.delivered,
            self.retried,
            self.failed,
            self.dead,
            self.leased,
            self.latency,
            self.lateness,
        )

    # ---- recording
    def record_added(self, queue: str, count: int = 1) -> None:
        child = self._added.get(queue)
        if child is None:  # labels() takes a lock and a lookup each: once per queue
            child = self._added[queue] = self.added.labels(queue)
        child.inc(count)

    def record_leased(self, queue: str, count: int) -> None:
        child = self._leased.get(queue)
        if child is None:
            child = self._leased[queue] = self.leased.labels(queue)
        child.inc(count)

    def record_attempt(
        self, queue: str, *, status: int | None, ok: bool, latency_s: float, lateness_s: float
    ) -> None:
        """One delivery attempt ended (whatever its outcome); called for every delivery.

        The two histograms and the delivered counter are counted in plain integers of the
        queue's :class:`_Pending` (a bisect and three additions) and handed to
        prometheus_client a batch at a time (:meth:`flush`: before every exposition, and every
        ``FLUSH_EVERY`` attempts): its ``observe`` and ``inc`` take a lock and walk the buckets
        each, a tenth of the event loop's own work per delivery."""
        pending = self._pending.get(queue)
        if pending is None:
            pending = self._pending[queue] = _Pending()
        pending.latency[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
        pending.latency_sum += latency_s
        if lateness_s > 0.0:
            pending.lateness[bisect.bisect_left(LATENESS_BUCKETS_S, lateness_s)] += 1
            pending.lateness_sum += lateness_s
        else:
            pending.lateness[0] += 1
        step = self._step(queue)
        if ok:
            pending.delivered += 1
            step.delivered += 1
        else:
            self.failed.labels(queue, status_class(status)).inc()
            step.failed += 1
        pending.count += 1
        if pending.count >= FLUSH_EVERY:
            self._flush_queue(queue, pending)

    def flush(self) -> None:
        """Hand every queue's counted attempts to prometheus_client (before an exposition)."""
        for queue, pending in self._pending.items():
            if pending.count:
                self._flush_queue(queue, pending)

    def _flush_queue(self, queue: str, pending: _Pending) -> None:
        series = self._series.get(queue)
        if series is None:  # labels() takes a lock and a lookup each: once per queue
            series = self._series[queue] = (
                self.latency.labels(queue),
                self.lateness.labels(queue),
                self.delivered.labels(queue),
            )
        latency, lateness, delivered = series
        _add_observed(latency, pending.latency, pending.latency_sum)
        _add_observed(lateness, pending.lateness, pending.lateness_sum)
        if pending.delivered:
            delivered.inc(pending.delivered)
        self._pending[queue] = _Pending()

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
        ``hidden`` queues (those the caller's token may not see)."""
        return "".join(self._pieces(gauges, frozenset(hidden))).encode("utf-8")

    async def render_async(
        self, gauges: Mapping[str, QueueGauges], hidden: Collection[str] = frozenset()
    ) -> bytes:
        """:meth:`render`, giving the event loop a turn after each ``SLICE`` queues of a metric.

        At 5,000 queues with deliveries the text is some 14 MB and takes over a second to
        build; in one go (or in a worker thread, which holds the GIL against the loop) it would
        stall every delivery and request meanwhile.
        """
        parts = []
        for piece in self._pieces(gauges, frozenset(hidden)):
            parts.append(piece)
            await anyio.lowlevel.checkpoint()
        return "".join(parts).encode("utf-8")

    def _pieces(self, gauges: Mapping[str, QueueGauges], hidden: frozenset[str]) -> Iterator[str]:
        """The exposition a slice at a time: each recorded metric's series ``SLICE`` queues
        at a time, then the gauges, built from ``gauges`` alone (so a queue gone is gone)."""
        self.flush()
        for wrapper in self._recorded:
            yield from _series_text(wrapper, hidden)
        shown = [(q, g) for q, g in gauges.items() if q not in hidden]
        for name, help_text, read in _GAUGES:
            for start in range(0, max(1, len(shown)), SLICE):
                family = GaugeMetricFamily(name, help_text, labels=["queue"])
                for queue, g in shown[start : start + SLICE]:
                    family.add_metric([queue], read(g))
                text = _text(family)
                yield text if start == 0 else _samples_only(text)


#: Queues per slice of the exposition: under 10 ms of work for a histogram.
SLICE = 50
#: Attempts of a queue counted before they are handed to prometheus_client unasked.
FLUSH_EVERY = 256


@dataclass(slots=True)
class _Pending:
    """A queue's attempts since the last flush: per bucket (the last: beyond every bound)."""

    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    lateness: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BUCKETS_S) + 1))
    latency_sum: float = 0.0
    lateness_sum: float = 0.0
    delivered: int = 0
    count: int = 0


def _add_observed(histogram: Histogram, counts: list[int], total: float) -> None:
    """Add per-bucket ``counts`` and their ``total`` to a histogram's child, as that many
    ``observe`` calls would (its buckets end with ``+Inf``: one per count)."""
    buckets = histogram._buckets
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
    histogram._sum.inc(total)


class _Flush:
    """Collects nothing: flushes the pending attempts before the registry's other collectors."""

    def __init__(self, owner: Metrics) -> None:
        self._owner = owner

    def collect(self) -> list[Metric]:
        self._owner.flush()
        return []


class _One:
    """One family as a collector, for ``generate_latest``."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> list[Metric]:
        return [self.family]


def _text(family: Metric) -> str:
    return generate_latest(_One(family)).decode("utf-8")


def _samples_only(text: str) -> str:
    """``text`` less its ``# HELP`` and ``# TYPE`` lines (a later slice of a family)."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))


def _series_text(wrapper: MetricWrapperBase, hidden: frozenset[str]) -> Iterator[str]:
    """A recorded metric's exposition, ``SLICE`` series at a time, without the ``hidden``
    queues' series (the queue is every metric's first label).

    ``collect()`` would build every series of the metric at once (a third of a second for a
    histogram of 5,000 queues), so the series are read child by child, as it reads them. The
    text format puts the ``_created`` samples in a family of their own after the metric's:
    they are held back and written after the last slice.
    """
    with wrapper._lock:  # as collect() does: the children may grow meanwhile
        children = [(k, c) for k, c in wrapper._metrics.items() if k[0] not in hidden]
    created_head, created = "", []
    kind = wrapper._type or "untyped"  # every wrapper of Metrics has one
    for start in range(0, max(1, len(children)), SLICE):
        family = Metric(wrapper._name, wrapper._documentation, kind, wrapper._unit)
        for labels, child in children[start : start + SLICE]:
            series = list(zip(wrapper._labelnames, labels, strict=True))
            for suffix, more, value, timestamp, exemplar, native in child._samples():
                family.add_sample(
                    wrapper._name + suffix,
                    dict(series + list(more.items())),
                    value,
                    timestamp,
                    exemplar,
                    native,
                )
        main, _, rest = _text(family).partition(f"# HELP {wrapper._name}_created ")
        yield main if start == 0 else _samples_only(main)
        if rest:
            head, _, tail = rest.partition("\n")  # the rest of the HELP line
            type_line, _, lines = tail.partition("\n")
            created_head = f"# HELP {wrapper._name}_created {head}\n{type_line}\n"
            created.append(lines)
    if created:
        yield created_head + "".join(created)


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
    (
        "pushd_queue_removed",
        "1 when gone from queue.yaml (its tasks are kept; paused).",
        lambda g: int(g.removed),
    ),
)
