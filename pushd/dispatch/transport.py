"""The seam between an attempt and the HTTP client that sends it.

Everything App Engine decides about a task request (its URL, its headers, its body, how an
answer is read as an outcome) lives in :mod:`pushd.dispatch`; a :class:`Transport` only moves
one request and says what came back. Every transport keeps the same delivery rules, which the
dispatch tests and the receiver-fault campaign hold it to:

* one request per call, never resent by the client itself, never a redirect followed;
* the per-attempt deadline covers everything: connecting, sending, the answer's head and the
  part of its body that is read;
* the headers go out as given, with their case and their repeats, and nothing is added but
  ``Host``, ``Content-Length`` and what HTTP/1.1 needs;
* at most :data:`MAX_HEAD_BYTES` before the final answer's head and :data:`MAX_RESPONSE_READ`
  of its body are read;
* a failure without an answer is classified in one word of ``models.ATTEMPT_ERRORS``
  (``refused``, ``reset``, ``timeout``, ``dns``, ...) and flagged ``local`` when the request
  never left because this machine ran out of something (:data:`LOCAL_ERRNOS`);
* with :attr:`Request.connect_to`, the connection goes to that address (one pushd has vetted)
  while ``Host``, TLS's server name and the certificate check use the URL's host.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

#: A request's headers: (name, value) pairs in the order they leave, with their case and their
#: repeats. A plain sequence, not a ``CIMultiDict``: pushd builds them once per attempt and the
#: h1 transport only walks them (building and iterating a multidict cost ~2 µs per delivery).
Headers = Sequence[tuple[str, str]]

MAX_RESPONSE_READ = 64 * 1024  # bytes of a response body read to keep the connection reusable
#: Most bytes a receiver may send for one attempt before its final status line and headers
#: (informational ``1xx`` answers included). Beyond it the attempt fails, the connection closed.
MAX_HEAD_BYTES = 64 * 1024
#: A connection failing with one of these never reached the receiver: the machine ran out of
#: open files (EMFILE, ENFILE), memory or buffers (ENOMEM, ENOBUFS) or local ports
#: (EADDRNOTAVAIL).
LOCAL_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS, errno.EADDRNOTAVAIL}
)


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request of one attempt, as it must leave."""

    method: str
    url: str
    #: Every header with its case and its repeats, in order (:data:`Headers`).
    headers: Headers
    body: bytes | None
    #: Seconds for the whole exchange: connect, send, the answer's head and the body read.
    deadline_s: float
    #: An IP address to connect to instead of resolving the URL's host (which still names the
    #: ``Host`` header, TLS's server name and the certificate to check).
    connect_to: str | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """The final answer's status and the one header the scheduler reads."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """No answer: why, in one word of ``models.ATTEMPT_ERRORS``, and the client's message."""

    kind: str
    message: str
    #: The request never left: a resource of this machine ran out (:data:`LOCAL_ERRNOS`).
    local: bool = False


class Transport(Protocol):
    """Sends one request of one attempt. Never raises for anything the network or the receiver
    does: every such outcome is a :class:`Response` or a :class:`Failure`."""

    async def send(self, request: Request) -> Response | Failure: ...

    async def close(self) -> None: ...
