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
#: The command line's name: ``pushd`` itself is a builtin of bash and zsh (the directory stack).
COMMAND = "pushdctl"

__all__ = [
    "COMMAND",
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
