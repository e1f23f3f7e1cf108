"""pushd: self-hosted, durable App Engine Task Queues."""

from __future__ import annotations

from pushd.errors import (
    BadTaskStateError,
    DuplicateTaskNameError,
    Error,
    InvalidDispatchDeadlineError,
    InvalidEtaError,
    InvalidQueueModeError,
    InvalidTagError,
    InvalidTaskError,
    InvalidTaskNameError,
    InvalidUrlError,
    PushdError,
    TaskAlreadyExistsError,
    TaskTooLargeError,
    TombstonedTaskError,
    TooManyTasksError,
    UnknownQueueError,
)

__version__ = "0.1.0"

__all__ = [
    "BadTaskStateError",
    "DuplicateTaskNameError",
    "Error",
    "InvalidDispatchDeadlineError",
    "InvalidEtaError",
    "InvalidQueueModeError",
    "InvalidTagError",
    "InvalidTaskError",
    "InvalidTaskNameError",
    "InvalidUrlError",
    "PushdError",
    "TaskAlreadyExistsError",
    "TaskTooLargeError",
    "TombstonedTaskError",
    "TooManyTasksError",
    "UnknownQueueError",
    "__version__",
]
