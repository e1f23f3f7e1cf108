"""Campaign 4, bad input in-process: hypothesis properties of the parser, validator, retry, throttle.

These complement the unit tests rather than repeat them. ``tests/unit`` already feeds random
text, token noise and bytes to the queue.yaml loader, arbitrary values to ``build_task``, and
checks ``taken <= bucket_size + rate * elapsed`` from the start of a ``try_take`` run. New here:

* queue.yaml: generated *structures* dumped in every YAML style, and one-character mutations of
  valid files, give a config or a :class:`errors.ConfigError` whose issues point inside the text;
  generated valid files read back exactly what they say; one broken value is reported at its own
  line and key path, alone; bytes and text agree.
* tasks: hostile Python values (containers, huge integers, odd numeric types, unpaired
  surrogates, byte arrays, time zones at the edge of ``datetime``) in every field; a batch is
  accepted exactly when each of its tasks is accepted alone and builds the same tasks.
* retry: backoffs are non-negative, non-decreasing, capped, double exactly ``max_doublings``
  times then grow linearly (the formula of :mod:`pushd.retry`); give-up is exactly the
  both-limits rule, is final, and a simulated task makes exactly the attempts the limits allow;
  any retry options the validator accepts can be computed with.
* token bucket: an exact rational model agrees with every operation, ``reserve`` and
  ``next_token_us`` included (never early, never a microsecond late); never more than
  ``bucket_size`` dispatches in one instant; the bound holds over *every* window, not only from
  the start; the long-run count of a greedy consumer is exactly ``bucket_size + rate * t``.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, note, settings
from hypothesis import strategies as st

from pushd import errors, models, retry, tasks, throttle
from pushd.queue_yaml import config
from tests.reliability.conftest import scale

T0 = 1_700_000_000_000_000
US = 1_000_000
NOW_US = T0

pytestmark = pytest.mark.timeout(scale(60, 1200))
FAST = settings(
    max_examples=scale(150, 3000), deadline=None, suppress_health_check=list(HealthCheck)
)
SLOW = settings(
    max_examples=scale(60, 1500), deadline=None, suppress_health_check=list(HealthCheck)
)


# ====================================================================== queue.yaml

_KEYS = (
    "queue",
    "total_storage_limit",
    "resume_paused_queues",
    "application",
    "name",
    "mode",
    "rate",
    "bucket_size",
    "max_concurrent_requests",
    "retry_parameters",
    "target",
    "acl",
    "task_retry_limit",
    "task_age_limit",
    "min_backoff_seconds",
    "max_backoff_seconds",
    "max_doublings",
    "user_email",
    "writer_email",
)
_TRICKY_TEXT = (
    "5/s",
    "0",
    "1.5/m",
    "10/x",
    "5/s\n",
    "2d",
    "1.5h",
    "-1s",
    "500M",
    "1.5G",
    "True",
    "yes",
    "push",
    "pull",
    "pushy",
    "a@b",
    "v2.w",
    "-w",
    "x" * 120,
    "",
    " ",
    "0.0",
    "1e3",
    ".inf",
    ".nan",
    "010",
    "0x1f",
    "1:30",
    "1_0",
    "~",
    "\u2028",
    "\x85",
    "\ufeff",
    "&a",
    "*a",
    "!!int 5",
)
_yaml_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(_TRICKY_TEXT),
)
_yaml_value = st.recursive(
    _yaml_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from(_KEYS), st.text(max_size=5), st.integers()),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=15,
)
_entry = st.dictionaries(st.sampled_from(_KEYS), _yaml_value, max_size=8)
_document = st.one_of(
    _yaml_value,
    st.fixed_dictionaries(
        {"queue": st.one_of(st.lists(st.one_of(_entry, _yaml_value), max_size=4), _yaml_value)},
        optional=dict.fromkeys(
            ("total_storage_limit", "resume_paused_queues", "application", "bogus"), _yaml_value
        ),
    ),
)


@st.composite
def _dumped(draw: st.DrawFn) -> str:
    """A generated structure written by PyYAML in one of its styles."""
    document = draw(_document)
    return yaml.dump(
        document,
        default_flow_style=draw(st.sampled_from([None, True, False])),
        default_style=draw(st.sampled_from([None, "'", '"', "|", ">"])),
        allow_unicode=draw(st.booleans()),
        explicit_start=draw(st.booleans()),
        width=draw(st.sampled_from([20, 80, 10_000])),
        indent=draw(st.sampled_from([2, 4, 9])),
    )


_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _load(text: str) -> config.QueuesConfig | errors.ConfigError:
    """The loader's outcome: a config or its ConfigError; any other exception escapes."""
    try:
        return config.load_text(text)
    except errors.ConfigError as exc:
        return exc


