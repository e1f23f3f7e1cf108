"""queue.yaml, parsed once into frozen, typed objects (SPEC 4.1 and 5).

:func:`load_file` / :func:`load_text` return a :class:`QueuesConfig` or raise
:class:`errors.ConfigError` carrying every issue found, each located as ``file:line:column`` with a
key path such as ``queue[2].rate``. The implicit ``default`` queue (push, 5/s, bucket 5) exists
unless queue.yaml defines one.

What is accepted follows App Engine's own validator (``google.appengine.api.queueinfo``: the
schema, ``ParseRate``, ``ParseTotalStorageLimit``, ``TranslateRetryParameters``), including how its
YAML 1.1 loader types scalars (see :mod:`pushd.queue_yaml.reader`), and a test compares the two on the
example corpus and on hundreds of variants. pushd is never more lenient. It is deliberately
stricter in these places, and each such issue says "pushd is stricter than App Engine here" and
has ``stricter=True``:

* queue names are 1-100 characters of ``[A-Za-z0-9-]`` (App Engine: 0-499) and unique (App Engine
  keeps both entries of a duplicated name);
* ``bucket_size`` and ``max_concurrent_requests`` are at least 1 (App Engine takes 0 and negative
  numbers without complaint);
* numbers are written plainly: no fraction where a whole number is expected (App Engine truncates
  ``5.5`` to 5), no booleans, none of YAML 1.1's octal, hex, sexagesimal or underscore forms
  (``010`` is 8, ``1:30`` is 90), no NaN or infinity, and ``task_age_limit`` is digits, an optional
  fraction and a unit with no sign, exponent, space or underscore;
* a text value must be what it looks like: where YAML 1.1 reads a plain scalar as another type
  (``name: yes`` is the queue "True", ``name: 010`` the queue "8") it has to be quoted;
* a value may not end in a newline (App Engine's patterns end in ``$``, which lets one through);
* an ``acl`` entry names a ``user_email`` or ``writer_email``, and an address has no whitespace
  (App Engine takes an empty entry, and even turns a list given as an address into "[]");
* the document is a mapping (App Engine takes a bare scalar, ``---`` or a list of scalars as a
  file without queues), has no explicit tags (``!!int 5``) or ``%TAG`` directive, no U+0085,
  U+2028 or U+2029 (YAML 1.1 line breaks App Engine's ruamel.yaml reads inconsistently), and is
  not absurdly deeply nested.

Accepted but reported as warnings (App Engine's local server warns or ignores the same): a push
queue without ``rate`` (pushd uses 5/s), ``rate``, ``bucket_size``, ``max_concurrent_requests``,
``target`` and retry keys other than ``task_retry_limit`` on a pull queue, ``acl`` on a push queue,
and the legacy ``application`` key. Rates above App Engine's 500/s quota are allowed.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from pushd import errors, models
from pushd.queue_yaml import reader as yaml_reader
from pushd.queue_yaml import values

#: Every issue where pushd refuses what App Engine accepts says this (and has ``stricter=True``).
STRICTER_NOTE = yaml_reader.STRICTER
DEFAULT_RATE = Fraction(5)  # tasks per second of the implicit default queue (SPEC 5.4)
DEFAULT_RATE_TEXT = "5/s"
DEFAULT_BUCKET_SIZE = 5
DEFAULT_MIN_BACKOFF_S = values.DEFAULT_MIN_BACKOFF_S
DEFAULT_MAX_BACKOFF_S = values.DEFAULT_MAX_BACKOFF_S
DEFAULT_MAX_DOUBLINGS = 16
_TOP_KEYS = ("queue", "total_storage_limit", "resume_paused_queues", "application")
_ENTRY_KEYS = (
    "name",
    "mode",
    "rate",
    "bucket_size",
    "max_concurrent_requests",
    "retry_parameters",
    "target",
    "acl",
)
_ACL_KEYS = ("user_email", "writer_email")
_EMAIL = re.compile(r"\S+")


@dataclass(frozen=True, slots=True, kw_only=True)
class AclEntry:
    """One ``acl`` entry of a pull queue: who may lease (user) or insert (writer) over REST."""

    user_email: str | None = None
    writer_email: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueConfig:
    """One queue as configured. ``rate`` is exact tasks per second (0 for pull queues)."""

    name: str
    mode: models.QueueMode = models.QueueMode.PUSH
    rate: Fraction = DEFAULT_RATE
    rate_text: str = DEFAULT_RATE_TEXT  # as written in queue.yaml; "" for pull queues
    bucket_size: int = DEFAULT_BUCKET_SIZE
    max_concurrent_requests: int | None = None
    retry: models.RetryParameters = field(default_factory=models.RetryParameters)
    target: str | None = None
    acl: tuple[AclEntry, ...] = ()
    line: int = 0  # line of queue.yaml where the entry starts; 0 for the implicit default queue
    #: Created through the Cloud Tasks API (stored), not read from queue.yaml.
    api: bool = False

    @property
    def paused(self) -> bool:
        """A push queue with rate 0 keeps accepting tasks but dispatches none (SPEC 5.3)."""
        return self.mode is models.QueueMode.PUSH and self.rate == 0

    @property
    def implicit(self) -> bool:
        return self.line == 0

    def describe(self) -> str:
        """One line for humans: mode, rate, bucket, concurrency and the effective retry policy."""
        r = self.retry
        limit = "unlimited" if r.task_retry_limit is None else str(r.task_retry_limit)
        if self.mode is models.QueueMode.PULL:
            return f"pull  leases={limit}"
        age = "unlimited" if r.task_age_limit_s is None else f"{r.task_age_limit_s}s"
        low = DEFAULT_MIN_BACKOFF_S if r.min_backoff_s is None else r.min_backoff_s
        high = DEFAULT_MAX_BACKOFF_S if r.max_backoff_s is None else r.max_backoff_s
        doublings = DEFAULT_MAX_DOUBLINGS if r.max_doublings is None else r.max_doublings
        concurrent = "-" if self.max_concurrent_requests is None else self.max_concurrent_requests
        paused = " (paused)" if self.paused else ""
        return (
            f"push  rate={self.rate_text}{paused} bucket={self.bucket_size} "
            f"max_concurrent={concurrent}  retries={limit} age_limit={age} "
            f"backoff={low:g}s..{high:g}s doublings={doublings}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Where a push queue's tasks go: the base URL its ``target`` maps to in the settings'
    ``targets:``, or ``default_target``. ``mapped`` is False for a ``target`` with no mapping
    (its tasks go to ``default_target``, as App Engine sent an unknown target's tasks to the
    default version: likely a typo, hence a warning). A queue without a ``target`` lets each
    task name its own (SPEC 8.2); ``url`` is where the others go."""

    queue: str
    target: str | None
    url: str
    mapped: bool

    def describe(self) -> str:
        """``-> URL`` and why, for one line of check-config."""
        if self.target is None:
            return f"-> {self.url} (default_target, unless a task names a target)"
        if not self.mapped:
            return f"-> {self.url} (target {self.target} is not in targets: default_target)"
        return f"-> {self.url} (target {self.target})"


