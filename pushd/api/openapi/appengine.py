"""The operations of App Engine's APIs: TaskQueue REST v1beta2 and the SDK's ``/rpc_http``."""

from __future__ import annotations

from typing import Any

from pushd import models
from pushd.api import rpc, v1beta2
from pushd.api.openapi import schema


def v1beta2_operations() -> dict[tuple[str, str], schema.Operation]:
    q = v1beta2.PREFIX + "projects/{project}/taskqueues/{queue}"
    tag, errors = "taskqueue v1beta2", (400, 401, 403, 404, 500)

    def op(summary: str, answer: object, **kw: Any) -> schema.Operation:
        kw.setdefault("errors", errors)
        return schema.Operation(
            summary=summary, tag=tag, answer=answer, error_schema=v1beta2.GoogleError, **kw
        )

    def int32(name: str, high: int, text: str, low: int = 0) -> schema.Query:
        bounds = {"type": "integer", "format": "int32", "minimum": low, "maximum": high}
        return schema.Query(name=name, schema=bounds, description=text, required=True)

    lease = (
        int32("numTasks", models.MAX_TASKS_PER_LEASE, "how many tasks to lease", low=1),
        int32("leaseSecs", models.MAX_LEASE_SECONDS, "the lease in seconds"),
        schema.Query(
            name="groupByTag",
            schema={"type": "boolean"},
            description="lease tasks of one tag only (the given tag, else the oldest task's)",
        ),
        schema.Query(name="tag", schema={"type": "string"}, description="needs groupByTag"),
    )
    renew = (int32("newLeaseSeconds", models.MAX_LEASE_SECONDS, "the new lease, from now"),)
    stats = schema.Query(name="getStats", schema={"type": "boolean"}, description="include stats")
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


def rpc_operations(s: schema.SchemaSet) -> dict[tuple[str, str], schema.Operation]:
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
        ("POST", rpc.PATH): schema.Operation(
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
