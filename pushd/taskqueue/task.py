"""App Engine's ``Task`` and ``TaskRetryOptions``, checked by :mod:`pushd.tasks` (SPEC 1, 8.3)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pushd import clock, encoding, models, tasks, wire
from pushd.taskqueue import connection
from pushd.taskqueue.headers import CaselessHeaders

if TYPE_CHECKING:
    from pushd.taskqueue.rpc import RPC

MAX_QUEUE_NAME_LENGTH = models.MAX_QUEUE_NAME_LENGTH
MAX_TASK_NAME_LENGTH = models.MAX_TASK_NAME_LENGTH
MAX_PULL_TASK_SIZE_BYTES = models.MAX_PULL_TASK_SIZE_BYTES
MAX_PUSH_TASK_SIZE_BYTES = models.MAX_PUSH_TASK_SIZE_BYTES
MAX_TASK_SIZE_BYTES = MAX_PUSH_TASK_SIZE_BYTES
MAX_TASKS_PER_ADD = models.MAX_TASKS_PER_ADD
MAX_TRANSACTIONAL_REQUEST_SIZE_BYTES = 2**20
MAX_URL_LENGTH = models.MAX_URL_LENGTH
MAX_TASKS_PER_LEASE = models.MAX_TASKS_PER_LEASE
MAX_TAG_LENGTH = models.MAX_TAG_LENGTH
MAX_LEASE_SECONDS = models.MAX_LEASE_SECONDS
MAX_DISPATCH_DEADLINE = datetime.timedelta(microseconds=models.MAX_DISPATCH_DEADLINE_US)
MIN_DISPATCH_DEADLINE = datetime.timedelta(microseconds=models.MIN_DISPATCH_DEADLINE_US)


class _DefaultAppVersion:
    def __repr__(self) -> str:
        return "<DefaultApplicationVersion>"


#: ``Task(target=DEFAULT_APP_VERSION)``: the default target, as if no target were given.
DEFAULT_APP_VERSION = _DefaultAppVersion()

models.DEFAULT_QUEUE_NAME = models.DEFAULT_QUEUE_NAME
# Tasks are built before their queue is known; the default URL's prefix is cut off again.
_BUILD_PREFIX = f"{models.DEFAULT_QUEUE_PATH}/{models.DEFAULT_QUEUE_NAME}"
_UNNAMED = "unnamed"  # the name build_task gives an unnamed task; never shown or sent


class TaskRetryOptions:
    """When a failed task is retried (SPEC 1.12); checked as App Engine checks it."""

    def __init__(
        self,
        *,
        min_backoff_seconds: float | None = None,
        max_backoff_seconds: float | None = None,
        task_age_limit: float | None = None,
        max_doublings: int | None = None,
        task_retry_limit: int | None = None,
    ) -> None:
        given = models.RetryParameters(
            task_retry_limit=task_retry_limit,
            task_age_limit_s=task_age_limit,  # type: ignore[arg-type]  # rounded up below
            min_backoff_s=min_backoff_seconds,
            max_backoff_s=max_backoff_seconds,
            max_doublings=max_doublings,
        )
        self._params = tasks.check_retry_options(given) or models.RetryParameters()

    @property
    def min_backoff_seconds(self) -> float | None:
        return self._params.min_backoff_s

    @property
    def max_backoff_seconds(self) -> float | None:
        return self._params.max_backoff_s

    @property
    def task_age_limit(self) -> int | None:
        """Seconds, rounded up to a whole number."""
        return self._params.task_age_limit_s

    @property
    def max_doublings(self) -> int | None:
        return self._params.max_doublings

    @property
    def task_retry_limit(self) -> int | None:
        return self._params.task_retry_limit

    @property
    def parameters(self) -> models.RetryParameters:
        """The options as pushd's :class:`models.RetryParameters`."""
        return self._params

    def __repr__(self) -> str:
        names = (
            "min_backoff_seconds",
            "max_backoff_seconds",
            "task_age_limit",
            "max_doublings",
            "task_retry_limit",
        )
        return "TaskRetryOptions({})".format(", ".join(f"{n}={getattr(self, n)!r}" for n in names))


