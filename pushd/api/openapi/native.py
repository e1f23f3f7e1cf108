"""The native API's operations (``/api/v1``, ``/healthz``) and the schemas they share."""

from __future__ import annotations

from pushd import oidc, service, wire
from pushd.api import native
from pushd.api import oidc as api_oidc
from pushd.api.openapi import schema

PAGE = (
    schema.Query(
        name="limit",
        schema={"type": "integer", "minimum": 1, "maximum": service.MAX_PAGE_SIZE},
        description=f"page size (default {native.DEFAULT_PAGE_SIZE})",
    ),
    schema.Query(
        name="after",
        schema={"type": "string"},
        description="the `next` cursor of the previous page",
    ),
)
_Q = "/api/v1/queues/{queue}"


def _record(**properties: schema.Schema) -> schema.Schema:
    """An object schema whose properties are all required (an answer pushd always fills)."""
    return {"type": "object", "properties": properties, "required": list(properties)}


def _paged(summary: str, tag: str, answer: str) -> schema.Operation:
    """A list answered a page at a time (``?limit=``, ``?after=``: :data:`PAGE`)."""
    return schema.Operation(summary=summary, tag=tag, answer=answer, query=PAGE)


def operations() -> dict[tuple[str, str], schema.Operation]:
    q, t, d = "queues", "tasks", "dead letters"
    return {
        ("GET", "/healthz"): schema.Operation(
            summary="Liveness: answers while the daemon runs; 503 naming the cause while its "
            "store cannot be written or read (disk full, database file damaged)",
            tag="daemon",
            answer="Health",
            errors=(503,),
            error_schema="Unhealthy",
        ),
        ("GET", "/openapi.json"): schema.Operation(
            summary="This document", tag="daemon", answer="OpenAPIDocument", errors=()
        ),
        ("GET", "/oauth2/v1/certs"): schema.Operation(
            summary="The OIDC signing keys as Google publishes its own: key id -> self-signed "
            "X.509 certificate (PEM); open without a token",
            tag="oidc",
            answer=dict[str, str],
            errors=(),
        ),
        ("GET", "/oauth2/v3/certs"): schema.Operation(
            summary="The OIDC signing keys as a JWK set (RS256); open without a token",
            tag="oidc",
            answer=oidc.JwksJSON,
            errors=(),
        ),
        ("GET", "/.well-known/openid-configuration"): schema.Operation(
            summary="pushd as an OIDC issuer: issuer, jwks_uri, RS256; open without a token",
            tag="oidc",
            answer=oidc.DiscoveryJSON,
            errors=(),
        ),
        ("POST", "/api/v1/oidc/rotate"): schema.Operation(
            summary="A new key signs OIDC tokens from now on; the old ones stay published "
            "until their last token has expired (admin)",
            tag="oidc",
            answer=api_oidc.RotatedJSON,
            errors=(),
        ),
        ("GET", "/metrics"): schema.Operation(
            summary="Prometheus metrics: per queue counters, gauges and histograms",
            tag="daemon",
            answer=str,
            answer_types=("text/plain",),
            errors=(),
        ),
        ("GET", "/api/v1/queues"): _paged(
            "The queues of queue.yaml with their statistics, in name order, a page at a time",
            q,
            "QueuePage",
        ),
        ("GET", _Q): schema.Operation(
            summary="One queue with its statistics", tag=q, answer=wire.QueueJSON
        ),
        ("POST", f"{_Q}/pause"): schema.Operation(
            summary="Stop dispatching (push) or leasing (pull) until resumed",
            tag=q,
            answer=wire.QueueJSON,
        ),
        ("POST", f"{_Q}/resume"): schema.Operation(
            summary="Resume a paused queue", tag=q, answer=wire.QueueJSON
        ),
        ("POST", f"{_Q}/purge"): schema.Operation(
            summary="Delete every task of the queue (names stay tombstoned)",
            tag=q,
            answer="PurgeResult",
        ),
        ("POST", f"{_Q}/tasks"): schema.Operation(
            summary='Add one task, or a batch of up to 100 ({"tasks": [...]})',
            tag=t,
            body="AddRequest",
            answer="AddResults",
            errors=(400, 404, 413, 507),
        ),
        ("GET", f"{_Q}/tasks"): _paged(
            "Tasks of the queue in name order, without payloads", t, "TaskPage"
        ),
        ("GET", f"{_Q}/tasks/{{name}}"): schema.Operation(
            summary="One task with its payload", tag=t, answer=wire.TaskJSON
        ),
        ("DELETE", f"{_Q}/tasks/{{name}}"): schema.Operation(
            summary="Delete a task (its name stays tombstoned)", tag=t, answer="Deleted"
        ),
        ("POST", f"{_Q}/delete"): schema.Operation(
            summary="Delete tasks by name; unknown or tombstoned names answer deleted=false",
            tag=t,
            body="DeleteRequest",
            answer="DeleteResults",
        ),
        ("POST", f"{_Q}/lease"): schema.Operation(
            summary="Lease available tasks of a pull queue (optionally grouped by tag)",
            tag=t,
            body="LeaseRequest",
            answer="TaskList",
        ),
        ("POST", f"{_Q}/tasks/{{name}}/lease"): schema.Operation(
            summary="Renew (or with 0 s release) the lease on a pull task",
            tag=t,
            body="ModifyLeaseRequest",
            answer=wire.TaskJSON,
        ),
        ("POST", f"{_Q}/tasks/{{name}}/run"): schema.Operation(
            summary="Make a task due now", tag=t, answer=wire.TaskJSON
        ),
        ("GET", f"{_Q}/dead"): _paged(
            "Dead letters: tasks that ran out of retries", d, "DeadTaskPage"
        ),
        ("GET", f"{_Q}/dead/{{name}}"): schema.Operation(
            summary="One dead letter with its payload", tag=d, answer=wire.DeadTaskJSON
        ),
        ("POST", f"{_Q}/dead/{{name}}/redrive"): schema.Operation(
            summary="Put a dead letter back as a fresh task due now",
            tag=d,
            answer=wire.TaskJSON,
            errors=(400, 404, 409),
        ),
        ("DELETE", f"{_Q}/dead/{{name}}"): schema.Operation(
            summary="Forget a dead letter", tag=d, answer="Deleted"
        ),
    }


