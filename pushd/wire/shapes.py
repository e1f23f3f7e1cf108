"""The JSON shapes of the native API, as TypedDicts: what the daemon answers and the client
reads, in one place."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, NotRequired, Protocol, TypedDict

if TYPE_CHECKING:
    from pushd import models


class RetryOptionsJSON(TypedDict):
    """A task's ``retry_options`` or a queue's ``retry_parameters``; null means "not set"."""

    task_retry_limit: int | None
    task_age_limit: int | None  # seconds
    min_backoff_seconds: float | None
    max_backoff_seconds: float | None
    max_doublings: int | None


class LastAttemptJSON(TypedDict):
    """A push task's last failed attempt (like Cloud Tasks' ``lastAttempt``)."""

    time: float
    time_us: int
    status: int | None  # the HTTP status, null when no answer came
    error: str | None  # without an answer: refused, reset, timeout, dns, connection, invalid_url
    message: str  # a short text: "HTTP 500", or the connection error
    url: str  # the full URL the request was sent to


class TaskJSON(TypedDict):
    """A stored task. Lists leave out ``payload_base64``; a single task carries it."""

    name: str
    queue: str
    method: str
    url: str
    headers: list[list[str]]  # [name, value] pairs, in order, repeats kept
    payload_base64: NotRequired[str]
    payload_size: int
    eta: float
    eta_us: int
    created: float
    created_us: int
    tag: str | None  # the tag as text; null when absent or not UTF-8 (see tag_base64)
    tag_base64: str | None
    retry_options: RetryOptionsJSON | None
    target: str | None
    dispatch_deadline: float | None  # seconds
    size: int  # App Engine's size formula (SPEC 1.11)
    retry_count: int
    execution_count: int
    first_try: float | None
    first_try_us: int | None
    last_status: int | None
    last_attempt: LastAttemptJSON | None


class DeadTaskJSON(TaskJSON):
    """A dead letter: the task as it last was, why and when it died."""

    reason: str
    dead: float
    dead_us: int
    attempts: int


class AddResultJSON(TypedDict):
    """The outcome of one task of an add: ``OK``, ``TASK_ALREADY_EXISTS``, ``TOMBSTONED_TASK``."""

    name: str
    queue: str
    eta: float
    eta_us: int
    result: str


class QueueStatsJSON(TypedDict):
    """App Engine's ``QueueStatistics`` plus pushd's ``paused``, ``dead_letters`` and
    ``removed`` (gone from queue.yaml: its tasks are kept, listable, deletable, purgeable; it is
    paused and takes no new task)."""

    tasks: int
    oldest_eta: float | None
    oldest_eta_us: int | None
    executed_last_minute: int
    in_flight: int
    enforced_rate: float
    paused: bool
    dead_letters: int
    removed: bool


class QueueJSON(TypedDict):
    """A queue's configuration and statistics. Push-only fields are null for pull queues and
    for removed queues (they have no configuration left)."""

    name: str
    mode: str
    rate: str | None  # as written in queue.yaml, e.g. "5/s"
    rate_per_second: float | None
    bucket_size: int | None
    max_concurrent_requests: int | None
    retry_parameters: RetryOptionsJSON
    target: str | None
    stats: QueueStatsJSON


class ErrorBodyJSON(TypedDict):
    code: int  # the HTTP status
    status: str  # an App Engine ``ErrorCode`` name
    message: str
    exception: NotRequired[str]  # the pushd.errors class, so clients raise the very same one


class ErrorJSON(TypedDict):
    """The body of every error answer."""

    error: ErrorBodyJSON


class QueueSettings(Protocol):
    """What :func:`encode_queue` reads of a queue's configuration (``queue_yaml``'s
    ``QueueConfig``). A protocol, so that the codec, and the client that imports it, never
    load the queue.yaml parser and PyYAML."""

    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> models.QueueMode: ...
    @property
    def rate(self) -> Fraction: ...
    @property
    def rate_text(self) -> str: ...
    @property
    def bucket_size(self) -> int: ...
    @property
    def max_concurrent_requests(self) -> int | None: ...
    @property
    def retry(self) -> models.RetryParameters: ...
    @property
    def target(self) -> str | None: ...
