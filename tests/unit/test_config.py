"""queue.yaml is parsed once into typed values, and every problem is located (SPEC 4.1, 5).

Agreement with App Engine's validator is tested in tests/oracle/test_queueinfo_oracle.py; these
tests pin pushd's own messages, locations and values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushd import errors, models
from pushd.queue_yaml import config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "queue_yaml"


def issues(text: str) -> list[str]:
    with pytest.raises(errors.ConfigError) as caught:
        config.load_text(text)
    return [str(issue) for issue in caught.value.issues]


def test_the_message_names_file_line_column_and_key_path() -> None:
    text = "queue:\n- name: a\n  rate: 1/s\n- name: b\n  rate: 1/s\n- name: c\n  rate: 5/x\n"
    assert issues(text) == ["queue.yaml:7:9: queue[2].rate: '5/x' is not N/s, N/m, N/h or N/d"]


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = (
        "queue:\n"
        "- name: a_b\n"
        "  rate: 5\n"
        "  retry_parameters:\n"
        "    task_age_limit: 5x\n"
        "    colour: red\n"
        "total_storage_limit: lots\n"
    )
    assert issues(text) == [
        "queue.yaml:2:9: queue[0].name: 'a_b' is not a queue name: use 1-100 of A-Z, a-z, 0-9 and -",
        "queue.yaml:3:9: queue[0].rate: '5' is not N/s, N/m, N/h or N/d",
        "queue.yaml:5:21: queue[0].retry_parameters.task_age_limit: "
        "'5x' is not a duration such as 30s, 10m, 2h or 1.5d",
        "queue.yaml:6:5: queue[0].retry_parameters.colour: unknown key 'colour'; expected one of "
        "max_backoff_seconds, max_doublings, min_backoff_seconds, task_age_limit, task_retry_limit",
        "queue.yaml:7:22: total_storage_limit: 'lots' is not a size such as 500M (B, K, M, G or T)",
    ]


def test_crlf_line_endings_keep_line_numbers_right() -> None:
    text = "queue:\r\n- name: a\r\n  rate: 1/s\r\n- name: b\r\n  rate: 5/x\r\n"
    assert issues(text) == ["queue.yaml:5:9: queue[1].rate: '5/x' is not N/s, N/m, N/h or N/d"]


def test_a_byte_order_mark_shifts_no_column() -> None:
    assert issues("\ufeffqueue: 5\n") == ["queue.yaml:1:8: queue: expected a list of queue entries"]
    loaded = config.load_bytes(b"\xef\xbb\xbfqueue:\n- name: a\n  rate: 1/s\n")
    assert list(loaded.queues) == ["a", "default"]


def test_a_file_without_final_newline_loads() -> None:
    loaded = config.load_text("queue:\n- name: a\n  rate: 2/m")
    assert loaded.queues["a"].rate == Fraction(1, 30)


def test_a_queue_key_with_every_entry_commented_out_defines_only_default() -> None:
    loaded = config.load_text("queue:\n# - name: a\n#   rate: 1/s\n")
    assert list(loaded.queues) == ["default"]
    assert loaded.queues["default"].implicit


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing here\n"])
def test_an_empty_file_is_refused_as_app_engine_does(text: str) -> None:
    assert issues(text) == [
        "queue.yaml:1:1: Empty queue configuration: the file holds no YAML document"
    ]


def test_two_documents_are_refused() -> None:
    assert issues("queue: []\n---\nqueue: []\n") == [
        "queue.yaml:3:1: 2 YAML documents; queue.yaml must hold exactly one"
    ]


def test_broken_yaml_is_located_at_the_parser_mark() -> None:
    assert issues("queue:\n- name: a\n rate: 1/s\n") == [
        "queue.yaml:3:2: invalid YAML: expected <block end>, but found '<block mapping start>'"
    ]


def test_unknown_and_duplicate_keys_are_named() -> None:
    assert issues("queue: []\nqueues: []\nqueue: []\n") == [
        "queue.yaml:2:1: queues: unknown key 'queues'; expected one of "
        "application, queue, resume_paused_queues, total_storage_limit",
        "queue.yaml:3:1: queue: duplicate key (first on line 1)",
    ]


def test_stricter_rules_say_so_and_are_flagged() -> None:
    text = "queue:\n- name: a\n  rate: 1/s\n- name: a\n  rate: 2/s\n  bucket_size: 5.5\n"
    with pytest.raises(errors.ConfigError) as caught:
        config.load_text(text)
    assert [str(i) for i in caught.value.issues] == [
        f"queue.yaml:4:9: queue[1].name: 'a' is already defined on line 2; {config.STRICTER_NOTE}",
        "queue.yaml:6:16: queue[1].bucket_size: '5.5' is not written as a whole number "
        f"(App Engine reads 5); {config.STRICTER_NOTE}",
    ]
    assert all(i.stricter for i in caught.value.issues)


def test_yaml_1_1_typing_is_not_silently_applied_to_names() -> None:
    """App Engine's loader reads `name: yes` as the queue "True"; pushd asks for quotes."""
    assert issues("queue:\n- name: yes\n  rate: 1/s\n") == [
        f"queue.yaml:2:9: queue[0].name: YAML 1.1 reads 'yes' as the bool 'True'; quote it; "
        f"{config.STRICTER_NOTE}"
    ]
    assert "yes" in config.load_text("queue:\n- name: 'yes'\n  rate: 1/s\n").queues


