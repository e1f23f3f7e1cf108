"""The Cloud Tasks REST API: routes derived from the protos' ``google.api.http`` rules.

Each rule (``post "/v2/{parent=projects/*/locations/*/queues/*}/tasks" body: "*"``) becomes an
aiohttp route whose path variables are written into the request message; the body goes where
the rule says (``*``: the whole request, ``queue``: that field); every other query parameter
(``pageSize``, ``responseView``, ``updateMask``...) is a request field too. JSON follows the
proto3 mapping (google.protobuf.json_format): lowerCamelCase names, enums as names or numbers,
int64 as strings. Answers spell enums as numbers when the client asks for
``$alt=json;enum-encoding=int`` (both official REST clients do), else as names.

Failures use Google's envelope, ``{"error": {"code": 404, "message": ..., "status":
"NOT_FOUND"}}``, also for unknown routes and the token checks, which apply as to every pushd
route (a bearer token whose role allows the RPC's action; without tokens, the loopback guard).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from google.protobuf import json_format

from pushd.cloudtasks import backend, descriptors, rpc, service

#: Query parameters every Google API accepts, which say nothing about the request message.
SYSTEM_PARAMETERS = frozenset(
    {"$alt", "alt", "$prettyPrint", "prettyPrint", "key", "fields", "$fields", "quotaUser"}
)
_VARIABLE = re.compile(r"\{([a-z_.]+)(?:=([^}]*))?\}")
_JSON = "application/json"


def prefixes() -> tuple[str, ...]:
    return tuple(f"/{version}/" for version in descriptors.VERSIONS)


def aiohttp_path(template: str) -> tuple[str, tuple[str, ...]]:
    """An http-rule path template as an aiohttp path with regex variables named after the
    request field each fills (``queue.name`` as ``queue_name``), and those fields."""
    fields: list[str] = []

    def variable(match: re.Match[str]) -> str:
        fields.append(match.group(1))
        segments = (match.group(2) or "*").split("/")
        pattern = "/".join(
            ".+" if s == "**" else "[^/]+" if s == "*" else re.escape(s) for s in segments
        )
        return f"{{{_var(match.group(1))}:{pattern}}}"

    return _VARIABLE.sub(variable, template), tuple(fields)


def _var(field: str) -> str:
    return field.replace(".", "_")


def canonical(path: str) -> str:
    """An aiohttp path as its router names it (``/v2/{name}:pause``), for /openapi.json."""
    return re.sub(r"\{(\w+):[^{}]*\}", r"{\1}", path)


def _set(target: dict[str, Any], path: str, value: object) -> None:
    *parents, last = path.split(".")
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise rpc.invalid(f"{path} conflicts with the {part} given in the body")
        target = child
    target[last] = value


async def _body(request: web.Request, rule: descriptors.HttpRule) -> dict[str, Any]:
    if not rule.body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise rpc.invalid(f"Invalid JSON payload received. {exc}") from None
    if not isinstance(value, dict):
        raise rpc.invalid("Invalid JSON payload received. The body must be a JSON object.")
    return value if rule.body == "*" else {rule.body: value}


def _query(query: Mapping[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in query:
        if key not in SYSTEM_PARAMETERS:
            values = query.getall(key) if hasattr(query, "getall") else [query[key]]
            _set(fields, key, values[0] if len(values) == 1 else values)
    return fields


async def parse(
    request: web.Request, method: descriptors.Method, rule: descriptors.HttpRule, fields: Any
) -> Any:
    """The request message of ``method`` a REST request makes."""
    data = await _body(request, rule)
    for key, value in _query(request.query).items():
        if key in data and rule.body == "*":
            raise rpc.invalid(f"{key} is given both in the query and in the body")
        data.setdefault(key, value)
    for field in fields:
        _set(data, field, request.match_info[_var(field)])
    try:
        return json_format.ParseDict(data, method.request())
    except json_format.ParseError as exc:
        raise rpc.invalid(f"Invalid JSON payload received. {exc}") from None


def _wants_int_enums(request: web.Request) -> bool:
    alt = request.query.get("$alt") or request.query.get("alt") or ""
    return "enum-encoding=int" in alt


def error_response(
    code: rpc.Code,
    message: str,
    headers: Mapping[str, str] | None = None,
    http_status: int | None = None,
) -> web.Response:
    """Google's error envelope; the HTTP status is the code's unless one is given."""
    status = rpc.HTTP_STATUS[code] if http_status is None else http_status
    body = {"error": {"code": status, "message": message, "status": code.name}}
    return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON, headers=headers)


def render_failure(failure: backend.Failure) -> web.Response:
    """A failure outside the handlers (unknown route, wrong method, token checks) in Google's
    envelope, keeping its HTTP status (405 stays 405) and headers (Allow, WWW-Authenticate)."""
    code = rpc.code_of_status(failure.http_status)
    return error_response(code, failure.message, failure.headers, failure.http_status)


def _handler(
    version: str, call_rpc: service.Rpc, rule: descriptors.HttpRule, fields: tuple[str, ...]
) -> backend.Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            message = await parse(request, call_rpc.method, rule, fields)
            call = service.Call(
                version, backend.Backend(request.app), backend.request_token(request)
            )
            answer = await call_rpc(call, message)
        except rpc.RpcError as exc:
            return error_response(exc.code, exc.message)
        body = json_format.MessageToDict(
            answer,
            use_integers_for_enums=_wants_int_enums(request),
            descriptor_pool=descriptors.pool(),  # an Operation's Any holds the private pool's types
        )
        return web.Response(body=orjson.dumps(body), content_type=_JSON)

    handle.__name__ = f"cloudtasks_{version}_{call_rpc.method.name}"
    return handle


def routes() -> list[backend.Route]:
    """Every REST route of every version served."""
    found: list[backend.Route] = []
    for version in descriptors.VERSIONS:
        for call_rpc in service.table(version).values():
            for rule in call_rpc.method.http:
                path, fields = aiohttp_path(rule.template)
                handler = _handler(version, call_rpc, rule, fields)
                found.append((rule.verb, path, handler, call_rpc.action))
    return found


def operations() -> dict[tuple[str, str], backend.Operation]:
    """What /openapi.json says of each route: the RPC it serves (the messages are Google's)."""
    found: dict[tuple[str, str], backend.Operation] = {}
    for version in descriptors.VERSIONS:
        for name, call_rpc in service.table(version).items():
            for rule in call_rpc.method.http:
                path, _ = aiohttp_path(rule.template)
                found[rule.verb, canonical(path)] = backend.Operation(
                    summary=f"Cloud Tasks {version} {name} ({call_rpc.method.path})",
                    tag=f"cloudtasks {version}",
                    body=object if rule.body else None,
                    answer=object,
                    # 405: a resource name matched by a route of another method (a task name
                    # ending ":pause" is a task path, which has no POST)
                    errors=(400, 401, 403, 404, 405, 409, 500, 501),
                    error_schema=object,
                )
    return found


def add_routes(app: web.Application) -> None:
    """Serve the REST API on ``app`` (the API application), with Google's error envelope."""
    backend.add_routes(app, routes(), prefixes(), render_failure, operations())
