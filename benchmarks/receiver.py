"""The benchmark's webhook receiver: a tiny aiohttp app in a process of its own.

It is PEERS.md's "common sink" plus what the benchmark needs to check itself: it counts every
POST, remembers the first and last arrival (``time.monotonic()``, which is system-wide on
Linux, so the benchmark process can compare it with its own clock), and counts distinct
``X-AppEngine-TaskName`` values so duplicate deliveries show. ``GET /stats`` reports,
``POST /_reset`` zeroes the counters between phases. Every other POST answers 200 ``ok``.

Run on its own: ``python -m benchmarks.receiver --port 0``; it prints one line
``listening url=http://127.0.0.1:PORT pid=PID`` on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time

from aiohttp import web

NAME_HEADER = "X-AppEngine-TaskName"


class Counter:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.names: set[str] = set()

    async def hook(self, request: web.Request) -> web.Response:
        await request.read()
        now = time.monotonic()
        self.count += 1
        if self.first is None:
            self.first = now
        self.last = now
        name = request.headers.get(NAME_HEADER)
        if name is not None:
            self.names.add(name)
        return web.Response(text="ok")

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "count": self.count,
                "distinct": len(self.names),
                "first": self.first,
                "last": self.last,
                "now": time.monotonic(),
            }
        )

    async def clear(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})


async def serve(host: str, port: int) -> None:
    counter = Counter()
    app = web.Application()
    app.router.add_get("/stats", counter.stats)
    app.router.add_post("/_reset", counter.clear)
    app.router.add_post("/{tail:.*}", counter.hook)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0]
    print(f"listening url=http://{bound[0]}:{bound[1]} pid={os.getpid()}", flush=True)
    try:
        await asyncio.Event().wait()  # until SIGTERM/SIGINT cancels us
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
