"""``pushdctl sink``: a small webhook receiver that prints every delivery.

For trying pushd out locally and for tests: it answers every request with ``--status``
(default 200), fails a ``--fail-rate`` fraction of them with 500, waits ``--delay`` seconds
before answering, and prints one line per request (method, path, the ``X-AppEngine-*``
headers, body size), or one JSON object per line with ``--json``.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from typing import TextIO

from aiohttp import web

from pushd import clock

APPENGINE_PREFIX = "x-appengine-"


@dataclass
class SinkOptions:
    status: int = 200
    fail_rate: float = 0.0
    delay_s: float = 0.0
    json_lines: bool = False
    seed: int | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)


class Sink:
    """The receiver's request handler and counters."""

    def __init__(self, options: SinkOptions, clock_: clock.Clock | None = None) -> None:
        self.options = options
        self.clock = clock_ or clock.SystemClock()
        self.random = random.Random(options.seed)
        self.received = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received += 1
        status = self.options.status
        if self.options.fail_rate and self.random.random() < self.options.fail_rate:
            status = 500
        if self.options.delay_s:
            await self.clock.sleep(self.options.delay_s)
        self._print(request, body, status)
        return web.Response(status=status, text="ok\n" if status < 400 else "failed\n")

    def _print(self, request: web.Request, body: bytes, status: int) -> None:
        appengine = {
            k: v for k, v in request.headers.items() if k.lower().startswith(APPENGINE_PREFIX)
        }
        if self.options.json_lines:
            record = {
                "time_us": self.clock.now_us(),
                "method": request.method,
                "path": request.path_qs,
                "status": status,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": body.decode("utf-8", "replace"),
            }
            line = json.dumps(record)
        else:
            shown = " ".join(f"{k.removeprefix('X-AppEngine-')}={v}" for k, v in appengine.items())
            line = f"{request.method} {request.path_qs} -> {status}  {shown}  ({len(body)} bytes)"
        print(line, file=self.options.out, flush=True)

    def app(self) -> web.Application:
        application = web.Application(client_max_size=64 * 1024 * 1024)
        application.router.add_route("*", "/{tail:.*}", self.handle)
        return application
