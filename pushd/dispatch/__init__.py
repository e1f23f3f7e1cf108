"""One webhook attempt: build the request App Engine would send, send it, classify the answer.

The request (SPEC 3): the task's method, its relative URL on the base URL of its target, its
user headers, its body for POST and PUT, and the dispatcher's ``X-AppEngine-*`` headers.
Redirects are not followed; any 2xx is success and everything else, a refused connection or
the dispatch deadline passing is a failure. The dispatcher knows nothing of the store or of
retries: it returns an :class:`Attempt` and the scheduler decides. Nor of the HTTP client: a
:class:`~pushd.dispatch.transport.Transport` sends the request (pushd's own HTTP/1.1 client by
default, :mod:`pushd.dispatch.h1_transport`; aiohttp's with ``transport: aiohttp``), under the
rules written in :mod:`pushd.dispatch.transport`.

Two kinds of failure are told apart: a request that never left because this machine ran out of
something (open files, memory, local ports: :data:`LOCAL_ERRNOS`) is ``local``, not an attempt of
the task, which the scheduler gives back uncounted; everything else reached (or tried to reach)
the receiver. Whatever a receiver sends, one attempt reads at most :data:`MAX_HEAD_BYTES` before
the final answer's head (an endless stream of ``100 Continue`` answers once grew the daemon by
tens of MiB per attempt) and :data:`MAX_RESPONSE_READ` of its body.

Signing (beyond App Engine): with a secret configured, every request carries
``X-Pushd-Timestamp`` (epoch seconds) and ``X-Pushd-Signature: v1=<hex>``, where ``<hex>`` is
HMAC-SHA256 over ``b"<timestamp>.<task name>." + body``. See the README for a verifier.

For apps on App Engine's SDK (``wrap_wsgi_app``), every request also carries an API ticket
(``X-AppEngine-Api-Ticket``, :mod:`pushd.tickets`), so the handler can add tasks through
``/rpc_http`` while it runs, and ``X-AppEngine-User-IP: 0.1.0.2``, App Engine's source address
for task requests, which the SDK's middleware makes the request's ``REMOTE_ADDR`` (its
``deferred`` handler refuses task requests from any other address).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Protocol

import multidict

from pushd import clock, models, settings, tickets
from pushd.dispatch import http_target, url_policy
from pushd.dispatch.aiohttp_transport import (
    AiohttpTransport,
    AnswerTooLong,
    error_kind,
    is_local_failure,
    make_session,
)
from pushd.dispatch.h1_transport import H1Transport
from pushd.dispatch.transport import (
    LOCAL_ERRNOS,
    MAX_HEAD_BYTES,
    MAX_RESPONSE_READ,
    Failure,
    Headers,
    Request,
    Response,
    Transport,
)

__all__ = [
    "LOCAL_ERRNOS",
    "MAX_HEAD_BYTES",
    "MAX_RESPONSE_READ",
    "TRANSPORTS",
    "AiohttpTransport",
    "AnswerTooLong",
    "Attempt",
    "Deliverer",
    "Failure",
    "H1Transport",
    "Headers",
    "Request",
    "Response",
    "Transport",
    "build_headers",
    "deliver",
    "deliver_http",
    "error_kind",
    "executions",
    "header_pairs",
    "is_local_failure",
    "make_session",
    "make_transport",
    "parse_retry_after",
    "resolve_target",
    "retry_reason",
    "signature",
]

USER_AGENT = "AppEngine-Google; (+http://code.google.com/appengine) pushd"
#: Headers of the task that the dispatcher owns or that would break the request (SPEC 3.3).
RESERVED_HEADERS = frozenset(
    {
        "x-appengine-queuename",
        "x-appengine-taskname",
        "x-appengine-taskexecutioncount",
        "x-appengine-taskpreviousresponse",
        "x-appengine-taskretrycount",
        "x-appengine-tasketa",
        "x-appengine-taskretryreason",
        "x-appengine-development-payload",
        "x-appengine-api-ticket",
        "x-appengine-user-ip",
        "x-pushd-timestamp",
        "x-pushd-signature",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
    }
)
BODY_METHODS = frozenset({models.Method.POST, models.Method.PUT})
executions = http_target.executions
#: The address App Engine's task requests come from (SPEC 3.1), as the SDK's middleware reads it.
TASK_SOURCE_IP = "0.1.0.2"
#: The longest Retry-After honoured: as long as the longest backoff (a century).
_MAX_RETRY_AFTER_US = clock.seconds_to_us(clock.MAX_DELAY_S)
#: How long an API ticket outlives the dispatch deadline of the request that carried it.
TICKET_SLACK_US = 300 * clock.US_PER_SECOND


class _QueueLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def target(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery attempt came to."""

    status: int | None  # HTTP status, None when no response arrived
    error: str | None = None  # why there was no (successful) response, for logs and dead letters
    retry_after_us: int | None = None  # the receiver's Retry-After, as a delay from now
    kind: str | None = None  # without a response: one of models.ATTEMPT_ERRORS
    url: str = ""  # the full URL the request went to
    #: The request never left: a resource of this machine ran out (:data:`LOCAL_ERRNOS`).
    #: Not an attempt of the task, which did not reach its receiver.
    local: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def throttled(self) -> bool:
        """503 or 429: the receiver asks pushd to slow the whole queue down."""
        return self.status in (429, 503)

    def last(self, now_us: int, *, executions: int = 0) -> models.LastAttempt:
        """This attempt as kept with its task (message cut to ``MAX_ATTEMPT_MESSAGE``);
        ``executions``: an HTTP task's count of answers below 500 (see :func:`executions`)."""
        message = self.error or ("" if self.status is None else f"HTTP {self.status}")
        if len(message) > models.MAX_ATTEMPT_MESSAGE:
            message = message[: models.MAX_ATTEMPT_MESSAGE - 3] + "..."
        return models.LastAttempt(
            time_us=now_us,
            status=self.status,
            error=self.kind,
            message=message,
            url=self.url,
            executions=executions,
        )


