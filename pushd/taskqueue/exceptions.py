"""App Engine's taskqueue exception names (SPEC 1.14): pushd.errors classes under their SDK names,
plus the two datastore errors App Engine's module defines."""

from __future__ import annotations

from pushd import errors

Error = errors.Error
UnknownQueueError = errors.UnknownQueueError
TransientError = errors.TransientError
InternalError = errors.InternalError
InvalidTaskError = errors.InvalidTaskError
InvalidTaskNameError = errors.InvalidTaskNameError
TaskTooLargeError = errors.TaskTooLargeError
TransactionalRequestTooLargeError = errors.TransactionalRequestTooLargeError
TaskAlreadyExistsError = errors.TaskAlreadyExistsError
TombstonedTaskError = errors.TombstonedTaskError
InvalidUrlError = errors.InvalidUrlError
InvalidEtaError = errors.InvalidEtaError
BadTaskStateError = errors.BadTaskStateError
InvalidQueueError = errors.InvalidQueueError
InvalidQueueNameError = errors.InvalidQueueNameError
PermissionDeniedError = errors.PermissionDeniedError
DuplicateTaskNameError = errors.DuplicateTaskNameError
TooManyTasksError = errors.TooManyTasksError
InvalidTaskRetryOptionsError = errors.InvalidTaskRetryOptionsError
InvalidLeaseTimeError = errors.InvalidLeaseTimeError
InvalidMaxTasksError = errors.InvalidMaxTasksError
InvalidDeadlineError = errors.InvalidDeadlineError
InvalidQueueModeError = errors.InvalidQueueModeError
TaskLeaseExpiredError = errors.TaskLeaseExpiredError
QueuePausedError = errors.QueuePausedError
InvalidTagError = errors.InvalidTagError
InvalidDispatchDeadlineError = errors.InvalidDispatchDeadlineError
UnknownTaskError = errors.UnknownTaskError


class DatastoreError(errors.Error):
    """There was a datastore error while accessing the queue (never raised: pushd has none)."""


class BadTransactionStateError(errors.Error):
    """The state of the current transaction does not permit this operation."""


BadTransactionState = BadTransactionStateError
