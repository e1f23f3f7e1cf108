"""``GET /openapi.json``: an OpenAPI 3.1 description of every route the daemon serves.

The document cannot drift from the code: it is built from the application's own router at
request time, every served route must have an :class:`Operation` here (a route without one
fails the test suite and the document), and the answer schemas are derived from the
``TypedDict`` shapes the handlers encode with (:mod:`pushd.wire`, :mod:`pushd.api.v1beta2`).
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, Required, get_args, get_origin, get_type_hints

from pushd import __version__, models, wire
from pushd.api import auth, console, native, rpc, v1beta2
from pushd.api import errors as api_errors

if typing.TYPE_CHECKING:
    from aiohttp import web

Schema = dict[str, Any]
_PARAM = re.compile(r"\{([^}]+)\}")
_SCALARS: dict[object, Schema] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


class SchemaSet:
    """JSON Schemas of TypedDicts, collected under ``components/schemas`` by class name."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def of(self, tp: object) -> Schema:
        """The schema of a type annotation (TypedDicts become ``$ref``s)."""
        if tp in _SCALARS:
            return dict(_SCALARS[tp])
        if tp is type(None):
            return {"type": "null"}
        if tp is object or tp is Any:
            return {}
        if typing.is_typeddict(tp):
            name = tp.__name__  # type: ignore[attr-defined]
            if name not in self.schemas:
                self.schemas[name] = {}  # placeholder against recursion
                self.schemas[name] = self._typeddict(tp)
            return _ref(name)
        origin, args = get_origin(tp), get_args(tp)
        if origin in (NotRequired, Required):
            return self.of(args[0])
        if origin in (types.UnionType, typing.Union):
            return {"anyOf": [self.of(a) for a in args]}
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin in (list, tuple) or origin is typing.Sequence:
            return {"type": "array", "items": self.of(args[0]) if args else {}}
        if origin in (dict, Mapping):
            return {"type": "object", "additionalProperties": self.of(args[1])}
        raise TypeError(f"no JSON schema for {tp!r}")

    def _typeddict(self, tp: Any) -> Schema:
        hints = get_type_hints(tp, include_extras=True)
        # Not __required_keys__: under PEP 563 (string annotations) Python 3.11 cannot see
        # NotRequired there, so every key would count as required.
        required = [k for k, h in hints.items() if get_origin(h) is not NotRequired]
        doc = (tp.__doc__ or "").strip().split("\n\n")[0]
        schema: Schema = {
            "type": "object",
            "properties": {name: self.of(hint) for name, hint in hints.items()},
            "required": required,
        }
        if doc and not doc.startswith(tp.__name__ + "("):
            schema["description"] = " ".join(doc.split())
        return schema

    def add(self, name: str, schema: Schema) -> Schema:
        self.schemas[name] = schema
        return _ref(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    name: str
    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """What the document says about one route."""

    summary: str
    tag: str
    #: request body schema: a type (TypedDict) or a component name, by content type
    body: object = None
    body_types: tuple[str, ...] = ("application/json",)
    answer: object = None  # a type annotation or a component name; None: no body
    answer_types: tuple[str, ...] = ("application/json",)
    status: int = 200
    query: tuple[Query, ...] = ()
    errors: tuple[int, ...] = (400, 404)
    #: the error envelope: a TypedDict or a component name, by content type
    error_schema: object = "ErrorJSON"
    error_types: tuple[str, ...] = ("application/json",)
    extra: Mapping[str, Any] = field(default_factory=dict)


_PAGE = (
    Query(
        name="limit",
        schema={"type": "integer", "minimum": 1, "maximum": native.MAX_PAGE_SIZE},
        description=f"page size (default {native.DEFAULT_PAGE_SIZE})",
    ),
    Query(
        name="after",
        schema={"type": "string"},
        description="the `next` cursor of the previous page",
    ),
)
_Q = "/api/v1/queues/{queue}"


def _native_operations() -> dict[tuple[str, str], Operation]:
    q, t, d = "queues", "tasks", "dead letters"
    return {
        ("GET", "/healthz"): Operation(
            summary="Liveness: answers while the daemon runs; 503 naming the cause while its "
            "store cannot be written or read (disk full, database file damaged)",
            tag="daemon",
            answer="Health",
            errors=(503,),
            error_schema="Unhealthy",
        ),
        ("GET", "/openapi.json"): Operation(
            summary="This document", tag="daemon", answer="OpenAPIDocument", errors=()
        ),
        ("GET", "/metrics"): Operation(
            summary="Prometheus metrics: per queue counters, gauges and histograms",
            tag="daemon",
            answer=str,
            answer_types=("text/plain",),
            errors=(),
        ),
        ("GET", "/api/v1/queues"): Operation(
            summary="The queues of queue.yaml with their statistics, in name order, a page at a time",
            tag=q,
            answer="QueuePage",
            query=_PAGE,
        ),
        ("GET", _Q): Operation(
            summary="One queue with its statistics", tag=q, answer=wire.QueueJSON
        ),
        ("POST", f"{_Q}/pause"): Operation(
            summary="Stop dispatching (push) or leasing (pull) until resumed",
            tag=q,
            answer=wire.QueueJSON,
        ),
        ("POST", f"{_Q}/resume"): Operation(
            summary="Resume a paused queue", tag=q, answer=wire.QueueJSON
        ),
        ("POST", f"{_Q}/purge"): Operation(
            summary="Delete every task of the queue (names stay tombstoned)",
            tag=q,
            answer="PurgeResult",
        ),
        ("POST", f"{_Q}/tasks"): Operation(
            summary='Add one task, or a batch of up to 100 ({"tasks": [...]})',
            tag=t,
            body="AddRequest",
            answer="AddResults",
            errors=(400, 404, 413, 507),
        ),
        ("GET", f"{_Q}/tasks"): Operation(
            summary="Tasks of the queue in name order, without payloads",
            tag=t,
            answer="TaskPage",
            query=_PAGE,
        ),
        ("GET", f"{_Q}/tasks/{{name}}"): Operation(
            summary="One task with its payload", tag=t, answer=wire.TaskJSON
        ),
        ("DELETE", f"{_Q}/tasks/{{name}}"): Operation(
            summary="Delete a task (its name stays tombstoned)", tag=t, answer="Deleted"
        ),
        ("POST", f"{_Q}/delete"): Operation(
            summary="Delete tasks by name; unknown or tombstoned names answer deleted=false",
            tag=t,
            body="DeleteRequest",
            answer="DeleteResults",
        ),
        ("POST", f"{_Q}/lease"): Operation(
            summary="Lease available tasks of a pull queue (optionally grouped by tag)",
            tag=t,
            body="LeaseRequest",
            answer="TaskList",
        ),
        ("POST", f"{_Q}/tasks/{{name}}/lease"): Operation(
            summary="Renew (or with 0 s release) the lease on a pull task",
            tag=t,
            body="ModifyLeaseRequest",
            answer=wire.TaskJSON,
        ),
        ("POST", f"{_Q}/tasks/{{name}}/run"): Operation(
            summary="Make a task due now", tag=t, answer=wire.TaskJSON
        ),
        ("GET", f"{_Q}/dead"): Operation(
            summary="Dead letters: tasks that ran out of retries",
            tag=d,
            answer="DeadTaskPage",
            query=_PAGE,
        ),
        ("GET", f"{_Q}/dead/{{name}}"): Operation(
            summary="One dead letter with its payload", tag=d, answer=wire.DeadTaskJSON
        ),
        ("POST", f"{_Q}/dead/{{name}}/redrive"): Operation(
            summary="Put a dead letter back as a fresh task due now",
            tag=d,
            answer=wire.TaskJSON,
            errors=(400, 404, 409),
        ),
        ("DELETE", f"{_Q}/dead/{{name}}"): Operation(
            summary="Forget a dead letter", tag=d, answer="Deleted"
        ),
    }


def _console_operations(s: SchemaSet) -> dict[tuple[str, str], Operation]:
    """The web console (pushd.api.console): HTML pages, and forms answered with a redirect
    (303) to the page to show next; its errors are HTML pages too."""
    html = ("text/html",)
    errors = (400, 401, 403, 404)
    page = functools.partial(
        Operation,
        tag="console",
        answer=str,
        answer_types=html,
        error_schema=str,
        error_types=html,
        errors=(400, 403, 404),
    )

    def form(summary: str, body: str | None = "ConsoleConfirm", **kw: Any) -> Operation:
        types = ("application/x-www-form-urlencoded",)
        return page(summary=summary, body=body, body_types=types, answer=None, status=303, **kw)

    text = {"type": "string"}
    s.add(
        "ConsoleConfirm",
        {
            "type": "object",
            "properties": {"confirm": {"type": "string", "enum": ["yes"]}},
            "required": ["confirm"],
        },
    )
    s.add(
        "ConsoleLogin",
        {"type": "object", "properties": {"token": text, "next": text}, "required": ["token"]},
    )
    name = {"type": "string", "pattern": "^[a-zA-Z0-9_-]{0,500}$"}
    search = (
        Query(name="prefix", schema=name, description="tasks whose name starts with this"),
        Query(name="tag", schema=text, description="tasks with this tag (pull queues)"),
        Query(name="after", schema=name, description="the page of tasks after this name"),
        Query(name="dead_after", schema=name, description="dead letters after this name"),
        Query(name="done", schema=text, description="the action just done, for its notice"),
    )
    q, t, d = console.QUEUE, f"{console.QUEUE}/tasks/{{name}}", f"{console.QUEUE}/dead/{{name}}"
    return {
        ("GET", "/"): page(summary="Console: every queue, its statistics and recent deliveries"),
        ("GET", auth.CONSOLE_LOGIN): page(
            summary="Console: the login form (with auth_tokens)",
            query=(Query(name="next", schema=text, description="the page to go to after"),),
            errors=(400,),
        ),
        ("POST", auth.CONSOLE_LOGIN): form(
            "Console: log in with a token (sets the console's cookie)",
            "ConsoleLogin",
            errors=(400, 401, 403),
        ),
        ("POST", f"{console.CONSOLE}/logout"): form("Console: log out", None, errors=(400, 403)),
        ("GET", q): page(summary="Console: a queue, its tasks and dead letters", query=search),
        ("POST", f"{q}/pause"): form("Console: pause a queue", errors=errors),
        ("POST", f"{q}/resume"): form("Console: resume a queue", errors=errors),
        ("POST", f"{q}/purge"): form("Console: purge a queue", errors=errors),
        ("GET", t): page(summary="Console: a task"),
        ("POST", f"{t}/run"): form("Console: run a task now", None, errors=errors),
        ("POST", f"{t}/delete"): form("Console: delete a task", errors=errors),
        ("GET", d): page(summary="Console: a dead letter"),
        ("POST", f"{d}/redrive"): form(
            "Console: redrive a dead letter", None, errors=(*errors, 409)
        ),
        ("POST", f"{d}/delete"): form("Console: delete a dead letter", errors=errors),
    }


def _v1beta2_operations() -> dict[tuple[str, str], Operation]:
    q = v1beta2.PREFIX + "projects/{project}/taskqueues/{queue}"
    tag, errors = "taskqueue v1beta2", (400, 401, 403, 404, 500)

    def op(summary: str, answer: object, **kw: Any) -> Operation:
        kw.setdefault("errors", errors)
        return Operation(
            summary=summary, tag=tag, answer=answer, error_schema=v1beta2.GoogleError, **kw
        )

    def int32(name: str, high: int, text: str, low: int = 0) -> Query:
        schema = {"type": "integer", "format": "int32", "minimum": low, "maximum": high}
        return Query(name=name, schema=schema, description=text, required=True)

    lease = (
        int32("numTasks", models.MAX_TASKS_PER_LEASE, "how many tasks to lease", low=1),
        int32("leaseSecs", models.MAX_LEASE_SECONDS, "the lease in seconds"),
        Query(
            name="groupByTag",
            schema={"type": "boolean"},
            description="lease tasks of one tag only (the given tag, else the oldest task's)",
        ),
        Query(name="tag", schema={"type": "string"}, description="needs groupByTag"),
    )
    renew = (int32("newLeaseSeconds", models.MAX_LEASE_SECONDS, "the new lease, from now"),)
    stats = Query(name="getStats", schema={"type": "boolean"}, description="include stats")
    return {
        ("GET", q): op(
            "taskqueue.taskqueues.get: a pull queue", v1beta2.RestTaskQueue, query=(stats,)
        ),
        ("POST", f"{q}/tasks/lease"): op(
            "taskqueue.tasks.lease (parameters in the query or a form-encoded body)",
            v1beta2.RestTasks,
            query=lease,
        ),
        ("POST", f"{q}/tasks"): op(
            "taskqueue.tasks.insert",
            v1beta2.RestTask,
            body=v1beta2.RestTaskIn,
            errors=(*errors, 507),
        ),
        ("GET", f"{q}/tasks"): op(
            "taskqueue.tasks.list: up to 100 tasks, without payloads", v1beta2.RestTasks
        ),
        ("GET", f"{q}/tasks/{{task}}"): op("taskqueue.tasks.get", v1beta2.RestTask),
        ("DELETE", f"{q}/tasks/{{task}}"): op("taskqueue.tasks.delete", None, status=204),
        ("POST", f"{q}/tasks/{{task}}"): op(
            "taskqueue.tasks.update: renew a lease",
            v1beta2.RestTask,
            body=v1beta2.RestTaskIn,
            query=renew,
        ),
        ("PATCH", f"{q}/tasks/{{task}}"): op(
            "taskqueue.tasks.patch: renew a lease",
            v1beta2.RestTask,
            body=v1beta2.RestTaskIn,
            query=renew,
        ),
    }


def _native_components(s: SchemaSet) -> None:
    nullable_text = {"type": ["string", "null"]}
    number = {"type": "number"}
    retry = {
        "type": "object",
        "properties": {
            "task_retry_limit": {"type": ["integer", "null"], "minimum": 0},
            "task_age_limit": {
                "type": ["integer", "number", "string", "null"],
                "description": "seconds, or a duration such as 2d",
            },
            "min_backoff_seconds": {"type": ["number", "null"], "minimum": 0},
            "max_backoff_seconds": {"type": ["number", "null"], "minimum": 0},
            "max_doublings": {"type": ["integer", "null"], "minimum": 0},
        },
        "additionalProperties": False,
    }
    task_in: Schema = {
        "type": "object",
        "description": "The keyword arguments of App Engine's taskqueue.Task.",
        "properties": {
            "name": nullable_text,
            "method": {
                "type": ["string", "null"],
                "enum": ["GET", "POST", "HEAD", "PUT", "DELETE", "PULL", None],
            },
            "url": nullable_text,
            "headers": {
                "anyOf": [
                    {"type": "object", "additionalProperties": {"type": "string"}},
                    {
                        "type": "array",
                        "items": {
                            "type": "array",
                            "items": {"type": "string"},
                            "minItems": 2,
                            "maxItems": 2,
                        },
                    },
                    {"type": "null"},
                ]
            },
            "payload": nullable_text,
            "payload_base64": nullable_text,
            "params": {"type": ["object", "null"]},
            "countdown": {"type": ["number", "null"]},
            "eta": {
                "type": ["number", "string", "null"],
                "description": "POSIX seconds or RFC 3339",
            },
            "eta_us": {
                "type": ["integer", "null"],
                "description": "µs since the epoch, exact; excludes eta and countdown",
            },
            "retry_options": {"anyOf": [retry, {"type": "null"}]},
            "target": nullable_text,
            "tag": nullable_text,
            "dispatch_deadline": {"type": ["number", "null"]},
            "dispatch_deadline_us": {"type": ["integer", "null"], "description": "µs"},
            "namespace": nullable_text,
        },
        "additionalProperties": False,
    }
    s.add("TaskIn", task_in)
    s.add(
        "AddRequest",
        {
            "anyOf": [
                _ref("TaskIn"),
                {
                    "type": "object",
                    "properties": {
                        "tasks": {
                            "type": "array",
                            "items": _ref("TaskIn"),
                            "minItems": 1,
                            "maxItems": 100,
                        }
                    },
                    "required": ["tasks"],
                    "additionalProperties": False,
                },
            ]
        },
    )
    s.add("AddResults", _wrap("tasks", {"type": "array", "items": s.of(wire.AddResultJSON)}))
    s.add("TaskList", _wrap("tasks", {"type": "array", "items": s.of(wire.TaskJSON)}))
    s.add(
        "QueuePage",
        {
            "type": "object",
            "properties": {
                "queues": {"type": "array", "items": s.of(wire.QueueJSON)},
                "next": {"type": ["string", "null"]},
            },
            "required": ["queues", "next"],
        },
    )
    for name, item in (("TaskPage", wire.TaskJSON), ("DeadTaskPage", wire.DeadTaskJSON)):
        s.add(
            name,
            {
                "type": "object",
                "properties": {
                    "tasks": {"type": "array", "items": s.of(item)},
                    "next": {"type": ["string", "null"]},
                },
                "required": ["tasks", "next"],
            },
        )
    s.add("Health", _wrap("status", {"type": "string", "enum": ["ok"]}))
    s.add(
        "Unhealthy",
        {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["unavailable"]},
                "error": {"type": "string"},
            },
            "required": ["status", "error"],
        },
    )
    s.add("OpenAPIDocument", {"type": "object"})
    s.add(
        "PurgeResult",
        {
            "type": "object",
            "properties": {"queue": {"type": "string"}, "purged": {"type": "integer"}},
            "required": ["queue", "purged"],
        },
    )
    s.add(
        "Deleted",
        {
            "type": "object",
            "properties": {
                "queue": {"type": "string"},
                "name": {"type": "string"},
                "deleted": {"type": "boolean"},
            },
            "required": ["queue", "name", "deleted"],
        },
    )
    s.add(
        "DeleteRequest",
        _wrap(
            "names",
            {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "maxItems": wire.MAX_NAMES_PER_DELETE,
            },
        ),
    )
    s.add(
        "DeleteResults",
        _wrap(
            "tasks",
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "deleted": {"type": "boolean"}},
                    "required": ["name", "deleted"],
                },
            },
        ),
    )
    s.add(
        "LeaseRequest",
        {
            "type": "object",
            "properties": {
                "lease_seconds": {**number, "minimum": 0, "maximum": 604800},
                "max_tasks": {"type": "integer", "minimum": 1, "maximum": 1000},
                "group_by_tag": {"type": "boolean"},
                "tag": nullable_text,
                "tag_base64": nullable_text,
            },
            "required": ["lease_seconds", "max_tasks"],
            "additionalProperties": False,
        },
    )
    s.add(
        "ModifyLeaseRequest",
        {
            "type": "object",
            "properties": {
                "eta_us": {"type": "integer", "description": "the ETA the lease answered"},
                "lease_seconds": {**number, "minimum": 0, "maximum": 604800},
            },
            "required": ["eta_us", "lease_seconds"],
            "additionalProperties": False,
        },
    )
    s.of(wire.ErrorJSON)


