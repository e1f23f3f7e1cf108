"""What ``procrastinate --app=proc_app.app worker --concurrency C`` does, announcing its start.

``proc_worker.py C``: opens the app, prints ``listening url=DSN started=EPOCH cpu=SECONDS``
and runs the worker until SIGTERM/SIGINT (procrastinate's own handlers stop it gracefully).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from proc_app import app


async def main() -> None:
    concurrency = int(sys.argv[1])
    async with app.open_async():
        print(
            f"listening url={os.environ['PUSHD_BENCH_PG_DSN']} started={time.time():.6f}"
            f" cpu={time.process_time():.3f} pid={os.getpid()}",
            flush=True,
        )
        await app.run_worker_async(concurrency=concurrency, wait=True)


if __name__ == "__main__":
    asyncio.run(main())
