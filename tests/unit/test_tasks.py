"""pushd.tasks applies every rule of SPEC 1.2–1.12 to a single task, with exact results."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest

from pushd import encoding, errors, models, tasks

NOW_US = 1_700_000_000_000_000
NOW_DT = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC)  # == NOW_US
NS = ("X-AppEngine-Current-Namespace", "")  # the namespace header every push task gets
NS_SIZE = len(NS[0]) + 4
PUSH, PULL = models.QueueMode.PUSH, models.QueueMode.PULL


def build(*, queue: str = "q1", mode: models.QueueMode | None = None, **kw: Any) -> models.Task:
    request = tasks.TaskRequest(**kw)
    if mode is None:
        mode = PULL if str(kw.get("method", "")).upper() == "PULL" else PUSH
    return tasks.build_task(
        request, queue=queue, mode=mode, now_us=NOW_US, name_factory=lambda: "generated"
    )


def rejects(error: type[errors.Error], match: str | None = None, **kw: Any) -> errors.Error:
    with pytest.raises(error, match=match) as info:
        build(**kw)
    assert type(info.value) is error  # exactly this class, not a subclass
    return info.value


# ------------------------------------------------------------------ a whole task


def test_a_push_task_is_built_with_every_field() -> None:
    retry = models.RetryParameters(task_retry_limit=3, min_backoff_s=1.0)
    task = build(
        name="t1",
        method="put",
        url="/work",
        headers={"X-A": ["1", "2"]},
        payload="héllo",
        params={"k": "v"},
        countdown=10,
        retry_options=retry,
        target="v1.worker",
        dispatch_deadline=30,
    )
    assert task == models.Task(
        queue="q1",
        name="t1",
        method=models.Method.PUT,
        url="/work?k=v",
        on_queue_url=False,
        headers=(
            ("X-A", "1"),
            ("X-A", "2"),
            NS,
            ("Content-Type", "text/plain; charset=utf-8"),
        ),
        payload="héllo".encode(),
        eta_us=NOW_US + 10_000_000,
        created_us=NOW_US,
        tag=None,
        retry_options=retry,
        target="v1.worker",
        dispatch_deadline_us=30_000_000,
        size=3 + 6 + 9 + (3 + 1 + 4) * 2 + NS_SIZE + (12 + 25 + 4),
    )


def test_a_pull_task_keeps_payload_and_tag_but_no_headers() -> None:
    task = build(method="PULL", payload=b"data", tag="grp", name="p1", countdown=-5)
    assert task == models.Task(
        queue="q1",
        name="p1",
        method=models.Method.PULL,
        url="/_ah/queue/q1",
        on_queue_url=True,
        headers=(),
        payload=b"data",
        eta_us=NOW_US - 5_000_000,
        created_us=NOW_US,
        tag=b"grp",
        size=4 + 4 + NS_SIZE,  # the client counts the namespace header it never sends
    )


# ------------------------------------------------------------------ 1.2 task name


@pytest.mark.parametrize("name", ["a", "task-1_A", "n" * 500, "_-_", "0"])
def test_valid_task_names_are_kept(name: str) -> None:
    assert build(name=name).name == name


@pytest.mark.parametrize(
    "name", ["n" * 501, "a b", "a.b", "a/b", "é", "abc\n", "\nabc", "a\x00", "ab:c"]
)
def test_invalid_task_names_are_rejected(name: str) -> None:
    rejects(errors.InvalidTaskNameError, name=name)


def test_a_trailing_newline_is_rejected_unlike_app_engine() -> None:
    # App Engine's re.match(r"^...$") accepts "abc\n"; pushd uses fullmatch on purpose.
    error = rejects(errors.InvalidTaskNameError, name="abc\n")
    assert str(error) == r"task name 'abc\n' must match [a-zA-Z0-9_-]{1,500}"


def test_the_name_error_says_what_and_which_field() -> None:
    error = rejects(errors.InvalidTaskNameError, name="a b")
    assert str(error) == "task name 'a b' must match [a-zA-Z0-9_-]{1,500}"


@pytest.mark.parametrize("name", [None, ""])
def test_an_unnamed_task_gets_a_generated_name(name: str | None) -> None:
    assert build(name=name).name == "generated"


def test_the_default_name_factory_makes_32_hex_digits() -> None:
    task = tasks.build_task(tasks.TaskRequest(), queue="q", mode=PUSH, now_us=NOW_US)
    assert re.fullmatch(r"[0-9a-f]{32}", task.name)


def test_generated_names_are_unique_and_not_sequential() -> None:
    names = [tasks.new_task_name() for _ in range(10_000)]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(tasks.TASK_NAME_PATTERN, n) for n in names)
    assert names != sorted(names)


def test_a_name_factory_that_breaks_the_name_rule_is_an_internal_error() -> None:
    with pytest.raises(errors.InternalError):
        tasks.build_task(
            tasks.TaskRequest(), queue="q", mode=PUSH, now_us=NOW_US, name_factory=lambda: "a b"
        )


# ------------------------------------------------------------------ 1.3 queue name


@pytest.mark.parametrize("queue", ["q", "default", "queue-9", "Q" * 100])
def test_valid_queue_names(queue: str) -> None:
    assert build(queue=queue).queue == queue


@pytest.mark.parametrize("queue", ["", "q" * 101, "my_queue", "a b", "é", "a.b", "q\n"])
def test_invalid_queue_names(queue: str) -> None:
    error = rejects(errors.InvalidQueueNameError, queue=queue)
    assert str(error) == f"queue name {encoding.show(queue)} must match [a-zA-Z0-9-]{{1,100}}"


def test_a_queue_name_that_is_not_a_string_is_rejected() -> None:
    with pytest.raises(errors.InvalidQueueNameError):
        tasks.check_queue_name(7)


# ------------------------------------------------------------------ 1.4 method


@pytest.mark.parametrize("method", ["GET", "post", "Head", "put", "DELETE"])
def test_methods_are_upper_cased(method: str) -> None:
    assert build(method=method).method == models.Method(method.upper())


def test_post_is_the_default_method() -> None:
    assert build().method is models.Method.POST


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "", "GETT"])
def test_an_unknown_method_is_rejected(method: str) -> None:
    error = rejects(errors.InvalidTaskError, method=method)
    assert str(error).startswith(f"Invalid method: {method}")


def test_a_method_that_is_not_a_string_is_rejected() -> None:
    rejects(errors.InvalidTaskError, "Invalid method", method=5)


# ------------------------------------------------------------------ 1.5 URL


def test_no_url_means_the_queue_url_filled_in_at_add_time() -> None:
    task = build(queue="mail")
    assert (task.url, task.on_queue_url) == ("/_ah/queue/mail", True)


def test_a_relative_url_is_kept() -> None:
    task = build(url="/work/item")
    assert (task.url, task.on_queue_url) == ("/work/item", False)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/x", "must be relative"),
        ("https:/x", "must be relative"),
        ("//example.com/x", "must be relative"),
        ("/x#frag", "fragment"),
        ("x/y", "starting with '/'"),
        ("?a=1", "starting with '/'"),
        ("//[::1", "cannot be parsed"),
        ("/a b", "whitespace or control"),
        ("/a\nb", "whitespace or control"),
        ("/a\tb", "whitespace or control"),
        (" /a", "whitespace or control"),
        ("/a\x7f", "whitespace or control"),
        ("/../admin", "climbs above the base path"),
        ("/%2e%2e/admin", "climbs above the base path"),
        ("/%2E./admin?x=1", "climbs above the base path"),
        ("/a/../../admin", "climbs above the base path"),
        ("/./..", "climbs above the base path"),
        ("/a/.%2e/.%2E", "climbs above the base path"),
        ("/..", "climbs above the base path"),
    ],
)
def test_bad_urls_are_rejected(url: str, message: str) -> None:
    error = rejects(errors.InvalidUrlError, message, url=url)
    assert str(error).startswith("url ")  # the message names the field


@pytest.mark.parametrize(
    "url", ["/a/../b", "/a/..", "/./a", "/a/.", "/..%2fadmin", "/a..b/...", "/a//..", "/%2e%2ex"]
)
def test_dot_segments_that_stay_inside_the_base_are_kept_as_given(url: str) -> None:
    """Like App Engine, the URL is stored as written; only one that would leave the target's
    base path (the HTTP client resolves dot-segments when it sends) is refused."""
    assert build(url=url).url == url


@pytest.mark.parametrize(
    ("path", "resolved"),
    [
        ("/", "/"),
        ("/a/b/../c", "/a/c"),
        ("/a/./b/.", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/a/%2E%2e/b", "/b"),
        ("/a//../b", "/a/b"),
        ("/../a", None),
        ("/a/../..", None),
    ],
)
def test_remove_dot_segments_follows_rfc_3986(path: str, resolved: str | None) -> None:
    assert encoding.remove_dot_segments(path) == resolved


@pytest.mark.parametrize(
    "name",
    ["Upgrade", "TE", "Keep-Alive", "Trailer", "Proxy-Authorization", "Connection", "te"],
)
def test_hop_by_hop_headers_are_refused_naming_the_header(name: str) -> None:
    error = rejects(errors.InvalidTaskError, "hop-by-hop", headers={name: "x"})
    assert f"header {name!r}" in str(error)
    rejects(errors.InvalidTaskError, "hop-by-hop", headers=[("X-A", "1"), (name, "x")])


def test_a_url_path_of_2083_characters_is_accepted() -> None:
    url = "/" + "a" * 2082
    assert build(url=url).url == url


def test_a_url_path_of_2084_characters_is_rejected() -> None:
    error = rejects(errors.InvalidUrlError, url="/" + "a" * 2083)
    assert str(error) == "url path must be at most 2083 characters; found 2084"


def test_the_query_string_does_not_count_toward_the_url_limit() -> None:
    url = "/" + "a" * 2082 + "?q=" + "b" * 5000
    assert build(method="GET", url=url).url == url


def test_a_post_url_cannot_have_a_query_string() -> None:
    rejects(errors.InvalidTaskError, "use params instead", url="/x?a=1")


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "PUT"])
def test_other_methods_keep_the_query_string(method: str) -> None:
    assert build(method=method, url="/x?a=1&a=2").url == "/x?a=1&a=2"


def test_an_empty_query_string_is_dropped() -> None:
    assert build(method="GET", url="/x?").url == "/x"


@pytest.mark.parametrize("method", ["GET", "PUT", "POST", "DELETE"])
def test_query_string_and_params_together_are_rejected(method: str) -> None:
    rejects(
        errors.InvalidTaskError, "only one of them", method=method, url="/x?a=1", params={"b": "2"}
    )


def test_get_params_go_into_the_default_url() -> None:
    task = build(method="GET", params={"a": "1", "b": ["x", "y"]})
    assert task.url == "/_ah/queue/q1?a=1&b=x&b=y"
    assert task.on_queue_url


def test_a_non_ascii_url_is_kept_as_given() -> None:
    assert build(url="/café").url == "/café"


def test_a_url_that_is_not_a_string_is_rejected() -> None:
    rejects(errors.InvalidUrlError, "must be a string", url=b"/x")


def test_a_pull_task_cannot_have_a_url() -> None:
    rejects(errors.InvalidTaskError, "url must not", method="PULL", payload="x", url="/x")


# ------------------------------------------------------------------ 1.6 headers, Host, target


def test_every_push_task_carries_the_namespace_header() -> None:
    assert build().headers == (NS,)


def test_the_producer_namespace_becomes_the_header() -> None:
    assert build(namespace="tenant.1").headers == (("X-AppEngine-Current-Namespace", "tenant.1"),)


def test_a_namespace_header_given_by_the_producer_wins() -> None:
    task = build(namespace="other", headers={"x-appengine-current-namespace": "ns"})
    assert task.headers == (("x-appengine-current-namespace", "ns"),)


@pytest.mark.parametrize("namespace", ["a b", "n" * 101, "é", 5])
def test_an_invalid_namespace_is_rejected(namespace: object) -> None:
    rejects(errors.InvalidTaskError, "namespace", namespace=namespace)


def test_a_sequence_value_repeats_the_header() -> None:
    assert build(headers={"X-A": ["1", "2"]}).headers == (("X-A", "1"), ("X-A", "2"), NS)


def test_mapping_keys_are_case_insensitive_and_the_last_one_wins() -> None:
    task = build(headers={"X-A": "1", "X-B": "b", "x-a": "2"})
    assert task.headers == (("X-B", "b"), ("x-a", "2"), NS)


def test_header_pairs_are_kept_with_their_repeats() -> None:
    task = build(headers=[("X-A", "1"), ("x-a", "2")])
    assert task.headers == (("X-A", "1"), ("x-a", "2"), NS)
    assert task.header_values("x-A") == ["1", "2"]


def test_app_engine_headers_are_dropped_except_namespaces_and_failfast() -> None:
    task = build(
        headers={
            "X-AppEngine-QueueName": "evil",
            "x-appengine-taskname": "evil",
            "X-AppEngine-TaskRetryCount": "9",
            "X-AppEngine-FailFast": "true",
            "X-AppEngine-Default-Namespace": "apps",
            "X-AppEngine-Current-Namespace": "ns",
            "X-AppEngineish": "kept",
        }
    )
    assert task.headers == (
        ("X-AppEngine-FailFast", "true"),
        ("X-AppEngine-Default-Namespace", "apps"),
        ("X-AppEngine-Current-Namespace", "ns"),
        ("X-AppEngineish", "kept"),
    )


def test_dropped_headers_still_count_toward_the_size_as_app_engines_client_does() -> None:
    task = build(headers={"X-AppEngine-QueueName": "evil"})
    assert task.size == 4 + (21 + 4 + 4) + NS_SIZE


@pytest.mark.parametrize("host", ["Host", "host", "HOST"])
def test_target_and_host_together_are_rejected(host: str) -> None:
    rejects(
        errors.InvalidTaskError,
        "Host header cannot be set",
        target="v1.svc",
        headers={host: "a.example.com"},
    )


def test_a_target_alone_is_kept_and_adds_no_host() -> None:
    task = build(target="v1.svc")
    assert (task.target, task.headers) == ("v1.svc", (NS,))


def test_a_host_header_alone_is_kept() -> None:
    task = build(headers={"Host": "a.example.com"})
    assert (task.target, task.headers) == (None, (("Host", "a.example.com"), NS))


def test_an_empty_target_means_none() -> None:
    assert build(target="").target is None


def test_a_target_that_is_not_a_string_is_rejected() -> None:
    rejects(errors.InvalidTaskError, "target must be a string", target=5)


def test_a_pull_task_cannot_have_headers() -> None:
    rejects(
        errors.InvalidTaskError, "headers must not", method="PULL", payload="x", headers={"A": "1"}
    )


def test_a_pull_task_may_have_empty_headers() -> None:
    assert build(method="PULL", payload="x", headers={}).headers == ()


def test_a_pull_task_cannot_have_a_target() -> None:
    rejects(errors.InvalidTaskError, "target must not", method="PULL", payload="x", target="v1")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X A": "1"}, "not a valid HTTP field name"),
        ({"": "1"}, "not a valid HTTP field name"),
        ({"X-A:": "1"}, "not a valid HTTP field name"),
        ({5: "1"}, "not a valid HTTP field name"),
        ({"X-A": "a\r\nX-B: b"}, "CR, LF or NUL"),
        ({"X-A": "a\x00"}, "CR, LF or NUL"),
        ({"X-A": 5}, "must be a string or a sequence"),
        ({"X-A": b"1"}, "must be a string or a sequence"),
        ({"X-A": [1]}, "value must be a string"),
        ([("X-A",)], "pairs"),
        ([("X-A", 1)], "value must be a string"),
        ("X-A: 1", "mapping or a sequence"),
        (5, "mapping or a sequence"),
    ],
)
def test_malformed_headers_are_rejected(headers: object, message: str) -> None:
    rejects(errors.InvalidTaskError, message, headers=headers)


# ------------------------------------------------------------------ 1.7 payload and params


def test_a_str_payload_is_utf8_with_a_text_content_type() -> None:
    task = build(payload="héllo")
    assert task.payload == b"h\xc3\xa9llo"
    assert task.headers == (NS, ("Content-Type", "text/plain; charset=utf-8"))


def test_a_bytes_payload_gets_no_content_type() -> None:
    task = build(payload=b"\x00\xff")
    assert (task.payload, task.headers) == (b"\x00\xff", (NS,))


def test_a_given_content_type_is_kept_whatever_its_case() -> None:
    task = build(payload="{}", headers={"content-TYPE": "application/json"})
    assert task.headers == (("content-TYPE", "application/json"), NS)


def test_an_empty_str_payload_gets_no_content_type() -> None:
    task = build(payload="")
    assert (task.payload, task.headers) == (b"", (NS,))


def test_post_params_become_a_form_body() -> None:
    task = build(params={"a": "1", "b": ["2", 3], "c": "é", "d": "x y&z"})
    assert task.payload == b"a=1&b=2&b=3&c=%C3%A9&d=x+y%26z"
    assert task.headers == (NS, ("Content-Type", "application/x-www-form-urlencoded"))
    assert task.url == "/_ah/queue/q1"


def test_post_params_keep_a_given_content_type() -> None:
    task = build(params={"a": "1"}, headers={"Content-Type": "x/y"})
    assert task.headers == (("Content-Type", "x/y"), NS)


def test_post_payload_and_params_together_are_rejected() -> None:
    rejects(errors.InvalidTaskError, "payload and params", payload="x", params={"a": "1"})


def test_an_empty_payload_gives_way_to_params() -> None:
    assert build(payload="", params={"a": "1"}).payload == b"a=1"


def test_put_params_always_go_into_the_query_string() -> None:
    task = build(method="PUT", url="/x", payload="body", params={"a": "1"})
    assert (task.url, task.payload) == ("/x?a=1", b"body")
    assert build(method="PUT", params={"a": "1"}).url == "/_ah/queue/q1?a=1"


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_bodyless_methods_reject_a_payload(method: str) -> None:
    error = rejects(errors.InvalidTaskError, method=method, payload="x")
    assert str(error) == f"payload can only be specified for POST, PUT and PULL tasks, not {method}"


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_bodyless_methods_put_params_in_the_query_and_accept_an_empty_payload(
    method: str,
) -> None:
    task = build(method=method, url="/x", params={"a": "1"}, payload="")
    assert (task.url, task.payload) == ("/x?a=1", b"")


def test_a_pull_payload_is_kept() -> None:
    assert build(method="PULL", payload=b"\x00raw").payload == b"\x00raw"
    assert build(method="PULL", payload="é").payload == b"\xc3\xa9"
    assert build(method="PULL", payload="").payload == b""


def test_pull_params_become_the_payload() -> None:
    task = build(method="PULL", params={"a": "1", "b": ["2", "3"]})
    assert task.payload == b"a=1&b=2&b=3"
    # The client counts the text/plain content type it attaches to the encoded params.
    assert task.size == 4 + 11 + NS_SIZE + (12 + 25 + 4)


def test_a_pull_task_needs_a_payload_or_params() -> None:
    rejects(errors.InvalidTaskError, "must be specified for pull tasks", method="PULL")


def test_pull_payload_and_params_together_are_rejected() -> None:
    rejects(
        errors.InvalidTaskError, "payload and params", method="PULL", payload="x", params={"a": "1"}
    )


@pytest.mark.parametrize("payload", [5, 1.5, ["x"], {"a": 1}, bytearray(b"x")])
def test_payloads_other_than_bytes_or_str_are_rejected(payload: object) -> None:
    rejects(errors.InvalidTaskError, "payload must be bytes or str", payload=payload)


@pytest.mark.parametrize(
    ("params", "query"),
    [
        ({"b": [1, 2]}, "b=1&b=2"),
        ({"f": 1.5, "t": True, "n": -3}, "f=1.5&t=True&n=-3"),
        ({"raw": b"\xff\x00"}, "raw=%FF%00"),
        ({b"k": "v"}, "k=v"),
        ({"é": "ü"}, "%C3%A9=%C3%BC"),
        ({"e": ""}, "e="),
        ({"t": ("x", "y")}, "t=x&t=y"),
    ],
)
def test_params_are_url_encoded_over_a_flattened_list(params: Any, query: str) -> None:
    assert build(method="GET", params=params).url == f"/_ah/queue/q1?{query}"


@pytest.mark.parametrize(
    "params", [{"a": None}, {"a": [["x"]]}, {"a": {"b": 1}}, {5: "x"}, [("a", "1")], "a=1"]
)
def test_params_of_other_types_are_rejected(params: Any) -> None:
    rejects(errors.InvalidTaskError, "params", method="GET", params=params)


# ------------------------------------------------------------------ 1.8 ETA and countdown


def test_no_eta_and_no_countdown_means_now() -> None:
    task = build()
    assert (task.eta_us, task.created_us) == (NOW_US, NOW_US)


@pytest.mark.parametrize(
    ("countdown", "eta_us"),
    [
        (0, NOW_US),
        (1.5, NOW_US + 1_500_000),
        (-10, NOW_US - 10_000_000),
        ("2.5", NOW_US + 2_500_000),
        (0.0000014, NOW_US + 1),
        (2_592_000, NOW_US + 2_592_000_000_000),
    ],
)
def test_a_countdown_is_seconds_from_now(countdown: Any, eta_us: int) -> None:
    assert build(countdown=countdown).eta_us == eta_us


def test_a_countdown_of_30_days_and_1_microsecond_is_too_far() -> None:
    rejects(errors.InvalidEtaError, "30 days", countdown=2_592_000.000001)


@pytest.mark.parametrize("countdown", ["soon", [1], True, b"1", float("nan"), "nan"])
def test_a_countdown_that_is_not_a_number_is_rejected(countdown: Any) -> None:
    rejects(errors.InvalidTaskError, countdown=countdown)


def test_an_infinite_countdown_is_too_far_and_minus_infinity_too_early() -> None:
    rejects(errors.InvalidEtaError, "30 days", countdown=float("inf"))
    rejects(errors.InvalidEtaError, "epoch", countdown=float("-inf"))


@pytest.mark.parametrize("seconds", [1e300, 1.7976931348623157e308, 10**400])
def test_a_huge_finite_countdown_or_eta_is_an_eta_error_not_an_overflow(seconds: Any) -> None:
    # Found by the API fuzz: 1e300 * 1e6 overflowed to inf and round() raised OverflowError.
    rejects(errors.InvalidEtaError, "30 days", countdown=seconds)
    rejects(errors.InvalidEtaError, "epoch", countdown=-seconds)
    rejects(errors.InvalidEtaError, "30 days", eta=seconds)
    rejects(errors.InvalidDispatchDeadlineError, "24 h", dispatch_deadline=seconds)


def test_countdown_and_eta_together_are_rejected() -> None:
    error = rejects(errors.InvalidTaskError, countdown=1, eta=NOW_DT)
    assert str(error) == "Cannot use a countdown and ETA together"


@pytest.mark.parametrize(
    ("eta", "eta_us"),
    [
        (NOW_DT + datetime.timedelta(seconds=10, microseconds=7), NOW_US + 10_000_007),
        (
            datetime.datetime(
                2023, 11, 15, 0, 13, 20, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
            ),
            NOW_US,
        ),
        # Naive means UTC: a deliberate difference, App Engine reads naive ETAs in local time.
        (datetime.datetime(2023, 11, 14, 22, 13, 20), NOW_US),
        (1_700_000_100.25, NOW_US + 100_250_000),
        (1_700_000_000.1234567, 1_700_000_000_123_457),
        (1_700_000_100, NOW_US + 100_000_000),
        (NOW_DT - datetime.timedelta(days=365), NOW_US - 365 * 86_400_000_000),
    ],
)
def test_an_eta_is_converted_to_microseconds(eta: Any, eta_us: int) -> None:
    assert build(eta=eta).eta_us == eta_us


def test_an_eta_exactly_30_days_ahead_is_accepted() -> None:
    eta = NOW_DT + datetime.timedelta(days=30)
    assert build(eta=eta).eta_us == NOW_US + models.MAX_ETA_AHEAD_US


def test_an_eta_30_days_and_1_microsecond_ahead_is_rejected() -> None:
    eta = NOW_DT + datetime.timedelta(days=30, microseconds=1)
    rejects(errors.InvalidEtaError, "at most 30 days ahead", eta=eta)


@pytest.mark.parametrize(
    "eta", [datetime.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.UTC), -1.0, -1]
)
def test_an_eta_before_the_epoch_is_rejected(eta: Any) -> None:
    rejects(errors.InvalidEtaError, "before the epoch", eta=eta)


@pytest.mark.parametrize(
    "eta", ["2023-11-14", datetime.date(2023, 11, 14), True, float("nan"), [1]]
)
def test_an_eta_of_another_type_is_rejected(eta: Any) -> None:
    rejects(errors.InvalidTaskError, eta=eta)


def test_an_infinite_eta_is_too_far() -> None:
    rejects(errors.InvalidEtaError, eta=float("inf"))


# ------------------------------------------------------------------ 1.9 tag


@pytest.mark.parametrize("tag", ["t", ""])
def test_a_push_task_cannot_have_a_tag(tag: str) -> None:
    error = rejects(errors.InvalidTaskError, tag=tag)
    assert str(error) == "tag can only be specified for pull tasks"


@pytest.mark.parametrize(
    ("tag", "stored"),
    [
        ("grp", b"grp"),
        (b"\x00grp", b"\x00grp"),
        ("t" * 500, b"t" * 500),
        ("é" * 500, "é".encode() * 500),
        ("", None),
        (b"", None),
    ],
)
def test_pull_tags_are_stored_as_bytes(tag: Any, stored: bytes | None) -> None:
    assert build(method="PULL", payload="x", tag=tag).tag == stored


@pytest.mark.parametrize("tag", ["t" * 501, b"t" * 501])
def test_a_tag_over_500_is_rejected(tag: Any) -> None:
    rejects(errors.InvalidTagError, "at most 500", method="PULL", payload="x", tag=tag)


def test_a_tag_of_another_type_is_rejected() -> None:
    rejects(errors.InvalidTagError, "bytes or str", method="PULL", payload="x", tag=5)


# ------------------------------------------------------------------ 1.10 dispatch deadline


@pytest.mark.parametrize(
    ("seconds", "us"),
    [
        (15, 15_000_000),
        (15.0, 15_000_000),
        (600, 600_000_000),
        (86_400, 86_400_000_000),
        (20.5, 20_500_000),
    ],
)
def test_dispatch_deadlines_from_15_s_to_24_h_are_accepted(seconds: float, us: int) -> None:
    assert build(dispatch_deadline=seconds).dispatch_deadline_us == us


@pytest.mark.parametrize("seconds", [14.999999, 0, -15, 86_400.000001, 10**30])
def test_dispatch_deadlines_outside_15_s_to_24_h_are_rejected(seconds: float) -> None:
    rejects(errors.InvalidDispatchDeadlineError, "between 15 s and 24 h", dispatch_deadline=seconds)


@pytest.mark.parametrize("seconds", ["20", True, float("nan"), float("inf"), [20]])
def test_a_dispatch_deadline_that_is_not_a_number_is_rejected(seconds: Any) -> None:
    rejects(errors.InvalidDispatchDeadlineError, "number of seconds", dispatch_deadline=seconds)


def test_a_pull_task_cannot_have_a_dispatch_deadline() -> None:
    rejects(
        errors.InvalidTaskError,
        "only be specified for push tasks",
        method="PULL",
        payload="x",
        dispatch_deadline=20,
    )


def test_no_dispatch_deadline_is_none() -> None:
    assert build().dispatch_deadline_us is None


# ------------------------------------------------------------------ 1.11 size


def test_the_size_formula() -> None:
    assert encoding.task_size(
        method="POST", payload=b"12345", relative_url="/ab", headers=[("K", "vé"), ("A", "")]
    ) == 4 + 5 + 3 + (1 + 3 + 4) + (1 + 0 + 4)


def test_the_size_leaves_out_the_default_url_prefix_but_counts_the_query() -> None:
    task = build(method="GET", queue="a-long-queue-name", params={"a": "1"})
    assert task.size == 3 + len("?a=1") + NS_SIZE


def test_a_push_task_of_exactly_100_kib_is_accepted() -> None:
    task = build(url="/x", payload=b"p" * (102_400 - 4 - 2 - NS_SIZE))
    assert task.size == 102_400


def test_a_push_task_of_100_kib_and_1_byte_is_rejected() -> None:
    error = rejects(errors.TaskTooLargeError, url="/x", payload=b"p" * (102_401 - 4 - 2 - NS_SIZE))
    assert str(error) == "task size must be at most 102400 bytes; found 102401"


def test_a_pull_task_of_exactly_1_mib_is_accepted() -> None:
    task = build(method="PULL", payload=b"p" * (1_048_576 - 4 - NS_SIZE))
    assert task.size == 1_048_576


def test_a_pull_task_of_1_mib_and_1_byte_is_rejected() -> None:
    error = rejects(
        errors.TaskTooLargeError, method="PULL", payload=b"p" * (1_048_577 - 4 - NS_SIZE)
    )
    assert str(error) == "task size must be at most 1048576 bytes; found 1048577"


def test_headers_count_in_utf8_bytes_and_the_url_in_characters() -> None:
    task = build(url="/é", headers={"X": "é"})
    assert task.size == 4 + 2 + (1 + 2 + 4) + NS_SIZE


# ------------------------------------------------------------------ 1.12 retry options


def test_retry_options_are_kept_with_the_age_limit_rounded_up() -> None:
    options = models.RetryParameters(
        task_retry_limit=5,
        task_age_limit_s=1.2,
        min_backoff_s=0.5,
        max_backoff_s=0.5,
        max_doublings=0,
    )
    assert build(retry_options=options).retry_options == models.RetryParameters(
        task_retry_limit=5,
        task_age_limit_s=2,
        min_backoff_s=0.5,
        max_backoff_s=0.5,
        max_doublings=0,
    )


def test_empty_retry_options_are_none() -> None:
    assert build(retry_options=models.RetryParameters()).retry_options is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_backoff_s", -1, "min_backoff_s must be a finite number >= 0"),
        ("max_backoff_s", -0.1, "max_backoff_s must be a finite number >= 0"),
        ("task_age_limit_s", -1, "task_age_limit_s must be a finite number >= 0"),
        ("max_doublings", -1, "max_doublings must be a finite number >= 0"),
        ("task_retry_limit", -1, "task_retry_limit must be a finite number >= 0"),
        ("min_backoff_s", float("nan"), "finite"),
        ("task_age_limit_s", float("inf"), "finite"),
        ("task_retry_limit", 1.5, "task_retry_limit must be an integer"),
        ("max_doublings", 2.0, "max_doublings must be an integer"),
        ("min_backoff_s", "1", "min_backoff_s must be a number"),
        ("task_retry_limit", True, "task_retry_limit must be an integer"),
    ],
)
def test_bad_retry_options_are_rejected(field: str, value: object, message: str) -> None:
    options = models.RetryParameters(**{field: value})
    rejects(errors.InvalidTaskRetryOptionsError, re.escape(message), retry_options=options)


def test_a_max_backoff_below_the_min_backoff_is_rejected() -> None:
    options = models.RetryParameters(min_backoff_s=5, max_backoff_s=1)
    error = rejects(errors.InvalidTaskRetryOptionsError, retry_options=options)
    assert str(error) == "retry option max_backoff_s (1) cannot be less than min_backoff_s (5)"


def test_retry_options_of_another_type_are_rejected() -> None:
    rejects(errors.InvalidTaskRetryOptionsError, retry_options={"task_retry_limit": 1})


def test_pull_tasks_accept_retry_options() -> None:
    options = models.RetryParameters(task_retry_limit=2)
    assert build(method="PULL", payload="x", retry_options=options).retry_options == options


# ------------------------------------------------------------------ order of the checks


def test_checks_run_in_app_engines_order() -> None:
    # Retry options come first (TaskRetryOptions is built before Task), then the name, the URL,
    # the query/params clash, the tag, the method table, the target, the ETA, size, tag length
    # and dispatch deadline.
    bad_retry = models.RetryParameters(min_backoff_s=-1)
    rejects(errors.InvalidTaskRetryOptionsError, retry_options=bad_retry, name="a b")
    rejects(errors.InvalidTaskNameError, name="a b", url="x")
    rejects(errors.InvalidUrlError, url="x", method="PATCH")
    rejects(errors.InvalidTaskError, "tag can only", tag="t", method="PATCH")
    rejects(errors.InvalidTaskError, "Invalid method", method="PATCH", countdown=1, eta=NOW_DT)
    rejects(errors.InvalidTaskError, "together", countdown=1, eta=NOW_DT, payload=b"x" * 200_000)
    rejects(errors.InvalidEtaError, countdown=10**9, payload=b"x" * 200_000)
    rejects(errors.TaskTooLargeError, payload=b"x" * 200_000, dispatch_deadline=1)
    rejects(errors.TaskTooLargeError, method="PULL", payload=b"x" * 2_000_000, tag="t" * 501)
    rejects(errors.InvalidTagError, method="PULL", payload="x", tag="t" * 501, dispatch_deadline=1)


# ------------------------------------------------------------------ times in µs (eta_us, dispatch_deadline_us)


def test_an_eta_in_us_is_taken_exactly() -> None:
    assert build(eta_us=NOW_US + 1).eta_us == NOW_US + 1
    assert build(eta_us=NOW_US + models.MAX_ETA_AHEAD_US).eta_us == NOW_US + models.MAX_ETA_AHEAD_US


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"eta_us": NOW_US, "countdown": 5}, errors.InvalidTaskError, "countdown and ETA"),
        ({"eta_us": NOW_US, "eta": NOW_DT}, errors.InvalidTaskError, "countdown and ETA"),
        ({"eta_us": NOW_US + models.MAX_ETA_AHEAD_US + 1}, errors.InvalidEtaError, "30 days"),
        ({"eta_us": -1}, errors.InvalidEtaError, "before the epoch"),
        ({"eta_us": 1.5}, errors.InvalidEtaError, "eta_us must be whole microseconds"),
        ({"eta_us": True}, errors.InvalidEtaError, "eta_us must be whole microseconds"),
    ],
)
def test_a_bad_eta_in_us_is_rejected(
    kw: dict[str, Any], error: type[errors.Error], match: str
) -> None:
    rejects(error, match, **kw)


def test_a_dispatch_deadline_in_us_is_taken_exactly() -> None:
    us = models.MIN_DISPATCH_DEADLINE_US + 1
    assert build(dispatch_deadline_us=us).dispatch_deadline_us == us


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"dispatch_deadline_us": 15_000_000 - 1}, errors.InvalidDispatchDeadlineError, "between"),
        ({"dispatch_deadline_us": 86_400_000_001}, errors.InvalidDispatchDeadlineError, "between"),
        ({"dispatch_deadline_us": 20.0}, errors.InvalidDispatchDeadlineError, "whole micro"),
        (
            {"dispatch_deadline_us": 20 * 10**6, "dispatch_deadline": 20},
            errors.InvalidTaskError,
            "not both",
        ),
        (
            {"dispatch_deadline_us": 20 * 10**6, "method": "PULL", "payload": b""},
            errors.InvalidTaskError,
            "push tasks",
        ),
    ],
)
def test_a_bad_dispatch_deadline_in_us_is_rejected(
    kw: dict[str, Any], error: type[errors.Error], match: str
) -> None:
    rejects(error, match, **kw)
