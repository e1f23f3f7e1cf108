"""App Engine's ``google.appengine.api.taskqueue``, talking to a pushd daemon.

Code written for App Engine moves over by changing one import::

    from google.appengine.api import taskqueue   # before
    from pushd import taskqueue                   # after

The names, arguments, properties, exception classes and batch rules are App Engine's (SPEC 1,
6 and 8.3): :class:`Task` validates exactly as App Engine's client does (the rules live in
:mod:`pushd.tasks`, which is tested against App Engine's own SDK), :class:`Queue` adds, deletes,
leases and reports statistics, and the ``*_async`` methods answer an :class:`RPC` whose
``get_result()`` waits, as App Engine's ``UserRPC`` does. Every call is an HTTP request to the
daemon's native API (``/api/v1``, :mod:`pushd.client`), so a plain script needs no event loop.
Async code uses :class:`AsyncQueue`, whose methods are coroutines of the same names::

    async with taskqueue.AsyncQueue("pull") as queue:
        leased = await queue.lease_tasks(60, 10)

The daemon is found at the ``url`` a :class:`Queue` is given, else the one :func:`configure`
set, else ``$PUSHD_URL``, else ``http://127.0.0.1:8460`` (likewise ``token`` / ``$PUSHD_TOKEN``).

Requests are built and answers read by pure functions (``_add_plan`` and friends) that the
blocking, thread-pool and asyncio front ends share; only the transport differs.

As with App Engine's client, a pull task's ``retry_options`` are checked but never sent, so the
queue's ``task_retry_limit`` limits its leases (pushd's own API would honour a task's limit; a
migrated application keeps the limits it had).

Differences from App Engine, each on purpose:

* ``transactional=True`` raises :class:`BadTransactionStateError`: pushd has no datastore to
  bind a task to (App Engine raises the same class outside a transaction).
* Validation differences of :mod:`pushd.tasks` apply (naive ``datetime`` ETAs are UTC, an ETA
  may be POSIX seconds, user ``X-AppEngine-*`` headers other than the namespace and FailFast
  headers are dropped, ...). A task whose ETA lies before 1970 is refused when it is built
  (:class:`InvalidEtaError`), where App Engine's service refuses it at add time.
* There is no namespace manager: tasks carry ``X-AppEngine-Current-Namespace: ""``, and
  ``Host`` is never derived from the environment, so ``Task.target`` is the target given (or
  None), never App Engine's "unknown version" marker.
* ``extract_params()`` keys are ``bytes`` where App Engine's are (a bytes payload: POST and
  pull tasks given a payload, leased tasks) and ``str`` elsewhere (a query string, the text
  payload of a POST built from params), as App Engine's client on Python 3.
* Service errors App Engine reports as the generic :class:`Error` may arrive as one of pushd's
  subclasses of it, e.g. :class:`UnknownTaskError` from ``modify_task_lease`` on a task that
  does not exist; ``QueueStatistics`` of an unknown queue raise :class:`UnknownQueueError`
  (SPEC 10, Q16) where App Engine's emulator answers zeros.
* ``deadline`` arguments are checked as App Engine checks them and bound the wait of an
  :class:`RPC`; blocking calls are bounded by the HTTP client's timeout instead.
* Tags travel as text: a ``bytes`` tag that is not UTF-8 cannot be added (:class:`InvalidTagError`).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from pushd import client as http
from pushd import clock, encoding, errors, models, tasks, wire

__all__ = [
    "DEFAULT_APP_VERSION",
    "MAX_DISPATCH_DEADLINE",
    "MAX_LEASE_SECONDS",
    "MAX_PULL_TASK_SIZE_BYTES",
    "MAX_PUSH_TASK_SIZE_BYTES",
    "MAX_QUEUE_NAME_LENGTH",
    "MAX_TAG_LENGTH",
    "MAX_TASKS_PER_ADD",
    "MAX_TASKS_PER_LEASE",
    "MAX_TASK_NAME_LENGTH",
    "MAX_TASK_SIZE_BYTES",
    "MAX_TRANSACTIONAL_REQUEST_SIZE_BYTES",
    "MAX_URL_LENGTH",
    "MIN_DISPATCH_DEADLINE",
    "RPC",
    "AsyncQueue",
    "BadTaskStateError",
    "BadTransactionState",
    "BadTransactionStateError",
    "DatastoreError",
    "DuplicateTaskNameError",
    "Error",
    "InternalError",
    "InvalidDeadlineError",
    "InvalidDispatchDeadlineError",
    "InvalidEtaError",
    "InvalidLeaseTimeError",
    "InvalidMaxTasksError",
    "InvalidQueueError",
    "InvalidQueueModeError",
    "InvalidQueueNameError",
    "InvalidTagError",
    "InvalidTaskError",
    "InvalidTaskNameError",
    "InvalidTaskRetryOptionsError",
    "InvalidUrlError",
    "PermissionDeniedError",
    "Queue",
    "QueuePausedError",
    "QueueStatistics",
    "Task",
    "TaskAlreadyExistsError",
    "TaskLeaseExpiredError",
    "TaskRetryOptions",
    "TaskTooLargeError",
    "TombstonedTaskError",
    "TooManyTasksError",
    "TransactionalRequestTooLargeError",
    "TransientError",
    "UnknownQueueError",
    "UnknownTaskError",
    "add",
    "configure",
    "create_rpc",
]

R = TypeVar("R")

# ------------------------------------------------------------------ exceptions (SPEC 1.14)

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

# ------------------------------------------------------------------ constants (SPEC 1.1)

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

_DEFAULT_QUEUE = models.DEFAULT_QUEUE_NAME
# Tasks are built before their queue is known; the default URL's prefix is cut off again.
_BUILD_PREFIX = f"{models.DEFAULT_QUEUE_PATH}/{_DEFAULT_QUEUE}"
_UNNAMED = "unnamed"  # the name build_task gives an unnamed task; never shown or sent
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_HUGE_US = 10**15
_OK = errors.ErrorCode.OK.name
_SKIPPED = errors.ErrorCode.SKIPPED.name


# ------------------------------------------------------------------ configuration


@dataclass(slots=True)
class _Defaults:
    url: str | None = None
    token: str | None = None
    clock: clock.Clock | None = None


_defaults = _Defaults()
_lock = threading.Lock()
_clients: dict[tuple[str, str | None], http.Client] = {}
_executor: concurrent.futures.ThreadPoolExecutor | None = None
_EXECUTOR_THREADS = 8


def configure(
    *, url: str | None = None, token: str | None = None, clock: clock.Clock | None = None
) -> None:
    """Set the daemon every :class:`Queue` without its own ``url``/``token`` talks to.

    ``None`` means ``$PUSHD_URL`` / ``$PUSHD_TOKEN`` or the built-in default; ``configure()``
    restores those. ``clock`` is where tasks read "now" (countdowns; tests pass a fake one).
    """
    if url is not None:
        http.server_url(url)  # a malformed URL fails here, not at the first call
    with _lock:
        _defaults.url, _defaults.token, _defaults.clock = url, token, clock
        # Forget the clients, closing every thread's kept-alive connection.
        for found in _clients.values():
            found.close_all()
        _clients.clear()


def _now_us() -> int:
    return (_defaults.clock or clock.SystemClock()).now_us()


def _sync_client(url: str | None, token: str | None) -> http.Client:
    base = http.server_url(url or _defaults.url)
    secret = http.server_token(token or _defaults.token)
    with _lock:
        found = _clients.get((base, secret))
        if found is None:
            found = _clients[(base, secret)] = http.Client(base, token=secret)
        return found


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                _EXECUTOR_THREADS, thread_name_prefix="pushd-taskqueue"
            )
        return _executor


def _validate_deadline(deadline: object) -> None:
    """App Engine's RPC deadline rule: a number (``TypeError``), greater than 0."""
    if not isinstance(deadline, int | float):
        raise TypeError("deadline must be numeric")
    if deadline <= 0:
        raise InvalidDeadlineError("Negative or zero deadline requested")


