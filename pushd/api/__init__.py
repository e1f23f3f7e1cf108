"""The HTTP APIs of pushd as one aiohttp application.

:func:`create_app` wires the dependencies into ``web.AppKey`` slots (see :mod:`pushd.api.native`)
and installs two middlewares: the JSON error envelope (outermost, :mod:`pushd.api.errors`) and,
when ``settings.auth_tokens`` is non-empty, bearer-token authentication
(:func:`auth.auth_middleware`). A request without a
known token gets 401; a token whose role does not allow the route's action gets 403
(``producer``: add tasks; ``consumer``: read and delete tasks; ``admin``: everything).
``/healthz`` is always open. The console's pages (:mod:`pushd.api.console`) also take the
cookie its login form sets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from pushd import clock, config, metrics, settings, tickets, wire
from pushd.api import (
    auth,
    console,
    engine,
    native,
    observe,
    openapi,
    pull,
    rpc,
    rpc_taskqueue,
    sessions,
    v1beta2,
)
from pushd.api import errors as api_errors

if TYPE_CHECKING:
    from pushd.store import base

Engine = engine.Engine

__all__ = ["Engine", "create_app"]


def create_app(
    *,
    store: base.Store,
    clock: clock.Clock,
    queues: Callable[[], config.QueuesConfig],
    engine: engine.Engine,
    settings: settings.Settings,
    api_tickets: tickets.Tickets | None = None,
    metrics_: metrics.Metrics | None = None,
) -> web.Application:
    """The application serving ``/api/v1``, ``/taskqueue/v1beta2``, ``/rpc_http``, ``/healthz``,
    ``/metrics`` and the web console (``/`` and ``/console/``).

    ``api_tickets`` checks the tickets of ``/rpc_http`` calls: the daemon shares one
    :class:`tickets.Tickets` between its deliveries and this app.

    ``queues`` is called on every request, so a reloaded queue.yaml applies at once.
    """
    middlewares: list[api_errors.Middleware] = [api_errors.error_middleware]
    if settings.auth_tokens:
        middlewares.append(auth.auth_middleware(settings.auth_tokens))
    else:
        middlewares.append(auth.loopback_guard)
    app = web.Application(middlewares=middlewares, client_max_size=wire.MAX_REQUEST_BYTES)
    app[native.STORE] = store
    app[native.CLOCK] = clock
    app[native.QUEUES] = queues
    app[native.ENGINE] = engine
    app[native.METRICS] = metrics_ or metrics.Metrics(clock)
    app[native.LEASES] = pull.LeaseMeter(app[native.METRICS])
    app[native.TOKENS] = settings.auth_tokens
    app[native.SESSIONS] = sessions.Sessions(auth.session_lifetime_us(settings))
    auth.add_routes(app, native.ROUTES)
    v1beta2.add_routes(app)
    rpc.add_routes(app, {"taskqueue": rpc_taskqueue.METHODS}, api_tickets or tickets.Tickets())
    auth.add_routes(app, openapi.ROUTES)
    auth.add_routes(app, observe.ROUTES)
    console.add_routes(app)
    return app
