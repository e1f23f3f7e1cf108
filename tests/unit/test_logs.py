"""Event logs: one line per event with key=value fields, or JSON."""

from __future__ import annotations

import json
import logging

import pytest

from pushd import logs


@pytest.fixture(autouse=True)
def _restore() -> object:
    logger = logging.getLogger(logs.LOGGER_NAME)
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield None
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def test_text_lines_carry_the_event_and_its_fields(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("info", "text")
    logs.event("task_retry", queue="q", task="t 1", delay_s="0.2")
    assert capsys.readouterr().err == 'info    task_retry queue=q task="t 1" delay_s=0.2\n'


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("info", "json")
    logs.event("task_dead", logging.WARNING, queue="q", reason="limit")
    assert json.loads(capsys.readouterr().err) == {
        "level": "warning",
        "event": "task_dead",
        "queue": "q",
        "reason": "limit",
    }


def test_always_events_print_above_the_configured_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup("error", "text")
    logs.event("task_delivered", queue="q")
    logs.event("listening", always=True, url="http://127.0.0.1:1")
    assert capsys.readouterr().err == "info    listening url=http://127.0.0.1:1\n"
