"""Talking to a running pushd over its native HTTP API (``/api/v1``), sync or async.

:class:`Client` (``http.client``, one keep-alive connection per thread, no event loop needed)
serves plain scripts and the command line; :class:`AsyncClient` (aiohttp) serves async code.
Both answer the decoded JSON body and turn every error answer back into the very
:mod:`pushd.errors` class the daemon raised (the envelope names it), so callers catch the same
exceptions App Engine's client raises. A daemon that cannot be reached is a
:class:`errors.TransientError` whose message says where pushd was looked for.

The server comes from the ``url`` argument, else ``PUSHD_URL``, else ``http://127.0.0.1:8460``;
a bearer token from ``token``, else ``PUSHD_TOKEN``.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import threading
import urllib.parse
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from pushd import errors, wire

if TYPE_CHECKING:
    import aiohttp  # imported when an AsyncClient first calls: the CLI never pays for it

DEFAULT_URL = "http://127.0.0.1:8460"
URL_ENV = "PUSHD_URL"
TOKEN_ENV = "PUSHD_TOKEN"
DEFAULT_TIMEOUT_S = 30.0

Query = Mapping[str, str | int | float | bool]


def server_url(url: str | None = None) -> str:
    """The base URL of the daemon: ``url``, ``$PUSHD_URL`` or the default, without a final /."""
    chosen = url or os.environ.get(URL_ENV) or DEFAULT_URL
    parts = urllib.parse.urlsplit(chosen)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise errors.Error(
            f"the pushd server URL {chosen!r} is not an http:// or https:// URL "
            f"(set it with --server or {URL_ENV}, e.g. {DEFAULT_URL})"
        )
    return chosen.rstrip("/")


def server_token(token: str | None = None) -> str | None:
    return token or os.environ.get(TOKEN_ENV) or None


def quote(segment: str) -> str:
    """One path segment (a queue or task name), percent-encoded."""
    return urllib.parse.quote(segment, safe="")


def _target(path: str, query: Query | None) -> str:
    if not query:
        return path
    pairs = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in query.items()}
    return f"{path}?{urllib.parse.urlencode(pairs)}"


def _headers(token: str | None, has_body: bool) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if has_body:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _not_pushd(where: str, what: str, body: bytes) -> str:
    """The message for an answer that is not pushd's: a web server, a proxy's error page, another
    API at the address the client was given."""
    text = " ".join(body[:120].decode("utf-8", "replace").split())
    return (
        f"{where} does not answer as pushd does ({what}: {text or 'no body'}); is pushd "
        f"listening there? (set the address with --server or {URL_ENV})"
    )


def raise_for_answer(status: int, body: bytes, where: str) -> NoReturn:
    """Raise the :mod:`pushd.errors` class an error answer names (or the nearest one)."""
    try:
        decoded = wire.loads(body)
    except errors.Error:
        decoded = None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    if not isinstance(error, dict):
        cls: type[errors.Error] = errors.TransientError if status >= 500 else errors.Error
        raise cls(_not_pushd(where, f"HTTP {status} without pushd's error object", body))
    message = str(error.get("message", ""))
    found = getattr(errors, str(error.get("exception", "")), None)
    if isinstance(found, type) and issubclass(found, errors.Error):
        raise found(message)
    name = str(error.get("status", ""))
    code = errors.ErrorCode.__members__.get(name)
    if code is not None:
        raise errors.from_code(code, message)
    raise errors.Error(f"HTTP {status}: {message}")


def _decode(status: int, body: bytes, where: str) -> Any:
    if status >= 400:
        raise_for_answer(status, body, where)
    if not body:
        return None
    try:
        return wire.loads(body)
    except errors.Error:  # pushd's API always answers JSON
        raise errors.Error(_not_pushd(where, f"HTTP {status}, not JSON", body)) from None


_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def _dropped(sock: socket.socket) -> bool:
    """True if an idle kept-alive socket was closed by the server (it reads as ready)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _unreachable(base: str, exc: BaseException) -> errors.TransientError:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return errors.TransientError(
        f"cannot reach pushd at {base}: {reason}; is `pushdctl serve` running there? "
        f"(set the address with --server or {URL_ENV})"
    )


