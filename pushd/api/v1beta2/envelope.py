"""Google's JSON error envelope, in which every failure under the REST API's prefix answers
(SPEC 7.6), and the statuses and reasons where it differs from the native API."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from pushd import errors
from pushd.api import errors as api_errors

if TYPE_CHECKING:
    from aiohttp import web


class GoogleErrorItem(TypedDict):
    domain: str
    reason: str
    message: str


class GoogleErrorBody(TypedDict):
    errors: list[GoogleErrorItem]
    code: int
    message: str


class GoogleError(TypedDict):
    """Google's JSON error envelope."""

    error: GoogleErrorBody


#: HTTP statuses for pushd errors where SPEC 7.6 differs from the native API.
_STATUS_BY_ERROR: tuple[tuple[type[errors.Error], int], ...] = (
    (errors.TaskAlreadyExistsError, 400),
    (errors.TombstonedTaskError, 400),
    (errors.TaskTooLargeError, 400),
)
_REASON_BY_ERROR: tuple[tuple[type[errors.Error], str], ...] = (
    (errors.TaskAlreadyExistsError, "alreadyExists"),
    (errors.TombstonedTaskError, "alreadyExists"),
    (errors.StorageLimitExceededError, "quotaExceeded"),
)
_REASON_BY_STATUS = {
    400: "badRequest",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    405: "methodNotAllowed",
    413: "requestTooLarge",
    500: "internalError",
    503: "backendError",
}


def _status_and_reason(failure: api_errors.Failure) -> tuple[int, str]:
    status = failure.http_status
    error = failure.error
    if error is not None:
        status = next((s for cls, s in _STATUS_BY_ERROR if isinstance(error, cls)), status)
        reason = next((r for cls, r in _REASON_BY_ERROR if isinstance(error, cls)), None)
        if reason is not None:
            return status, reason
    default = "badRequest" if status < 500 else "backendError"
    return status, _REASON_BY_STATUS.get(status, default)


def render_error(failure: api_errors.Failure) -> web.Response:
    """Google's JSON error envelope for any failure under :data:`PREFIX` (SPEC 7.6)."""
    status, reason = _status_and_reason(failure)
    body: GoogleError = {
        "error": {
            "errors": [{"domain": "global", "reason": reason, "message": failure.message}],
            "code": status,
            "message": failure.message,
        }
    }
    response = api_errors.json_response(body, status=status)
    response.headers.update(failure.headers)
    return response
