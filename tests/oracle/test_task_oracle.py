"""pushd builds and rejects tasks exactly as App Engine's client does (SPEC 1), case by case.

Every case runs through :func:`pushd.tasks.build_task` / :func:`pushd.tasks.validate_batch` here
and through ``google.appengine.api.taskqueue`` in the oracle venv (one call for the whole table).
Both sides must reach the same verdict with the same exception class name and, for valid tasks,
the same URL (with the ``/_ah/queue/<queue>`` prefix the client adds at add time), size, payload,
headers, content type, ETA, name, tag and ``extract_params()``.

Headers (and so the content type) are compared for push tasks only: App Engine's client keeps a
namespace header and, for text payloads, a content type on pull tasks but never sends them to the
service, and pushd stores no headers for pull tasks (their size still counts them, as the
client's does). Queue-mode checks happen on the service, so they are unit-tested instead.

Cases where pushd differs on purpose are listed in :data:`EXPECTED_DIFFERENCES` with the fields
that differ and why; the test fails if such a case stops differing, or differs elsewhere.
"""

from __future__ import annotations

import base64
import datetime
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from pushd import errors, models, tasks
from tests.oracle.runner import run_oracle

pytestmark = pytest.mark.oracle

NOW_S = 1_700_000_000.0
NOW_US = 1_700_000_000_000_000
UTC = datetime.UTC
PLUS_2H = datetime.timezone(datetime.timedelta(hours=2))
NOW_DT = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # == NOW_S
NS_HEADER_SIZE = len("X-AppEngine-Current-Namespace") + 4  # the client's default namespace ""


class Pairs(list[tuple[str, str]]):
    """Headers given as a sequence of (name, value) pairs rather than a mapping."""


@dataclass(frozen=True)
class Retry:
    """``TaskRetryOptions(**kwargs)`` on App Engine's side, ``RetryParameters`` on pushd's."""

    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Case:
    id: str
    task: dict[str, Any] | None = None
    batch: list[dict[str, Any]] | None = None
    queue: str = "q1"
    tz: str = "UTC"
    env: dict[str, str] = field(default_factory=dict)
    namespace: str = ""


def t(id: str, *, queue: str = "q1", tz: str = "UTC", namespace: str = "", **kw: Any) -> Case:
    return Case(id=id, task=kw, queue=queue, tz=tz, namespace=namespace)


def b(id: str, batch: list[dict[str, Any]], *, queue: str = "q1") -> Case:
    return Case(id=id, batch=batch, queue=queue)


