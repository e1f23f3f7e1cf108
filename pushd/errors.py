"""The pushd exception tree.

Every error pushd raises on purpose derives from :class:`PushdError`. The task-queue errors keep
the names of ``google.appengine.api.taskqueue`` so that code written for App Engine catches the
same classes, and each carries the App Engine service error code (``TaskQueueServiceError``) it
maps to, so the REST, RPC and client layers share one mapping (:data:`BY_CODE`).

    PushdError
    ├── ConfigError                       queue.yaml or settings file rejected (carries every issue)
    ├── StoreRefusedError                 the database cannot be used: held by another daemon, damaged
    └── Error                             App Engine ``taskqueue.Error``; INVALID_REQUEST 13
        ├── UnknownQueueError             UNKNOWN_QUEUE 1
        ├── TransientError                TRANSIENT_ERROR 2
        │   └── StoreUnavailableError     TRANSIENT_ERROR 2 (the store cannot be written or read)
        ├── InternalError                 INTERNAL_ERROR 3
        ├── InvalidTaskError              INVALID_REQUEST 13 (client-side checks)
        │   ├── InvalidTaskNameError      INVALID_TASK_NAME 5
        │   ├── TaskTooLargeError         TASK_TOO_LARGE 4
        │   │   └── TransactionalRequestTooLargeError  TRANSACTIONAL_REQUEST_TOO_LARGE 23
        │   ├── TaskAlreadyExistsError    TASK_ALREADY_EXISTS 10
        │   ├── TombstonedTaskError       TOMBSTONED_TASK 11
        │   ├── InvalidUrlError           INVALID_URL 7
        │   └── InvalidEtaError           INVALID_ETA 12
        ├── InvalidTagError               INVALID_TAG 27
        ├── InvalidDispatchDeadlineError  INVALID_DISPATCH_DEADLINE 29
        ├── BadTaskStateError             INVALID_REQUEST 13
        ├── InvalidQueueError             INVALID_QUEUE_RATE 8
        │   └── InvalidQueueNameError     INVALID_QUEUE_NAME 6
        ├── PermissionDeniedError         PERMISSION_DENIED 9
        ├── DuplicateTaskNameError        DUPLICATE_TASK_NAME 16
        ├── TooManyTasksError             TOO_MANY_TASKS 18
        ├── InvalidTaskRetryOptionsError  INVALID_RETRY_PARAMETERS 20
        ├── InvalidLeaseTimeError         INVALID_REQUEST 13
        ├── InvalidMaxTasksError          INVALID_REQUEST 13
        ├── InvalidDeadlineError          INVALID_REQUEST 13
        ├── InvalidQueueModeError         INVALID_QUEUE_MODE 21
        ├── TaskLeaseExpiredError         TASK_LEASE_EXPIRED 25
        ├── QueuePausedError              QUEUE_PAUSED 26
        ├── UnknownTaskError              UNKNOWN_TASK 14
        └── StorageLimitExceededError     INVALID_REQUEST 13 (total_storage_limit reached)

Differences from App Engine, on purpose: ``InvalidTaskRetryOptionsError`` and
``InvalidDispatchDeadlineError`` get their own codes (App Engine leaves 20 and 29 unmapped and
raises the generic ``Error``), and ``UnknownTaskError`` names code 14, which App Engine raises as
the generic ``Error``. Each class's docstring is its default message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class ErrorCode(enum.IntEnum):
    """``TaskQueueServiceError.ErrorCode`` from the App Engine protocol buffers."""

    OK = 0
    UNKNOWN_QUEUE = 1
    TRANSIENT_ERROR = 2
    INTERNAL_ERROR = 3
    TASK_TOO_LARGE = 4
    INVALID_TASK_NAME = 5
    INVALID_QUEUE_NAME = 6
    INVALID_URL = 7
    INVALID_QUEUE_RATE = 8
    PERMISSION_DENIED = 9
    TASK_ALREADY_EXISTS = 10
    TOMBSTONED_TASK = 11
    INVALID_ETA = 12
    INVALID_REQUEST = 13
    UNKNOWN_TASK = 14
    TOMBSTONED_QUEUE = 15
    DUPLICATE_TASK_NAME = 16
    SKIPPED = 17
    TOO_MANY_TASKS = 18
    INVALID_PAYLOAD = 19
    INVALID_RETRY_PARAMETERS = 20
    INVALID_QUEUE_MODE = 21
    ACL_LOOKUP_ERROR = 22
    TRANSACTIONAL_REQUEST_TOO_LARGE = 23
    INCORRECT_CREATOR_NAME = 24
    TASK_LEASE_EXPIRED = 25
    QUEUE_PAUSED = 26
    INVALID_TAG = 27
    INVALID_LOGGING_CONFIG = 28
    INVALID_DISPATCH_DEADLINE = 29


class PushdError(Exception):
    """pushd failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or type(self).__name__).strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration file, located as precisely as the parser allows."""

    file: str
    line: int  # 1-based; 0 when the problem is not tied to a line (e.g. an empty file)
    column: int  # 1-based; 0 when unknown
    path: str  # key path such as "queue[2].rate"; "" for the document itself
    message: str
    #: True when App Engine accepts what pushd refuses here (the message says so too).
    stricter: bool = False

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class ConfigError(PushdError):
    """The configuration file is invalid."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues) or None)


class StoreRefusedError(PushdError):
    """The database cannot be used as it is (another daemon holds it, or the file is damaged)."""


