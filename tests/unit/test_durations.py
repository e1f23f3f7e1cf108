"""The one parser of durations written as text (pushd.durations)."""

from __future__ import annotations

import pytest

from pushd import durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", 90.0), ("15m", 900.0), ("1.5h", 5400.0), ("2d", 172800.0), (".5s", 0.5), ("0s", 0.0)],
)
def test_strict_reads_digits_and_a_unit(text: str, expected: float) -> None:
    assert durations.seconds(text) == expected


@pytest.mark.parametrize(
    "text", ["90", " 90s", "90 s", "90s\n", "1e3s", "-1s", "s", "1.5", "2w", ""]
)
def test_strict_refuses_anything_else(text: str) -> None:
    assert durations.seconds(text) is None


@pytest.mark.parametrize(
    ("text", "expected"), [("30", 30.0), (" 90 s ", 90.0), ("12h\n", 43200.0), ("0.5", 0.5)]
)
def test_loose_takes_spaces_and_bare_seconds(text: str, expected: float) -> None:
    assert durations.seconds(text, loose=True) == expected


@pytest.mark.parametrize("text", ["-5", "1e3", "5 ms", "", "h"])
def test_loose_still_refuses_what_is_not_a_duration(text: str) -> None:
    assert durations.seconds(text, loose=True) is None


def test_units_are_the_ones_rates_use_too() -> None:
    assert durations.UNIT_S == {"s": 1, "m": 60, "h": 3600, "d": 86400}