# ------------------------------------------------------------------ RPC objects


class RPC(Generic[R]):
    """What the ``*_async`` methods answer; :meth:`get_result` waits for the outcome.

    Like App Engine's ``UserRPC``: the answer is read when :meth:`get_result` (or
    :meth:`check_success`) is called, errors are raised there, and ``callback`` runs once the
    call has finished, when it is first waited for. ``deadline`` bounds that wait.
    """

    def __init__(
        self, deadline: float | None = None, callback: Callable[[], object] | None = None
    ) -> None:
        if deadline is not None:
            _validate_deadline(deadline)
        self.deadline = deadline
        self.callback = callback
        self._future: concurrent.futures.Future[list[Any]] | None = None
        self._finish: Callable[[list[Any]], R] | None = None
        self._finished = False
        self._result: R | None = None
        self._error: Exception | None = None
        self._called_back = False

    def _start(self, run: Callable[[], list[Any]], finish: Callable[[list[Any]], R]) -> RPC[R]:
        if self._future is not None:
            raise AssertionError("this RPC object was used already; create a new one")
        self._finish = finish
        self._future = _pool().submit(run)
        return self

    def wait(self) -> None:
        """Block until the call has finished (or the deadline passed)."""
        if self._future is None:
            raise AssertionError("this RPC object was never used for a call")
        try:
            concurrent.futures.wait([self._future], timeout=self.deadline)
        finally:
            if self._future.done() and not self._called_back and self.callback is not None:
                self._called_back = True
                self.callback()

    def check_success(self) -> None:
        """Raise the call's error, if it failed."""
        self.get_result()

    def get_result(self) -> R:
        """The call's result, or the exception App Engine's client raises for it."""
        if not self._finished:
            self.wait()
            future, finish = self._future, self._finish
            assert future is not None
            assert finish is not None
            if not future.done():
                raise TransientError(
                    f"the call did not finish within its {self.deadline} s deadline"
                )
            try:
                self._result = finish(future.result())
            except Exception as exc:
                self._error = exc
            self._finished = True
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # R itself may include None


