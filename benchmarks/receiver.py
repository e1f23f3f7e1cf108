"""The benchmark's webhook receiver: a tiny aiohttp app in a process of its own.

It is PEERS.md's "common sink" plus what the benchmark needs to check itself: it counts every
request, remembers the first and last arrival (``time.monotonic()``, which is system-wide on
Linux, so the benchmark process can compare it with its own clock), and counts distinct
``X-AppEngine-TaskName`` values so duplicate deliveries show. It also records every request as
a hit (arrival ``time.time()``, path, the four ``X-AppEngine-*`` task headers, status answered)
for :class:`benchmarks.receivers.AiohttpReceiver`.

Control endpoints (never recorded):

* ``GET /stats``: ``{"count", "distinct", "first", "last", "now"}``
* ``GET /_hits?since=K``: the hits from index ``K`` on, in the order they were answered, as a
  JSON list of ``[t, path, name, queue, retry, eta, status]`` (headers as sent, ``""`` when
  absent)
* ``POST /_reset``: forget every count and hit

Every other request, whatever its method, has its body read and then, by path:

* ``/fail/<pct>/...``: 500 to ``pct`` % of requests at random (``pct`` an integer 0..100), else 200
* ``/slow/<ms>/...``: 200 after ``ms`` milliseconds
* anything else: 200 ``ok``

(a malformed ``<pct>`` or ``<ms>`` answers 400). Run on its own:
``python -m benchmarks.receiver --port 0``; it prints one line
``listening url=http://127.0.0.1:PORT pid=PID`` on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import time

import orjson
from aiohttp import web

NAME_HEADER = "X-AppEngine-TaskName"
QUEUE_HEADER = "X-AppEngine-QueueName"
RETRY_HEADER = "X-AppEngine-TaskRetryCount"
ETA_HEADER = "X-AppEngine-TaskETA"
PERCENTS = frozenset(str(p) for p in range(101))  # what /fail/<pct>/ accepts

# One recorded request: (t, path, name, queue, retry, eta, status).
Row = tuple[float, str, str, str, str, str, int]


class Counter:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.names: set[str] = set()
        self.hits: list[Row] = []

    async def hook(self, request: web.Request) -> web.Response:
        t = time.time()
        now = time.monotonic()
        await request.read()
        path = request.raw_path.partition("?")[0]
        status, text = 200, "ok"
        if path.startswith("/fail/"):
            pct = path.split("/", 3)[2]
            if pct not in PERCENTS:
                status, text = 400, f"bad percentage {pct!r}: want an integer 0..100"
            elif random.random() * 100 < int(pct):
                status, text = 500, "fail"
        elif path.startswith("/slow/"):
            ms = path.split("/", 3)[2]
            if ms.isascii() and ms.isdigit():
                await asyncio.sleep(int(ms) / 1000)
            else:
                status, text = 400, f"bad delay {ms!r}: want milliseconds"
        self.count += 1
        if self.first is None:
            self.first = now
        self.last = now
        headers = request.headers
        name = headers.get(NAME_HEADER)
        if name is not None:
            self.names.add(name)
        self.hits.append(
            (
                t,
                path,
                name or "",
                headers.get(QUEUE_HEADER, ""),
                headers.get(RETRY_HEADER, ""),
                headers.get(ETA_HEADER, ""),
                status,
            )
        )
        return web.Response(status=status, text=text)

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

    async def list_hits(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        body = orjson.dumps(self.hits[since:])
        return web.Response(body=body, content_type="application/json")

    async def clear(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})


async def serve(host: str, port: int) -> None:
    counter = Counter()
    app = web.Application()
    app.router.add_get("/stats", counter.stats)
    app.router.add_get("/_hits", counter.list_hits)
    app.router.add_post("/_reset", counter.clear)
    app.router.add_route("*", "/{tail:.*}", counter.hook)
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