def _assert_located(outcome: config.QueuesConfig | errors.ConfigError, text: str) -> None:
    """A refusal names at least one issue, each located inside ``text`` and printable."""
    if isinstance(outcome, config.QueuesConfig):
        assert models.DEFAULT_QUEUE_NAME in outcome.queues
        return
    assert outcome.issues, "a ConfigError without issues"
    last_line = len(_LINE_BREAK.findall(text)) + 1  # YAML also breaks lines at a lone \r
    for issue in outcome.issues:
        assert issue.file == "queue.yaml"
        assert 0 <= issue.line <= last_line, (issue, last_line)
        assert issue.column >= 0
        assert issue.message.strip()
        assert str(issue).startswith(f"queue.yaml:{issue.line}:{issue.column}: ")
        assert issue.stricter == (config.STRICTER_NOTE in issue.message)
    assert str(outcome) == "\n".join(str(issue) for issue in outcome.issues)


def _same_outcome(
    a: config.QueuesConfig | errors.ConfigError, b: config.QueuesConfig | errors.ConfigError
) -> bool:
    if isinstance(a, errors.ConfigError) and isinstance(b, errors.ConfigError):
        return a.issues == b.issues
    return a == b


@FAST
@given(text=_dumped())
def test_any_yaml_structure_gives_a_config_or_located_issues(text: str) -> None:
    outcome = _load(text)
    _assert_located(outcome, text)
    assert _same_outcome(outcome, _load(text)), "loading is not deterministic"
    try:
        from_bytes: config.QueuesConfig | errors.ConfigError = config.load_bytes(text.encode())
    except errors.ConfigError as exc:
        from_bytes = exc
    assert _same_outcome(outcome, from_bytes), "load_bytes disagrees with load_text"


# ---------------------------------------------------------------------- valid files

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_queue_name = st.from_regex(r"[A-Za-z0-9-]{1,30}", fullmatch=True)
_number_text = st.one_of(
    st.integers(0, 100_000).map(str),
    st.tuples(st.integers(0, 9999), st.integers(0, 999)).map(lambda p: f"{p[0]}.{p[1]}"),
    st.integers(0, 99).map(lambda n: f"{n}."),
)


@dataclass(frozen=True)
class Entry:
    """One generated, valid queue entry and the lines it is written as."""

    name: str
    pull: bool
    rate_text: str | None  # push: "N/u" or "0"
    bucket_size: int | None
    max_concurrent: int | None
    retry_limit: int | None
    age_days: int | None
    min_backoff: str | None
    max_backoff: str | None
    max_doublings: int | None
    target: str | None
    acl: tuple[tuple[str, str], ...]

    def lines(self) -> list[tuple[str, str]]:
        """(key path below the entry, YAML line) pairs, in order."""
        out = [("name", f"- name: '{self.name}'")]
        out.append(("mode", f"  mode: {'pull' if self.pull else 'push'}"))
        if not self.pull:
            out.append(("rate", f"  rate: {self.rate_text}"))
            if self.bucket_size is not None:
                out.append(("bucket_size", f"  bucket_size: {self.bucket_size}"))
            if self.max_concurrent is not None:
                out.append(
                    ("max_concurrent_requests", f"  max_concurrent_requests: {self.max_concurrent}")
                )
            if self.target is not None:
                out.append(("target", f"  target: '{self.target}'"))
        retry_lines = []
        if self.retry_limit is not None:
            retry_lines.append(("task_retry_limit", f"task_retry_limit: {self.retry_limit}"))
        if not self.pull:
            if self.age_days is not None:
                retry_lines.append(("task_age_limit", f"task_age_limit: {self.age_days}d"))
            if self.min_backoff is not None:
                retry_lines.append(
                    ("min_backoff_seconds", f"min_backoff_seconds: {self.min_backoff}")
                )
            if self.max_backoff is not None:
                retry_lines.append(
                    ("max_backoff_seconds", f"max_backoff_seconds: {self.max_backoff}")
                )
            if self.max_doublings is not None:
                retry_lines.append(("max_doublings", f"max_doublings: {self.max_doublings}"))
        if retry_lines:
            out.append(("retry_parameters", "  retry_parameters:"))
            out += [(f"retry_parameters.{key}", f"    {line}") for key, line in retry_lines]
        if self.pull and self.acl:
            out.append(("acl", "  acl:"))
            out += [
                (f"acl[{i}].{key}", f"  - {key}: '{email}'")
                for i, (key, email) in enumerate(self.acl)
            ]
        return out

    def expected_rate(self) -> Fraction:
        if self.pull:
            return Fraction(0)
        assert self.rate_text is not None
        if self.rate_text == "0":
            return Fraction(0)
        number, unit = self.rate_text.split("/")
        return Fraction(number) / _UNIT_S[unit]


