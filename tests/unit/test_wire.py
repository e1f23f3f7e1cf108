"""The JSON codec: request bodies into TaskRequests, models into JSON shapes."""

from __future__ import annotations

import base64
import datetime
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushd import errors, models, tasks, wire
from pushd.queue_yaml import config
from pushd.store import base

T0 = 1_700_000_000_000_000
S = 1_000_000


def decode(obj: object, default_method: str = "POST") -> tasks.TaskRequest:
    return wire.decode_task(obj, default_method=default_method)


def build(obj: object, mode: models.QueueMode = models.QueueMode.PUSH) -> models.Task:
    method = "PULL" if mode is models.QueueMode.PULL else "POST"
    [request] = wire.decode_add(obj, default_method=method)
    return tasks.build_task(request, queue="q", mode=mode, now_us=T0)


# ------------------------------------------------------------------ bytes


def test_loads_reads_json_and_refuses_anything_else() -> None:
    """Given bytes, loads returns the JSON value or raises INVALID_REQUEST."""
    assert wire.loads(b'{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    for bad in (b"", b"{", b"\xff", b"NaN", b"1e400", b'"\\ud800"', b"\xef\xbb\xbf{}"):
        with pytest.raises(errors.Error) as caught:
            wire.loads(bad)
        assert type(caught.value) is errors.Error
        assert caught.value.code is errors.ErrorCode.INVALID_REQUEST


def test_dumps_writes_compact_utf8_json() -> None:
    assert wire.dumps({"a": "é", "b": None}) == '{"a":"é","b":null}'.encode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aGVsbG8=", b"hello"),
        ("aGVsbG8", b"hello"),  # padding optional
        ("-_8=", b"\xfb\xff"),  # URL-safe alphabet
        ("+/8=", b"\xfb\xff"),  # standard alphabet
        ("", b""),
    ],
)
def test_b64decode_accepts_both_alphabets_with_or_without_padding(
    text: str, expected: bytes
) -> None:
    assert wire.b64decode(text, "payload_base64") == expected


@pytest.mark.parametrize("text", ["a", "a b=", "é===", "aGVsbG8*", "===="[:1] + "a"])
def test_b64decode_refuses_malformed_text(text: str) -> None:
    with pytest.raises(errors.InvalidTaskError, match="payload_base64"):
        wire.b64decode(text, "payload_base64")


# ------------------------------------------------------------------ add bodies


def test_one_task_object_is_a_batch_of_one() -> None:
    [request] = wire.decode_add({"name": "a", "payload": "x"}, default_method="POST")
    assert request.name == "a"
    assert request.payload == "x"
    assert request.method == "POST"


def test_tasks_list_is_a_batch() -> None:
    found = wire.decode_add({"tasks": [{"name": "a"}, {"name": "b"}]}, default_method="POST")
    assert [r.name for r in found] == ["a", "b"]


@pytest.mark.parametrize(
    ("body", "error", "text"),
    [
        ({"tasks": []}, errors.InvalidTaskError, "at least one"),
        ({"tasks": [{}] * 101}, errors.TooManyTasksError, "at most 100"),
        ({"tasks": {}}, errors.InvalidTaskError, "must be a list"),
        ({"tasks": [], "name": "a"}, errors.InvalidTaskError, "'name'"),
        ({"tasks": [{}, 3]}, errors.InvalidTaskError, r"tasks\[1\] must be a JSON object"),
        ([{}], errors.InvalidTaskError, "must be a JSON object; got a list"),
        ("x", errors.InvalidTaskError, "got a string"),
        (None, errors.InvalidTaskError, "got null"),
    ],
)
def test_batch_shape_errors(body: object, error: type[errors.Error], text: str) -> None:
    with pytest.raises(error, match=text):
        wire.decode_add(body, default_method="POST")


def test_task_fields_are_the_ones_decode_task_reads() -> None:
    """TASK_FIELDS follows TaskRequest; a new TaskRequest field must be decoded here too."""
    assert set(wire.TASK_FIELDS) == {
        *("name", "method", "url", "headers", "payload", "payload_base64", "params"),
        *("countdown", "eta", "retry_options", "dispatch_deadline", "target", "tag", "namespace"),
        *("eta_us", "dispatch_deadline_us"),
    }


def test_method_defaults_to_the_queue_kind_and_can_be_given() -> None:
    assert decode({}, "PULL").method == "PULL"
    assert decode({}, "POST").method == "POST"
    assert decode({"method": "put"}, "POST").method == "put"  # upper-cased by pushd.tasks