def _rpc_operations(s: SchemaSet) -> dict[tuple[str, str], Operation]:
    """``/rpc_http``: App Engine's API protocol, protocol buffers both ways (pushd.api.rpc)."""
    binary = {"type": "string", "format": "binary"}
    s.add("RemoteApiRequest", {**binary, "description": "a remote_api Request protocol buffer"})
    s.add(
        "RemoteApiResponse",
        {
            **binary,
            "description": "a remote_api Response: response, application_error or rpc_error",
        },
    )
    octets = ("application/octet-stream",)
    return {
        ("POST", rpc.PATH): Operation(
            summary=(
                "App Engine SDK API calls (taskqueue service); errors are answered with 200 and "
                "an error field, as the SDK expects; authenticated by the call's API ticket"
            ),
            tag="App Engine SDK",
            body="RemoteApiRequest",
            body_types=octets,
            answer="RemoteApiResponse",
            answer_types=octets,
            errors=(),
        )
    }


def _wrap(key: str, schema: Schema) -> Schema:
    return {"type": "object", "properties": {key: schema}, "required": [key]}


def _content(s: SchemaSet, what: object, types_: tuple[str, ...]) -> Schema:
    schema = _ref(what) if isinstance(what, str) else s.of(what)
    return {"content": {t: {"schema": schema} for t in types_}}


