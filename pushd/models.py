"""Pure data shared by every layer: enums, limits, retry parameters and the stored task.

Times are ``int`` microseconds since the epoch (see :mod:`pushd.clock`); durations carry their
unit in their name. Nothing here validates user input: :mod:`pushd.tasks` builds valid
:class:`Task` values and :mod:`pushd.queue_yaml.config` builds valid :class:`RetryParameters`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

# ------------------------------------------------------------------ limits (SPEC 1.1)
MAX_QUEUE_NAME_LENGTH = 100
MAX_TASK_NAME_LENGTH = 500
MAX_TAG_LENGTH = 500  # characters of the tag
MAX_URL_LENGTH = 2083  # characters of the URL path, query excluded
MAX_PUSH_TASK_SIZE_BYTES = 100 * 1024
MAX_PULL_TASK_SIZE_BYTES = 1024 * 1024
MAX_TASKS_PER_ADD = 100
MAX_TASKS_PER_LEASE = 1000
MAX_LEASE_SECONDS = 7 * 24 * 3600
MAX_ETA_AHEAD_US = 30 * 24 * 3600 * 1_000_000  # 30 days
MIN_DISPATCH_DEADLINE_US = 15 * 1_000_000  # 15 s
MAX_DISPATCH_DEADLINE_US = 24 * 3600 * 1_000_000  # 24 h
#: A queue deleted through the Cloud Tasks API keeps its name from reuse this long.
API_QUEUE_TOMBSTONE_US = 3600 * 1_000_000  # 1 h (CLOUDTASKS.md 1.3)
DEFAULT_DISPATCH_DEADLINE_US = 10 * 60 * 1_000_000  # 10 min, App Engine automatic scaling
DEFAULT_QUEUE_NAME = "default"
DEFAULT_QUEUE_PATH = "/_ah/queue"
#: Where an HTTP task keeps its ``oidc_token`` / ``oauth_token`` (pushd's bookkeeping, never
#: sent as it is nor shown as one of the task's headers: :attr:`Task.shown_headers`).
HTTP_AUTH_HEADER = "X-Pushd-Http-Authorization"


class Method(enum.StrEnum):
    GET = "GET"
    POST = "POST"
    HEAD = "HEAD"
    PUT = "PUT"
    DELETE = "DELETE"
    PULL = "PULL"


class QueueMode(enum.StrEnum):
    PUSH = "push"
    PULL = "pull"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryParameters:
    """App Engine retry parameters; ``None`` means "not set" (the default applies, SPEC 4.1).

    Used both for a queue's ``retry_parameters`` and for a task's ``TaskRetryOptions``. A task's
    options, when present, replace the queue's wholesale (SPEC 4.4).
    """

    task_retry_limit: int | None = None
    task_age_limit_s: int | None = None
    min_backoff_s: float | None = None
    max_backoff_s: float | None = None
    max_doublings: int | None = None

    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.task_retry_limit,
                self.task_age_limit_s,
                self.min_backoff_s,
                self.max_backoff_s,
                self.max_doublings,
            )
        )


#: Why an attempt got no HTTP answer (``LastAttempt.error``): the connection was refused, reset
#: or timed out, the host name did not resolve, or another connection or URL problem.
#: ``forbidden``: the URL policy (``http_targets``) refused the HTTP task's address.
ATTEMPT_ERRORS = (
    "refused",
    "reset",
    "timeout",
    "dns",
    "connection",
    "invalid_url",
    "forbidden",
)
MAX_ATTEMPT_MESSAGE = 200  # characters of an attempt's message kept with the task


@dataclass(frozen=True, slots=True, kw_only=True)
class LastAttempt:
    """The latest failed attempt of a push task, kept with it (like Cloud Tasks' ``lastAttempt``)
    so a person sees why it is waiting without reading the log.

    ``status`` is the HTTP status when an answer came, else None and ``error`` says why not (one
    of :data:`ATTEMPT_ERRORS`); ``message`` is a short text of either; ``url`` the full URL the
    request went to. ``executions``, for HTTP tasks only: the attempts so far answered with a
    status below 500 (Cloud Tasks' execution count, which leaves 5xx out, CLOUDTASKS.md 1.5),
    carried from one attempt to the next (kept here, in the attempt's JSON: no store column).
    """

    time_us: int
    status: int | None
    error: str | None
    message: str
    url: str
    executions: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """A task as stored: what the producer asked for plus its delivery state.

    ``url`` is the full relative URL that will be requested (the default
    ``/_ah/queue/<queue>`` is filled in at add time, with any query string); ``on_queue_url``
    remembers that it was the default. ``headers`` keeps order and repeats.
    """

    queue: str
    name: str
    method: Method = Method.POST
    url: str = ""
    on_queue_url: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    payload: bytes = b""
    eta_us: int = 0
    created_us: int = 0
    tag: bytes | None = None
    retry_options: RetryParameters | None = None
    target: str | None = None
    dispatch_deadline_us: int | None = None
    size: int = 0  # App Engine's size formula (SPEC 1.11), counted against total_storage_limit
    # --- delivery state (SPEC 4.5)
    retry_count: int = 0
    execution_count: int = 0
    first_try_us: int | None = None
    last_status: int | None = None  # HTTP status of the previous attempt, if it got one
    last_attempt: LastAttempt | None = None  # the previous failed attempt, push tasks only

    @property
    def is_pull(self) -> bool:
        return self.method is Method.PULL

    @property
    def is_http_target(self) -> bool:
        """A Cloud Tasks HTTP task: its URL is absolute (every other task's starts ``/``)."""
        return self.url.startswith(("http://", "https://"))

    @property
    def mode(self) -> QueueMode:
        return QueueMode.PULL if self.is_pull else QueueMode.PUSH

    @property
    def shown_headers(self) -> tuple[tuple[str, str], ...]:
        """The headers every view shows (native API, console, CLI, /rpc_http, Cloud Tasks): an
        HTTP task's token setting (:data:`HTTP_AUTH_HEADER`) left out, as it is pushd's
        bookkeeping, not a header the user gave. Other tasks show theirs as given, even one
        of that name (it is theirs, and sent as it is)."""
        if not self.is_http_target:
            return self.headers
        own = HTTP_AUTH_HEADER.lower()
        return tuple((k, v) for k, v in self.headers if k.lower() != own)

    def header_values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [v for k, v in self.headers if k.lower() == lowered]


@dataclass(frozen=True, slots=True)
class AddResult:
    """Outcome of one task of a batch add (SPEC 1.15)."""

    task: Task
    error: type[Exception] | None = None  # TaskAlreadyExistsError / TombstonedTaskError, or None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class LiveStats:
    """What only the running scheduler knows about a push queue."""

    in_flight: int = 0
    executed_last_minute: int = 0
    enforced_rate: float = 0.0
    paused: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    """Statistics of one queue (App Engine ``QueueStatistics`` plus pushd's own)."""

    queue: str
    tasks: int = 0
    oldest_eta_us: int | None = None
    executed_last_minute: int = 0
    in_flight: int = 0
    enforced_rate: float = 0.0
    paused: bool = False
    dead_letters: int = 0
    removed: bool = False  # gone from queue.yaml, its tasks kept (and paused)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiQueue:
    """A push queue created through the Cloud Tasks API, as the store keeps it (queue.yaml
    holds the others). Its settings are in Cloud Tasks' terms, with Cloud Tasks' defaults
    (CLOUDTASKS.md 1.3); the service maps them onto a queue.yaml queue (1.6). Whether it is
    paused is kept with every other queue's paused flag."""

    name: str
    rate: float = 500.0  # max_dispatches_per_second
    max_concurrent: int = 1000  # max_concurrent_dispatches
    max_attempts: int = 100  # -1: unlimited
    max_retry_duration_s: int = 0  # 0: unlimited
    min_backoff_s: float = 0.1
    max_backoff_s: float = 3600.0
    max_doublings: int = 16
    target: str | None = None  # app_engine_routing_override as an App Engine target
    created_us: int = 0

    @property
    def max_burst(self) -> int:
        """Cloud Tasks picks ``max_burst_size`` from the rate: pushd holds one second of
        tokens, at least 1 and at most 100 (the 100 the real service shows at 500/s)."""
        return max(1, min(100, math.ceil(self.rate)))


class QueueSave(enum.Enum):
    """What storing an API queue did (:meth:`pushd.store.base.Store.save_api_queue`)."""

    CREATED = "created"
    UPDATED = "updated"
    EXISTS = "exists"  # a create of a queue that exists
    RECENTLY_DELETED = "recently_deleted"  # its name is tombstoned for an hour


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """One of the RSA keys pushd signs OIDC ID tokens with (:mod:`pushd.oidc`), as stored: the
    daemons of one store share them. The current key has no ``retired_us``; a retired one
    stays published until its last token has expired, then is dropped."""

    kid: str
    pem: bytes  # the private key, PKCS#8 PEM
    created_us: int
    retired_us: int | None = None