CASES: list[Case] = [
    # ---- 1.2 task name
    t("name-valid", name="task-1_A"),
    t("name-500-chars", name="n" * 500),
    t("name-501-chars", name="n" * 501),
    t("name-space", name="a b"),
    t("name-dot", name="a.b"),
    t("name-trailing-newline", name="abc\n"),
    t("name-empty-is-unnamed", name=""),
    # ---- 1.3 queue name
    t("queue-100-chars", queue="q" * 100),
    t("queue-101-chars", queue="q" * 101),
    t("queue-underscore", queue="my_queue"),
    t("queue-empty", queue=""),
    t("queue-hyphen-digits", queue="queue-9"),
    # ---- 1.4 method
    t("method-default-post"),
    t("method-lowercase-get", method="get"),
    t("method-head", method="HEAD"),
    t("method-delete", method="DELETE"),
    t("method-put-empty", method="PUT"),
    t("method-patch-invalid", method="PATCH"),
    t("method-pull-lowercase", method="pull", payload=b"x"),
    # ---- 1.5 URL
    t("url-relative", url="/work"),
    t("url-absolute", url="http://example.com/x"),
    t("url-netloc", url="//example.com/x"),
    t("url-fragment", url="/x#frag"),
    t("url-no-leading-slash", url="x/y"),
    t("url-2083", url="/" + "a" * 2082),
    t("url-2084", url="/" + "a" * 2083),
    t("url-long-query-not-counted", method="GET", url="/a?" + "b=" + "c" * 3000),
    t("url-post-with-query", url="/x?a=1"),
    t("url-get-with-query", method="GET", url="/x?a=1&a=2"),
    t("url-query-and-params-get", method="GET", url="/x?a=1", params={"b": "2"}),
    t("url-query-and-params-put", method="PUT", url="/x?a=1", params={"b": "2"}),
    t("url-non-ascii-path", url="/caf\u00e9"),
    t("url-newline", url="/a\nb"),
    t("url-space", url="/a b"),
    t("url-default-get-params", method="GET", params={"a": "1", "b": ["x", "y"]}),
    # ---- 1.6 headers, Host and target
    t("headers-repeated-value", headers={"X-A": ["1", "2"]}),
    t("headers-case-collapse", headers={"X-A": "1", "x-a": "2"}),
    t("headers-pairs-repeated", headers=Pairs([("X-A", "1"), ("x-a", "2")])),
    t("headers-non-ascii-value", headers={"X-A": "\u00e9t\u00e9"}),
    t(
        "headers-appengine-dropped",
        headers={"X-AppEngine-QueueName": "evil", "X-AppEngine-FailFast": "true"},
    ),
    t("headers-namespace-kept", headers={"X-AppEngine-Current-Namespace": "ns"}),
    t("headers-crlf-value", headers={"X-A": "a\r\nX-B: b"}),
    t("headers-int-value", headers={"X-N": 5}),
    t("namespace-from-producer", namespace="ns1"),
    t("target-and-host", target="v1.svc", headers={"Host": "a.example.com"}),
    t("target-only", target="v1.svc"),
    t("host-only", headers={"Host": "a.example.com"}),
    Case(id="host-from-environment", task={}, env={"HTTP_HOST": "app.example.com"}),
    # ---- 1.7 payload and params by method
    t("post-str-payload", payload="h\u00e9llo"),
    t("post-bytes-payload", payload=b"\x00\x01\xff"),
    t("post-str-payload-own-content-type", payload='{"a":1}', headers={"content-type": "a/b"}),
    t("post-params", params={"a": "1", "b": ["2", 3], "c": "\u00e9"}),
    t("post-params-own-content-type", params={"a": "1"}, headers={"Content-Type": "x/y"}),
    t("post-params-and-payload", params={"a": "1"}, payload="x"),
    t("post-empty-payload-and-params", params={"a": "1"}, payload=""),
    t("post-int-payload", payload=5),
    t("post-params-numbers", params={"f": 1.5, "t": True, "i": -3}),
    t("post-params-none-value", params={"a": None}),
    t("put-payload-and-params", method="PUT", url="/x", payload="x", params={"a": "1"}),
    t("put-params-default-url", method="PUT", params={"a": "1"}),
    t("get-payload", method="GET", payload="x"),
    t("delete-payload", method="DELETE", payload=b"x"),
    t("head-params", method="HEAD", params={"a": "1"}),
    t("get-empty-payload", method="GET", payload=""),
    t("pull-bytes-payload", method="PULL", payload=b"\x00\xffdata"),
    t("pull-str-payload", method="PULL", payload="h\u00e9"),
    t("pull-params", method="PULL", params={"a": "1", "b": ["2", "3"]}),
    t("pull-params-non-ascii", method="PULL", params={"a": "\u00e9"}),
    t("pull-no-payload", method="PULL"),
    t("pull-empty-payload", method="PULL", payload=""),
    t("pull-payload-and-params", method="PULL", payload="x", params={"a": "1"}),
    t("pull-url", method="PULL", payload="x", url="/x"),
    t("pull-headers", method="PULL", payload="x", headers={"X-A": "1"}),
    t("pull-target", method="PULL", payload="x", target="v1"),
    # ---- 1.8 ETA and countdown
    t("countdown-and-eta", countdown=1, eta=NOW_DT),
    t("countdown-float", countdown=1.5),
    t("countdown-negative", countdown=-10),
    t("countdown-numeric-string", countdown="2.5"),
    t("countdown-bad-string", countdown="soon"),
    t("countdown-30-days", countdown=2_592_000),
    t("countdown-30-days-plus-1us", countdown=2_592_000.000001),
    t("countdown-nan", countdown=float("nan")),
    t("countdown-list", countdown=[1]),
    t("countdown-bool", countdown=True),
    t("eta-aware-utc", eta=NOW_DT + datetime.timedelta(seconds=10, microseconds=123456)),
    t("eta-aware-offset", eta=datetime.datetime(2023, 11, 15, 0, 13, 20, tzinfo=PLUS_2H)),
    t("eta-30-days", eta=NOW_DT + datetime.timedelta(days=30)),
    t("eta-31-days", eta=NOW_DT + datetime.timedelta(days=31)),
    t("eta-naive-in-utc-process", eta=datetime.datetime(2023, 11, 14, 23, 0, 0)),
    t("eta-naive-in-kolkata-process", eta=datetime.datetime(2023, 11, 14, 23), tz="Asia/Kolkata"),
    t("eta-posix-seconds", eta=NOW_S + 100),
    t("eta-before-epoch", eta=datetime.datetime(1969, 12, 31, 23, 59, tzinfo=UTC)),
    # ---- 1.9 tag
    t("tag-on-push", tag="t"),
    t("tag-empty-on-push", tag=""),
    t("tag-pull-500", method="PULL", payload="x", tag="t" * 500),
    t("tag-pull-501", method="PULL", payload="x", tag="t" * 501),
    t("tag-pull-500-non-ascii-chars", method="PULL", payload="x", tag="\u00e9" * 500),
    t("tag-pull-bytes", method="PULL", payload="x", tag=b"\x00tag"),
    # ---- 1.10 dispatch deadline
    t("deadline-15s", dispatch_deadline_usec=15_000_000),
    t("deadline-below-15s", dispatch_deadline_usec=14_999_999),
    t("deadline-24h", dispatch_deadline_usec=86_400_000_000),
    t("deadline-above-24h", dispatch_deadline_usec=86_400_000_001),
    t("deadline-on-pull", method="PULL", payload="x", dispatch_deadline_usec=20_000_000),
    t("deadline-string", dispatch_deadline_usec="20"),
    # ---- 1.11 size
    t("size-push-102400", url="/x", payload=b"p" * (102_400 - 4 - 2 - NS_HEADER_SIZE)),
    t("size-push-102401", url="/x", payload=b"p" * (102_401 - 4 - 2 - NS_HEADER_SIZE)),
    t("size-pull-1mib", method="PULL", payload=b"p" * (1_048_576 - 4 - NS_HEADER_SIZE)),
    t("size-pull-1mib-plus-1", method="PULL", payload=b"p" * (1_048_577 - 4 - NS_HEADER_SIZE)),
    t("size-counts-headers", headers={"X-Big": "v" * 102_300}),
    # ---- 1.12 retry options
    t(
        "retry-valid",
        retry_options=Retry(
            {
                "min_backoff_seconds": 1,
                "max_backoff_seconds": 10.5,
                "task_age_limit": 1.2,
                "max_doublings": 3,
                "task_retry_limit": 5,
            }
        ),
    ),
    t("retry-negative-min", retry_options=Retry({"min_backoff_seconds": -1})),
    t("retry-negative-max", retry_options=Retry({"max_backoff_seconds": -1})),
    t(
        "retry-max-below-min",
        retry_options=Retry({"min_backoff_seconds": 5, "max_backoff_seconds": 1}),
    ),
    t("retry-negative-doublings", retry_options=Retry({"max_doublings": -1})),
    t("retry-negative-limit", retry_options=Retry({"task_retry_limit": -1})),
    t("retry-negative-age", retry_options=Retry({"task_age_limit": -0.5})),
    # ---- 1.13 batches
    b("batch-empty", []),
    b("batch-mixed-push-pull", [{"payload": "a"}, {"method": "PULL", "payload": "b"}]),
    b("batch-100", [{"method": "GET", "params": {"i": str(i)}} for i in range(100)]),
    b("batch-101", [{"method": "GET"} for _ in range(101)]),
    b("batch-duplicate-names", [{"name": "a"}, {"name": "b"}, {"name": "a"}]),
    b("batch-distinct-names", [{"name": "a"}, {"name": "b"}, {}, {}]),
    b(
        "batch-pull",
        [{"method": "PULL", "payload": "a", "tag": "x"}, {"method": "PULL", "payload": "b"}],
    ),
    b("batch-one-invalid-task", [{"url": "/ok"}, {"url": "bad"}]),
]