@st.composite
def _entries(draw: st.DrawFn) -> list[Entry]:
    names = draw(st.lists(_queue_name, min_size=1, max_size=5, unique=True))
    out = []
    for name in names:
        pull = draw(st.booleans())
        low = draw(st.one_of(st.none(), st.decimals(0, 1000, places=2).map(str)))
        high = draw(
            st.one_of(
                st.none(),
                st.decimals(decimal.Decimal(low) if low is not None else 0, 100_000, places=1).map(
                    str
                ),
            )
        )
        out.append(
            Entry(
                name=name,
                pull=pull,
                rate_text=draw(
                    st.one_of(
                        st.just("0"),
                        st.tuples(_number_text, st.sampled_from("smhd")).map("/".join),
                    )
                ),
                bucket_size=draw(st.one_of(st.none(), st.integers(1, 10_000))),
                max_concurrent=draw(st.one_of(st.none(), st.integers(1, 5_000))),
                retry_limit=draw(st.one_of(st.none(), st.integers(0, 2**31 - 1))),
                age_days=draw(st.one_of(st.none(), st.integers(1, 10_000))),  # 0 s is refused
                min_backoff=low,
                max_backoff=high,
                max_doublings=draw(st.one_of(st.none(), st.integers(0, 100))),
                target=draw(
                    st.one_of(
                        st.none(),
                        st.from_regex(
                            r"([a-z][a-z0-9]{0,8}\.)?[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True
                        ),
                    )
                ),
                acl=tuple(
                    draw(
                        st.lists(
                            st.tuples(
                                st.sampled_from(["user_email", "writer_email"]),
                                st.from_regex(
                                    r"[a-z0-9.]{1,10}@[a-z]{1,8}\.[a-z]{2,3}", fullmatch=True
                                ),
                            ),
                            max_size=3,
                        )
                    )
                ),
            )
        )
    return out


def _write(entries: list[Entry]) -> tuple[str, dict[str, int]]:
    """The queue.yaml text and the 1-based line of each key path (``queue[i].rate``...)."""
    lines = ["queue:"]
    where: dict[str, int] = {}
    for index, entry in enumerate(entries):
        for key, line in entry.lines():
            lines.append(line)
            where[f"queue[{index}].{key}"] = len(lines)
    return "\n".join(lines) + "\n", where


@FAST
@given(entries=_entries())
def test_a_generated_valid_file_reads_back_exactly_what_it_says(entries: list[Entry]) -> None:
    text, _ = _write(entries)
    note(text)
    loaded = config.load_text(text)
    expected_names = [e.name for e in entries]
    if "default" not in expected_names:
        expected_names.append("default")
    assert list(loaded.queues) == expected_names
    for entry in entries:
        q = loaded.queues[entry.name]
        assert q.mode is (models.QueueMode.PULL if entry.pull else models.QueueMode.PUSH)
        assert q.rate == entry.expected_rate()
        assert q.paused == (not entry.pull and q.rate == 0)
        assert q.retry.task_retry_limit == entry.retry_limit
        if entry.pull:
            assert q.acl == tuple(config.AclEntry(**{key: email}) for key, email in entry.acl)
            continue
        assert q.rate_text == entry.rate_text
        assert q.bucket_size == (entry.bucket_size or config.DEFAULT_BUCKET_SIZE)
        assert q.max_concurrent_requests == entry.max_concurrent
        assert q.target == entry.target
        assert q.retry.task_age_limit_s == (
            None if entry.age_days is None else entry.age_days * 86400
        )
        low = None if entry.min_backoff is None else float(entry.min_backoff)
        high = None if entry.max_backoff is None else float(entry.max_backoff)
        # App Engine moves the missing bound along when the given one is beyond its default
        if low is not None and high is None and low > config.DEFAULT_MAX_BACKOFF_S:
            high = low
        if high is not None and low is None and high < config.DEFAULT_MIN_BACKOFF_S:
            low = high
        assert (q.retry.min_backoff_s, q.retry.max_backoff_s) == (low, high)
        assert q.retry.max_doublings == entry.max_doublings
    if all(e.name != "default" for e in entries):
        assert loaded.queues["default"] == config.QueuesConfig().queues["default"]


