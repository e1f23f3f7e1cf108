"""One webhook attempt against a real aiohttp receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import hmac
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pushd import clock, dispatch, models, tickets

T0 = 1_700_000_000_123_456


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.headers: dict[str, str] = {}

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": request.headers.copy(),
                "body": await request.read(),
            }
        )
        return web.Response(status=self.status, headers=self.headers, text="x" * 10)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield rec, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture(params=dispatch.TRANSPORTS)
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[dispatch.Transport]:
    """Each transport, as the daemon makes it: every test taking it runs against all."""
    t = dispatch.make_transport(4, request.param)
    yield t
    await t.close()


#: The transports that keep every delivery rule (pyreqwest does not: docs/RELIABILITY.md).
RULE_KEEPERS = ("h1", "aiohttp")


@pytest.fixture(params=RULE_KEEPERS)
async def keeper(request: pytest.FixtureRequest) -> AsyncIterator[dispatch.Transport]:
    """Each transport that keeps every delivery rule: the tests of those rules run on each."""
    t = dispatch.make_transport(4, request.param)
    yield t
    await t.close()


def task(**kw: Any) -> models.Task:
    base: dict[str, Any] = {
        "queue": "mail",
        "name": "t1",
        "url": "/send?x=1",
        "payload": b"hello",
        "eta_us": T0,
    }
    base.update(kw)
    return models.Task(**base)


async def test_first_attempt_headers_and_body(
    receiver: tuple[Recorder, str], transport: dispatch.Transport
) -> None:
    rec, url = receiver
    t = task(headers=(("X-Custom", "a"), ("X-Custom", "b"), ("Host", "ignored.example")))
    attempt = await dispatch.deliver(
        transport, t, queue="mail", base_url=url, deadline_s=5, signing_secret=None, now_us=T0
    )
    assert attempt == dispatch.Attempt(200, None, None, url=f"{url}/send?x=1")
    [req] = rec.requests
    h = req["headers"]
    assert (req["method"], req["path"], req["body"]) == ("POST", "/send?x=1", b"hello")
    assert h["X-AppEngine-QueueName"] == "mail"
    assert h["X-AppEngine-TaskName"] == "t1"
    assert h["X-AppEngine-TaskRetryCount"] == "0"
    assert h["X-AppEngine-TaskExecutionCount"] == "0"
    assert h["X-AppEngine-TaskETA"] == "1700000000.123456"
    assert "X-AppEngine-TaskPreviousResponse" not in h
    assert "X-AppEngine-TaskRetryReason" not in h
    assert h.getall("X-Custom") == ["a", "b"]
    assert h["Content-Type"] == "application/octet-stream"
    assert h["Host"].startswith("127.0.0.1:")
    assert h["User-Agent"].startswith("AppEngine-Google")


async def test_retry_headers_carry_the_previous_response(
    receiver: tuple[Recorder, str], transport: dispatch.Transport
) -> None:
    rec, url = receiver
    rec.status = 500
    t = task(
        retry_count=2, execution_count=1, last_status=503, headers=(("Content-Type", "text/x"),)
    )
    attempt = await dispatch.deliver(
        transport, t, queue="mail", base_url=url, deadline_s=5, signing_secret=None, now_us=T0
    )
    assert (attempt.status, attempt.ok, attempt.error) == (500, False, "HTTP 500")
    h = rec.requests[0]["headers"]
    assert (h["X-AppEngine-TaskRetryCount"], h["X-AppEngine-TaskExecutionCount"]) == ("2", "1")
    assert h["X-AppEngine-TaskPreviousResponse"] == "503"
    assert h["X-AppEngine-TaskRetryReason"] == "App Error"
    assert h["Content-Type"] == "text/x"


def test_retry_reason_is_the_real_services_words() -> None:
    """Cloud Tasks (and App Engine before it) send ``App Error`` after an HTTP answer and
    ``Instance Unavailable`` after none (CLOUDTASKS.md 1.5, recorded from production), never
    free text: handlers compare the value."""
    answered = build(task(retry_count=1, execution_count=1, last_status=404))
    unanswered = build(task(retry_count=1, execution_count=0, last_status=None))
    first = build(task())
    assert answered["X-AppEngine-TaskRetryReason"] == "App Error"
    assert unanswered["X-AppEngine-TaskRetryReason"] == "Instance Unavailable"
    assert "X-AppEngine-TaskPreviousResponse" not in unanswered
    assert "X-AppEngine-TaskRetryReason" not in first


def build(t: models.Task) -> Any:
    return dispatch.build_headers(t, queue="mail", signing_secret=None, now_us=T0)


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
async def test_bodyless_methods_send_no_body(
    receiver: tuple[Recorder, str], transport: dispatch.Transport, method: str
) -> None:
    rec, url = receiver
    t = task(method=models.Method(method), payload=b"")
    await dispatch.deliver(
        transport, t, queue="mail", base_url=url, deadline_s=5, signing_secret=None, now_us=T0
    )
    assert rec.requests[0]["method"] == method
    assert rec.requests[0]["body"] == b""
    assert "Content-Type" not in rec.requests[0]["headers"]


async def test_redirects_are_failures_and_not_followed(
    receiver: tuple[Recorder, str], transport: dispatch.Transport
) -> None:
    rec, url = receiver
    rec.status = 302
    rec.headers = {"Location": "/elsewhere"}
    attempt = await dispatch.deliver(
        transport, task(), queue="mail", base_url=url, deadline_s=5, signing_secret=None, now_us=T0
    )
    assert (attempt.status, attempt.ok) == (302, False)
    assert len(rec.requests) == 1


async def test_retry_after_seconds_and_dates(
    receiver: tuple[Recorder, str], transport: dispatch.Transport
) -> None:
    rec, url = receiver
    rec.status = 503
    rec.headers = {"Retry-After": "120"}
    attempt = await dispatch.deliver(
        transport, task(), queue="mail", base_url=url, deadline_s=5, signing_secret=None, now_us=T0
    )
    assert attempt.throttled
    assert attempt.retry_after_us == 120_000_000
    now = 1_700_000_000_000_000  # 2023-11-14 22:13:20 UTC
    assert dispatch.parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now) == 30_000_000
    assert dispatch.parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now) == 0
    assert dispatch.parse_retry_after("soon", now) is None
    assert dispatch.parse_retry_after(None, now) is None


async def test_refused_connection_is_a_failure_without_status(
    transport: dispatch.Transport,
) -> None:
    attempt = await dispatch.deliver(
        transport,
        task(),
        queue="mail",
        base_url="http://127.0.0.1:9",
        deadline_s=5,
        signing_secret=None,
        now_us=T0,
    )
    assert attempt.status is None
    assert attempt.error is not None
    assert not attempt.ok
    assert (attempt.kind, attempt.url) == ("refused", "http://127.0.0.1:9/send?x=1")
    last = attempt.last(T0)
    assert (last.time_us, last.status, last.error, last.url) == (
        T0,
        None,
        "refused",
        "http://127.0.0.1:9/send?x=1",
    )
    assert last.message.startswith(
        {
            dispatch.AiohttpTransport: "ClientConnectorError: Cannot connect to host 127.0.0.1:9",
            dispatch.H1Transport: "ConnectionRefusedError: cannot connect to 127.0.0.1:9",
        }.get(type(transport), "ConnectError: Connection refused")
    )


async def test_an_http_failure_keeps_its_status_and_url(
    receiver: tuple[Recorder, str], transport: dispatch.Transport
) -> None:
    rec, url = receiver
    rec.status = 500
    attempt = await dispatch.deliver(
        transport, task(), queue="mail", base_url=url, deadline_s=5, signing_secret=None, now_us=T0
    )
    assert attempt.last(T0 + 1) == models.LastAttempt(
        time_us=T0 + 1, status=500, error=None, message="HTTP 500", url=f"{url}/send?x=1"
    )


async def test_a_connection_reset_before_an_answer_is_reset(keeper: dispatch.Transport) -> None:
    """A receiver that reads the request and closes its socket without answering."""

    async def slam(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()  # RST, no answer

    server = await asyncio.start_server(slam, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = keeper
    try:
        attempt = await dispatch.deliver(
            transport,
            task(),
            queue="mail",
            base_url=f"http://127.0.0.1:{port}",
            deadline_s=5,
            signing_secret=None,
            now_us=T0,
        )
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()
    assert (attempt.status, attempt.kind) == (None, "reset")


def test_error_kinds_name_dns_failures_and_bad_urls() -> None:
    key = object()
    dns = aiohttp.ClientConnectorDNSError(key, socket.gaierror(-2, "Name or service not known"))  # type: ignore[arg-type]
    assert dispatch.error_kind(dns) == "dns"
    refused = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))  # type: ignore[arg-type]
    assert dispatch.error_kind(refused) == "refused"
    assert dispatch.error_kind(aiohttp.ServerDisconnectedError()) == "reset"
    assert dispatch.error_kind(aiohttp.ClientOSError(errno.ECONNRESET, "reset")) == "reset"
    assert dispatch.error_kind(aiohttp.InvalidURL("http://[::1")) == "invalid_url"
    assert dispatch.error_kind(TimeoutError()) == "timeout"
    assert dispatch.error_kind(aiohttp.ClientPayloadError("cut")) == "connection"


def test_a_long_message_is_cut() -> None:
    attempt = dispatch.Attempt(None, "x" * 500, kind="connection", url="http://h/")
    message = attempt.last(T0).message
    assert len(message) == models.MAX_ATTEMPT_MESSAGE
    assert message.endswith("...")


async def test_deadline_exceeded_is_a_failure(transport: dispatch.Transport) -> None:
    import asyncio

    async def slow(request: web.Request) -> web.Response:
        await asyncio.Event().wait()  # never answers; the deadline cuts it off
        return web.Response()

    app = web.Application()
    app.router.add_post("/{tail:.*}", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        attempt = await dispatch.deliver(
            transport,
            task(),
            queue="mail",
            base_url=base_url,
            deadline_s=0.2,
            signing_secret=None,
            now_us=T0,
        )
    finally:
        await runner.cleanup()
    assert attempt == dispatch.Attempt(
        None, "dispatch deadline of 0.2s exceeded", kind="timeout", url=f"{base_url}/send?x=1"
    )
    assert attempt.last(T0) == models.LastAttempt(
        time_us=T0,
        status=None,
        error="timeout",
        message="dispatch deadline of 0.2s exceeded",
        url=f"{base_url}/send?x=1",
    )


async def test_signature_verifies_with_the_readme_recipe(
    receiver: tuple[Recorder, str], transport: dispatch.Transport
) -> None:
    rec, url = receiver
    secret = "s3cret-s3cret-s3cret"
    await dispatch.deliver(
        transport,
        task(),
        queue="mail",
        base_url=url,
        deadline_s=5,
        signing_secret=secret,
        now_us=T0,
    )
    h = rec.requests[0]["headers"]
    ts = h["X-Pushd-Timestamp"]
    assert ts == "1700000000"
    expected = hmac.new(
        secret.encode(),
        f"{ts}.{h['X-AppEngine-TaskName']}.".encode() + rec.requests[0]["body"],
        hashlib.sha256,
    ).hexdigest()
    assert h["X-Pushd-Signature"] == "v1=" + expected


def test_target_resolution_follows_app_engine_precedence() -> None:
    targets = {"worker": "http://w", "v2.worker": "http://v2w"}
    t = task(target="v2.worker")
    assert dispatch.resolve_target("worker", t, targets) == "worker"  # queue.yaml wins
    assert dispatch.resolve_target(None, t, targets) == "v2.worker"
    hosted = task(headers=(("Host", "v2.worker.myapp.appspot.com"),))
    assert dispatch.resolve_target(None, hosted, targets) == "v2.worker"
    dotted = task(headers=(("Host", "v2-dot-worker-dot-myapp.appspot.com:443"),))
    assert dispatch.resolve_target(None, dotted, targets) == "v2.worker"
    assert dispatch.resolve_target(None, task(), targets) is None


def test_build_headers_add_the_source_address_and_the_api_ticket() -> None:
    plain = dispatch.build_headers(task(), queue="mail", signing_secret=None, now_us=T0)
    assert plain.getall("X-AppEngine-User-IP") == ["0.1.0.2"]
    assert "X-AppEngine-Api-Ticket" not in plain
    with_ticket = dispatch.build_headers(
        task(), queue="mail", signing_secret=None, now_us=T0, api_ticket="pushd1.1.abc"
    )
    assert with_ticket.getall("X-AppEngine-User-IP") == ["0.1.0.2"]
    assert with_ticket.getall("X-AppEngine-Api-Ticket") == ["pushd1.1.abc"]


def test_a_task_cannot_forge_the_api_ticket_or_the_source_address() -> None:
    forged = task(
        headers=(
            ("X-AppEngine-Api-Ticket", "forged"),
            ("x-appengine-user-ip", "203.0.113.9"),
            ("X-AppEngine-User-IP", "10.0.0.1"),
            ("X-Custom", "kept"),
        )
    )
    headers = dispatch.build_headers(
        forged, queue="mail", signing_secret=None, now_us=T0, api_ticket="real"
    )
    assert headers.getall("X-AppEngine-Api-Ticket") == ["real"]
    assert headers.getall("X-AppEngine-User-IP") == ["0.1.0.2"]
    assert headers.getall("X-Custom") == ["kept"]
    # without a ticket of pushd's, the task's own is not sent either
    headers = dispatch.build_headers(forged, queue="mail", signing_secret=None, now_us=T0)
    assert "X-AppEngine-Api-Ticket" not in headers
    assert {"x-appengine-api-ticket", "x-appengine-user-ip"} <= dispatch.RESERVED_HEADERS


async def test_the_deliverer_sends_a_ticket_valid_for_the_attempt(
    receiver: tuple[Recorder, str], transport: dispatch.Transport
) -> None:
    rec, url = receiver
    key = tickets.Tickets(b"delivery key")
    deliverer = dispatch.Deliverer(
        transport, targets={}, default_target=url, signing_secret=None, api_tickets=key
    )
    forged = task(headers=(("X-AppEngine-Api-Ticket", "forged"),))
    attempt = await deliverer(forged, _Queue("mail"), deadline_s=5, now_us=T0)
    assert attempt.ok
    h = rec.requests[0]["headers"]
    assert h["X-AppEngine-User-IP"] == "0.1.0.2"
    [ticket] = h.getall("X-AppEngine-Api-Ticket")
    # valid from the attempt until the dispatch deadline plus 300 s (rounded up to a second)
    assert key.valid(ticket, now_us=T0)
    expiry_us = 1_700_000_306 * 1_000_000  # ceil(T0 + 5 s + 300 s)
    assert key.valid(ticket, now_us=expiry_us - 1)
    assert not key.valid(ticket, now_us=expiry_us)
    assert not tickets.Tickets(b"another key").valid(ticket, now_us=T0)
    # a longer deadline, a longer ticket
    await deliverer(task(), _Queue("mail"), deadline_s=600, now_us=T0)
    longer = rec.requests[1]["headers"]["X-AppEngine-Api-Ticket"]
    assert key.valid(longer, now_us=T0 + 900 * 1_000_000 - 1)
    assert not key.valid(longer, now_us=1_700_000_901 * 1_000_000)


async def test_the_deliverer_without_tickets_sends_none(
    receiver: tuple[Recorder, str], transport: dispatch.Transport
) -> None:
    rec, url = receiver
    deliverer = dispatch.Deliverer(transport, targets={}, default_target=url, signing_secret=None)
    await deliverer(task(), _Queue("mail"), deadline_s=5, now_us=T0)
    h = rec.requests[0]["headers"]
    assert "X-AppEngine-Api-Ticket" not in h
    assert h["X-AppEngine-User-IP"] == "0.1.0.2"


@dataclasses.dataclass(frozen=True)
class _Queue:
    name: str
    target: str | None = None


def test_a_huge_retry_after_is_capped_at_a_century() -> None:
    """Review campaign: 10**13 s overflowed SQLite's INTEGER and stopped the daemon."""
    now = 1_700_000_000_000_000
    century_us = clock.seconds_to_us(clock.MAX_DELAY_S)
    assert dispatch.parse_retry_after("10000000000000", now) == century_us
    assert dispatch.parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == century_us