class Error(PushdError):
    """The task queue request failed."""

    code: ErrorCode = ErrorCode.INVALID_REQUEST
    #: The HTTP status an API answers with for this error.
    http_status: int = 400

    def __init_subclass__(
        cls, *, code: ErrorCode | None = None, http_status: int | None = None, **kwargs: Any
    ) -> None:
        """``class X(Error, code=..., http_status=...)``: each class states what it changes.

        A class that names a code is the one :data:`BY_CODE` raises for it; the others inherit
        their parent's code and are never the target of one.
        """
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code
        if http_status is not None:
            cls.http_status = http_status


class UnknownQueueError(Error, code=ErrorCode.UNKNOWN_QUEUE, http_status=404):
    """The queue is not configured."""


class TransientError(Error, code=ErrorCode.TRANSIENT_ERROR, http_status=503):
    """A transient error occurred; retry the request."""


class StoreUnavailableError(TransientError):
    """The store cannot be used right now (disk full, file damaged, database down); retry."""


class InternalError(Error, code=ErrorCode.INTERNAL_ERROR, http_status=500):
    """pushd hit an internal error."""


class InvalidTaskError(Error):
    """The task is invalid."""


class InvalidTaskNameError(InvalidTaskError, code=ErrorCode.INVALID_TASK_NAME):
    """The task name is invalid."""


class TaskTooLargeError(InvalidTaskError, code=ErrorCode.TASK_TOO_LARGE, http_status=413):
    """The task is too large."""


class TransactionalRequestTooLargeError(
    TaskTooLargeError, code=ErrorCode.TRANSACTIONAL_REQUEST_TOO_LARGE
):
    """The transactional request is too large."""


class TaskAlreadyExistsError(InvalidTaskError, code=ErrorCode.TASK_ALREADY_EXISTS, http_status=409):
    """A task with this name already exists in the queue."""


class TombstonedTaskError(InvalidTaskError, code=ErrorCode.TOMBSTONED_TASK, http_status=409):
    """A task with this name was used recently and cannot be reused yet."""


class InvalidUrlError(InvalidTaskError, code=ErrorCode.INVALID_URL):
    """The task URL is invalid."""


class InvalidEtaError(InvalidTaskError, code=ErrorCode.INVALID_ETA):
    """The task ETA is invalid."""


class InvalidTagError(Error, code=ErrorCode.INVALID_TAG):
    """The task tag is invalid."""


class InvalidDispatchDeadlineError(Error, code=ErrorCode.INVALID_DISPATCH_DEADLINE):
    """The dispatch deadline is invalid."""


class BadTaskStateError(Error):
    """The task is in a state that does not allow this operation."""


class InvalidQueueError(Error, code=ErrorCode.INVALID_QUEUE_RATE):
    """The queue's configuration is invalid."""


class InvalidQueueNameError(InvalidQueueError, code=ErrorCode.INVALID_QUEUE_NAME):
    """The queue name is invalid."""


class PermissionDeniedError(Error, code=ErrorCode.PERMISSION_DENIED, http_status=403):
    """The caller may not perform this operation."""


class DuplicateTaskNameError(Error, code=ErrorCode.DUPLICATE_TASK_NAME):
    """The same task name appears twice in one request."""


class TooManyTasksError(Error, code=ErrorCode.TOO_MANY_TASKS):
    """Too many tasks in one request."""


class InvalidTaskRetryOptionsError(Error, code=ErrorCode.INVALID_RETRY_PARAMETERS):
    """The task retry options are invalid."""


class InvalidLeaseTimeError(Error):
    """The lease time is invalid."""


class InvalidMaxTasksError(Error):
    """The maximum number of tasks is invalid."""


class InvalidDeadlineError(Error):
    """The RPC deadline is invalid."""


class InvalidQueueModeError(Error, code=ErrorCode.INVALID_QUEUE_MODE):
    """The operation does not match the queue's mode (push or pull)."""


class TaskLeaseExpiredError(Error, code=ErrorCode.TASK_LEASE_EXPIRED):
    """The task lease has expired."""


class QueuePausedError(Error, code=ErrorCode.QUEUE_PAUSED):
    """The queue is paused."""


class UnknownTaskError(Error, code=ErrorCode.UNKNOWN_TASK, http_status=404):
    """The task does not exist."""


class StorageLimitExceededError(Error, http_status=507):
    """The queue's total_storage_limit is reached."""


def _leaf_classes() -> list[type[Error]]:
    found: list[type[Error]] = []
    stack: list[type[Error]] = [Error]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


#: Every task-queue error class, parents before children.
ALL_ERRORS: tuple[type[Error], ...] = tuple(_leaf_classes())

#: Service error code -> the most specific class raised for it: the class that names the code.
#: Codes without an entry map to :class:`Error`, as App Engine's client does; classes that share a
#: code with their parent (``InvalidTaskError`` and the like) are not the target of a code.
BY_CODE: dict[ErrorCode, type[Error]] = {ErrorCode.TOMBSTONED_QUEUE: Error} | {
    cls.code: cls for cls in ALL_ERRORS if "code" in vars(cls)
}


def from_code(code: int, detail: str = "") -> Error:
    """Build the exception App Engine's client raises for a service error code."""
    try:
        cls = BY_CODE[ErrorCode(code)]
    except (ValueError, KeyError):
        return Error(f"Application error {code}: {detail}")
    return cls(detail or None)
