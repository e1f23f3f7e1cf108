"""The Cloud Tasks API over gRPC: a ``grpc.aio`` server in the daemon's event loop, on its own
port (aiohttp serves no HTTP/2), answering the handler table of :mod:`pushd.cloudtasks.service`
for every version (``google.cloud.tasks.v2.CloudTasks``, ``...v2beta3.CloudTasks``) and the
Locations mixin, with generic handlers over the private pool's message classes.

The API's token rules hold here too: with ``auth_tokens`` a call needs ``authorization: Bearer
<token>`` metadata with a known token (UNAUTHENTICATED otherwise) whose role allows the RPC's
action (PERMISSION_DENIED otherwise); without tokens only loopback peers are answered, as the
daemon only listens on a loopback address then (the settings refuse any other host).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from pushd import logs
from pushd.cloudtasks import backend, descriptors, rpc, service

_Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


def loopback_peer(peer: str) -> bool:
    """Whether a gRPC peer (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``, ``unix:...``) is
    this machine."""
    kind, _, address = peer.partition(":")
    if kind == "unix":
        return True
    if kind == "ipv6":
        host = address[1 : address.find("]")] if address.startswith("[") else address
    elif kind == "ipv4":
        host = address.rsplit(":", 1)[0]
    else:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refusal(
    ops: backend.Backend, call_rpc: service.Rpc, context: grpc.aio.ServicerContext[Any, Any]
) -> tuple[rpc.RpcError | None, Any]:
    """Why the call may not go on (or None), and the caller's token."""
    if not ops.tokens:
        if not loopback_peer(context.peer()):
            return rpc.RpcError(
                rpc.Code.PERMISSION_DENIED,
                "without auth_tokens pushd only answers callers on this machine",
            ), None
        return None, None
    metadata = {key.lower(): value for key, value in context.invocation_metadata() or ()}
    header = metadata.get("authorization")
    token = ops.authenticate(header if isinstance(header, str) else None)
    if token is None:
        return rpc.RpcError(
            rpc.Code.UNAUTHENTICATED,
            "this API needs 'authorization: Bearer <token>' metadata with a known token",
        ), None
    if not ops.allows(token, call_rpc.action):
        return rpc.RpcError(
            rpc.Code.PERMISSION_DENIED,
            f"token {token.name!r} has role {token.role!r}, which may not {call_rpc.action.value}",
        ), token
    return None, token


def _behavior(version: str, call_rpc: service.Rpc, ops: backend.Backend) -> _Behavior:
    async def behave(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        failure, token = _refusal(ops, call_rpc, context)
        if failure is None:
            try:
                return await call_rpc(service.Call(version, ops, token), request)
            except rpc.RpcError as exc:
                failure = exc
            except Exception:
                logs.event(
                    "cloudtasks_internal_error",
                    logging.ERROR,
                    exc_info=True,
                    rpc=call_rpc.method.path,
                )
                failure = rpc.RpcError(rpc.Code.INTERNAL, "internal server error")
        await context.abort(grpc.StatusCode[failure.code.name], failure.message)

    return behave


def generic_handlers(ops: backend.Backend) -> tuple[grpc.GenericRpcHandler, ...]:
    """One generic handler per gRPC service: each version's CloudTasks, and Locations (the
    same service in every version: served from the first)."""
    services: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}
    for version in descriptors.VERSIONS:
        for name, call_rpc in service.table(version).items():
            methods = services.setdefault(call_rpc.method.service, {})
            if name not in methods:
                methods[name] = grpc.unary_unary_rpc_method_handler(
                    _behavior(version, call_rpc, ops),
                    request_deserializer=call_rpc.method.request.FromString,
                    response_serializer=lambda message: message.SerializeToString(),
                )
    return tuple(
        grpc.method_handlers_generic_handler(name, methods) for name, methods in services.items()
    )


class GrpcServer:
    """A started gRPC listener; ``address`` is ``host:port`` as a client dials it."""

    def __init__(self, server: grpc.aio.Server, address: str) -> None:
        self._server = server
        self.address = address

    @classmethod
    async def start(cls, ops: backend.Backend, host: str, port: int) -> GrpcServer:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(generic_handlers(ops))
        shown = f"[{host.strip('[]')}]" if ":" in host else host
        bound = server.add_insecure_port(f"{shown}:{port}")
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {shown}:{port}")
        await server.start()
        return cls(server, f"{shown}:{bound}")

    async def stop(self, grace_s: float | None = None) -> None:
        await self._server.stop(grace_s)
