"""pushd.tasks: batch rules (SPEC 1.13/1.15), queue modes, extract_params and robustness."""

from __future__ import annotations

import datetime
import itertools
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushd import errors, models, tasks

NOW_US = 1_700_000_000_000_000
PUSH, PULL = models.QueueMode.PUSH, models.QueueMode.PULL
R = tasks.TaskRequest


def batch(
    items: list[Any], *, mode: models.QueueMode = PUSH, queue: str = "q1"
) -> list[models.Task]:
    counter = itertools.count(1)
    return tasks.validate_batch(
        items, queue=queue, mode=mode, now_us=NOW_US, name_factory=lambda: f"gen{next(counter)}"
    )


# ------------------------------------------------------------------ 1.13 batches


def test_an_empty_batch_is_an_empty_list() -> None:
    assert batch([]) == []


def test_a_batch_builds_every_task_in_order() -> None:
    built = batch([R(name="a"), R(method="GET", params={"x": "1"}), R()])
    assert [(t.name, t.method, t.url) for t in built] == [
        ("a", models.Method.POST, "/_ah/queue/q1"),
        ("gen1", models.Method.GET, "/_ah/queue/q1?x=1"),
        ("gen2", models.Method.POST, "/_ah/queue/q1"),
    ]


def test_100_tasks_are_accepted() -> None:
    assert len(batch([R() for _ in range(100)])) == 100


def test_101_tasks_are_rejected() -> None:
    with pytest.raises(errors.TooManyTasksError, match="at most 100 tasks; found 101"):
        batch([R() for _ in range(101)])


def test_push_and_pull_tasks_cannot_be_mixed() -> None:
    with pytest.raises(errors.InvalidTaskError, match="cannot mix push and pull"):
        batch([R(payload="a"), R(method="pull", payload="b")])


def test_mixing_is_checked_before_the_count_and_the_count_before_each_task() -> None:
    mixed = [R(method="PULL", payload="x")] + [R() for _ in range(100)]
    with pytest.raises(errors.InvalidTaskError, match="mix"):
        batch(mixed)
    too_many = [R(url="bad")] + [R() for _ in range(100)]
    with pytest.raises(errors.TooManyTasksError):
        batch(too_many)


def test_a_name_used_twice_in_a_batch_is_rejected() -> None:
    with pytest.raises(errors.DuplicateTaskNameError, match="task name 'a' is used more than once"):
        batch([R(name="a"), R(name="b"), R(name="a")])


def test_unnamed_tasks_never_clash_and_get_distinct_names() -> None:
    built = tasks.validate_batch([R(), R(name=""), R()], queue="q", mode=PUSH, now_us=NOW_US)
    assert len({t.name for t in built}) == 3


def test_one_invalid_task_fails_the_whole_batch() -> None:
    with pytest.raises(errors.InvalidUrlError):
        batch([R(url="/ok"), R(url="bad"), R(url="/ok2")])


def test_the_first_error_in_order_is_raised() -> None:
    with pytest.raises(errors.InvalidTaskNameError):
        batch([R(url="/ok"), R(name="a b"), R(url="bad")])


def test_an_invalid_queue_name_fails_the_batch() -> None:
    with pytest.raises(errors.InvalidQueueNameError):
        batch([R()], queue="bad_queue")


def test_built_tasks_can_be_revalidated_in_a_batch() -> None:
    built = batch([R(name="a"), R()])
    assert batch(built) == built


def test_a_built_task_of_another_queue_is_rejected() -> None:
    other = batch([R()], queue="other")
    with pytest.raises(errors.InvalidTaskError, match="belongs to queue 'other'"):
        batch(other)


def test_a_built_task_named_like_a_request_is_a_duplicate() -> None:
    (built,) = batch([R(name="a")])
    with pytest.raises(errors.DuplicateTaskNameError):
        batch([built, R(name="a")])


def test_a_batch_item_of_another_type_is_rejected() -> None:
    with pytest.raises(errors.InvalidTaskError, match="TaskRequest or Task"):
        batch([{"name": "a"}])


# ------------------------------------------------------------------ queue modes (service side)


def test_a_push_task_cannot_go_into_a_pull_queue() -> None:
    with pytest.raises(errors.InvalidQueueModeError, match="cannot add push tasks to queue 'q'"):
        tasks.build_task(R(), queue="q", mode=PULL, now_us=NOW_US)


