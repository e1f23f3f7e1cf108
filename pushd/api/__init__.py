"""The HTTP APIs of pushd as one aiohttp application.

:func:`create_app` puts the service (:class:`pushd.service.Service`: the domain operations
every API module adapts to its wire format) in :data:`keys.SERVICE` and installs two
middlewares: the JSON error envelope (outermost, :mod:`pushd.api.errors`) and, when
``settings.auth_tokens`` is non-empty, bearer-token authentication
(:func:`auth.auth_middleware`). A request without a known token gets 401; a token whose role does not allow the route's action gets 403
(``producer``: add tasks; ``consumer``: read and delete tasks; ``admin``: everything).
``/healthz`` and the OIDC keys (:mod:`pushd.api.oidc`) are always open. The console's pages (:mod:`pushd.api.console`) also take the
cookie its login form sets.
"""

from __future__ import annotations

from aiohttp import web

from pushd import service, settings, tickets, wire
from pushd.api import (
    auth,
    console,
    keys,
    native,
    observe,
    oidc,
    openapi,
    rpc,
    rpc_taskqueue,
    sessions,
    v1beta2,
)
from pushd.api import errors as api_errors
from pushd.dispatch import url_policy

Engine = service.Engine

__all__ = ["Engine", "create_app"]


def create_app(
    *,
    service: service.Service,
    settings: settings.Settings,
    api_tickets: tickets.Tickets | None = None,
) -> web.Application:
    """The application serving ``/api/v1``, ``/taskqueue/v1beta2``, ``/rpc_http``, ``/healthz``,
    ``/metrics`` and the web console (``/`` and ``/console/``).

    ``api_tickets`` checks the tickets of ``/rpc_http`` calls: the daemon shares one
    :class:`tickets.Tickets` between its deliveries and this app.
    """
    middlewares: list[api_errors.Middleware] = [api_errors.error_middleware]
    if settings.auth_tokens:
        middlewares.append(auth.auth_middleware(settings.auth_tokens))
    else:
        middlewares.append(auth.loopback_guard)
    app = web.Application(middlewares=middlewares, client_max_size=wire.MAX_REQUEST_BYTES)
    app[keys.SERVICE] = service
    app[keys.TOKENS] = settings.auth_tokens
    app[keys.URL_POLICY] = url_policy.UrlPolicy(settings.http_targets)
    app[keys.CLOUD_TASKS] = settings.cloud_tasks
    app[keys.SESSIONS] = sessions.Sessions(auth.session_lifetime_us(settings))
    auth.add_routes(app, native.ROUTES)
    v1beta2.add_routes(app)
    rpc.add_routes(app, {"taskqueue": rpc_taskqueue.METHODS}, api_tickets or tickets.Tickets())
    auth.add_routes(app, openapi.ROUTES)
    auth.add_routes(app, observe.ROUTES)
    auth.add_routes(app, oidc.ROUTES)
    console.add_routes(app)
    return app
