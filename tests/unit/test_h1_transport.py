"""pushd's own HTTP/1.1 transport (pushd/dispatch/h1_transport.py) against raw servers on
127.0.0.1: keep-alive and when a connection is not reused, the connection cap, idle expiry,
bounded and timed answers, TLS with a pinned address, the exact request target."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yarl
from hypothesis import given
from hypothesis import strategies as st

from pushd.dispatch import MAX_RESPONSE_READ, Failure, H1Transport, Request, Response, h1_pool
from pushd.dispatch.h1_transport import request_target

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


@dataclass
class Server:
    """A raw HTTP server: ``handler(reader, writer, index)`` answers the index-th request and
    says whether to keep the connection."""

    handler: Handler
    connections: int = 0
    open: int = 0
    most_open: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # a connection ended
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                body = await reader.readexactly(length[0]) if length else b""
                self.requests.append(head + body)
                if not await self.handler(reader, writer, len(self.requests) - 1):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open -= 1
            self.closed.set()
            writer.close()


@contextlib.asynccontextmanager
async def serving(handler: Handler, **tls: ssl.SSLContext) -> AsyncIterator[Server]:
    srv = Server(handler)
    server = await asyncio.start_server(srv.serve, "127.0.0.1", 0, **tls)  # type: ignore[arg-type]
    srv.port = server.sockets[0].getsockname()[1]
    try:
        yield srv
    finally:
        server.close()
        for task in srv.tasks:
            task.cancel()
        await asyncio.gather(*srv.tasks, return_exceptions=True)


async def answer(data: bytes, keep: bool = True) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return handle


def post(port: int, path: str = "/t", deadline_s: float = 5.0, **kw: object) -> Request:
    headers = kw.pop("headers", [("X-AppEngine-TaskName", "t")])
    return Request(
        str(kw.pop("method", "POST")),
        f"http://127.0.0.1:{port}{path}",
        headers,  # type: ignore[arg-type]
        b"body",
        deadline_s,
    )


@pytest.fixture
async def h1() -> AsyncIterator[H1Transport]:
    t = H1Transport(4)
    yield t
    await t.close()


async def test_connections_are_kept_alive_and_reused(h1: H1Transport) -> None:
    async with serving(await answer(OK)) as srv:
        outcomes = [await h1.send(post(srv.port)) for _ in range(5)]
    assert outcomes == [Response(200)] * 5
    assert (srv.connections, len(srv.requests)) == (1, 5)


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_RESPONSE_READ + 1)
        + b"x" * (MAX_RESPONSE_READ + 1),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",  # unasked-for
    ],
    ids=["connection-close", "http-1.0", "body-too-long", "extra-answer"],
)
async def test_a_connection_is_not_reused_after_an_answer_that_forbids_it(
    h1: H1Transport, reply: bytes
) -> None:
    async with serving(await answer(reply)) as srv:
        outcomes = [await h1.send(post(srv.port)) for _ in range(2)]
    assert outcomes == [Response(200)] * 2
    assert srv.connections == 2


async def test_a_body_sent_after_the_head_is_read_and_the_connection_kept(
    h1: H1Transport,
) -> None:
    """The outcome is the status as soon as the head came; the body is read on to keep the
    connection (a server writing its head and body apart)."""

    async def split(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int) -> bool:
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # the body comes later, on purpose
        writer.write(b"12345")
        await writer.drain()
        return True

    async with serving(split) as srv:
        assert await h1.send(post(srv.port)) == Response(201)
        await until(lambda: h1.pool.idle == 1)  # the body arrives 50 ms after the head
        assert await h1.send(post(srv.port)) == Response(201)
    assert srv.connections == 1


async def test_a_slow_body_does_not_delay_the_outcome_and_ends_at_the_deadline(
    h1: H1Transport,
) -> None:
    """A 200 whose body trickles: the attempt is the 200; the connection is cut at the
    deadline (the server sees the client leave), never reused."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nx")
        for _ in range(1000):
            await asyncio.sleep(0.05)
            writer.write(b"x")
            await writer.drain()
        return True

    async with serving(trickle) as srv:
        assert await h1.send(post(srv.port, deadline_s=0.3)) == Response(200)
        await asyncio.wait_for(srv.closed.wait(), 10)
        assert h1.pool.size == 0


@pytest.mark.parametrize("how", ["hang", "trickled-head"])
async def test_an_answer_not_complete_by_the_deadline_is_a_timeout(
    h1: H1Transport, how: str
) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int) -> bool:
        for byte in OK if how == "trickled-head" else b"":
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)
        await reader.read()  # until the client leaves
        return False

    async with serving(slow) as srv:
        outcome = await h1.send(post(srv.port, deadline_s=0.3))
        await asyncio.wait_for(srv.closed.wait() if how == "hang" else _gone(srv), 10)
    assert isinstance(outcome, Failure)
    assert outcome.kind == "timeout"
    assert h1.pool.size == 0


