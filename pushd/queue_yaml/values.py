"""The values of queue.yaml, checked the way App Engine checks them, plus pushd's stricter rules.

Each check first applies App Engine's rule (``google.appengine.api.queueinfo`` and the
``validation`` types it uses, reproduced by the ``_ae_*`` functions) to what App Engine's loader
would have read, and only then pushd's own rule, so an issue is marked ``stricter`` exactly when
App Engine would have accepted the value. :mod:`pushd.config` lists the stricter rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import TypeAlias

from pushd import durations, errors, models
from pushd.queue_yaml import reader as config_yaml

DEFAULT_MIN_BACKOFF_S = 0.1  # TaskQueueRetryParameters proto defaults (SPEC 4.1)
DEFAULT_MAX_BACKOFF_S = 3600.0
_INT32_MAX = 2**31 - 1  # retry_limit and max_doublings are int32 fields of the proto
_INT64_MAX = 2**63 - 1  # age_limit_sec is int64
_STORAGE_SUFFIXES = "BKMGT"


def _appengine(pattern: str) -> re.Pattern[str]:
    # queueinfo's Regex validator tries re.match('^(?:pattern)$'), and `$` also matches before a
    # final newline: hence pushd's own patterns, used with fullmatch.
    return re.compile(f"^(?:{pattern})$")


_TARGET = r"^(?:(?:((?!-)[a-z\d\-]{1,100})\.)?)((?!-)[a-z\d\-]{1,63})$"
_APPLICATION = r"(?:[a-z\d\-]{1,100}\~)?(?:(?!\-)[a-z\d\-\.]{1,100}:)?(?!-)[a-z\d\-]{0,99}[a-z\d]"
_AE_NAME = _appengine(r"^[A-Za-z0-9-]{0,499}$")
_AE_RATE = _appengine(r"^(0|[0-9]+(\.[0-9]*)?/[smhd])")
_AE_STORAGE = _appengine(r"^([0-9]+(\.[0-9]*)?[BKMGT]?)")
_AE_RESUME = _appengine(r"(True)|(False)")
_AE_MODE = _appengine(r"(pull)|(push)")
_AE_TARGET = _appengine(_TARGET)
_AE_APPLICATION = _appengine(_APPLICATION)
_NAME = re.compile(f"[A-Za-z0-9-]{{1,{models.MAX_QUEUE_NAME_LENGTH}}}")
_RATE = re.compile(r"0|(?P<number>[0-9]+(?:\.[0-9]*)?)/(?P<unit>[smhd])")
_STORAGE = re.compile(r"[0-9]+(?:(?:\.[0-9]*)?[BKMGT])?")
_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_QUOTED_INT = re.compile(r"[ \t]*[-+]?[0-9]+[ \t]*")
_PLAIN_FLOAT = re.compile(r"[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_QUOTED_FLOAT = re.compile(r"[ \t]*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[ \t]*")
_RETRY_KEYS = (
    "task_retry_limit",
    "task_age_limit",
    "min_backoff_seconds",
    "max_backoff_seconds",
    "max_doublings",
)

#: Whether App Engine accepts a text value: a compiled pattern's ``match`` or a predicate.
Accepts: TypeAlias = Callable[[str], object]
#: What App Engine reads (None when absent or refused), whether App Engine accepts, whether pushd does.
Check: TypeAlias = tuple[float | None, bool, bool]
_ABSENT: Check = (None, True, True)
_REFUSED: Check = (None, False, False)


# ------------------------------------------------------------------ App Engine's conversions
def _ae_number(value: object, whole: bool) -> float | None:
    """``validation.Type(int)`` or ``Type(float)``: int() or float() of what the loader produced
    (as int, 5.5 becomes 5 and "7" 7); None where that raises."""
    if isinstance(value, int | float | str):
        try:
            return int(value) if whole else float(value)
        except (ValueError, OverflowError):
            return None
    return None


def _ae_age(value: object) -> int | None:
    """``validation.TimeValue``, then ``ParseTaskAgeLimit``: whole seconds, truncated."""
    if not isinstance(value, str) or not value or value[-1] not in "smhd":
        return None
    try:
        number = float(value[:-1])
        return None if number < 0 else int(number * durations.UNIT_S[value[-1]])
    except (ValueError, OverflowError):
        return None


def _ae_rate(text: str) -> bool:
    """The rate pattern, then ``ParseRate`` (which refuses the newline the pattern lets through)."""
    parts = text.split("/")
    return bool(_AE_RATE.match(text)) and (text == "0" or (len(parts) == 2 and parts[1] in "smhd"))


def _ae_storage(text: str) -> int | None:
    """The total_storage_limit pattern, then ``ParseTotalStorageLimit``: bytes."""
    limit = text.strip()
    if not _AE_STORAGE.match(text) or not limit:
        return None
    try:
        if limit[-1] in _STORAGE_SUFFIXES:
            return int(float(limit[:-1]) * 1024 ** _STORAGE_SUFFIXES.index(limit[-1]))
        return int(limit)
    except (ValueError, OverflowError):
        return None


def _ae_storage_ok(text: str) -> bool:
    return _ae_storage(text) is not None


def absent(node: config_yaml.Node | None) -> bool:
    """Not given, or given as null (``key:`` or ``key: ~``), which App Engine treats alike."""
    return node is None or (isinstance(node, config_yaml.Scalar) and node.value is None)


def _skip(node: config_yaml.Scalar) -> bool:
    # null, or a value the loader could not build (already reported by config_yaml)
    return node.value is None or node.value is config_yaml.UNREADABLE


class Checker:
    """Collects issues and warnings while reading values."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.issues: list[errors.ConfigIssue] = []
        self.warnings: list[errors.ConfigIssue] = []

    def error(
        self, node: config_yaml.Node, path: str, message: str, *, stricter: bool = False
    ) -> None:
        if stricter:
            message = f"{message}; {config_yaml.STRICTER}"
        issue = errors.ConfigIssue(self.filename, node.line, node.column, path, message, stricter)
        self.issues.append(issue)

    def warn(self, node: config_yaml.Node, path: str, message: str) -> None:
        self.warnings.append(
            errors.ConfigIssue(self.filename, node.line, node.column, path, message)
        )

    def keys(
        self, node: config_yaml.Mapping, path: str, allowed: tuple[str, ...]
    ) -> dict[str, config_yaml.Node]:
        """The mapping's known keys; unknown, duplicated and non-text keys are issues."""
        found: dict[str, config_yaml.Node] = {}
        lines: dict[str, int] = {}
        for key, value in node.items:
            if not isinstance(key, config_yaml.Scalar):
                self.error(key, path, f"a key must be a word, not {config_yaml.kind(key)}")
                continue
            where = f"{path}.{key.text}" if path else key.text
            if key.text not in allowed:
                expected = ", ".join(sorted(allowed))
                self.error(key, where, f"unknown key {key.text!r}; expected one of {expected}")
            elif key.text in found:
                self.error(key, where, f"duplicate key (first on line {lines[key.text]})")
            else:
                found[key.text] = value
                lines[key.text] = key.line
        return found

    # -------------------------------------------------------------- scalars by type
    def text(self, node: config_yaml.Node, path: str, appengine: Accepts | None) -> str | None:
        """A text value, or None when absent or refused.

        ``appengine`` tells whether App Engine accepts ``str(value)``; None stands for
        ``validation.Type(str)``, which accepts any scalar and even turns a list into "[]".
        """
        if not isinstance(node, config_yaml.Scalar):
            stricter = appengine is None and isinstance(node, config_yaml.Sequence)
            self.error(
                node, path, f"expected text, found {config_yaml.kind(node)}", stricter=stricter
            )
            return None
        if _skip(node):
            return None
        if isinstance(node.value, str) or str(node.value) == node.text:
            return node.text
        seen = str(node.value)
        message = (
            f"YAML 1.1 reads {node.text!r} as the {type(node.value).__name__} {seen!r}; quote it"
        )
        self.error(node, path, message, stricter=appengine is None or bool(appengine(seen)))
        return None

    def number(self, node: config_yaml.Node, path: str, *, whole: bool) -> Check:
        """An int (``whole``) or float field: App Engine converts with int() or float()."""
        what = "a whole number" if whole else "a number"
        if not isinstance(node, config_yaml.Scalar):
            self.error(node, path, f"expected {what}, found {config_yaml.kind(node)}")
            return _REFUSED
        if _skip(node):
            return _ABSENT if node.value is None else _REFUSED
        value = node.value
        number = _ae_number(value, whole)
        if number is None:
            self.error(node, path, f"{node.text!r} is not {what}")
            return _REFUSED
        plain, quoted = (_PLAIN_INT, _QUOTED_INT) if whole else (_PLAIN_FLOAT, _QUOTED_FLOAT)
        if isinstance(value, bool) or not (
            (isinstance(value, int | float) and plain.fullmatch(node.text))
            or (isinstance(value, str) and quoted.fullmatch(value))
        ):
            message = f"{node.text!r} is not written as {what} (App Engine reads {number})"
            self.error(node, path, message, stricter=True)
            return number, True, False
        if not math.isfinite(number):
            self.error(node, path, f"{node.text!r} is not a finite number", stricter=True)
            return number, True, False
        return number, True, True

    def age(self, node: config_yaml.Node, path: str) -> Check:
        expected = "a duration such as 30s, 10m, 2h or 1.5d"
        if not isinstance(node, config_yaml.Scalar):
            self.error(node, path, f"expected {expected}, found {config_yaml.kind(node)}")
            return _REFUSED
        if _skip(node):
            return _ABSENT if node.value is None else _REFUSED
        seconds = _ae_age(node.value)
        if seconds is None:
            self.error(node, path, f"{node.text!r} is not {expected}")
        elif seconds <= 0:
            self.error(node, path, f"{node.text!r} is {seconds} whole seconds; the least is 1s")
        elif seconds > _INT64_MAX:
            self.error(node, path, f"{node.text!r} is too long")
        elif not (isinstance(node.value, str) and durations.seconds(node.value) is not None):
            message = (
                f"{node.text!r} is not written as digits and a unit (App Engine reads {seconds}s)"
            )
            self.error(node, path, message, stricter=True)
            return seconds, True, False
        else:
            return seconds, True, True
        return _REFUSED

    # -------------------------------------------------------------- fields
    def name(self, node: config_yaml.Node, path: str, names: dict[str, int]) -> str | None:
        """A queue name, unique among ``names`` (name -> line), which it extends."""
        text = self.text(node, path, _AE_NAME.match)
        if text is None:
            return None
        rule = f"{text!r} is not a queue name: use 1-100 of A-Z, a-z, 0-9 and -"
        if not _AE_NAME.match(text):
            self.error(node, path, rule)
        elif not _NAME.fullmatch(text):
            self.error(node, path, rule, stricter=True)
        elif text in names:
            self.error(
                node, path, f"{text!r} is already defined on line {names[text]}", stricter=True
            )
        else:
            names[text] = node.line
            return text
        return None

    def mode(self, node: config_yaml.Node | None, path: str) -> models.QueueMode:
        if node is None or (text := self.text(node, path, _AE_MODE.match)) is None:
            return models.QueueMode.PUSH
        if text in ("push", "pull"):
            return models.QueueMode(text)
        self.error(node, path, f"{text!r} is not push or pull", stricter=bool(_AE_MODE.match(text)))
        return models.QueueMode.PUSH

    def rate(self, node: config_yaml.Node | None, path: str) -> tuple[Fraction | None, str]:
        """Exact tasks per second and the text as written."""
        if node is None or (text := self.text(node, path, _ae_rate)) is None:
            return None, ""
        match = _RATE.fullmatch(text)
        if match is None:
            message = f"{text!r} is not N/s, N/m, N/h or N/d"
            self.error(node, path, message, stricter=_ae_rate(text))
            return None, ""
        if text == "0":
            return Fraction(0), text
        return Fraction(match["number"]) / durations.UNIT_S[match["unit"]], text

    def count(self, node: config_yaml.Node | None, path: str) -> int | None:
        """bucket_size, max_concurrent_requests: App Engine takes any int; pushd wants >= 1."""
        if node is None:
            return None
        number, appengine_ok, ok = self.number(node, path, whole=True)
        if number is not None and appengine_ok and number < 1:
            self.error(node, path, f"must be at least 1, not {number}", stricter=True)
            return None
        return int(number) if ok and number is not None else None

    def target(self, node: config_yaml.Node | None, path: str) -> str | None:
        if node is None or (text := self.text(node, path, _AE_TARGET.match)) is None:
            return None
        rule = f"{text!r} is not SERVICE or VERSION.SERVICE (a-z, 0-9 and -)"
        if not _AE_TARGET.match(text):
            self.error(node, path, rule)
        elif not re.fullmatch(_TARGET, text):
            self.error(node, path, rule, stricter=True)
        else:
            return text
        return None

    def storage(self, node: config_yaml.Node | None, path: str) -> int | None:
        """total_storage_limit in bytes."""
        if node is None or (text := self.text(node, path, _ae_storage_ok)) is None:
            return None
        limit = _ae_storage(text)
        if limit is None:
            self.error(node, path, f"{text!r} is not a size such as 500M (B, K, M, G or T)")
        elif not _STORAGE.fullmatch(text):
            self.error(node, path, f"{text!r} is not a size such as 500M", stricter=True)
            return None
        return limit

    def flag(self, node: config_yaml.Node | None, path: str) -> bool | None:
        """resume_paused_queues: App Engine matches str(value) against True|False."""
        if node is None:
            return None
        if not isinstance(node, config_yaml.Scalar):
            self.error(node, path, f"expected true or false, found {config_yaml.kind(node)}")
            return None
        if _skip(node) or isinstance(node.value, bool):
            return node.value if isinstance(node.value, bool) else None
        if node.value in ("True", "False"):
            return node.value == "True"
        stricter = bool(_AE_RESUME.match(str(node.value)))
        self.error(node, path, f"{node.text!r} is not true or false", stricter=stricter)
        return None

    def application(self, node: config_yaml.Node, path: str) -> None:
        """The legacy application id: checked, then ignored."""
        if (text := self.text(node, path, _AE_APPLICATION.match)) is None:
            return
        if not _AE_APPLICATION.match(text):
            self.error(node, path, f"{text!r} is not an application id")
        elif not re.fullmatch(_APPLICATION, text):
            self.error(node, path, f"{text!r} is not an application id", stricter=True)
        else:
            self.warn(node, path, "a legacy key; pushd ignores it")

    def retry(
        self, node: config_yaml.Node | None, path: str, mode: models.QueueMode
    ) -> models.RetryParameters | None:
        """retry_parameters, checked as ``TranslateRetryParameters`` does, fix-ups included."""
        if node is None or absent(node):
            return models.RetryParameters()
        if not isinstance(node, config_yaml.Mapping):
            if not (isinstance(node, config_yaml.Scalar) and _skip(node)):
                found = config_yaml.kind(node)
                self.error(node, path, f"expected a mapping of retry settings, found {found}")
            return None
        fields = self.keys(node, path, _RETRY_KEYS)
        checks = {key: self._retry_value(value, f"{path}.{key}") for key, value in fields.items()}
        got = {key: value for key, (value, _, _) in checks.items() if value is not None}
        before = len(self.issues)
        self._retry_ranges(fields, got, path)
        if len(self.issues) > before or not all(ok for _, _, ok in checks.values()):
            return None
        if mode is models.QueueMode.PULL:
            for key in fields.keys() - {"task_retry_limit"}:
                self.warn(
                    fields[key], f"{path}.{key}", "ignored: pull queues only use task_retry_limit"
                )
        return _retry_parameters(got)

    def _retry_value(self, node: config_yaml.Node, path: str) -> Check:
        """One retry setting: a duration for task_age_limit, else a number (whole for counts)."""
        if path.endswith(".task_age_limit"):
            return self.age(node, path)
        return self.number(node, path, whole=not path.endswith("_seconds"))

    def _retry_ranges(
        self, fields: Mapping[str, config_yaml.Node], got: Mapping[str, float], path: str
    ) -> None:
        """The ranges of ``TranslateRetryParameters``: each value's, then the backoffs' order."""
        for key, rule in _RETRY_RANGES:
            if key in got and (issue := rule(got[key])) is not None:
                self.error(fields[key], f"{path}.{key}", issue)
        low, high = got.get("min_backoff_seconds"), got.get("max_backoff_seconds")
        if low is not None and high is not None and low > high:
            message = f"{low} is greater than max_backoff_seconds ({high})"
            self.error(fields["min_backoff_seconds"], f"{path}.min_backoff_seconds", message)


