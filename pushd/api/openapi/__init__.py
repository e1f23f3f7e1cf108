"""``GET /openapi.json``: an OpenAPI 3.1 description of every route the daemon serves.

The document cannot drift from the code: it is built from the application's own router at
request time, every served route must have an :class:`~.schema.Operation` here (a route without
one fails the test suite and the document), and the answer schemas are derived from the
``TypedDict`` shapes the handlers encode with (:mod:`pushd.wire`, :mod:`pushd.api.v1beta2`).
The operations are listed by API: :mod:`.native`, :mod:`.appengine`, :mod:`.console`.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from pushd import __version__
from pushd.api import auth
from pushd.api import errors as api_errors
from pushd.api.openapi import appengine, console, native, schema

Operation = schema.Operation
#: Operations of routes another package serves on the app (the Cloud Tasks API).
_ADDED = web.AppKey[dict[tuple[str, str], schema.Operation]]("openapi_added_operations")


def add_operations(
    app: web.Application, operations: Mapping[tuple[str, str], schema.Operation]
) -> None:
    """Describe routes served on ``app`` by another package, keyed by (method, canonical path)."""
    current: dict[tuple[str, str], schema.Operation] = app.get(_ADDED, {})
    app[_ADDED] = {**current, **operations}


def _served(app: web.Application) -> list[tuple[str, str]]:
    out = []
    for route in app.router.routes():
        info = route.resource.canonical if route.resource is not None else ""
        if route.method != "HEAD":
            out.append((route.method, info))
    return out


def document(app: web.Application) -> schema.Schema:
    """The OpenAPI document of ``app``; KeyError names a served route without an Operation."""
    s = schema.SchemaSet()
    native.components(s)
    added: dict[tuple[str, str], schema.Operation] = app.get(_ADDED, {})
    known = {
        **native.operations(),
        **appengine.v1beta2_operations(),
        **appengine.rpc_operations(s),
        **console.operations(s),
        **added,
    }
    paths: dict[str, schema.Schema] = {}
    for method, path in _served(app):
        op = known.get((method, path))
        if op is None:
            raise KeyError(f"route {method} {path} has no OpenAPI operation in pushd.api.openapi")
        paths.setdefault(path, {})[method.lower()] = schema.operation(s, method, path, op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pushd",
            "version": __version__,
            "description": (
                "Self-hosted App Engine Task Queues: pushd's native API under /api/v1 and the "
                "TaskQueue REST API v1beta2 for pull queues, and the App Engine SDK's /rpc_http. "
                "With auth_tokens configured every route but /healthz, /openapi.json and the "
                "console's login needs 'Authorization: Bearer <token>' (the console's pages also "
                "take the cookie its login form sets)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": s.schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }


async def serve_openapi(request: web.Request) -> web.Response:
    return api_errors.json_response(document(request.app))


ROUTES: tuple[auth.Route, ...] = (("GET", "/openapi.json", serve_openapi, auth.Action.OPEN),)