#: case id -> (fields that differ, why pushd differs on purpose).
EXPECTED_DIFFERENCES: dict[str, tuple[frozenset[str], str]] = {
    "name-trailing-newline": (
        frozenset({"verdict"}),
        "App Engine's re.match with '$' lets one trailing newline through; pushd uses fullmatch",
    ),
    "url-newline": (
        frozenset({"verdict"}),
        "Python's urlsplit silently deletes the newline ('/ab'); pushd rejects the URL instead",
    ),
    "url-space": (
        frozenset({"verdict"}),
        "a space is not allowed in a URL; App Engine stores it raw, pushd rejects it",
    ),
    "headers-pairs-repeated": (
        frozenset({"headers", "size"}),
        "pushd takes (name, value) pairs as repeated headers, like the add RPC's repeated "
        "header field; App Engine's client folds them into its case-insensitive dict",
    ),
    "headers-appengine-dropped": (
        frozenset({"headers"}),
        "SPEC 10 Q5: user X-AppEngine-* headers other than the namespace ones and FailFast "
        "are dropped (as production does; the client keeps them). The size still counts them",
    ),
    "headers-crlf-value": (
        frozenset({"verdict"}),
        "a header value with CR/LF could never be sent; pushd rejects it at add time",
    ),
    "headers-int-value": (
        frozenset({"verdict"}),
        "header values must be strings in pushd; App Engine str()s them",
    ),
    "host-from-environment": (
        frozenset({"headers", "size"}),
        "App Engine's client copies HTTP_HOST of the enqueuing request into a Host header; "
        "pushd has no enqueuing request and routes by target",
    ),
    "post-params-none-value": (
        frozenset({"verdict"}),
        "App Engine sends None as the string 'None'; pushd rejects it",
    ),
    "pull-params-non-ascii": (
        frozenset({"params"}),
        "App Engine's extract_params fails with UnicodeEncodeError on a payload whose values "
        "decode to non-ASCII; pushd returns the bytes",
    ),
    "countdown-nan": (
        frozenset({"verdict"}),
        "App Engine's Task() accepts a NaN countdown, then its eta_usec raises ValueError "
        "(at add time); pushd rejects the countdown",
    ),
    "countdown-list": (
        frozenset({"verdict"}),
        "App Engine raises TypeError; pushd raises InvalidTaskError (only pushd errors escape)",
    ),
    "countdown-bool": (
        frozenset({"verdict"}),
        "App Engine takes True as 1 second; pushd refuses a boolean countdown",
    ),
    "eta-naive-in-kolkata-process": (
        frozenset({"eta_usec"}),
        "naive datetimes are UTC in pushd; App Engine reads them in the process's local time",
    ),
    "eta-posix-seconds": (
        frozenset({"verdict"}),
        "pushd also accepts an ETA as POSIX seconds; App Engine wants a datetime",
    ),
    "eta-before-epoch": (
        frozenset({"verdict"}),
        "a negative ETA passes App Engine's client but its service rejects it (INVALID_ETA); "
        "pushd does both checks at once",
    ),
    "deadline-on-pull": (
        frozenset({"verdict"}),
        "App Engine ignores a dispatch deadline on a pull task; pushd rejects it",
    ),
    "deadline-string": (
        frozenset({"verdict"}),
        "App Engine raises TypeError; pushd raises InvalidDispatchDeadlineError",
    ),
}

