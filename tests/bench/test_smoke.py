"""`make bench` cannot rot: each scenario runs at smoke scale (tiny counts, no peers), on its
own (a failure names it, and none waits for the others), and its results say it worked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_scenario_runs_at_smoke_scale_and_writes_its_results(
    name: str, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    argv = ["-m", "benchmarks", "--smoke", name, "--out", str(out), "--tmp-dir", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "receiver: " in proc.stdout
    [found] = out.glob(f"*-{name}.json")
    result = json.loads(found.read_text())
    assert (result["scenario"], result["scale"]) == (name, "smoke")
    assert result["receiver"] in ("nginx", "aiohttp")
    # A scenario whose baseline cannot run here (PostgreSQL not installed) says so instead.
    assert result["ratios"] or result["data"].get("skipped"), f"{name} reports no ratio"
    for chart in result["charts"]:
        assert (out / chart).read_bytes().startswith(b"\x89PNG"), chart
    _check_table(result["table"])


def _check_table(table: list[list[str]]) -> None:
    """The figures a scenario measured, not just that it wrote some: rows under the header,
    no duplicate delivery, and every task delivered where the table counts them."""
    header, *rows = table
    assert rows, table
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        if cells.get("dups", "") not in ("", "-", "n/a"):
            assert cells["dups"] == "0", cells
        delivered = cells.get("delivered", "")
        if "/" in delivered:
            done, of = delivered.split("/", 1)
            assert done == of, cells
        elif delivered and cells.get("tasks", "").replace(",", "").isdigit():
            assert delivered.replace(",", "") == cells["tasks"].replace(",", ""), cells
