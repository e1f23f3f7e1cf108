"""The API port against slow and hostile clients: read timeouts, the connection cap, malformed
HTTP (pushd.api.server, pushd.api.connections), on 127.0.0.1 with tiny limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from pushd import clock, errors, settings
from pushd.api import connections, server

TIMEOUT_S = 0.3  # api_read_timeout_s of these servers


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text=f"got {len(await request.read())}")


@pytest.fixture
async def srv() -> AsyncIterator[tuple[str, int]]:
    app = web.Application()
    app.router.add_route("*", "/", _ok)
    limits = connections.Limits(read_timeout_s=TIMEOUT_S, max_connections=8)
    s = await server.Server.start(app, "127.0.0.1", 0, limits=limits)
    host, port = s.url.removeprefix("http://").rsplit(":", 1)
    yield host, int(port)
    await s.stop()


async def test_a_half_open_head_is_closed_after_the_read_timeout(srv: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*srv)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
    await _close(writer)


async def test_a_body_that_does_not_arrive_in_time_is_answered_408(srv: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*srv)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
    assert answer.startswith(b"HTTP/1.1 408 ")
    await _close(writer)


async def test_at_the_cap_the_quietest_slow_client_makes_room() -> None:
    """Eight half-open heads fill the cap; a ninth client is answered and the slow client
    quiet the longest is the one closed."""
    fake = clock.FakeClock()
    app = web.Application()
    app.router.add_route("*", "/", _ok)
    limits = connections.Limits(max_connections=8)
    s = await server.Server.start(app, "127.0.0.1", 0, limits=limits, clock_=fake)
    host, port = s.url.removeprefix("http://").rsplit(":", 1)
    slow = []
    try:
        for _ in range(8):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET / HTTP/1.1\r\nX-Slow: ")
            await writer.drain()
            slow.append((reader, writer))
            fake.advance(connections.QUIET_GRACE_US)  # each quieter than the next
        async with aiohttp.ClientSession() as session, session.get(s.url + "/") as resp:
            assert resp.status == 200
        assert await asyncio.wait_for(slow[0][0].read(), 10) == b""
    finally:
        for _, writer in slow:
            await _close(writer)
        await s.stop()


async def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused_503() -> None:
    release, arrived = asyncio.Event(), asyncio.Event()
    busy_count = 0

    async def busy(request: web.Request) -> web.Response:
        nonlocal busy_count
        busy_count += 1
        if busy_count == connections.MIN_API_CONNECTIONS:
            arrived.set()
        await release.wait()
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/", busy)
    limits = connections.Limits(max_connections=connections.MIN_API_CONNECTIONS)
    s = await server.Server.start(app, "127.0.0.1", 0, limits=limits)
    try:
        async with aiohttp.ClientSession() as session:
            held = [
                asyncio.create_task(session.get(s.url + "/"))
                for _ in range(connections.MIN_API_CONNECTIONS)
            ]
            await asyncio.wait_for(arrived.wait(), 10)
            host, port = s.url.removeprefix("http://").rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            answer = await asyncio.wait_for(reader.read(), 10)
            await _close(writer)
            assert answer.startswith(b"HTTP/1.1 503 ")
            assert b"too many connections" in answer
            release.set()
            for resp in await asyncio.gather(*held):
                assert resp.status == 200
                resp.release()
    finally:
        await s.stop()


async def test_malformed_http_is_one_info_line(
    srv: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    logging.getLogger("pushd").propagate = True
    try:
        with caplog.at_level(logging.DEBUG):
            reader, writer = await asyncio.open_connection(*srv)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n")
            assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.0 400 ")
            await _close(writer)
    finally:
        logging.getLogger("pushd").propagate = False
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [(r.getMessage(), r.levelno, bool(r.exc_info)) for r in records] == [
        ("http_bad_request", logging.INFO, False)
    ]
    assert records[0].fields["peer"] == "127.0.0.1"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("key", "value"), [("max_api_connections", 0), ("api_read_timeout_s", "0s")]
)
def test_the_limits_are_validated(key: str, value: object) -> None:
    with pytest.raises(errors.ConfigError, match=key):
        settings.from_mapping({key: value})