def _default_queue() -> QueueConfig:
    return QueueConfig(name=models.DEFAULT_QUEUE_NAME)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuesConfig:
    """A whole queue.yaml: its queues in file order (implicit ``default`` last) and top-level keys."""

    queues: Mapping[str, QueueConfig] = field(
        default_factory=lambda: types.MappingProxyType(
            {models.DEFAULT_QUEUE_NAME: _default_queue()}
        )
    )
    total_storage_limit_bytes: int | None = None
    resume_paused_queues: bool | None = None
    path: str = ""
    warnings: tuple[errors.ConfigIssue, ...] = ()
    #: Queues not in the file that still hold tasks or dead letters (see :func:`removed_queue`),
    #: filled in by the daemon from its store at start and after each reload.
    removed: Mapping[str, QueueConfig] = field(default_factory=lambda: types.MappingProxyType({}))

    def routes(self, targets: Mapping[str, str], default_target: str) -> list[Route]:
        """Where each push queue's tasks go (:class:`Route`), in file order."""
        return [
            Route(
                queue=q.name,
                target=q.target,
                url=targets.get(q.target, default_target) if q.target else default_target,
                mapped=not q.target or q.target in targets,
            )
            for q in self.queues.values()
            if q.mode is models.QueueMode.PUSH
        ]

    def queue(self, name: str) -> QueueConfig:
        """A queue of the file: what adding, leasing, pausing and running tasks need."""
        try:
            return self.queues[name]
        except KeyError:
            if name in self.removed:
                raise errors.UnknownQueueError(
                    f"queue {name!r} was removed from queue.yaml: its tasks can be listed, "
                    "deleted and purged; put it back in queue.yaml to run or add tasks"
                ) from None
            raise errors.UnknownQueueError(f"queue {name!r} is not configured") from None

    def held(self, name: str) -> QueueConfig:
        """A queue of the file, or one removed from it: what reading, deleting and purging
        tasks need (App Engine kept a removed queue's tasks, and so does pushd)."""
        cfg = self.removed.get(name)
        return self.queue(name) if cfg is None else cfg