def _unnamed() -> str:
    return _UNNAMED


def _retry_parameters(options: object) -> Any:
    if isinstance(options, TaskRetryOptions):
        return options.parameters
    return options  # RetryParameters, None, or something pushd.tasks refuses


class Task:
    """One task, built and checked as App Engine's ``taskqueue.Task`` (SPEC 1, 8.3).

    ``dispatch_deadline_usec`` is an ``int`` of microseconds (15 s to 24 h), as in App Engine.
    """

    def __init__(
        self,
        payload: bytes | str | None = None,
        *,
        name: str | None = None,
        method: str = "POST",
        url: str | None = None,
        headers: Any = None,
        params: Any = None,
        countdown: Any = None,
        eta: Any = None,
        retry_options: TaskRetryOptions | models.RetryParameters | None = None,
        target: Any = None,
        tag: bytes | str | None = None,
        dispatch_deadline_usec: int | None = None,
    ) -> None:
        deadline_ok = dispatch_deadline_usec is None or isinstance(dispatch_deadline_usec, int)
        request = tasks.TaskRequest(
            name=name or None,
            method=method,
            url=url,
            headers=headers,
            payload=payload,
            params=params,
            countdown=countdown,
            eta=eta,
            retry_options=_retry_parameters(retry_options),
            target=None if target is DEFAULT_APP_VERSION else target,
            tag=tag,
            dispatch_deadline_us=dispatch_deadline_usec if deadline_ok else None,
        )
        pull = isinstance(method, str) and method.upper() == models.Method.PULL
        built = tasks.build_task(
            request,
            queue=models.DEFAULT_QUEUE_NAME,
            mode=models.QueueMode.PULL if pull else models.QueueMode.PUSH,
            now_us=connection.now_us(),
            name_factory=_unnamed,
        )
        if not deadline_ok:
            raise TypeError("deadline must be an integer")
        self._built = built
        self._name = name
        self._queue_name: str | None = None
        self._eta_us = built.eta_us
        self._retry_count = 0
        self._retry_options: object = retry_options
        self._target = target
        self._tag: bytes | str | None = tag
        self._dispatch_deadline_usec = dispatch_deadline_usec
        self._relative_url = built.url[len(_BUILD_PREFIX) :] if built.on_queue_url else built.url
        self._headers = _headers_of(built, payload, params)
        self._payload = _payload_of(built, payload, params)
        self._enqueued = False
        self._deleted = False

    @classmethod
    def _leased(cls, queue_name: str, found: object) -> Task:
        """A task a lease answered (App Engine's ``_FromQueryAndOwnResponseTask``)."""
        self = cls.__new__(cls)
        self._built = wire.decode_leased(found, queue_name)
        self._name = self._built.name
        self._queue_name = queue_name
        self._eta_us = self._built.eta_us
        self._retry_count = self._built.retry_count
        self._retry_options = None
        self._target = None
        self._tag = _shown_tag(self._built.tag)
        self._dispatch_deadline_usec = None
        self._relative_url = ""
        self._headers = CaselessHeaders([(encoding.NAMESPACE_HEADER, "")])
        self._payload = self._built.payload
        self._enqueued = True
        self._deleted = False
        return self

    # ---- App Engine's properties

    @property
    def name(self) -> str | None:
        """The task's name; an unnamed task gets the daemon's generated name when added."""
        return self._name

    @property
    def queue_name(self) -> str | None:
        """The queue the task was added to (or leased from); None before."""
        return self._queue_name

    @property
    def eta_posix(self) -> float:
        """When the task runs, or a leased task's lease ends, as POSIX seconds."""
        return clock.us_to_seconds(self._eta_us)

    @property
    def eta(self) -> datetime.datetime:
        """:attr:`eta_posix` as a timezone-aware UTC datetime."""
        return clock.us_to_datetime(self._eta_us)

    @property
    def _eta_usec(self) -> int:
        return self._eta_us

    @property
    def size(self) -> int:
        """App Engine's size of the task (SPEC 1.11), compared with the 100 KiB / 1 MiB limits."""
        return self._built.size

    @property
    def url(self) -> str:
        """The relative URL; ``''`` (or just ``'?query'``) for the queue's default URL."""
        return self._relative_url

    @property
    def on_queue_url(self) -> bool:
        return self._built.on_queue_url

    @property
    def headers(self) -> CaselessHeaders:
        return self._headers.copy()

    @property
    def payload(self) -> bytes | str | None:
        return self._payload

    @property
    def retry_count(self) -> int:
        """Leases so far for a leased task; 0 otherwise."""
        return self._retry_count

    @property
    def retry_options(self) -> Any:
        return self._retry_options

    @property
    def target(self) -> Any:
        return self._target

    @property
    def tag(self) -> bytes | str | None:
        return self._tag

    @property
    def method(self) -> str:
        return self._built.method.value

    @property
    def dispatch_deadline_usec(self) -> int | None:
        return self._dispatch_deadline_usec

    @property
    def was_enqueued(self) -> bool:
        return self._enqueued

    @property
    def was_deleted(self) -> bool:
        return self._deleted

    def extract_params(self) -> dict[Any, bytes | list[bytes]]:
        """The form parameters: POST and pull tasks parse the payload, others the query.

        Keys have the type of what is parsed, as on App Engine: ``bytes`` for a bytes payload,
        ``str`` for a query string or a POST's text payload built from ``params``, so code
        written for the SDK (``params[b"k"]``) finds them."""
        found = tasks.extract_params(self._built)
        if self.method in ("POST", "PULL") and isinstance(self._payload, bytes):
            return {key.encode("utf-8"): value for key, value in found.items()}
        return dict(found)

    def add(self, queue_name: str = models.DEFAULT_QUEUE_NAME, transactional: bool = False) -> Task:
        """Add this task to ``queue_name`` (see :meth:`Queue.add`)."""
        from pushd.taskqueue.queue import Queue  # Queue imports Task

        return Queue(queue_name).add(self, transactional)

    def add_async(
        self,
        queue_name: str = models.DEFAULT_QUEUE_NAME,
        transactional: bool = False,
        rpc: RPC[Any] | None = None,
    ) -> RPC[Any]:
        from pushd.taskqueue.queue import Queue  # Queue imports Task

        return Queue(queue_name).add_async(self, transactional, rpc)

    def __repr__(self) -> str:
        attrs = ["eta", "method", "name", "queue_name", "payload", "size", "retry_options"]
        attrs += ["was_enqueued", "was_deleted"]
        attrs += ["tag"] if self.method == "PULL" else ["headers", "url", "target"]
        shown = ", ".join(f"{a}={getattr(self, a)!r}" for a in sorted(attrs))
        return f"Task<{shown}>"


