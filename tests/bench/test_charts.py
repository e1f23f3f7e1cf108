"""benchmarks/charts.py: every chart writes a PNG, small inputs and edge cases included."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import charts
from benchmarks.charts import RateSeries

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, written: Path) -> None:
    assert written == path
    data = path.read_bytes()
    assert data.startswith(PNG)
    assert len(data) > 2000


def test_bars(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "bars.png"  # parent dirs are created
    systems = [
        ("raw aiohttp ceiling", 4690.0),
        ("pushd", 1555.3),
        ("gcloud-tasks-emulator 0.6.2", 212.4),
        ("SqliteHuey 2.5", 830.0),
    ]
    written = charts.bars(
        path, "Deliveries", "deliveries/s", systems, baseline="raw aiohttp ceiling", note="2 vCPUs"
    )
    assert_png(path, written)


@pytest.mark.parametrize(
    ("bars", "baseline"),
    [([], None), ([("only", 3.0)], "missing"), ([("zero", 0.0), ("b", 2.0)], "zero")],
    ids=["none", "one-unknown-baseline", "zero-baseline"],
)
def test_bars_edge_cases(tmp_path: Path, bars: list[tuple[str, float]], baseline: str) -> None:
    path = tmp_path / "bars.png"
    assert_png(path, charts.bars(path, "Edge", "req/s", bars, baseline=baseline))


@pytest.mark.parametrize(
    ("values", "target"),
    [
        ([float(i % 17) for i in range(2000)] + [250.0, 900.0], 20.0),
        ([5.0], None),
        ([], 20.0),
        ([-3.0, -1.0, 0.0, 0.0], None),
    ],
    ids=["tail", "one-no-target", "none", "early-no-target"],
)
def test_lateness(tmp_path: Path, values: list[float], target: float | None) -> None:
    path = tmp_path / "lateness.png"
    assert_png(path, charts.lateness(path, values, target_p99_ms=target))


def test_rate_over_time(tmp_path: Path) -> None:
    series = [
        RateSeries("1/s", 1.0, 1, [float(i) for i in range(10)]),
        RateSeries("50/s", 50.0, 10, [i / 50 for i in range(500)]),
        RateSeries("500/s", 500.0, 100, [i / 500 for i in range(5000)]),
    ]
    path = tmp_path / "rate.png"
    assert_png(path, charts.rate_over_time(path, series, window_s=0.5))


@pytest.mark.parametrize(
    "series",
    [[], [RateSeries("empty", 5.0, 1, []), RateSeries("one", 2.0, 1, [0.0])]],
    ids=["no-series", "zero-and-one-arrival"],
)
def test_rate_over_time_edge_cases(tmp_path: Path, series: list[RateSeries]) -> None:
    path = tmp_path / "rate.png"
    assert_png(path, charts.rate_over_time(path, series))


def test_rate_over_time_rejects_an_empty_window(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="window_s"):
        charts.rate_over_time(tmp_path / "x.png", [], window_s=0)


def test_windows_end_at_the_last_arrival() -> None:
    assert charts._windows([0.5, 2.2], 1.0) == [0.0, 1.0, 2.2]  # 0.2 s left: merged
    assert charts._windows([0.5, 2.7], 1.0) == [0.0, 1.0, 2.0, 2.7]
    assert charts._windows([], 1.0) == [0.0, 1.0]
    assert charts._windows([-0.5, 0.5], 1.0) == [-1.0, 0.0, 0.5]


def test_rates_per_window() -> None:
    arrivals = [0.1 * i for i in range(10)] + [1.0 + 0.2 * i for i in range(5)]
    assert charts._rates(arrivals, [0.0, 1.0, 2.0]) == [10.0, 5.0]
    assert charts._rates(arrivals, [0.0, 0.5, 1.0, 2.0]) == [10.0, 10.0, 5.0]
    assert charts._rates([], [0.0, 1.0]) == [0.0]


def test_round_steps_and_numbers() -> None:
    assert [charts._round_step(x) for x in (0.3, 1.0, 1.2, 2.7, 40.0)] == [0.5, 1.0, 2.0, 5.0, 50.0]
    assert [charts._number(x) for x in (4690.0, 50.0, 12.34, 2.8, 0.0123)] == [
        "4,690",
        "50",
        "12.3",
        "2.80",
        "0.0123",
    ]
