"""Cloud Tasks resource names, checked with the real service's messages (CLOUDTASKS.md 1.4).

``projects/{project}/locations/{location}`` is a parent; ``{parent}/queues/{queue}`` a queue;
``{queue}/tasks/{task}`` a task. Any project and location are accepted unless the settings'
``cloud_tasks.projects`` / ``.locations`` list some (:class:`Scope`, checked for every RPC by
:class:`pushd.cloudtasks.service.Rpc`): pushd serves one set of queues (queue.yaml's and the
API's), which appears under every accepted parent. QUEUE_ID and TASK_ID have the same
alphabets and lengths as App Engine's queue and task names, so a pushd name is the id itself.
"""

from __future__ import annotations

import dataclasses
import re

from pushd import settings
from pushd.cloudtasks import rpc

_PROJECT = settings.PROJECT_ID
_LOCATION = settings.LOCATION_ID
_PARENT_RE = re.compile(rf"projects/({_PROJECT})/locations/({_LOCATION})")
_PROJECT_RE = re.compile(rf"projects/({_PROJECT})")
#: The project and location any resource name starts with (the rest is checked by the handler).
_SCOPED_RE = re.compile(rf"projects/({_PROJECT})(?:/locations/({_LOCATION}))?(?=/|$)")
_QUEUE_ID_RE = re.compile(r"[A-Za-z0-9-]{1,100}")
_TASK_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,500}")

QUEUE_NAME_FORMAT = (
    'Queue name must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/'
    '<QUEUE_ID>".'
)
PARENT_FORMAT = 'Parent must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>".'
TASK_NAME_FORMAT = (
    'Task name must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/'
    '<QUEUE_ID>/tasks/<TASK_ID>".'
)


@dataclasses.dataclass(frozen=True, slots=True)
class Parent:
    project: str
    location: str

    def __str__(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"


@dataclasses.dataclass(frozen=True, slots=True)
class QueueName:
    parent: Parent
    queue: str  # the QUEUE_ID: pushd's queue name

    def __str__(self) -> str:
        return f"{self.parent}/queues/{self.queue}"

    def task(self, task_id: str) -> str:
        return f"{self}/tasks/{task_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class TaskName:
    queue: QueueName
    task: str  # the TASK_ID: pushd's task name

    def __str__(self) -> str:
        return self.queue.task(self.task)


def project(name: str) -> str:
    """The PROJECT_ID of ``projects/{project}``."""
    match = _PROJECT_RE.fullmatch(name)
    if match is None:
        raise rpc.invalid('Project must be formatted: "projects/<PROJECT_ID>".')
    return match.group(1)


def parent(name: str) -> Parent:
    match = _PARENT_RE.fullmatch(name)
    if match is None:
        raise rpc.invalid(PARENT_FORMAT)
    return Parent(match.group(1), match.group(2))


def queue(name: str) -> QueueName:
    head, sep, queue_id = name.rpartition("/queues/")
    if not sep or _PARENT_RE.fullmatch(head) is None or not _QUEUE_ID_RE.fullmatch(queue_id):
        raise rpc.invalid(QUEUE_NAME_FORMAT)
    return QueueName(parent(head), queue_id)


def task(name: str) -> TaskName:
    head, sep, task_id = name.rpartition("/tasks/")
    if not sep:
        raise rpc.invalid(TASK_NAME_FORMAT)
    return TaskName(queue(head), check_task_id(task_id))


def check_task_id(task_id: str) -> str:
    if not _TASK_ID_RE.fullmatch(task_id):
        raise rpc.invalid(
            f'Task ID "{task_id}" can contain only letters ([A-Za-z]), numbers ([0-9]), '
            "hyphens (-), or underscores (_). Task ID must between 1 and 500 characters."
        )
    return task_id


def task_in(queue_name: QueueName, name: str) -> str:
    """The TASK_ID of a task ``name`` given to CreateTask on ``queue_name``."""
    head, sep, task_id = name.rpartition("/tasks/")
    if not sep:
        raise rpc.invalid(TASK_NAME_FORMAT)
    if head != str(queue_name):
        raise rpc.invalid(
            f"The queue name from request ('{queue_name}') must be the same as the queue name "
            f"in the named task ('{head}')."
        )
    return check_task_id(task_id)


@dataclasses.dataclass(frozen=True, slots=True)
class Scope:
    """The projects and locations the API answers for; empty: any (the default)."""

    projects: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()

    def check(self, name: str) -> None:
        """Refuse a resource name under a project or location outside the scope as Google
        refuses a project the caller cannot use: PERMISSION_DENIED with its message
        (CLOUDTASKS.md 1.4), plus the setting. The real answer for an unknown location is not
        recorded; pushd answers the same way. A name that does not start with a project is
        left to the handler, which names the format it wants."""
        match = _SCOPED_RE.match(name)
        if match is None:
            return
        project_id, location_id = match.groups()
        if self.projects and project_id not in self.projects:
            raise rpc.RpcError(
                rpc.Code.PERMISSION_DENIED,
                f"Permission denied on resource project {project_id}. (pushd serves only the "
                "projects its setting cloud_tasks.projects lists)",
            )
        if location_id is not None and self.locations and location_id not in self.locations:
            raise rpc.RpcError(
                rpc.Code.PERMISSION_DENIED,
                f"Permission denied on resource location projects/{project_id}/locations/"
                f"{location_id}. (pushd serves only the locations its setting "
                "cloud_tasks.locations lists)",
            )
