"""SqliteHuey with an HTTP POST task, as PEERS.md sets it up (huey 3.5, httpx).

The SQLite file is ``$PUSHD_BENCH_HUEY_DB`` (WAL, SqliteHuey's default). The task retries 5
times, 1 s then doubling, and raises on a non-2xx answer so huey retries it. One
``httpx.Client`` (thread-safe connection pool) serves every worker thread; it is made at import
so its set-up (an SSL context) is not counted in the delivery, as in a long-running consumer.
"""

from __future__ import annotations

import os

import httpx
from huey import SqliteHuey

huey = SqliteHuey(filename=os.environ["PUSHD_BENCH_HUEY_DB"])
http = httpx.Client(timeout=10.0)  # the per-request deadline lives here


@huey.task(retries=5, retry_delay=1, retry_backoff=2)
def post_webhook(url: str, body: bytes) -> None:
    http.post(url, content=body).raise_for_status()
