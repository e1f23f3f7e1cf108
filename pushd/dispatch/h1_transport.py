"""The h1 transport: pushd's own HTTP/1.1 client, made for exactly the requests it sends.

aiohttp's client was three quarters of the daemon's time (issue 18) and the cheaper native
clients cannot keep the delivery rules (:mod:`pushd.dispatch.transport`). This one does only
what a task attempt needs: the request is serialised in one go (the headers as given, with their
case and their repeats, plus ``Host`` and ``Content-Length``) and written once; the answer is
parsed by llhttp in C (``httptools``; :mod:`pushd.dispatch.h1_connection`), bounded and ended at
the attempt's deadline; connections are kept alive per target under the connection cap
(:mod:`pushd.dispatch.h1_pool`). No redirect is followed, nothing is resent: a request that fails
on a kept-alive connection is the attempt's failure (the receiver may have read it), as with
aiohttp in pushd (``session._retry_connection = False``).

HTTPS checks certificates with ``ssl.create_default_context()`` against the URL's host, also
when :attr:`Request.connect_to` pins the address; DNS goes through the event loop
(``getaddrinfo``) unless the address is pinned. Failures are classified as the aiohttp transport
classifies them (:func:`pushd.dispatch.aiohttp_transport.error_kind`).
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from dataclasses import dataclass

import yarl

from pushd.dispatch.aiohttp_transport import error_kind, is_local_failure
from pushd.dispatch.h1_connection import Connection
from pushd.dispatch.h1_pool import Pool
from pushd.dispatch.transport import Failure, Request, Response

#: The scheme and authority of a URL: what a connection is opened to.
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")
#: A request target sent as written: what yarl (aiohttp's URL parser) leaves unchanged. Anything
#: else (percent signs, dot segments, non-ASCII, an empty query) is normalised by yarl first.
_PLAIN_TARGET = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")
#: Methods whose request always says its length, even without a body (as aiohttp sends them).
_LENGTH_METHODS = frozenset({"POST", "PUT", "PATCH"})
_MAX_ORIGINS = 4096  # parsed origins kept; the cache starts again beyond it


@dataclass(frozen=True, slots=True)
class Origin:
    """A URL's scheme and authority, parsed once."""

    scheme: str
    host: str  # without IPv6 brackets, IDNA-encoded
    port: int
    host_line: str  # "Host: host[:port]\r\n", the port only when not the scheme's default
    auth_line: str  # "Authorization: Basic ...\r\n" for user:password@ in the URL, else ""

    @classmethod
    def parse(cls, origin: str) -> Origin:
        url = yarl.URL(origin)
        if url.scheme not in ("http", "https"):
            raise ValueError(f"{origin!r} is not an http or https URL")
        if not url.raw_host or url.port is None:
            raise ValueError(f"{origin!r} has no host")
        auth = ""
        if url.user is not None:
            pair = f"{url.user}:{url.password or ''}".encode()
            auth = f"Authorization: Basic {base64.b64encode(pair).decode()}\r\n"
        netloc = url.host_port_subcomponent or url.raw_host
        return cls(url.scheme, url.raw_host, url.port, f"Host: {netloc}\r\n", auth)


def request_target(url: str, origin_end: int) -> str:
    """The path and query sent in the request line, as aiohttp (yarl) would send them."""
    target = url[origin_end:]
    if _PLAIN_TARGET.fullmatch(target) and "/." not in target and not target.endswith("?"):
        return target
    return yarl.URL(url).raw_path_qs or "/"