def _operation(s: SchemaSet, method: str, path: str, op: Operation) -> Schema:
    out: Schema = {"summary": op.summary, "tags": [op.tag]}
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in _PARAM.findall(path)
    ]
    params += [
        {"name": q.name, "in": "query", "required": q.required, "schema": q.schema}
        | ({"description": q.description} if q.description else {})
        for q in op.query
    ]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, **_content(s, op.body, op.body_types)}
    answer: Schema = {"description": "OK"}
    if op.answer is not None:
        answer.update(_content(s, op.answer, op.answer_types))
    responses: Schema = {str(op.status): answer}
    error = {"description": "an error", **_content(s, op.error_schema, op.error_types)}
    for status in op.errors:
        responses[str(status)] = error
    out["responses"] = responses
    out.update(op.extra)
    return out


def _served(app: web.Application) -> list[tuple[str, str]]:
    out = []
    for route in app.router.routes():
        info = route.resource.canonical if route.resource is not None else ""
        if route.method != "HEAD":
            out.append((route.method, info))
    return out


def document(app: web.Application) -> Schema:
    """The OpenAPI document of ``app``; KeyError names a served route without an Operation."""
    s = SchemaSet()
    _native_components(s)
    known = {
        **_native_operations(),
        **_v1beta2_operations(),
        **_rpc_operations(s),
        **_console_operations(s),
    }
    paths: dict[str, Schema] = {}
    for method, path in _served(app):
        op = known.get((method, path))
        if op is None:
            raise KeyError(f"route {method} {path} has no OpenAPI operation in pushd.api.openapi")
        paths.setdefault(path, {})[method.lower()] = _operation(s, method, path, op)
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