def resolve_target(
    queue_target: str | None, task: models.Task, targets: Mapping[str, str]
) -> str | None:
    """The App Engine target name a task goes to (SPEC 8.2), or None for the default.

    queue.yaml's ``target`` wins over the task's; a task's own ``target`` wins over its
    ``Host`` header, from which the longest known ``version.service`` prefix is taken.
    """
    if queue_target:
        return queue_target
    if task.target:
        return task.target
    hosts = task.header_values("Host")
    if hosts:
        host = hosts[0].split(":", 1)[0].replace("-dot-", ".").lower()
        labels = host.split(".")
        for n in range(len(labels), 0, -1):
            candidate = ".".join(labels[:n])
            if candidate in targets:
                return candidate
    return None


def signature(secret: str, timestamp: int, task_name: str, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256 of b"<timestamp>.<task name>." + body>``."""
    message = f"{timestamp}.{task_name}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def build_headers(
    task: models.Task,
    *,
    queue: str,
    signing_secret: str | None,
    now_us: int,
    api_ticket: str | None = None,
) -> multidict.CIMultiDict[str]:
    """Every header of the request for ``task`` (SPEC 3.2 and 3.3), looked up by name: what
    :func:`header_pairs` sends, as a ``CIMultiDict``."""
    pairs = header_pairs(
        task, queue=queue, signing_secret=signing_secret, now_us=now_us, api_ticket=api_ticket
    )
    return multidict.CIMultiDict(pairs)


def header_pairs(
    task: models.Task,
    *,
    queue: str,
    signing_secret: str | None,
    now_us: int,
    api_ticket: str | None = None,
) -> list[tuple[str, str]]:
    """Every header of the request for ``task`` (SPEC 3.2 and 3.3), in the order they leave:
    the task's own headers in their order, then the dispatcher's. One plain list, which the
    transport walks once (:data:`~pushd.dispatch.transport.Headers`)."""
    pairs: list[tuple[str, str]] = []
    content_type = user_agent = False
    for key, value in task.headers:
        lower = key.lower()
        if lower in RESERVED_HEADERS:
            continue
        pairs.append((key, value))
        if lower == "content-type":
            content_type = True
        elif lower == "user-agent":
            user_agent = True
    pairs += (
        ("X-AppEngine-QueueName", queue),
        ("X-AppEngine-TaskName", task.name),
        ("X-AppEngine-TaskRetryCount", str(task.retry_count)),
        ("X-AppEngine-TaskExecutionCount", str(task.execution_count)),
        ("X-AppEngine-TaskETA", f"{task.eta_us / clock.US_PER_SECOND:.6f}"),
    )
    if task.last_status is not None:
        pairs.append(("X-AppEngine-TaskPreviousResponse", str(task.last_status)))
    if task.retry_count > 0:
        pairs.append(("X-AppEngine-TaskRetryReason", retry_reason(task)))
    if not content_type and task.payload and task.method in BODY_METHODS:
        pairs.append(("Content-Type", "application/octet-stream"))
    if not user_agent:
        pairs.append(("User-Agent", USER_AGENT))
    pairs.append(("X-AppEngine-User-IP", TASK_SOURCE_IP))
    if api_ticket is not None:
        pairs.append(("X-AppEngine-Api-Ticket", api_ticket))
    if signing_secret:  # both names are reserved: no header of the task's to replace
        pairs += _signed(signing_secret, task, now_us)
    return pairs


def _signed(signing_secret: str, task: models.Task, now_us: int) -> list[tuple[str, str]]:
    """pushd's signature headers (the module's docstring)."""
    body = task.payload if task.method in BODY_METHODS else b""
    ts = now_us // clock.US_PER_SECOND
    return [
        ("X-Pushd-Timestamp", str(ts)),
        ("X-Pushd-Signature", signature(signing_secret, ts, task.name, body)),
    ]


#: ``X-AppEngine-TaskRetryReason`` as Cloud Tasks sends it (CLOUDTASKS.md 1.5, recorded from
#: production): ``App Error`` after an HTTP answer, ``Instance Unavailable`` after none.
RETRY_REASON_ANSWERED = "App Error"
RETRY_REASON_NO_ANSWER = "Instance Unavailable"


def retry_reason(task: models.Task) -> str:
    """Why ``task`` is retried, in the words of the real service (not free text: handlers
    written for App Engine compare it)."""
    return RETRY_REASON_ANSWERED if task.last_status is not None else RETRY_REASON_NO_ANSWER


def parse_retry_after(value: str | None, now_us: int) -> int | None:
    """A Retry-After header (delay in seconds or an HTTP date) as a delay in µs, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        # Capped like backoffs (a century): 10**13 s overflowed SQLite's INTEGER and stopped
        # the daemon, again after every restart.
        return min(int(value) * clock.US_PER_SECOND, _MAX_RETRY_AFTER_US)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    delay_us = clock.seconds_to_us(when.timestamp()) - now_us
    return min(max(0, delay_us), _MAX_RETRY_AFTER_US)


