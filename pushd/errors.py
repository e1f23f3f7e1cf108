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


class UnknownQueueError(Error):
    """The queue is not configured."""

    code = ErrorCode.UNKNOWN_QUEUE
    http_status = 404


class TransientError(Error):
    """A transient error occurred; retry the request."""

    code = ErrorCode.TRANSIENT_ERROR
    http_status = 503


class StoreUnavailableError(TransientError):
    """The store cannot be used right now (disk full, file damaged, database down); retry."""


class InternalError(Error):
    """pushd hit an internal error."""

    code = ErrorCode.INTERNAL_ERROR
    http_status = 500


class InvalidTaskError(Error):
    """The task is invalid."""


class InvalidTaskNameError(InvalidTaskError):
    """The task name is invalid."""

    code = ErrorCode.INVALID_TASK_NAME


class TaskTooLargeError(InvalidTaskError):
    """The task is too large."""

    code = ErrorCode.TASK_TOO_LARGE
    http_status = 413


class TransactionalRequestTooLargeError(TaskTooLargeError):
    """The transactional request is too large."""

    code = ErrorCode.TRANSACTIONAL_REQUEST_TOO_LARGE


class TaskAlreadyExistsError(InvalidTaskError):
    """A task with this name already exists in the queue."""

    code = ErrorCode.TASK_ALREADY_EXISTS
    http_status = 409


class TombstonedTaskError(InvalidTaskError):
    """A task with this name was used recently and cannot be reused yet."""

    code = ErrorCode.TOMBSTONED_TASK
    http_status = 409


class InvalidUrlError(InvalidTaskError):
    """The task URL is invalid."""

    code = ErrorCode.INVALID_URL


class InvalidEtaError(InvalidTaskError):
    """The task ETA is invalid."""

    code = ErrorCode.INVALID_ETA


class InvalidTagError(Error):
    """The task tag is invalid."""

    code = ErrorCode.INVALID_TAG


class InvalidDispatchDeadlineError(Error):
    """The dispatch deadline is invalid."""

    code = ErrorCode.INVALID_DISPATCH_DEADLINE


class BadTaskStateError(Error):
    """The task is in a state that does not allow this operation."""


class InvalidQueueError(Error):
    """The queue's configuration is invalid."""

    code = ErrorCode.INVALID_QUEUE_RATE


class InvalidQueueNameError(InvalidQueueError):
    """The queue name is invalid."""

    code = ErrorCode.INVALID_QUEUE_NAME


class PermissionDeniedError(Error):
    """The caller may not perform this operation."""

    code = ErrorCode.PERMISSION_DENIED
    http_status = 403


class DuplicateTaskNameError(Error):
    """The same task name appears twice in one request."""

    code = ErrorCode.DUPLICATE_TASK_NAME


class TooManyTasksError(Error):
    """Too many tasks in one request."""

    code = ErrorCode.TOO_MANY_TASKS


class InvalidTaskRetryOptionsError(Error):
    """The task retry options are invalid."""

    code = ErrorCode.INVALID_RETRY_PARAMETERS


class InvalidLeaseTimeError(Error):
    """The lease time is invalid."""


class InvalidMaxTasksError(Error):
    """The maximum number of tasks is invalid."""


class InvalidDeadlineError(Error):
    """The RPC deadline is invalid."""


class InvalidQueueModeError(Error):
    """The operation does not match the queue's mode (push or pull)."""

    code = ErrorCode.INVALID_QUEUE_MODE


class TaskLeaseExpiredError(Error):
    """The task lease has expired."""

    code = ErrorCode.TASK_LEASE_EXPIRED


class QueuePausedError(Error):
    """The queue is paused."""

    code = ErrorCode.QUEUE_PAUSED


class UnknownTaskError(Error):
    """The task does not exist."""

    code = ErrorCode.UNKNOWN_TASK
    http_status = 404


class StorageLimitExceededError(Error):
    """The queue's total_storage_limit is reached."""

    http_status = 507


def _leaf_classes() -> list[type[Error]]:
    found: list[type[Error]] = []
    stack: list[type[Error]] = [Error]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


#: Service error code -> the most specific class raised for it. Codes without an entry map to
#: :class:`Error`, as App Engine's client does. Classes that share a code with their parent
#: (``InvalidTaskError`` and the like) are not the target of a code.
BY_CODE: dict[ErrorCode, type[Error]] = {
    ErrorCode.UNKNOWN_QUEUE: UnknownQueueError,
    ErrorCode.TRANSIENT_ERROR: TransientError,
    ErrorCode.INTERNAL_ERROR: InternalError,
    ErrorCode.TASK_TOO_LARGE: TaskTooLargeError,
    ErrorCode.INVALID_TASK_NAME: InvalidTaskNameError,
    ErrorCode.INVALID_QUEUE_NAME: InvalidQueueNameError,
    ErrorCode.INVALID_URL: InvalidUrlError,
    ErrorCode.INVALID_QUEUE_RATE: InvalidQueueError,
    ErrorCode.PERMISSION_DENIED: PermissionDeniedError,
    ErrorCode.TASK_ALREADY_EXISTS: TaskAlreadyExistsError,
    ErrorCode.TOMBSTONED_TASK: TombstonedTaskError,
    ErrorCode.INVALID_ETA: InvalidEtaError,
    ErrorCode.INVALID_REQUEST: Error,
    ErrorCode.UNKNOWN_TASK: UnknownTaskError,
    ErrorCode.TOMBSTONED_QUEUE: Error,
    ErrorCode.DUPLICATE_TASK_NAME: DuplicateTaskNameError,
    ErrorCode.TOO_MANY_TASKS: TooManyTasksError,
    ErrorCode.INVALID_RETRY_PARAMETERS: InvalidTaskRetryOptionsError,
    ErrorCode.INVALID_QUEUE_MODE: InvalidQueueModeError,
    ErrorCode.TRANSACTIONAL_REQUEST_TOO_LARGE: TransactionalRequestTooLargeError,
    ErrorCode.TASK_LEASE_EXPIRED: TaskLeaseExpiredError,
    ErrorCode.QUEUE_PAUSED: QueuePausedError,
    ErrorCode.INVALID_TAG: InvalidTagError,
    ErrorCode.INVALID_DISPATCH_DEADLINE: InvalidDispatchDeadlineError,
}

#: Every task-queue error class, parents before children.
ALL_ERRORS: tuple[type[Error], ...] = tuple(_leaf_classes())


def from_code(code: int, detail: str = "") -> Error:
    """Build the exception App Engine's client raises for a service error code."""
    try:
        cls = BY_CODE[ErrorCode(code)]
    except (ValueError, KeyError):
        return Error(f"Application error {code}: {detail}")
    return cls(detail or None)