def test_null_fields_count_as_absent() -> None:
    request = decode({"name": None, "payload": None, "eta": None, "retry_options": None})
    assert request == tasks.TaskRequest()


def test_unknown_field_is_named() -> None:
    with pytest.raises(errors.InvalidTaskError, match="unknown field 'payloadd'"):
        decode({"payloadd": "x"})
    with pytest.raises(errors.InvalidTaskError, match=r"tasks\[0\]: unknown field 'x'"):
        wire.decode_add({"tasks": [{"x": 1}]}, default_method="POST")


def test_payload_and_payload_base64_exclude_each_other() -> None:
    with pytest.raises(errors.InvalidTaskError, match="not both"):
        decode({"payload": "a", "payload_base64": "YQ=="})
    assert decode({"payload_base64": "AAE="}).payload == b"\x00\x01"
    assert decode({"payload": "é"}).payload == "é"


@pytest.mark.parametrize("field", ["name", "method", "url", "payload", "target", "tag"])
@pytest.mark.parametrize("value", [1, True, [], {}])
def test_text_fields_must_be_strings(field: str, value: object) -> None:
    with pytest.raises(errors.InvalidTaskError, match=f"{field} must be a string"):
        decode({field: value})


def test_headers_as_object_or_pairs() -> None:
    mapping = build({"headers": {"X-A": "1", "X-B": ["2", "3"]}}).headers
    assert [h for h in mapping if h[0] != "X-AppEngine-Current-Namespace"] == [
        ("X-A", "1"),
        ("X-B", "2"),
        ("X-B", "3"),
    ]
    pairs = build({"headers": [["X-A", "1"], ["X-A", "2"]]}).headers
    assert [h for h in pairs if h[0] == "X-A"] == [("X-A", "1"), ("X-A", "2")]


@pytest.mark.parametrize("headers", ["A: 1", 3, True])
def test_headers_that_are_neither_object_nor_list_are_refused_at_decode(headers: object) -> None:
    with pytest.raises(errors.InvalidTaskError, match="headers must be an object or a list"):
        decode({"headers": headers})


@pytest.mark.parametrize(
    "headers",
    [{"A": 1}, {"A": [1]}, {"A": {}}, {"A": "x\ny"}, {"A B": "1"}, [["A"]], [["A", 1]], [1]],
)
def test_headers_with_bad_names_or_values_are_refused_when_built(headers: object) -> None:
    with pytest.raises(errors.InvalidTaskError, match="header"):
        build({"headers": headers})


def test_params_take_strings_numbers_and_lists() -> None:
    params = {"a": "x", "b": 2, "c": 2.5, "d": ["y", 3], "e": True}
    assert build({"params": params}).payload == b"a=x&b=2&c=2.5&d=y&d=3&e=True"


@pytest.mark.parametrize("params", [[1], "a=b", 3])
def test_params_that_are_not_an_object_are_refused_at_decode(params: object) -> None:
    with pytest.raises(errors.InvalidTaskError, match="params must be an object"):
        decode({"params": params})


@pytest.mark.parametrize("params", [{"a": {}}, {"a": [None]}, {"a": None}, {"a": [[1]]}])
def test_params_with_bad_values_are_refused_when_built(params: object) -> None:
    with pytest.raises(errors.InvalidTaskError, match="params"):
        build({"params": params})


@pytest.mark.parametrize("field", ["countdown", "dispatch_deadline"])
@pytest.mark.parametrize("value", ["10", True, [], {}])
def test_second_fields_must_be_numbers(field: str, value: object) -> None:
    with pytest.raises(errors.InvalidTaskError, match=f"{field} must be a number"):
        decode({field: value})


# ------------------------------------------------------------------ times