def removed_queue(name: str, *, pull: bool) -> QueueConfig:
    """How a queue removed from queue.yaml shows: no rate (it sends nothing), the mode of its
    earliest task (App Engine forgot a removed queue's configuration, so pushd does too)."""
    mode = models.QueueMode.PULL if pull else models.QueueMode.PUSH
    return QueueConfig(name=name, mode=mode, rate=Fraction(0), rate_text="", line=-1)


def load_file(path: str | os.PathLike[str]) -> QueuesConfig:
    """Read and validate a queue.yaml file; issues name the file as ``path`` was given."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise errors.ConfigError(
            [errors.ConfigIssue(name, 0, 0, "", f"cannot read: {reason}")]
        ) from None
    return load_bytes(data, name)


def load_bytes(data: bytes, filename: str = "queue.yaml") -> QueuesConfig:
    """Validate queue.yaml given as UTF-8 bytes (a byte order mark is allowed)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded"
        raise errors.ConfigError(
            [errors.ConfigIssue(filename, line, column, "", message)]
        ) from None
    return load_text(text, filename)


def load_text(text: str, filename: str = "queue.yaml") -> QueuesConfig:
    """Validate queue.yaml text; raise :class:`errors.ConfigError` with every issue found."""
    reader = _Reader(filename)
    config = None
    try:
        # PyYAML skips a byte order mark but counts it as a column of the first line.
        parsed = yaml_reader.parse(text.removeprefix("\ufeff"), filename)
        reader.issues.extend(parsed.issues)
        if parsed.documents:
            config = reader.document(parsed.documents[0])
            for extra in parsed.documents[1:2]:
                count = len(parsed.documents)
                reader.error(extra, "", f"{count} YAML documents; queue.yaml must hold exactly one")
        elif not parsed.issues:
            message = "Empty queue configuration: the file holds no YAML document"
            reader.issues.append(errors.ConfigIssue(filename, 1, 1, "", message))
    except RecursionError:
        message = f"the YAML is nested too deeply; {yaml_reader.STRICTER}"
        reader.issues = [errors.ConfigIssue(filename, 0, 0, "", message, True)]
    if reader.issues or config is None:
        raise errors.ConfigError(sorted(reader.issues, key=lambda i: (i.line, i.column)))
    return config


def _has_mapping(node: yaml_reader.Node) -> bool:
    if isinstance(node, yaml_reader.Mapping):
        return True
    return isinstance(node, yaml_reader.Sequence) and any(_has_mapping(n) for n in node.items)


