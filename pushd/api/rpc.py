"""App Engine's API over HTTP: ``POST /rpc_http`` as the App Engine SDK for Python 3 calls it.

The SDK (``google/appengine/runtime/default_api_stub.py``) posts every API call of an app to
``http://$API_HOST:$API_PORT/rpc_http``: a ``Request`` (:mod:`pushd.proto.remote_api_pb2`)
naming the service and method, holding the method's serialized request and the calling
request's API ticket. The answer is always HTTP 200 (the SDK treats any other status as a
failed connection) with a ``Response`` holding exactly one of:

* ``response``: the method's serialized response;
* ``application_error``: the service refused the call; ``code`` is its error code (the SDK
  raises the matching ``taskqueue`` exception, SPEC 1.14) and ``detail`` says why;
* ``rpc_error``: the call reached no service: ``CALL_NOT_FOUND`` for an unknown service or
  method, ``PARSE_ERROR`` for a body or request that does not parse, ``REQUEST_TOO_LARGE``.

Services register their methods (:class:`Method`) with :func:`add_routes`; pushd serves the
task queue (:mod:`pushd.api.rpc_taskqueue`). Failures raised before a handler runs (the
loopback guard, a body over the size limit) are rendered here too, through the error
middleware's renderer hook, so the SDK sees them as the errors they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from google.protobuf import message as pb_message

from pushd import errors, service, settings, tickets
from pushd.api import auth
from pushd.api import errors as api_errors
from pushd.api.keys import SERVICE, TOKENS
from pushd.proto import remote_api_pb2 as remote

if TYPE_CHECKING:
    from pushd.queue_yaml import config

PATH = "/rpc_http"
CONTENT_TYPE = "application/octet-stream"
TICKETS = web.AppKey[tickets.Tickets]("api_tickets")
#: Who a delivery ticket acts as: a producer, enough for a task handler to add follow-up tasks
#: (tickets travel to every push target, so they carry no more; other calls need a token).
TICKET_HOLDER = settings.ApiToken(name="api ticket of a task request", token="", role="producer")

_RpcCode = remote.RpcError.ErrorCode


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """One API call being served: who makes it, what it may do, and when."""

    service: service.Service
    action: auth.Action
    #: The token the ticket stands for; None when no tokens are configured (all is allowed).
    token: settings.ApiToken | None
    now_us: int

    def _refusal(self, cfg: config.QueueConfig) -> str | None:
        if self.token is None:
            return None
        return auth.acl_refusal(cfg, self.token, self.action)

    def queue(self, raw: bytes) -> config.QueueConfig:
        """The configured queue named ``raw``, if the caller may act on it."""
        cfg = self.service.queues.queue(text(raw, "queue_name", errors.UnknownQueueError))
        if (refusal := self._refusal(cfg)) is not None:
            raise errors.PermissionDeniedError(refusal)
        return cfg

    def may_see(self, cfg: config.QueueConfig) -> bool:
        """Whether a listing shows ``cfg`` to the caller (a pull queue's acl may hide it)."""
        return self._refusal(cfg) is None


Handler = Callable[[Call, Any], Awaitable[pb_message.Message]]


@dataclasses.dataclass(frozen=True, slots=True)
class Method:
    """One method of a service: its request message, what it does, and its handler."""

    request: type[pb_message.Message] | None  # None: the handler never reads the request
    action: auth.Action
    handler: Handler


SERVICES = web.AppKey[Mapping[str, Mapping[str, Method]]]("rpc_services")


def text(raw: bytes, field: str, error: type[errors.Error] = errors.Error) -> str:
    """A bytes field of a request as text (UTF-8, as the SDK encodes it)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{field} must be UTF-8 text; got {raw[:60]!r}") from None


def _answer(response: remote.Response) -> web.Response:
    return web.Response(body=response.SerializeToString(), content_type=CONTENT_TYPE)


def rpc_error(code: int, detail: str) -> web.Response:
    return _answer(remote.Response(rpc_error=remote.RpcError(code=code, detail=detail)))


def application_error(code: int, detail: str) -> web.Response:
    error = remote.ApplicationError(code=code, detail=detail)
    return _answer(remote.Response(application_error=error))


def _holder(request: web.Request, ticket: object, now_us: int) -> settings.ApiToken | None:
    """Whom ``ticket`` stands for; raises PermissionDeniedError if it stands for nobody."""
    tokens = request.app[TOKENS]
    if not tokens:
        return None
    if not isinstance(ticket, str):  # protobuf hands a proto2 string that is not UTF-8 as bytes
        raise errors.PermissionDeniedError("the API ticket of this call is not UTF-8 text")
    found = auth.token_for(tokens, ticket.encode("utf-8", "surrogatepass"))
    if found is not None:
        return found
    if request.app[TICKETS].valid(ticket, now_us=now_us):
        return TICKET_HOLDER
    raise errors.PermissionDeniedError(
        "the API ticket of this call is neither an API token of pushd nor a ticket pushd gave "
        "a task request; outside task requests set HTTP_X_APPENGINE_API_TICKET to a token"
    )


def _missing(parsed: pb_message.Message) -> str:
    """What a parsed proto2 message lacks: protobuf's parser does not check required fields."""
    if parsed.IsInitialized():
        return ""
    missing: list[str] = parsed.FindInitializationErrors()  # type: ignore[attr-defined]  # unstubbed
    return "it lacks the required field(s) " + ", ".join(missing)


async def serve(request: web.Request) -> web.Response:
    """``POST /rpc_http``: one API call in, one ``Response`` out, always with HTTP 200."""
    envelope = remote.Request()
    try:
        envelope.ParseFromString(await request.read())
    except pb_message.DecodeError as exc:
        return rpc_error(_RpcCode.PARSE_ERROR, f"the body is not a remote API Request: {exc}")
    if missing := _missing(envelope):
        return rpc_error(_RpcCode.PARSE_ERROR, f"the body is not a remote API Request: {missing}")
    service, name = envelope.service_name, envelope.method
    services = request.app[SERVICES]
    method = services.get(service, {}).get(name)
    if method is None:
        known = ", ".join(sorted(services)) or "none"
        return rpc_error(
            _RpcCode.CALL_NOT_FOUND,
            f"pushd does not serve {service}.{name}(); the services it serves: {known}",
        )
    svc = request.app[SERVICE]
    now_us = svc.now_us()
    token = _holder(request, envelope.request_id, now_us)
    if token is not None and not auth.role_allows(token, method.action):
        raise errors.PermissionDeniedError(
            f"token {token.name!r} has role {token.role!r}, which may not {method.action.value}"
        )
    call_request: pb_message.Message | None = None
    if method.request is not None:
        call_request = method.request()
        try:
            call_request.ParseFromString(envelope.request)
        except pb_message.DecodeError as exc:
            return rpc_error(
                _RpcCode.PARSE_ERROR,
                f"the request of {service}.{name}() is not a {method.request.__name__}: {exc}",
            )
        if missing := _missing(call_request):
            return rpc_error(
                _RpcCode.PARSE_ERROR,
                f"the request of {service}.{name}() is not a {method.request.__name__}: {missing}",
            )
    answer = await method.handler(Call(svc, method.action, token, now_us), call_request)
    return _answer(remote.Response(response=answer.SerializeToString()))


def render(failure: api_errors.Failure) -> web.Response:
    """A failure of ``/rpc_http`` as the SDK understands it (always HTTP 200)."""
    if failure.error is not None:
        return application_error(failure.error.code, failure.message)
    if failure.http_status == 413:
        return rpc_error(_RpcCode.REQUEST_TOO_LARGE, failure.message)
    if failure.http_status in (404, 405):
        return rpc_error(_RpcCode.CALL_NOT_FOUND, f"{failure.message}; the SDK posts to {PATH}")
    return application_error(errors.ErrorCode[failure.status], failure.message)


def add_routes(
    app: web.Application,
    services: Mapping[str, Mapping[str, Method]],
    api_tickets: tickets.Tickets,
) -> None:
    """Serve ``services`` at ``/rpc_http``; ``api_tickets`` checks the tickets of calls."""
    app[SERVICES] = services
    app[TICKETS] = api_tickets
    auth.add_routes(app, [("POST", PATH, serve, auth.Action.OPEN)])
    api_errors.add_renderer(app, PATH, render)