async def test_the_session_never_resends_a_request_by_itself() -> None:
    """aiohttp resends GET/PUT/DELETE once after a reset; a task attempt must be one request
    (tests/reliability/test_receiver_faults.py checks it against a receiver that resets)."""
    session = dispatch.make_session(4)
    try:
        assert session._retry_connection is False
    finally:
        await session.close()


@pytest.mark.parametrize("code", sorted(dispatch.LOCAL_ERRNOS))
async def test_running_out_of_a_local_resource_is_a_local_failure(code: int) -> None:
    """EMFILE and the like before the request left: ``local``, not an attempt of the task."""

    def no_socket(*args: object) -> Any:
        raise OSError(code, os.strerror(code))

    connector = aiohttp.TCPConnector(socket_factory=no_socket)
    async with aiohttp.ClientSession(connector=connector) as s:
        attempt = await dispatch.deliver(
            dispatch.AiohttpTransport(s),
            task(),
            queue="q",
            base_url="http://127.0.0.1:9",
            deadline_s=5,
            signing_secret=None,
            now_us=0,
        )
    assert attempt.status is None
    assert attempt.local
    assert os.strerror(code) in (attempt.error or "")


async def test_a_refused_connection_is_not_local(transport: dispatch.Transport) -> None:
    attempt = await dispatch.deliver(
        transport,
        task(),
        queue="q",
        base_url="http://127.0.0.1:9",  # discard port: nothing listens
        deadline_s=5,
        signing_secret=None,
        now_us=0,
    )
    assert attempt.status is None
    assert not attempt.local