#: (key below the entry, broken value, what the message says), per mode; each is one problem.
_BREAKAGES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "both": (
        ("name", "'no spaces allowed'", "no spaces allowed"),
        ("name", "''", ""),
        ("mode", "pushy", "pushy"),
        ("mode", "'pull '", "pull"),
    ),
    "push": (
        ("rate", "5/x", "5/x"),
        ("rate", "'-5/s'", "-5/s"),
        ("rate", "5 / s", "5 / s"),
        ("rate", "1e3/s", "1e3/s"),
        ("bucket_size", "0", "at least 1"),
        ("bucket_size", "-3", "at least 1"),
        ("bucket_size", "2.5", "2.5"),
        ("bucket_size", "yes", "yes"),
        ("max_concurrent_requests", "0", "at least 1"),
        ("max_concurrent_requests", ".nan", "nan"),
        ("target", "'-dash-first'", "-dash-first"),
        ("target", "'UPPER'", "UPPER"),
    ),
}


@FAST
@given(entries=_entries(), data=st.data())
def test_one_broken_value_is_reported_alone_at_its_line_and_key(
    entries: list[Entry], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(entries) - 1), label="entry")
    entry = entries[index]
    choices = _BREAKAGES["both"] + (() if entry.pull else _BREAKAGES["push"])
    key, broken, mentioned = data.draw(st.sampled_from(choices), label="breakage")
    if key == "rate" or key == "mode":
        pass  # always written
    elif key == "bucket_size" and entry.bucket_size is None:
        entries[index] = entry = replace(entry, bucket_size=5)
    elif key == "max_concurrent_requests" and entry.max_concurrent is None:
        entries[index] = entry = replace(entry, max_concurrent=5)
    elif key == "target" and entry.target is None:
        entries[index] = entry = replace(entry, target="worker")
    text, where = _write(entries)
    path = f"queue[{index}].{key}"
    lines = text.split("\n")
    line = where[path]
    prefix = lines[line - 1].split(":", 1)[0]
    lines[line - 1] = f"{prefix}: {broken}"
    broken_text = "\n".join(lines)
    note(broken_text)
    with pytest.raises(errors.ConfigError) as caught:
        config.load_text(broken_text)
    issues = caught.value.issues
    if key == "name":
        # a queue without a valid name is dropped, so nothing else about it is judged
        assert [(i.line, i.path) for i in issues] == [(line, path)]
    else:
        assert [(i.line, i.path) for i in issues] == [(line, path)]
    assert issues[0].column > len(prefix)
    assert mentioned in issues[0].message


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A valid file with a few characters inserted, deleted or replaced."""
    text, _ = _write(draw(_entries()))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        what = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.sampled_from([*":-[]{}'\"#&*!|>%@`,\t\n ", "\r", "\x00", "é", "0"]))
        if what == "insert":
            text = text[:at] + char + text[at:]
        elif what == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + char + text[at + 1 :]
    return text


@FAST
@given(text=_mutated())
def test_a_mutated_valid_file_gives_a_config_or_located_issues(text: str) -> None:
    _assert_located(_load(text), text)


# ====================================================================== tasks

_huge = st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 2**64, 2**53 + 1])
_tz_edge = st.sampled_from(
    [
        datetime.UTC,
        datetime.timezone(datetime.timedelta(hours=23, minutes=59)),
        datetime.timezone(-datetime.timedelta(hours=23, minutes=59)),
    ]
)
_datetimes = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), _tz_edge)),
    st.sampled_from(
        [
            datetime.datetime.max,
            datetime.datetime.min,
            datetime.datetime.min.replace(
                tzinfo=datetime.timezone(datetime.timedelta(hours=23, minutes=59))
            ),
            datetime.datetime.max.replace(
                tzinfo=datetime.timezone(-datetime.timedelta(hours=23, minutes=59))
            ),
        ]
    ),
)
_odd_text = st.sampled_from(
    ["nan", "inf", "-inf", "1e400", " 5 ", "0x10", "1_000", "\ud800", "5\x00", "\u0663", "", "PULL"]
)
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    _huge,
    st.floats(),
    st.text(max_size=10),
    _odd_text,
    st.binary(max_size=10),
    st.binary(max_size=5).map(bytearray),
    _datetimes,
    st.timedeltas(),
    st.decimals(),
    st.fractions(),
    st.complex_numbers(),
    st.builds(object),
)
_hashable = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.binary(max_size=5)
)
_hostile = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_hashable, inner, max_size=3),
        st.frozensets(_hashable, max_size=3),
    ),
    max_leaves=8,
)


def _field(*plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(_hostile, *plausible)


_hostile_requests = st.builds(
    tasks.TaskRequest,
    name=_field(st.from_regex(r"[a-z0-9_-]{1,20}", fullmatch=True)),
    method=_field(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PULL"])),
    url=_field(st.sampled_from(["/x", "/x?a=1", "/" + "a" * 2083])),
    headers=_field(st.dictionaries(st.sampled_from(["Host", "X-A", "Content-Type"]), _hostile)),
    payload=_field(),
    params=_field(st.dictionaries(st.text(max_size=3), _hostile, max_size=3)),
    countdown=_field(),
    eta=_field(),
    retry_options=st.one_of(
        _hostile,
        st.builds(
            models.RetryParameters,
            task_retry_limit=_hostile,
            task_age_limit_s=_hostile,
            min_backoff_s=_hostile,
            max_backoff_s=_hostile,
            max_doublings=_hostile,
        ),
    ),
    target=_field(st.just("worker")),
    tag=_field(),
    dispatch_deadline=_field(st.floats(10, 90_000)),
    namespace=_field(st.just("")),
)


@SLOW
@given(request=_hostile_requests, mode=st.sampled_from(list(models.QueueMode)))
def test_hostile_field_values_give_a_task_or_a_pushd_error(
    request: tasks.TaskRequest, mode: models.QueueMode
) -> None:
    try:
        task = tasks.build_task(request, queue="q", mode=mode, now_us=NOW_US)
    except errors.Error:
        return
    assert task.mode is mode
    assert re.fullmatch(tasks.TASK_NAME_PATTERN, task.name)
    assert 0 <= task.eta_us <= NOW_US + models.MAX_ETA_AHEAD_US
    assert isinstance(task.payload, bytes)


def _names() -> Callable[[], str]:
    """A deterministic name factory: two runs over the same batch name it alike."""
    counter = iter(range(10**9))
    return lambda: f"gen-{next(counter)}"


_plausible = st.builds(
    tasks.TaskRequest,
    name=st.one_of(st.none(), st.sampled_from(["a", "b", "c", "bad name"])),
    method=st.sampled_from(["POST", "GET", "PULL", "PUT"]),
    url=st.one_of(st.none(), st.sampled_from(["/x", "/x?q=1", "relative"])),
    payload=st.one_of(st.none(), st.sampled_from(["p", b"\xff", "x" * 200_000])),
    countdown=st.one_of(st.none(), st.sampled_from([0, 5, -5.5, 40 * 86400, math.nan])),
    tag=st.one_of(st.none(), st.sampled_from(["t", "x" * 501])),
    dispatch_deadline=st.one_of(st.none(), st.sampled_from([5, 30, 90_000])),
)


@FAST
@given(
    batch=st.lists(_plausible, max_size=6),
    mode=st.sampled_from(list(models.QueueMode)),
)
def test_a_batch_is_accepted_exactly_when_each_task_is_and_builds_the_same_tasks(
    batch: list[tasks.TaskRequest], mode: models.QueueMode
) -> None:
    alone: list[models.Task | errors.Error] = []
    singles = _names()
    for request in batch:
        try:
            alone.append(
                tasks.build_task(request, queue="q", mode=mode, now_us=NOW_US, name_factory=singles)
            )
        except errors.Error as exc:
            alone.append(exc)
    given_names = [r.name for r in batch if r.name]
    mixed = len({r.method == "PULL" for r in batch}) > 1
    should_pass = (
        not mixed
        and all(isinstance(a, models.Task) for a in alone)
        and len(given_names) == len(set(given_names))
    )
    outcome: list[models.Task] | errors.Error
    try:
        outcome = tasks.validate_batch(
            batch, queue="q", mode=mode, now_us=NOW_US, name_factory=_names()
        )
    except errors.Error as exc:
        outcome = exc
    if should_pass:
        assert outcome == alone, f"the batch gave {outcome!r}; alone: {alone}"
    elif mixed:
        assert type(outcome) is errors.InvalidTaskError
    elif all(isinstance(a, models.Task) for a in alone):
        assert type(outcome) is errors.DuplicateTaskNameError
    else:
        assert isinstance(outcome, errors.Error), f"batch accepted though alone: {alone}"


# ====================================================================== retry

_policies = st.builds(
    retry.RetryPolicy,
    retry_limit=st.one_of(st.none(), st.integers(0, 50)),
    age_limit_s=st.one_of(st.none(), st.integers(0, 10**6)),
    min_backoff_s=st.one_of(
        st.floats(0, 1e4), st.sampled_from([0.0, 0.1, 0.57, 1e-7, 1e300, 1e308])
    ),
    max_backoff_s=st.one_of(
        st.floats(0, 1e6), st.sampled_from([0.0, 3600.0, 1e-7, 1e300, math.inf])
    ),
    max_doublings=st.one_of(st.integers(0, 80), st.sampled_from([2**31 - 1, 10**6])),
)


@FAST
@example(policy=retry.RetryPolicy(), n_max=40)
@example(policy=retry.RetryPolicy(min_backoff_s=10, max_backoff_s=300, max_doublings=3), n_max=20)
@given(policy=_policies, n_max=st.integers(1, 200))
def test_backoffs_double_max_doublings_times_then_grow_linearly_up_to_the_cap(
    policy: retry.RetryPolicy, n_max: int
) -> None:
    delays = [retry.backoff_us(policy, n) for n in range(1, n_max + 1)]
    century = retry.MAX_BACKOFF_S * US
    assert all(0 <= d <= century for d in delays)
    assert delays == sorted(delays), "a later retry waited less"
    first = delays[0]
    cap = max(delays[-1], retry.backoff_us(policy, 10**9))
    assert (
        abs(first - min(policy.min_backoff_s, policy.max_backoff_s, retry.MAX_BACKOFF_S) * US) <= 1
    )
    assert cap <= min(policy.max_backoff_s, retry.MAX_BACKOFF_S) * US + 1
    d = policy.max_doublings
    for n, delay in enumerate(delays, start=1):
        e = min(n - 1, d)
        # the formula of pushd.retry (App Engine's), on the first backoff as it is stored
        assert delay == min(cap, first * 2**e * max(1, n - e)), (n, delay)
        if n > 1 and delay < cap and first > 0:
            previous = delays[n - 2]
            if n <= d + 1:
                assert delay == 2 * previous  # still doubling
            else:
                assert delay - previous == first * 2**d  # linear steps after the doublings


def _expected_retry(policy: retry.RetryPolicy, n: int, age_us: int) -> bool:
    """retry.py's table: retry unless every limit that is set is exceeded."""
    over_count = policy.retry_limit is not None and n > policy.retry_limit
    over_age = policy.age_limit_s is not None and age_us > policy.age_limit_s * US
    if policy.retry_limit is not None and policy.age_limit_s is not None:
        return not (over_count and over_age)
    return not (over_count or over_age)