def create_rpc(
    deadline: float | None = None, callback: Callable[[], object] | None = None
) -> RPC[Any]:
    """An :class:`RPC` to hand to a ``*_async`` method (App Engine's ``create_rpc``)."""
    return RPC(deadline, callback)


# ------------------------------------------------------------------ retry options


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
        self._params = _checked_retry(given) or models.RetryParameters()

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


def _checked_retry(params: models.RetryParameters) -> models.RetryParameters | None:
    """``params`` checked and normalized by :func:`tasks.build_task`, which checks retry
    options first of all (so a trivial pull task carrying them fails only on them)."""
    probe = tasks.TaskRequest(method="PULL", payload=b"", retry_options=params)
    built = tasks.build_task(
        probe, queue=_DEFAULT_QUEUE, mode=models.QueueMode.PULL, now_us=0, name_factory=_unnamed
    )
    return built.retry_options


def _unnamed() -> str:
    return _UNNAMED


def _retry_parameters(options: object) -> Any:
    if isinstance(options, TaskRetryOptions):
        return options.parameters
    return options  # RetryParameters, None, or something pushd.tasks refuses


# ------------------------------------------------------------------ headers


class CaselessHeaders(MutableMapping[str, Any]):
    """A task's headers: names compared without case, the name's first spelling kept.

    A repeated header's value is the list of its values, as App Engine's ``Task.headers``.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, Any]] = {}
        for name, value in pairs:
            key = name.lower()
            if key in self._items:
                first, old = self._items[key]
                self._items[key] = (first, [*old, value] if isinstance(old, list) else [old, value])
            else:
                self._items[key] = (name, value)

    def __getitem__(self, name: str) -> Any:
        return self._items[name.lower()][1]

    def __setitem__(self, name: str, value: Any) -> None:
        old = self._items.get(name.lower())
        self._items[name.lower()] = (old[0] if old else name, value)

    def __delitem__(self, name: str) -> None:
        del self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def copy(self) -> CaselessHeaders:
        found = CaselessHeaders()
        found._items = dict(self._items)
        return found

    def __repr__(self) -> str:
        return repr(dict(self.items()))


# ------------------------------------------------------------------ tasks


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
            dispatch_deadline=(
                _clamp(dispatch_deadline_usec) / clock.US_PER_SECOND
                if deadline_ok and dispatch_deadline_usec is not None
                else None
            ),
        )
        pull = isinstance(method, str) and method.upper() == models.Method.PULL
        built = tasks.build_task(
            request,
            queue=_DEFAULT_QUEUE,
            mode=models.QueueMode.PULL if pull else models.QueueMode.PUSH,
            now_us=_now_us(),
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
    def _leased(cls, queue_name: str, found: Mapping[str, Any]) -> Task:
        """A task a lease answered (App Engine's ``_FromQueryAndOwnResponseTask``)."""
        payload = wire.b64decode(str(found.get("payload_base64") or ""), "payload_base64")
        tag: bytes | str | None = found.get("tag")
        if tag is None and found.get("tag_base64") is not None:
            tag = wire.b64decode(str(found["tag_base64"]), "tag_base64")
        ns_header = [(encoding.NAMESPACE_HEADER, "")]
        self = cls.__new__(cls)
        self._built = models.Task(
            queue=queue_name,
            name=str(found["name"]),
            method=models.Method.PULL,
            url=f"{models.DEFAULT_QUEUE_PATH}/{queue_name}",
            on_queue_url=True,
            payload=payload,
            eta_us=int(found["eta_us"]),
            tag=tag.encode("utf-8") if isinstance(tag, str) else tag,
            retry_count=int(found["retry_count"]),
            size=encoding.task_size(
                method=models.Method.PULL, payload=payload, relative_url="", headers=ns_header
            ),
        )
        self._name = self._built.name
        self._queue_name = queue_name
        self._eta_us = self._built.eta_us
        self._retry_count = self._built.retry_count
        self._retry_options = None
        self._target = None
        self._tag = tag
        self._dispatch_deadline_usec = None
        self._relative_url = ""
        self._headers = CaselessHeaders(ns_header)
        self._payload = payload
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
        return _EPOCH + datetime.timedelta(microseconds=self._eta_us)

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

    def add(self, queue_name: str = _DEFAULT_QUEUE, transactional: bool = False) -> Task:
        """Add this task to ``queue_name`` (see :meth:`Queue.add`)."""
        return Queue(queue_name).add(self, transactional)

    def add_async(
        self,
        queue_name: str = _DEFAULT_QUEUE,
        transactional: bool = False,
        rpc: RPC[Any] | None = None,
    ) -> RPC[Any]:
        return Queue(queue_name).add_async(self, transactional, rpc)

    def __repr__(self) -> str:
        attrs = ["eta", "method", "name", "queue_name", "payload", "size", "retry_options"]
        attrs += ["was_enqueued", "was_deleted"]
        attrs += ["tag"] if self.method == "PULL" else ["headers", "url", "target"]
        shown = ", ".join(f"{a}={getattr(self, a)!r}" for a in sorted(attrs))
        return f"Task<{shown}>"


def _clamp(usec: int) -> int:
    """Whole µs kept within ±10**15 (still far out of range), so that dividing a huge int
    cannot overflow a float: pushd.tasks then refuses it like any other bad deadline."""
    return max(-_HUGE_US, min(usec, _HUGE_US))


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


def _listify(task: Task | Iterable[Task]) -> tuple[list[Task], bool]:
    """(tasks, whether a list was given), as App Engine's ``list(iter(task))`` decides."""
    if isinstance(task, Task):
        return [task], False
    return list(task), True


def _one_or_all(items: list[Task], multiple: bool) -> Any:
    return items if multiple else items[0]


# ------------------------------------------------------------------ requests and answers


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    body: object = None


@dataclass(frozen=True, slots=True)
class _Plan(Generic[R]):
    """The requests an operation makes (maybe none) and how their answers become its result."""

    calls: tuple[_Call, ...]
    finish: Callable[[list[Any]], R]


def _queue_path(queue_name: str, *rest: str) -> str:
    return "/".join(("/api/v1/queues", http.quote(queue_name), *rest))


def _eta_value(eta_us: int) -> float | str:
    """The ETA as the add request carries it: POSIX seconds when they round-trip exactly
    (every present-day time does), else RFC 3339 text, which is exact to the microsecond."""
    seconds = clock.us_to_seconds(eta_us)
    if eta_us < 0 or clock.seconds_to_us(seconds) == eta_us:
        return seconds
    return (_EPOCH + datetime.timedelta(microseconds=eta_us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _query_params(query: str) -> dict[str, list[str]] | None:
    """The params that encode back to exactly ``query``, or None if none do."""
    found: dict[str, list[str]] = {}
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        return None
    for key, value in pairs:
        found.setdefault(key, []).append(value)
    return found if encoding.encode_params(found) == query else None


def _task_json(task: Task, queue_name: str) -> dict[str, object]:
    """The add request's object for a built task: its final values, for the daemon to store."""
    built = task._built
    out: dict[str, object] = {"method": built.method.value, "eta": _eta_value(built.eta_us)}
    if task._name:
        out["name"] = task._name
    if built.payload or built.is_pull:
        out["payload_base64"] = wire.b64encode(built.payload)
    if built.is_pull:
        if built.tag is not None:
            try:
                out["tag"] = built.tag.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidTagError("pushd carries tags as text; this tag is not UTF-8") from None
    else:
        out["headers"] = [[k, v] for k, v in built.headers]
        _, _, query = built.url.partition("?")
        if not built.on_queue_url:
            out["url"] = built.url
        elif query:
            # A default-URL task with a query string (params of a GET, PUT, ...): send the
            # params so that the daemon builds the same URL under its queue's prefix; params
            # that are not text cannot travel in JSON, so then send that URL itself.
            params = _query_params(query)
            if params is None:
                out["url"] = f"{models.DEFAULT_QUEUE_PATH}/{queue_name}?{query}"
            else:
                out["params"] = params
        if built.target:
            out["target"] = built.target
        if built.dispatch_deadline_us is not None:
            out["dispatch_deadline"] = clock.us_to_seconds(built.dispatch_deadline_us)
        if built.retry_options is not None:
            out["retry_options"] = wire.encode_retry(built.retry_options)
    # A pull task's retry_options are not sent, as App Engine's client never sends them: its
    # queue's task_retry_limit limits its leases, as it did on App Engine.
    return out


def _add_plan(
    queue_name: str, items: list[Task], transactional: bool, multiple: bool
) -> _Plan[Any]:
    """App Engine's ``Queue.add_async`` checks, in its order (SPEC 1.13), and the request."""
    if not items:
        return _Plan((), lambda answers: [])
    pull = [task.method == models.Method.PULL for task in items]
    if any(pull) and not all(pull):
        raise InvalidTaskError("You cannot add both push and pull tasks in a single call.")
    if len(items) > MAX_TASKS_PER_ADD:
        raise TooManyTasksError(
            f"No more than {MAX_TASKS_PER_ADD} tasks can be added in a single call"
        )
    names: set[str] = set()
    for task in items:
        if task.name:
            if task.name in names:
                raise DuplicateTaskNameError(
                    f"The task name {task.name!r} is used more than once in the request"
                )
            names.add(task.name)
        if task.was_enqueued:
            raise BadTaskStateError("The task has already been enqueued.")
        if transactional:
            raise BadTransactionStateError(
                "Transactional adds are not supported: pushd has no datastore transaction "
                "to bind tasks to; add them with transactional=False"
            )
    body = {"tasks": [_task_json(task, queue_name) for task in items]}

    def finish(answers: list[Any]) -> Any:
        _apply_add(queue_name, items, answers[0])
        return _one_or_all(items, multiple)

    return _Plan((_Call("POST", _queue_path(queue_name, "tasks"), body),), finish)


def _result_error(code: str, name: str) -> errors.Error:
    found = errors.ErrorCode.__members__.get(code)
    detail = f"task {name!r}"
    if found is None:
        return Error(f"Application error {code}: {detail}")
    return errors.from_code(found, detail)


def _apply_add(queue_name: str, items: list[Task], answer: Any) -> None:
    """App Engine's BulkAdd result hook (SPEC 1.15): fill in the tasks that were added, then
    raise the first error, replaced by any later one while it is a name clash."""
    results = _results(answer, len(items), "add")
    exception: errors.Error | None = None
    for task, result in zip(items, results, strict=True):
        code = str(result.get("result"))
        if code == _OK:
            task._name = str(result["name"])
            task._queue_name = queue_name
            task._enqueued = True
        elif code == _SKIPPED:
            pass
        elif exception is None or isinstance(
            exception, TaskAlreadyExistsError | TombstonedTaskError
        ):
            exception = _result_error(code, str(result.get("name", task.name)))
    if exception is not None:
        raise exception


def _results(answer: Any, count: int, what: str) -> list[Mapping[str, Any]]:
    found = answer.get("tasks") if isinstance(answer, dict) else None
    if not isinstance(found, list) or len(found) != count:
        raise InternalError(f"expected {count} results from {what}, got {answer!r:.200}")
    return found


def _delete_plan(queue_name: str, items: list[Task], multiple: bool) -> _Plan[Any]:
    """App Engine's ``Queue.delete_tasks_async`` checks and the requests (SPEC 6)."""
    names: list[str] = []
    seen: set[str] = set()
    for task in items:
        if not task.name:
            raise BadTaskStateError("A task name must be specified for a task")
        if task.was_deleted:
            raise BadTaskStateError(f"The task {task.name} has already been deleted")
        if task.name in seen:
            raise DuplicateTaskNameError(
                f"The task name {task.name!r} is used more than once in the request"
            )
        seen.add(task.name)
        names.append(task.name)
    step = wire.MAX_NAMES_PER_DELETE
    path = _queue_path(queue_name, "delete")
    calls = tuple(
        _Call("POST", path, {"names": names[i : i + step]}) for i in range(0, len(names), step)
    )

    def finish(answers: list[Any]) -> Any:
        done = [r for a, c in zip(answers, calls, strict=True) for r in _deleted(a, c)]
        for task, result in zip(items, done, strict=True):
            task._deleted = bool(result.get("deleted"))
        return _one_or_all(items, multiple)

    return _Plan(calls, finish)


def _deleted(answer: Any, call: _Call) -> list[Mapping[str, Any]]:
    assert isinstance(call.body, dict)
    return _results(answer, len(call.body["names"]), "delete")


def _purge_plan(queue_name: str) -> _Plan[None]:
    return _Plan((_Call("POST", _queue_path(queue_name, "purge")),), lambda answers: None)


def _lease_seconds(lease_seconds: object) -> float:
    """App Engine's rule: a number (``TypeError``), 0 to 604800 (:class:`InvalidLeaseTimeError`)."""
    if not isinstance(lease_seconds, int | float):
        raise TypeError("lease_seconds must be a float or an integer")
    seconds = float(lease_seconds)
    tasks.check_lease_seconds(seconds)
    return seconds


def _max_tasks(max_tasks: object) -> int:
    """App Engine's rule: an int (``TypeError``), 1 to 1000 (:class:`InvalidMaxTasksError`)."""
    if not isinstance(max_tasks, int):
        raise TypeError("max_tasks must be an integer")
    return tasks.check_max_tasks(int(max_tasks))


def _lease_plan(
    queue_name: str,
    lease_seconds: object,
    max_tasks: object,
    *,
    group_by_tag: bool = False,
    tag: bytes | str | None = None,
) -> _Plan[list[Task]]:
    body: dict[str, object] = {
        "lease_seconds": _lease_seconds(lease_seconds),
        "max_tasks": _max_tasks(max_tasks),
        "group_by_tag": group_by_tag,
    }
    if tag is not None:
        if isinstance(tag, str):
            body["tag"] = tag
        else:
            try:
                body["tag"] = tag.decode("utf-8")
            except UnicodeDecodeError:
                body["tag_base64"] = wire.b64encode(tag)

    def finish(answers: list[Any]) -> list[Task]:
        found = answers[0].get("tasks") if isinstance(answers[0], dict) else None
        if not isinstance(found, list):
            raise InternalError(f"unexpected lease answer {answers[0]!r:.200}")
        return [Task._leased(queue_name, item) for item in found]

    return _Plan((_Call("POST", _queue_path(queue_name, "lease"), body),), finish)


def _modify_lease_plan(queue_name: str, task: Task, lease_seconds: object) -> _Plan[None]:
    seconds = _lease_seconds(lease_seconds)
    if not task.name:
        raise TypeError("modify_task_lease needs a named task (one that lease_tasks returned)")
    body = {"eta_us": task._eta_us, "lease_seconds": seconds}

    def finish(answers: list[Any]) -> None:
        task._eta_us = int(answers[0]["eta_us"])

    path = _queue_path(queue_name, "tasks", http.quote(task.name), "lease")
    return _Plan((_Call("POST", path, body),), finish)


# ------------------------------------------------------------------ queues


class Queue:
    """A queue of the daemon, by name (``default`` unless told), as App Engine's ``Queue``.

    ``url`` and ``token`` choose the daemon for this queue only (see :func:`configure`).
    """

    def __init__(
        self, name: str = _DEFAULT_QUEUE, *, url: str | None = None, token: str | None = None
    ) -> None:
        self._name = tasks.check_queue_name(name)
        self._url = url
        self._token = token

    @property
    def name(self) -> str:
        return self._name

    def _run(self, plan: _Plan[R]) -> R:
        if not plan.calls:
            return plan.finish([])
        client = _sync_client(self._url, self._token)
        return plan.finish([client.call(c.method, c.path, c.body) for c in plan.calls])

    def _run_async(self, plan: _Plan[R], rpc: RPC[Any] | None) -> RPC[Any]:
        target = rpc if rpc is not None else RPC[Any]()
        if not plan.calls:
            return target._start(list, plan.finish)
        client = _sync_client(self._url, self._token)
        calls = plan.calls
        return target._start(
            lambda: [client.call(c.method, c.path, c.body) for c in calls], plan.finish
        )

    # ---- add

    @overload
    def add(self, task: Task, transactional: bool = False) -> Task: ...
    @overload
    def add(self, task: Iterable[Task], transactional: bool = False) -> list[Task]: ...
    def add(self, task: Task | Iterable[Task], transactional: bool = False) -> Any:
        """Add a task or a list of up to 100 (SPEC 1.13-1.15); returns what was given."""
        items, multiple = _listify(task)
        if not items:
            return []
        return self._run(_add_plan(self._name, items, transactional, multiple))

    def add_async(
        self, task: Task | Iterable[Task], transactional: bool = False, rpc: RPC[Any] | None = None
    ) -> RPC[Any]:
        items, multiple = _listify(task)
        return self._run_async(_add_plan(self._name, items, transactional, multiple), rpc)

    # ---- delete and purge

    @overload
    def delete_tasks(self, task: Task) -> Task: ...
    @overload
    def delete_tasks(self, task: Iterable[Task]) -> list[Task]: ...
    def delete_tasks(self, task: Task | Iterable[Task]) -> Any:
        """Delete by name; ``was_deleted`` tells which were live (SPEC 6)."""
        items, multiple = _listify(task)
        return self._run(_delete_plan(self._name, items, multiple))

    def delete_tasks_async(
        self, task: Task | Iterable[Task], rpc: RPC[Any] | None = None
    ) -> RPC[Any]:
        items, multiple = _listify(task)
        return self._run_async(_delete_plan(self._name, items, multiple), rpc)

    @overload
    def delete_tasks_by_name(self, task_name: str) -> Task: ...  # type: ignore[overload-overlap]
    @overload
    def delete_tasks_by_name(self, task_name: Iterable[str]) -> list[Task]: ...
    def delete_tasks_by_name(self, task_name: str | Iterable[str]) -> Any:
        return self.delete_tasks(_by_name(task_name))

    def delete_tasks_by_name_async(
        self, task_name: str | Iterable[str], rpc: RPC[Any] | None = None
    ) -> RPC[Any]:
        return self.delete_tasks_async(_by_name(task_name), rpc)

    def purge(self) -> None:
        """Delete every task of the queue; their names stay tombstoned."""
        self._run(_purge_plan(self._name))

    # ---- leases

    def lease_tasks(self, lease_seconds: float, max_tasks: int, deadline: float = 10) -> list[Task]:
        """Lease up to ``max_tasks`` due tasks of a pull queue for ``lease_seconds``."""
        _validate_deadline(deadline)
        return self._run(_lease_plan(self._name, lease_seconds, max_tasks))

    def lease_tasks_async(
        self, lease_seconds: float, max_tasks: int, rpc: RPC[Any] | None = None
    ) -> RPC[Any]:
        return self._run_async(_lease_plan(self._name, lease_seconds, max_tasks), rpc)

    def lease_tasks_by_tag(
        self,
        lease_seconds: float,
        max_tasks: int,
        tag: bytes | str | None = None,
        deadline: float = 10,
    ) -> list[Task]:
        """Lease tasks of one tag; ``tag=None`` takes the tag of the earliest due task."""
        _validate_deadline(deadline)
        plan = _lease_plan(self._name, lease_seconds, max_tasks, group_by_tag=True, tag=tag)
        return self._run(plan)

    def lease_tasks_by_tag_async(
        self,
        lease_seconds: float,
        max_tasks: int,
        tag: bytes | str | None = None,
        rpc: RPC[Any] | None = None,
    ) -> RPC[Any]:
        plan = _lease_plan(self._name, lease_seconds, max_tasks, group_by_tag=True, tag=tag)
        return self._run_async(plan, rpc)

    def modify_task_lease(self, task: Task, lease_seconds: float) -> None:
        """Renew (or with 0, release) a lease; the task's ETA becomes the new expiry."""
        self._run(_modify_lease_plan(self._name, task, lease_seconds))

    # ---- statistics

    def fetch_statistics(self, deadline: float = 10) -> QueueStatistics:
        _validate_deadline(deadline)
        return self._run(_stats_plan(self))

    def fetch_statistics_async(self, rpc: RPC[Any] | None = None) -> RPC[Any]:
        return QueueStatistics.fetch_async(self, rpc)

    def __repr__(self) -> str:
        return f"Queue<name={self._name!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Queue):
            return NotImplemented
        return (self._name, self._url, self._token) == (other._name, other._url, other._token)

    def __hash__(self) -> int:
        return hash((self._name, self._url, self._token))


def _by_name(task_name: str | Iterable[str]) -> Task | list[Task]:
    if isinstance(task_name, str):
        return Task(name=task_name)
    return [Task(name=name) for name in task_name]


# ------------------------------------------------------------------ statistics


class QueueStatistics:
    """A queue's state (SPEC 6), as App Engine's ``QueueStatistics``.

    ``paused`` and ``dead_letters`` are pushd's own additions.
    """

    _ATTRS = (
        "queue",
        "tasks",
        "oldest_eta_usec",
        "executed_last_minute",
        "in_flight",
        "enforced_rate",
    )

    def __init__(
        self,
        queue: Queue | AsyncQueue,
        tasks: int,
        oldest_eta_usec: int | None = None,
        executed_last_minute: int | None = None,
        in_flight: int | None = None,
        enforced_rate: float | None = None,
        *,
        paused: bool = False,
        dead_letters: int = 0,
    ) -> None:
        self.queue = queue
        self.tasks = tasks
        self.oldest_eta_usec = oldest_eta_usec
        self.executed_last_minute = executed_last_minute
        self.in_flight = in_flight
        self.enforced_rate = enforced_rate
        self.paused = paused
        self.dead_letters = dead_letters

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueueStatistics):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a in self._ATTRS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{a}={getattr(self, a)!r}" for a in self._ATTRS)
        return f"QueueStatistics({shown})"

    @classmethod
    def _from_json(cls, queue: Queue | AsyncQueue, answer: Any) -> QueueStatistics:
        stats = answer.get("stats") if isinstance(answer, dict) else None
        if not isinstance(stats, dict):
            raise InternalError(f"unexpected queue answer {answer!r:.200}")
        oldest = stats.get("oldest_eta_us")
        return cls(
            queue,
            int(stats.get("tasks", 0)),
            None if oldest is None else int(oldest),
            int(stats.get("executed_last_minute", 0)),
            int(stats.get("in_flight", 0)),
            float(stats.get("enforced_rate", 0.0)),
            paused=bool(stats.get("paused", False)),
            dead_letters=int(stats.get("dead_letters", 0)),
        )

    @classmethod
    def fetch(cls, queue_or_queues: Any, deadline: float = 10) -> Any:
        """Statistics of one queue (a Queue or a name), or a list of them for a list."""
        _validate_deadline(deadline)
        if not queue_or_queues:
            return []
        queues, multiple = _stats_targets(queue_or_queues)
        found = [queue._run(_stats_plan(queue)) for queue in queues]
        return found if multiple else found[0]

    @classmethod
    def fetch_async(cls, queue_or_queues: Any, rpc: RPC[Any] | None = None) -> RPC[Any]:
        queues, multiple = _stats_targets(queue_or_queues)
        target = rpc if rpc is not None else RPC[Any]()
        plans = [_stats_plan(queue) for queue in queues]
        clients = [_sync_client(queue._url, queue._token) for queue in queues]

        def run() -> list[Any]:
            return [
                client.call(c.method, c.path, c.body)
                for client, plan in zip(clients, plans, strict=True)
                for c in plan.calls
            ]

        def finish(answers: list[Any]) -> Any:
            found = [plan.finish([a]) for plan, a in zip(plans, answers, strict=True)]
            return found if multiple else found[0]

        return target._start(run, finish)


def _stats_targets(queue_or_queues: Any) -> tuple[list[Queue], bool]:
    """App Engine's rules: a name or a Queue gives one answer, an iterable a list; names and
    Queue objects cannot be mixed (``TypeError``)."""
    if isinstance(queue_or_queues, str | Queue):
        items: list[Any] = [queue_or_queues]
        multiple = False
    else:
        try:
            items = list(iter(queue_or_queues))
        except TypeError:
            raise TypeError("queue_or_queues must be a Queue, a queue name or a list") from None
        multiple = True
    strs = any(isinstance(q, str) for q in items)
    queues = any(isinstance(q, Queue) for q in items)
    if strs and queues:
        raise TypeError("queue_or_queues must contain either strings or queue instances, not both.")
    if not all(isinstance(q, str | Queue) for q in items):
        raise TypeError("queue_or_queues must hold queue names or Queue instances")
    return [q if isinstance(q, Queue) else Queue(q) for q in items], multiple


def _stats_plan(queue: Queue | AsyncQueue) -> _Plan[QueueStatistics]:
    def finish(answers: list[Any]) -> QueueStatistics:
        return QueueStatistics._from_json(queue, answers[0])

    return _Plan((_Call("GET", _queue_path(queue.name)),), finish)


# ------------------------------------------------------------------ asyncio


class AsyncQueue:
    """:class:`Queue` for asyncio code: the same methods, as coroutines.

    Used as ``async with AsyncQueue(name) as queue:`` it keeps one HTTP session for the block;
    otherwise each call opens and closes its own (or pass a shared ``client``).
    """

    def __init__(
        self,
        name: str = _DEFAULT_QUEUE,
        *,
        url: str | None = None,
        token: str | None = None,
        client: http.AsyncClient | None = None,
    ) -> None:
        self._name = tasks.check_queue_name(name)
        self._url = url
        self._token = token
        self._client = client
        self._owned: http.AsyncClient | None = None

    @property
    def name(self) -> str:
        return self._name

    def _new_client(self) -> http.AsyncClient:
        return http.AsyncClient(self._url or _defaults.url, token=self._token or _defaults.token)

    async def __aenter__(self) -> AsyncQueue:
        if self._client is None:
            self._client = self._owned = self._new_client()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session :meth:`__aenter__` opened (a given ``client`` stays open)."""
        if self._owned is not None:
            owned, self._owned, self._client = self._owned, None, None
            await owned.close()

    async def _run(self, plan: _Plan[R]) -> R:
        if not plan.calls:
            return plan.finish([])
        if self._client is not None:
            client = self._client
            return plan.finish([await client.call(c.method, c.path, c.body) for c in plan.calls])
        async with self._new_client() as one:
            return plan.finish([await one.call(c.method, c.path, c.body) for c in plan.calls])

    @overload
    async def add(self, task: Task, transactional: bool = False) -> Task: ...
    @overload
    async def add(self, task: Iterable[Task], transactional: bool = False) -> list[Task]: ...
    async def add(self, task: Task | Iterable[Task], transactional: bool = False) -> Any:
        items, multiple = _listify(task)
        if not items:
            return []
        return await self._run(_add_plan(self._name, items, transactional, multiple))

    @overload
    async def delete_tasks(self, task: Task) -> Task: ...
    @overload
    async def delete_tasks(self, task: Iterable[Task]) -> list[Task]: ...
    async def delete_tasks(self, task: Task | Iterable[Task]) -> Any:
        items, multiple = _listify(task)
        return await self._run(_delete_plan(self._name, items, multiple))

    @overload
    async def delete_tasks_by_name(self, task_name: str) -> Task: ...  # type: ignore[overload-overlap]
    @overload
    async def delete_tasks_by_name(self, task_name: Iterable[str]) -> list[Task]: ...
    async def delete_tasks_by_name(self, task_name: str | Iterable[str]) -> Any:
        return await self.delete_tasks(_by_name(task_name))

    async def purge(self) -> None:
        await self._run(_purge_plan(self._name))

    async def lease_tasks(
        self, lease_seconds: float, max_tasks: int, deadline: float = 10
    ) -> list[Task]:
        _validate_deadline(deadline)
        return await self._run(_lease_plan(self._name, lease_seconds, max_tasks))

    async def lease_tasks_by_tag(
        self,
        lease_seconds: float,
        max_tasks: int,
        tag: bytes | str | None = None,
        deadline: float = 10,
    ) -> list[Task]:
        _validate_deadline(deadline)
        plan = _lease_plan(self._name, lease_seconds, max_tasks, group_by_tag=True, tag=tag)
        return await self._run(plan)

    async def modify_task_lease(self, task: Task, lease_seconds: float) -> None:
        await self._run(_modify_lease_plan(self._name, task, lease_seconds))

    async def fetch_statistics(self, deadline: float = 10) -> QueueStatistics:
        _validate_deadline(deadline)
        return await self._run(_stats_plan(self))

    def __repr__(self) -> str:
        return f"AsyncQueue<name={self._name!r}>"


# ------------------------------------------------------------------ module-level add


def add(
    payload: bytes | str | None = None,
    *,
    queue_name: str = _DEFAULT_QUEUE,
    transactional: bool = False,
    **kwargs: Any,
) -> Task:
    """Build a :class:`Task` from ``payload`` and ``kwargs`` and add it to ``queue_name``."""
    return Task(payload, **kwargs).add(queue_name=queue_name, transactional=transactional)
