"""Task, queue and namespace names (SPEC 1.2): the patterns and their checks."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from pushd import encoding, errors, models

TASK_NAME_PATTERN = rf"[a-zA-Z0-9_-]{{1,{models.MAX_TASK_NAME_LENGTH}}}"
QUEUE_NAME_PATTERN = rf"[a-zA-Z0-9-]{{1,{models.MAX_QUEUE_NAME_LENGTH}}}"
NAMESPACE_PATTERN = r"[0-9A-Za-z._-]{0,100}"  # App Engine's namespace_manager rule
# fullmatch, never match + "$", which would let one trailing newline through (SPEC 1.2).
_TASK_NAME_RE = re.compile(TASK_NAME_PATTERN)
_QUEUE_NAME_RE = re.compile(QUEUE_NAME_PATTERN)
_NAMESPACE_RE = re.compile(NAMESPACE_PATTERN)

NameFactory = Callable[[], str]


def new_task_name() -> str:
    """A fresh task name: 128 random bits as 32 hex digits.

    Random rather than sequential, so names neither collide across daemons sharing a database
    nor cluster in an index (App Engine's docs warn against sequential names).
    """
    return secrets.token_hex(16)


def check_queue_name(queue: object) -> str:
    """``queue`` if it is a valid queue name, else :class:`errors.InvalidQueueNameError`."""
    if not isinstance(queue, str) or not _QUEUE_NAME_RE.fullmatch(queue):
        raise errors.InvalidQueueNameError(
            f"queue name {encoding.show(queue)} must match {QUEUE_NAME_PATTERN}"
        )
    return queue


def check_task_name(name: object) -> str:
    """``name`` if it is a valid task name, else :class:`errors.InvalidTaskNameError`."""
    if not isinstance(name, str) or not _TASK_NAME_RE.fullmatch(name):
        raise errors.InvalidTaskNameError(
            f"task name {encoding.show(name)} must match {TASK_NAME_PATTERN}"
        )
    return name


def check_generated_name(name: object) -> str:
    """A name from a name factory, which must satisfy the task-name rule like any other."""
    try:
        return check_task_name(name)
    except errors.InvalidTaskNameError:
        raise errors.InternalError(
            f"generated task name {encoding.show(name)} is invalid"
        ) from None


def check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise errors.InvalidTaskError(
            f"namespace {encoding.show(namespace)} must match {NAMESPACE_PATTERN}"
        )
    return namespace
