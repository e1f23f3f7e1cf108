"""Every failure of an API request becomes a JSON error body (STYLE.md habit 9).

pushd's own envelope, for every path unless an API module registered another::

    {"error": {"code": <HTTP status>, "status": "<App Engine ErrorCode name>", "message": "..."}}

A :class:`errors.Error` answers its own ``http_status`` and ``code``; aiohttp's HTTP exceptions
(unknown route 404, wrong method 405, body too large 413, ...) keep their status and headers
(``Allow``, ``WWW-Authenticate``) and are named with the nearest App Engine code; anything else
is a bug: it is logged with its traceback and answered 500 ``INTERNAL_ERROR`` without one.

An API whose clients expect another envelope (TaskQueue REST v1beta2 answers Google's) renders
the same :class:`Failure` its own way: :func:`add_renderer` hands it every failure of a request
whose path starts with its prefix, from its handlers, the auth middleware and the router alike.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping

from aiohttp import hdrs, typedefs, web

from pushd import errors, logs, wire
from pushd.store import health

Handler = typedefs.Handler
Middleware = typedefs.Middleware
JSON_CONTENT_TYPE = "application/json"
#: Where pushd's own API lives, as a 404 for an unknown route says.
NATIVE_ROOT = "/api/v1"
_NAMES_BY_STATUS = {
    401: errors.ErrorCode.PERMISSION_DENIED,
    403: errors.ErrorCode.PERMISSION_DENIED,
    413: errors.ErrorCode.TASK_TOO_LARGE,
    500: errors.ErrorCode.INTERNAL_ERROR,
    503: errors.ErrorCode.TRANSIENT_ERROR,
}
_KEPT_HEADERS = (hdrs.ALLOW, hdrs.WWW_AUTHENTICATE, hdrs.RETRY_AFTER)
_log = logging.getLogger(f"{logs.LOGGER_NAME}.api")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """A failed request as pushd answers it natively, before an envelope is chosen."""

    http_status: int
    status: str  # the App Engine ``ErrorCode`` name
    message: str
    #: Headers the answer keeps: Allow, WWW-Authenticate, Retry-After.
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    error: errors.Error | None = None  # the pushd error raised, if one was


Renderer = Callable[[Failure], web.Response]
_RENDERERS = web.AppKey[tuple[tuple[str, bool, Renderer], ...]]("error_renderers")


def add_renderer(
    app: web.Application, prefix: str, renderer: Renderer, *, exact: bool = False
) -> None:
    """Render failures of requests whose path starts with ``prefix`` (``exact``: whose path is
    ``prefix``) with ``renderer``."""
    app[_RENDERERS] = (*app.get(_RENDERERS, ()), (prefix, exact, renderer))


def json_response(value: object, *, status: int = 200) -> web.Response:
    return web.Response(body=wire.dumps(value), status=status, content_type=JSON_CONTENT_TYPE)


def _clean(message: str) -> str:
    # Messages quote user input with repr(), but never let a stray surrogate break the encoder.
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def error_response(
    http_status: int,
    status: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    exception: str | None = None,
) -> web.Response:
    body = wire.encode_error(http_status, status, _clean(message), exception)
    response = json_response(body, status=http_status)
    response.headers.update(headers or {})
    return response


def render_native(failure: Failure) -> web.Response:
    """pushd's own envelope; a pushd error names its class in ``exception``."""
    exception = None if failure.error is None else type(failure.error).__name__
    return error_response(
        failure.http_status, failure.status, failure.message, failure.headers, exception
    )


def status_name(http_status: int) -> str:
    """The App Engine error name an HTTP status without a pushd error is reported as."""
    return _NAMES_BY_STATUS.get(http_status, errors.ErrorCode.INVALID_REQUEST).name


def _envelope(request: web.Request) -> tuple[str, Renderer]:
    """The API root and renderer of the request's path."""
    for prefix, exact, renderer in request.app.get(_RENDERERS, ()):
        if request.path == prefix or (not exact and request.path.startswith(prefix)):
            return prefix, renderer
    return NATIVE_ROOT, render_native


def _http_failure(request: web.Request, exc: web.HTTPException, root: str) -> Failure:
    if isinstance(exc, web.HTTPNotFound) and request.match_info.http_exception is exc:
        message = f"no such route; the API lives under {root}"
    elif isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"method {exc.method} is not allowed here; allowed: {allowed}"
    else:
        message = exc.text or exc.reason
    headers = {k: v for k, v in exc.headers.items() if k in _KEPT_HEADERS}
    return Failure(
        http_status=exc.status, status=status_name(exc.status), message=message, headers=headers
    )


def _declared_too_large(request: web.Request) -> Failure | None:
    """A body whose Content-Length is over the limit, refused before a byte of it is read."""
    size = request.content_length
    if size is None or size <= wire.MAX_REQUEST_BYTES:
        return None
    return Failure(
        http_status=413,
        status=status_name(413),
        message=(
            f"the request body is {size} bytes; at most {wire.MAX_REQUEST_BYTES} are accepted "
            "(add tasks in smaller batches)"
        ),
    )


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue``: a body declared over the limit is refused with the API's 413
    before the client sends it; otherwise the client is told to go on (as aiohttp would)."""
    _, render = _envelope(request)
    if (failure := _declared_too_large(request)) is not None:
        return render(failure)
    expect = request.headers.get(hdrs.EXPECT, "").lower()
    if expect != "100-continue":
        message = f"Expect: {expect!r} is not supported; only 100-continue"
        return render(Failure(http_status=417, status=status_name(417), message=message))
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not the response's size
    return None


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every exception a handler raises into the JSON error body of its API."""
    root, render = _envelope(request)
    if (too_large := _declared_too_large(request)) is not None:
        return render(too_large)  # not read into memory first, as the size limit alone would
    try:
        return await handler(request)
    except errors.Error as exc:
        if isinstance(exc, errors.StoreUnavailableError):  # logged once per cause, no traceback
            health.report(f"{request.method} {_route(request)}", exc)
        elif isinstance(exc, errors.InternalError | errors.TransientError):
            _log_failure(request, exc)  # not a full total_storage_limit (507): that is no bug
        failure = Failure(
            http_status=exc.http_status, status=exc.code.name, message=exc.message, error=exc
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        failure = _http_failure(request, exc, root)
    except Exception as exc:
        _log_failure(request, exc)
        failure = Failure(
            http_status=500,
            status=errors.ErrorCode.INTERNAL_ERROR.name,
            message="internal server error",
        )
    return render(dataclasses.replace(failure, message=_clean(failure.message)))


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
