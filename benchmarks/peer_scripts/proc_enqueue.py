"""Apply procrastinate's schema, then defer N ``post_webhook`` jobs while no worker runs.

``proc_enqueue.py URL N [--batch B]``: job i POSTs 32 bytes to ``URL/<i>``; ``batch_defer_async``
with B jobs per call (1,000 by default), timed; prints ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from proc_app import app, post_webhook

BODY = "x" * 32


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("n", type=int)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        t0 = time.perf_counter()
        for start in range(0, args.n, args.batch):
            end = min(start + args.batch, args.n)
            await post_webhook.batch_defer_async(
                *({"url": f"{args.url}/{i}", "body": BODY} for i in range(start, end))
            )
        elapsed = time.perf_counter() - t0
    print("RESULT " + json.dumps({"n": args.n, "batch": args.batch, "enqueue_s": elapsed}))


if __name__ == "__main__":
    asyncio.run(main())