def _headers_of(built: models.Task, payload: object, params: object) -> CaselessHeaders:
    """App Engine's ``Task.headers``: push tasks keep theirs; pull tasks store none, but App
    Engine's client shows the namespace header and, for a text payload, the content type."""
    if not built.is_pull:
        return CaselessHeaders(built.headers)
    pairs = [(encoding.NAMESPACE_HEADER, "")]
    if params or (isinstance(payload, str) and payload):
        pairs.append(("content-type", encoding.TEXT_CONTENT_TYPE))
    return CaselessHeaders(pairs)


def _payload_of(built: models.Task, payload: object, params: object) -> bytes | str | None:
    """App Engine's ``Task.payload``: bytes, the form text of a POST with params, or None."""
    method = built.method
    if method is models.Method.PULL:
        return built.payload
    if method is models.Method.POST:
        if params:
            return built.payload.decode("ascii")
        return None if payload is None else built.payload
    return built.payload if payload else None


def _shown_tag(tag: bytes | None) -> bytes | str | None:
    """A leased task's tag as App Engine's client shows it: text when it is UTF-8."""
    try:
        return None if tag is None else tag.decode("utf-8")
    except UnicodeDecodeError:
        return tag


def listify(task: Task | Iterable[Task]) -> tuple[list[Task], bool]:
    """(tasks, whether a list was given), as App Engine's ``list(iter(task))`` decides."""
    if isinstance(task, Task):
        return [task], False
    return list(task), True


def one_or_all(items: list[Task], multiple: bool) -> Any:
    return items if multiple else items[0]