def test_a_pull_task_cannot_go_into_a_push_queue() -> None:
    with pytest.raises(errors.InvalidQueueModeError, match="a push queue"):
        tasks.build_task(R(method="PULL", payload="x"), queue="q", mode=PUSH, now_us=NOW_US)


def test_a_batch_into_the_wrong_queue_mode_is_rejected() -> None:
    with pytest.raises(errors.InvalidQueueModeError):
        batch([R(method="PULL", payload="x")], mode=PUSH)


def test_the_client_checks_come_before_the_queue_mode() -> None:
    with pytest.raises(errors.InvalidUrlError):
        tasks.build_task(R(url="bad"), queue="q", mode=PULL, now_us=NOW_US)


def test_a_negative_eta_is_checked_before_the_queue_mode() -> None:
    with pytest.raises(errors.InvalidEtaError):
        tasks.build_task(R(eta=-1), queue="q", mode=PULL, now_us=NOW_US)


def test_an_empty_batch_matches_any_queue_mode() -> None:
    assert batch([], mode=PULL) == []


# ------------------------------------------------------------------ extract_params (SPEC 8.3)


def _params(**kw: Any) -> dict[str, Any]:
    mode = PULL if kw.get("method") == "PULL" else PUSH
    return tasks.extract_params(tasks.build_task(R(**kw), queue="q", mode=mode, now_us=NOW_US))


def test_post_params_are_read_back_from_the_payload() -> None:
    assert _params(params={"a": "1", "b": ["2", "3"], "c": "é"}) == {
        "a": b"1",
        "b": [b"2", b"3"],
        "c": "é".encode(),
    }


def test_pull_params_are_read_back_from_the_payload() -> None:
    assert _params(method="PULL", params={"a": "é"}) == {"a": "é".encode()}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_other_methods_read_the_query_string(method: str) -> None:
    assert _params(method=method, url="/x?a=1&a=2&e=&k=%FF") == {
        "a": [b"1", b"2"],
        "e": b"",
        "k": b"\xff",
    }


def test_no_payload_or_query_means_no_params() -> None:
    assert _params() == {}
    assert _params(method="GET", url="/x") == {}


@pytest.mark.parametrize("payload", ["abc", b"a=1&&b=2", "a=1&b"])
def test_malformed_form_data_raises_value_error(payload: str | bytes) -> None:
    with pytest.raises(ValueError, match="bad query field"):
        _params(payload=payload)


def test_a_binary_payload_raises_value_error() -> None:
    with pytest.raises(UnicodeDecodeError):  # a ValueError, as in App Engine
        _params(payload=b"a=\xff")


# ------------------------------------------------------------------ properties

_text = st.text(max_size=30)
_scalar = st.one_of(_text, st.binary(max_size=10), st.integers(), st.floats(), st.booleans())
_anything = st.one_of(st.none(), _scalar, st.lists(_scalar, max_size=3))
_method = st.one_of(
    st.sampled_from(["GET", "post", "HEAD", "PUT", "DELETE", "PULL", "pull", "PATCH", ""]), _text
)
_url = st.one_of(
    st.none(),
    st.sampled_from(["", "/x", "/x?a=1", "http://h/x", "//h", "/a#f", "x", "/" + "a" * 2083]),
    _text.map(lambda s: "/" + s),
    _text,
)
_headers = st.one_of(
    st.none(),
    st.dictionaries(_text, st.one_of(_text, st.lists(_text, max_size=3))),
    st.lists(st.tuples(_text, _text), max_size=3),
    st.dictionaries(st.sampled_from(["Host", "Content-Type", "X-AppEngine-X"]), _text),
)
_params_st = st.one_of(
    st.none(),
    st.dictionaries(_text, st.one_of(_scalar, st.lists(_scalar, max_size=3))),
    st.dictionaries(_text, _anything),
)
_number = st.one_of(st.none(), st.integers(), st.floats(), _text)
_eta = st.one_of(
    st.none(),
    st.datetimes(
        timezones=st.sampled_from(
            [None, datetime.UTC, datetime.timezone(datetime.timedelta(hours=-23))]
        )
    ),
    st.floats(),
    st.integers(),
)
_retry = st.one_of(
    st.none(),
    st.builds(
        models.RetryParameters,
        task_retry_limit=_anything,
        task_age_limit_s=_anything,
        min_backoff_s=_anything,
        max_backoff_s=_anything,
        max_doublings=_anything,
    ),
    st.builds(
        models.RetryParameters,
        task_retry_limit=st.one_of(st.none(), st.integers()),
        task_age_limit_s=st.one_of(st.none(), st.floats()),
        min_backoff_s=st.one_of(st.none(), st.floats()),
        max_backoff_s=st.one_of(st.none(), st.floats()),
        max_doublings=st.one_of(st.none(), st.integers()),
    ),
)
_requests = st.builds(
    tasks.TaskRequest,
    name=st.one_of(st.none(), _text, st.from_regex(r"[a-z0-9_-]{1,20}", fullmatch=True)),
    method=_method,
    url=_url,
    headers=_headers,
    payload=st.one_of(st.none(), _text, st.binary(max_size=50), st.integers()),
    params=_params_st,
    countdown=_number,
    eta=_eta,
    retry_options=_retry,
    target=st.one_of(st.none(), _text),
    tag=st.one_of(st.none(), _text, st.binary(max_size=20)),
    dispatch_deadline=_number,
    namespace=st.one_of(st.just(""), _text),
)