_RETRY_FIELDS = {
    "min_backoff_seconds": "min_backoff_s",
    "max_backoff_seconds": "max_backoff_s",
    "task_age_limit": "task_age_limit_s",
    "max_doublings": "max_doublings",
    "task_retry_limit": "task_retry_limit",
}


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, Pairs):
        return {"$pairs": [list(pair) for pair in value]}
    if isinstance(value, Retry):
        return {"$retry": value.kwargs}
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _oracle_case(case: Case) -> dict[str, Any]:
    out: dict[str, Any] = {"queue": case.queue, "tz": case.tz, "env": case.env}
    out["namespace"] = case.namespace
    if case.task is not None:
        out["task"] = _to_json(case.task)
    else:
        out["batch"] = _to_json(case.batch)
    return out


def _request(kwargs: dict[str, Any], namespace: str) -> tasks.TaskRequest:
    kw = dict(kwargs)
    retry = kw.pop("retry_options", None)
    deadline = kw.pop("dispatch_deadline_usec", None)
    headers = kw.pop("headers", None)
    return tasks.TaskRequest(
        **kw,
        headers=list(headers) if isinstance(headers, Pairs) else headers,
        retry_options=None
        if retry is None
        else models.RetryParameters(**{_RETRY_FIELDS[k]: v for k, v in retry.kwargs.items()}),
        dispatch_deadline=deadline / 1e6 if isinstance(deadline, int) else deadline,
        namespace=namespace,
    )


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _params(task: models.Task) -> dict[str, Any]:
    try:
        params = tasks.extract_params(task)
    except ValueError as exc:
        return {"error": type(exc).__name__}
    return {k: [_b64(x) for x in v] if isinstance(v, list) else _b64(v) for k, v in params.items()}