def _int32_issue(value: float) -> str | None:
    """task_retry_limit and max_doublings: an ``int32`` of App Engine's, never negative."""
    if not -_INT32_MAX - 1 <= value <= _INT32_MAX:
        return f"{value} is out of range"
    return "must not be negative" if value < 0 else None


def _non_negative_issue(value: float) -> str | None:
    return "must not be negative" if value < 0 else None


#: The range rule of each retry setting, in the order App Engine checks them.
_RETRY_RANGES: tuple[tuple[str, Callable[[float], str | None]], ...] = (
    ("task_retry_limit", _int32_issue),
    ("max_doublings", _int32_issue),
    ("min_backoff_seconds", _non_negative_issue),
    ("max_backoff_seconds", _non_negative_issue),
)


def _retry_parameters(got: Mapping[str, float]) -> models.RetryParameters:
    """The checked retry settings, with App Engine's fix-up: when only one backoff bound is
    given and it lies beyond the other's default, the other moves along with it."""
    low, high = got.get("min_backoff_seconds"), got.get("max_backoff_seconds")
    if low is not None and high is None and low > DEFAULT_MAX_BACKOFF_S:
        high = low
    elif high is not None and low is None and high < DEFAULT_MIN_BACKOFF_S:
        low = high
    limit, age, doublings = (
        got.get(k) for k in ("task_retry_limit", "task_age_limit", "max_doublings")
    )
    return models.RetryParameters(
        task_retry_limit=None if limit is None else int(limit),
        task_age_limit_s=None if age is None else int(age),
        min_backoff_s=low,
        max_backoff_s=high,
        max_doublings=None if doublings is None else int(doublings),
    )
