"""``pushd.taskqueue`` + ``pushd serve`` behave as App Engine's client + App Engine's stub.

One scenario (:mod:`tests.oracle.taskqueue_scenario`: adds, batch results, name clashes and
tombstones, deletes, leases, tags, lease limits, purge, statistics and the errors of each) runs
twice: in the oracle venv with ``google.appengine.api.taskqueue`` against the SDK's
``TaskQueueServiceStub`` (:mod:`tests.oracle.taskqueue_stub_oracle`), and here with
``pushd.taskqueue`` against a real daemon subprocess on 127.0.0.1. Every observation must be
equal, except those in :data:`KNOWN_DIFFERENCES`, which must differ exactly as listed (so the
test notices when one stops differing).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest

from pushd import taskqueue
from tests.oracle import taskqueue_scenario as scenario
from tests.oracle.runner import run_oracle

if TYPE_CHECKING:
    from tests.integration.harness import Daemon

pytestmark = pytest.mark.oracle

MISSING = "<no such observation>"

#: label -> (App Engine's value, pushd's value, why they differ on purpose): the ones that
#: follow from SPEC choices, whichever client talks to pushd (also over /rpc_http).
SPEC_DIFFERENCES: dict[str, tuple[Any, Any, str]] = {
    "stats of unknown queue": (
        "ok",
        "UnknownQueueError",
        "SPEC 10 Q16: statistics of an unknown queue raise UnknownQueueError; the stub answers "
        "zeros for any name",
    ),
    "stats of unknown queue: values": (
        [0, None],
        MISSING,
        "follows from Q16 (pushd raised, so there are no values)",
    ),
    "untagged earliest, max 2: names": (
        ["u-4"],
        ["u-4", "u-5"],
        "SPEC 6 (best effort): with tag=None and an untagged earliest task, the stub scans only "
        "the first max_tasks due tasks and keeps the untagged ones among them; pushd leases up "
        "to max_tasks untagged tasks (both lease every untagged task in the end)",
    ),
}

#: label -> (App Engine's value, pushd's value, why they differ on purpose)
KNOWN_DIFFERENCES: dict[str, tuple[Any, Any, str]] = {
    "modify unknown task": (
        "Error",
        "UnknownTaskError",
        "pushd raises its UnknownTaskError, a subclass of Error, for UNKNOWN_TASK where App "
        "Engine's client raises the generic Error (pushd.errors); `except taskqueue.Error` "
        "catches both",
    ),
    **SPEC_DIFFERENCES,
}

#: label -> (App Engine's value, pushd's value, the bug): pushd bugs found by this test and not
#: fixed yet; the test fails once a fix makes pushd agree, as a reminder to drop the entry.
#: Empty: the one found (a 0 s lease handing a task out several times in one SQLite call) is
#: fixed, with its regression test in tests/contract.
KNOWN_BUGS: dict[str, tuple[Any, Any, str]] = {}


def _run_pushd(url: str) -> list[list[Any]]:
    taskqueue.configure(url=url)
    try:
        return scenario.run(taskqueue)
    finally:
        taskqueue.configure()


def differences(
    oracle: list[list[Any]],
    ours: list[list[Any]],
    known: dict[str, tuple[Any, Any, str]],
    bugs: dict[str, tuple[Any, Any, str]] | None = None,
) -> tuple[list[str], int]:
    """Every observation where App Engine and pushd differ unexpectedly (or a listed difference
    or bug changed), and how many observations are shared and expected to be equal."""
    bugs = bugs or {}
    theirs, mine = _as_dict(oracle), _as_dict(ours)
    labels = list(dict.fromkeys([*theirs, *mine]))
    problems: list[str] = []
    for label in labels:
        got = (theirs.get(label, MISSING), mine.get(label, MISSING))
        if label in known or label in bugs:
            expected = {**known, **bugs}[label][:2]
            if got != expected:
                kind = "difference" if label in known else "bug"
                problems.append(f"{label}: known {kind} changed: App Engine, pushd = {got}")
        elif got[0] != got[1]:
            problems.append(
                f"{label}:\n  App Engine: {json.dumps(got[0])}\n  pushd:      {json.dumps(got[1])}"
            )
    return problems, len(labels) - len(known) - len(bugs)


def _as_dict(observations: list[list[Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for label, value in observations:
        assert label not in found, f"label {label!r} observed twice"
        found[label] = value
    return found


async def test_pushd_observes_what_app_engine_observes(daemon: Daemon) -> None:
    oracle, ours = await asyncio.gather(
        asyncio.to_thread(
            run_oracle, "taskqueue_stub_oracle.py", {"queue_yaml": scenario.QUEUE_YAML}
        ),
        asyncio.to_thread(_run_pushd, daemon.url),
    )
    problems, shared = differences(oracle["observations"], ours, KNOWN_DIFFERENCES, KNOWN_BUGS)
    assert not problems, "\n".join(problems)
    # The scenario really ran on both sides: most observations are shared and equal.
    assert shared >= 150
