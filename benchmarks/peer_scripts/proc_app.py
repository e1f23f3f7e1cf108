"""procrastinate App with an HTTP POST task, as PEERS.md sets it up (procrastinate 3.10, httpx).

The database is ``$PUSHD_BENCH_PG_DSN``. The task retries 5 times with exponential waits and
raises on a non-2xx answer so procrastinate retries it. One ``httpx.AsyncClient`` serves every
job; it is made at import so its set-up (an SSL context) is not counted in the delivery.
"""

from __future__ import annotations

import os

import httpx
import procrastinate

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ["PUSHD_BENCH_PG_DSN"])
)
http = httpx.AsyncClient(timeout=10.0)


@app.task(
    name="post_webhook", retry=procrastinate.RetryStrategy(max_attempts=5, exponential_wait=2)
)
async def post_webhook(url: str, body: str) -> None:
    (await http.post(url, content=body.encode())).raise_for_status()