class _HeldConnection:
    """A thread's kept-alive connection, closed when the thread-local that holds it goes away
    (its thread ended), so a socket is never left for the garbage collector to complain about."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.conn = conn

    def __del__(self) -> None:
        self.conn.close()


class _Server:
    """Where a client calls and how: the server's URL and token (the arguments, else the
    environment: :func:`server_url`, :func:`server_token`) and each call's timeout; shared by
    the blocking and the asyncio client, which set up their transport in ``_prepare``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.url = server_url(url)
        self.token = server_token(token)
        self.timeout_s = timeout_s
        self._prepare()

    def _prepare(self) -> None:
        """What the client's transport sets up once it knows where it calls."""


class Client(_Server):
    """A blocking client of the native API; safe to share between threads."""

    def _prepare(self) -> None:
        """The blocking transport: one kept-alive connection per thread."""
        parts = urllib.parse.urlsplit(self.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._local = threading.local()
        # Every thread's connection, so close_all() can close them without relying on the
        # order in which the garbage collector finalizes a thread-local and its socket.
        self._held: weakref.WeakSet[_HeldConnection] = weakref.WeakSet()
        self._held_lock = threading.Lock()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it is a kept-alive one being reused.

        A kept-alive socket the server has closed (or written to unasked) reads as ready:
        such a connection is replaced before a request is sent on it, as urllib3 does.
        """
        held: _HeldConnection | None = getattr(self._local, "conn", None)
        if held is not None and held.conn.sock is not None and _dropped(held.conn.sock):
            self.close()
            held = None
        if held is None or held.conn.sock is None:
            if held is None:
                cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                held = _HeldConnection(cls(self._host, self._port, timeout=self.timeout_s))
                self._local.conn = held
                with self._held_lock:
                    self._held.add(held)
            return held.conn, False
        return held.conn, True

    def close(self) -> None:
        """Close this thread's connection (other threads' close when their threads end)."""
        held: _HeldConnection | None = getattr(self._local, "conn", None)
        if held is not None:
            held.conn.close()
            self._local.conn = None

    def close_all(self) -> None:
        """Close every thread's connection; call it when no request is running any more."""
        with self._held_lock:
            held = list(self._held)
        for each in held:
            each.conn.close()
        self.close()

    def call(
        self, method: str, path: str, body: object = None, *, query: Query | None = None
    ) -> Any:
        """``method path`` with a JSON ``body``; the decoded answer, or the error raised."""
        payload = None if body is None else wire.dumps(body)
        target = self._prefix + _target(path, query)
        headers = _headers(self.token, payload is not None)
        for attempt in (1, 2):
            conn, reused = self._connection()
            try:
                conn.request(method, target, body=payload, headers=headers)
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                # The server closed a kept-alive connection as the request went out. Sending
                # again is safe only if the request cannot have taken effect twice: idempotent
                # methods (a POST may have added or leased tasks before the connection broke).
                self.close()
                if attempt == 2 or not reused or method not in _IDEMPOTENT:
                    raise _unreachable(self.url, exc) from None
                continue
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise _unreachable(self.url, exc) from None
            try:
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:  # answered, then cut: no retry
                self.close()
                raise _unreachable(self.url, exc) from None
            if response.will_close:
                self.close()
            return _decode(response.status, data, f"the server at {self.url}")
        raise AssertionError("unreachable")  # pragma: no cover

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close_all()


class AsyncClient(_Server):
    """The same calls for asyncio code; use ``async with`` or call :meth:`close`."""

    def _prepare(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def call(
        self, method: str, path: str, body: object = None, *, query: Query | None = None
    ) -> Any:
        import aiohttp  # lazily, see the module's imports

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        payload = None if body is None else wire.dumps(body)
        headers = _headers(self.token, payload is not None)
        try:
            async with self._session.request(
                method, self.url + _target(path, query), data=payload, headers=headers
            ) as response:
                data = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _unreachable(self.url, exc) from None
        return _decode(status, data, f"the server at {self.url}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
