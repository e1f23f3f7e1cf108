"""Every failure of an API request becomes the same JSON body (STYLE.md habit 9).

::

    {"error": {"code": <HTTP status>, "status": "<App Engine ErrorCode name>", "message": "..."}}

A :class:`errors.Error` answers its own ``http_status`` and ``code``; aiohttp's HTTP exceptions
(unknown route 404, wrong method 405, body too large 413, ...) keep their status and headers
(``Allow``, ``WWW-Authenticate``) and are named with the nearest App Engine code; anything else
is a bug: it is logged with its traceback and answered 500 ``INTERNAL_ERROR`` without one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import hdrs, typedefs, web

from pushd import errors, logs, wire

Handler = typedefs.Handler
Middleware = typedefs.Middleware
JSON_CONTENT_TYPE = "application/json"
_NAMES_BY_STATUS = {
    401: errors.ErrorCode.PERMISSION_DENIED,
    403: errors.ErrorCode.PERMISSION_DENIED,
    413: errors.ErrorCode.TASK_TOO_LARGE,
    500: errors.ErrorCode.INTERNAL_ERROR,
    503: errors.ErrorCode.TRANSIENT_ERROR,
}
_KEPT_HEADERS = (hdrs.ALLOW, hdrs.WWW_AUTHENTICATE, hdrs.RETRY_AFTER)
_log = logging.getLogger(f"{logs.LOGGER_NAME}.api")


def json_response(value: object, *, status: int = 200) -> web.Response:
    return web.Response(body=wire.dumps(value), status=status, content_type=JSON_CONTENT_TYPE)


def error_response(
    http_status: int,
    status: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    exception: str | None = None,
) -> web.Response:
    # Messages quote user input with repr(), but never let a stray surrogate break the encoder.
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body = wire.encode_error(http_status, status, text, exception)
    response = json_response(body, status=http_status)
    response.headers.update(headers or {})
    return response


def status_name(http_status: int) -> str:
    """The App Engine error name an HTTP status without a pushd error is reported as."""
    return _NAMES_BY_STATUS.get(http_status, errors.ErrorCode.INVALID_REQUEST).name


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    if isinstance(exc, web.HTTPNotFound) and request.match_info.http_exception is exc:
        message = "no such route; the API lives under /api/v1"
    elif isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"method {exc.method} is not allowed here; allowed: {allowed}"
    else:
        message = exc.text or exc.reason
    headers = {k: v for k, v in exc.headers.items() if k in _KEPT_HEADERS}
    return error_response(exc.status, status_name(exc.status), message, headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every exception a handler raises into the JSON error body."""
    try:
        return await handler(request)
    except errors.Error as exc:
        if exc.http_status >= 500:
            _log_failure(request, exc)
        return error_response(
            exc.http_status, exc.code.name, exc.message, exception=type(exc).__name__
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except Exception as exc:
        _log_failure(request, exc)
        return error_response(500, errors.ErrorCode.INTERNAL_ERROR.name, "internal server error")


def _log_failure(request: web.Request, exc: Exception) -> None:
    fields = {"method": request.method, "route": _route(request), "error": type(exc).__name__}
    _log.error(
        "api_internal_error",
        exc_info=exc,
        extra={"event": "api_internal_error", "fields": fields},
    )


def _route(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "?"