async def test_an_endless_stream_of_100_continue_is_cut_after_max_answer_bytes(
    keeper: dispatch.Transport,
) -> None:
    """The receiver streams ``100 Continue`` forever: the attempt fails having read about
    MAX_HEAD_BYTES, long before its deadline, and is charged to the task."""
    read = 0

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal read
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            while True:
                chunk = b"HTTP/1.1 100 Continue\r\n\r\n" * 1024
                writer.write(chunk)
                await writer.drain()
                read += len(chunk)
        writer.close()

    server = await asyncio.start_server(stream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = keeper
    try:
        attempt = await dispatch.deliver(
            transport,
            task(),
            queue="q",
            base_url=f"http://127.0.0.1:{port}",
            deadline_s=30,
            signing_secret=None,
            now_us=0,
        )
    finally:
        await transport.close()
        server.close()
    assert attempt.status is None
    assert not attempt.local
    assert f"more than {dispatch.MAX_HEAD_BYTES} bytes" in (attempt.error or "")


async def test_a_big_answer_after_a_100_continue_is_still_a_success(
    keeper: dispatch.Transport,
) -> None:
    """The head bound applies before the final answer only: a 100 Continue, then a 200 with a
    4 MiB body (read 64 KiB of, as always) is delivered."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            body = b"x" * (4 << 20)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = keeper
    try:
        attempt = await dispatch.deliver(
            transport,
            task(),
            queue="q",
            base_url=f"http://127.0.0.1:{port}",
            deadline_s=30,
            signing_secret=None,
            now_us=0,
        )
    finally:
        await transport.close()
        server.close()
    assert (attempt.status, attempt.ok, attempt.error) == (200, True, None)


async def test_a_pinned_address_is_connected_to_with_the_urls_host(
    receiver: tuple[Recorder, str],
    keeper: dispatch.Transport,
) -> None:
    """``connect_to``: the request goes to the vetted address, never resolving the URL's host
    (``.invalid`` cannot resolve), and carries that host in ``Host``. Not pyreqwest:
    pins addresses per client, not per request (its transport refuses ``connect_to``)."""
    rec, url = receiver
    transport = keeper
    port = url.rsplit(":", 1)[1]
    attempt = await dispatch.deliver(
        transport,
        task(headers=(("Host", "forged.example"),)),
        queue="mail",
        base_url=f"http://receiver.invalid:{port}",
        deadline_s=5,
        signing_secret=None,
        now_us=T0,
        connect_to="127.0.0.1",
    )
    assert (attempt.status, attempt.url) == (200, f"http://receiver.invalid:{port}/send?x=1")
    [req] = rec.requests
    assert req["headers"].getall("Host") == [f"receiver.invalid:{port}"]
    assert req["path"] == "/send?x=1"
    await transport.close()


async def test_an_unresolvable_host_without_a_pin_is_dns(transport: dispatch.Transport) -> None:
    attempt = await dispatch.deliver(
        transport,
        task(),
        queue="mail",
        base_url="http://receiver.invalid:9",
        deadline_s=5,
        signing_secret=None,
        now_us=T0,
    )
    assert (attempt.status, attempt.kind) == (None, "dns")


async def test_header_names_leave_with_their_case(keeper: dispatch.Transport) -> None:
    """The exact bytes of the request head: App Engine's names as App Engine writes them and
    the task's own as given. not pyreqwest: hyper title-cases every name
    (``X-Appengine-Queuename``), one reason it is not the default transport."""
    heads: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(record, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = keeper
    try:
        attempt = await dispatch.deliver(
            transport,
            task(headers=(("x-lower", "a"), ("X-MiXed-CaSe", "b"))),
            queue="mail",
            base_url=f"http://127.0.0.1:{port}",
            deadline_s=5,
            signing_secret=None,
            now_us=T0,
        )
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()
    assert attempt.ok
    [head] = heads
    for name in (b"x-lower: a", b"X-MiXed-CaSe: b", b"X-AppEngine-QueueName: mail"):
        assert b"\r\n" + name + b"\r\n" in head
