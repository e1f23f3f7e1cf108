"""Cloud Tasks ``http_request`` tasks: a task whose URL is absolute (CLOUDTASKS.md 1.2, 1.5, 8).

They are stored as pushd tasks like any other; what tells them apart is their URL, which starts
``http://`` or ``https://`` (every other task's starts ``/``: :attr:`models.Task.is_http_target`),
so no store keeps a column of its own for them. Only the Cloud Tasks API builds them (a
:class:`TaskRequest` with :attr:`~TaskRequest.http`); every other API refuses an absolute URL.

What Cloud Tasks' rules decide here, once, at creation:

* the URL: http or https, a host, no user name or password, no fragment, at most 2083 characters;
* the headers as stored and returned: their case kept, ``User-Agent`` replaced by
  ``Google-Cloud-Tasks``, never a default ``Content-Type``; the headers the dispatcher owns or
  that would steer the request elsewhere (:data:`RESERVED_HEADERS`, :data:`RESERVED_PREFIXES`:
  ``Host``, ``Content-Length``, ``X-Google-*``, ``X-AppEngine-*``, ``X-CloudTasks-*``,
  ``Metadata-Flavor``, hop-by-hop ones) are refused, naming the header, rather than dropped
  behind the caller's back; at most 80 KB of headers;
* a body for POST and PUT only; 1 MiB in all, as Google allows HTTP tasks;
* ``oidc_token`` / ``oauth_token``: kept as a pushd header (:data:`AUTH_HEADER`, JSON), which
  the dispatcher replaces by ``Authorization: Bearer ...`` at each attempt; either one replaces
  an ``Authorization`` header of the task, as Google's does.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pushd import encoding, errors, models
from pushd.tasks import numbers
from pushd.tasks.names import NameFactory, check_generated_name, check_task_name
from pushd.tasks.retry_options import check_retry_options

if TYPE_CHECKING:
    from pushd.tasks.request import TaskRequest

USER_AGENT = "Google-Cloud-Tasks"
#: The task's ``oidc_token`` or ``oauth_token``, as stored (never sent as it is).
AUTH_HEADER = models.HTTP_AUTH_HEADER
MAX_HTTP_TASK_SIZE_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 80 * 1024
SCHEMES = ("http", "https")
#: Methods an HTTP task may use (PATCH and OPTIONS are not pushd methods yet).
METHODS = ("POST", "GET", "HEAD", "PUT", "DELETE")
BODY_METHODS = frozenset({"POST", "PUT"})
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "metadata-flavor"})
RESERVED_PREFIXES = ("x-google-", "x-appengine-", "x-cloudtasks-", "x-pushd-")


@dataclass(frozen=True, slots=True)
class Authorization:
    """A task's ``oidc_token`` (``kind="oidc"``, ``audience``) or ``oauth_token``
    (``kind="oauth"``, ``scope``)."""

    kind: str
    service_account_email: str
    audience: str = ""
    scope: str = ""

    def dump(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "service_account_email": self.service_account_email,
                "audience": self.audience,
                "scope": self.scope,
            },
            separators=(",", ":"),
        )


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """What makes a :class:`TaskRequest` an HTTP task: its absolute URL and its token."""

    url: str
    authorization: Authorization | None = None


def authorization_of(task: models.Task) -> Authorization | None:
    """The token a stored HTTP task asks for, None if none (or if it cannot be read)."""
    for value in task.header_values(AUTH_HEADER):
        try:
            data = json.loads(value)
            return Authorization(
                kind=str(data["kind"]),
                service_account_email=str(data.get("service_account_email", "")),
                audience=str(data.get("audience", "")),
                scope=str(data.get("scope", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
    return None


def check_absolute_url(url: object) -> str:
    """``url`` if it is an absolute http(s) URL a task may carry, its scheme in lower case;
    :class:`errors.InvalidUrlError` naming the problem otherwise."""
    if not isinstance(url, str) or not url:
        raise errors.InvalidUrlError(f"url must be an http:// or https:// URL; got {_show(url)}")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise errors.InvalidUrlError(
            f"url {_show(url)} must not contain whitespace or control characters"
        )
    encoding.utf8(url, "url")
    if len(url) > models.MAX_URL_LENGTH:
        raise errors.InvalidUrlError(
            f"url must be at most {models.MAX_URL_LENGTH} characters; found {len(url)}"
        )
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises for a port out of range)
    except ValueError as exc:
        raise errors.InvalidUrlError(f"url {_show(url)} cannot be parsed: {exc}") from None
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise errors.InvalidUrlError(f"url {_show(url)} must start with http:// or https://")
    if "@" in parts.netloc:
        raise errors.InvalidUrlError(f"url {_show(url)} must not carry a user name or password")
    if parts.fragment or "#" in url:
        raise errors.InvalidUrlError(f"url {_show(url)} cannot have a #fragment")
    if "\\" in url:
        raise errors.InvalidUrlError(f"url {_show(url)} must not contain a backslash")
    return parts.scheme.lower() + url[len(parts.scheme) :]


def check_header(name: str) -> None:
    """:class:`errors.InvalidTaskError` if an HTTP task may not carry header ``name``."""
    lowered = name.lower()
    if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES):
        raise errors.InvalidTaskError(
            f"header {name!r} is reserved for HTTP tasks (Host, Content-Length, "
            "Transfer-Encoding, Metadata-Flavor, X-Google-*, X-AppEngine-*, X-CloudTasks-*, "
            "X-Pushd-*): the dispatcher sets it or it could steer the request; remove it"
        )


def _headers(request: TaskRequest, http: HttpTarget) -> list[tuple[str, str]]:
    """The headers stored: the caller's (reserved ones refused), User-Agent replaced, and the
    token (which replaces an Authorization header)."""
    given = encoding.normalize_headers(request.headers)
    for name, _ in given:
        check_header(name)
    dropped = {"user-agent"} | ({"authorization"} if http.authorization else set())
    headers = [(k, v) for k, v in given if k.lower() not in dropped]
    headers.append(("User-Agent", USER_AGENT))
    if http.authorization is not None:
        headers.append((AUTH_HEADER, http.authorization.dump()))
    total = sum(len(k) + len(v) + 4 for k, v in headers)
    if total > MAX_HEADER_BYTES:
        raise errors.TaskTooLargeError(
            f"headers must total at most {MAX_HEADER_BYTES} bytes; found {total}"
        )
    return headers


def _payload(request: TaskRequest, method: str) -> bytes:
    if request.params:
        raise errors.InvalidTaskError("params cannot be given for an HTTP task; send a body")
    payload: object = request.payload
    if payload is None or payload in (b"", ""):
        return b""
    if method not in BODY_METHODS:
        raise errors.InvalidTaskError(
            f"a body can only be sent with POST or PUT, not {method} (http_request.body)"
        )
    if isinstance(payload, str):
        return encoding.utf8(payload, "body")
    if isinstance(payload, bytes):
        return payload
    raise errors.InvalidTaskError(f"body must be bytes; got {_show(payload)}")


def build_http(
    request: TaskRequest, http: HttpTarget, *, queue: str, now_us: int, name_factory: NameFactory
) -> models.Task:
    """The task to store for an HTTP-task request (the rules in this module's docstring)."""
    retry_options = check_retry_options(request.retry_options)
    name = check_task_name(request.name) if request.name else None
    url = check_absolute_url(http.url)
    method = str(request.method).upper()
    if method not in METHODS:
        raise errors.InvalidTaskError(
            f"http_method {method} is not one of {', '.join(METHODS)} (pushd serves no other)"
        )
    if request.target:
        raise errors.InvalidTaskError("an HTTP task has no App Engine target; its URL says")
    headers = _headers(request, http)
    payload = _payload(request, method)
    size = encoding.task_size(method=method, payload=payload, relative_url=url, headers=headers)
    if size > MAX_HTTP_TASK_SIZE_BYTES:
        raise errors.TaskTooLargeError(
            f"an HTTP task must be at most {MAX_HTTP_TASK_SIZE_BYTES} bytes; found {size}"
        )
    return models.Task(
        queue=queue,
        name=name if name is not None else check_generated_name(name_factory()),
        method=models.Method(method),
        url=url,
        headers=tuple(headers),
        payload=payload,
        eta_us=numbers.eta_us_of(request, now_us),
        created_us=now_us,
        retry_options=retry_options,
        dispatch_deadline_us=numbers.dispatch_deadline_us_of(request, pull=False),
        size=size,
    )


def _show(value: object) -> str:
    return encoding.show(value)