# Mostly well-formed requests, so that the property also exercises the accepting paths.
_plausible_requests = st.builds(
    tasks.TaskRequest,
    name=st.one_of(st.none(), st.from_regex(r"[a-z0-9_-]{1,20}", fullmatch=True)),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PULL"]),
    url=st.one_of(st.none(), st.from_regex(r"/[a-z0-9/]{0,20}(\?[a-z=&]{0,10})?", fullmatch=True)),
    headers=st.one_of(
        st.none(), st.dictionaries(st.from_regex(r"X-[A-Za-z-]{1,10}", fullmatch=True), _text)
    ),
    payload=st.one_of(st.none(), _text, st.binary(max_size=50)),
    params=st.one_of(
        st.none(), st.dictionaries(_text, st.one_of(_text, st.lists(_text, max_size=2)))
    ),
    countdown=st.one_of(st.none(), st.floats(-1e6, 3e6)),
    retry_options=st.one_of(
        st.none(),
        st.builds(
            models.RetryParameters,
            task_retry_limit=st.one_of(st.none(), st.integers(-1, 10)),
            min_backoff_s=st.one_of(st.none(), st.floats(0, 100)),
        ),
    ),
    tag=st.one_of(st.none(), _text),
    dispatch_deadline=st.one_of(st.none(), st.floats(10, 90_000)),
)


@settings(max_examples=400, deadline=None)
@given(
    request=st.one_of(_requests, _plausible_requests), mode=st.sampled_from(list(models.QueueMode))
)
def test_build_task_raises_only_pushd_errors(
    request: tasks.TaskRequest, mode: models.QueueMode
) -> None:
    try:
        task = tasks.build_task(request, queue="q", mode=mode, now_us=NOW_US)
    except errors.Error:
        return
    # Whatever was accepted is a well-formed stored task.
    assert re.fullmatch(tasks.TASK_NAME_PATTERN, task.name)
    assert task.mode is mode
    assert task.eta_us >= 0
    assert task.eta_us - NOW_US <= models.MAX_ETA_AHEAD_US
    assert task.size <= (
        models.MAX_PULL_TASK_SIZE_BYTES if task.is_pull else models.MAX_PUSH_TASK_SIZE_BYTES
    )
    assert task.url.startswith("/")
    assert not any(
        k.lower().startswith("x-appengine-")
        and k.lower()
        not in {
            "x-appengine-current-namespace",
            "x-appengine-default-namespace",
            "x-appengine-failfast",
        }
        for k, _ in task.headers
    )


@settings(max_examples=100, deadline=None)
@given(
    requests=st.lists(st.one_of(_requests, _plausible_requests), max_size=5),
    mode=st.sampled_from(list(models.QueueMode)),
)
def test_validate_batch_raises_only_pushd_errors(
    requests: list[tasks.TaskRequest], mode: models.QueueMode
) -> None:
    try:
        built = tasks.validate_batch(requests, queue="q", mode=mode, now_us=NOW_US)
    except errors.Error:
        return
    assert len(built) == len(requests)


@settings(max_examples=200, deadline=None)
@given(count=st.integers(min_value=1, max_value=300))
def test_generated_names_match_the_rule_and_never_repeat(count: int) -> None:
    built = tasks.validate_batch([R()] * min(count, 100), queue="q", mode=PUSH, now_us=NOW_US) + [
        tasks.build_task(R(), queue="q", mode=PUSH, now_us=NOW_US) for _ in range(count)
    ]
    names = [t.name for t in built]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(tasks.TASK_NAME_PATTERN, n) for n in names)