@pytest.mark.parametrize(
    ("rate", "per_second"),
    [
        ("5/s", Fraction(5)),
        ("0.5/s", Fraction(1, 2)),
        ("1/m", Fraction(1, 60)),
        ("0.7/m", Fraction(7, 600)),
        ("3/h", Fraction(1, 1200)),
        ("1./d", Fraction(1, 86400)),
        ("1000/s", Fraction(1000)),
        ("0", Fraction(0)),
        ("0/s", Fraction(0)),
    ],
)
def test_rates_are_exact_fractions(rate: str, per_second: Fraction) -> None:
    queue = config.load_text(f"queue:\n- name: a\n  rate: {rate}\n").queues["a"]
    assert queue.rate == per_second
    assert queue.rate_text == rate
    assert queue.paused == (per_second == 0)


def test_every_field_is_read() -> None:
    loaded = config.load_text(
        "total_storage_limit: 1.5K\n"
        "resume_paused_queues: yes\n"
        "queue:\n"
        "- name: work\n"
        "  rate: 10/s\n"
        "  bucket_size: '20'\n"
        "  max_concurrent_requests: 3\n"
        "  target: v1.worker\n"
        "  retry_parameters:\n"
        "    task_retry_limit: 7\n"
        "    task_age_limit: 1.5h\n"
        "    min_backoff_seconds: 0.5\n"
        "    max_backoff_seconds: 60\n"
        "    max_doublings: 2\n"
        "- name: leased\n"
        "  mode: pull\n"
        "  acl:\n"
        "  - user_email: w@example.com\n"
        "  - writer_email: p@example.com\n"
    )
    assert loaded.total_storage_limit_bytes == 1536
    assert loaded.resume_paused_queues is True
    assert list(loaded.queues) == ["work", "leased", "default"]
    assert loaded.queues["work"] == config.QueueConfig(
        name="work",
        rate=Fraction(10),
        rate_text="10/s",
        bucket_size=20,
        max_concurrent_requests=3,
        target="v1.worker",
        retry=models.RetryParameters(
            task_retry_limit=7,
            task_age_limit_s=5400,
            min_backoff_s=0.5,
            max_backoff_s=60.0,
            max_doublings=2,
        ),
        line=4,
    )
    leased = loaded.queues["leased"]
    assert leased.mode is models.QueueMode.PULL
    assert leased.rate == 0
    assert not leased.paused
    assert leased.acl == (
        config.AclEntry(user_email="w@example.com"),
        config.AclEntry(writer_email="p@example.com"),
    )
    assert loaded.warnings == ()


def test_the_implicit_default_queue_gives_way_to_a_defined_one() -> None:
    implicit = config.load_text("queue: []\n").queues["default"]
    assert implicit == config.QueueConfig(name="default", rate=Fraction(5), bucket_size=5)
    defined = config.load_text("queue:\n- name: default\n  rate: 1/s\n").queues["default"]
    assert defined.rate == 1
    assert not defined.implicit


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        ("min_backoff_seconds: 5000", {"min_backoff_s": 5000.0, "max_backoff_s": 5000.0}),
        ("max_backoff_seconds: 0.05", {"min_backoff_s": 0.05, "max_backoff_s": 0.05}),
        ("min_backoff_seconds: 3", {"min_backoff_s": 3.0}),
        ("task_age_limit: 1.5s", {"task_age_limit_s": 1}),
        ("task_age_limit: .5m", {"task_age_limit_s": 30}),
        ("task_age_limit: 2d", {"task_age_limit_s": 172800}),
    ],
)
def test_retry_parameters_get_app_engine_fix_ups(retry: str, expected: dict[str, float]) -> None:
    text = f"queue:\n- name: a\n  rate: 1/s\n  retry_parameters:\n    {retry}\n"
    assert config.load_text(text).queues["a"].retry == models.RetryParameters(**expected)  # type: ignore[arg-type]


