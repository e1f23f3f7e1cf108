"""What both transports share: the one error type handlers raise, its google.rpc code, the HTTP
status REST answers for it, and the translation of pushd's own errors into it.

Handlers raise :class:`RpcError` with the code and the message the real service answers
(CLOUDTASKS.md 1.4); gRPC aborts the call with them, REST renders Google's error envelope
``{"error": {"code": <HTTP status>, "message": ..., "status": "<CODE>"}}``. A pushd error
escaping a handler (a task pushd's validation refuses, a full store) is translated by its HTTP
status, keeping pushd's message, which names the field.
"""

from __future__ import annotations

import enum

from pushd import errors


class Code(enum.IntEnum):
    """``google.rpc.Code`` (the same numbers as ``grpc.StatusCode``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


#: The HTTP status of each code, as Google's REST front ends map them (google/rpc/code.proto).
HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}
#: The code an HTTP status stands for, for pushd's errors and for REST failures outside the
#: handlers (an unknown route, the auth middleware).
_CODE_OF_STATUS: dict[int, Code] = {
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    405: Code.UNIMPLEMENTED,
    409: Code.ALREADY_EXISTS,
    413: Code.INVALID_ARGUMENT,
    429: Code.RESOURCE_EXHAUSTED,
    501: Code.UNIMPLEMENTED,
    503: Code.UNAVAILABLE,
    507: Code.RESOURCE_EXHAUSTED,
}

# The real service's messages (CLOUDTASKS.md 1.4).
NOT_FOUND = "Requested entity was not found."
ALREADY_EXISTS = "Requested entity already exists"
QUEUE_NOT_FOUND = (
    "Queue does not exist. If you just created the queue, wait at least a minute for the "
    "queue to initialize."
)
QUEUE_ALREADY_EXISTS = "Queue already exists"
TASK_EXISTED_RECENTLY = (
    "The task no longer exists, though a task with this name existed recently. The task either "
    "successfully completed or was deleted."
)
QUEUE_RECENTLY_DELETED = (
    "The queue cannot be created because a queue with this name existed too recently."
)


class RpcError(Exception):
    """A call fails with ``code`` and ``message``; both transports answer exactly these."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


def code_of_status(http_status: int) -> Code:
    """The code a failure with ``http_status`` is reported as."""
    if http_status in _CODE_OF_STATUS:
        return _CODE_OF_STATUS[http_status]
    return Code.INTERNAL if http_status >= 500 else Code.INVALID_ARGUMENT


def from_pushd(exc: errors.Error) -> RpcError:
    """A pushd error as the code its HTTP status stands for, with pushd's own message (it
    names the field); a duplicate or tombstoned name is ALREADY_EXISTS with Google's text."""
    if isinstance(exc, errors.TaskAlreadyExistsError | errors.TombstonedTaskError):
        return RpcError(Code.ALREADY_EXISTS, ALREADY_EXISTS)
    if isinstance(exc, errors.UnknownQueueError):
        return RpcError(Code.NOT_FOUND, QUEUE_NOT_FOUND)
    if isinstance(exc, errors.UnknownTaskError):
        return RpcError(Code.NOT_FOUND, NOT_FOUND)
    return RpcError(code_of_status(exc.http_status), exc.message)


def invalid(message: str) -> RpcError:
    return RpcError(Code.INVALID_ARGUMENT, message)
