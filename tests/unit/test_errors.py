from __future__ import annotations

import pytest

from pushd import errors


def test_every_error_class_derives_from_the_one_root() -> None:
    for cls in errors.ALL_ERRORS:
        assert issubclass(cls, errors.PushdError)


def test_the_docstring_is_the_default_message() -> None:
    assert str(errors.UnknownQueueError()) == "The queue is not configured."
    assert str(errors.UnknownQueueError("queue 'x' is not configured")) == (
        "queue 'x' is not configured"
    )


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (1, errors.UnknownQueueError),
        (4, errors.TaskTooLargeError),
        (5, errors.InvalidTaskNameError),
        (10, errors.TaskAlreadyExistsError),
        (11, errors.TombstonedTaskError),
        (12, errors.InvalidEtaError),
        (16, errors.DuplicateTaskNameError),
        (18, errors.TooManyTasksError),
        (21, errors.InvalidQueueModeError),
        (25, errors.TaskLeaseExpiredError),
        (26, errors.QueuePausedError),
        (27, errors.InvalidTagError),
    ],
)
def test_service_codes_map_to_the_app_engine_classes(code: int, cls: type[errors.Error]) -> None:
    err = errors.from_code(code, "detail")
    assert type(err) is cls
    assert err.code == code
    assert str(err) == "detail"


def test_an_unmapped_code_becomes_the_generic_error_like_app_engine() -> None:
    err = errors.from_code(19, "bad payload")
    assert type(err) is errors.Error
    assert str(err) == "Application error 19: bad payload"


def test_the_code_of_each_mapped_class_round_trips() -> None:
    for code, cls in errors.BY_CODE.items():
        if cls is errors.Error:  # the generic class stands for several codes
            continue
        assert cls.code == code, cls


def test_config_issue_prints_file_line_column_and_key_path() -> None:
    issue = errors.ConfigIssue("queue.yaml", 7, 9, "queue[2].rate", "'5/x' is not N/s")
    assert str(issue) == "queue.yaml:7:9: queue[2].rate: '5/x' is not N/s"
