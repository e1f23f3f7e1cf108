"""The aiohttp transport: the daemon's first way of sending a request (``transport: aiohttp``;
the default is now pushd's own, :mod:`pushd.dispatch.h1_transport`, which keeps the same rules).

One shared ``ClientSession`` with keep-alive and at most ``max_connections`` requests in flight
(:func:`make_session`); the connection protocol bounds the bytes before an answer's head
(:class:`_BoundedResponseHandler`), which aiohttp has no setting for. The rules every transport
keeps are in :mod:`pushd.dispatch.transport`.
"""

from __future__ import annotations

import errno
import functools
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import yarl
from aiohttp import client_proto

from pushd.dispatch import transport
from pushd.dispatch.transport import Failure, Request, Response

_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


def error_kind(exc: BaseException) -> str:
    """Why a request got no answer, in one word of ``models.ATTEMPT_ERRORS``."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return "invalid_url"
    cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(cause, socket.gaierror):
        return "dns"
    if isinstance(cause, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return "reset"
    if isinstance(cause, OSError) and cause.errno in _RESET_ERRNOS:
        return "reset"
    if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
        return "refused"
    return "connection"


def is_local_failure(exc: BaseException) -> bool:
    """True if ``exc`` (or the OSError it wraps) says this machine ran out of a resource before
    the request left (:data:`LOCAL_ERRNOS`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in transport.LOCAL_ERRNOS:
            return True
        wrapped = getattr(current, "os_error", None)  # aiohttp's ClientConnectorError
        if isinstance(wrapped, OSError) and wrapped.errno in transport.LOCAL_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False


class AnswerTooLong(aiohttp.ClientPayloadError):
    """The receiver sent more than :data:`MAX_HEAD_BYTES` before its final answer."""


class _BoundedResponseHandler(client_proto.ResponseHandler):
    """aiohttp's connection protocol, bounding what one request's answer may send before its
    final status line and headers.

    aiohttp's parser turns every 25-byte ``100 Continue`` into a queued message of about a
    kilobyte, at size 0 for its flow control, so a receiver streaming them grew the daemon by
    tens of MiB per attempt. Bytes before the final head are fed to the parser at most
    :data:`MAX_HEAD_BYTES` per request; past that the connection is cut. The body after the
    head is left to aiohttp's flow control (reading pauses at twice its 64 KiB buffer).
    ``set_response_params`` is called once per request on its connection.
    """

    _head_bytes = 0
    _head_done = False

    def set_response_params(self, *args: object, **kwargs: object) -> None:
        self._head_bytes, self._head_done = 0, False
        super().set_response_params(*args, **kwargs)  # type: ignore[arg-type]

    def head_done(self) -> bool:
        """The current request's final answer head has been parsed."""
        return self._head_done

    def feed_data(self, data: tuple[Any, Any], size: int = 0) -> None:
        code = getattr(data[0], "code", 0)
        if not 100 <= code < 200 or code == 101:
            self._head_done = True  # a final answer (or a switch): its body is not limited here
        super().feed_data(data, size)

    def data_received(self, data: bytes) -> None:
        if self._head_done:
            super().data_received(data)
            return
        room = max(0, transport.MAX_HEAD_BYTES - self._head_bytes)
        self._head_bytes += min(room, len(data))
        super().data_received(data[:room])
        rest = data[room:]
        if not rest:
            return
        if self.head_done():  # the final head was in the bytes fed: the rest is its body
            super().data_received(rest)
            return
        if self.transport is not None:
            self.transport.close()
        if self.exception() is None:
            self.set_exception(
                AnswerTooLong(
                    f"the receiver sent more than {transport.MAX_HEAD_BYTES} bytes before a final "
                    "answer (e.g. endless 100 Continue)"
                )
            )


def make_session(max_connections: int) -> aiohttp.ClientSession:
    """The one shared client session: keep-alive, at most ``max_connections`` requests in flight.

    aiohttp resends a GET, PUT or DELETE once by itself when a kept-alive connection is reset;
    for a task that is a second delivery inside one attempt, with the same retry count, which
    the receiver sees and pushd does not count. Every attempt must be exactly one request, so
    that resend is turned off (the attribute aiohttp's own test client sets for the same end).
    """
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0)
    # Every connection's protocol bounds each answer's bytes before its head (MAX_HEAD_BYTES); aiohttp
    # has no setting for it, so the connector's protocol factory is replaced.
    factory: Callable[[], client_proto.ResponseHandler]
    factory = functools.partial(_BoundedResponseHandler, loop=connector._loop)
    connector._factory = factory  # type: ignore[assignment]
    # No User-Agent or Content-Type of aiohttp's own: a request carries the task's (Cloud
    # Tasks' HTTP tasks never get a default Content-Type, CLOUDTASKS.md 1.5).
    session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Content-Type"),
    )
    session._retry_connection = False
    return session


class AiohttpTransport:
    """:class:`~pushd.dispatch.transport.Transport` over one aiohttp ``ClientSession``."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def send(self, request: Request) -> Response | Failure:
        url: str | yarl.URL = request.url
        headers = request.headers
        server_hostname = None
        if request.connect_to is not None:
            url, headers, server_hostname = _pinned(request)
        try:
            async with self.session.request(
                request.method,
                url,
                data=request.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=request.deadline_s),
                server_hostname=server_hostname,
            ) as resp:
                await resp.content.read(transport.MAX_RESPONSE_READ)
                return Response(resp.status, resp.headers.get("Retry-After"))
        except TimeoutError as exc:
            return Failure(error_kind(exc), f"{type(exc).__name__}: {exc}")
        except (aiohttp.ClientError, OSError) as exc:
            return Failure(error_kind(exc), f"{type(exc).__name__}: {exc}", is_local_failure(exc))
        except ValueError as exc:  # e.g. an invalid URL built from a bad target mapping
            return Failure(error_kind(exc), f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        await self.session.close()


def _pinned(request: Request) -> tuple[yarl.URL, Any, str | None]:
    """The URL with its host replaced by ``connect_to``, the headers with the URL's ``Host``,
    and the server name TLS checks (the URL's host, for https)."""
    original = yarl.URL(request.url)
    if original.host is None or request.connect_to is None:
        raise ValueError(f"cannot pin a URL without a host: {request.url!r}")
    host = original.host_port_subcomponent or original.host
    headers = [(k, v) for k, v in request.headers if k.lower() != "host"] + [("Host", host)]
    url = original.with_host(request.connect_to)
    return url, headers, original.host if original.scheme == "https" else None