@FAST
@given(
    policy=_policies,
    n=st.integers(1, 100),
    age_us=st.one_of(st.integers(0, 2 * 10**12), st.integers(-(10**6), 10**6)),
)
def test_give_up_is_exactly_the_both_limits_rule_and_is_final(
    policy: retry.RetryPolicy, n: int, age_us: int
) -> None:
    decision = retry.next_delay(policy, retry_number=n, first_try_us=T0, now_us=T0 + age_us)
    if _expected_retry(policy, n, age_us):
        assert decision == retry.backoff_us(policy, n)
        return
    assert isinstance(decision, retry.GiveUp)
    if policy.retry_limit is not None:
        assert f"task_retry_limit {policy.retry_limit}" in decision.reason
    if policy.age_limit_s is not None:
        assert f"task_age_limit {policy.age_limit_s}s" in decision.reason
    # final: one more failure, or more time, never brings the task back
    for later_n, later_age in ((n + 1, age_us), (n, age_us + 1), (n + 7, age_us + 10**9)):
        again = retry.next_delay(
            policy, retry_number=later_n, first_try_us=T0, now_us=T0 + later_age
        )
        assert isinstance(again, retry.GiveUp)


def _lifetime(policy: retry.RetryPolicy, attempt_us: int, cap: int = 10_000) -> list[int]:
    """A task failing every attempt: the start time of each attempt until it gives up."""
    first = T0
    starts = [first]
    for n in range(1, cap):
        finished = starts[-1] + attempt_us
        decision = retry.next_delay(policy, retry_number=n, first_try_us=first, now_us=finished)
        if isinstance(decision, retry.GiveUp):
            return starts
        starts.append(finished + decision)
    return starts


