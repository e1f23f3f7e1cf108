"""The resources of TaskQueue REST v1beta2 as JSON: their shapes (TypedDicts, from which
:mod:`pushd.api.openapi` derives the schemas) and their encoding from pushd's models."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, NotRequired, TypedDict

from pushd import clock, models

if TYPE_CHECKING:
    from pushd.queue_yaml import config
    from pushd.service import pull
    from pushd.store import base

TASK_KIND = "taskqueues#task"
LEASE_KIND = "taskqueue#tasks"  # sic: the discovery document's ``Tasks`` schema
LIST_KIND = "taskqueues#tasks"
QUEUE_KIND = "taskqueues#taskqueue"
#: Fields of the Task resource.
TASK_FIELDS = (
    "kind",
    "id",
    "queueName",
    "payloadBase64",
    "enqueueTimestamp",
    "leaseTimestamp",
    "retry_count",
    "tag",
)


class RestTask(TypedDict):
    """The Task resource."""

    kind: str
    id: str
    queueName: str
    payloadBase64: NotRequired[str]  # left out of tasks.list
    enqueueTimestamp: str  # int64 µs
    leaseTimestamp: str  # int64 µs: the task's ETA (lease expiry, or first lease if never leased)
    retry_count: int  # leases so far
    tag: NotRequired[str]


class RestTaskIn(TypedDict):
    """A Task resource in a request: insert needs queueName and payloadBase64, update
    leaseTimestamp, patch queueName. int64 fields may be JSON strings or numbers."""

    kind: NotRequired[str]
    id: NotRequired[str]
    queueName: NotRequired[str]
    payloadBase64: NotRequired[str]
    enqueueTimestamp: NotRequired[str | int]
    leaseTimestamp: NotRequired[str | int]
    retry_count: NotRequired[int]
    tag: NotRequired[str]


class RestTasks(TypedDict):
    """The ``Tasks`` (lease) and ``Tasks2`` (list) resources; no ``items`` when empty."""

    kind: str
    items: NotRequired[list[RestTask]]


class RestAcl(TypedDict):
    adminEmails: list[str]
    consumerEmails: list[str]
    producerEmails: list[str]


class RestQueueStats(TypedDict):
    totalTasks: int
    oldestTask: NotRequired[str]  # int64 seconds; left out when the queue is empty
    leasedLastMinute: str  # int64
    leasedLastHour: str  # int64


class RestTaskQueue(TypedDict):
    """The TaskQueue resource; ``stats`` only with ``getStats=true``."""

    kind: str
    id: str
    maxLeases: NotRequired[int]
    acl: RestAcl
    stats: NotRequired[RestQueueStats]


def b64encode(data: bytes) -> str:
    """URL-safe base64 with padding, as ``payloadBase64`` goes out (Q11)."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def encode_task(task: models.Task, *, payload: bool = True) -> RestTask:
    out: RestTask = {
        "kind": TASK_KIND,
        "id": task.name,
        "queueName": task.queue,
        "enqueueTimestamp": str(task.created_us),
        "leaseTimestamp": str(task.eta_us),
        "retry_count": task.retry_count,
    }
    if payload:
        out["payloadBase64"] = b64encode(task.payload)
    if task.tag is not None:
        out["tag"] = task.tag.decode("utf-8", "replace")
    return out


def encode_tasks(kind: str, found: list[models.Task], *, payload: bool) -> RestTasks:
    out: RestTasks = {"kind": kind}
    if found:
        out["items"] = [encode_task(task, payload=payload) for task in found]
    return out


def encode_queue(cfg: config.QueueConfig, stats: RestQueueStats | None = None) -> RestTaskQueue:
    out: RestTaskQueue = {
        "kind": QUEUE_KIND,
        "id": cfg.name,
        "acl": {
            "adminEmails": [],
            "consumerEmails": [e.user_email for e in cfg.acl if e.user_email],
            "producerEmails": [e.writer_email for e in cfg.acl if e.writer_email],
        },
    }
    if cfg.retry.task_retry_limit is not None:
        out["maxLeases"] = cfg.retry.task_retry_limit
    if stats is not None:
        out["stats"] = stats
    return out


def encode_stats(counts: base.QueueCounts, leased: pull.Leased) -> RestQueueStats:
    out = RestQueueStats(
        totalTasks=counts.tasks,
        leasedLastMinute=str(leased.last_minute),
        leasedLastHour=str(leased.last_hour),
    )
    if counts.oldest_eta_us is not None:
        out["oldestTask"] = str(counts.oldest_eta_us // clock.US_PER_SECOND)
    return out