def test_ignored_keys_become_warnings() -> None:
    loaded = config.load_text(
        "queue:\n"
        "- name: p\n"
        "  mode: pull\n"
        "  rate: 1/s\n"
        "  retry_parameters: {task_retry_limit: 2, min_backoff_seconds: 1}\n"
        "- name: nrate\n"
        "  bucket_size: 2\n"
        "application: my-app\n"
    )
    assert [str(w) for w in loaded.warnings] == [
        "queue.yaml:4:9: queue[0].rate: ignored: it applies to push queues only",
        "queue.yaml:5:64: queue[0].retry_parameters.min_backoff_seconds: "
        "ignored: pull queues only use task_retry_limit",
        "queue.yaml:6:3: queue[1]: push queue 'nrate' has no rate; pushd uses 5/s",
        "queue.yaml:8:14: application: a legacy key; pushd ignores it",
    ]
    assert loaded.queues["nrate"].rate == 5


def test_the_fixture_with_many_problems_reports_them_all() -> None:
    path = FIXTURES / "many_problems.yaml"
    with pytest.raises(errors.ConfigError) as caught:
        config.load_file(path)
    assert [(i.line, i.column, i.path) for i in caught.value.issues] == [
        (3, 9, "queue[0].name"),
        (4, 9, "queue[0].rate"),
        (5, 16, "queue[0].bucket_size"),
        (9, 26, "queue[1].retry_parameters.min_backoff_seconds"),
        (11, 21, "queue[1].retry_parameters.task_age_limit"),
        (12, 9, "queue[2].name"),
        (14, 3, "queue[2].priority"),
        (15, 22, "total_storage_limit"),
    ]
    assert all(i.file == str(path) for i in caught.value.issues)


def test_an_unreadable_file_is_one_issue_without_a_line(tmp_path: Path) -> None:
    missing = tmp_path / "queue.yaml"
    with pytest.raises(errors.ConfigError) as caught:
        config.load_file(missing)
    assert [str(i) for i in caught.value.issues] == [
        f"{missing}:0:0: cannot read: No such file or directory"
    ]


def test_bytes_that_are_not_utf8_are_located() -> None:
    with pytest.raises(errors.ConfigError) as caught:
        config.load_bytes(b"queue:\n- name: \xff\n")
    assert [str(i) for i in caught.value.issues] == [
        "queue.yaml:2:9: not UTF-8: byte 0xff cannot be decoded"
    ]


def test_the_result_is_immutable() -> None:
    loaded = config.load_text("queue: []\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.path = "elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        loaded.queues["x"] = loaded.queues["default"]  # type: ignore[index]
    with pytest.raises(errors.UnknownQueueError):
        loaded.queue("nope")


def assert_loads_or_refuses(load: Callable[[], config.QueuesConfig]) -> None:
    """Success, or a ConfigError with located issues: never any other exception."""
    try:
        load()
    except errors.ConfigError as exc:
        found = exc.issues
    else:
        return
    assert found
    assert all(isinstance(i, errors.ConfigIssue) and i.file == "queue.yaml" for i in found)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_random_text_only_ever_raises_config_error(text: str) -> None:
    assert_loads_or_refuses(lambda: config.load_text(text))


YAMLISH = st.lists(
    st.sampled_from(
        [
            "queue:",
            "\n",
            "- ",
            "  ",
            "name: ",
            "rate: ",
            "a",
            "5/s",
            "[",
            "]",
            "{",
            "}",
            ":",
            ",",
            "'",
            '"',
            "&a ",
            "*a",
            "!!str ",
            "#",
            "\t",
            "\r\n",
            "\ufeff",
            "010",
            "1e3",
            "~",
            "---\n",
        ]
    )
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(YAMLISH, st.binary().map(lambda b: b.decode("latin-1"))))
def test_yaml_like_noise_only_ever_raises_config_error(text: str) -> None:
    assert_loads_or_refuses(lambda: config.load_text(text))


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_random_bytes_only_ever_raise_config_error(data: bytes) -> None:
    assert_loads_or_refuses(lambda: config.load_bytes(data))


def test_deep_nesting_is_refused_without_a_traceback() -> None:
    with pytest.raises(errors.ConfigError) as caught:
        config.load_text("queue: " + "[" * 5000 + "]" * 5000)
    assert caught.value.issues[0].stricter