class H1Transport:
    """:class:`~pushd.dispatch.transport.Transport` of pushd's own: keep-alive HTTP/1.1 over
    asyncio protocols, at most ``max_connections`` sockets open."""

    def __init__(self, max_connections: int, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_connections = max_connections
        self._ssl = ssl_context
        self._origins: dict[str, Origin] = {}
        self._pool: Pool | None = None

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            self._pool = Pool(self.max_connections, asyncio.get_running_loop())
        return self._pool

    async def send(self, request: Request) -> Response | Failure:
        pool = self.pool
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.deadline_s
        try:
            origin, data = self._serialise(request)
        except ValueError as exc:  # e.g. an invalid URL built from a bad target mapping
            return Failure("invalid_url", f"{type(exc).__name__}: {exc}")
        key = (origin.scheme, origin.host, origin.port, request.connect_to)
        conn = pool.take(key)
        if conn is None:
            got = await self._connect(key, origin, request.connect_to, deadline)
            if isinstance(got, Failure):
                return got
            conn = got
        waiter = conn.request(data, deadline, bodyless=request.method == "HEAD")
        try:
            return await waiter
        except BaseException:  # cancelled (the daemon stops): the exchange ends with its socket
            conn.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    # ------------------------------------------------------------------ the request's bytes
    def _serialise(self, request: Request) -> tuple[Origin, bytes]:
        """The request's origin and its bytes: request line, headers as given, body."""
        url = request.url
        match = _ORIGIN.match(url)
        if match is None:
            raise ValueError(f"{url!r} is not an absolute http or https URL")
        name = match.group()
        origin = self._origins.get(name)
        if origin is None:
            if len(self._origins) >= _MAX_ORIGINS:
                self._origins.clear()
            origin = self._origins[name] = Origin.parse(name)
        body = request.body
        # The headers as one string, then their names looked up in it, lowered once (a
        # multidict's lookups and items() cost more than the whole string). A name found
        # inside a value can only follow a newline, which fails the request below anyway.
        lines = "".join([f"{k}: {v}\r\n" for k, v in request.headers])
        names = "\n" + lines.lower()
        parts = [f"{request.method} {request_target(url, match.end())} HTTP/1.1\r\n"]
        if "\nhost:" not in names:
            parts.append(origin.host_line)
        if origin.auth_line and "\nauthorization:" not in names:
            parts.append(origin.auth_line)
        if "\ncontent-length:" in names or "\ntransfer-encoding:" in names:  # ours says it
            parts += [
                f"{k}: {v}\r\n"
                for k, v in request.headers
                if k.lower() not in ("content-length", "transfer-encoding")
            ]
            extra = 0  # one line a part
        else:
            parts.append(lines)
            extra = len(request.headers) - 1  # one part of one line a header
        if body is not None:
            parts.append(f"Content-Length: {len(body)}\r\n")
        elif request.method in _LENGTH_METHODS:
            parts.append("Content-Length: 0\r\n")
        parts.append("\r\n")
        head = "".join(parts)
        lines_expected = len(parts) + extra
        if head.count("\n") != lines_expected or head.count("\r") != lines_expected:
            raise ValueError("a header name or value contains a newline or carriage return")
        data = head.encode()
        return origin, data + body if body else data

    # ------------------------------------------------------------------ connecting
    async def _connect(
        self,
        key: tuple[str, str, int, str | None],
        origin: Origin,
        connect_to: str | None,
        deadline: float,
    ) -> Connection | Failure:
        """A connection to ``key``: idle, or opened under the cap before the deadline."""
        pool = self.pool
        loop = asyncio.get_running_loop()
        host = connect_to or origin.host
        try:
            async with asyncio.timeout_at(deadline):
                conn = await pool.acquire(key)
                if conn is not None:
                    return conn
                try:
                    _, conn = await loop.create_connection(
                        lambda: Connection(key, pool, loop),
                        host,
                        origin.port,
                        ssl=self._tls() if origin.scheme == "https" else None,
                        server_hostname=origin.host if origin.scheme == "https" else None,
                    )
                except BaseException:
                    pool.not_opened()
                    raise
                pool.opened(conn)
                return conn
        except TimeoutError as exc:
            return Failure("timeout", f"{type(exc).__name__}: connecting to {host}:{origin.port}")
        except ssl.SSLError as exc:  # also a ValueError: not an invalid URL but a failed handshake
            return Failure("connection", f"{type(exc).__name__}: {host}:{origin.port}: {exc}")
        except OSError as exc:
            message = f"{type(exc).__name__}: cannot connect to {host}:{origin.port}: {exc}"
            return Failure(error_kind(exc), message, is_local_failure(exc))
        except ValueError as exc:  # e.g. a host name IDNA cannot encode
            return Failure("invalid_url", f"{type(exc).__name__}: {exc}")

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl
