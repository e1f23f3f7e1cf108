"""Campaign: the wall clock steps under a running daemon (NTP, a VM resumed, ``date``).

The real daemon runs under libfaketime (Debian's ``faketime`` package): ``LD_PRELOAD`` of
libfaketime with ``FAKETIME_TIMESTAMP_FILE`` holding an offset the test rewrites (re-read on
every call: ``FAKETIME_NO_CACHE``) and ``DONT_FAKE_MONOTONIC``, so only the wall clock steps,
as NTP would. Each fault runs under uvloop and asyncio's own loop:

* forward two hours: a task due in two hours is delivered within about a second (it is
  overdue); a request out while the clock jumps is not sent a second time;
* back one hour: a rate-limited backlog keeps flowing at its rate (neither the buckets nor the
  tasks that were due wait for the hour to pass).

The figures (delay after a forward step, deliveries after a backward one) go to
docs/RELIABILITY.md; the bounds asserted here are generous: the old daemon missed them by hours.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.harness import Daemon, Receiver, api
from tests.reliability.conftest import scale

if TYPE_CHECKING:
    import aiohttp

    from tests.integration.conftest import StartDaemon

#: Debian's libfaketime, under the machine's multiarch folder (x86_64-linux-gnu, aarch64-...).
LIBFAKETIME = next(
    iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))),
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
)
HOUR_S = 3600
#: How long a test waits for what should take about a second (a missed step takes hours).
WAIT_S = 20.0

pytestmark = [
    pytest.mark.timeout(scale(60, 300)),
    pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"]),
]


@pytest.fixture
def offset_file(tmp_path: Path) -> Path:
    if not LIBFAKETIME.exists():
        message = f"{LIBFAKETIME} is missing: apt-get install faketime"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    path = tmp_path / "faketime-offset"
    path.write_text("+0\n")
    return path


def faked(offset_file: Path, event_loop: str) -> dict[str, str]:
    """The daemon's environment: only its wall clock follows ``offset_file``."""
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
        "DONT_FAKE_MONOTONIC": "1",
        "PUSHD_EVENT_LOOP": event_loop,
    }


def step(offset_file: Path, seconds: int) -> None:
    """Step the daemon's wall clock to ``seconds`` from the real one (atomically)."""
    tmp = offset_file.with_suffix(".new")
    tmp.write_text(f"{seconds:+d}\n")
    tmp.replace(offset_file)


async def add(session: aiohttp.ClientSession, d: Daemon, *tasks: dict[str, object]) -> None:
    status, body = await api(
        session, d, "POST", "/api/v1/queues/work/tasks", json={"tasks": list(tasks)}
    )
    assert status == 200, body
    assert all(t["result"] == "OK" for t in body["tasks"]), body


async def stored(session: aiohttp.ClientSession, d: Daemon) -> int:
    _, info = await api(session, d, "GET", "/api/v1/queues/work")
    return int(info["stats"]["tasks"])


def names(receiver: Receiver) -> list[str]:
    return [x.headers["X-AppEngine-TaskName"] for x in receiver.deliveries]


async def test_a_forward_step_makes_an_overdue_task_due_within_a_second(
    start_daemon: StartDaemon,
    receiver: Receiver,
    session: aiohttp.ClientSession,
    offset_file: Path,
    event_loop: str,
) -> None:
    d = await start_daemon(
        "queue:\n- name: work\n  rate: 50/s\n", env=faked(offset_file, event_loop)
    )
    await add(session, d, {"name": "later", "countdown": 2 * HOUR_S})
    await asyncio.sleep(0.2)  # the queue's loop is asleep until the ETA, two hours away
    assert receiver.deliveries == []
    stepped = time.monotonic()
    step(offset_file, 2 * HOUR_S + 1)
    [delivery] = await receiver.wait_for(1, timeout_s=WAIT_S)
    delay = delivery.started_at - stepped
    print(f"forward step of 2 h ({event_loop}): overdue task delivered {delay:.3f} s later")
    assert names(receiver) == ["later"]


async def test_a_request_out_during_a_forward_step_is_not_sent_again(
    start_daemon: StartDaemon,
    receiver: Receiver,
    session: aiohttp.ClientSession,
    offset_file: Path,
    event_loop: str,
) -> None:
    """The claim on "slow" ends in the store when the clock jumps past it, and another add
    wakes the queue at once: the daemon keeps its own claim, "slow" goes out once, is done."""
    receiver.delay_s = 3.0  # every request stays out for 3 s
    d = await start_daemon(
        "queue:\n- name: work\n  rate: 50/s\n", env=faked(offset_file, event_loop)
    )
    await add(session, d, {"name": "slow"})
    await receiver.wait_started(1, timeout_s=WAIT_S)
    step(offset_file, 2 * HOUR_S)
    # An ETA already past: it wakes the queue whatever it planned (the old daemon then claimed
    # "slow" again, its lease over by the stepped clock, and sent it a second time).
    await add(session, d, {"name": "next", "eta": time.time() - 60})
    await receiver.wait_for(2, timeout_s=WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while await stored(session, d) and time.monotonic() < deadline:  # noqa: ASYNC110 (no event)
        await asyncio.sleep(0.05)
    assert await stored(session, d) == 0
    assert receiver.started == 2, f"sent {receiver.started} times: {names(receiver)}"
    assert sorted(names(receiver)) == ["next", "slow"]


async def test_a_backward_step_delays_nothing_that_was_due(
    start_daemon: StartDaemon,
    receiver: Receiver,
    session: aiohttp.ClientSession,
    offset_file: Path,
    event_loop: str,
) -> None:
    count = scale(20, 100)
    d = await start_daemon(
        "queue:\n- name: work\n  rate: 10/s\n  bucket_size: 1\n",
        env=faked(offset_file, event_loop),
    )
    await add(session, d, *({"name": f"t{i}"} for i in range(count)))
    await receiver.wait_for(3, timeout_s=WAIT_S)
    stepped = time.monotonic()
    step(offset_file, -HOUR_S)
    deliveries = await receiver.wait_for(count, timeout_s=WAIT_S)
    after = [x for x in deliveries if x.started_at >= stepped]
    span = max(x.started_at for x in after) - stepped
    print(
        f"backward step of 1 h ({event_loop}): {len(after)} deliveries in the {span:.2f} s"
        f" after it, at 10/s"
    )
    assert sorted(names(receiver)) == sorted(f"t{i}" for i in range(count))  # once each