@FAST
@given(
    policy=_policies.filter(lambda p: p.retry_limit is not None or p.age_limit_s is not None),
    attempt_us=st.integers(0, 600 * US),
)
def test_a_failing_task_makes_exactly_the_attempts_its_limits_allow(
    policy: retry.RetryPolicy, attempt_us: int
) -> None:
    starts = _lifetime(policy, attempt_us)
    assume(len(starts) < 10_000)  # zero backoffs and instant attempts never age: no verdict
    attempts = len(starts)
    ages = [start + attempt_us - T0 for start in starts]  # age at the end of each attempt
    limit, age_limit = policy.retry_limit, policy.age_limit_s
    if age_limit is None:
        assert limit is not None
        assert attempts == limit + 1  # task_retry_limit N: N retries, N + 1 attempts
        return
    within_age = [age <= age_limit * US for age in ages]
    # it gave up after the first attempt that left it beyond every limit it has:
    assert not within_age[-1]
    assert attempts >= (0 if limit is None else limit) + 1
    assert all(within_age[(0 if limit is None else limit) : -1])


_accepted_retry_options = st.builds(
    models.RetryParameters,
    task_retry_limit=st.one_of(st.none(), st.integers(0, 2**31 - 1)),
    task_age_limit_s=st.one_of(st.none(), st.integers(0, 2**63 - 1), st.floats(0, 1e18)),
    min_backoff_s=st.one_of(st.none(), st.floats(0, allow_infinity=False)),
    max_backoff_s=st.one_of(st.none(), st.floats(0, allow_infinity=False)),
    max_doublings=st.one_of(st.none(), st.integers(0, 2**31 - 1)),
)