async def _gone(srv: Server) -> None:
    await until(lambda: srv.open == 0)


async def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``check`` (no event says when it holds) until it does, at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not done in time"
        await asyncio.sleep(0.01)


async def test_a_reset_on_a_kept_alive_connection_is_a_failure_and_never_resent(
    h1: H1Transport,
) -> None:
    """The second request on a kept-alive connection is read and the connection reset: the
    attempt fails as ``reset``; the receiver saw it once (it may have acted on it)."""

    async def second_resets(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> bool:
        if i == 1:
            writer.transport.abort()
            return False
        writer.write(OK)
        await writer.drain()
        return True

    async with serving(second_resets) as srv:
        first = await h1.send(post(srv.port))
        second = await h1.send(post(srv.port))
        third = await h1.send(post(srv.port))
    assert (first, third) == (Response(200), Response(200))
    assert isinstance(second, Failure)
    assert second.kind == "reset"
    assert len(srv.requests) == 3


async def test_an_idle_connection_the_receiver_closes_is_dropped_before_reuse(
    h1: H1Transport,
) -> None:
    async with serving(await answer(OK, keep=False)) as srv:
        assert await h1.send(post(srv.port)) == Response(200)
        await until(lambda: h1.pool.size == 0)  # the receiver's close reaches the pool as EOF
        assert await h1.send(post(srv.port)) == Response(200)
    assert (srv.connections, len(srv.requests)) == (2, 2)


async def test_idle_connections_are_closed_after_the_idle_timeout(
    h1: H1Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(h1_pool, "IDLE_TIMEOUT_S", 0.1)
    async with serving(await answer(OK)) as srv:
        assert await h1.send(post(srv.port)) == Response(200)
        await asyncio.wait_for(srv.closed.wait(), 10)
    assert h1.pool.size == 0


async def test_the_cap_counts_every_socket_open_to_all_targets() -> None:
    """At most max_connections sockets: requests beyond wait for one; a new target closes the
    connection idle longest."""

    async def slow_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int) -> bool:
        await asyncio.sleep(0.05)
        writer.write(OK)
        await writer.drain()
        return True

    t = H1Transport(2)
    try:
        async with serving(slow_ok) as a, serving(slow_ok) as b:
            outcomes = await asyncio.gather(*(t.send(post(a.port)) for _ in range(6)))
            assert outcomes == [Response(200)] * 6
            assert (a.most_open, t.pool.size) == (2, 2)
            assert await t.send(post(b.port)) == Response(200)
            assert t.pool.size == 2
            await asyncio.wait_for(a.closed.wait(), 10)  # one idle connection to a was closed
    finally:
        await t.close()


async def test_interim_answers_are_skipped_and_retry_after_is_the_final_ones(
    h1: H1Transport,
) -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\nRetry-After: 99\r\n\r\n"
        b"HTTP/1.1 503 Busy\r\nretry-after: 7\r\nContent-Length: 0\r\n\r\n"
    )
    async with serving(await answer(reply)) as srv:
        assert await h1.send(post(srv.port)) == Response(503, "7")
        assert await h1.send(post(srv.port)) == Response(503, "7")
    assert srv.connections == 1


async def test_a_head_request_is_answered_without_waiting_for_a_body(h1: H1Transport) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"  # HEAD: no body follows
    async with serving(await answer(reply)) as srv:
        outcomes = [await h1.send(post(srv.port, method="HEAD")) for _ in range(2)]
    assert outcomes == [Response(200)] * 2


async def test_a_header_with_a_newline_is_refused_before_anything_is_sent(
    h1: H1Transport,
) -> None:
    async with serving(await answer(OK)) as srv:
        headers = [("X-Evil", "a\r\nX-Injected: b")]
        outcome = await h1.send(post(srv.port, headers=headers))
    assert isinstance(outcome, Failure)
    assert outcome.kind == "invalid_url"
    assert srv.requests == []


async def test_the_request_is_written_as_given(h1: H1Transport) -> None:
    """Names with their case and repeats, then Host and Content-Length; nothing else."""
    headers = [("x-lower", "a"), ("X-Twice", "1"), ("X-Twice", "2")]
    async with serving(await answer(OK)) as srv:
        assert await h1.send(post(srv.port, "/p/é?q=1", headers=headers)) == Response(200)
    assert srv.requests == [
        b"POST /p/%%C3%%A9?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nx-lower: a\r\nX-Twice: 1\r\n"
        b"X-Twice: 2\r\nContent-Length: 4\r\n\r\nbody" % srv.port
    ]


