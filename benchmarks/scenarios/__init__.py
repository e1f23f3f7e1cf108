"""The benchmark scenarios: each is ``async def run(ctx: Context) -> Result`` in its own module.

A scenario measures pushd and, in the same run against the same receiver, a baseline (the raw
aiohttp ceiling, a peer, or the configured value), and reports ratios, the issue's targets
(met or not) and its charts. :mod:`benchmarks.__main__` runs them and writes the results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import harness

if TYPE_CHECKING:
    import aiohttp

    from benchmarks.harness import Child
    from benchmarks.receivers import Receiver

#: name -> one line of what it measures; the module benchmarks.scenarios.<name> holds run().
SCENARIOS: dict[str, str] = {
    "enqueue": "adds/s: single adds with 32 clients, batches of 100, Python client, v1beta2, RPC",
    "delivery": "50,000 due tasks, unthrottled: deliveries/s against raw aiohttp and the peers",
    "backlog": "the same beside 1,000,000 future tasks: throughput, peak RSS, start-up, idle CPU",
    "eta": "1,000 tasks/s with countdowns over 20 s: lateness p50/p99/max",
    "rate": "queues at 1/s, 50/s, 500/s, small and large buckets: rate error, largest burst",
    "retry": "receiver fails 30% at random: throughput and retry-count correctness",
    "slow": "200 ms receiver, max_concurrent_requests 500: throughput vs concurrency/latency",
    "pull": "8 workers leasing and deleting: cycles/s and tasks/s",
    "scaleout": "4 queues on SQLite, PostgreSQL, 2 daemons on one PostgreSQL: deliveries/s, adds/s",
    "cloudtasks": "Cloud Tasks API, official client: create_task/s over gRPC and REST, deliveries",
}


@dataclass
class Target:
    """One of the issue's targets: ``value`` against ``target`` (``at_least`` or at most)."""

    name: str
    value: float
    target: float
    at_least: bool = True

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.at_least else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "met": self.met}


@dataclass
class Result:
    """What a scenario reports: a printable table, numbers, ratios, targets and charts."""

    scenario: str
    table: list[list[str]]  # the first row is the header
    data: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    charts: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What every scenario gets: scale, temp dir, the receiver, an HTTP session, output paths."""

    scale: str  # "smoke" (seconds, in make test), "quick" or "full"
    tmp: Path
    receiver: Receiver
    session: aiohttp.ClientSession
    out: Path  # results directory
    stamp: str  # date prefix of the output files
    peers: list[str] | None  # peers to run (None: every registered one); [] for none
    machine: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # figures one scenario leaves another

    def n(self, full: int, quick: int, smoke: int) -> int:
        return {"full": full, "quick": quick, "smoke": smoke}[self.scale]

    def run_dir(self, label: str) -> Path:
        path = self.tmp / label
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pushd(
        self, label: str, *, queue_yaml: str, settings_yaml: str, db: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[Child]:
        """A fresh ``pushd serve`` in ``tmp/<label>`` delivering to the receiver (on a SQLite
        file there, or on ``db``: a ``postgresql://`` URL)."""
        return harness.pushd(
            self.run_dir(label),
            queue_yaml=queue_yaml,
            settings_yaml=settings_yaml,
            target=self.receiver.url,
            label=label,
            db=db,
        )

    def chart(self, scenario: str, name: str) -> Path:
        return self.out / f"{self.stamp}-{scenario}-{name}.png"

    @property
    def note(self) -> str:
        m = self.machine
        return (
            f"{m.get('cpus')} CPUs, Python {m.get('python')}, receiver {self.receiver.kind}, "
            f"{self.stamp}"
        )


Runner = Callable[[Context], Awaitable[Result]]


def runner(name: str) -> Runner:
    module = importlib.import_module(f"benchmarks.scenarios.{name}")
    run: Runner = module.run
    return run