@FAST
@given(
    options=_accepted_retry_options,
    n=st.one_of(st.integers(1, 100), st.integers(1, 2**40)),
    age_us=st.integers(0, 2**62),
)
def test_any_retry_options_the_validator_accepts_can_be_computed_with(
    options: models.RetryParameters, n: int, age_us: int
) -> None:
    try:
        task = tasks.build_task(
            tasks.TaskRequest(url="/x", retry_options=options),
            queue="q",
            mode=models.QueueMode.PUSH,
            now_us=NOW_US,
        )
    except errors.Error:
        return
    policy = retry.effective_policy(None, task.retry_options)
    decision = retry.next_delay(policy, retry_number=n, first_try_us=T0, now_us=T0 + age_us)
    if not isinstance(decision, retry.GiveUp):
        assert 0 <= decision <= retry.MAX_BACKOFF_S * US
        assert T0 + decision < 2**63  # fits the store's 64-bit ETA
    assert policy.describe()


# ====================================================================== token bucket


class ExactBucket:
    """The token bucket of SPEC 5.3 in exact rationals: the oracle for TokenBucket."""

    def __init__(self, rate: Fraction, size: int, now_us: int) -> None:
        self.per_us = Fraction(rate) / US
        self.size = size
        self.level = Fraction(size)
        self.stamp = now_us

    def refill(self, now_us: int) -> int:
        if now_us > self.stamp:
            self.level = min(Fraction(self.size), self.level + self.per_us * (now_us - self.stamp))
            self.stamp = now_us
        return self.stamp

    def when(self, tokens: Fraction) -> Fraction:
        """The exact instant the level reaches ``tokens`` (from the current stamp)."""
        if self.level >= tokens:
            return Fraction(self.stamp)
        return self.stamp + (tokens - self.level) / self.per_us


_rates = st.one_of(
    st.fractions(min_value=Fraction(1, 30 * 86400), max_value=Fraction(10**6)),
    st.sampled_from([Fraction(3), Fraction(7), Fraction(1, 3), Fraction(500), Fraction(5, 4)]),
)
_ops = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 3 * US), st.integers(-1000, 1000)),
        st.sampled_from(["take", "take3", "reserve", "tokens", "available", "next"]),
    ),
    max_size=60,
)


@FAST
@given(rate=_rates, size=st.integers(1, 50), ops=_ops)
def test_token_bucket_agrees_with_an_exact_model_and_is_never_early(
    rate: Fraction, size: int, ops: list[tuple[int, str]]
) -> None:
    bucket = throttle.TokenBucket(rate, size, T0)
    model = ExactBucket(rate, size, T0)
    now = T0
    dispatched: dict[int, int] = {}  # instant -> dispatches (takes, and reservations' times)
    for step, op in ops:
        now += step  # sometimes backwards: the bucket must not refill or go back in time
        at = model.refill(now)
        if op in ("take", "take3"):
            n = 1 if op == "take" else 3
            expected = model.level >= n
            if expected:
                model.level -= n
                dispatched[at] = dispatched.get(at, 0) + n
            assert bucket.try_take(now, n) is expected
        elif op == "reserve":
            model.level -= 1
            exact = model.when(Fraction(0))
            got = bucket.reserve(now)
            assert exact <= got < exact + 1, (exact, got)  # never early, rounded up to the µs
            dispatched[got] = dispatched.get(got, 0) + 1
        elif op == "tokens":
            assert bucket.tokens(now) == model.level
        elif op == "available":
            # in debt (after reservations) the bucket answers a negative count: none to take
            whole = math.floor(model.level)
            assert bucket.available(now) == whole if whole >= 0 else bucket.available(now) < 0
        else:
            exact = model.when(Fraction(1))
            got_next = bucket.next_token_us(now)
            assert got_next is not None
            assert exact <= got_next < exact + 1, (exact, got_next)
    # a token per µs at most: then no instant ever sees more than bucket_size dispatches
    if rate <= US:
        assert max(dispatched.values(), default=0) <= size, dispatched