def components(s: schema.SchemaSet) -> None:
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
    task_in: schema.Schema = {
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
                schema.ref("TaskIn"),
                {
                    "type": "object",
                    "properties": {
                        "tasks": {
                            "type": "array",
                            "items": schema.ref("TaskIn"),
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
    s.add("AddResults", schema.wrap("tasks", {"type": "array", "items": s.of(wire.AddResultJSON)}))
    s.add("TaskList", schema.wrap("tasks", {"type": "array", "items": s.of(wire.TaskJSON)}))
    cursor = {"type": ["string", "null"]}
    s.add(
        "QueuePage", _record(queues={"type": "array", "items": s.of(wire.QueueJSON)}, next=cursor)
    )
    for name, item in (("TaskPage", wire.TaskJSON), ("DeadTaskPage", wire.DeadTaskJSON)):
        s.add(name, _record(tasks={"type": "array", "items": s.of(item)}, next=cursor))
    s.add("Health", schema.wrap("status", {"type": "string", "enum": ["ok"]}))
    s.add(
        "Unhealthy",
        _record(status={"type": "string", "enum": ["unavailable"]}, error={"type": "string"}),
    )
    s.add("OpenAPIDocument", {"type": "object"})
    text, boolean = {"type": "string"}, {"type": "boolean"}
    s.add("PurgeResult", _record(queue=text, purged={"type": "integer"}))
    s.add("Deleted", _record(queue=text, name=text, deleted=boolean))
    s.add(
        "DeleteRequest",
        schema.wrap(
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
        schema.wrap(
            "tasks",
            {
                "type": "array",
                "items": _record(name=text, deleted=boolean),
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