async def test_given_host_authorization_and_length_headers_are_told_by_name_in_any_case(
    h1: H1Transport,
) -> None:
    """A given ``host`` or ``authorization`` (any case) stands instead of the URL's; a given
    length or transfer encoding is dropped for the body's own; a name inside a value is not
    a header."""
    given = [
        ("X-Note", "host: and authorization: inside a value"),
        ("host", "given.test"),
        ("AUTHORIZATION", "Bearer t"),
        ("content-length", "999"),
        ("Transfer-Encoding", "chunked"),
    ]
    async with serving(await answer(OK)) as srv:
        url = f"http://u:p@127.0.0.1:{srv.port}/t"
        assert await h1.send(Request("POST", url, given, b"body", 5.0)) == Response(200)
        assert await h1.send(Request("POST", url, given[:1], b"body", 5.0)) == Response(200)
    assert srv.requests == [
        b"POST /t HTTP/1.1\r\nX-Note: host: and authorization: inside a value\r\n"
        b"host: given.test\r\nAUTHORIZATION: Bearer t\r\nContent-Length: 4\r\n\r\nbody",
        b"POST /t HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Basic dTpw\r\n"
        b"X-Note: host: and authorization: inside a value\r\nContent-Length: 4\r\n\r\nbody"
        % srv.port,
    ]


async def test_a_newline_is_refused_also_beside_a_given_length(h1: H1Transport) -> None:
    async with serving(await answer(OK)) as srv:
        headers = [("Content-Length", "1"), ("X-Evil", "a\nX-Injected: b")]
        outcome = await h1.send(post(srv.port, headers=headers))
    assert isinstance(outcome, Failure)
    assert outcome.kind == "invalid_url"
    assert srv.requests == []


async def test_a_cancelled_attempt_closes_its_connection(h1: H1Transport) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int) -> bool:
        await reader.read()
        return False

    async with serving(hang) as srv:
        sending = asyncio.ensure_future(h1.send(post(srv.port)))
        await until(lambda: bool(srv.requests))
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        await asyncio.wait_for(srv.closed.wait(), 10)
    assert h1.pool.size == 0


_PLAIN = "abcXYZ019-._~!$&'()*+,;=:@/?"


@given(st.text(alphabet=_PLAIN, max_size=20))
def test_the_request_target_is_what_aiohttp_would_send(path: str) -> None:
    url = "http://h:1/" + path
    assert request_target(url, len("http://h:1")) == (yarl.URL(url).raw_path_qs or "/")


# ---------------------------------------------------------------------- TLS
def _certificates(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A CA and a certificate for ``receiver.test`` it signed: (server context, client
    context trusting that CA and nothing else)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, ca: bool
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer.subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = [x509.DNSName(subject), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key if issuer else key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("pushd test CA", ca_key, None, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert("receiver.test", key, ca, False)
    pem = serialization.Encoding.PEM
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "leaf.pem", tmp / "key.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


async def test_https_checks_the_certificate_against_the_urls_host_with_a_pinned_address(
    tmp_path: Path,
) -> None:
    server_tls, client_tls = _certificates(tmp_path)
    trusting = H1Transport(4, ssl_context=client_tls)
    default = H1Transport(4)  # the system's CAs: this test CA is not among them
    try:
        async with serving(await answer(OK), ssl=server_tls) as srv:

            def pinned(host: str) -> Request:
                url = f"https://{host}:{srv.port}/t"
                return Request("POST", url, [], b"x", 5.0, connect_to="127.0.0.1")

            assert await trusting.send(pinned("receiver.test")) == Response(200)
            wrong_name = await trusting.send(pinned("other.test"))
            untrusted = await default.send(pinned("receiver.test"))
    finally:
        await trusting.close()
        await default.close()
    assert srv.requests[0].startswith(b"POST /t HTTP/1.1\r\nHost: receiver.test:%d\r\n" % srv.port)
    assert len(srv.requests) == 1
    for failure in (wrong_name, untrusted):
        assert isinstance(failure, Failure)
        assert failure.kind == "connection"
        assert "certificate" in failure.message.lower() or "CERTIFICATE" in failure.message


def test_on_uvloop_the_daemons_event_loop() -> None:
    """The daemon runs on uvloop, whose transports are its own C classes: keep-alive, a
    timeout and a refused connection there too."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> list[Response | Failure]:
        async def hang_second(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
        ) -> bool:
            if i == 0:
                writer.write(OK)
                await writer.drain()
                return True
            await reader.read()
            return False

        t = H1Transport(4)
        try:
            async with serving(hang_second) as srv:
                got = [await t.send(post(srv.port)), await t.send(post(srv.port, deadline_s=0.2))]
                assert srv.connections == 1
            got.append(await t.send(post(9)))
            return got
        finally:
            await t.close()

    ok, hung, refused = uvloop.run(scenario())
    assert ok == Response(200)
    assert isinstance(hung, Failure)
    assert isinstance(refused, Failure)
    assert (hung.kind, refused.kind) == ("timeout", "refused")