class _Reader(values.Checker):
    """Reads the queue.yaml schema; builds the config only when no issue was found."""

    # ------------------------------------------------------------------ document
    def document(self, doc: yaml_reader.Node) -> QueuesConfig | None:
        if not isinstance(doc, yaml_reader.Mapping):
            # App Engine takes a document that is a scalar or a list of scalars as "no queues".
            message = "queue.yaml must be a mapping with a 'queue:' list"
            self.error(doc, "", message, stricter=not _has_mapping(doc))
            return None
        fields = self.keys(doc, "", _TOP_KEYS)
        queues: dict[str, QueueConfig] = {}
        entries = fields.get("queue")
        if isinstance(entries, yaml_reader.Sequence):
            names: dict[str, int] = {}
            for index, item in enumerate(entries.items):
                queue = self.entry(item, f"queue[{index}]", names)
                if queue is not None:
                    queues[queue.name] = queue
        elif entries is not None and not values.absent(entries):
            self.error(entries, "queue", "expected a list of queue entries")
        limit = self.storage(fields.get("total_storage_limit"), "total_storage_limit")
        resume = self.flag(fields.get("resume_paused_queues"), "resume_paused_queues")
        if (app := fields.get("application")) is not None:
            self.application(app, "application")
        queues.setdefault(models.DEFAULT_QUEUE_NAME, _default_queue())
        return QueuesConfig(
            queues=types.MappingProxyType(queues),
            total_storage_limit_bytes=limit,
            resume_paused_queues=resume,
            path=self.filename,
            warnings=tuple(sorted(self.warnings, key=lambda w: (w.line, w.column))),
        )

    # ------------------------------------------------------------------ queue entries
    def entry(self, node: yaml_reader.Node, path: str, names: dict[str, int]) -> QueueConfig | None:
        if not isinstance(node, yaml_reader.Mapping):
            self.error(node, path, "a queue entry must be a mapping with at least a name")
            return None
        before = len(self.issues)
        fields = self.keys(node, path, _ENTRY_KEYS)
        name = self.entry_name(fields, node, path, names)
        mode = self.mode(fields.get("mode"), f"{path}.mode")
        rate, rate_text = self.rate(fields.get("rate"), f"{path}.rate")
        bucket = self.count(fields.get("bucket_size"), f"{path}.bucket_size")
        concurrent = self.count(
            fields.get("max_concurrent_requests"), f"{path}.max_concurrent_requests"
        )
        target = self.target(fields.get("target"), f"{path}.target")
        retry = self.retry(fields.get("retry_parameters"), f"{path}.retry_parameters", mode)
        acl = self.acl(fields.get("acl"), f"{path}.acl")
        if len(self.issues) > before or name is None or retry is None or acl is None:
            return None
        pull = mode is models.QueueMode.PULL
        self.ignored(fields, path, pull)
        if not pull and rate is None:
            self.warn(
                node, path, f"push queue {name!r} has no rate; pushd uses {DEFAULT_RATE_TEXT}"
            )
        return QueueConfig(
            name=name,
            mode=mode,
            rate=Fraction(0) if pull else DEFAULT_RATE if rate is None else rate,
            rate_text="" if pull else DEFAULT_RATE_TEXT if rate is None else rate_text,
            bucket_size=DEFAULT_BUCKET_SIZE if bucket is None else bucket,
            max_concurrent_requests=concurrent,
            retry=retry,
            target=target,
            acl=acl,
            line=node.line,
        )

    def entry_name(
        self,
        fields: Mapping[str, yaml_reader.Node],
        node: yaml_reader.Node,
        path: str,
        names: dict[str, int],
    ) -> str | None:
        if values.absent(name_node := fields.get("name")):
            self.error(name_node or node, f"{path}.name", "every queue needs a name")
            return None
        return None if name_node is None else self.name(name_node, f"{path}.name", names)

    def ignored(self, fields: Mapping[str, yaml_reader.Node], path: str, pull: bool) -> None:
        """Warn of each field given that the queue's mode ignores."""
        for key in ("rate", "bucket_size", "max_concurrent_requests", "target", "acl"):
            given = fields.get(key)
            if given is not None and not values.absent(given) and pull != (key == "acl"):
                self.warn(
                    given,
                    f"{path}.{key}",
                    f"ignored: it applies to {'push' if pull else 'pull'} queues only",
                )

    def acl(self, node: yaml_reader.Node | None, path: str) -> tuple[AclEntry, ...] | None:
        if node is None or values.absent(node):
            return ()
        if not isinstance(node, yaml_reader.Sequence):
            if not (isinstance(node, yaml_reader.Scalar) and node.value is yaml_reader.UNREADABLE):
                self.error(node, path, "expected a list of {user_email: ...} / {writer_email: ...}")
            return None
        entries: list[AclEntry] = []
        for index, item in enumerate(node.items):
            where = f"{path}[{index}]"
            if not isinstance(item, yaml_reader.Mapping):
                self.error(item, where, "an acl entry must be a mapping such as {user_email: ...}")
                continue
            fields = self.keys(item, where, _ACL_KEYS)
            emails: dict[str, str] = {}
            for key, value in fields.items():
                text = self.text(value, f"{where}.{key}", None)
                if text is not None and not _EMAIL.fullmatch(text):
                    message = f"{text!r} is not an e-mail address"
                    self.error(value, f"{where}.{key}", message, stricter=True)
                elif text is not None:
                    emails[key] = text
            if all(values.absent(value) for value in fields.values()):
                message = "an acl entry must name a user_email or a writer_email"
                self.error(item, where, message, stricter=True)
            entries.append(
                AclEntry(
                    user_email=emails.get("user_email"), writer_email=emails.get("writer_email")
                )
            )
        return tuple(entries)
