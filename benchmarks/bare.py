"""Bare client loops: what a hand-written Python dispatcher reaches with each HTTP client.

Each posts ``n`` requests with ``concurrency`` in flight over keep-alive connections to one
URL scheme, nothing stored, and returns (wall seconds, CPU seconds of this whole process, all
its threads, read from /proc: pyreqwest's Rust runtime runs on threads of its own). A warm-up
of ``concurrency`` requests opens the connections first. The delivery scenario runs them beside
pushd, sending pushd's very requests (every header, built by pushd's dispatcher).

* ``aiohttp``: one ``ClientSession``, ``TCPConnector(limit=concurrency)``
  (:func:`benchmarks.harness.raw_posts`).
* ``pyreqwest``: one ``pyreqwest`` client (Rust: hyper and reqwest, an asyncio API),
  ``max_connections=concurrency``, no redirects, no decompression.
* ``h1``: pushd's own transport (:class:`pushd.dispatch.H1Transport`, ``max_connections =
  concurrency``), each request a :class:`pushd.dispatch.Request` as pushd sends it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks import harness

CLIENTS = ("aiohttp", "h1", "pyreqwest")


def process_cpu_s() -> float:
    """CPU seconds of this process so far, every thread (utime + stime of /proc/self/stat)."""
    return harness.cpu_s(os.getpid())


async def _timed(
    send: Callable[[int], Awaitable[None]],
    n: int,
    concurrency: int,
    progress: harness.Progress | None,
) -> tuple[float, float]:
    """``concurrency`` workers: first a warm-up of ``concurrency`` sends (opening the
    connections), then ``n`` timed ones; (wall seconds, CPU seconds) of the timed part."""
    counter = iter(range(n))
    warm = itertools.count()

    async def worker(numbers: Any, total: int | None) -> None:
        for i in numbers:
            if total is not None and i >= total:
                return
            await send(i)
            if progress is not None and total is None:
                progress.update(i + 1)

    await asyncio.gather(*(worker(warm, concurrency) for _ in range(concurrency)))
    cpu, start = process_cpu_s(), time.monotonic()
    await asyncio.gather(*(worker(counter, None) for _ in range(concurrency)))
    return time.monotonic() - start, process_cpu_s() - cpu


async def reqwest_posts(
    url_for: Callable[[int], str],
    n: int,
    concurrency: int,
    *,
    body: bytes = harness.PAYLOAD.encode(),
    headers_for: Callable[[int], Any] | None = None,
    progress: harness.Progress | None = None,
) -> tuple[float, float]:
    """The pyreqwest loop, the same shape as :func:`benchmarks.harness.raw_posts`."""
    from pyreqwest.client import ClientBuilder  # the bench extra only

    client = (
        ClientBuilder()
        .max_connections(concurrency)
        .follow_redirects(False)
        .gzip(False)
        .brotli(False)
        .zstd(False)
        .deflate(False)
        .build()
    )

    async def send(i: int) -> None:
        request = client.post(url_for(i)).body_bytes(body)
        if headers_for is not None:
            request = request.headers(headers_for(i))
        response = await request.build().send()
        await response.bytes()

    async with client:
        return await _timed(send, n, concurrency, progress)


async def h1_posts(
    url_for: Callable[[int], str],
    n: int,
    concurrency: int,
    *,
    body: bytes = harness.PAYLOAD.encode(),
    headers_for: Callable[[int], Any] | None = None,
    progress: harness.Progress | None = None,
) -> tuple[float, float]:
    """The h1 loop, the same shape as :func:`benchmarks.harness.raw_posts`."""
    from pushd import dispatch

    client = dispatch.H1Transport(concurrency)

    async def send(i: int) -> None:
        headers = list(headers_for(i).items()) if headers_for is not None else []
        outcome = await client.send(dispatch.Request("POST", url_for(i), headers, body, 60.0))
        if not isinstance(outcome, dispatch.Response):
            raise RuntimeError(f"h1 request {i} failed: {outcome}")

    try:
        return await _timed(send, n, concurrency, progress)
    finally:
        await client.close()


async def posts(
    client: str, url_for: Callable[[int], str], n: int, concurrency: int, **kw: Any
) -> tuple[float, float]:
    """The bare loop of ``client`` (one of :data:`CLIENTS`)."""
    if client == "pyreqwest":
        return await reqwest_posts(url_for, n, concurrency, **kw)
    if client == "h1":
        return await h1_posts(url_for, n, concurrency, **kw)
    return await harness.raw_posts(url_for, n, concurrency, **kw)


def available() -> tuple[str, ...]:
    """The clients whose loops can run here: aiohttp and h1 always, pyreqwest when installed."""
    try:
        import pyreqwest  # noqa: F401
    except ImportError:
        return ("aiohttp", "h1")
    return CLIENTS
