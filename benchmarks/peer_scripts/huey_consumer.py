"""huey's stock ``huey_consumer`` CLI for ``huey_tasks.huey``, announcing when it started.

Arguments are the CLI's (``-w 8 -k thread -d 0.01 -m 0.1``). Once the workers are started it
prints ``listening url=sqlite:///DB started=EPOCH cpu=SECONDS``; ``started`` is taken just
before the workers start, ``cpu`` is this process's CPU time then (imports excluded).
"""

from __future__ import annotations

import os
import sys
import time

from huey.bin.huey_consumer import consumer_main
from huey.consumer import Consumer

_start = Consumer.start


def _start_and_announce(self: Consumer) -> None:
    started, cpu = time.time(), time.process_time()
    _start(self)
    db = os.environ["PUSHD_BENCH_HUEY_DB"]
    print(
        f"listening url=sqlite://{db} started={started:.6f} cpu={cpu:.3f} pid={os.getpid()}",
        flush=True,
    )


Consumer.start = _start_and_announce  # type: ignore[method-assign]
sys.argv = ["huey_consumer", "huey_tasks.huey", *sys.argv[1:]]
consumer_main()
