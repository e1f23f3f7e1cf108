"""One task built from a :class:`TaskRequest` with App Engine's client-side checks, in the
order of its ``Task.__init__`` (SPEC 1.2-1.12)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from pushd import encoding, errors, models
from pushd.tasks import numbers
from pushd.tasks.http_target import build_http
from pushd.tasks.names import NameFactory, check_generated_name, check_namespace, check_task_name
from pushd.tasks.retry_options import check_retry_options

if TYPE_CHECKING:
    from pushd.tasks.request import TaskRequest

_BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE"})


#: What a task's headers come to: (those stored, their part of the task's size).
HeaderFacts = tuple[tuple[tuple[str, str], ...], int]


def build(
    request: TaskRequest,
    *,
    queue: str,
    now_us: int,
    name_factory: NameFactory,
    seen_headers: dict[tuple[tuple[str, str], ...], HeaderFacts] | None = None,
) -> models.Task:
    """App Engine's client-side checks, in the order of its ``Task.__init__`` (Cloud Tasks'
    for an HTTP task: :mod:`pushd.tasks.http_target`).

    This runs for every task added: a check whose field is absent is skipped, not called.
    ``seen_headers`` (one per batch) keeps what each set of headers came to: the tasks of a
    batch mostly carry the same ones (the namespace and a content type).
    """
    if request.http is not None:
        return build_http(
            request, request.http, queue=queue, now_us=now_us, name_factory=name_factory
        )
    retry_options = (
        None if request.retry_options is None else check_retry_options(request.retry_options)
    )
    name = check_task_name(request.name) if request.name else None
    on_queue_url, path, query = _split_url(request.url)
    headers = [] if request.headers is None else encoding.normalize_headers(request.headers)
    user_headers = bool(headers)
    namespace = request.namespace
    if namespace != "":
        check_namespace(namespace)
    if user_headers:
        encoding.set_default_header(headers, encoding.NAMESPACE_HEADER, namespace)
    else:
        headers.append((encoding.NAMESPACE_HEADER, namespace))
    method_in: object = request.method
    method = method_in.upper() if isinstance(method_in, str) else encoding.show(method_in)
    _check_query_and_tag(request, method=method, query=query)
    body_rule = _BODY_RULES.get(method)
    if body_rule is None:
        raise errors.InvalidTaskError(
            f"Invalid method: {method} (method must be one of "
            f"{', '.join(m.value for m in models.Method)})"
        )
    given = _Given(request, method, on_queue_url, user_headers)
    payload, query = body_rule(given, headers, query)
    relative_url = f"{path}?{query}" if query else path
    target = None if request.target is None else _target(request.target, headers)
    eta_us = numbers.eta_us_of(request, now_us)
    kept, headers_size = _header_facts(headers, seen_headers)
    size = _check_size(method, payload, relative_url, headers_size)
    tag_bytes = None if request.tag is None else _tag(request.tag)
    deadline_us = (
        None
        if request.dispatch_deadline is None and request.dispatch_deadline_us is None
        else numbers.dispatch_deadline_us_of(request, pull=method == "PULL")
    )

    task_name = name if name is not None else check_generated_name(name_factory())
    return models.Task(
        queue=queue,
        name=task_name,
        method=_METHODS[method],
        url=f"{models.DEFAULT_QUEUE_PATH}/{queue}{relative_url}" if on_queue_url else relative_url,
        on_queue_url=on_queue_url,
        # Pull tasks keep no headers: App Engine's client never sends them to the service.
        headers=() if method == "PULL" else kept,
        payload=payload,
        eta_us=eta_us,
        created_us=now_us,
        tag=tag_bytes,
        retry_options=retry_options,
        target=target or None,
        dispatch_deadline_us=deadline_us,
        size=size,
    )


_METHODS = {m.value: m for m in models.Method}


def _split_url(url: object) -> tuple[bool, str, str]:
    """(on the queue's default URL, path, query) of ``url``; none or empty means the default."""
    if url is None or url == "":
        return True, "", ""
    if not isinstance(url, str):
        raise errors.InvalidUrlError(f"url must be a string; got {encoding.show(url)}")
    path, query = encoding.split_url(url, max_path_length=models.MAX_URL_LENGTH)
    return False, path, query


def _check_query_and_tag(request: TaskRequest, *, method: str, query: str) -> None:
    if query and request.params:
        raise errors.InvalidTaskError(
            "url has a query string and params are given; only one of them may be supplied"
        )
    if method != "PULL" and request.tag is not None:
        raise errors.InvalidTaskError("tag can only be specified for pull tasks")


class _Given(NamedTuple):
    """What a method's body rule reads of the request (a tuple: one is made per task)."""

    request: TaskRequest
    method: str  # upper case
    on_queue_url: bool
    user_headers: bool


#: A method's body rule: (the request, the headers to add a content type to, the URL's query)
#: -> (the payload, the query), raising for what the method does not allow.
_BodyRule = Callable[[_Given, encoding.Headers, str], tuple[bytes, str]]


def _pull_body(given: _Given, headers: encoding.Headers, query: str) -> tuple[bytes, str]:
    request = given.request
    if not given.on_queue_url:
        raise errors.InvalidTaskError("url must not be specified for pull tasks")
    if given.user_headers:
        raise errors.InvalidTaskError("headers must not be specified for pull tasks")
    if request.target:
        raise errors.InvalidTaskError("target must not be specified for pull tasks")
    payload_in: object = request.payload
    if request.params:
        if payload_in:
            raise errors.InvalidTaskError(
                "payload and params are both given for a pull task; supply only one"
            )
        payload_in = encoding.encode_params(request.params)
    if payload_in is None:
        raise errors.InvalidTaskError("payload (or params) must be specified for pull tasks")
    return _convert_payload(payload_in, headers), query


def _post_body(given: _Given, headers: encoding.Headers, query: str) -> tuple[bytes, str]:
    request = given.request
    if request.payload and request.params:
        raise errors.InvalidTaskError(
            "payload and params are both given for a POST task; supply only one"
        )
    if query:
        raise errors.InvalidTaskError(
            "url of a POST task cannot have a query string; use params instead"
        )
    if request.params:
        encoding.set_default_header(headers, encoding.CONTENT_TYPE, encoding.FORM_CONTENT_TYPE)
        return encoding.encode_params(request.params).encode("ascii"), query
    if request.payload is not None:
        return _convert_payload(request.payload, headers), query
    return b"", query


def _other_body(given: _Given, headers: encoding.Headers, query: str) -> tuple[bytes, str]:
    """PUT, and the bodyless GET, HEAD and DELETE: params go to the query string."""
    request = given.request
    if request.payload and given.method in _BODYLESS_METHODS:
        raise errors.InvalidTaskError(
            f"payload can only be specified for POST, PUT and PULL tasks, not {given.method}"
        )
    payload = b"" if request.payload is None else _convert_payload(request.payload, headers)
    if request.params:
        query = encoding.encode_params(request.params)
    return payload, query


_BODY_RULES: dict[str, _BodyRule] = {
    "PULL": _pull_body,
    "POST": _post_body,
    "PUT": _other_body,
    **dict.fromkeys(_BODYLESS_METHODS, _other_body),
}


def _target(target: object, headers: encoding.Headers) -> str | None:
    if target is not None and not isinstance(target, str):
        raise errors.InvalidTaskError(f"target must be a string; got {encoding.show(target)}")
    if target and encoding.has_header(headers, "Host"):
        raise errors.InvalidTaskError("a Host header cannot be set when a target is specified")
    return target


def _header_facts(
    headers: encoding.Headers,
    seen: dict[tuple[tuple[str, str], ...], HeaderFacts] | None,
) -> HeaderFacts:
    key = tuple(headers)
    if seen is not None and (found := seen.get(key)) is not None:
        return found
    facts = (encoding.kept_headers(headers), encoding.headers_size(headers))
    if seen is not None:
        seen[key] = facts
    return facts


def _check_size(method: str, payload: bytes, relative_url: str, headers_size: int) -> int:
    """The task's size, which must be within its limit (SPEC 1.11).

    The client's size check counts every header it holds, including those that production
    drops (X-AppEngine-*) and, for pull tasks, the namespace and content-type headers that are
    never sent; counting them keeps pushd's limit exactly where App Engine's is.
    """
    limit = models.MAX_PULL_TASK_SIZE_BYTES if method == "PULL" else models.MAX_PUSH_TASK_SIZE_BYTES
    size = len(method) + len(payload) + len(relative_url) + headers_size  # encoding.task_size
    if size > limit:
        raise errors.TaskTooLargeError(f"task size must be at most {limit} bytes; found {size}")
    return size


def _convert_payload(payload: object, headers: encoding.Headers) -> bytes:
    """bytes as they are; str as UTF-8 with a text/plain content type unless one was given."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        if payload:
            encoding.set_default_header(headers, encoding.CONTENT_TYPE, encoding.TEXT_CONTENT_TYPE)
        return encoding.utf8(payload, "payload")
    raise errors.InvalidTaskError(f"payload must be bytes or str; got {encoding.show(payload)}")


def _tag(tag: object) -> bytes | None:
    """SPEC 1.9: at most 500 characters (str) or bytes; stored as bytes, empty as none."""
    if tag is None:
        return None
    if not isinstance(tag, bytes | str):
        raise errors.InvalidTagError(f"tag must be bytes or str; got {encoding.show(tag)}")
    if len(tag) > models.MAX_TAG_LENGTH:
        unit = "bytes" if isinstance(tag, bytes) else "characters"
        raise errors.InvalidTagError(
            f"tag must be at most {models.MAX_TAG_LENGTH} {unit}; found {len(tag)}"
        )
    raw = tag if isinstance(tag, bytes) else encoding.utf8(tag, "tag")
    return raw or None  # App Engine's client sends no tag for an empty one


def extract_params(task: models.Task) -> dict[str, bytes | list[bytes]]:
    """The task's form parameters, like App Engine's ``Task.extract_params()`` (SPEC 8.3).

    POST and pull tasks parse the payload, other methods the URL's query string. A key seen once
    maps to its bytes value, a repeated key to a list. Malformed data raises ``ValueError``.
    """
    if task.method in (models.Method.POST, models.Method.PULL):
        return encoding.extract_params(task.payload)
    _, _, query = task.url.partition("?")
    return encoding.extract_params(query)