def _describe(task: models.Task) -> dict[str, Any]:
    return {
        "url": task.url,
        "on_queue_url": task.on_queue_url,
        "size": task.size,
        "headers": [list(h) for h in task.headers],
        "payload": _b64(task.payload),
        "eta_usec": task.eta_us,
        "method": task.method.value,
        "name": task.name,
        "tag": _b64(task.tag),
        "params": _params(task),
    }


def _pushd(case: Case) -> dict[str, Any]:
    items = [case.task] if case.task is not None else (case.batch or [])
    requests = [_request(kw, case.namespace) for kw in items]
    pull = any(str(kw.get("method", "")).upper() == "PULL" for kw in items)
    mode = models.QueueMode.PULL if pull else models.QueueMode.PUSH
    try:
        if case.task is not None:
            built = [tasks.build_task(requests[0], queue=case.queue, mode=mode, now_us=NOW_US)]
        else:
            built = tasks.validate_batch(requests, queue=case.queue, mode=mode, now_us=NOW_US)
    except errors.Error as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    return {"ok": True, "tasks": [_describe(task) for task in built]}


def _headers(described: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in described["headers"])


def _content_type(described: dict[str, Any]) -> str | None:
    return next((v for k, v in _headers(described) if k == "content-type"), None)


def _differences(case: Case, want: dict[str, Any], got: dict[str, Any]) -> set[str]:
    if want["ok"] != got["ok"] or (not want["ok"] and want["error"] != got["error"]):
        return {"verdict"}
    if not want["ok"]:
        return set()
    if len(want["tasks"]) != len(got["tasks"]):
        return {"verdict"}
    differing: set[str] = set()
    items = [case.task] if case.task is not None else (case.batch or [])
    for kwargs, w, g in zip(items, want["tasks"], got["tasks"], strict=True):
        # App Engine's "no payload" is None, pushd's is b"".
        w = {**w, "payload": w["payload"] or ""}
        for key in ("url", "on_queue_url", "size", "payload", "eta_usec", "method", "tag"):
            if w[key] != g[key]:
                differing.add(key)
        if w["params"] != g["params"]:
            differing.add("params")
        if w["method"] != "PULL":
            if _headers(w) != _headers(g):
                differing.add("headers")
            if _content_type(w) != _content_type(g):
                differing.add("content_type")
        if kwargs.get("name"):
            if w["name"] != g["name"]:
                differing.add("name")
        elif w["name"] or not re.fullmatch(tasks.TASK_NAME_PATTERN, g["name"]):
            differing.add("name")  # the client leaves naming to the service
    return differing


def test_the_case_table_is_large_and_its_expected_differences_exist() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 60
    assert set(EXPECTED_DIFFERENCES) <= set(ids)


def test_pushd_and_app_engine_agree_on_every_case() -> None:
    answer = run_oracle("task_oracle.py", {"now": NOW_S, "cases": [_oracle_case(c) for c in CASES]})
    results = answer["results"]
    assert len(results) == len(CASES)
    problems = []
    for case, want in zip(CASES, results, strict=True):
        got = _pushd(case)
        differing = _differences(case, want, got)
        expected = EXPECTED_DIFFERENCES.get(case.id, (frozenset(), ""))[0]
        if differing != expected:
            problems.append(
                f"{case.id}: differs in {sorted(differing)}, expected {sorted(expected)}\n"
                f"  app engine: {_short(want)}\n  pushd:      {_short(got)}"
            )
    assert not problems, "\n".join(problems)


def _short(result: dict[str, Any]) -> str:
    text = repr(result)
    return text if len(text) < 600 else text[:600] + "..."


def test_the_error_tree_matches_the_sdks() -> None:
    """Every pushd class named like an SDK class has a parent of the same name."""
    sdk = run_oracle("error_tree_oracle.py", {})["parents"]
    ours = {cls.__name__: cls.__mro__[1].__name__ for cls in errors.ALL_ERRORS}
    for name, parent in sdk.items():
        if name in ours and name != "Error":
            assert ours[name] == parent, (name, ours[name], parent)