@FAST
@example(rate=Fraction(3), size=1, steps=[0, 333_334, 333_333, 333_333])
@given(
    rate=_rates,
    size=st.integers(1, 20),
    steps=st.lists(st.one_of(st.integers(0, 2 * US), st.just(0)), max_size=80),
)
def test_dispatches_in_every_window_stay_within_bucket_plus_rate_times_window(
    rate: Fraction, size: int, steps: list[int]
) -> None:
    """Not only from the start: between any two dispatches i <= j,
    j - i + 1 < bucket_size + rate * (t_j - t_i + 1 µs), and never a whole token more: a full
    bucket carries the refill of less than one µs (so that its long-run rate is exact)."""
    bucket = throttle.TokenBucket(rate, size, T0)
    now, times = T0, []
    for step in steps:
        now += step
        while bucket.try_take(now):
            times.append(now)
    for i in range(len(times)):
        for j in range(i, len(times)):
            window = rate * Fraction(times[j] - times[i], US)
            assert j - i + 1 < size + window + min(rate / US, 1), (i, j)


def _greedy(bucket: throttle.TokenBucket, horizon_us: int) -> Iterator[int]:
    """A consumer that takes every token the moment next_token_us says it is there."""
    now, end = T0, T0 + horizon_us
    while True:
        while bucket.try_take(now):
            yield now
        nxt = bucket.next_token_us(now)
        if nxt is None or nxt > end:
            return
        now = nxt


@FAST
@example(rate=Fraction(3), size=2, horizon_us=US)
@example(rate=Fraction(7), size=5, horizon_us=10 * US)
@given(
    rate=st.fractions(min_value=Fraction(1, 86400), max_value=Fraction(US)),
    size=st.integers(2, 20),
    horizon_us=st.integers(1, 100 * 86400 * US),
)
def test_the_long_run_rate_is_exactly_the_configured_rate(
    rate: Fraction, size: int, horizon_us: int
) -> None:
    """A greedy consumer gets bucket_size + floor(rate * t) tokens by t, to the token."""
    earned = rate * Fraction(horizon_us, US)
    assume(earned <= 3000)
    taken = sum(1 for _ in _greedy(throttle.TokenBucket(rate, size, T0), horizon_us))
    assert taken == size + math.floor(earned)


@pytest.mark.parametrize(("rate", "expected"), [(3, 4), (300_000, 300_001)])
def test_the_long_run_rate_is_the_configured_rate_with_bucket_size_1(
    rate: int, expected: int
) -> None:
    """1e6/rate is not a whole number of µs: the fraction of a µs a token is earned before the
    µs it is taken in is carried, not dropped at the cap (3/s: tokens at 0, 333334, 666667 and
    1000000 µs)."""
    taken = sum(1 for _ in _greedy(throttle.TokenBucket(Fraction(rate), 1, T0), US))
    assert taken == expected


@FAST
@given(
    rate=_rates,
    size=st.integers(1, 30),
    changes=st.lists(
        st.tuples(
            st.integers(0, 3 * US),
            st.one_of(st.just(Fraction(0)), _rates),
            st.integers(0, 30),
            st.integers(0, 40),
        ),
        max_size=20,
    ),
)
def test_reconfiguring_never_creates_tokens_and_rate_zero_never_gives_one(
    rate: Fraction, size: int, changes: list[tuple[int, Fraction, int, int]]
) -> None:
    bucket = throttle.TokenBucket(rate, size, T0)
    now = T0
    for step, new_rate, new_size, takes in changes:
        now += step
        before = bucket.tokens(now)
        bucket.reconfigure(new_rate, new_size, now)
        after = bucket.tokens(now)
        assert after <= new_size
        assert after <= before
        assert after >= min(before, new_size) - Fraction(1, new_rate.denominator * US)
        got = sum(bucket.try_take(now) for _ in range(takes))
        assert got <= min(takes, max(0, math.floor(after)))
        if new_rate == 0:
            assert got == 0
            assert bucket.available(now) == 0
            assert bucket.next_token_us(now) is None
            assert bucket.reserve(now) == now
        elif new_size == 0:
            assert got == 0
            assert bucket.next_token_us(now) is None