async def deliver(
    transport: Transport,
    task: models.Task,
    *,
    queue: str,
    base_url: str,
    deadline_s: float,
    signing_secret: str | None,
    now_us: int,
    api_ticket: str | None = None,
    connect_to: str | None = None,
) -> Attempt:
    """Send one attempt of ``task`` through ``transport`` and classify the result. Never raises
    for network errors. ``connect_to``: an address pushd has vetted, connected to instead of
    resolving the URL's host (:attr:`Request.connect_to`)."""
    headers = header_pairs(
        task, queue=queue, signing_secret=signing_secret, now_us=now_us, api_ticket=api_ticket
    )
    url = base_url.rstrip("/") + task.url
    request = _request(task, url, headers, deadline_s, connect_to)
    return _attempt(await transport.send(request), request, now_us)


async def deliver_http(
    transport: Transport,
    task: models.Task,
    *,
    queue: str,
    policy: url_policy.UrlPolicy,
    deadline_s: float,
    signing_secret: str | None,
    now_us: int,
    authorization: str | None = None,
) -> Attempt:
    """One attempt of a Cloud Tasks HTTP task (:mod:`pushd.dispatch.http_target`): its URL
    checked by ``policy`` now, the request sent to the address checked. A refused URL is a
    failed attempt without an answer (kind ``forbidden`` or ``dns``), never sent."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(deadline_s):
            vetted = await policy.vet(task.url)
    except TimeoutError:
        vetted = url_policy.Refused("dns", f"resolving the host took over {deadline_s:g}s")
    if isinstance(vetted, url_policy.Refused):
        return Attempt(None, vetted.message, kind=vetted.kind, url=task.url)
    headers = http_target.build_http_headers(
        task, queue=queue, now_us=now_us, authorization=authorization
    )
    if signing_secret:
        for key, value in _signed(signing_secret, task, now_us):
            headers[key] = value  # in place of the task's own, if it has any
    # The deadline covers the resolution too: the attempt must end before its claim does.
    left_s = max(deadline_s - (loop.time() - started), 0.001)
    request = _request(task, task.url, list(headers.items()), left_s, vetted.address)
    return _attempt(await transport.send(request), request, now_us)


def _request(
    task: models.Task, url: str, headers: Headers, deadline_s: float, connect_to: str | None
) -> Request:
    body = task.payload if task.method in BODY_METHODS else None
    return Request(task.method.value, url, headers, body, deadline_s, connect_to)


def _attempt(outcome: Response | Failure, request: Request, now_us: int) -> Attempt:
    """What came back for ``request``, classified. (Building the request and classifying its
    answer are plain functions around the one ``await`` of the transport: every coroutine
    layer between the scheduler and the socket is resumed once more per delivery.)"""
    if isinstance(outcome, Failure):
        error = (
            f"dispatch deadline of {request.deadline_s:g}s exceeded"
            if outcome.kind == "timeout"
            else outcome.message
        )
        return Attempt(None, error, kind=outcome.kind, url=request.url, local=outcome.local)
    status = outcome.status
    ok = 200 <= status < 300
    retry_after = parse_retry_after(outcome.retry_after, now_us)
    return Attempt(status, None if ok else f"HTTP {status}", retry_after, url=request.url)


#: The transports a daemon can use (``transport`` in the settings); the first is the default.
TRANSPORTS = settings.TRANSPORTS


def make_transport(max_connections: int, kind: str = TRANSPORTS[0]) -> Transport:
    """The daemon's transport of ``kind`` (one of :data:`TRANSPORTS`), at most
    ``max_connections`` requests in flight."""
    if kind == "pyreqwest":
        from pushd.dispatch.reqwest_transport import ReqwestTransport  # optional: pip install

        return ReqwestTransport(max_connections)
    if kind == "aiohttp":
        return AiohttpTransport(make_session(max_connections))
    return H1Transport(max_connections)


@dataclass(eq=False)
class Deliverer:
    """The daemon's delivery function: routes a task to its target and sends it."""

    transport: Transport
    _: KW_ONLY
    targets: Mapping[str, str]
    default_target: str
    signing_secret: str | None
    api_tickets: tickets.Tickets | None = None
    #: Where HTTP tasks may go (``http_targets``), checked at every attempt.
    policy: url_policy.UrlPolicy = dataclasses.field(default_factory=url_policy.UrlPolicy)
    #: ``cloud_tasks.oauth_token``: sent for HTTP tasks with an ``oauth_token``.
    oauth_token: str | None = None
    #: Mints the ID token of HTTP tasks with an ``oidc_token``; None sends none.
    oidc_minter: http_target.Minter | None = None

    def base_url(self, queue_target: str | None, task: models.Task) -> str:
        if not self.targets:  # one target: no need to read the task's Host header
            return self.default_target
        name = resolve_target(queue_target, task, self.targets)
        return self.targets.get(name, self.default_target) if name else self.default_target

    async def __call__(
        self, task: models.Task, queue: _QueueLike, *, deadline_s: float, now_us: int
    ) -> Attempt:
        if task.is_http_target:
            return await self._deliver_http(task, queue.name, deadline_s=deadline_s, now_us=now_us)
        # deliver() inlined: one coroutine layer less on every delivery.
        headers = header_pairs(
            task,
            queue=queue.name,
            signing_secret=self.signing_secret,
            now_us=now_us,
            api_ticket=self._ticket(deadline_s, now_us),
        )
        url = self.base_url(queue.target, task).rstrip("/") + task.url
        request = _request(task, url, headers, deadline_s, None)
        return _attempt(await self.transport.send(request), request, now_us)

    async def _deliver_http(
        self, task: models.Task, queue: str, *, deadline_s: float, now_us: int
    ) -> Attempt:
        try:
            value = await http_target.authorization(
                task, oauth_token=self.oauth_token, minter=self.oidc_minter
            )
        except Exception as exc:  # the minter (its key store) failed: not the task's attempt
            message = f"cannot mint the task's OIDC token: {type(exc).__name__}: {exc}"
            return Attempt(None, message, kind="connection", url=task.url, local=True)
        return await deliver_http(
            self.transport,
            task,
            queue=queue,
            policy=self.policy,
            deadline_s=deadline_s,
            signing_secret=self.signing_secret,
            now_us=now_us,
            authorization=value,
        )

    def _ticket(self, deadline_s: float, now_us: int) -> str | None:
        if self.api_tickets is None:
            return None
        valid_us = clock.seconds_to_us(deadline_s) + TICKET_SLACK_US
        return self.api_tickets.mint(now_us=now_us, valid_us=valid_us)
