"""Event logs: one line per event with its time, level, name and key=value fields, or JSON."""

from __future__ import annotations

import json
import logging
import re

import pytest

from pushd import logs

#: RFC 3339, UTC, milliseconds: what starts every text line and fills the JSON ``time`` field.
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture(autouse=True)
def _restore() -> object:
    logger = logging.getLogger(logs.LOGGER_NAME)
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield None
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def _untimed(text: str) -> str:
    """Each line without its leading timestamp, which must be there."""
    lines = text.splitlines(keepends=True)
    for line in lines:
        assert re.match(STAMP + " ", line), line
    return "".join(line[25:] for line in lines)


def test_text_lines_carry_the_event_and_its_fields(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("info", "text")
    logs.event("task_retry", queue="q", task="t 1", delay_s="0.2")
    err = capsys.readouterr().err
    assert _untimed(err) == 'info    task_retry queue=q task="t 1" delay_s=0.2\n'


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("info", "json")
    logs.event("task_dead", logging.WARNING, queue="q", reason="limit")
    line = json.loads(capsys.readouterr().err)
    assert re.fullmatch(STAMP, line.pop("time"))
    assert line == {"level": "warning", "event": "task_dead", "queue": "q", "reason": "limit"}


def test_always_events_print_above_the_configured_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup("error", "text")
    logs.event("task_delivered", queue="q")
    logs.event("listening", always=True, url="http://127.0.0.1:1")
    assert _untimed(capsys.readouterr().err) == "info    listening url=http://127.0.0.1:1\n"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1714564800.1239, "2024-05-01T12:00:00.123Z"),  # cut, not rounded up
        (1714564800.9995, "2024-05-01T12:00:00.999Z"),
        (1735689599.5, "2024-12-31T23:59:59.500Z"),
        (-0.5, "1969-12-31T23:59:59.500Z"),
    ],
)
def test_timestamps_are_rfc3339_utc_milliseconds(seconds: float, expected: str) -> None:
    assert logs.timestamp(seconds) == expected


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_line_is_stamped_with_its_records_time(fmt: str) -> None:
    """The time is the record's (when the event happened), in both formats."""
    record = logging.LogRecord("pushd", logging.ERROR, "", 0, "shutdown", (), None)
    record.created = 1714564800.25
    record.event = "shutdown"
    record.fields = {"in_flight": 3}
    line = logs._Formatter(fmt == "json").format(record)
    if fmt == "json":
        assert json.loads(line) == {
            "time": "2024-05-01T12:00:00.250Z",
            "level": "error",
            "event": "shutdown",
            "in_flight": 3,
        }
    else:
        assert line == "2024-05-01T12:00:00.250Z error   shutdown in_flight=3"


def test_a_limited_event_logs_a_burst_per_window_then_counts_what_it_held_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pushd import clock

    fake = clock.FakeClock(0)
    logs.setup("info", "text")
    limited = logs.Limited("http_bad_request", logging.INFO, fake.now_us, burst=2, window_us=10)
    assert [limited(n=i) for i in range(5)] == [True, True, False, False, False]
    fake.advance(10)
    assert limited(n=5)
    assert _untimed(capsys.readouterr().err).splitlines() == [
        "info    http_bad_request n=0",
        "info    http_bad_request n=1",
        "info    http_bad_request n=5 suppressed=3",
    ]