@pytest.mark.parametrize(
    ("text", "expected_us"),
    [
        ("2023-11-14T22:13:20Z", T0),
        ("2023-11-14T22:13:20", T0),  # naive means UTC
        ("2023-11-14t22:13:20z", T0),
        ("2023-11-14 22:13:20+00:00", T0),
        ("2023-11-15T00:13:20+02:00", T0),
        ("2023-11-14T21:13:20-01:00", T0),
        ("2023-11-14T22:13:20.5Z", T0 + S // 2),
        ("2023-11-14T22:13:20.0000019Z", T0 + 1),  # finer than a microsecond: cut off
    ],
)
def test_rfc3339_times(text: str, expected_us: int) -> None:
    parsed = wire.parse_rfc3339(text)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    assert (parsed - epoch) // datetime.timedelta(microseconds=1) == expected_us
    assert build({"eta": text}).eta_us == expected_us


@pytest.mark.parametrize(
    "text",
    [
        "2023-11-14",
        "2023-13-14T22:13:20Z",
        "2023-02-30T22:13:20Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:13:20+24:00",
        "0000-01-01T00:00:00Z",
        "2023-11-14T22:13:20 Z",
        "٢٠٢٣-11-14T22:13:20Z",  # non-ASCII digits
        "tomorrow",
        "",
    ],
)
def test_bad_rfc3339_times_are_refused(text: str) -> None:
    with pytest.raises(errors.InvalidTaskError, match="RFC 3339"):
        decode({"eta": text})


def test_eta_as_epoch_seconds_and_countdown() -> None:
    assert build({"eta": T0 / S + 1.5}).eta_us == T0 + 3 * S // 2
    assert build({"eta": T0 // S}).eta_us == T0
    assert build({"countdown": 2}).eta_us == T0 + 2 * S
    with pytest.raises(errors.InvalidTaskError, match="countdown and ETA"):
        build({"countdown": 2, "eta": T0 // S})


@pytest.mark.parametrize("value", [True, [], {}])
def test_eta_of_other_types_is_refused(value: object) -> None:
    with pytest.raises(errors.InvalidTaskError, match="eta must be epoch seconds"):
        decode({"eta": value})


# ------------------------------------------------------------------ retry options


@pytest.mark.parametrize(
    ("age", "seconds"),
    [(30, 30), (1.2, 2), ("90s", 90), ("15m", 900), ("1.5h", 5400), ("2d", 172800), (".5s", 1)],
)
def test_task_age_limit_in_seconds_or_with_a_unit(age: object, seconds: int) -> None:
    options = decode({"retry_options": {"task_age_limit": age}}).retry_options
    assert options == models.RetryParameters(task_age_limit_s=seconds)


def test_all_retry_options() -> None:
    given_options = {
        "task_retry_limit": 3,
        "task_age_limit": "1h",
        "min_backoff_seconds": 0.5,
        "max_backoff_seconds": 10,
        "max_doublings": 2,
    }
    assert build({"retry_options": given_options}).retry_options == models.RetryParameters(
        task_retry_limit=3,
        task_age_limit_s=3600,
        min_backoff_s=0.5,
        max_backoff_s=10,
        max_doublings=2,
    )


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ([], "must be an object"),
        ({"retry_limit": 1}, "unknown field 'retry_limit'"),
        ({"task_age_limit": "2 d"}, "duration"),
        ({"task_age_limit": "-1s"}, "duration"),
        ({"task_age_limit": "1w"}, "duration"),
        ({"task_age_limit": True}, "duration"),
        ({"task_age_limit": -0.5}, "duration"),
        ({"task_age_limit": -1}, "duration"),
        ({"task_age_limit": 1e300}, "duration"),
        ({"task_retry_limit": 1.0}, "integer"),
        ({"task_retry_limit": "1"}, "integer"),
        ({"max_doublings": 2**31}, "at most"),
        ({"min_backoff_seconds": "1s"}, "number of seconds"),
        ({"max_backoff_seconds": False}, "number of seconds"),
    ],
)
def test_bad_retry_options_are_refused(options: object, text: str) -> None:
    with pytest.raises(errors.InvalidTaskRetryOptionsError, match=text):
        decode({"retry_options": options})


def test_negative_retry_values_are_refused_by_the_task_rules() -> None:
    with pytest.raises(errors.InvalidTaskRetryOptionsError):
        build({"retry_options": {"task_retry_limit": -1}})


# ------------------------------------------------------------------ fuzz

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_task_like = st.dictionaries(
    st.sampled_from([*wire.TASK_FIELDS, "bogus"]), _json, max_size=len(wire.TASK_FIELDS)
)


@given(body=_json | _task_like | st.fixed_dictionaries({"tasks": st.lists(_task_like, max_size=3)}))
def test_any_json_decodes_to_tasks_or_a_pushd_error(body: object) -> None:
    """Whatever the JSON, decoding and validating give the body's tasks (in order, in the
    queue, of its mode, under the names given) or raise a pushd error that says what is wrong
    with a 4xx status: nothing else, never a 500."""
    items = body["tasks"] if isinstance(body, dict) and "tasks" in body else [body]
    for mode in models.QueueMode:
        built = _decoded(body, mode)
        if isinstance(built, errors.Error):
            assert str(built), type(built)
            assert 400 <= built.http_status < 500, built
            continue
        assert isinstance(items, list)
        assert len(built) == len(items)
        for item, task in zip(items, built, strict=True):
            assert isinstance(item, dict)
            assert task.queue == "q"
            assert task.is_pull == (mode is models.QueueMode.PULL)
            if item.get("name"):
                assert task.name == item["name"]


def _decoded(body: object, mode: models.QueueMode) -> list[models.Task] | errors.Error:
    """The tasks of an add request to queue "q" of ``mode``, or the pushd error it raised."""
    try:
        requests = wire.decode_add(body, default_method="PULL" if mode.value == "pull" else "POST")
        return tasks.validate_batch(requests, queue="q", mode=mode, now_us=T0)
    except errors.Error as exc:
        return exc


# ------------------------------------------------------------------ encoding


def _task(**kw: Any) -> models.Task:
    fields: dict[str, Any] = {
        "queue": "q",
        "name": "t1",
        "url": "/work",
        "headers": (("A", "1"), ("A", "2")),
        "payload": b"\x00hi",
        "eta_us": T0 + 1,
        "created_us": T0,
        "size": 42,
    }
    return models.Task(**(fields | kw))


def test_encode_task_carries_every_field() -> None:
    encoded = wire.encode_task(
        _task(
            retry_options=models.RetryParameters(task_retry_limit=2),
            dispatch_deadline_us=30 * S,
            retry_count=3,
            execution_count=2,
            first_try_us=T0,
            last_status=503,
            last_attempt=models.LastAttempt(
                time_us=T0 + 7,
                status=503,
                error=None,
                message="HTTP 503",
                url="http://w.example/work",
            ),
            target="worker",
        )
    )
    assert encoded == {
        "name": "t1",
        "queue": "q",
        "method": "POST",
        "url": "/work",
        "headers": [["A", "1"], ["A", "2"]],
        "payload_base64": base64.b64encode(b"\x00hi").decode(),
        "payload_size": 3,
        "eta": (T0 + 1) / S,
        "eta_us": T0 + 1,
        "created": T0 / S,
        "created_us": T0,
        "tag": None,
        "tag_base64": None,
        "retry_options": {
            "task_retry_limit": 2,
            "task_age_limit": None,
            "min_backoff_seconds": None,
            "max_backoff_seconds": None,
            "max_doublings": None,
        },
        "target": "worker",
        "dispatch_deadline": 30.0,
        "size": 42,
        "retry_count": 3,
        "execution_count": 2,
        "first_try": T0 / S,
        "first_try_us": T0,
        "last_status": 503,
        "last_attempt": {
            "time": (T0 + 7) / S,
            "time_us": T0 + 7,
            "status": 503,
            "error": None,
            "message": "HTTP 503",
            "url": "http://w.example/work",
        },
    }
    assert wire.encode_task(_task())["last_attempt"] is None
    assert "payload_base64" not in wire.encode_task(_task(), payload=False)
    wire.dumps(encoded)


def test_encode_task_tags_as_text_and_base64() -> None:
    pull = _task(method=models.Method.PULL, headers=(), tag=b"blue")
    assert wire.encode_task(pull)["tag"] == "blue"
    assert wire.encode_task(pull)["tag_base64"] == "Ymx1ZQ=="
    binary = _task(method=models.Method.PULL, headers=(), tag=b"\xff")
    assert wire.encode_task(binary)["tag"] is None
    assert wire.encode_task(binary)["tag_base64"] == "/w=="


def test_encode_dead_adds_reason_time_and_attempts() -> None:
    dead = base.DeadTask(task=_task(retry_count=5, last_status=500), dead_us=T0 + S, reason="r")
    encoded = wire.encode_dead(dead.task, dead_us=dead.dead_us, reason=dead.reason)
    assert encoded["reason"] == "r"
    assert encoded["dead"] == (T0 + S) / S
    assert encoded["dead_us"] == T0 + S
    assert encoded["attempts"] == 5
    assert encoded["last_status"] == 500
    assert "payload_base64" not in wire.encode_dead(dead.task, dead_us=1, reason="", payload=False)


def test_encode_add_result_names_the_outcome() -> None:
    task = _task()
    assert wire.encode_add_result(models.AddResult(task)) == {
        "name": "t1",
        "queue": "q",
        "eta": (T0 + 1) / S,
        "eta_us": T0 + 1,
        "result": "OK",
    }
    exists = models.AddResult(task, errors.TaskAlreadyExistsError)
    assert wire.encode_add_result(exists)["result"] == "TASK_ALREADY_EXISTS"
    tombstoned = models.AddResult(task, errors.TombstonedTaskError)
    assert wire.encode_add_result(tombstoned)["result"] == "TOMBSTONED_TASK"
    assert wire.result_name(models.AddResult(task, RuntimeError)) == "INTERNAL_ERROR"


def test_encode_queue_push_and_pull() -> None:
    push = config.QueueConfig(
        name="fast",
        rate=Fraction(1, 2),
        rate_text="30/m",
        bucket_size=3,
        max_concurrent_requests=7,
        retry=models.RetryParameters(task_retry_limit=4, min_backoff_s=1.0),
        target="worker",
    )
    stats = models.QueueStats(queue="fast", tasks=2, oldest_eta_us=T0, paused=True, in_flight=1)
    encoded = wire.encode_queue(push, stats)
    assert encoded["rate"] == "30/m"
    assert encoded["rate_per_second"] == 0.5
    assert encoded["bucket_size"] == 3
    assert encoded["max_concurrent_requests"] == 7
    assert encoded["retry_parameters"]["task_retry_limit"] == 4
    assert encoded["retry_parameters"]["min_backoff_seconds"] == 1.0
    assert encoded["target"] == "worker"
    assert encoded["stats"] == {
        "tasks": 2,
        "oldest_eta": T0 / S,
        "oldest_eta_us": T0,
        "executed_last_minute": 0,
        "in_flight": 1,
        "enforced_rate": 0.0,
        "paused": True,
        "dead_letters": 0,
        "removed": False,
    }
    # A removed queue has no configuration left: no push field is shown.
    gone = wire.encode_queue(
        config.removed_queue("fast", pull=False),
        models.QueueStats(queue="fast", tasks=2, paused=True, removed=True),
    )
    assert (gone["mode"], gone["rate"], gone["bucket_size"]) == ("push", None, None)
    assert (gone["stats"]["paused"], gone["stats"]["removed"]) == (True, True)
    pull = config.QueueConfig(name="work", mode=models.QueueMode.PULL, rate=Fraction(0))
    encoded = wire.encode_queue(pull, models.QueueStats(queue="work"))
    assert encoded["mode"] == "pull"
    assert encoded["rate"] is None
    assert encoded["rate_per_second"] is None
    assert encoded["bucket_size"] is None
    assert encoded["stats"]["oldest_eta"] is None


def test_encode_error_envelope() -> None:
    assert wire.encode_error(404, "UNKNOWN_QUEUE", "no") == {
        "error": {"code": 404, "status": "UNKNOWN_QUEUE", "message": "no"}
    }


def test_a_task_survives_decode_build_encode() -> None:
    """What a producer sends is what GET shows."""
    task = build(
        {
            "name": "round-trip",
            "method": "PUT",
            "url": "/a/b",
            "headers": {"X-Thing": ["1", "2"]},
            "payload_base64": base64.b64encode(b"\x00\xff").decode(),
            "countdown": 5,
            "dispatch_deadline": 60,
            "target": "worker",
        }
    )
    encoded = wire.encode_task(task)
    assert encoded["name"] == "round-trip"
    assert encoded["method"] == "PUT"
    assert encoded["url"] == "/a/b"
    assert ["X-Thing", "1"] in encoded["headers"]
    assert ["X-Thing", "2"] in encoded["headers"]
    assert base64.b64decode(encoded["payload_base64"]) == b"\x00\xff"
    assert encoded["eta_us"] == T0 + 5 * S
    assert encoded["dispatch_deadline"] == 60.0
    assert encoded["target"] == "worker"


def test_queue_config_of_the_default_queue_encodes() -> None:
    default = config.QueueConfig(name="default")
    assert wire.encode_queue(default, models.QueueStats(queue="default"))["rate"] == "5/s"


def test_times_in_us_are_decoded_as_whole_numbers() -> None:
    found = decode({"eta_us": 1_700_000_000_000_001, "dispatch_deadline_us": 20_000_000}, "POST")
    assert (found.eta_us, found.dispatch_deadline_us) == (1_700_000_000_000_001, 20_000_000)
    with pytest.raises(errors.InvalidEtaError, match=r"task\.eta_us must be whole"):
        decode({"eta_us": 1.5}, "POST")
    with pytest.raises(errors.InvalidDispatchDeadlineError, match="dispatch_deadline_us"):
        decode({"dispatch_deadline_us": "20"}, "POST")
    with pytest.raises(errors.InvalidEtaError):
        decode({"eta_us": 2**63}, "POST")
