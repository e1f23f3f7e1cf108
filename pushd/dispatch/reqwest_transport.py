"""The pyreqwest transport (Rust: hyper and reqwest behind an asyncio API): a candidate, not the
default (``transport: pyreqwest`` in the settings; issue 18).

It is about three times cheaper per request than aiohttp's client, but it cannot keep every rule
of :mod:`pushd.dispatch.transport` (docs/RELIABILITY.md, "Transport seam", lists them): hyper
writes header names in title case (``X-Appengine-Queuename``), not as given; reqwest adds
``Accept: */*``; pinning an address (``connect_to``) is a per-client setting there, not a
per-request one, so it is refused here; and the bytes before a final answer's head are bounded
by hyper's own buffer limit, not :data:`MAX_HEAD_BYTES`. The failures are classified from
reqwest's error classes and the causes' text.
"""

from __future__ import annotations

import datetime
from typing import Any

from pushd.dispatch.transport import MAX_RESPONSE_READ, Failure, Request, Response

_CAUSES = (  # text in an error's causes -> ATTEMPT_ERRORS kind, first match wins
    ("dns error", "dns"),
    ("failed to lookup address", "dns"),
    ("connection refused", "refused"),
    ("connection reset", "reset"),
    ("broken pipe", "reset"),
    ("connection closed before message completed", "reset"),
    ("incompletemessage", "reset"),
    ("too many open files", "local"),
    ("cannot assign requested address", "local"),
)


class ReqwestTransport:
    """:class:`~pushd.dispatch.transport.Transport` over one pyreqwest client."""

    def __init__(self, max_connections: int) -> None:
        from pyreqwest.client import ClientBuilder

        self.client = (
            ClientBuilder()
            .max_connections(max_connections)
            .follow_redirects(False)
            .referer(False)
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .build()
        )

    async def send(self, request: Request) -> Response | Failure:
        from pyreqwest import exceptions

        if request.connect_to is not None:
            return Failure("connection", "pyreqwest cannot pin an address per request")
        try:
            builder = (
                self.client.request(request.method, request.url)
                .headers(list(request.headers))
                .timeout(datetime.timedelta(seconds=request.deadline_s))
            )
            if request.body is not None:
                builder = builder.body_bytes(request.body)
            async with builder.build_streamed() as resp:
                await resp.body_reader.read(MAX_RESPONSE_READ)
                return Response(resp.status, resp.get_header("Retry-After"))
        except TimeoutError as exc:
            return Failure("timeout", f"{type(exc).__name__}: {exc}")
        except exceptions.PyreqwestError as exc:
            kind, message = _kind(exc), f"{type(exc).__name__}: {_cause(exc)}"
            if kind == "local":
                return Failure("connection", message, local=True)
            return Failure(kind, message)
        except ValueError as exc:  # an invalid URL built from a bad target mapping
            return Failure("invalid_url", f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        await self.client.close()


def _kind(exc: Any) -> str:
    """The word of ``models.ATTEMPT_ERRORS`` (or ``local``) for a pyreqwest error."""
    from pyreqwest import exceptions

    if isinstance(exc, exceptions.BuilderError):
        return "invalid_url"
    text = (str(exc) + " " + str(getattr(exc, "details", ""))).lower()
    for needle, kind in _CAUSES:
        if needle in text:
            return kind
    return "connection"


def _cause(exc: Any) -> str:
    """The innermost cause's message (``Connection refused (os error 111)``), else the error's."""
    causes = (getattr(exc, "details", None) or {}).get("causes") or []
    messages = [c.get("message", "") for c in causes if isinstance(c, dict)]
    return messages[-1] if messages and messages[-1] else str(exc)
