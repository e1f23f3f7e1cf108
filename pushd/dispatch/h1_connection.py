"""One keep-alive HTTP/1.1 connection of the h1 transport (:mod:`pushd.dispatch.h1_transport`).

An ``asyncio.Protocol`` (so it runs on uvloop's C transports as on asyncio's) that carries one
exchange at a time: the request goes out in one ``transport.write``, the answer is parsed by
llhttp (``httptools``, C) as it arrives, and one ``loop.call_at`` timer per exchange ends it at
the attempt's deadline, whatever the receiver is doing (hung, trickling its head or its body).

The rules of :mod:`pushd.dispatch.transport` kept here:

* at most :data:`MAX_HEAD_BYTES` are read before the final answer's head, ``1xx`` answers
  included: an endless ``100 Continue`` ends at that bound, not at the deadline;
* the outcome is the final status (and ``Retry-After``) as soon as the head has come: a body
  is never waited for to decide. The body is read on (up to :data:`MAX_RESPONSE_READ`, until the
  deadline) only to keep the connection; beyond either, the connection is closed instead;
* a connection is reused only after a complete answer that allows it (no ``Connection:
  close``, no error, no timeout, no unread or unexpected bytes); an idle one the receiver closes
  is dropped from the pool when its end-of-file arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Protocol, cast

import httptools

from pushd.dispatch.aiohttp_transport import error_kind
from pushd.dispatch.transport import MAX_HEAD_BYTES, MAX_RESPONSE_READ, Failure, Response

TOO_LONG = (
    f"AnswerTooLong: the receiver sent more than {MAX_HEAD_BYTES} bytes before a final answer "
    "(e.g. endless 100 Continue)"
)
DISCONNECTED = "ServerDisconnectedError: the receiver closed the connection before answering"


class Owner(Protocol):
    """The pool a connection reports to (:class:`pushd.dispatch.h1_pool.Pool`)."""

    def done(self, conn: Connection, reusable: bool) -> None: ...

    def draining(self, conn: Connection) -> None: ...

    def lost(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """One connection to one (scheme, host, port, pinned address) and its current exchange."""

    def __init__(self, key: Hashable, owner: Owner, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.idle_since = 0.0
        self.lost = False  # closed by either side: never handed out again
        self._owner = owner
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._busy = False  # an exchange runs: from request() until its answer is done with
        self._waiter: asyncio.Future[Response | Failure] | None = None  # until the head
        self._timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._status = 0  # the final answer's status, 0 before its head
        self._retry_after: str | None = None
        self._body_bytes = 0
        self._complete = False
        self._reusable = True

    # ------------------------------------------------------------------ the exchange
    def request(
        self, data: bytes, deadline: float, *, bodyless: bool
    ) -> asyncio.Future[Response | Failure]:
        """Send ``data`` (a whole request) and return the future of its answer's outcome.
        ``bodyless``: a HEAD request, whose answer has no body whatever its length says."""
        assert self._transport is not None
        self._busy, self._head_bytes, self._status, self._retry_after = True, 0, 0, None
        self._body_bytes, self._complete, self._reusable = 0, False, not bodyless
        self._waiter = waiter = self._loop.create_future()
        self._timer = self._loop.call_at(deadline, self._deadline_passed)
        self._transport.write(data)
        return waiter

    def close(self) -> None:
        """Close the connection now (an attempt abandoned, the pool closing or expiring it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._busy = False
        if self._transport is not None:
            self._transport.abort()
        self._forget()

    def _deadline_passed(self) -> None:
        self._timer = None
        self._answer(Failure("timeout", "TimeoutError: the dispatch deadline passed"))
        self.close()

    def _answer(self, outcome: Response | Failure) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    def _fail(self, message: str) -> None:
        self._answer(Failure("connection", message))
        self.close()

    def _settle(self) -> None:
        """After bytes were parsed: answer once the final head is in, release once done."""
        if not self._busy or not self._status:
            return
        answered_now = self._waiter is not None
        if answered_now:
            self._answer(Response(self._status, self._retry_after))
        if not self._reusable:
            self.close()
        elif not self._complete:
            if answered_now:  # the body is read on, until the deadline, only to keep the socket
                self._owner.draining(self)
        else:
            self._busy = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.idle_since = self._loop.time()
            self._owner.done(self, True)

    def _forget(self) -> None:
        if not self.lost:
            self.lost = True
            self._owner.lost(self)

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        if not self._busy:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        if self._status:  # past the final head: the body (or what follows it)
            self._feed(data)
        elif len(data) <= MAX_HEAD_BYTES - self._head_bytes:
            self._head_bytes += len(data)
            self._feed(data)
        else:
            room = MAX_HEAD_BYTES - self._head_bytes
            self._head_bytes = MAX_HEAD_BYTES
            self._feed(data[:room])
            if not self._head_complete():  # the bound is reached, the final head is not
                self._fail(TOO_LONG)
                return
            self._feed(data[room:])
        self._settle()

    def _head_complete(self) -> bool:
        return self._status != 0

    def _feed(self, data: bytes) -> None:
        if not self._busy:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # 101 or an upgrade: the connection is not HTTP now
            self._reusable = False
        except httptools.HttpParserError as exc:
            self._reusable = False
            if not self._status:
                self._fail(f"{type(exc).__name__}: {exc}")

    def eof_received(self) -> bool:
        return False  # the receiver closed its side: close ours (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy and self._waiter is not None:
            if exc is None:
                self._answer(Failure("reset", DISCONNECTED))
            else:
                self._answer(Failure(error_kind(exc), f"{type(exc).__name__}: {exc}"))
        self._busy = False
        self._forget()

    # ------------------------------------------------------------------ httptools callbacks
    def on_header(self, name: bytes, value: bytes | None) -> None:
        if (
            not self._status
            and self._retry_after is None
            and len(name) == 11
            and name.lower() == b"retry-after"
        ):
            self._retry_after = (value or b"").decode("latin-1")

    def on_headers_complete(self) -> None:
        code = self._parser.get_status_code()
        if self._status:  # a second answer to one request
            self._reusable = False
        elif 100 <= code < 200 and code != 101:  # an interim answer: the final one follows
            self._retry_after = None
        else:
            self._status = code

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_RESPONSE_READ:
            self._reusable = False

    def on_message_complete(self) -> None:
        if self._status:
            self._complete = True
            if not self._parser.should_keep_alive():
                self._reusable = False
