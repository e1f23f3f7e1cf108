"""PNG charts of the benchmark's results: small (8 × 4.5 in at 100 dpi), titled, with units.

matplotlib draws them with Agg and without pyplot (each chart is a ``Figure`` of its own, so
nothing is left open between charts and no display is needed). Every function creates the
parent directories and returns the path it wrote.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: never look for a display

from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from benchmarks.harness import percentile

if TYPE_CHECKING:
    from matplotlib.axes import Axes

DPI = 100
SIZE = (8.0, 4.5)  # inches
BAR = "#4C72B0"
BASELINE_BAR = "#A0A0A0"
P50, P99, TARGET = "#2CA02C", "#FF7F0E", "#D62728"
SERIES = ("#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2")
NOTE_STYLE = {"fontsize": 8, "color": "0.35"}


def _figure(height: float = SIZE[1]) -> Figure:
    return Figure(figsize=(SIZE[0], height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _number(value: float) -> str:
    """A value at a precision that suits its size: 12,345 / 123 / 12.3 / 1.23 / 0.0123 / 50."""
    size = abs(value)
    if size >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _round_step(raw: float) -> float:
    """The smallest of 1, 2, 5 × 10^k at least ``raw``."""
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


# ------------------------------------------------------------------ bars


def bars(
    path: Path,
    title: str,
    unit: str,
    bars: Sequence[tuple[str, float]],
    *,
    baseline: str | None = None,
    note: str = "",
) -> Path:
    """Horizontal bars, first at the top, each labelled with its value (and ×ratio to ``baseline``).

    ``unit`` names the axis, e.g. "deliveries/s"; ``note`` is a small caption (machine,
    receiver). ``baseline`` names one of the bars (else no ratios); it is drawn grey.
    """
    fig = _figure(max(2.4, 1.8 + 0.65 * len(bars)))  # 4 bars: about 4.5 in
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(unit)
    if note:
        fig.supxlabel(note, x=0.01, ha="left", **NOTE_STYLE)
    if not bars:
        _no_data(ax)
        return _save(fig, path)
    labels = [label for label, _ in bars]
    values = [value for _, value in bars]
    base = dict(bars).get(baseline) if baseline is not None else None
    colours = [BASELINE_BAR if label == baseline else BAR for label in labels]
    rows = range(len(bars))
    ax.barh(rows, values, color=colours, height=0.6)
    ax.set_yticks(rows, labels)
    ax.invert_yaxis()  # the first bar on top
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    top = max([*values, 0.0])
    for row, (label, value) in zip(rows, bars, strict=True):
        text = _number(value)
        if base:  # a named baseline with a nonzero value
            text += "  (baseline)" if label == baseline else f"  ×{value / base:.2f}"
        ax.annotate(
            text,
            (max(value, 0.0), row),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
        )
    # Room on the right for the longest label (about 20 characters of 9 pt text).
    ax.set_xlim(0, top * 1.3 if top > 0 else 1.0)
    return _save(fig, path)


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


# ------------------------------------------------------------------ lateness


def lateness(
    path: Path,
    lateness_ms: Sequence[float],
    *,
    target_p99_ms: float | None = 20.0,
    title: str = "ETA lateness",
) -> Path:
    """Histogram of how late each delivery was (ms after its ETA), log-scaled counts.

    Vertical lines mark p50, p99 (values in the legend) and the p99 target. The x axis stops a
    little past the larger of p99.9 and the target so a few outliers do not squash the rest; how
    many lie beyond, and the maximum, are said in the legend.
    """
    fig = _figure()
    ax = fig.add_subplot()
    values = [float(v) for v in lateness_ms]
    ax.set_title(f"{title} (n = {len(values):,})")
    ax.set_xlabel("lateness: delivered − ETA (ms)")
    ax.set_ylabel("deliveries (log scale)")
    if not values:
        _no_data(ax)
        return _save(fig, path)
    p50, p99, p999 = (percentile(values, p) for p in (50, 99, 99.9))
    lo = min(0.0, min(values))
    hi = max(p999, p99, target_p99_ms or 0.0) * 1.15
    hi = max(hi, lo + 1.0)
    # Bins of a round width (>= 1 ms once the range allows: nginx logs whole milliseconds).
    width = _round_step((hi - lo) / 60)
    if hi - lo >= 20:
        width = max(width, 1.0)
    lo, hi = math.floor(lo / width) * width, math.ceil(hi / width) * width
    edges = [lo + i * width for i in range(round((hi - lo) / width) + 1)]
    shown = [v for v in values if v <= hi]
    beyond = len(values) - len(shown)
    ax.hist(shown, bins=edges, color=BAR, alpha=0.85, log=True)
    ax.yaxis.set_minor_locator(NullLocator())  # decades are enough, and twice as quick to draw
    ax.axvline(p50, color=P50, lw=1.5, label=f"p50 {_number(p50)} ms")
    ax.axvline(p99, color=P99, lw=1.5, label=f"p99 {_number(p99)} ms")
    if target_p99_ms is not None:
        verdict = "met" if p99 <= target_p99_ms else "missed"
        ax.axvline(
            target_p99_ms,
            color=TARGET,
            lw=1.5,
            ls="--",
            label=f"target p99 ≤ {_number(target_p99_ms)} ms ({verdict})",
        )
    if beyond:
        ax.plot(
            [], [], " ", label=f"{beyond:,} beyond {_number(hi)} ms (max {_number(max(values))} ms)"
        )
    ax.set_xlim(lo, hi)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    return _save(fig, path)


# ------------------------------------------------------------------ rate over time


def _windows(times: Sequence[float], window_s: float) -> list[float]:
    """Window edges from 0 (or the earliest time) to the last time, ``window_s`` apart.

    The last window ends at the last time, so it is not diluted by time after the run; if
    it would be shorter than half a window it is merged into the one before.
    """
    start = math.floor(min([0.0, *times]) / window_s) * window_s
    end = max([start + window_s, *times])
    edges = [start]
    while edges[-1] + window_s < end:
        edges.append(start + len(edges) * window_s)
    if len(edges) > 1 and end - edges[-1] < window_s / 2:
        edges.pop()
    edges.append(end)
    return edges


@dataclass
class RateSeries:
    """Deliveries of one queue: arrival times in seconds since the start of the run."""

    label: str
    configured_per_s: float
    bucket_size: int
    arrivals_s: Sequence[float]


def _rates(times: Sequence[float], edges: Sequence[float]) -> list[float]:
    """Arrivals per second in each window between ``edges`` (the last one includes its end)."""
    counts = [0] * (len(edges) - 1)
    for t in times:
        window = min(max(bisect.bisect_right(edges, t) - 1, 0), len(counts) - 1)
        counts[window] += 1
    return [c / (b - a) for c, a, b in zip(counts, edges, edges[1:], strict=False)]


def rate_over_time(
    path: Path,
    series: Sequence[RateSeries],
    *,
    window_s: float = 1.0,
    title: str = "Delivered rate",
) -> Path:
    """Deliveries per second in ``window_s`` windows, one subplot per series, stacked.

    Each subplot has its own y scale (1/s and 500/s stay readable together) and its
    configured rate as a dashed line of the same colour; the time axis is shared.
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, not {window_s!r}")
    rows = max(len(series), 1)
    fig = _figure(max(SIZE[1], 0.6 + 1.9 * rows))
    fig.suptitle(f"{title} (per {_number(window_s)} s window)")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    axes[-1].set_xlabel("time since start (s)")
    if not series:
        _no_data(axes[0])
        return _save(fig, path)
    edges = _windows([t for s in series for t in s.arrivals_s], window_s)
    for i, (ax, s) in enumerate(zip(axes, series, strict=True)):
        colour = SERIES[i % len(SERIES)]
        per_s = _rates(s.arrivals_s, edges)
        ax.stairs(per_s, edges, color=colour, alpha=0.2, fill=True)
        ax.stairs(per_s, edges, color=colour, lw=1.5, baseline=None, label="delivered")
        ax.axhline(
            s.configured_per_s,
            color=colour,
            ls="--",
            lw=1.5,
            zorder=3,
            label=f"configured {_number(s.configured_per_s)}/s",
        )
        top = max([*per_s, s.configured_per_s, 1.0 / window_s])
        ax.set_ylim(0, top * 1.4)  # headroom for the legend
        ax.set_ylabel("deliveries/s")
        ax.set_title(
            f"{s.label}: rate {_number(s.configured_per_s)}/s, bucket {s.bucket_size:,}, "
            f"{len(s.arrivals_s):,} delivered",
            fontsize=10,
            loc="left",
        )
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8, ncols=2)
    axes[0].set_xlim(edges[0], edges[-1])
    return _save(fig, path)
